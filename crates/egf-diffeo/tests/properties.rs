//! Property tests of every map kind and of families, with random parameters and points:
//! inverses, log-determinants against finite differences, invariance of the
//! reference measure (change of variables), tensor versus `f64` implementations,
//! and the member-major layout of [`Family`].

use std::f64::consts::TAU;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use egf_diffeo::{DiffeoSpec, Diffeomorphism, Family, FamilySpec};
use egf_manifold::tensor_util::{tensor_from_f64, tensor_to_f64_rows};
use egf_manifold::{test_device, Manifold, QuadratureGrid};
use nalgebra::{DMatrix, Rotation3, Vector3};
use proptest::prelude::*;
use rand::SeedableRng;

/// A random map and the manifold it acts on.
#[derive(Clone, Debug)]
struct MapCase {
    spec: DiffeoSpec,
    manifold: Manifold,
}

impl MapCase {
    fn build(&self) -> Arc<dyn Diffeomorphism> {
        self.spec.build(self.manifold).unwrap()
    }
}

fn torus_case(spec: DiffeoSpec, d: usize) -> MapCase {
    MapCase { spec, manifold: Manifold::Torus { dim: d } }
}

fn translation(d: usize) -> BoxedStrategy<MapCase> {
    prop::collection::vec(-2.0..2.0f64, d)
        .prop_map(move |shift| torus_case(DiffeoSpec::TorusTranslation { shift }, d))
        .boxed()
}

/// `A ∈ SL_d(Z)`: a product of `1 ..= factors` elementary matrices `I + k E_ij`
/// (`i ≠ j`, `|k| ≤ max_k`), and a shift in `[−1, 1)^d`.
fn affine(d: usize, factors: usize, max_k: i32) -> BoxedStrategy<MapCase> {
    (prop::collection::vec((0..d, 0..d - 1, -max_k..=max_k), 1..=factors), prop::collection::vec(-1.0..1.0f64, d))
        .prop_map(move |(elementary, shift)| {
            let mut m = DMatrix::<f64>::identity(d, d);
            for (i, j, k) in elementary {
                let j = if j >= i { j + 1 } else { j };
                let mut e = DMatrix::<f64>::identity(d, d);
                e[(i, j)] = k as f64;
                m *= e;
            }
            let matrix = (0..d).map(|i| (0..d).map(|j| m[(i, j)]).collect()).collect();
            torus_case(DiffeoSpec::TorusAffine { matrix, shift }, d)
        })
        .boxed()
}

fn shear(d: usize) -> BoxedStrategy<MapCase> {
    (0..d, 0..d - 1, -1.0..1.0f64, 0.0..1.0f64)
        .prop_map(move |(target, s, amplitude, phase)| {
            let source = if s >= target { s + 1 } else { s };
            torus_case(DiffeoSpec::TorusShear { dim: d, target, source, amplitude, phase }, d)
        })
        .boxed()
}

fn warp(d: usize) -> BoxedStrategy<MapCase> {
    prop::collection::vec(-0.9..0.9f64, d)
        .prop_map(move |amplitudes| torus_case(DiffeoSpec::TorusWarp { amplitudes }, d))
        .boxed()
}

fn sphere_case(spec: DiffeoSpec, c: usize) -> MapCase {
    MapCase { spec, manifold: Manifold::Sphere { dim: c - 1 } }
}

fn rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect()).collect()
}

/// A random rotation of `R^c`: from a scaled axis for `c = 3` (nalgebra's
/// `Rotation3`), otherwise the orthogonal factor of the QR decomposition of a
/// random matrix, with a column flipped if its determinant is −1.
fn rotation(c: usize) -> BoxedStrategy<MapCase> {
    if c == 3 {
        prop::array::uniform3(-4.0..4.0f64)
            .prop_map(|v| {
                let r = Rotation3::from_scaled_axis(Vector3::from(v));
                let m = DMatrix::from_fn(3, 3, |i, j| r.matrix()[(i, j)]);
                sphere_case(DiffeoSpec::SphereRotation { matrix: rows(&m) }, 3)
            })
            .boxed()
    } else {
        prop::collection::vec(-1.0..1.0f64, c * c)
            .prop_filter("well-conditioned", move |v| DMatrix::from_row_slice(c, c, v).determinant().abs() > 1e-2)
            .prop_map(move |v| {
                let mut q = DMatrix::from_row_slice(c, c, &v).qr().q();
                if q.determinant() < 0.0 {
                    q.column_mut(0).neg_mut();
                }
                sphere_case(DiffeoSpec::SphereRotation { matrix: rows(&q) }, c)
            })
            .boxed()
    }
}

