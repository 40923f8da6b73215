//! Toy target distributions with exact log-densities and exact samplers.
//!
//! Every density is taken w.r.t. the manifold's reference measure `λ` (spec section 1):
//! Lebesgue measure on `T^d` (volume 1), surface measure on `S^2` (volume `4π`).
//!
//! | name | type | manifold | default parameters |
//! |---|---|---|---|
//! | `checkerboard` | [`Checkerboard`] | `T^2` | 4 × 4 cells |
//! | `wrapped_gaussians` | [`WrappedGaussianMixture`] | `T^d`, `d` = the means' length | the 5 components on `T^2` of [`default_wrapped_gaussians`] |
//! | `rings` | [`Rings`] | `T^2` | centre (0.5, 0.5), radii 0.1, 0.2, 0.3, width 0.02 |
//! | `fine` | [`CosinePattern`] | `T^2` | frequency 8, amplitude 0.9 |
//! | `vmf_mixture` | [`VonMisesFisherMixture`] | `S^2` | the 4 components of [`default_vmf_components`] |
//!
//! A [`TargetSpec`] names a target and its parameters in a configuration file, e.g. in TOML
//! `kind = "rings"` and `radii = [0.15, 0.3]`; omitted fields take the defaults above.

mod checkerboard;
mod cosine;
mod rings;
#[cfg(test)]
mod tests;
mod vmf;
mod wrapped_gaussians;

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use egf_manifold::tensor_util::tensor_from_f64;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

pub use checkerboard::Checkerboard;
pub use cosine::CosinePattern;
pub use rings::Rings;
pub(crate) use vmf::VmfTerms;
pub use vmf::{
    sample_vmf_s2, vmf_log_normalizer, vmf_unnormalized_mass, VmfComponent, VonMisesFisherMixture, MAX_KAPPA,
};
pub use wrapped_gaussians::{WrappedGaussianComponent, WrappedGaussianMixture, WRAPPED_STD_RANGE};

use crate::{DataError, Result};

/// A probability distribution on a manifold with an exact log-density and an exact sampler.
///
/// Densities are w.r.t. the manifold's reference measure `λ`, so `∫ e^{log_density} dλ = 1`.
/// A log-density may be `−∞` where the density vanishes (the checkerboard's white cells).
pub trait Target: fmt::Debug + Send + Sync {
    /// The registry name of the target's kind (`checkerboard`, `rings`, …).
    fn name(&self) -> &'static str;

    /// The manifold the distribution lives on.
    fn manifold(&self) -> Manifold;

    /// `log p(x)` in nats for one point of `ambient_dim` coordinates (`NaN` for another
    /// number of coordinates). Exact reference, in `f64`.
    fn log_density_f64(&self, x: &[f64]) -> f64;

    /// `p(x) = exp(log p(x))`.
    fn density_f64(&self, x: &[f64]) -> f64 {
        self.log_density_f64(x).exp()
    }

    /// Batched `log p`: an `(n, ambient_dim)` tensor (any device, `f32` or `f64`) to an
    /// `(n,)` tensor of the same dtype and device. Agrees with
    /// [`log_density_f64`](Self::log_density_f64) to rounding in the tensor's dtype.
    fn log_density(&self, x: &Tensor) -> Result<Tensor>;

    /// `n` independent exact draws, row-major `n × ambient_dim` coordinates.
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64>;

    /// `n` exact draws as an `(n, ambient_dim)` tensor of `dtype` on `device` (drawn on the
    /// host from `rng`, so identical on every device for a seed).
    fn sample(&self, n: usize, rng: &mut dyn RngCore, dtype: DType, device: &Device) -> Result<Tensor> {
        let data = self.sample_f64(n, rng);
        Ok(tensor_from_f64(data, &[n, self.manifold().ambient_dim()], dtype, device)?)
    }
}

/// Names and parameters of a [`Target`], for configuration files (serde, tagged by
/// `kind`); every parameter is optional and defaults to the values in the
/// [module table](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    /// [`Checkerboard`] on `T^2`.
    Checkerboard {
        /// Cells per axis (even, default 4).
        #[serde(default = "default_cells")]
        cells: usize,
    },
    /// [`WrappedGaussianMixture`] on `T^d`, `d` the length of the components' means.
    WrappedGaussians {
        /// The components (default [`default_wrapped_gaussians`]).
        #[serde(default = "default_wrapped_gaussians")]
        components: Vec<WrappedGaussianComponent>,
    },
    /// [`Rings`] on `T^2`.
    Rings {
        /// Centre (default `[0.5, 0.5]`).
        #[serde(default = "default_ring_center")]
        center: [f64; 2],
        /// Ring radii (default `[0.1, 0.2, 0.3]`).
        #[serde(default = "default_ring_radii")]
        radii: Vec<f64>,
        /// Ring width `s` (default 0.02).
        #[serde(default = "default_ring_width")]
        width: f64,
    },
    /// [`CosinePattern`] on `T^2`.
    Fine {
        /// Frequency `k` (default 8).
        #[serde(default = "default_frequency")]
        frequency: u32,
        /// Amplitude `a` (default 0.9).
        #[serde(default = "default_amplitude")]
        amplitude: f64,
    },
    /// [`VonMisesFisherMixture`] on `S^2`.
    VmfMixture {
        /// The components (default [`default_vmf_components`]).
        #[serde(default = "default_vmf_components")]
        components: Vec<VmfComponent>,
    },
}

