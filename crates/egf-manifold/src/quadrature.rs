//! Quadrature grids: points `x_k` and weights `w_k` with `Σ_k w_k f(x_k) ≈ ∫ f dλ`.

use std::f64::consts::PI;

use candle_core::{DType, Device, Tensor};

use crate::tensor_util::tensor_from_f64;
use crate::{Manifold, ManifoldError, Result};

/// Points and weights of a quadrature rule on a [`Manifold`], integrating with
/// respect to its reference measure `λ` (so `Σ w_k = vol`).
///
/// * Torus `T^d` (`d ≤ 3`): the midpoint grid with `n` points per axis, weights
///   `1/n^d`. For smooth periodic functions it is spectrally accurate: it
///   integrates every trigonometric polynomial of degree `< n` per axis exactly.
/// * Sphere `S^2`, [`sphere_gauss_legendre`](Self::sphere_gauss_legendre): Gauss–Legendre
///   nodes in `z = sin(latitude)` times `2n` equispaced longitudes; exact for
///   spherical harmonics of degree `≤ 2n − 1`.
/// * Sphere `S^2`, [`sphere_equiangular`](Self::sphere_equiangular): cell centres of a
///   latitude/longitude grid with the exact cell areas as weights (for maps).
/// * Circle `S^1`: `n` equispaced angles, weights `2π/n`.
/// * Torus `T^d`, `d ≥ 4`, and sphere `S^d`, `d ≥ 3`, where a product grid would need
///   `n^d` points, [`quasi_monte_carlo`](Self::quasi_monte_carlo): `2n²` points of a
///   Kronecker low-discrepancy sequence with equal weights `vol/N` (as many points as the
///   `S^2` grid of the same resolution; doubling `n` quadruples them, and the smaller rule
///   is nested in the larger). Its error is `O((log N)^d / N)` for functions of bounded
///   variation, not spectral: use it where there is no grid.
#[derive(Clone, Debug)]
pub struct QuadratureGrid {
    manifold: Manifold,
    points: Vec<f64>,
    weights: Vec<f64>,
}

