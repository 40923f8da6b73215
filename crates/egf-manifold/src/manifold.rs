//! The [`Manifold`] type: flat tori and round spheres of any dimension.

use std::f64::consts::PI;

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::random;
use crate::tensor_util::{tensor_from_f64, tensor_to_f64_rows};
use crate::{ManifoldError, Result};

/// A compact manifold with its reference measure `λ` (spec section 1).
///
/// | variant | points stored as | `λ` | `vol` |
/// |---|---|---|---|
/// | `Torus { dim: d }` | `d` coordinates in `[0, 1)` | Lebesgue | 1 |
/// | `Sphere { dim: d }` | unit vectors of `R^(d+1)` | surface measure | `2π^((d+1)/2) / Γ((d+1)/2)`, `4π` for `S^2` |
///
/// Batched methods take and return tensors of shape `(n, ambient_dim())`, on any
/// candle device, in `f32` or `f64`. Methods suffixed `_f64` are exact host
/// references on slices of length `ambient_dim()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Manifold {
    /// The flat torus `T^d = R^d / Z^d`.
    Torus {
        /// Intrinsic dimension `d ≥ 1`.
        dim: usize,
    },
    /// The unit sphere `S^d ⊂ R^(d+1)`.
    Sphere {
        /// Intrinsic dimension `d ≥ 1`.
        dim: usize,
    },
}

impl std::fmt::Display for Manifold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Manifold::Torus { dim } => write!(f, "T^{dim}"),
            Manifold::Sphere { dim } => write!(f, "S^{dim}"),
        }
    }
}

