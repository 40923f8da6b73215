//! Diffeomorphisms of the flat torus `T^d = R^d / Z^d` (coordinates in `[0, 1)^d`).

use std::f64::consts::TAU;

use candle_core::Tensor;
use egf_manifold::tensor_util::tensor_from_f64;
use egf_manifold::Manifold;
use nalgebra::DMatrix;

use crate::{DiffeoError, DiffeoSpec, Diffeomorphism, Result};

/// `u mod 1` in `[0, 1)` (a value that rounds to 1 gives 0): the same result as
/// [`egf_manifold::coords::wrap_unit`], computed as `u − ⌊u⌋` (exact in floating
/// point), several times faster than `rem_euclid` in the host random walks.
#[inline]
pub(crate) fn wrap_unit(u: f64) -> f64 {
    let w = u - u.floor();
    if w >= 1.0 {
        0.0
    } else {
        w
    }
}

fn wrap(x: &Tensor) -> Result<Tensor> {
    Ok((x - x.floor()?)?)
}

fn row(values: &[f64], like: &Tensor) -> Result<Tensor> {
    Ok(tensor_from_f64(values.to_vec(), &[1, values.len()], like.dtype(), like.device())?)
}

fn check_finite(map: &'static str, what: &str, v: &[f64]) -> Result<()> {
    if v.iter().all(|c| c.is_finite()) {
        Ok(())
    } else {
        Err(DiffeoError::InvalidParameter { map, reason: format!("{what} has a non-finite entry: {v:?}") })
    }
}

/// Largest accepted magnitude of an entry of a [`TorusAffine`] matrix (`2^31`), so that
/// determinants and products are exact in integer arithmetic.
const MAX_AFFINE_ENTRY: f64 = 2147483648.0;

/// Exact determinant of a square integer matrix by Bareiss' fraction-free elimination
/// (every division is exact); `None` on overflow of `i128`.
fn integer_determinant(a: &[Vec<i128>]) -> Option<i128> {
    let n = a.len();
    let mut m: Vec<Vec<i128>> = a.to_vec();
    let mut sign = 1i128;
    let mut prev = 1i128;
    for k in 0..n {
        if m[k][k] == 0 {
            match (k + 1..n).find(|&i| m[i][k] != 0) {
                Some(swap) => m.swap(k, swap),
                None => return Some(0),
            }
            sign = -sign;
        }
        for i in k + 1..n {
            for j in k + 1..n {
                let num = m[i][j].checked_mul(m[k][k])?.checked_sub(m[i][k].checked_mul(m[k][j])?)?;
                m[i][j] = num / prev;
            }
        }
        prev = m[k][k];
    }
    Some(sign * m[n - 1][n - 1])
}

fn zero_log_det(x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?)
}

/// Translation `x ↦ x + b (mod 1)` of `T^d`; an isometry (`log |det| = 0`).
#[derive(Clone, Debug, PartialEq)]
pub struct TorusTranslation {
    shift: Vec<f64>,
}

impl TorusTranslation {
    /// Translation by `shift = b ∈ R^d` (`d = shift.len() ≥ 1`, finite entries).
    pub fn new(shift: Vec<f64>) -> Result<Self> {
        if shift.is_empty() {
            return Err(DiffeoError::InvalidParameter { map: "torus_translation", reason: "empty shift".into() });
        }
        check_finite("torus_translation", "shift", &shift)?;
        Ok(Self { shift })
    }
}

impl Diffeomorphism for TorusTranslation {
    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: self.shift.len() }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        wrap(&x.broadcast_add(&row(&self.shift, x)?)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        wrap(&y.broadcast_sub(&row(&self.shift, y)?)?)
    }
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
        zero_log_det(x)
    }
    fn is_volume_preserving(&self) -> bool {
        true
    }
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.shift).map(|(a, b)| wrap_unit(a + b)).collect()
    }
    fn forward_f64_into(&self, x: &[f64], out: &mut [f64]) {
        for ((o, a), b) in out.iter_mut().zip(x).zip(&self.shift) {
            *o = wrap_unit(a + b);
        }
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        y.iter().zip(&self.shift).map(|(a, b)| wrap_unit(a - b)).collect()
    }
    fn log_det_forward_f64(&self, _x: &[f64]) -> f64 {
        0.0
    }
    fn spec(&self) -> DiffeoSpec {
        DiffeoSpec::TorusTranslation { shift: self.shift.clone() }
    }
}

