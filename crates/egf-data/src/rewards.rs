//! Rewards for reinforcement learning: unnormalized target densities `R ≥ 0`.
//!
//! The law a sampler trained on a reward should reach is `R / Z` with `Z = ∫ R dλ`
//! (`λ` the manifold's reference measure); [`Reward::normalizer`] gives `Z` where it is known
//! in closed form, so that learned densities can be scored exactly.
//!
//! | name | type | manifold | `R(x)` | `Z` |
//! |---|---|---|---|---|
//! | `checkerboard` | [`CheckerboardReward`] | `T^2` | 1 on black cells, `floor` on white ones (default `k = 4`, `floor = 0`) | `(1 + floor)/2` |
//! | `vmf_mixture` | [`VmfMixtureReward`] | `S^2` | `Σ_c w_c e^{κ_c (μ_c·x − 1)}` (default [`default_vmf_components`]) | `Σ_c w_c 2π (1 − e^{−2κ_c})/κ_c` |
//! | `density` | [`DensityReward`] | any | `scale · p(x)` of a [`Target`] | `scale` |
//!
//! [`RewardSpec::normalized_target`] gives the target whose density is `R / Z` where one
//! exists (every `density` reward, the checkerboard with `floor = 0`, every vMF mixture),
//! so that losses needing exact samples of `R / Z` (forward KL) can run on these rewards.

use std::fmt;

use candle_core::Tensor;
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::targets::{
    default_vmf_components, vmf_unnormalized_mass, Checkerboard, Target, TargetSpec, VmfComponent, VmfTerms,
};
use crate::{DataError, Result};

/// An unnormalized density `R ≥ 0` on a manifold (a reward for reinforcement learning).
///
/// `log R` is `−∞` where `R = 0` (e.g. the white cells of a checkerboard with floor 0);
/// callers that need finite values must guard against it.
pub trait Reward: fmt::Debug + Send + Sync {
    /// The manifold the reward lives on.
    fn manifold(&self) -> Manifold;

    /// `R(x) ≥ 0` for one point of `ambient_dim` coordinates (`NaN` for another number of coordinates).
    fn reward_f64(&self, x: &[f64]) -> f64;

    /// `log R(x)`, `−∞` where `R(x) = 0`.
    fn log_reward_f64(&self, x: &[f64]) -> f64 {
        self.reward_f64(x).ln()
    }

    /// Batched `R`: an `(n, ambient_dim)` tensor (any device, `f32` or `f64`) to `(n,)`.
    fn reward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.log_reward(x)?.exp()?)
    }

    /// Batched `log R`: `(n, ambient_dim)` to `(n,)`, `−∞` where `R = 0`.
    fn log_reward(&self, x: &Tensor) -> Result<Tensor>;

    /// `Z = ∫ R dλ` when it is known in closed form.
    fn normalizer(&self) -> Option<f64>;
}

/// The checkerboard reward on `T^2`: `R = 1` on the black cells of the `k × k` board of
/// [`Checkerboard`] and `R = floor ≥ 0` on the white cells. `Z = (1 + floor) / 2`; with
/// `floor = 0`, `R / Z` is the [`Checkerboard`] target density.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerboardReward {
    board: Checkerboard,
    floor: f64,
}

impl CheckerboardReward {
    /// The board of `cells × cells` cells (even, ≥ 2) with white-cell reward `floor ∈ [0, 1]`.
    pub fn new(cells: usize, floor: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&floor) {
            return Err(DataError::invalid("checkerboard floor", format!("{floor} is outside [0, 1]")));
        }
        Ok(Self { board: Checkerboard::new(cells)?, floor })
    }

    /// The white-cell reward.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// The board.
    pub fn board(&self) -> &Checkerboard {
        &self.board
    }
}

impl Reward for CheckerboardReward {
    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: 2 }
    }

    fn reward_f64(&self, x: &[f64]) -> f64 {
        match x.len() {
            2 if self.board.is_black(x) => 1.0,
            2 => self.floor,
            _ => f64::NAN,
        }
    }

    fn reward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.board.black_indicator(x)?.affine(1.0 - self.floor, self.floor)?)
    }

    fn log_reward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.reward(x)?.log()?)
    }

    fn normalizer(&self) -> Option<f64> {
        Some(0.5 * (1.0 + self.floor))
    }
}

