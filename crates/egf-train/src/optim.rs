//! Adam and AdamW on candle [`Var`]s, with a state that can be checkpointed.
//!
//! candle-nn's `AdamW` keeps its first and second moments in private fields, so a
//! run that resumes from a checkpoint would restart them at zero and diverge from
//! an uninterrupted run. This module implements the same update rules with the
//! moments and the step count exposed, saved and restored bit for bit
//! ([`Adam::state_tensors`], [`Adam::load_state_tensors`]).
//!
//! Update of step `t` (1-based) for a parameter `θ` with gradient `g`:
//! * Adam: `g ← g + λθ` (L2 penalty);
//! * `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`;
//! * `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)`;
//! * AdamW: `θ ← θ (1 − lr λ)` (decoupled decay);
//! * `θ ← θ − lr m̂ / (√v̂ + ε)`.
//!
//! Everything stays on the device; nothing is read back to the host.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::{Result, TrainError};

/// Hyper-parameters of one [`Adam`] instance (the learning rate is passed to each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    /// Adam or AdamW.
    pub kind: OptimizerKind,
    /// `β₁`.
    pub beta1: f64,
    /// `β₂`.
    pub beta2: f64,
    /// `ε`.
    pub eps: f64,
    /// `λ`.
    pub weight_decay: f64,
}

impl AdamParams {
    /// The parameters of an [`OptimizerConfig`] (with `weight_decay` replaced by `weight_decay`).
    pub fn from_config(config: &OptimizerConfig, weight_decay: f64) -> Self {
        Self { kind: config.kind, beta1: config.beta1, beta2: config.beta2, eps: config.eps, weight_decay }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam / AdamW over a list of named variables, with exposed state.
pub struct Adam {
    params: AdamParams,
    slots: Vec<Slot>,
    step: u64,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("params", &self.params)
            .field("vars", &self.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .field("step", &self.step)
            .finish()
    }
}

impl Adam {
    /// An optimizer over `vars` (name, variable) with zero moments and step count 0.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { params, slots, step: 0 })
    }

    /// Number of updates applied so far (`t` of the bias correction).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    /// Applies one update with learning rate `lr`; variables without a gradient are left alone
    /// (their moments too), but the step count advances.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let t = self.step as i32;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(t));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            let theta = slot.var.as_tensor();
            let g = match p.kind {
                OptimizerKind::Adam if p.weight_decay > 0.0 => (g + (theta * p.weight_decay)?)?,
                _ => g.clone(),
            };
            let m = ((&slot.m * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&slot.v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + p.eps)?)?;
            let decayed = match p.kind {
                OptimizerKind::Adamw if p.weight_decay > 0.0 => (theta * (1.0 - lr * p.weight_decay))?,
                _ => theta.clone(),
            };
            slot.var.set(&(decayed - (update * lr)?)?)?;
            slot.m = m;
            slot.v = v;
        }
        Ok(())
    }

    /// The moments as named tensors: `"{prefix}{name}.m"` and `"{prefix}{name}.v"`.
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [(format!("{prefix}{}.m", s.name), s.m.clone()), (format!("{prefix}{}.v", s.name), s.v.clone())]
            })
            .collect()
    }

    /// Restores moments written by [`state_tensors`](Self::state_tensors) and the step
    /// count; every variable's moments must be present with its shape and dtype.
    pub fn load_state_tensors(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for slot in &mut self.slots {
            for (which, target) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let key = format!("{prefix}{}.{which}", slot.name);
                let t = tensors.get(&key).ok_or_else(|| TrainError::Checkpoint {
                    path: "optimizer.safetensors".into(),
                    reason: format!("missing optimizer tensor `{key}`"),
                })?;
                if t.dims() != slot.var.dims() || t.dtype() != slot.var.dtype() {
                    return Err(TrainError::Checkpoint {
                        path: "optimizer.safetensors".into(),
                        reason: format!(
                            "optimizer tensor `{key}` has shape {:?} / {:?}, the model needs {:?} / {:?}",
                            t.dims(),
                            t.dtype(),
                            slot.var.dims(),
                            slot.var.dtype()
                        ),
                    });
                }
                *target = t.to_device(slot.var.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn params(kind: OptimizerKind, weight_decay: f64) -> AdamParams {
        AdamParams { kind, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }

    #[test]
    fn matches_candle_adamw() {
        use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
        let init = Tensor::new(&[1.5f64, -0.7, 0.2], &Device::Cpu).unwrap();
        let a = Var::from_tensor(&init).unwrap();
        let b = Var::from_tensor(&init).unwrap();
        let mut ours = Adam::new(vec![("w".into(), a.clone())], params(OptimizerKind::Adamw, 0.01)).unwrap();
        let mut theirs = AdamW::new(
            vec![b.clone()],
            ParamsAdamW { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        )
        .unwrap();
        for _ in 0..20 {
            let ga = a.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            ours.step(&ga, 0.05).unwrap();
            let gb = b.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            theirs.step(&gb).unwrap();
        }
        let (x, y) = (a.as_tensor().to_vec1::<f64>().unwrap(), b.as_tensor().to_vec1::<f64>().unwrap());
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-12, "{x:?} vs {y:?}");
        }
    }

    #[test]
    fn adam_minimizes_a_quadratic_and_state_round_trips() {
        let x = Var::from_tensor(&Tensor::new(&[3.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], params(OptimizerKind::Adam, 0.0)).unwrap();
        for _ in 0..500 {
            let g = x.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            opt.step(&g, 0.05).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|c| c.abs() < 0.05), "{v:?}");
        let state: HashMap<String, Tensor> = opt.state_tensors("net/").into_iter().collect();
        assert!(state.contains_key("net/x.m") && state.contains_key("net/x.v"));
        let y = Var::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let mut other = Adam::new(vec![("x".into(), y)], params(OptimizerKind::Adam, 0.0)).unwrap();
        other.load_state_tensors("net/", &state, opt.step_count()).unwrap();
        assert_eq!(other.step_count(), 500);
        assert!(other.load_state_tensors("other/", &state, 1).is_err());
    }
}