impl QuadratureGrid {
    /// The default rule of `manifold` with resolution `n`: `n` points per axis on `T^d`,
    /// `d ≤ 3`; `n` Gauss–Legendre latitudes on `S^2`; `n` points on `S^1`; elsewhere
    /// `2n²` quasi-Monte-Carlo points.
    pub fn new(manifold: Manifold, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(ManifoldError::Unsupported("quadrature resolution must be ≥ 1".into()));
        }
        match manifold {
            Manifold::Torus { dim } if dim <= 3 => Self::torus_midpoint(dim, n),
            Manifold::Torus { .. } => Self::quasi_monte_carlo(manifold, 2 * n * n),
            Manifold::Sphere { dim: 1 } => {
                let (points, weights) = (0..n)
                    .map(|k| {
                        let a = 2.0 * PI * (k as f64 + 0.5) / n as f64;
                        ([a.cos(), a.sin()], 2.0 * PI / n as f64)
                    })
                    .fold((Vec::new(), Vec::new()), |(mut p, mut w), (x, wk)| {
                        p.extend_from_slice(&x);
                        w.push(wk);
                        (p, w)
                    });
                Ok(Self { manifold, points, weights })
            }
            Manifold::Sphere { dim: 2 } => Self::sphere_gauss_legendre(n),
            Manifold::Sphere { .. } => Self::quasi_monte_carlo(manifold, 2 * n * n),
        }
    }

    /// The equal-weight rule over the first `points` points of the Kronecker
    /// low-discrepancy sequence of `manifold` (`crate::low_discrepancy`: on `T^d` the
    /// sequence itself, on `S^d` its Box–Muller image normalized to unit length), each
    /// weighted `vol/points`. Any dimension; the default rule of [`new`](Self::new) on
    /// `T^d`, `d ≥ 4`, and `S^d`, `d ≥ 3`.
    pub fn quasi_monte_carlo(manifold: Manifold, points: usize) -> Result<Self> {
        if points == 0 {
            return Err(ManifoldError::Unsupported("a quadrature rule needs at least one point".into()));
        }
        let coords = match manifold {
            Manifold::Torus { dim } => crate::low_discrepancy::kronecker(points, dim),
            Manifold::Sphere { dim } => crate::low_discrepancy::sphere_points(points, dim),
        };
        Ok(Self { manifold, points: coords, weights: vec![manifold.volume() / points as f64; points] })
    }

    /// Midpoint grid on `T^d`, `n` points per axis, `d ≤ 3`.
    pub fn torus_midpoint(dim: usize, n: usize) -> Result<Self> {
        let manifold = Manifold::torus(dim)?;
        if dim > 3 {
            return Err(ManifoldError::Unsupported(format!(
                "grid quadrature on T^{dim} (d ≤ 3 only; use QuadratureGrid::quasi_monte_carlo)"
            )));
        }
        let total = n.pow(dim as u32);
        let mut points = Vec::with_capacity(total * dim);
        for k in 0..total {
            let mut r = k;
            // first coordinate varies slowest: row-major image layout for d = 2
            let mut coord = vec![0.0; dim];
            for j in (0..dim).rev() {
                coord[j] = ((r % n) as f64 + 0.5) / n as f64;
                r /= n;
            }
            points.extend_from_slice(&coord);
        }
        Ok(Self { manifold, points, weights: vec![1.0 / total as f64; total] })
    }

    /// Gauss–Legendre product grid on `S^2` with `n_lat` nodes in `z` and `2 n_lat` longitudes.
    pub fn sphere_gauss_legendre(n_lat: usize) -> Result<Self> {
        let (z, wz) = gauss_legendre(n_lat);
        let n_lon = 2 * n_lat;
        let dlon = 2.0 * PI / n_lon as f64;
        let mut points = Vec::with_capacity(n_lat * n_lon * 3);
        let mut weights = Vec::with_capacity(n_lat * n_lon);
        for (zi, wi) in z.iter().zip(&wz) {
            let r = (1.0 - zi * zi).max(0.0).sqrt();
            for j in 0..n_lon {
                let lon = -PI + (j as f64 + 0.5) * dlon;
                points.extend_from_slice(&[r * lon.cos(), r * lon.sin(), *zi]);
                weights.push(wi * dlon);
            }
        }
        Ok(Self { manifold: Manifold::Sphere { dim: 2 }, points, weights })
    }

    /// Cell centres of the `n_lat × n_lon` latitude/longitude grid on `S^2`,
    /// ordered from north-west (latitude 90°, longitude −180°) row by row, each
    /// weighted by the exact area of its cell, `Δθ · (sin φ_top − sin φ_bottom)`.
    pub fn sphere_equiangular(n_lat: usize, n_lon: usize) -> Result<Self> {
        if n_lat == 0 || n_lon == 0 {
            return Err(ManifoldError::Unsupported("grid sizes must be ≥ 1".into()));
        }
        let dlat = PI / n_lat as f64;
        let dlon = 2.0 * PI / n_lon as f64;
        let mut points = Vec::with_capacity(n_lat * n_lon * 3);
        let mut weights = Vec::with_capacity(n_lat * n_lon);
        for i in 0..n_lat {
            let top = PI / 2.0 - i as f64 * dlat;
            let bottom = top - dlat;
            let phi = top - dlat / 2.0;
            let area = dlon * (top.sin() - bottom.sin());
            for j in 0..n_lon {
                let lon = -PI + (j as f64 + 0.5) * dlon;
                points.extend_from_slice(&[phi.cos() * lon.cos(), phi.cos() * lon.sin(), phi.sin()]);
                weights.push(area);
            }
        }
        Ok(Self { manifold: Manifold::Sphere { dim: 2 }, points, weights })
    }

    /// The manifold the grid lives on.
    pub fn manifold(&self) -> Manifold {
        self.manifold
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the grid has no points.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Point `k` as a slice of `ambient_dim` coordinates.
    pub fn point(&self, k: usize) -> &[f64] {
        let c = self.manifold.ambient_dim();
        &self.points[k * c..(k + 1) * c]
    }

    /// All points, row-major `(len, ambient_dim)`.
    pub fn points(&self) -> &[f64] {
        &self.points
    }

    /// The weights (`Σ w_k = vol`).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `Σ_k w_k f(x_k)` in `f64`.
    pub fn integrate_f64(&self, mut f: impl FnMut(&[f64]) -> f64) -> f64 {
        (0..self.len()).map(|k| self.weights[k] * f(self.point(k))).sum()
    }

    /// Points `start .. start + len` as a `(len, ambient_dim)` tensor and their
    /// weights as a `(len,)` tensor, for chunked evaluation with bounded memory.
    pub fn chunk_tensors(&self, start: usize, len: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let end = (start + len).min(self.len());
        let c = self.manifold.ambient_dim();
        let p = tensor_from_f64(self.points[start * c..end * c].to_vec(), &[end - start, c], dtype, device)?;
        let w = tensor_from_f64(self.weights[start..end].to_vec(), &[end - start], dtype, device)?;
        Ok((p, w))
    }

    /// Ranges `(start, len)` that cover the grid in chunks of at most `chunk` points.
    pub fn chunks(&self, chunk: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let chunk = chunk.max(1);
        (0..self.len()).step_by(chunk).map(move |s| (s, chunk.min(self.len() - s)))
    }
}

