//! Reinforcement learning of a reward with the flow parameterization (spec section 5):
//! stable flow matching on `ν_train` and, to show its instability, divergence flow
//! matching along on-policy trajectories.

use candle_core::Tensor;
use egf_flow::numerics::logsumexp;
use egf_flow::{EgfModel, FlowModel, SamplerConfig, Trajectories};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::reward::eval_log_reward;
use crate::value::{check_finite, check_nonnegative, check_points, host_scalar};
use crate::{LossError, LossValue, Result, RewardFn};

/// The residual `r(s)` of the flow-matching condition `f_init + h = R + g` (inflow
/// side `F = f_init + h`, outflow side `R + g`) used by [`stable_fm`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FmResidual {
    /// `r = F − R − g = t − R`, the plain residual (spec section 5). Its scale is that
    /// of the densities: with `g = e^50` its square overflows `f32`.
    #[default]
    Absolute,
    /// `r = (F − R − g) / (F + R + g + ε)`, the relative residual, in `(−1, 1)` whatever
    /// the scale of the flow; `ε ≥ 0` (default `1e-6`) tempers it where every density is tiny
    /// (`F ≥ f_init > 0`, so `ε = 0` is allowed).
    Relative {
        /// `ε ≥ 0`.
        #[serde(default = "default_relative_epsilon")]
        epsilon: f64,
    },
    /// `r = log(F + ε) − log(R + g + ε)`, the log-space residual, computed from
    /// `log h`, `log g` and `log R` without forming the densities (so it is finite for
    /// `g = e^{±50}` and for `R = 0`, where `log(R + g) = log g`); `ε ≥ 0` (default 0).
    Log {
        /// `ε ≥ 0`.
        #[serde(default)]
        epsilon: f64,
    },
}

fn default_relative_epsilon() -> f64 {
    1e-6
}

/// Settings of [`stable_fm`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StableFmConfig {
    /// The exponent `q ≥ 1` (default 2).
    #[serde(default = "default_q")]
    pub q: f64,
    /// Which residual (default [`FmResidual::Absolute`]).
    #[serde(default)]
    pub residual: FmResidual,
}

fn default_q() -> f64 {
    2.0
}

impl Default for StableFmConfig {
    fn default() -> Self {
        Self { q: default_q(), residual: FmResidual::Absolute }
    }
}

impl StableFmConfig {
    /// Checks `q ≥ 1` and `ε ≥ 0` (finite); errors name the field.
    pub fn validate(&self) -> Result<()> {
        check_finite("q", self.q)?;
        if self.q < 1.0 {
            return Err(LossError::config("q", format!("{} is below 1", self.q)));
        }
        match self.residual {
            FmResidual::Absolute => Ok(()),
            FmResidual::Relative { epsilon } | FmResidual::Log { epsilon } => {
                check_nonnegative("residual.epsilon", epsilon)
            }
        }
    }
}

/// `|r|^q` elementwise, with `q = 1, 2` computed exactly.
fn abs_pow(r: &Tensor, q: f64) -> Result<Tensor> {
    Ok(if q == 2.0 {
        r.sqr()?
    } else if q == 1.0 {
        r.abs()?
    } else {
        r.abs()?.powf(q)?
    })
}

/// `log(exp(a) + exp(b))` elementwise for `(n,)` tensors, `−∞` entries allowed.
fn log_add_exp(parts: &[&Tensor]) -> Result<Tensor> {
    Ok(logsumexp(&Tensor::stack(parts, 0)?, 0)?)
}

/// Stable flow matching of order `q` (spec section 5):
///
/// `L_q = vol(S) · (1/|ν|) Σ_{s∈ν} |r(s)|^q`, with `r` the residual of
/// `f_init + h = R + g` chosen by [`FmResidual`] (by default `r = t − R`).
///
/// Because `∫ t dλ = Z_init` whatever the weights, only `log Z_init` can fix the total
/// mass: build the model with `learn_log_z = true` (and give `log Z_init` its own,
/// larger learning rate, or initialize it from the mean reward); with `Z_init` fixed
/// the loss can reach 0 only if `∫ R dλ = Z_init`. A constant outflow (a circulation)
/// leaves every residual unchanged, so this loss does not make `∫ g` grow.
///
/// `nu_train`: non-empty `(n, ambient_dim)` training points (uniform, or see
/// [`sample_nu_train`](crate::sample_nu_train)); `reward`: `log R`, `−∞` where `R = 0`
/// (then `R = 0` enters the residual exactly). The gradient is exact (no sampling).
///
/// Terms: `stable_fm` (the loss), `l1_residual` (`vol · mean |t − R|`, an estimate of
/// `∫ |t − R| dλ`), `log_z_init`. Counts: `nu_train`; device counts:
/// `nu_train_t_negative`, `reward_zero` (points with `R = 0`).
pub fn stable_fm(
    model: &FlowModel,
    reward: &dyn RewardFn,
    nu_train: &Tensor,
    config: &StableFmConfig,
) -> Result<LossValue> {
    config.validate()?;
    let (manifold, dtype) = (model.manifold(), model.dtype());
    let n = check_points(nu_train, manifold, dtype, "nu_train")?;
    let log_r = eval_log_reward(reward, nu_train, n, dtype)?;
    let terms = model.evaluate(nu_train)?;
    let r_density = log_r.exp()?;
    let plain = (&terms.t - &r_density)?;
    let residual = match config.residual {
        FmResidual::Absolute => plain.clone(),
        FmResidual::Relative { epsilon } => {
            let inflow = terms.h.broadcast_add(&terms.log_f_init.exp()?)?;
            let total = ((&inflow + &r_density)? + &terms.g)?;
            (&plain / (total + epsilon)?)?
        }
        FmResidual::Log { epsilon } => {
            if epsilon > 0.0 {
                let log_eps = log_r.ones_like()?.affine(0.0, epsilon.ln())?;
                (log_add_exp(&[&terms.log_total_flow, &log_eps])? - log_add_exp(&[&log_r, &terms.log_g, &log_eps])?)?
            } else {
                (&terms.log_total_flow - log_add_exp(&[&log_r, &terms.log_g])?)?
            }
        }
    };
    let vol = manifold.volume();
    let loss = (abs_pow(&residual, config.q)?.mean_all()? * vol)?;
    let l1 = (plain.detach().abs()?.mean_all()? * vol)?;
    let negative = terms.t.lt(0.0)?.to_dtype(dtype)?.sum_all()?;
    let zero = log_r.eq(f64::NEG_INFINITY)?.to_dtype(dtype)?.sum_all()?;
    let log_z = terms.log_f_init.squeeze(0)?.affine(1.0, manifold.log_volume())?;
    Ok(LossValue::new(loss.clone())
        .with_term("stable_fm", &loss)
        .with_term("l1_residual", &l1)
        .with_term("log_z_init", &log_z)
        .with_count("nu_train", n)
        .with_device_count("nu_train_t_negative", &negative)
        .with_device_count("reward_zero", &zero))
}

