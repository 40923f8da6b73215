//! Concentric rings on the torus `T^2`.

use std::f64::consts::{FRAC_PI_4, PI};

use candle_core::Tensor;
use egf_manifold::coords::wrap_unit;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};

use super::{check_batch, Target};
use crate::tensor_ops::{self, constant, logsumexp_f64, logsumexp_last, wrap_centered_f64};
use crate::{DataError, Result};

/// Concentric rings around a centre `c` of `T^2`, with density w.r.t. Lebesgue measure
///
/// `p(x) = u(ρ(x)) / Z`,   `u(ρ) = Σ_j exp(−(ρ − r_j)² / (2 s²))`,
///
/// where `ρ(x) ∈ [0, √2/2]` is the torus distance from `x` to `c` (the Euclidean length of
/// the representative of `x − c` in `[−1/2, 1/2)^2`), `r_j` the ring radii and `s` their
/// common width (torus units). Every ring has the same peak height, so outer rings carry
/// more mass (about in proportion to `r_j`).
///
/// # Normalizing constant
/// `Z = ∫_{T^2} u(ρ(x)) dx = ∫_0^{√2/2} u(ρ) L(ρ) dρ`, with `L(ρ)` the length of the circle
/// of radius `ρ` inside the square `[−1/2, 1/2]^2`: `L = 2πρ` for `ρ ≤ 1/2` and
/// `L = 2πρ − 8ρ arccos(1/(2ρ))` beyond. It is computed once, in [`Rings::new`], by
/// composite 16-point Gauss–Legendre quadrature with panels no wider than `s/2`: on
/// `[0, 1/2]` directly, and on `[1/2, √2/2]` after the substitution `ρ = 1/(2 cos α)`,
/// `α ∈ [0, π/4]`, which makes the integrand smooth. The integrands are analytic on each
/// panel, so the relative error of `Z` is at the level of `f64` rounding (below `1e-12`;
/// the tests check `∫ p = 1` on a 512 × 512 grid to `1e-10`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rings {
    center: [f64; 2],
    radii: Vec<f64>,
    width: f64,
    log_normalizer: f64,
}

impl Rings {
    /// Rings of radii `radii` (at least one, each in `[0, √2/2]`) and width `width`
    /// (in `[1e-4, 1]`) around `center` (reduced mod 1).
    pub fn new(center: [f64; 2], radii: Vec<f64>, width: f64) -> Result<Self> {
        if center.iter().any(|c| !c.is_finite()) {
            return Err(DataError::invalid("rings center", format!("{center:?} is not finite")));
        }
        let max_radius = 0.5f64.sqrt();
        if radii.is_empty() || radii.iter().any(|r| !(0.0..=max_radius).contains(r)) {
            return Err(DataError::invalid("rings radii", format!("{radii:?}: need at least one, each in [0, √2/2]")));
        }
        if !(1e-4..=1.0).contains(&width) {
            return Err(DataError::invalid("rings width", format!("{width} is outside [1e-4, 1]")));
        }
        let mut rings = Self { center: center.map(wrap_unit), radii, width, log_normalizer: 0.0 };
        rings.log_normalizer = rings.radial_integral().ln();
        Ok(rings)
    }

    /// The centre `c ∈ [0, 1)^2`.
    pub fn center(&self) -> [f64; 2] {
        self.center
    }

    /// The ring radii `r_j`.
    pub fn radii(&self) -> &[f64] {
        &self.radii
    }

    /// The common ring width `s`.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// `log Z`, the log of the normalizing constant `Z = ∫ u dλ`.
    pub fn log_normalizer(&self) -> f64 {
        self.log_normalizer
    }

    /// The unnormalized profile `u(ρ) ∈ (0, number of rings]`.
    fn profile(&self, rho: f64) -> f64 {
        let inv = 1.0 / (2.0 * self.width * self.width);
        self.radii.iter().map(|r| (-(rho - r) * (rho - r) * inv).exp()).sum()
    }

    /// Torus distance `ρ(x)` from the centre.
    fn radius_of(&self, x: &[f64]) -> f64 {
        let d0 = wrap_centered_f64(x[0] - self.center[0]);
        let d1 = wrap_centered_f64(x[1] - self.center[1]);
        d0.hypot(d1)
    }