impl Manifold {
    /// The torus `T^d`; `d` must be at least 1.
    pub fn torus(dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(ManifoldError::InvalidDimension { manifold: "torus", dim, reason: "need d ≥ 1".into() });
        }
        Ok(Manifold::Torus { dim })
    }

    /// The sphere `S^d ⊂ R^(d+1)`; `d` must be at least 1.
    pub fn sphere(dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(ManifoldError::InvalidDimension { manifold: "sphere", dim, reason: "need d ≥ 1".into() });
        }
        Ok(Manifold::Sphere { dim })
    }

    /// Checks the dimension of a value that may come from a file (`dim ≥ 1`).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Manifold::Torus { dim } => Self::torus(dim).map(|_| ()),
            Manifold::Sphere { dim } => Self::sphere(dim).map(|_| ()),
        }
    }

    /// Intrinsic dimension `d`.
    pub fn dim(&self) -> usize {
        match *self {
            Manifold::Torus { dim } | Manifold::Sphere { dim } => dim,
        }
    }

    /// Number of stored coordinates per point: `d` on `T^d`, `d + 1` on `S^d`.
    pub fn ambient_dim(&self) -> usize {
        match *self {
            Manifold::Torus { dim } => dim,
            Manifold::Sphere { dim } => dim + 1,
        }
    }

    /// Whether this is a torus.
    pub fn is_torus(&self) -> bool {
        matches!(self, Manifold::Torus { .. })
    }

    /// Total volume `vol = λ(M)`: 1 for `T^d`; for `S^d` by the recursion
    /// `vol(S^0) = 2`, `vol(S^1) = 2π`, `vol(S^d) = 2π/(d−1) · vol(S^(d−2))`.
    pub fn volume(&self) -> f64 {
        match *self {
            Manifold::Torus { .. } => 1.0,
            Manifold::Sphere { dim } => {
                let (mut v, mut k) = if dim % 2 == 0 { (2.0, 0) } else { (2.0 * PI, 1) };
                while k < dim {
                    k += 2;
                    v *= 2.0 * PI / (k as f64 - 1.0);
                }
                v
            }
        }
    }

    /// `log vol` in nats; the NLL of the uniform density (`log 4π ≈ 2.531` on `S^2`).
    pub fn log_volume(&self) -> f64 {
        self.volume().ln()
    }

    /// `log(1 / vol)`, the log-density of the uniform distribution with respect to `λ`.
    pub fn log_uniform_density(&self) -> f64 {
        -self.log_volume()
    }

    /// One uniform point (exact reference): i.i.d. `U[0,1)` coordinates on the
    /// torus, a normalized standard Gaussian vector on the sphere.
    pub fn sample_uniform_f64<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        match *self {
            Manifold::Torus { dim } => (0..dim).map(|_| rng.random::<f64>()).collect(),
            Manifold::Sphere { dim } => loop {
                let v: Vec<f64> = (0..=dim).map(|_| rng.sample(StandardNormal)).collect();
                let r = norm(&v);
                if r > 1e-12 {
                    break v.into_iter().map(|c| c / r).collect();
                }
            },
        }
    }

    /// `n` uniform points as an `(n, ambient_dim)` tensor of `dtype` on `device`,
    /// drawn from the host generator `rng` (identical on every device for a seed).
    pub fn sample_uniform<R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let data: Vec<f64> = (0..n).flat_map(|_| self.sample_uniform_f64(rng)).collect();
        tensor_from_f64(data, &[n, self.ambient_dim()], dtype, device)
    }

    /// Maps ambient coordinates back onto the manifold in place: `x mod 1` on the
    /// torus, `x / |x|` on the sphere (a zero vector is left as is).
    pub fn project_f64(&self, x: &mut [f64]) {
        match self {
            Manifold::Torus { .. } => x.iter_mut().for_each(|c| *c = crate::coords::wrap_unit(*c)),
            Manifold::Sphere { .. } => {
                let r = norm(x);
                if r > 0.0 {
                    x.iter_mut().for_each(|c| *c /= r);
                }
            }
        }
    }

    /// Batched [`project_f64`](Self::project_f64): `x − ⌊x⌋` on the torus (in `f32`
    /// a tiny negative input may give exactly 1.0, the same point as 0), `x / |x|` on the sphere.
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        self.check_shape(x)?;
        Ok(match self {
            Manifold::Torus { .. } => (x - x.floor()?)?,
            Manifold::Sphere { .. } => x.broadcast_div(&x.sqr()?.sum_keepdim(1)?.sqrt()?)?,
        })
    }

    /// Whether `x` lies on the manifold within `tol`: torus coordinates in
    /// `[−tol, 1 + tol]`, sphere `||x| − 1| ≤ tol`; always false for non-finite values.
    pub fn contains_f64(&self, x: &[f64], tol: f64) -> bool {
        self.check_point_f64(x, tol).is_ok()
    }

    /// Like [`contains_f64`](Self::contains_f64) but says what is wrong, as an error for row `index`.
    pub fn check_point_f64(&self, x: &[f64], tol: f64) -> Result<()> {
        self.check_point_at(x, tol, 0)
    }

    fn check_point_at(&self, x: &[f64], tol: f64, index: usize) -> Result<()> {
        let off = |reason: String| ManifoldError::OffManifold {
            index,
            manifold: self.to_string(),
            point: x.to_vec(),
            reason,
        };
        if x.len() != self.ambient_dim() {
            return Err(off(format!("expected {} coordinates, got {}", self.ambient_dim(), x.len())));
        }
        if x.iter().any(|c| !c.is_finite()) {
            return Err(off("non-finite coordinate".into()));
        }
        match self {
            Manifold::Torus { .. } => {
                if let Some(c) = x.iter().find(|c| **c < -tol || **c > 1.0 + tol) {
                    return Err(off(format!("coordinate {c} outside [0, 1) (tolerance {tol})")));
                }
            }
            Manifold::Sphere { .. } => {
                let r = norm(x);
                if (r - 1.0).abs() > tol {
                    return Err(off(format!("norm {r} differs from 1 by more than {tol}")));
                }
            }
        }
        Ok(())
    }

    /// Checks that `x` has shape `(n, ambient_dim)`.
    pub fn check_shape(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, c] if *c == self.ambient_dim() => Ok(()),
            dims => Err(ManifoldError::ShapeMismatch {
                expected: format!("(n, {}) for {self}", self.ambient_dim()),
                got: dims.to_vec(),
            }),
        }
    }

    /// Checks a whole batch: shape, finiteness and membership within `tol`;
    /// the error names the first offending row. Copies the batch to the host
    /// (a validation step for inputs, not for inner loops).
    pub fn check_points(&self, x: &Tensor, tol: f64) -> Result<()> {
        self.check_shape(x)?;
        let (v, rows, cols) = tensor_to_f64_rows(x)?;
        (0..rows).try_for_each(|i| self.check_point_at(&v[i * cols..(i + 1) * cols], tol, i))
    }

    /// Geodesic distance: on the torus the Euclidean norm of the shortest
    /// representative of `a − b` (each component in `[−1/2, 1/2]`); on the sphere the angle `arccos(a·b)`.
    pub fn distance_f64(&self, a: &[f64], b: &[f64]) -> f64 {
        match self {
            Manifold::Torus { .. } => a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let d = (x - y).rem_euclid(1.0);
                    let d = d.min(1.0 - d);
                    d * d
                })
                .sum::<f64>()
                .sqrt(),
            Manifold::Sphere { .. } => {
                // atan2 form is accurate for tiny and near-antipodal angles alike.
                let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
                let sum: Vec<f64> = a.iter().zip(b).map(|(x, y)| x + y).collect();
                2.0 * norm(&diff).atan2(norm(&sum))
            }
        }
    }

    /// Random perturbation of each point by an isotropic Gaussian of scale
    /// `sigma` (in radians on the sphere, in coordinate units on the torus):
    /// torus `x + σ ε mod 1`; sphere `exp_x(σ P_x ε)`, the exponential map of a
    /// tangent Gaussian (`P_x` the projection onto the tangent space).
    pub fn perturb<R: Rng + ?Sized>(&self, x: &Tensor, sigma: f64, rng: &mut R) -> Result<Tensor> {
        self.check_shape(x)?;
        let (n, c) = x.dims2()?;
        let eps = (random::normal(rng, &[n, c], x.dtype(), x.device())? * sigma)?;
        match self {
            Manifold::Torus { .. } => self.project(&(x + eps)?),
            Manifold::Sphere { .. } => {
                let radial = (x * &eps)?.sum_keepdim(1)?;
                let v = (eps - x.broadcast_mul(&radial)?)?;
                let len = v.sqr()?.sum_keepdim(1)?.sqrt()?;
                // sin(|v|)/|v| is finite at |v| = 0 through the guard 1e-30.
                let dir = v.broadcast_div(&(&len + 1e-30)?)?;
                let moved = (x.broadcast_mul(&len.cos()?)? + dir.broadcast_mul(&len.sin()?)?)?;
                self.project(&moved)
            }
        }
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|c| c * c).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn volumes() {
        assert_eq!(Manifold::torus(3).unwrap().volume(), 1.0);
        let s = |d| Manifold::sphere(d).unwrap().volume();
        assert!((s(1) - 2.0 * PI).abs() < 1e-12);
        assert!((s(2) - 4.0 * PI).abs() < 1e-12);
        assert!((s(3) - 2.0 * PI * PI).abs() < 1e-12);
        assert!((s(4) - 8.0 * PI * PI / 3.0).abs() < 1e-12);
        assert!((Manifold::sphere(2).unwrap().log_volume() - 2.531024246969291).abs() < 1e-12);
        assert!(Manifold::torus(0).is_err() && Manifold::sphere(0).is_err());
    }

    #[test]
    fn uniform_samples_are_on_manifold_and_centered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for m in [Manifold::torus(2).unwrap(), Manifold::sphere(2).unwrap(), Manifold::sphere(4).unwrap()] {
            let x = m.sample_uniform(20_000, &mut rng, DType::F64, &Device::Cpu).unwrap();
            m.check_points(&x, 1e-12).unwrap();
            let mean = x.mean(0).unwrap().to_vec1::<f64>().unwrap();
            let center = if m.is_torus() { 0.5 } else { 0.0 };
            // standard error of a coordinate mean is below 0.3/sqrt(20000) ≈ 0.002
            assert!(mean.iter().all(|v| (v - center).abs() < 0.01), "{m}: {mean:?}");
        }
    }

    #[test]
    fn projection_and_membership() {
        let t = Manifold::torus(2).unwrap();
        let x = Tensor::new(&[[1.25f64, -0.25], [0.5, 3.0]], &Device::Cpu).unwrap();
        assert_eq!(t.project(&x).unwrap().to_vec2::<f64>().unwrap(), vec![vec![0.25, 0.75], vec![0.5, 0.0]]);
        let s = Manifold::sphere(2).unwrap();
        let y = Tensor::new(&[[3.0f64, 0.0, 4.0]], &Device::Cpu).unwrap();
        assert_eq!(s.project(&y).unwrap().to_vec2::<f64>().unwrap(), vec![vec![0.6, 0.0, 0.8]]);
        assert!(s.contains_f64(&[0.6, 0.0, 0.8], 1e-12));
        assert!(!s.contains_f64(&[0.6, 0.0, 0.9], 1e-3));
        assert!(!t.contains_f64(&[0.5, f64::NAN], 1.0));
        let err = s
            .check_points(&Tensor::new(&[[1.0f64, 0.0, 0.0], [2.0, 0.0, 0.0]], &Device::Cpu).unwrap(), 1e-6)
            .unwrap_err();
        assert!(matches!(err, ManifoldError::OffManifold { index: 1, .. }), "{err}");
        let err = s.check_points(&Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap(), 1e-6).unwrap_err();
        assert!(matches!(err, ManifoldError::ShapeMismatch { .. }));
    }

    #[test]
    fn distances() {
        let t = Manifold::torus(2).unwrap();
        assert!((t.distance_f64(&[0.05, 0.5], &[0.95, 0.5]) - 0.1).abs() < 1e-12);
        let s = Manifold::sphere(2).unwrap();
        assert!((s.distance_f64(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]) - PI / 2.0).abs() < 1e-12);
        assert!((s.distance_f64(&[1.0, 0.0, 0.0], &[-1.0, 0.0, 0.0]) - PI).abs() < 1e-12);
    }

    #[test]
    fn perturbation_stays_on_manifold_with_the_right_scale() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let s = Manifold::sphere(2).unwrap();
        let x = s.sample_uniform(5000, &mut rng, DType::F64, &Device::Cpu).unwrap();
        let y = s.perturb(&x, 0.02, &mut rng).unwrap();
        s.check_points(&y, 1e-12).unwrap();
        let xv = x.to_vec2::<f64>().unwrap();
        let yv = y.to_vec2::<f64>().unwrap();
        // geodesic distance of a 2-d tangent Gaussian: mean σ·sqrt(π/2)
        let mean: f64 = xv.iter().zip(&yv).map(|(a, b)| s.distance_f64(a, b)).sum::<f64>() / 5000.0;
        assert!((mean - 0.02 * (PI / 2.0).sqrt()).abs() < 0.001, "{mean}");
        let t = Manifold::torus(2).unwrap();
        let x = t.sample_uniform(100, &mut rng, DType::F32, &Device::Cpu).unwrap();
        t.check_points(&t.perturb(&x, 0.5, &mut rng).unwrap(), 1e-6).unwrap();
    }
}