/// Affine automorphism `x ↦ A x + b (mod 1)` of `T^d` with `A ∈ SL_d(Z)` (integer
/// entries, `det A = 1`); volume preserving (`log |det| = 0`). Its inverse
/// `y ↦ A⁻¹(y − b)` has an integer matrix too.
#[derive(Clone, Debug, PartialEq)]
pub struct TorusAffine {
    matrix: DMatrix<f64>,
    /// `A` row-major, for the host maps.
    rows: Vec<f64>,
    inverse: DMatrix<f64>,
    shift: Vec<f64>,
}

impl TorusAffine {
    /// `A` given row by row; `shift` empty means `b = 0`. Rejects non-square,
    /// non-integer or `det ≠ 1` matrices with a message naming the entry or the determinant.
    pub fn new(rows: &[Vec<f64>], shift: Vec<f64>) -> Result<Self> {
        const MAP: &str = "torus_affine";
        let d = rows.len();
        if d == 0 || rows.iter().any(|r| r.len() != d) {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("matrix must be square and non-empty, got rows {rows:?}"),
            });
        }
        let mut ints = vec![vec![0i128; d]; d];
        for (i, r) in rows.iter().enumerate() {
            for (j, v) in r.iter().enumerate() {
                if !v.is_finite() {
                    return Err(DiffeoError::InvalidParameter {
                        map: MAP,
                        reason: format!("matrix entry ({i}, {j}) = {v} is not finite: A must be in SL_{d}(Z)"),
                    });
                }
                if v.fract() != 0.0 {
                    return Err(DiffeoError::InvalidParameter {
                        map: MAP,
                        reason: format!("matrix entry ({i}, {j}) = {v} is not an integer: A must be in SL_{d}(Z)"),
                    });
                }
                if v.abs() > MAX_AFFINE_ENTRY {
                    return Err(DiffeoError::InvalidParameter {
                        map: MAP,
                        reason: format!("matrix entry ({i}, {j}) = {v} is too large (|entry| ≤ {MAX_AFFINE_ENTRY:e})"),
                    });
                }
                ints[i][j] = *v as i128;
            }
        }
        let shift = if shift.is_empty() { vec![0.0; d] } else { shift };
        if shift.len() != d {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("shift has {} entries, matrix is {d}×{d}", shift.len()),
            });
        }
        check_finite(MAP, "shift", &shift)?;
        let too_large = || DiffeoError::InvalidParameter {
            map: MAP,
            reason: "matrix entries too large for exact integer arithmetic".into(),
        };
        let det = integer_determinant(&ints).ok_or_else(too_large)?;
        if det != 1 {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("det A = {det}, but A must be in SL_{d}(Z) (integer entries, det 1)"),
            });
        }
        let matrix = DMatrix::from_fn(d, d, |i, j| rows[i][j]);
        // det A = 1, so A⁻¹ = adj(A) is an integer matrix: round the floating-point
        // inverse and verify A · A⁻¹ = I exactly in integer arithmetic.
        let inverse = matrix.clone().try_inverse().ok_or_else(too_large)?.map(|v| v.round());
        let inv_ints: Vec<Vec<i128>> = (0..d).map(|i| (0..d).map(|j| inverse[(i, j)] as i128).collect()).collect();
        for (i, a_row) in ints.iter().enumerate() {
            for j in 0..d {
                let mut acc: i128 = 0;
                for (a_ik, inv_row) in a_row.iter().zip(&inv_ints) {
                    acc = a_ik.checked_mul(inv_row[j]).and_then(|t| acc.checked_add(t)).ok_or_else(too_large)?;
                }
                if acc != i128::from(i == j) {
                    return Err(too_large());
                }
            }
        }
        let rows = rows.iter().flatten().copied().collect();
        Ok(Self { matrix, rows, inverse, shift })
    }

    /// The integer inverse `A⁻¹` (also in `SL_d(Z)`).
    pub fn inverse_matrix(&self) -> &DMatrix<f64> {
        &self.inverse
    }

    /// The shift `b`.
    pub fn shift(&self) -> &[f64] {
        &self.shift
    }

    /// The matrix `A`.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }

    fn transposed(m: &DMatrix<f64>, like: &Tensor) -> Result<Tensor> {
        let d = m.nrows();
        // row-major data of Aᵀ: element (i, j) of Aᵀ is A[(j, i)]
        let data: Vec<f64> = (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| m[(j, i)]).collect();
        Ok(tensor_from_f64(data, &[d, d], like.dtype(), like.device())?)
    }
}

