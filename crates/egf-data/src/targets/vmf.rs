//! von Mises–Fisher mixtures on the sphere `S^2`.

use std::f64::consts::TAU;

use candle_core::Tensor;
use egf_manifold::coords::latlon_deg_to_unit;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::{check_batch, choose_component, normalized_weights, Target};
use crate::tensor_ops::{constant, logsumexp_f64, logsumexp_last};
use crate::{DataError, Result};

/// Largest accepted concentration `κ`.
pub const MAX_KAPPA: f64 = 1e12;

/// One von Mises–Fisher component on `S^2`: mean direction given by latitude and
/// longitude in degrees, concentration `κ > 0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmfComponent {
    /// Mixture weight `w_c > 0` (the weights are normalized to sum to 1).
    pub weight: f64,
    /// Latitude of the mean direction `μ_c`, degrees in `[−90, 90]`.
    pub lat: f64,
    /// Longitude of the mean direction `μ_c`, degrees in `[−180, 180]`.
    pub lon: f64,
    /// Concentration `κ_c ∈ (0, 1e12]`; the angular spread is about `1/√κ` radians.
    pub kappa: f64,
}

/// `log(κ / (2π (1 − e^{−2κ})))`, stable for tiny and huge `κ` (`→ −log 4π` as `κ → 0`).
pub fn vmf_log_normalizer(kappa: f64) -> f64 {
    kappa.ln() - TAU.ln() - (-(-2.0 * kappa).exp_m1()).ln()
}

/// `∫_{S^2} e^{κ (μ·x − 1)} dσ(x) = 2π (1 − e^{−2κ}) / κ`.
pub fn vmf_unnormalized_mass(kappa: f64) -> f64 {
    TAU * (-(-2.0 * kappa).exp_m1()) / kappa
}

/// The validated, precomputed terms `log Σ_c exp(b_c − κ_c |x − μ_c|² / 2)` shared by the
/// vMF target and the vMF reward.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VmfTerms {
    pub(crate) components: Vec<VmfComponent>,
    pub(crate) means: Vec<[f64; 3]>,
    pub(crate) offsets: Vec<f64>,
}

impl VmfTerms {
    /// Validates `components`, normalizes the weights and sets `b_c = log w_c + extra(κ_c)`.
    pub(crate) fn new(components: Vec<VmfComponent>, extra: impl Fn(f64) -> f64) -> Result<Self> {
        let weights = normalized_weights("von Mises-Fisher", components.iter().map(|c| c.weight))?;
        let mut comps = Vec::with_capacity(components.len());
        let mut means = Vec::with_capacity(components.len());
        let mut offsets = Vec::with_capacity(components.len());
        for (c, w) in components.into_iter().zip(weights) {
            if !(c.kappa > 0.0 && c.kappa <= MAX_KAPPA) {
                return Err(DataError::invalid(
                    "von Mises-Fisher kappa",
                    format!("{} is outside (0, {MAX_KAPPA}]", c.kappa),
                ));
            }
            means.push(latlon_deg_to_unit(c.lat, c.lon)?);
            offsets.push(w.ln() + extra(c.kappa));
            comps.push(VmfComponent { weight: w, ..c });
        }
        Ok(Self { components: comps, means, offsets })
    }

    /// `log Σ_c exp(b_c − κ_c |x − μ_c|² / 2)` for one point.
    pub(crate) fn log_sum_f64(&self, x: &[f64]) -> f64 {
        if x.len() != 3 {
            return f64::NAN;
        }
        let terms: Vec<f64> = self
            .components
            .iter()
            .zip(&self.means)
            .zip(&self.offsets)
            .map(|((c, mu), b)| {
                let d2: f64 = mu.iter().zip(x).map(|(m, v)| (v - m) * (v - m)).sum();
                b - 0.5 * c.kappa * d2
            })
            .collect();
        logsumexp_f64(&terms)
    }

    /// Batched [`log_sum_f64`](Self::log_sum_f64): `(n, 3)` → `(n,)`.
    pub(crate) fn log_sum(&self, x: &Tensor) -> Result<Tensor> {
        check_batch(Manifold::Sphere { dim: 2 }, x)?;
        let c = self.components.len();
        let means = constant(self.means.iter().flatten().copied().collect(), &[1, c, 3], x)?;
        let scale = constant(self.components.iter().map(|k| -0.5 * k.kappa).collect(), &[1, c], x)?;
        let offsets = constant(self.offsets.clone(), &[1, c], x)?;
        let d2 = x.unsqueeze(1)?.broadcast_sub(&means)?.sqr()?.sum(2)?; // (n, C)
        logsumexp_last(&d2.broadcast_mul(&scale)?.broadcast_add(&offsets)?)
    }
}

/// A mixture of von Mises–Fisher distributions on `S^2`, with density w.r.t. the surface
/// measure
///
/// `p(x) = Σ_c w_c κ_c / (4π sinh κ_c) · e^{κ_c μ_c·x}`.
///
/// # Evaluation
/// For unit `x`, `μ·x − 1 = −|x − μ|²/2`, so each component is evaluated in log space as
///
/// `log p_c(x) = log κ − log 2π − log(1 − e^{−2κ}) − κ |x − μ|² / 2`
///
/// (`log(1 − e^{−2κ})` through `expm1`), which is finite and accurate for every `κ` in
/// `(0, 1e12]`, also in `f32` near the mode; the mixture is a log-sum-exp. The formula
/// assumes unit vectors (off the sphere it differs from `κ μ·x` by `κ (|x|² − 1)/2`).
#[derive(Clone, Debug, PartialEq)]
pub struct VonMisesFisherMixture {
    terms: VmfTerms,
}