fn mobius(c: usize) -> BoxedStrategy<MapCase> {
    (prop::collection::vec(-1.0..1.0f64, c), 0.0..0.8f64)
        .prop_map(move |(v, r)| {
            let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            let center = if n < 1e-3 {
                (0..c).map(|i| if i == 0 { r } else { 0.0 }).collect()
            } else {
                v.iter().map(|a| r * a / n).collect()
            };
            sphere_case(DiffeoSpec::SphereMobius { center, learnable: false }, c)
        })
        .boxed()
}

/// Every kind of map on `T^1 … T^3` and `S^1 … S^3`. With `small_affine`, affine
/// matrices are products of at most 3 elementary matrices with `k = ±1` (entries
/// ≤ 3, for `f32` accuracy); otherwise up to 6 factors with `|k| ≤ 3`.
fn any_map(small_affine: bool) -> BoxedStrategy<MapCase> {
    let (factors, max_k) = if small_affine { (3, 1) } else { (6, 3) };
    prop_oneof![
        translation(1),
        translation(2),
        translation(3),
        affine(2, factors, max_k),
        affine(3, factors, max_k),
        shear(2),
        shear(3),
        warp(1),
        warp(2),
        warp(3),
        rotation(2),
        rotation(3),
        rotation(4),
        mobius(2),
        mobius(3),
        mobius(4),
    ]
    .boxed()
}

/// `n` uniform points of `m` from a seed.
fn points(m: Manifold, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| m.sample_uniform_f64(&mut rng)).collect()
}

fn batch(pts: &[Vec<f64>], dtype: DType) -> Tensor {
    let c = pts[0].len();
    tensor_from_f64(pts.concat(), &[pts.len(), c], dtype, &test_device()).unwrap()
}

fn unbatch(t: &Tensor) -> Vec<Vec<f64>> {
    let (v, _, c) = tensor_to_f64_rows(t).unwrap();
    v.chunks(c).map(|r| r.to_vec()).collect()
}

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// A finite-difference estimate of `log |det DΦ(x)|` in local coordinates:
/// plain coordinates on the torus; on the sphere, orthonormal tangent bases
/// `E_x`, `E_y` at `x` and `y = Φ(x)` and `det(E_yᵀ DΦ E_x)`, the columns of
/// `DΦ E_x` by central differences along the geodesics `cos h · x ± sin h · e_k`.
fn fd_log_det(map: &dyn Diffeomorphism, m: Manifold, x: &[f64]) -> f64 {
    let h = 1e-5;
    let d = m.dim();
    let jac = match m {
        Manifold::Torus { .. } => DMatrix::from_fn(d, d, |i, j| {
            let shifted = |s: f64| {
                let mut z = x.to_vec();
                z[j] = (z[j] + s).rem_euclid(1.0);
                map.forward_f64(&z)[i]
            };
            let diff = shifted(h) - shifted(-h);
            (diff - diff.round()) / (2.0 * h)
        }),
        Manifold::Sphere { .. } => {
            let ex = tangent_basis(x);
            let y = map.forward_f64(x);
            let ey = tangent_basis(&y);
            let cols: Vec<Vec<f64>> = ex
                .iter()
                .map(|e| {
                    let at = |s: f64| -> Vec<f64> {
                        let z: Vec<f64> = x.iter().zip(e).map(|(a, b)| a * s.cos() + b * s.sin()).collect();
                        map.forward_f64(&z)
                    };
                    at(h).iter().zip(at(-h)).map(|(a, b)| (a - b) / (2.0 * h)).collect()
                })
                .collect();
            DMatrix::from_fn(d, d, |i, k| ey[i].iter().zip(&cols[k]).map(|(a, b)| a * b).sum())
        }
    };
    jac.determinant().abs().ln()
}