impl Diffeomorphism for TorusAffine {
    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: self.matrix.nrows() }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&Self::transposed(&self.matrix, x)?)?;
        wrap(&y.broadcast_add(&row(&self.shift, x)?)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let v = wrap(&y.broadcast_sub(&row(&self.shift, y)?)?)?;
        wrap(&v.matmul(&Self::transposed(&self.inverse, y)?)?)
    }
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
        zero_log_det(x)
    }
    fn is_volume_preserving(&self) -> bool {
        true
    }
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        self.forward_f64_into(x, &mut y);
        y
    }
    fn forward_f64_into(&self, x: &[f64], out: &mut [f64]) {
        let d = self.shift.len();
        for ((o, a_row), b) in out.iter_mut().zip(self.rows.chunks_exact(d)).zip(&self.shift) {
            *o = wrap_unit(a_row.iter().zip(x).map(|(a, x)| a * x).sum::<f64>() + b);
        }
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        let d = y.len();
        let v: Vec<f64> = (0..d).map(|j| y[j] - self.shift[j]).collect();
        (0..d).map(|i| wrap_unit((0..d).map(|j| self.inverse[(i, j)] * v[j]).sum::<f64>())).collect()
    }
    fn log_det_forward_f64(&self, _x: &[f64]) -> f64 {
        0.0
    }
    fn spec(&self) -> DiffeoSpec {
        let d = self.matrix.nrows();
        DiffeoSpec::TorusAffine {
            matrix: (0..d).map(|i| (0..d).map(|j| self.matrix[(i, j)]).collect()).collect(),
            // b = 0 is written as an empty list, as in configs and presets
            shift: if self.shift.iter().all(|b| *b == 0.0) { vec![] } else { self.shift.clone() },
        }
    }
}

/// Shear `x_j ↦ x_j + a · sin(2π (x_k + c)) (mod 1)`, other coordinates fixed,
/// `k ≠ j`: nonlinear and volume preserving (its Jacobian is unipotent); the
/// inverse is the same shear with `−a`.
#[derive(Clone, Debug, PartialEq)]
pub struct TorusShear {
    dim: usize,
    target: usize,
    source: usize,
    amplitude: f64,
    phase: f64,
}

impl TorusShear {
    /// Shear of `T^dim` moving coordinate `target = j` by `amplitude · sin(2π(x_source + phase))`.
    pub fn new(dim: usize, target: usize, source: usize, amplitude: f64, phase: f64) -> Result<Self> {
        const MAP: &str = "torus_shear";
        if target >= dim || source >= dim || target == source {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!(
                    "need distinct target and source coordinates below d = {dim}, got target {target}, source {source}"
                ),
            });
        }
        check_finite(MAP, "amplitude and phase", &[amplitude, phase])?;
        Ok(Self { dim, target, source, amplitude, phase })
    }

    fn apply(&self, x: &Tensor, amplitude: f64) -> Result<Tensor> {
        let src = x.narrow(1, self.source, 1)?;
        let delta = ((src + self.phase)? * TAU)?.sin()?.affine(amplitude, 0.0)?;
        let mut onehot = vec![0.0; self.dim];
        onehot[self.target] = 1.0;
        wrap(&(x + delta.broadcast_mul(&row(&onehot, x)?)?)?)
    }

    fn apply_f64(&self, x: &[f64], amplitude: f64) -> Vec<f64> {
        let mut y: Vec<f64> = x.to_vec();
        y[self.target] = wrap_unit(x[self.target] + amplitude * (TAU * (x[self.source] + self.phase)).sin());
        y
    }
}

impl Diffeomorphism for TorusShear {
    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: self.dim }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, self.amplitude)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.apply(y, -self.amplitude)
    }
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
        zero_log_det(x)
    }
    fn is_volume_preserving(&self) -> bool {
        true
    }
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        self.apply_f64(x, self.amplitude)
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        self.apply_f64(y, -self.amplitude)
    }
    fn log_det_forward_f64(&self, _x: &[f64]) -> f64 {
        0.0
    }
    fn spec(&self) -> DiffeoSpec {
        DiffeoSpec::TorusShear {
            dim: self.dim,
            target: self.target,
            source: self.source,
            amplitude: self.amplitude,
            phase: self.phase,
        }
    }
}

/// Non-isometric warp, coordinate by coordinate: `x_j ↦ x_j + a_j sin(2π x_j)/(2π) (mod 1)`
/// with `|a_j| < 1`. Its derivative `1 + a_j cos(2π x_j) > 0`, so
/// `log |det DΦ(x)| = Σ_j log(1 + a_j cos 2π x_j)`. The inverse has no closed
/// form and is computed by safeguarded Newton iteration (Newton steps kept
/// inside a shrinking bracket `[y − |a|/2π, y + |a|/2π]`).
#[derive(Clone, Debug, PartialEq)]
pub struct TorusWarp {
    amplitudes: Vec<f64>,
}