/// A von Mises–Fisher bump reward on `S^2`,
///
/// `R(x) = Σ_c w_c e^{κ_c (μ_c·x − 1)} ∈ (0, 1]`   (weights normalized to `Σ w_c = 1`),
///
/// evaluated in log space as `log Σ_c exp(log w_c − κ_c |x − μ_c|² / 2)` (exact for unit `x`).
/// Each bump has height `w_c` at its mode. `Z = Σ_c w_c 2π (1 − e^{−2κ_c}) / κ_c`.
#[derive(Clone, Debug, PartialEq)]
pub struct VmfMixtureReward {
    terms: VmfTerms,
}

impl VmfMixtureReward {
    /// The reward of `components` (same rules as [`VonMisesFisherMixture`](crate::targets::VonMisesFisherMixture::new)).
    pub fn new(components: Vec<VmfComponent>) -> Result<Self> {
        Ok(Self { terms: VmfTerms::new(components, |_| 0.0)? })
    }

    /// The components, with normalized weights.
    pub fn components(&self) -> &[VmfComponent] {
        &self.terms.components
    }
}

impl Reward for VmfMixtureReward {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere { dim: 2 }
    }

    fn reward_f64(&self, x: &[f64]) -> f64 {
        self.terms.log_sum_f64(x).exp()
    }

    fn log_reward_f64(&self, x: &[f64]) -> f64 {
        self.terms.log_sum_f64(x)
    }

    fn log_reward(&self, x: &Tensor) -> Result<Tensor> {
        self.terms.log_sum(x)
    }

    fn normalizer(&self) -> Option<f64> {
        Some(self.terms.components.iter().map(|c| c.weight * vmf_unnormalized_mass(c.kappa)).sum())
    }
}

/// A [`Target`] used as a reward: `R = scale · p`, `Z = scale`.
#[derive(Debug)]
pub struct DensityReward {
    target: Box<dyn Target>,
    log_scale: f64,
}

impl DensityReward {
    /// `R = scale · p` for the density `p` of `target` (`scale` finite and > 0).
    pub fn new(target: Box<dyn Target>, scale: f64) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(DataError::invalid("density reward scale", format!("{scale} must be finite and > 0")));
        }
        Ok(Self { target, log_scale: scale.ln() })
    }

    /// The target whose density is the reward.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }
}

impl Reward for DensityReward {
    fn manifold(&self) -> Manifold {
        self.target.manifold()
    }

    fn reward_f64(&self, x: &[f64]) -> f64 {
        self.log_reward_f64(x).exp()
    }

    fn log_reward_f64(&self, x: &[f64]) -> f64 {
        self.target.log_density_f64(x) + self.log_scale
    }

    fn log_reward(&self, x: &Tensor) -> Result<Tensor> {
        Ok((self.target.log_density(x)? + self.log_scale)?)
    }

    fn normalizer(&self) -> Option<f64> {
        Some(self.log_scale.exp())
    }
}

/// Names and parameters of a [`Reward`] for configuration files (serde, tagged by `kind`;
/// omitted parameters take the defaults in the [module table](self)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardSpec {
    /// [`CheckerboardReward`].
    Checkerboard {
        /// Cells per axis (even, default 4).
        #[serde(default = "default_cells")]
        cells: usize,
        /// White-cell reward (default 0).
        #[serde(default)]
        floor: f64,
    },
    /// [`VmfMixtureReward`].
    VmfMixture {
        /// The components (default [`default_vmf_components`]).
        #[serde(default = "default_vmf_components")]
        components: Vec<VmfComponent>,
    },
    /// [`DensityReward`] of a target.
    Density {
        /// The target.
        target: TargetSpec,
        /// The factor `scale` (default 1).
        #[serde(default = "default_scale")]
        scale: f64,
    },
}

