//! Mixtures of wrapped normal distributions on the tori `T^d`.

use std::f64::consts::PI;

use candle_core::Tensor;
use egf_manifold::coords::wrap_unit;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{check_batch, choose_component, normalized_weights, Target};
use crate::tensor_ops::{self, constant, logsumexp_f64, logsumexp_last, wrap_centered_f64};
use crate::{DataError, Result};

/// Smallest and largest accepted standard deviation of a component (torus units).
pub const WRAPPED_STD_RANGE: (f64, f64) = (1e-6, 1.0);

/// One component of a [`WrappedGaussianMixture`]: an isotropic normal `N(mean, std² I)` on
/// `R^d` wrapped onto `T^d` (`d` = the length of `mean`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedGaussianComponent {
    /// Mixture weight `w_c > 0` (the weights are normalized to sum to 1).
    pub weight: f64,
    /// Mean `μ_c`, torus coordinates (reduced mod 1); its length is the dimension `d`.
    pub mean: Vec<f64>,
    /// Standard deviation `σ_c` in torus units, in [`WRAPPED_STD_RANGE`].
    pub std: f64,
}

/// A mixture of wrapped isotropic normals on `T^d`, with density w.r.t. Lebesgue measure
///
/// `p(x) = Σ_c w_c Π_{a=1..d} Σ_{m ∈ Z} φ_{σ_c}(x_a − μ_{c,a} + m)`,   `φ_σ(t) = e^{−t²/(2σ²)} / (σ √(2π))`,
///
/// the law of `(μ_c + σ_c ε) mod 1`, `ε ~ N(0, I)`, with `c` drawn with probability `w_c`.
///
/// # Evaluation
/// With `δ = x_a − μ_{c,a}` reduced to `[−1/2, 1/2]`, the image sum is truncated to
/// `|m| ≤ M`, `M` the smallest integer `≥ 1` with `M (M + 1) ≥ 80 σ²` (over all components).
/// Each omitted image is then below `e^{−40}` times the `m = 0` term, so the relative
/// truncation error of `p` is below `1e-17`. Everything is evaluated in log space
/// (log-sum-exp), so `log p` stays finite and accurate far from every mean.
#[derive(Clone, Debug, PartialEq)]
pub struct WrappedGaussianMixture {
    components: Vec<WrappedGaussianComponent>,
    images: usize,
    dim: usize,
}

impl WrappedGaussianMixture {
    /// The mixture of `components` (at least one; weights positive and finite, normalized
    /// here; means finite, all of one length `d ≥ 1`, reduced mod 1; standard deviations
    /// in [`WRAPPED_STD_RANGE`]).
    pub fn new(components: Vec<WrappedGaussianComponent>) -> Result<Self> {
        let weights = normalized_weights("wrapped Gaussian", components.iter().map(|c| c.weight))?;
        let dim = components[0].mean.len();
        if let Some(c) = components.iter().find(|c| c.mean.len() != dim || c.mean.is_empty()) {
            return Err(DataError::invalid(
                "wrapped Gaussian mean",
                format!("{:?} has {} coordinates, the first component's mean {dim}", c.mean, c.mean.len()),
            ));
        }
        let (lo, hi) = WRAPPED_STD_RANGE;
        let mut images = 1;
        let mut comps = Vec::with_capacity(components.len());
        for (c, w) in components.into_iter().zip(weights) {
            if !(lo..=hi).contains(&c.std) {
                return Err(DataError::invalid("wrapped Gaussian std", format!("{} is outside [{lo}, {hi}]", c.std)));
            }
            if c.mean.iter().any(|m| !m.is_finite()) {
                return Err(DataError::invalid("wrapped Gaussian mean", format!("{:?} is not finite", c.mean)));
            }
            while ((images * (images + 1)) as f64) < 80.0 * c.std * c.std {
                images += 1;
            }
            comps.push(WrappedGaussianComponent {
                weight: w,
                mean: c.mean.into_iter().map(wrap_unit).collect(),
                std: c.std,
            });
        }
        Ok(Self { components: comps, images, dim })
    }

    /// The components, with normalized weights and means in `[0, 1)`.
    pub fn components(&self) -> &[WrappedGaussianComponent] {
        &self.components
    }

    /// The number `M` of periodic images summed on each side.
    pub fn images(&self) -> usize {
        self.images
    }

    /// `log w_c − d log(σ_c √(2π))`, the log of the component's constant factor.
    fn log_coefficient(&self, c: &WrappedGaussianComponent) -> f64 {
        c.weight.ln() - self.dim as f64 * (c.std * (2.0 * PI).sqrt()).ln()
    }
}

impl Target for WrappedGaussianMixture {
    fn name(&self) -> &'static str {
        "wrapped_gaussians"
    }

    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: self.dim }
    }

    fn log_density_f64(&self, x: &[f64]) -> f64 {
        if x.len() != self.dim {
            return f64::NAN;
        }
        let m = self.images as i64;
        let mut terms = vec![0.0; 2 * self.images + 1];
        let per_component: Vec<f64> = self
            .components
            .iter()
            .map(|c| {
                let inv_two_var = 1.0 / (2.0 * c.std * c.std);
                let mut log_p = self.log_coefficient(c);
                for (xa, ma) in x.iter().zip(&c.mean) {
                    let delta = wrap_centered_f64(xa - ma);
                    for (t, k) in terms.iter_mut().zip(-m..=m) {
                        let d = delta + k as f64;
                        *t = -d * d * inv_two_var;
                    }
                    log_p += logsumexp_f64(&terms);
                }
                log_p
            })
            .collect();
        logsumexp_f64(&per_component)
    }

    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        check_batch(self.manifold(), x)?;
        let n_comp = self.components.len();
        let k = 2 * self.images + 1;
        let d = self.dim;
        let means = constant(self.components.iter().flat_map(|c| c.mean.clone()).collect(), &[1, n_comp, d], x)?;
        let offsets: Vec<f64> = (-(self.images as i64)..=self.images as i64).map(|m| m as f64).collect();
        let offsets = constant(offsets, &[1, 1, 1, k], x)?;
        let scale = constant(self.components.iter().map(|c| -0.5 / (c.std * c.std)).collect(), &[1, n_comp, 1, 1], x)?;
        let coef = constant(self.components.iter().map(|c| self.log_coefficient(c)).collect(), &[1, n_comp], x)?;
        // δ: (n, C, d) in [−1/2, 1/2); images: (n, C, d, K)
        let delta = tensor_ops::wrap_centered(&x.unsqueeze(1)?.broadcast_sub(&means)?)?;
        let shifted = delta.unsqueeze(3)?.broadcast_add(&offsets)?;
        let exponents = shifted.sqr()?.broadcast_mul(&scale)?;
        let per_axis = logsumexp_last(&exponents)?; // (n, C, d)
        let per_component = per_axis.sum(2)?.broadcast_add(&coef)?; // (n, C)
        logsumexp_last(&per_component)
    }

    /// Exact: component `c` with probability `w_c`, then `(μ_c + σ_c ε) mod 1`.
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let weights: Vec<f64> = self.components.iter().map(|c| c.weight).collect();
        let mut out = Vec::with_capacity(self.dim * n);
        for _ in 0..n {
            let c = &self.components[choose_component(&weights, rng)];
            for a in 0..self.dim {
                let e: f64 = rng.sample(StandardNormal);
                out.push(wrap_unit(c.mean[a] + c.std * e));
            }
        }
        out
    }
}
