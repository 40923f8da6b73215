//! Diffeomorphisms of the unit sphere `S^d ⊂ R^(d+1)`.

use candle_core::{DType, Device, Tensor, Var};
use egf_manifold::tensor_util::tensor_from_f64;
use egf_manifold::Manifold;
use nalgebra::{DMatrix, Rotation3, Unit, Vector3};

use crate::{DiffeoError, DiffeoSpec, Diffeomorphism, Result};

/// Rotation `x ↦ R x` with `R ∈ SO(d+1)`; an isometry (`log |det| = 0`).
#[derive(Clone, Debug, PartialEq)]
pub struct SphereRotation {
    matrix: DMatrix<f64>,
}

impl SphereRotation {
    /// Rotation by the matrix given row by row. Rejects a matrix that is not
    /// orthogonal (`‖RᵀR − I‖_max > 1e-9`) or has determinant −1.
    pub fn new(rows: &[Vec<f64>]) -> Result<Self> {
        const MAP: &str = "sphere_rotation";
        let n = rows.len();
        if n < 2 || rows.iter().any(|r| r.len() != n) {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("matrix must be square of size ≥ 2, got rows {rows:?}"),
            });
        }
        let m = DMatrix::from_fn(n, n, |i, j| rows[i][j]);
        if m.iter().any(|v| !v.is_finite()) {
            return Err(DiffeoError::InvalidParameter { map: MAP, reason: "matrix has a non-finite entry".into() });
        }
        let err = (m.transpose() * &m - DMatrix::identity(n, n)).abs().max();
        if err > 1e-9 {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("matrix is not orthogonal (max |RᵀR − I| = {err:e}): not in SO({n})"),
            });
        }
        let det = m.determinant();
        if (det - 1.0).abs() > 1e-9 {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("det R = {det}: a reflection, not in SO({n})"),
            });
        }
        Ok(Self { matrix: m })
    }

    /// Rotation of `S^2` by `angle` radians about `axis` (right-hand rule; the axis is normalized).
    pub fn about_axis(axis: [f64; 3], angle: f64) -> Result<Self> {
        const MAP: &str = "sphere_axis_rotation";
        if axis.iter().any(|c| !c.is_finite()) || !angle.is_finite() {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("axis {axis:?} and angle {angle} must be finite (a non-finite parameter)"),
            });
        }
        let v = Vector3::from(axis);
        if v.norm() <= 1e-12 {
            return Err(DiffeoError::InvalidParameter { map: MAP, reason: format!("axis {axis:?} is zero") });
        }
        let r = Rotation3::from_axis_angle(&Unit::new_normalize(v), angle);
        let m = r.matrix();
        Ok(Self { matrix: DMatrix::from_fn(3, 3, |i, j| m[(i, j)]) })
    }

    /// The matrix `R`.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }

    fn apply(&self, x: &Tensor, transpose: bool) -> Result<Tensor> {
        let n = self.matrix.nrows();
        // x R^T (forward) or x R (inverse), row-major
        let data: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| if transpose { self.matrix[(j, i)] } else { self.matrix[(i, j)] })
            .collect();
        Ok(x.matmul(&tensor_from_f64(data, &[n, n], x.dtype(), x.device())?)?)
    }
}

impl Diffeomorphism for SphereRotation {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere { dim: self.matrix.nrows() - 1 }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.apply(y, false)
    }
    fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?)
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
        let n = self.matrix.nrows();
        // nalgebra stores column-major: column j is `as_slice()[j n .. (j + 1) n]`
        out.iter_mut().for_each(|o| *o = 0.0);
        for (col, xj) in self.matrix.as_slice().chunks_exact(n).zip(x) {
            for (o, r) in out.iter_mut().zip(col) {
                *o += r * xj;
            }
        }
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        let n = y.len();
        (0..n).map(|i| (0..n).map(|j| self.matrix[(j, i)] * y[j]).sum()).collect()
    }
    fn log_det_forward_f64(&self, _x: &[f64]) -> f64 {
        0.0
    }
    fn spec(&self) -> DiffeoSpec {
        let n = self.matrix.nrows();
        DiffeoSpec::SphereRotation { matrix: (0..n).map(|i| (0..n).map(|j| self.matrix[(i, j)]).collect()).collect() }
    }
}