impl RewardSpec {
    /// The reward `name` with default parameters: `checkerboard` or `vmf_mixture`, or else
    /// the name of a target ([`TargetSpec::NAMES`]) for its [`DensityReward`] with scale 1.
    pub fn default_for(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "checkerboard" => RewardSpec::Checkerboard { cells: default_cells(), floor: 0.0 },
            "vmf_mixture" => RewardSpec::VmfMixture { components: default_vmf_components() },
            other => match TargetSpec::default_for(other) {
                Ok(target) => RewardSpec::Density { target, scale: 1.0 },
                Err(_) => {
                    return Err(DataError::UnknownName {
                        what: "reward",
                        name: name.into(),
                        expected: format!(
                            "checkerboard, vmf_mixture, or a target name ({})",
                            TargetSpec::NAMES.join(", ")
                        ),
                    })
                }
            },
        })
    }

    /// Builds the reward, validating the parameters.
    pub fn build(&self) -> Result<Box<dyn Reward>> {
        Ok(match self {
            RewardSpec::Checkerboard { cells, floor } => Box::new(CheckerboardReward::new(*cells, *floor)?),
            RewardSpec::VmfMixture { components } => Box::new(VmfMixtureReward::new(components.clone())?),
            RewardSpec::Density { target, scale } => Box::new(DensityReward::new(target.build()?, *scale)?),
        })
    }

    /// The registered target whose density is exactly `R / Z`, with `Z = ∫ R dλ`, when
    /// there is one, so that the normalized reward can be sampled exactly (forward KL
    /// and the α-mixture of spec section 6 need target samples):
    ///
    /// * `density`: its target, `Z = scale`;
    /// * `checkerboard` with `floor = 0`: the [`Checkerboard`] target of the same board
    ///   (density 2 on the black cells), `Z = 1/2`; with `floor > 0`, `R / Z` is a
    ///   mixture with the uniform density that no registered target offers: `None`;
    /// * `vmf_mixture`: `R = Σ_c w_c e^{κ_c (μ_c·x − 1)} = Σ_c w_c m(κ_c) vMF_c(x)` with
    ///   `m(κ) = 2π (1 − e^{−2κ})/κ` (the mass of one bump), so `R / Z` is the vMF mixture
    ///   target with weights `w_c m(κ_c)` and `Z = Σ_c w_c m(κ_c)` (`w` normalized).
    ///
    /// Errors when the spec itself is invalid (as [`build`](Self::build)).
    pub fn normalized_target(&self) -> Result<Option<(TargetSpec, f64)>> {
        let reward = self.build()?;
        Ok(match self {
            RewardSpec::Density { target, scale } => Some((target.clone(), *scale)),
            RewardSpec::Checkerboard { cells, floor } if *floor == 0.0 => {
                Some((TargetSpec::Checkerboard { cells: *cells }, 0.5))
            }
            RewardSpec::Checkerboard { .. } => None,
            RewardSpec::VmfMixture { components } => {
                let total: f64 = components.iter().map(|c| c.weight).sum();
                let reweighted = components
                    .iter()
                    .map(|c| VmfComponent { weight: c.weight / total * vmf_unnormalized_mass(c.kappa), ..c.clone() })
                    .collect();
                let z = reward.normalizer().unwrap_or(f64::NAN);
                Some((TargetSpec::VmfMixture { components: reweighted }, z))
            }
        })
    }
}

/// The reward `name` with its default parameters (see [`RewardSpec::default_for`]).
pub fn reward_by_name(name: &str) -> Result<Box<dyn Reward>> {
    RewardSpec::default_for(name)?.build()
}

fn default_cells() -> usize {
    4
}

