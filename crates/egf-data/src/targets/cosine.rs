//! A high-frequency cosine pattern on the torus `T^2` (a target with fine structure).

use std::f64::consts::TAU;

use candle_core::Tensor;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};

use super::{check_batch, Target};
use crate::{DataError, Result};

/// The density w.r.t. Lebesgue measure on `T^2`
///
/// `p(x) = 1 + a cos(2π k x_1) cos(2π k x_2)`,   `k ∈ {1, 2, …}`,  `a ∈ [0, 1]`,
///
/// a `2k × 2k` lattice of bumps (`p` between `1 − a` and `1 + a`). It is exactly
/// normalized, since `∫_0^1 cos(2π k t) dt = 0`. With `a = 1` the density vanishes on a
/// null set, where `log p = −∞`. The phase `k x mod 1` is reduced before the cosine, which
/// keeps `f32` evaluation accurate at high frequency.
#[derive(Clone, Debug, PartialEq)]
pub struct CosinePattern {
    frequency: u32,
    amplitude: f64,
}

impl CosinePattern {
    /// The pattern of frequency `k = frequency ≥ 1` and amplitude `a = amplitude ∈ [0, 1]`.
    pub fn new(frequency: u32, amplitude: f64) -> Result<Self> {
        if frequency == 0 {
            return Err(DataError::invalid("cosine frequency", "must be ≥ 1"));
        }
        if !(0.0..=1.0).contains(&amplitude) {
            return Err(DataError::invalid("cosine amplitude", format!("{amplitude} is outside [0, 1]")));
        }
        Ok(Self { frequency, amplitude })
    }

    /// The frequency `k`.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// The amplitude `a`.
    pub fn amplitude(&self) -> f64 {
        self.amplitude
    }

    fn density(&self, x: &[f64]) -> f64 {
        let k = self.frequency as f64;
        let c = |t: f64| {
            let phase = k * t;
            (TAU * (phase - phase.floor())).cos()
        };
        1.0 + self.amplitude * c(x[0]) * c(x[1])
    }
}

impl Target for CosinePattern {
    fn name(&self) -> &'static str {
        "fine"
    }

    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: 2 }
    }

    fn log_density_f64(&self, x: &[f64]) -> f64 {
        if x.len() != 2 {
            return f64::NAN;
        }
        self.density(x).ln()
    }

    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        check_batch(self.manifold(), x)?;
        let phase = (x * self.frequency as f64)?;
        let c = ((&phase - phase.floor()?)? * TAU)?.cos()?;
        let product = (c.narrow(1, 0, 1)? * c.narrow(1, 1, 1)?)?.squeeze(1)?;
        Ok(product.affine(self.amplitude, 1.0)?.log()?)
    }

    /// Exact, by rejection: uniform proposals accepted with probability `p(x) / (1 + a)`.
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let bound = 1.0 + self.amplitude;
        let mut out = Vec::with_capacity(2 * n);
        while out.len() < 2 * n {
            let x = [rng.random::<f64>(), rng.random::<f64>()];
            if rng.random::<f64>() * bound < self.density(&x) {
                out.extend_from_slice(&x);
            }
        }
        out
    }
}