/// Settings of [`divergence_fm`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DivergenceFmConfig {
    /// Move cap `T_max` of the sampled trajectories (default 100).
    #[serde(default = "default_max_moves")]
    pub max_moves: usize,
    /// `λ ≥ 0`, the weight of the outflow regularizer `Σ_t g(s_t)²` (default 0: the
    /// unregularized loss, whose flow mass grows without bound).
    #[serde(default)]
    pub outflow_penalty: f64,
}

fn default_max_moves() -> usize {
    100
}

impl Default for DivergenceFmConfig {
    fn default() -> Self {
        Self { max_moves: default_max_moves(), outflow_penalty: 0.0 }
    }
}

/// Divergence flow matching along on-policy trajectories (spec section 5), kept to
/// show its instability:
///
/// `L = (1/B) Σ_b Σ_{s ∈ τ_b} [ log²( (f_init + h)(s) / (g + R)(s) ) + λ g(s)² ]`,
///
/// summed over every state `s_0 … s_L` of each trajectory. Draws `n` trajectories of
/// the model's sampler (detached: the gradient does not flow through the sampling
/// law), then calls [`divergence_fm_on`]. Without the regularizer (`λ = 0`) the loss
/// at a state only compares inflow and outflow in ratio, so a growing circulation
/// (`g` and `h` large together) drives every term to 0: `∫ g` and the trajectory
/// length grow without bound on an ergodic family.
pub fn divergence_fm<R: Rng + ?Sized>(
    model: &FlowModel,
    reward: &dyn RewardFn,
    n: usize,
    config: &DivergenceFmConfig,
    rng: &mut R,
) -> Result<LossValue> {
    check_nonnegative("outflow_penalty", config.outflow_penalty)?;
    if n == 0 {
        return Err(LossError::EmptyBatch { what: "trajectories".into(), unit: "trajectories" });
    }
    let sampler = SamplerConfig { max_moves: config.max_moves, defensive_weight: 0.0, record_trajectories: true };
    let out = egf_flow::sample(model, n, &sampler, rng)?;
    let traj =
        out.trajectories.ok_or_else(|| LossError::input("trajectories", "the sampler recorded no trajectories"))?;
    divergence_fm_on(model, reward, &traj, config)
}

/// [`divergence_fm`] on given trajectories (their states are detached and evaluated
/// with gradients). Terms: `divergence_fm` (the `log²` part), `outflow_penalty`
/// (`(1/B) Σ g²`, unweighted), `mean_moves`. Counts: `trajectories`, `states`, `truncated`.
pub fn divergence_fm_on(
    model: &FlowModel,
    reward: &dyn RewardFn,
    traj: &Trajectories,
    config: &DivergenceFmConfig,
) -> Result<LossValue> {
    check_nonnegative("outflow_penalty", config.outflow_penalty)?;
    let b = traj.len();
    if b == 0 {
        return Err(LossError::EmptyBatch { what: "trajectories".into(), unit: "trajectories" });
    }
    let (manifold, dtype) = (model.manifold(), model.dtype());
    let states = traj.states.detach();
    let m = check_points(&states, manifold, dtype, "trajectories.states")?;
    let log_r = eval_log_reward(reward, &states, m, dtype)?;
    let terms = model.evaluate(&states)?;
    let log_ratio = (&terms.log_total_flow - log_add_exp(&[&terms.log_g, &log_r])?)?;
    let divergence = (log_ratio.sqr()?.sum_all()? / b as f64)?;
    let penalty = (terms.g.sqr()?.sum_all()? / b as f64)?;
    let loss = if config.outflow_penalty > 0.0 {
        (&divergence + (&penalty * config.outflow_penalty)?)?
    } else {
        divergence.clone()
    };
    let mean_moves = (m - b) as f64 / b as f64;
    Ok(LossValue::new(loss)
        .with_term("divergence_fm", &divergence)
        .with_term("outflow_penalty", &penalty)
        .with_term("mean_moves", &host_scalar(mean_moves, dtype, model.device())?)
        .with_count("trajectories", b)
        .with_count("states", m)
        .with_count("truncated", traj.truncated_count()))
}
