//! The checkerboard density on the torus `T^2`.

use candle_core::Tensor;
use egf_manifold::coords::wrap_unit;
use egf_manifold::Manifold;
use rand::{Rng, RngCore};

use super::{check_batch, Target};
use crate::tensor_ops;
use crate::{DataError, Result};

/// The `k × k` checkerboard on `T^2` (`k` even): cell `(i, j) = (⌊k x_1⌋, ⌊k x_2⌋)` is
/// *black* when `i + j` is even. The density w.r.t. Lebesgue measure is
///
/// `p(x) = 2` on black cells, `0` on white cells,
///
/// so `log p = log 2` on black cells and `−∞` on white cells (the log-density is not
/// finite there; an NLL at a white point is `+∞`). `k` must be even so that the pattern is
/// periodic (cell `k − 1` and cell `0` have opposite colours) and half the area is black.
/// Coordinates are reduced mod 1 first.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkerboard {
    cells: usize,
}

impl Checkerboard {
    /// The `cells × cells` board; `cells` must be even and at least 2.
    pub fn new(cells: usize) -> Result<Self> {
        if cells < 2 || cells % 2 != 0 {
            return Err(DataError::invalid("checkerboard cells", format!("{cells} must be even and ≥ 2")));
        }
        Ok(Self { cells })
    }

    /// Number of cells `k` per axis.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Whether `x ∈ T^2` (reduced mod 1) lies in a black cell.
    pub fn is_black(&self, x: &[f64]) -> bool {
        let k = self.cells as f64;
        let i = (k * wrap_unit(x[0])).floor() as i64;
        let j = (k * wrap_unit(x[1])).floor() as i64;
        (i + j) % 2 == 0
    }

    /// Batched `1` on black cells, `0` on white cells: `(n, 2)` → `(n,)`.
    pub fn black_indicator(&self, x: &Tensor) -> Result<Tensor> {
        check_batch(Manifold::Torus { dim: 2 }, x)?;
        let idx = (tensor_ops::wrap_unit(x)? * self.cells as f64)?.floor()?;
        let s = idx.sum(1)?;
        // parity = s − 2⌊s/2⌋; black = 1 − parity
        let parity = (&s - ((&s * 0.5)?.floor()? * 2.0)?)?;
        Ok(parity.affine(-1.0, 1.0)?)
    }
}

impl Target for Checkerboard {
    fn name(&self) -> &'static str {
        "checkerboard"
    }

    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: 2 }
    }

    fn log_density_f64(&self, x: &[f64]) -> f64 {
        if x.len() != 2 {
            return f64::NAN;
        }
        if self.is_black(x) {
            std::f64::consts::LN_2
        } else {
            f64::NEG_INFINITY
        }
    }

    fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        Ok((self.black_indicator(x)? * 2.0)?.log()?)
    }

    /// Exact: a black cell uniformly (row `i` uniform, then a column of matching parity),
    /// then a uniform point inside it.
    fn sample_f64(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let k = self.cells;
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let i = rng.random_range(0..k);
            let j = 2 * rng.random_range(0..k / 2) + i % 2;
            let x = loop {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                let x = [wrap_unit((i as f64 + u) / k as f64), wrap_unit((j as f64 + v) / k as f64)];
                // rounding can put (i + u)/k on the next cell's edge (probability ~2^-50): redraw
                if self.is_black(&x) {
                    break x;
                }
            };
            out.extend_from_slice(&x);
        }
        out
    }
}