/// An orthonormal basis of the tangent space `x^⊥` (Gram–Schmidt of the coordinate axes against `x`).
fn tangent_basis(x: &[f64]) -> Vec<Vec<f64>> {
    let c = x.len();
    let mut basis: Vec<Vec<f64>> = vec![x.to_vec()];
    for k in 0..c {
        let mut v: Vec<f64> = (0..c).map(|i| f64::from(u8::from(i == k))).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(b).for_each(|(a, b)| *a -= dot * b);
        }
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if n > 0.1 && basis.len() < c {
            basis.push(v.into_iter().map(|a| a / n).collect());
        }
    }
    basis.remove(0);
    basis
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(64))]

    /// `Φ⁻¹(Φ(x)) = x` and `Φ(Φ⁻¹(x)) = x` to 1e-10 in `f64`; outputs stay on the manifold.
    #[test]
    fn f64_maps_invert(case in any_map(false), seed in any::<u64>()) {
        let map = case.build();
        let m = case.manifold;
        for x in points(m, 16, seed) {
            let y = map.forward_f64(&x);
            let z = map.inverse_f64(&x);
            prop_assert!(m.contains_f64(&y, 1e-12) && m.contains_f64(&z, 1e-12), "{y:?} {z:?}");
            if m.is_torus() {
                prop_assert!(y.iter().chain(&z).all(|c| (0.0..1.0).contains(c)), "{y:?} {z:?}");
            }
            prop_assert!(m.distance_f64(&map.inverse_f64(&y), &x) < 1e-10, "{x:?} -> {y:?}");
            prop_assert!(m.distance_f64(&map.forward_f64(&z), &x) < 1e-10, "{x:?} -> {z:?}");
            let mut out = vec![0.0; x.len()];
            map.forward_f64_into(&x, &mut out);
            prop_assert_eq!(&out, &y);
        }
    }

    /// The same in batched `f32` tensors, to 1e-5 (torus wrap-around distance).
    #[test]
    fn f32_tensor_maps_invert(case in any_map(true), seed in any::<u64>()) {
        let map = case.build();
        let m = case.manifold;
        let x = batch(&points(m, 32, seed), DType::F32);
        let y = map.forward(&x).unwrap();
        let z = map.inverse(&x).unwrap();
        prop_assert_eq!(y.dtype(), DType::F32);
        m.check_points(&y, 1e-5).unwrap();
        m.check_points(&z, 1e-5).unwrap();
        let x0 = unbatch(&x);
        for (a, b) in x0.iter().zip(unbatch(&map.inverse(&y).unwrap())) {
            prop_assert!(m.distance_f64(a, &b) < 1e-5, "{a:?} vs {b:?}");
        }
        for (a, b) in x0.iter().zip(unbatch(&map.forward(&z).unwrap())) {
            prop_assert!(m.distance_f64(a, &b) < 1e-5, "{a:?} vs {b:?}");
        }
    }

    /// Batched `f64` tensors agree with the `f64` references to 1e-12, `f32` tensors
    /// to 1e-5 (maps) and `1e-5 (1 + |log det|)` (log-determinants).
    #[test]
    fn tensors_agree_with_f64_references(case in any_map(true), seed in any::<u64>()) {
        let map = case.build();
        let m = case.manifold;
        let pts = points(m, 32, seed);
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let x = batch(&pts, dtype);
            // the reference sees the same (rounded) input as the tensor code
            let xr = unbatch(&x);
            let fwd = unbatch(&map.forward(&x).unwrap());
            let inv = unbatch(&map.inverse(&x).unwrap());
            let ld = vec1(&map.log_det_forward(&x).unwrap());
            let (pre, ld_inv) = map.inverse_with_log_det(&x).unwrap();
            prop_assert_eq!(ld_inv.is_none(), map.is_volume_preserving());
            let pre = unbatch(&pre);
            for k in 0..pts.len() {
                prop_assert!(m.distance_f64(&fwd[k], &map.forward_f64(&xr[k])) < tol, "{dtype:?} forward {:?}", xr[k]);
                prop_assert!(m.distance_f64(&inv[k], &map.inverse_f64(&xr[k])) < tol, "{dtype:?} inverse {:?}", xr[k]);
                prop_assert!(m.distance_f64(&pre[k], &inv[k]) < tol);
                let l = map.log_det_forward_f64(&xr[k]);
                prop_assert!((ld[k] - l).abs() < tol * (1.0 + l.abs()), "{dtype:?} log det {} vs {l}", ld[k]);
                if let Some(ld_inv) = &ld_inv {
                    // log |det D(Φ⁻¹)(y)| = −log |det DΦ(Φ⁻¹ y)|
                    let l = -map.log_det_forward_f64(&map.inverse_f64(&xr[k]));
                    let got = vec1(ld_inv)[k];
                    prop_assert!((got - l).abs() < 10.0 * tol * (1.0 + l.abs()), "{dtype:?} inverse log det {got} vs {l}");
                }
            }
            if map.is_volume_preserving() {
                prop_assert!(ld.iter().all(|v| *v == 0.0));
            }
        }
    }

    /// `log |det DΦ|` equals the log-determinant of a finite-difference Jacobian in
    /// local coordinates to 1e-4.
    #[test]
    fn log_det_matches_finite_differences(case in any_map(false), seed in any::<u64>()) {
        let map = case.build();
        let m = case.manifold;
        for x in points(m, 8, seed) {
            let fd = fd_log_det(map.as_ref(), m, &x);
            let exact = map.log_det_forward_f64(&x);
            prop_assert!((fd - exact).abs() < 1e-4, "{:?} at {x:?}: fd {fd} vs {exact}", case.spec);
        }
    }
}