/// The batched methods of a Möbius map from its `apply(x, s) = (M_(s·w)(x),
/// log |det DM_(s·w)(x)|)`: `M_w⁻¹ = M_(−w)`, so the inverse and its
/// log-determinant `d log((1 − |w|²)/|y + w|²)` come in one pass.
macro_rules! mobius_tensor_methods {
    () => {
        fn forward(&self, x: &Tensor) -> Result<Tensor> {
            Ok(self.apply(x, 1.0)?.0)
        }
        fn inverse(&self, y: &Tensor) -> Result<Tensor> {
            Ok(self.apply(y, -1.0)?.0)
        }
        fn log_det_forward(&self, x: &Tensor) -> Result<Tensor> {
            Ok(self.apply(x, 1.0)?.1)
        }
        fn is_volume_preserving(&self) -> bool {
            false
        }
        fn inverse_with_log_det(&self, y: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
            let (x, ld) = self.apply(y, -1.0)?;
            Ok((x, Some(ld)))
        }
    };
}

/// Möbius (conformal) map of `S^d` for `w ∈ R^(d+1)`, `|w| < 1`:
/// `M_w(x) = (1 − |w|²)/|x − w|² · (x − w) − w`.
/// It maps `S^d` onto itself, `M_w⁻¹ = M_(−w)`, and
/// `log |det DM_w(x)| = d · log((1 − |w|²)/|x − w|²)` with respect to the surface
/// measure. Both `±w/|w|` are fixed; the map expands around `w/|w|` and
/// contracts around `−w/|w|`, so it pushes mass towards `−w/|w|`.
#[derive(Clone, Debug, PartialEq)]
pub struct SphereMobius {
    center: Vec<f64>,
}

impl SphereMobius {
    /// Möbius map with parameter `w = center` (length `d + 1 ≥ 2`, `|w| < 1`).
    pub fn new(center: Vec<f64>) -> Result<Self> {
        const MAP: &str = "sphere_mobius";
        if center.len() < 2 {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("need w in R^(d+1) with d ≥ 1, got {} coordinates", center.len()),
            });
        }
        if center.iter().any(|c| !c.is_finite()) {
            return Err(DiffeoError::InvalidParameter { map: MAP, reason: format!("w = {center:?} is not finite") });
        }
        let r = center.iter().map(|c| c * c).sum::<f64>().sqrt();
        if r >= 1.0 {
            return Err(DiffeoError::InvalidParameter {
                map: MAP,
                reason: format!("|w| = {r} must be < 1 (w must lie inside the unit ball)"),
            });
        }
        Ok(Self { center })
    }

    /// The parameter `w`.
    pub fn center(&self) -> &[f64] {
        &self.center
    }

    fn dim(&self) -> usize {
        self.center.len() - 1
    }

    fn r2(&self) -> f64 {
        self.center.iter().map(|c| c * c).sum()
    }

    /// `M_(s·w)(x)` and `log |det DM_(s·w)(x)|` for `s = ±1`.
    fn apply(&self, x: &Tensor, sign: f64) -> Result<(Tensor, Tensor)> {
        let w: Vec<f64> = self.center.iter().map(|c| sign * c).collect();
        let w = tensor_from_f64(w, &[1, self.center.len()], x.dtype(), x.device())?;
        mobius(x, &w, self.dim())
    }

    fn apply_f64(&self, x: &[f64], sign: f64) -> (Vec<f64>, f64) {
        let u: Vec<f64> = x.iter().zip(&self.center).map(|(x, w)| x - sign * w).collect();
        let u2: f64 = u.iter().map(|c| c * c).sum();
        let scale = (1.0 - self.r2()) / u2;
        let y = u.iter().zip(&self.center).map(|(u, w)| scale * u - sign * w).collect();
        (y, self.dim() as f64 * scale.ln())
    }
}

impl Diffeomorphism for SphereMobius {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere { dim: self.dim() }
    }
    mobius_tensor_methods!();
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        self.apply_f64(x, 1.0).0
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        self.apply_f64(y, -1.0).0
    }
    fn log_det_forward_f64(&self, x: &[f64]) -> f64 {
        self.apply_f64(x, 1.0).1
    }
    fn spec(&self) -> DiffeoSpec {
        DiffeoSpec::SphereMobius { center: self.center.clone(), learnable: false }
    }
}

