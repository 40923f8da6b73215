//! Numerically stable scalar functions on tensors, safe for automatic differentiation.
//!
//! Every function here is finite, with finite gradients, for all finite inputs:
//! branches selected away by `where_cond` are evaluated on clamped arguments so
//! that no `inf · 0 = NaN` reaches a gradient.

use candle_core::{Tensor, D};

use crate::Result;

/// `log(1 + z)` for `z ≥ 0`, accurate to a few ulps also for tiny `z`
/// (Kahan's trick: `log(w) · z / (w − 1)` with `w = 1 + z` rounded, and `z` itself where `w = 1`).
pub fn log1p(z: &Tensor) -> Result<Tensor> {
    let w = (z + 1.0)?;
    let wm1 = (&w - 1.0)?;
    let exact = wm1.eq(0.0)?;
    let safe_den = exact.where_cond(&w, &wm1)?; // any nonzero value where unused
    let kahan = (w.log()? * (z / safe_den)?)?;
    Ok(exact.where_cond(z, &kahan)?)
}

/// `softplus(u) = log(1 + e^u) = max(u, 0) + log1p(e^{−|u|})`, positive and finite.
pub fn softplus(u: &Tensor) -> Result<Tensor> {
    Ok((u.relu()? + log1p(&u.abs()?.neg()?.exp()?)?)?)
}

/// `log softplus(u)`, stable for all `u` (spec section 5): equal to `u` below a
/// threshold `u_0` (`log softplus(u) = u − e^u/2 + …`, so the dropped term is below
/// the dtype's precision: `u_0 = −15` in `f32`, `−37` in `f64`), otherwise
/// `log(softplus(u))` on the clamped argument. A naive `log(softplus(u))`
/// underflows to `−∞` near `u ≈ −104` in `f32` and gives NaN gradients.
pub fn log_softplus(u: &Tensor) -> Result<Tensor> {
    let threshold = if u.dtype() == candle_core::DType::F64 { -37.0 } else { -15.0 };
    let small = u.lt(threshold)?;
    let clamped = u.maximum(threshold)?;
    let regular = softplus(&clamped)?.log()?;
    Ok(small.where_cond(u, &regular)?)
}

/// `log Σ_j exp(x_j)` along the last dimension, with the maximum detached
/// (gradients are exact) and rows that are all `−∞` giving `−∞` without NaN.
pub fn logsumexp_last(x: &Tensor) -> Result<Tensor> {
    logsumexp(x, x.rank() - 1)
}

/// `log Σ exp(x)` along dimension `dim` (see [`logsumexp_last`]).
pub fn logsumexp(x: &Tensor, dim: usize) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    // keep the shift finite: an all −∞ row shifts by 0 and yields log 0 = −∞
    let finite = max.ne(f64::NEG_INFINITY)?;
    let shift = finite.where_cond(&max, &max.zeros_like()?)?;
    let s = x.broadcast_sub(&shift)?.exp()?.sum_keepdim(dim)?;
    Ok((s.log()? + shift)?.squeeze(dim)?)
}

/// Row-wise `log softmax` along the last dimension.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let lse = logsumexp_last(x)?.unsqueeze(D::Minus1)?;
    Ok(x.broadcast_sub(&lse)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn vals(t: &Tensor) -> Vec<f64> {
        t.to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    #[test]
    fn log_softplus_matches_exact_values_and_has_finite_gradients() {
        let u: Vec<f64> = vec![-300.0, -104.0, -20.0, -15.5, -14.5, -3.0, 0.0, 2.0, 40.0, 200.0];
        for dtype in [candle_core::DType::F32, candle_core::DType::F64] {
            let var =
                Var::from_tensor(&Tensor::new(u.as_slice(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let y = log_softplus(var.as_tensor()).unwrap();
            let grads = y.sum_all().unwrap().backward().unwrap();
            let g = vals(grads.get(&var).unwrap());
            for (i, (&ui, yi)) in u.iter().zip(vals(&y)).enumerate() {
                // exact: log(log1p(e^u)); derivative sigmoid(u)/softplus(u)
                let sp = if ui > 0.0 { ui + (-ui).exp().ln_1p() } else { ui.exp().ln_1p() };
                let exact = if ui < -700.0 { ui } else { sp.ln() };
                let tol = if dtype == candle_core::DType::F32 { 1e-5 } else { 1e-12 };
                assert!((yi - exact).abs() <= tol * (1.0 + exact.abs()), "{dtype:?} u={ui}: {yi} vs {exact}");
                let sig = 1.0 / (1.0 + (-ui).exp());
                let dexact = if ui < -700.0 { 1.0 } else { sig / sp };
                assert!(
                    g[i].is_finite() && (g[i] - dexact).abs() < 1e-3 * (1.0 + dexact.abs()),
                    "grad at {ui}: {} vs {dexact}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn log1p_is_accurate_for_tiny_arguments() {
        let z = Tensor::new(&[0.0f32, 1e-12, 1e-7, 1e-3, 1.0, 1e6], &Device::Cpu).unwrap();
        let y = vals(&log1p(&z).unwrap());
        for (zi, yi) in [0.0f64, 1e-12, 1e-7, 1e-3, 1.0, 1e6].iter().zip(y) {
            let exact = zi.ln_1p();
            assert!((yi - exact).abs() <= 2e-7 * exact.abs().max(1e-30), "{zi}: {yi} vs {exact}");
        }
    }

    #[test]
    fn logsumexp_handles_minus_infinity_rows() {
        let ninf = f64::NEG_INFINITY;
        let x = Tensor::new(&[[ninf, ninf], [0.0, ninf], [1000.0, 1000.0]], &Device::Cpu).unwrap();
        let y = vals(&logsumexp_last(&x).unwrap());
        assert_eq!(y[0], ninf);
        assert_eq!(y[1], 0.0);
        assert!((y[2] - (1000.0 + 2f64.ln())).abs() < 1e-12);
        let ls = log_softmax_last(&Tensor::new(&[[1.0f64, 2.0, 3.0]], &Device::Cpu).unwrap()).unwrap();
        let s: f64 = ls.exp().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!((s - 1.0).abs() < 1e-15);
    }
}