fn quadrature_map(small: bool) -> BoxedStrategy<MapCase> {
    let (factors, max_k) = if small { (3, 1) } else { (4, 2) };
    prop_oneof![
        translation(1),
        warp(1),
        translation(2),
        affine(2, factors, max_k),
        shear(2),
        warp(2),
        rotation(2),
        mobius(2),
        rotation(3),
        mobius(3),
    ]
    .boxed()
}

/// A smooth test density: a product of shifted cosines on `T^d`, a von Mises–Fisher
/// density (κ = 4) on `S^2`, `exp(cos(θ − θ_0))` on `S^1`.
fn test_function(m: Manifold) -> impl Fn(&[f64]) -> f64 {
    move |x: &[f64]| match m {
        Manifold::Torus { .. } => {
            x.iter().enumerate().map(|(j, &c)| 1.0 + 0.5 * (TAU * c + 0.3 * j as f64 + 0.1).cos()).product()
        }
        Manifold::Sphere { dim: 1 } => (0.6 * x[0] - 0.8 * x[1]).exp(),
        Manifold::Sphere { .. } => {
            let mu = [0.36, -0.48, 0.8];
            let kappa: f64 = 4.0;
            kappa / (2.0 * TAU * kappa.sinh()) * (kappa * (mu[0] * x[0] + mu[1] * x[1] + mu[2] * x[2])).exp()
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Change of variables by quadrature: `∫ f∘Φ · |det DΦ| dλ = ∫ f dλ`, and for
    /// volume-preserving maps `∫ f∘Φ dλ = ∫ f dλ` (the maps preserve the uniform measure).
    #[test]
    fn change_of_variables(case in quadrature_map(false)) {
        let map = case.build();
        let m = case.manifold;
        let grid = match m {
            Manifold::Sphere { dim: 2 } => QuadratureGrid::sphere_gauss_legendre(96).unwrap(),
            _ => QuadratureGrid::new(m, 128).unwrap(),
        };
        let f = test_function(m);
        let exact = grid.integrate_f64(&f);
        let pulled = grid.integrate_f64(|x| f(&map.forward_f64(x)) * map.log_det_forward_f64(x).exp());
        prop_assert!((pulled - exact).abs() < 1e-8 * exact.abs(), "{:?}: {pulled} vs {exact}", case.spec);
        if map.is_volume_preserving() {
            let plain = grid.integrate_f64(|x| f(&map.forward_f64(x)));
            prop_assert!((plain - exact).abs() < 1e-8 * exact.abs(), "{plain} vs {exact}");
        }
        // and with the inverse: ∫ f∘Φ⁻¹ · |det DΦ⁻¹| dλ = ∫ f dλ. The warp's inverse is
        // analytic only in a strip of half-width Im Φ(i t*) (cosh 2πt* = 1/|a|): 0.029 at
        // |a| = 0.7 but 0.014 at |a| = 0.81, where the 128-point midpoint rule only
        // reaches ~1e-5; so this identity is checked for |a| ≤ 0.7.
        if let DiffeoSpec::TorusWarp { amplitudes } = &case.spec {
            if amplitudes.iter().any(|a| a.abs() > 0.7) {
                return Ok(());
            }
        }
        let pushed = grid.integrate_f64(|x| {
            let z = map.inverse_f64(x);
            f(&z) * (-map.log_det_forward_f64(&z)).exp()
        });
        prop_assert!((pushed - exact).abs() < 1e-8 * exact.abs(), "{pushed} vs {exact}");
    }
}

fn torus2_map() -> BoxedStrategy<MapCase> {
    prop_oneof![translation(2), affine(2, 3, 1), shear(2), warp(2)].boxed()
}

fn sphere2_map() -> BoxedStrategy<MapCase> {
    prop_oneof![rotation(3), mobius(3)].boxed()
}

fn family_case() -> BoxedStrategy<(Family, Manifold)> {
    let build = |cases: Vec<MapCase>| {
        let m = cases[0].manifold;
        let spec = FamilySpec { preset: None, maps: cases.into_iter().map(|c| c.spec).collect() };
        (Family::from_spec(&spec, m).unwrap(), m)
    };
    prop_oneof![
        prop::collection::vec(torus2_map(), 1..=4).prop_map(build),
        prop::collection::vec(sphere2_map(), 1..=4).prop_map(build),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(64))]

    /// `preimages`, `images`, `apply_chosen` and `invert_chosen` agree with per-member
    /// calls in the member-major layout (row `i · n + k` is map `i`, point `k`);
    /// the log-determinants are `None` iff every map is volume preserving.
    #[test]
    fn family_batches_agree_with_members(
        (family, m) in family_case(),
        seed in any::<u64>(),
        choice in prop::collection::vec(0u32..4, 12),
    ) {
        let n = 12;
        let p = family.len();
        let pts = points(m, n, seed);
        let x = batch(&pts, DType::F64);
        let images = unbatch(&family.images(&x).unwrap());
        let (pre, ld) = family.preimages(&x).unwrap();
        let pre = unbatch(&pre);
        prop_assert_eq!(images.len(), p * n);
        prop_assert_eq!(pre.len(), p * n);
        prop_assert_eq!(ld.is_none(), family.is_volume_preserving());
        let ld = ld.map(|t| {
            prop_assert_eq!(t.dims(), &[p, n]);
            Ok(t.to_vec2::<f64>().unwrap())
        }).transpose()?;
        for i in 0..p {
            let map = family.member(i);
            for k in 0..n {
                prop_assert!(m.distance_f64(&images[i * n + k], &map.forward_f64(&pts[k])) < 1e-12);
                let z = map.inverse_f64(&pts[k]);
                prop_assert!(m.distance_f64(&pre[i * n + k], &z) < 1e-12);
                if let Some(ld) = &ld {
                    let l = -map.log_det_forward_f64(&z);
                    prop_assert!((ld[i][k] - l).abs() < 1e-12 * (1.0 + l.abs()));
                }
            }
        }
        let choice: Vec<u32> = choice.into_iter().map(|c| c % p as u32).collect();
        let ct = Tensor::from_vec(choice.clone(), n, &test_device()).unwrap();
        let chosen = unbatch(&family.apply_chosen(&x, &ct).unwrap());
        let (back, back_ld) = family.invert_chosen(&x, &ct).unwrap();
        let back = unbatch(&back);
        let back_ld = vec1(&back_ld);
        for k in 0..n {
            let i = choice[k] as usize;
            prop_assert!(m.distance_f64(&chosen[k], &images[i * n + k]) < 1e-15);
            prop_assert!(m.distance_f64(&back[k], &pre[i * n + k]) < 1e-15);
            let l = ld.as_ref().map_or(0.0, |ld| ld[i][k]);
            prop_assert_eq!(back_ld[k], l);
        }
    }
}

#[test]
fn chosen_indices_out_of_range_are_errors() {
    let family = Family::from_spec(&FamilySpec::torus_sl2z(), Manifold::torus(2).unwrap()).unwrap();
    let device = test_device();
    let x = Tensor::zeros((3, 2), DType::F32, &device).unwrap();
    let choice = Tensor::new(&[0u32, 4, 1], &device).unwrap();
    assert!(family.apply_chosen(&x, &choice).is_err());
    assert!(family.invert_chosen(&x, &choice).is_err());
    let wrong_shape = Tensor::zeros((3, 3), DType::F32, &device).unwrap();
    assert!(family.images(&wrong_shape).is_err() && family.preimages(&wrong_shape).is_err());
}