    /// `Z = ∫_0^{√2/2} u(ρ) L(ρ) dρ` (see the type documentation).
    fn radial_integral(&self) -> f64 {
        let inner = composite_gauss_legendre(0.0, 0.5, self.width / 2.0, |rho| self.profile(rho) * 2.0 * PI * rho);
        let outer = composite_gauss_legendre(0.0, FRAC_PI_4, self.width / 2.0, |alpha| {
            let (s, c) = alpha.sin_cos();
            let rho = 0.5 / c;
            let drho = 0.5 * s / (c * c);
            self.profile(rho) * (2.0 * PI - 8.0 * alpha) * rho * drho
        });
        inner + outer
    }
}

impl Target for Rings {
    fn name(&self) -> &'static str {
        "rings"
    }

    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: 2 }
    }

    fn log_density_f64(&self, x: &[f64]) -> f64 {
        if x.len() != 2 {
            return f64::NAN;
        }
        let rho = self.radius_of(x);
        let inv = 1.0 / (2.0 * self.width * self.width);
        let terms: Vec<f64> = self.radii.iter().map(|r| -(rho - r) * (rho - r) * inv).collect();
        logsumexp_f64(&terms) - self.log_normalizer
    }

    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        check_batch(self.manifold(), x)?;
        let center = constant(self.center.to_vec(), &[1, 2], x)?;
        let radii = constant(self.radii.clone(), &[1, self.radii.len()], x)?;
        let delta = tensor_ops::wrap_centered(&x.broadcast_sub(&center)?)?;
        let rho = delta.sqr()?.sum_keepdim(1)?.sqrt()?; // (n, 1)
        let exponents = (rho.broadcast_sub(&radii)?.sqr()? * (-0.5 / (self.width * self.width)))?;
        Ok((logsumexp_last(&exponents)? - self.log_normalizer)?)
    }

    /// Exact, by rejection: uniform proposals `x` accepted with probability
    /// `u(ρ(x)) / (number of rings)` (acceptance rate `Z / number of rings`).
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let bound = self.radii.len() as f64;
        let mut out = Vec::with_capacity(2 * n);
        while out.len() < 2 * n {
            let x = [rng.random::<f64>(), rng.random::<f64>()];
            if rng.random::<f64>() * bound < self.profile(self.radius_of(&x)) {
                out.extend_from_slice(&x);
            }
        }
        out
    }
}

/// `∫_a^b f` by 16-point Gauss–Legendre on equal panels no wider than `max_panel`.
fn composite_gauss_legendre(a: f64, b: f64, max_panel: f64, f: impl Fn(f64) -> f64) -> f64 {
    let (nodes, weights) = egf_manifold::gauss_legendre(16);
    let panels = ((b - a) / max_panel).ceil().max(1.0) as usize;
    let h = (b - a) / panels as f64;
    (0..panels)
        .map(|p| {
            let mid = a + (p as f64 + 0.5) * h;
            nodes.iter().zip(&weights).map(|(t, w)| w * f(mid + 0.5 * h * t)).sum::<f64>() * 0.5 * h
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_16_is_exact_to_degree_31() {
        for deg in 0..32 {
            let exact = if deg % 2 == 1 { 0.0 } else { 2.0 / (deg as f64 + 1.0) };
            let (x, w) = egf_manifold::gauss_legendre(16);
            let q: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(deg)).sum();
            assert!((q - exact).abs() < 1e-14, "degree {deg}: {q} vs {exact}");
        }
        // a smooth non-polynomial: ∫_0^2 e^t dt = e² − 1
        let q = composite_gauss_legendre(0.0, 2.0, 0.5, f64::exp);
        assert!((q - (2f64.exp() - 1.0)).abs() < 1e-14);
    }

    #[test]
    fn circle_length_in_the_square_integrates_to_the_area() {
        // with u ≡ 1 the radial integral is the area of the unit square
        let r = Rings::new([0.5, 0.5], vec![0.3], 1.0).unwrap();
        let inner = composite_gauss_legendre(0.0, 0.5, 0.01, |rho| 2.0 * PI * rho);
        let outer = composite_gauss_legendre(0.0, FRAC_PI_4, 0.01, |a| {
            let (s, c) = a.sin_cos();
            (2.0 * PI - 8.0 * a) * (0.5 / c) * 0.5 * s / (c * c)
        });
        assert!((inner + outer - 1.0).abs() < 1e-14, "{}", inner + outer);
        assert!(r.log_normalizer().is_finite());
    }
}