/// Newton iterations of the batched inverse; the bracket halves at least every
/// other step, and Newton converges quadratically once inside, so this reaches
/// `f64` round-off for `|a| ≤ 0.99`.
const WARP_NEWTON_STEPS: usize = 40;

impl TorusWarp {
    /// Warp of `T^d` with one amplitude per coordinate (`d = amplitudes.len()`), each `|a_j| < 1`.
    pub fn new(amplitudes: Vec<f64>) -> Result<Self> {
        const MAP: &str = "torus_warp";
        if amplitudes.is_empty() {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: "need one amplitude per coordinate, got none".into(),
            });
        }
        for (j, a) in amplitudes.iter().enumerate() {
            if !a.is_finite() {
                return Err(DiffeoError::InvalidParameter {
                    map: MAP,
                    reason: format!("amplitude a_{j} = {a} is not finite"),
                });
            }
            if a.abs() >= 1.0 {
                return Err(DiffeoError::InvalidParameter {
                    map: MAP,
                    reason: format!(
                        "amplitude |a_{j}| = {} must be < 1 (the derivative 1 + a cos 2πx must stay positive)",
                        a.abs()
                    ),
                });
            }
        }
        Ok(Self { amplitudes })
    }

    /// The amplitudes `a_j`.
    pub fn amplitudes(&self) -> &[f64] {
        &self.amplitudes
    }

    fn inverse_scalar(a: f64, y: f64) -> f64 {
        let r = a.abs() / TAU;
        let (mut lo, mut hi, mut x) = (y - r, y + r, y);
        for _ in 0..200 {
            let f = x + a * (TAU * x).sin() / TAU - y;
            if f > 0.0 {
                hi = x;
            } else {
                lo = x;
            }
            let df = 1.0 + a * (TAU * x).cos();
            let mut next = x - f / df;
            // closed bracket: at an exact root (f = 0, so lo = x) the Newton step
            // stays at x instead of being kicked to the midpoint
            if !(lo..=hi).contains(&next) {
                next = 0.5 * (lo + hi);
            }
            if (next - x).abs() <= 1e-16 * (1.0 + x.abs()) {
                x = next;
                break;
            }
            x = next;
        }
        wrap_unit(x)
    }
}

impl Diffeomorphism for TorusWarp {
    fn manifold(&self) -> Manifold {
        Manifold::Torus { dim: self.amplitudes.len() }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = row(&self.amplitudes, x)?;
        wrap(&(x + (x * TAU)?.sin()?.broadcast_mul(&a)?.affine(1.0 / TAU, 0.0)?)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let a = row(&self.amplitudes, y)?;
        let r = (a.abs()? * (1.0 / TAU))?;
        let mut lo = y.broadcast_sub(&r)?;
        let mut hi = y.broadcast_add(&r)?;
        let mut x = y.clone();
        for _ in 0..WARP_NEWTON_STEPS {
            let angle = (&x * TAU)?;
            let f = ((&x + angle.sin()?.broadcast_mul(&a)?.affine(1.0 / TAU, 0.0)?)? - y)?;
            let positive = f.gt(0.0)?;
            hi = positive.where_cond(&x, &hi)?;
            lo = positive.where_cond(&lo, &x)?;
            let df = (angle.cos()?.broadcast_mul(&a)? + 1.0)?;
            let newton = (&x - (f / df)?)?;
            // closed bracket, so that an exact root (f = 0, lo = x) stays put
            let inside = newton.ge(&lo)?.mul(&newton.le(&hi)?)?;
            let mid = ((&lo + &hi)? * 0.5)?;
            x = inside.where_cond(&newton, &mid)?;
        }
        wrap(&x)
    }
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = row(&self.amplitudes, x)?;
        Ok(((x * TAU)?.cos()?.broadcast_mul(&a)? + 1.0)?.log()?.sum(1)?)
    }
    fn is_volume_preserving(&self) -> bool {
        false
    }
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.amplitudes).map(|(x, a)| wrap_unit(x + a * (TAU * x).sin() / TAU)).collect()
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        y.iter().zip(&self.amplitudes).map(|(y, a)| Self::inverse_scalar(*a, *y)).collect()
    }
    fn log_det_forward_f64(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.amplitudes).map(|(x, a)| (1.0 + a * (TAU * x).cos()).ln()).sum()
    }
    fn spec(&self) -> DiffeoSpec {
        DiffeoSpec::TorusWarp { amplitudes: self.amplitudes.clone() }
    }
}