/// Gauss–Legendre nodes and weights on `[−1, 1]` (`n` nodes, exact for polynomials
/// of degree `≤ 2n − 1`), by Newton's method on `P_n` from Tricomi's initial guesses.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // three-term recurrence for P_n(x) and its derivative
            let (mut p0, mut p1) = (1.0, x);
            if n == 1 {
                p1 = x;
                p0 = 1.0;
            } else {
                for k in 2..=n {
                    let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                    p0 = p1;
                    p1 = p2;
                }
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[i] = -x;
        nodes[n - 1 - i] = x;
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_is_exact_for_polynomials() {
        for n in [1, 2, 5, 16, 33] {
            let (x, w) = gauss_legendre(n);
            assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-13, "n={n}");
            for deg in 0..(2 * n) {
                let exact = if deg % 2 == 1 { 0.0 } else { 2.0 / (deg as f64 + 1.0) };
                let q: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(deg as i32)).sum();
                assert!((q - exact).abs() < 1e-12, "n={n} deg={deg}: {q} vs {exact}");
            }
        }
    }

    #[test]
    fn constant_integrates_to_volume() {
        for (grid, vol) in [
            (QuadratureGrid::new(Manifold::torus(1).unwrap(), 7).unwrap(), 1.0),
            (QuadratureGrid::new(Manifold::torus(2).unwrap(), 64).unwrap(), 1.0),
            (QuadratureGrid::new(Manifold::torus(3).unwrap(), 12).unwrap(), 1.0),
            (QuadratureGrid::new(Manifold::sphere(1).unwrap(), 50).unwrap(), 2.0 * PI),
            (QuadratureGrid::new(Manifold::sphere(2).unwrap(), 40).unwrap(), 4.0 * PI),
            (QuadratureGrid::sphere_equiangular(90, 180).unwrap(), 4.0 * PI),
            (QuadratureGrid::new(Manifold::torus(4).unwrap(), 8).unwrap(), 1.0),
            (QuadratureGrid::new(Manifold::sphere(3).unwrap(), 8).unwrap(), 2.0 * PI * PI),
            (QuadratureGrid::new(Manifold::sphere(4).unwrap(), 8).unwrap(), 8.0 * PI * PI / 3.0),
        ] {
            assert!((grid.integrate_f64(|_| 1.0) - vol).abs() < 1e-6 * vol.max(1.0), "{:?}", grid.manifold());
            let m = grid.manifold();
            assert!((0..grid.len()).all(|k| m.contains_f64(grid.point(k), 1e-12)));
        }
        // where there is no product grid: 2n² quasi-Monte-Carlo points
        assert_eq!(QuadratureGrid::new(Manifold::torus(4).unwrap(), 8).unwrap().len(), 128);
        assert_eq!(QuadratureGrid::new(Manifold::sphere(3).unwrap(), 8).unwrap().len(), 128);
        assert!(QuadratureGrid::torus_midpoint(4, 4).is_err());
        assert!(QuadratureGrid::quasi_monte_carlo(Manifold::sphere(3).unwrap(), 0).is_err());
    }

    /// The quasi-Monte-Carlo rule on `T^4`, `S^3` and `S^5` against exact integrals: with
    /// 64 000 points its error is several times below the standard error `σ_f/√N` that
    /// the same number of independent uniform draws would have.
    #[test]
    fn quasi_monte_carlo_rule_beats_independent_draws() {
        // ∫_{T^4} Π_j (1 + cos 2π x_j + x_j) dλ = Π_j (1 + 1/2) = 81/16
        let torus = |x: &[f64]| x.iter().map(|v| 1.0 + (2.0 * PI * v).cos() + v).product::<f64>();
        // on S^d, ∫ x_j² dλ = vol/(d + 1) and ∫ x_j⁴ dλ = 3 vol/((d + 1)(d + 3))
        let v3 = 2.0 * PI * PI;
        let v5 = Manifold::sphere(5).unwrap().volume();
        type Integrand = Box<dyn Fn(&[f64]) -> f64>;
        let cases: [(Manifold, Integrand, f64); 3] = [
            (Manifold::torus(4).unwrap(), Box::new(torus), 81.0 / 16.0),
            (Manifold::sphere(3).unwrap(), Box::new(|x: &[f64]| x[0] * x[0] + 2.0 * x[3].powi(4)), {
                v3 / 4.0 + 2.0 * 3.0 * v3 / (4.0 * 6.0)
            }),
            (Manifold::sphere(5).unwrap(), Box::new(|x: &[f64]| (x[1] + 0.5).powi(2)), v5 / 6.0 + 0.25 * v5),
        ];
        let n = 64_000;
        for (m, f, exact) in &cases {
            let rule = QuadratureGrid::quasi_monte_carlo(*m, n).unwrap();
            let error = (rule.integrate_f64(f) - exact).abs();
            // σ of vol·f(X) for X uniform, estimated on the rule's own points
            let vol = m.volume();
            let mean = exact / vol;
            let var = rule.integrate_f64(|x| (f(x) - mean).powi(2)) / vol;
            let standard_error = vol * var.sqrt() / (n as f64).sqrt();
            assert!(error < standard_error / 4.0, "{m}: error {error:.2e}, Monte Carlo's {standard_error:.2e}");
        }
    }

    #[test]
    fn product_of_cosines_on_torus() {
        // ∫_{T^2} (1 + cos 2πx)(1 + 0.5 cos 2π(2y)) e^{sin 2πx} dλ has the exact value
        // ∫(1+cos 2πx) e^{sin 2πx} dx = I_0(1) (the cos term integrates to 0).
        let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 32).unwrap();
        let f = |x: &[f64]| {
            let (a, b) = (2.0 * PI * x[0], 2.0 * PI * x[1]);
            (1.0 + a.cos()) * (1.0 + 0.5 * (2.0 * b).cos()) * a.sin().exp()
        };
        let i0_of_1 = 1.2660658777520082;
        assert!((grid.integrate_f64(f) - i0_of_1).abs() < 1e-12);
    }

    #[test]
    fn von_mises_fisher_on_sphere() {
        // vMF density κ/(4π sinh κ) e^{κ μ·x} integrates to 1.
        let mu = [0.3f64, -0.5, 0.8124038404635961];
        let kappa = 20.0f64;
        let c = kappa / (4.0 * PI * kappa.sinh());
        let f = |x: &[f64]| c * (kappa * (mu[0] * x[0] + mu[1] * x[1] + mu[2] * x[2])).exp();
        let gl = QuadratureGrid::sphere_gauss_legendre(64).unwrap();
        assert!((gl.integrate_f64(f) - 1.0).abs() < 1e-6, "{}", gl.integrate_f64(f));
        // the equiangular midpoint grid is second order: 720 x 1440 cells give 1e-5
        let eq = QuadratureGrid::sphere_equiangular(360, 720).unwrap();
        assert!((eq.integrate_f64(f) - 1.0).abs() < 1e-4, "{}", eq.integrate_f64(f));
    }

    #[test]
    fn chunks_cover_the_grid() {
        let grid = QuadratureGrid::new(Manifold::sphere(2).unwrap(), 10).unwrap();
        let mut total = 0.0;
        for (s, l) in grid.chunks(37) {
            let (p, w) = grid.chunk_tensors(s, l, DType::F64, &Device::Cpu).unwrap();
            assert_eq!(p.dims(), &[l, 3]);
            total += w.sum_all().unwrap().to_scalar::<f64>().unwrap();
        }
        assert!((total - 4.0 * PI).abs() < 1e-12);
    }
}
