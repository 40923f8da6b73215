//! Small batched helpers shared by the targets and rewards (any device, `f32` or `f64`).

use candle_core::{Tensor, D};
use egf_manifold::tensor_util::tensor_from_f64;

use crate::Result;

/// `log Σ_k exp(x_k)` along the last dimension (which is removed), computed as
/// `m + log Σ_k exp(x_k − m)` with `m = max_k x_k`. Every row needs one finite entry.
pub(crate) fn logsumexp_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?;
    let s = x.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok((s + m)?.squeeze(D::Minus1)?)
}

/// `δ − ⌊δ + 1/2⌋ ∈ [−1/2, 1/2)`: the representative of `δ mod 1` nearest to 0.
pub(crate) fn wrap_centered(delta: &Tensor) -> Result<Tensor> {
    Ok((delta - (delta + 0.5)?.floor()?)?)
}

/// `u − ⌊u⌋ ∈ [0, 1)` (in `f32` a tiny negative `u` may give exactly 1, the same torus point).
pub(crate) fn wrap_unit(u: &Tensor) -> Result<Tensor> {
    Ok((u - u.floor()?)?)
}

/// A constant tensor of `shape` with the dtype and device of `like`.
pub(crate) fn constant(values: Vec<f64>, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Ok(tensor_from_f64(values, shape, like.dtype(), like.device())?)
}

/// `log Σ_k exp(x_k)` of a slice in `f64` (`−∞` for an empty slice or all `−∞`).
pub(crate) fn logsumexp_f64(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `δ − round(δ) ∈ [−1/2, 1/2]`: the representative of `δ mod 1` nearest to 0.
pub(crate) fn wrap_centered_f64(delta: f64) -> f64 {
    delta - (delta + 0.5).floor()
}