impl VonMisesFisherMixture {
    /// The mixture of `components` (at least one; weights positive, normalized here; mean
    /// latitude/longitude in range; `κ ∈ (0, 1e12]`).
    pub fn new(components: Vec<VmfComponent>) -> Result<Self> {
        Ok(Self { terms: VmfTerms::new(components, vmf_log_normalizer)? })
    }

    /// The components, with normalized weights.
    pub fn components(&self) -> &[VmfComponent] {
        &self.terms.components
    }

    /// The mean directions `μ_c` as unit vectors.
    pub fn means(&self) -> &[[f64; 3]] {
        &self.terms.means
    }
}

impl Target for VonMisesFisherMixture {
    fn name(&self) -> &'static str {
        "vmf_mixture"
    }

    fn manifold(&self) -> Manifold {
        Manifold::Sphere { dim: 2 }
    }

    fn log_density_f64(&self, x: &[f64]) -> f64 {
        self.terms.log_sum_f64(x)
    }

    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        self.terms.log_sum(x)
    }

    /// Exact: component `c` with probability `w_c`, then [`sample_vmf_s2`].
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let weights: Vec<f64> = self.terms.components.iter().map(|c| c.weight).collect();
        let mut out = Vec::with_capacity(3 * n);
        for _ in 0..n {
            let c = choose_component(&weights, rng);
            out.extend_from_slice(&sample_vmf_s2(&self.terms.means[c], self.terms.components[c].kappa, rng));
        }
        out
    }
}

/// One exact draw from the von Mises–Fisher law on `S^2` with unit mean `mu` and
/// concentration `kappa > 0`.
///
/// On `S^2` the cosine `w = μ·x` has density `∝ e^{κ w}` on `[−1, 1]`, inverted in closed
/// form: `w = 1 + log(u + (1 − u) e^{−2κ}) / κ` with `u` uniform on `(0, 1]`, evaluated as
/// `1 − t`, `t = −log1p((1 − u) expm1(−2κ)) / κ ∈ [0, 2]` (stable for tiny and huge `κ`).
/// Then `x = w μ + √(t (2 − t)) (cos ψ e_1 + sin ψ e_2)` with `ψ` uniform on `[0, 2π)` and
/// `(e_1, e_2)` an orthonormal basis of `μ^⊥`.
pub fn sample_vmf_s2(mu: &[f64; 3], kappa: f64, rng: &mut dyn RngCore) -> [f64; 3] {
    let u = 1.0 - rng.random::<f64>();
    let t = (-((1.0 - u) * (-2.0 * kappa).exp_m1()).ln_1p() / kappa).clamp(0.0, 2.0);
    let w = 1.0 - t;
    let r = (t * (2.0 - t)).sqrt();
    let psi = TAU * rng.random::<f64>();
    let (e1, e2) = orthonormal_complement(mu);
    let (s, c) = psi.sin_cos();
    let mut x = [0.0; 3];
    for k in 0..3 {
        x[k] = w * mu[k] + r * (c * e1[k] + s * e2[k]);
    }
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    x.map(|v| v / norm)
}

/// An orthonormal basis `(e_1, e_2)` of the plane orthogonal to the unit vector `mu`,
/// with `e_2 = μ × e_1`.
fn orthonormal_complement(mu: &[f64; 3]) -> ([f64; 3], [f64; 3]) {
    let helper = if mu[2].abs() < 0.9 { [0.0, 0.0, 1.0] } else { [1.0, 0.0, 0.0] };
    let dot: f64 = helper.iter().zip(mu).map(|(a, b)| a * b).sum();
    let mut e1 = [0.0; 3];
    for k in 0..3 {
        e1[k] = helper[k] - dot * mu[k];
    }
    let n = e1.iter().map(|v| v * v).sum::<f64>().sqrt();
    e1 = e1.map(|v| v / n);
    let e2 = [mu[1] * e1[2] - mu[2] * e1[1], mu[2] * e1[0] - mu[0] * e1[2], mu[0] * e1[1] - mu[1] * e1[0]];
    (e1, e2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn normalizer_limits() {
        assert!((vmf_log_normalizer(1e-12) + (4.0 * PI).ln()).abs() < 1e-9);
        // closed form at moderate κ: κ / (4π sinh κ) · e^κ
        let k = 3.0f64;
        assert!((vmf_log_normalizer(k) - (k / (4.0 * PI * k.sinh()) * k.exp()).ln()).abs() < 1e-13);
        assert!((vmf_log_normalizer(1e4) - (1e4f64.ln() - TAU.ln())).abs() < 1e-12);
        assert!((vmf_unnormalized_mass(k) * vmf_log_normalizer(k).exp() - 1.0).abs() < 1e-14);
    }
}
