//! Input features of the networks.
//!
//! On the torus the networks must be continuous (periodic) functions of `x`,
//! so they see Fourier features `sin(2π k·x)`, `cos(2π k·x)` for a set of integer
//! frequency vectors `k`. On the sphere they see the unit vector `x ∈ R^(d+1)`,
//! optionally followed by positional-encoding octaves `sin(2^l π x_j)`,
//! `cos(2^l π x_j)` of its ambient coordinates (continuous functions on `S^d`,
//! since they are functions of the embedding). An MLP of the raw vector learns
//! sharp densities slowly (it is biased towards low frequencies); the octaves
//! give its first layer features with periods down to `2^(2−L)` in the ambient coordinates.

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
    /// Number `L` of positional-encoding octaves on the sphere: the features are
    /// `x`, then `sin(2^l π x_j)`, `cos(2^l π x_j)` for `l = 0 … L−1` and every
    /// ambient coordinate `j` (`(d+1)(1 + 2L)` inputs). `0` (the default, the
    /// paper's network) feeds the unit vector alone. Only valid on the sphere.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sphere_octaves: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Largest accepted [`FeatureConfig::sphere_octaves`]: `2^(L−1) π` beyond
/// `2^15 π` resolves nothing an `f32` coordinate can tell apart.
pub const MAX_SPHERE_OCTAVES: usize = 16;

fn default_max_frequency() -> usize {
    4
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self { max_frequency: default_max_frequency(), frequencies: FrequencySet::Full, sphere_octaves: 0 }
    }
}

/// The feature map `x ↦ φ(x)` of one manifold, ready to apply to batches.
#[derive(Clone, Debug)]
pub struct FeatureMap {
    manifold: Manifold,
    /// Frequency vectors as rows, `(m, d)`, torus only.
    frequencies: Vec<Vec<f64>>,
    /// Positional-encoding octaves `L`, sphere only.
    sphere_octaves: usize,
}

impl FeatureMap {
    /// Builds the features of `config` on `manifold`.
    pub fn new(manifold: Manifold, config: &FeatureConfig) -> Result<Self> {
        let frequencies = match manifold {
            Manifold::Sphere { .. } => {
                if config.sphere_octaves > MAX_SPHERE_OCTAVES {
                    return Err(FlowError::InvalidConfig {
                        field: "features.sphere_octaves".into(),
                        reason: format!(
                            "{} is more than the largest useful {MAX_SPHERE_OCTAVES}",
                            config.sphere_octaves
                        ),
                    });
                }
                vec![]
            }
            Manifold::Torus { dim } => {
                if config.sphere_octaves != 0 {
                    return Err(FlowError::InvalidConfig {
                        field: "features.sphere_octaves".into(),
                        reason: format!(
                            "applies to the sphere only; the torus features are set by max_frequency (got {})",
                            config.sphere_octaves
                        ),
                    });
                }
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
        let sphere_octaves = config.sphere_octaves;
        Ok(Self { manifold, frequencies, sphere_octaves })
    }

    /// Number of features per point.
    pub fn dim(&self) -> usize {
        match self.manifold {
            Manifold::Sphere { .. } => self.manifold.ambient_dim() * (1 + 2 * self.sphere_octaves),
            Manifold::Torus { .. } => 2 * self.frequencies.len(),
        }
    }

    /// `φ(x)` for a batch `(n, ambient_dim)` → `(n, dim())`: on the torus
    /// `[sin(2π x Kᵀ), cos(2π x Kᵀ)]`, on the sphere `x` itself followed by
    /// `[sin(π x Ωᵀ), cos(π x Ωᵀ)]` with `Ω = (I, 2I, …, 2^(L−1) I)` when
    /// `L = sphere_octaves > 0` (octave-major: the columns of octave `l` are
    /// `2^l π x_0 … 2^l π x_d`).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self.manifold {
            Manifold::Sphere { .. } if self.sphere_octaves == 0 => Ok(x.clone()),
            Manifold::Sphere { .. } => {
                let n = self.manifold.ambient_dim();
                let m = n * self.sphere_octaves;
                // (n, n·L): block l is 2^l π I
                let mut data = vec![0.0; n * m];
                for l in 0..self.sphere_octaves {
                    let scale = std::f64::consts::PI * (1u64 << l) as f64;
                    for j in 0..n {
                        data[j * m + l * n + j] = scale;
                    }
                }
                let omega_t = tensor_from_f64(data, &[n, m], x.dtype(), x.device())?;
                let phase = x.matmul(&omega_t)?;
                Ok(Tensor::cat(&[x.clone(), phase.sin()?, phase.cos()?], 1)?)
            }
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
        let f =
            FeatureMap::new(t, &FeatureConfig { max_frequency: 3, frequencies: FrequencySet::Full, sphere_octaves: 0 })
                .unwrap();
        assert_eq!(f.dim(), 2 * 24);
        let fa =
            FeatureMap::new(t, &FeatureConfig { max_frequency: 3, frequencies: FrequencySet::Axes, sphere_octaves: 0 })
                .unwrap();
        assert_eq!(fa.dim(), 12);
        let a = Tensor::new(&[[0.1f64, 0.7]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1.1f64, -0.3]], &Device::Cpu).unwrap();
        let (fa1, fb1) = (f.apply(&a).unwrap(), f.apply(&b).unwrap());
        let diff: f64 = (fa1 - fb1).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-12);
        let s = FeatureMap::new(Manifold::sphere(2).unwrap(), &FeatureConfig::default()).unwrap();
        assert_eq!(s.dim(), 3);
    }

    #[test]
    fn sphere_octaves_are_the_positional_encoding_of_the_ambient_coordinates() {
        let sphere = Manifold::sphere(2).unwrap();
        let config = FeatureConfig { sphere_octaves: 3, ..FeatureConfig::default() };
        let f = FeatureMap::new(sphere, &config).unwrap();
        assert_eq!(f.dim(), 3 * 7);
        let x = [0.48f64, -0.6, 0.64];
        let got: Vec<f64> =
            f.apply(&Tensor::new(&[x], &Device::Cpu).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.len(), 21);
        let mut want = x.to_vec();
        let phases: Vec<f64> =
            (0..3).flat_map(|l| x.iter().map(move |xj| std::f64::consts::PI * 2f64.powi(l) * xj)).collect();
        want.extend(phases.iter().map(|p| p.sin()));
        want.extend(phases.iter().map(|p| p.cos()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-12, "feature {i}: {g} vs {w}");
        }
    }

    #[test]
    fn sphere_octaves_are_rejected_on_the_torus_and_when_too_many() {
        let config = FeatureConfig { sphere_octaves: 2, ..FeatureConfig::default() };
        let err = FeatureMap::new(Manifold::torus(2).unwrap(), &config).unwrap_err().to_string();
        assert!(err.contains("features.sphere_octaves") && err.contains("sphere only"), "{err}");
        let config = FeatureConfig { sphere_octaves: MAX_SPHERE_OCTAVES + 1, ..FeatureConfig::default() };
        let err = FeatureMap::new(Manifold::sphere(2).unwrap(), &config).unwrap_err().to_string();
        assert!(err.contains("features.sphere_octaves"), "{err}");
    }
}