impl TargetSpec {
    /// The registry names, in the order of the [module table](self).
    pub const NAMES: [&'static str; 5] = ["checkerboard", "wrapped_gaussians", "rings", "fine", "vmf_mixture"];

    /// The registry name of this spec's kind.
    pub fn name(&self) -> &'static str {
        match self {
            TargetSpec::Checkerboard { .. } => "checkerboard",
            TargetSpec::WrappedGaussians { .. } => "wrapped_gaussians",
            TargetSpec::Rings { .. } => "rings",
            TargetSpec::Fine { .. } => "fine",
            TargetSpec::VmfMixture { .. } => "vmf_mixture",
        }
    }

    /// The spec of `name` (one of [`NAMES`](Self::NAMES), ASCII case ignored) with its default parameters.
    pub fn default_for(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "checkerboard" => TargetSpec::Checkerboard { cells: default_cells() },
            "wrapped_gaussians" => TargetSpec::WrappedGaussians { components: default_wrapped_gaussians() },
            "rings" => TargetSpec::Rings {
                center: default_ring_center(),
                radii: default_ring_radii(),
                width: default_ring_width(),
            },
            "fine" => TargetSpec::Fine { frequency: default_frequency(), amplitude: default_amplitude() },
            "vmf_mixture" => TargetSpec::VmfMixture { components: default_vmf_components() },
            _ => {
                return Err(DataError::UnknownName {
                    what: "target",
                    name: name.into(),
                    expected: Self::NAMES.join(", "),
                })
            }
        })
    }

    /// The manifold of the target this spec builds.
    pub fn manifold(&self) -> Manifold {
        match self {
            TargetSpec::VmfMixture { .. } => Manifold::Sphere { dim: 2 },
            TargetSpec::WrappedGaussians { components } => {
                Manifold::Torus { dim: components.first().map_or(2, |c| c.mean.len().max(1)) }
            }
            _ => Manifold::Torus { dim: 2 },
        }
    }

    /// Builds the target, validating the parameters.
    pub fn build(&self) -> Result<Box<dyn Target>> {
        Ok(match self {
            TargetSpec::Checkerboard { cells } => Box::new(Checkerboard::new(*cells)?),
            TargetSpec::WrappedGaussians { components } => Box::new(WrappedGaussianMixture::new(components.clone())?),
            TargetSpec::Rings { center, radii, width } => Box::new(Rings::new(*center, radii.clone(), *width)?),
            TargetSpec::Fine { frequency, amplitude } => Box::new(CosinePattern::new(*frequency, *amplitude)?),
            TargetSpec::VmfMixture { components } => Box::new(VonMisesFisherMixture::new(components.clone())?),
        })
    }
}

impl FromStr for TargetSpec {
    type Err = DataError;

    /// [`TargetSpec::default_for`].
    fn from_str(s: &str) -> Result<Self> {
        Self::default_for(s)
    }
}

/// The target `name` (one of [`TargetSpec::NAMES`]) with its default parameters.
pub fn by_name(name: &str) -> Result<Box<dyn Target>> {
    TargetSpec::default_for(name)?.build()
}

fn default_cells() -> usize {
    4
}

/// Default `wrapped_gaussians` components (weight, mean, std): (0.3, (0.25, 0.25), 0.05),
/// (0.2, (0.75, 0.75), 0.05), (0.2, (0.25, 0.75), 0.08), (0.15, (0.75, 0.25), 0.03) and
/// (0.15, (0.02, 0.5), 0.06), the last one straddling the edge `x_1 = 0`.
pub fn default_wrapped_gaussians() -> Vec<WrappedGaussianComponent> {
    [
        (0.3, [0.25, 0.25], 0.05),
        (0.2, [0.75, 0.75], 0.05),
        (0.2, [0.25, 0.75], 0.08),
        (0.15, [0.75, 0.25], 0.03),
        (0.15, [0.02, 0.5], 0.06),
    ]
    .into_iter()
    .map(|(weight, mean, std)| WrappedGaussianComponent { weight, mean: mean.to_vec(), std })
    .collect()
}

fn default_ring_center() -> [f64; 2] {
    [0.5, 0.5]
}

fn default_ring_radii() -> Vec<f64> {
    vec![0.1, 0.2, 0.3]
}

fn default_ring_width() -> f64 {
    0.02
}

fn default_frequency() -> u32 {
    8
}

fn default_amplitude() -> f64 {
    0.9
}

/// Default `vmf_mixture` components (weight, latitude°, longitude°, κ): (0.35, 40, −100, 15),
/// (0.25, −20, 20, 50), (0.25, 10, 120, 100), (0.15, 75, 170, 5).
pub fn default_vmf_components() -> Vec<VmfComponent> {
    [(0.35, 40.0, -100.0, 15.0), (0.25, -20.0, 20.0, 50.0), (0.25, 10.0, 120.0, 100.0), (0.15, 75.0, 170.0, 5.0)]
        .into_iter()
        .map(|(weight, lat, lon, kappa)| VmfComponent { weight, lat, lon, kappa })
        .collect()
}

/// Checks that `x` is an `(n, ambient_dim)` batch of `manifold`.
pub(crate) fn check_batch(manifold: Manifold, x: &Tensor) -> Result<()> {
    Ok(manifold.check_shape(x)?)
}

/// Weights divided by their sum; at least one, each positive and finite.
pub(crate) fn normalized_weights(what: &str, weights: impl Iterator<Item = f64>) -> Result<Vec<f64>> {
    let w: Vec<f64> = weights.collect();
    if w.is_empty() || w.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(DataError::invalid(
            format!("{what} weights"),
            format!("{w:?}: need at least one, each finite and > 0"),
        ));
    }
    let total: f64 = w.iter().sum();
    Ok(w.into_iter().map(|v| v / total).collect())
}

/// Index `c` drawn with probability `weights[c]` (weights summing to 1).
pub(crate) fn choose_component(weights: &[f64], rng: &mut dyn RngCore) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (c, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return c;
        }
    }
    weights.len() - 1
}