fn default_scale() -> f64 {
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use egf_manifold::tensor_util::{tensor_from_f64, tensor_to_f64_rows};
    use egf_manifold::QuadratureGrid;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn normalizers_match_quadrature() {
        let t2 = Manifold::torus(2).unwrap();
        let cases: Vec<(Box<dyn Reward>, QuadratureGrid, f64)> = vec![
            (Box::new(CheckerboardReward::new(4, 0.1).unwrap()), QuadratureGrid::new(t2, 64).unwrap(), 1e-12),
            (reward_by_name("checkerboard").unwrap(), QuadratureGrid::new(t2, 64).unwrap(), 1e-12),
            (reward_by_name("vmf_mixture").unwrap(), QuadratureGrid::sphere_gauss_legendre(128).unwrap(), 1e-12),
            (reward_by_name("rings").unwrap(), QuadratureGrid::new(t2, 512).unwrap(), 1e-10),
        ];
        for (reward, grid, tol) in cases {
            let z = reward.normalizer().unwrap();
            let q = grid.integrate_f64(|x| reward.reward_f64(x));
            assert!((q / z - 1.0).abs() < tol, "{reward:?}: {q} vs {z}");
        }
        let scaled = RewardSpec::Density { target: TargetSpec::default_for("fine").unwrap(), scale: 3.0 };
        let r = scaled.build().unwrap();
        let q = QuadratureGrid::new(t2, 64).unwrap().integrate_f64(|x| r.reward_f64(x));
        assert!((q - 3.0).abs() < 1e-12 && (r.normalizer().unwrap() - 3.0).abs() < 1e-14);
    }

    #[test]
    fn batched_rewards_match_the_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for name in ["checkerboard", "vmf_mixture", "wrapped_gaussians"] {
            let reward = reward_by_name(name).unwrap();
            let m = reward.manifold();
            let c = m.ambient_dim();
            let pts: Vec<f64> = (0..400).flat_map(|_| m.sample_uniform_f64(&mut rng)).collect();
            for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
                let x = tensor_from_f64(pts.clone(), &[400, c], dtype, &Device::Cpu).unwrap();
                let (rounded, _, _) = tensor_to_f64_rows(&x).unwrap();
                let r = reward.reward(&x).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
                let lr = reward.log_reward(&x).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
                for i in 0..400 {
                    let p = &rounded[i * c..(i + 1) * c];
                    let (r0, lr0) = (reward.reward_f64(p), reward.log_reward_f64(p));
                    assert!(r0 >= 0.0 && (r[i] - r0).abs() <= tol * r0.max(1e-300), "{name} row {i}: {} vs {r0}", r[i]);
                    if lr0 == f64::NEG_INFINITY {
                        assert_eq!(lr[i], f64::NEG_INFINITY);
                    } else {
                        assert!((lr[i] - lr0).abs() <= tol * lr0.abs().max(1.0), "{name} row {i}: {} vs {lr0}", lr[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn checkerboard_and_vmf_reward_values() {
        let r = CheckerboardReward::new(4, 0.0).unwrap();
        assert_eq!(r.reward_f64(&[0.1, 0.1]), 1.0);
        assert_eq!(r.reward_f64(&[0.3, 0.1]), 0.0);
        assert_eq!(r.log_reward_f64(&[0.3, 0.1]), f64::NEG_INFINITY);
        assert!(CheckerboardReward::new(4, -0.1).is_err() && CheckerboardReward::new(5, 0.0).is_err());
        let v = VmfMixtureReward::new(vec![
            VmfComponent { weight: 3.0, lat: 90.0, lon: 0.0, kappa: 1e6 },
            VmfComponent { weight: 1.0, lat: -90.0, lon: 0.0, kappa: 2.0 },
        ])
        .unwrap();
        // at the north pole: 0.75 + 0.25 e^{−4}
        assert!((v.reward_f64(&[0.0, 0.0, 1.0]) - (0.75 + 0.25 * (-4.0f64).exp())).abs() < 1e-15);
        assert!((v.reward_f64(&[0.0, 0.0, -1.0]) - 0.25).abs() < 1e-15);
        let err = reward_by_name("treasure").unwrap_err().to_string();
        assert!(err.contains("treasure") && err.contains("checkerboard"), "{err}");
    }

    /// `Z · p(x)` of the normalized target equals `R(x)`, and `Z` is the reward's mass.
    #[test]
    fn normalized_targets_are_the_reward_over_its_mass() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let specs = [
            RewardSpec::default_for("checkerboard").unwrap(),
            RewardSpec::Checkerboard { cells: 6, floor: 0.0 },
            RewardSpec::default_for("vmf_mixture").unwrap(),
            RewardSpec::Density { target: TargetSpec::default_for("rings").unwrap(), scale: 0.3 },
        ];
        for spec in specs {
            let reward = spec.build().unwrap();
            let (target, z) = spec.normalized_target().unwrap().unwrap();
            let target = target.build().unwrap();
            assert!((z - reward.normalizer().unwrap()).abs() < 1e-14 * z, "{spec:?}: {z}");
            let m = reward.manifold();
            assert_eq!(target.manifold(), m);
            for _ in 0..500 {
                let x = m.sample_uniform_f64(&mut rng);
                let (r, p) = (reward.reward_f64(&x), target.density_f64(&x));
                assert!((z * p - r).abs() <= 1e-12 * r.max(1e-12), "{spec:?} at {x:?}: {} vs {r}", z * p);
            }
        }
        assert_eq!(RewardSpec::Checkerboard { cells: 4, floor: 0.1 }.normalized_target().unwrap(), None);
        assert!(RewardSpec::Checkerboard { cells: 5, floor: 0.0 }.normalized_target().is_err());
    }

    #[test]
    fn reward_specs_from_toml() {
        let spec: RewardSpec = toml::from_str("kind = \"checkerboard\"\nfloor = 0.05").unwrap();
        assert_eq!(spec, RewardSpec::Checkerboard { cells: 4, floor: 0.05 });
        let spec: RewardSpec = toml::from_str("kind = \"density\"\n[target]\nkind = \"fine\"\nfrequency = 3").unwrap();
        assert_eq!(spec, RewardSpec::Density { target: TargetSpec::Fine { frequency: 3, amplitude: 0.9 }, scale: 1.0 });
        assert!(toml::from_str::<RewardSpec>("kind = \"checkerboard\"\nflor = 0.05").is_err());
        assert!(toml::from_str::<RewardSpec>("kind = \"density\"").is_err());
    }
}
