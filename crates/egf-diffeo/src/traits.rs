//! The [`Diffeomorphism`] trait.

use candle_core::{Tensor, Var};
use egf_manifold::Manifold;

use crate::{DiffeoSpec, Result};

/// A diffeomorphism `Φ: S → S` of a compact manifold with known inverse and
/// known `log |det DΦ|` with respect to the reference measure `λ` (spec section 2).
///
/// Batched methods take `(n, ambient_dim)` tensors (any device, `f32` or `f64`)
/// and return points on the manifold (torus coordinates wrapped into `[0, 1)`,
/// unit vectors on the sphere). Log-determinants have shape `(n,)`.
/// The `_f64` methods are exact host references on one point, given as a slice of
/// `ambient_dim` coordinates (a slice of another length is a caller bug: the
/// result is unspecified and may panic).
pub trait Diffeomorphism: Send + Sync + std::fmt::Debug {
    /// The manifold the map acts on.
    fn manifold(&self) -> Manifold;

    /// `Φ(x)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// `Φ⁻¹(y)`.
    fn inverse(&self, y: &Tensor) -> Result<Tensor>;

    /// `log |det DΦ(x)|` with respect to `λ`, shape `(n,)`.
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Whether `Φ` preserves `λ` (`log |det DΦ| ≡ 0`); lets callers skip the log-determinant.
    fn is_volume_preserving(&self) -> bool;

    /// `Φ⁻¹(y)` and `log |det D(Φ⁻¹)(y)| = −log |det DΦ(Φ⁻¹ y)|`, the latter `None`
    /// when the map is volume preserving (so it is never computed in that case).
    fn inverse_with_log_det(&self, y: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let x = self.inverse(y)?;
        if self.is_volume_preserving() {
            Ok((x, None))
        } else {
            let ld = self.log_det_forward(&x)?.neg()?;
            Ok((x, Some(ld)))
        }
    }

    /// Exact `Φ(x)` on one point.
    fn forward_f64(&self, x: &[f64]) -> Vec<f64>;

    /// Exact `Φ(x)` written into `out`, without allocating (for long host random
    /// walks). `x` and `out` have `ambient_dim` entries. The default calls
    /// [`forward_f64`](Self::forward_f64) and copies.
    fn forward_f64_into(&self, x: &[f64], out: &mut [f64]) {
        let y = self.forward_f64(x);
        let n = out.len().min(y.len());
        out[..n].copy_from_slice(&y[..n]);
    }

    /// Exact `Φ⁻¹(y)` on one point.
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64>;

    /// Exact `log |det DΦ(x)|` on one point.
    fn log_det_forward_f64(&self, x: &[f64]) -> f64;

    /// The learnable parameters of the map, by name (candle variables the batched
    /// methods are differentiable in); empty for a fixed map.
    fn parameters(&self) -> Vec<(&'static str, Var)> {
        Vec::new()
    }

    /// The serializable description that rebuilds this map (with its current
    /// parameters, for a learnable map).
    fn spec(&self) -> DiffeoSpec;
}
