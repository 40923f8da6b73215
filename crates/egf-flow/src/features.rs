//! Input features of the networks.
//!
//! On the torus the networks must be continuous (periodic) functions of `x`,
//! so they see Fourier features `sin(2π k·x)`, `cos(2π k·x)` for a set of integer
//! frequency vectors `k`; on the sphere they see the raw unit vector.

use candle_core::Tensor;
use egf_manifold::tensor_util::tensor_from_f64;
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::{FlowError, Result};

/// Which integer frequency vectors the torus Fourier features use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrequencySet {
    /// `k = m e_j` for `m = 1 … K` and each axis `j`: `d · K` vectors.
    Axes,
    /// Every nonzero `k ∈ Z^d` with `‖k‖_∞ ≤ K`, one of each `±k` pair: `((2K+1)^d − 1)/2` vectors.
    #[default]
    Full,
}

/// Feature configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Largest frequency `K` of the torus features (ignored on the sphere).
    #[serde(default = "default_max_frequency")]
    pub max_frequency: usize,
    /// Which frequency vectors to use on the torus.
    #[serde(default)]
    pub frequencies: FrequencySet,
}

fn default_max_frequency() -> usize {
    4
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self { max_frequency: default_max_frequency(), frequencies: FrequencySet::Full }
    }
}

/// The feature map `x ↦ φ(x)` of one manifold, ready to apply to batches.
#[derive(Clone, Debug)]
pub struct FeatureMap {
    manifold: Manifold,
    /// Frequency vectors as rows, `(m, d)`, torus only.
    frequencies: Vec<Vec<f64>>,
}

impl FeatureMap {
    /// Builds the features of `config` on `manifold`.
    pub fn new(manifold: Manifold, config: &FeatureConfig) -> Result<Self> {
        let frequencies = match manifold {
            Manifold::Sphere { .. } => vec![],
            Manifold::Torus { dim } => {
                let k = config.max_frequency;
                if k == 0 {
                    return Err(FlowError::InvalidConfig {
                        field: "features.max_frequency".into(),
                        reason: "must be ≥ 1 on the torus".into(),
                    });
                }
                match config.frequencies {
                    FrequencySet::Axes => (0..dim)
                        .flat_map(|j| {
                            (1..=k).map(move |m| {
                                let mut v = vec![0.0; dim];
                                v[j] = m as f64;
                                v
                            })
                        })
                        .collect(),
                    FrequencySet::Full => {
                        let side = 2 * k + 1;
                        let total = side.checked_pow(dim as u32).filter(|t| *t <= 20_001).ok_or_else(|| {
                            FlowError::InvalidConfig {
                                field: "features.max_frequency".into(),
                                reason: format!(
                                    "(2K+1)^d = {side}^{dim} frequency vectors is too many; use frequencies = \"axes\""
                                ),
                            }
                        })?;
                        (0..total)
                            .map(|code| {
                                let mut c = code;
                                (0..dim)
                                    .map(|_| {
                                        let v = (c % side) as f64 - k as f64;
                                        c /= side;
                                        v
                                    })
                                    .collect::<Vec<f64>>()
                            })
                            // keep the lexicographically positive half: first nonzero entry > 0
                            .filter(|v| v.iter().find(|x| **x != 0.0).is_some_and(|x| *x > 0.0))
                            .collect()
                    }
                }
            }
        };
        Ok(Self { manifold, frequencies })
    }

    /// Number of features per point.
    pub fn dim(&self) -> usize {
        match self.manifold {
            Manifold::Sphere { .. } => self.manifold.ambient_dim(),
            Manifold::Torus { .. } => 2 * self.frequencies.len(),
        }
    }

    /// `φ(x)` for a batch `(n, ambient_dim)` → `(n, dim())`: on the torus
    /// `[sin(2π x Kᵀ), cos(2π x Kᵀ)]`, on the sphere `x` itself.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self.manifold {
            Manifold::Sphere { .. } => Ok(x.clone()),
            Manifold::Torus { dim } => {
                let m = self.frequencies.len();
                // Kᵀ scaled by 2π, row-major (d, m)
                let data: Vec<f64> =
                    (0..dim).flat_map(|j| self.frequencies.iter().map(move |k| std::f64::consts::TAU * k[j])).collect();
                let kt = tensor_from_f64(data, &[dim, m], x.dtype(), x.device())?;
                let phase = x.matmul(&kt)?;
                Ok(Tensor::cat(&[phase.sin()?, phase.cos()?], 1)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn torus_features_are_periodic_and_sized() {
        let t = Manifold::torus(2).unwrap();
        let f = FeatureMap::new(t, &FeatureConfig { max_frequency: 3, frequencies: FrequencySet::Full }).unwrap();
        assert_eq!(f.dim(), 2 * 24);
        let fa = FeatureMap::new(t, &FeatureConfig { max_frequency: 3, frequencies: FrequencySet::Axes }).unwrap();
        assert_eq!(fa.dim(), 12);
        let a = Tensor::new(&[[0.1f64, 0.7]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1.1f64, -0.3]], &Device::Cpu).unwrap();
        let (fa1, fb1) = (f.apply(&a).unwrap(), f.apply(&b).unwrap());
        let diff: f64 = (fa1 - fb1).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-12);
        let s = FeatureMap::new(Manifold::sphere(2).unwrap(), &FeatureConfig::default()).unwrap();
        assert_eq!(s.dim(), 3);
    }
}