/// `M_w(x)` and `log |det DM_w(x)|` for a `(1, d + 1)` tensor `w` with `|w| < 1`,
/// differentiable with respect to `x` and `w`.
fn mobius(x: &Tensor, w: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
    let u = x.broadcast_sub(w)?;
    let u2 = u.sqr()?.sum_keepdim(1)?;
    let one_minus_r2 = (w.sqr()?.sum_keepdim(1)?.neg()? + 1.0)?;
    let scale = u2.recip()?.broadcast_mul(&one_minus_r2)?;
    let y = u.broadcast_mul(&scale)?.broadcast_sub(w)?;
    let log_det = (scale.log()? * dim as f64)?.squeeze(1)?;
    Ok((y, log_det))
}

/// A [`SphereMobius`] map whose parameter is learned with the model:
/// `w = v / √(1 + |v|²)` for an unconstrained candle variable `v ∈ R^(d+1)`, so that
/// `|w| < 1` whatever the optimizer does. Built at `w_0` by `v_0 = w_0 / √(1 − |w_0|²)`.
///
/// The batched methods are differentiable with respect to `v`: the star inflow
/// `h(y) = Σ_i α_i(Φ_i⁻¹ y) g(Φ_i⁻¹ y) |det D(Φ_i⁻¹)(y)|` (spec section 3) depends on `w`
/// through the preimage and the Jacobian, and the mass identity `∫ h = ∫ g` holds for every
/// `w`, so the flow-matching losses train `w` with exact gradients. The `_f64` references
/// read the current value of `v` (a host copy per call).
#[derive(Clone, Debug)]
pub struct LearnableSphereMobius {
    v: Var,
}

impl LearnableSphereMobius {
    /// Learnable Möbius map starting at `w_0 = center` (`|w_0| < 1`, as [`SphereMobius::new`]),
    /// with its variable of `dtype` on `device`.
    pub fn new(center: Vec<f64>, dtype: DType, device: &Device) -> Result<Self> {
        let start = SphereMobius::new(center)?;
        let stretch = (1.0 - start.r2()).sqrt().recip();
        let v0: Vec<f64> = start.center.iter().map(|w| w * stretch).collect();
        let v = Var::from_tensor(&tensor_from_f64(v0, &[1, start.center.len()], dtype, device)?)?;
        Ok(Self { v })
    }

    /// The variable `v`, shape `(1, d + 1)`.
    pub fn variable(&self) -> &Var {
        &self.v
    }

    /// The current `w = v / √(1 + |v|²)`, in `f64`.
    pub fn center(&self) -> Result<Vec<f64>> {
        let v: Vec<f64> = self.v.as_tensor().to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let stretch = (1.0 + v.iter().map(|c| c * c).sum::<f64>()).sqrt().recip();
        Ok(v.iter().map(|c| c * stretch).collect())
    }

    /// The fixed map at the current `w`.
    ///
    /// # Panics
    /// When `v` cannot be read (a device failure) or has become non-finite.
    pub fn current(&self) -> SphereMobius {
        let w = self.center().expect("reading the Möbius parameter");
        SphereMobius::new(w).expect("a finite v gives |w| < 1")
    }

    /// `M_(s·w)(x)` and its log-determinant for `s = ±1`, tracked through `v`.
    fn apply(&self, x: &Tensor, sign: f64) -> Result<(Tensor, Tensor)> {
        let v = self.v.as_tensor().to_dtype(x.dtype())?;
        let w = v.broadcast_div(&(v.sqr()?.sum_keepdim(1)? + 1.0)?.sqrt()?)?;
        let w = if sign < 0.0 { w.neg()? } else { w };
        mobius(x, &w, self.v.dim(1)? - 1)
    }
}

impl Diffeomorphism for LearnableSphereMobius {
    fn manifold(&self) -> Manifold {
        Manifold::Sphere { dim: self.v.dims()[1] - 1 }
    }
    mobius_tensor_methods!();
    fn forward_f64(&self, x: &[f64]) -> Vec<f64> {
        self.current().forward_f64(x)
    }
    fn inverse_f64(&self, y: &[f64]) -> Vec<f64> {
        self.current().inverse_f64(y)
    }
    fn log_det_forward_f64(&self, x: &[f64]) -> f64 {
        self.current().log_det_forward_f64(x)
    }
    fn parameters(&self) -> Vec<(&'static str, Var)> {
        vec![("v", self.v.clone())]
    }
    /// The current `w` as `center`, with `learnable = true`.
    fn spec(&self) -> DiffeoSpec {
        DiffeoSpec::SphereMobius { center: self.current().center, learnable: true }
    }
}
