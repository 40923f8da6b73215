//! Properties of the targets: normalization, exact sampling, batched = reference evaluation.

use std::f64::consts::PI;

use candle_core::{DType, Device, Tensor};
use egf_manifold::coords::unit_to_latlon_deg;
use egf_manifold::tensor_util::tensor_to_f64_rows;
use egf_manifold::{Manifold, QuadratureGrid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn all_targets() -> Vec<Box<dyn Target>> {
    TargetSpec::NAMES.iter().map(|n| by_name(n).unwrap()).collect()
}

/// A quadrature grid fine enough for each default target, and the tolerance of `∫ p dλ = 1` on it.
fn grid_and_tolerance(name: &str) -> (QuadratureGrid, f64) {
    let t2 = Manifold::torus(2).unwrap();
    match name {
        // the 64-point grid is aligned with the 4 × 4 cells: the integral is exact
        "checkerboard" => (QuadratureGrid::new(t2, 64).unwrap(), 1e-12),
        // periodic and analytic: the midpoint rule converges spectrally (σ ≥ 0.03 ≫ 1/256)
        "wrapped_gaussians" => (QuadratureGrid::new(t2, 256).unwrap(), 1e-12),
        // smooth except for a cone of height e^{-12.5} at the centre (measured error 2e-12)
        "rings" => (QuadratureGrid::new(t2, 512).unwrap(), 1e-10),
        // a trigonometric polynomial of degree 8 < 64: integrated exactly
        "fine" => (QuadratureGrid::new(t2, 64).unwrap(), 1e-12),
        // Gauss–Legendre on S^2, exact for harmonics of degree < 256; κ ≤ 100
        "vmf_mixture" => (QuadratureGrid::sphere_gauss_legendre(128).unwrap(), 1e-12),
        other => panic!("no grid for {other}"),
    }
}

#[test]
fn every_density_integrates_to_one() {
    for target in all_targets() {
        let (grid, tol) = grid_and_tolerance(target.name());
        let total = grid.integrate_f64(|x| target.density_f64(x));
        assert!((total - 1.0).abs() < tol, "{}: ∫ p = {total}", target.name());
    }
}

#[test]
fn non_default_parameters_integrate_to_one() {
    let t2 = Manifold::torus(2).unwrap();
    let grid = QuadratureGrid::new(t2, 400).unwrap();
    let rings = Rings::new([0.1, 0.9], vec![0.05, 0.45, 0.6], 0.05).unwrap();
    let gauss = WrappedGaussianMixture::new(vec![
        WrappedGaussianComponent { weight: 2.0, mean: vec![-0.3, 1.7], std: 0.4 },
        WrappedGaussianComponent { weight: 1.0, mean: vec![0.5, 0.0], std: 1.0 },
    ])
    .unwrap();
    assert!(gauss.images() >= 9, "{}", gauss.images());
    let board = Checkerboard::new(10).unwrap();
    let fine = CosinePattern::new(25, 1.0).unwrap();
    for (target, tol) in [(&gauss as &dyn Target, 1e-12), (&board, 1e-12), (&fine, 1e-12)] {
        let total = grid.integrate_f64(|x| target.density_f64(x));
        assert!((total - 1.0).abs() < tol, "{target:?}: ∫ p = {total}");
    }
    // Rings whose mass crosses the edges of the square, where ρ has a kink: the midpoint
    // rule is only second order there, so extrapolate (Richardson, h² error term).
    let integral = |n| QuadratureGrid::new(t2, n).unwrap().integrate_f64(|x| rings.density_f64(x));
    let (coarse, fine_total) = (integral(500), integral(1000));
    let extrapolated = (4.0 * fine_total - coarse) / 3.0;
    assert!((extrapolated - 1.0).abs() < 1e-8, "{coarse} {fine_total} → {extrapolated}");
}

#[test]
fn wrapped_gaussian_matches_a_brute_force_image_sum() {
    let g = WrappedGaussianMixture::new(vec![WrappedGaussianComponent { weight: 1.0, mean: vec![0.9, 0.1], std: 0.3 }])
        .unwrap();
    let phi = |t: f64| (-t * t / (2.0 * 0.09)).exp() / (0.3 * (2.0 * PI).sqrt());
    for x in [[0.0, 0.0], [0.5, 0.5], [0.93, 0.12], [0.2, 0.7]] {
        let wrapped = |d: f64| (-40..=40).map(|m| phi(d + m as f64)).sum::<f64>();
        let exact = wrapped(x[0] - 0.9) * wrapped(x[1] - 0.1);
        let p = g.density_f64(&x);
        assert!((p / exact - 1.0).abs() < 1e-14, "{x:?}: {p} vs {exact}");
    }
    // far from a narrow component the log-density stays finite (the density underflows)
    let narrow =
        WrappedGaussianMixture::new(vec![WrappedGaussianComponent { weight: 1.0, mean: vec![0.0, 0.0], std: 0.005 }])
            .unwrap();
    let lp = narrow.log_density_f64(&[0.5, 0.5]);
    // per axis two images (m = 0 and m = −1) at distance 1/2, each φ(1/2)
    let expected = 2.0 * (2.0f64.ln() - (0.005 * (2.0 * PI).sqrt()).ln() - 0.25 / (2.0 * 0.005 * 0.005));
    assert!((lp - expected).abs() < 1e-9 * expected.abs(), "{lp} vs {expected}");
}

#[test]
fn checkerboard_values_and_periodicity() {
    let b = Checkerboard::new(4).unwrap();
    assert_eq!(b.log_density_f64(&[0.1, 0.1]), std::f64::consts::LN_2);
    assert_eq!(b.log_density_f64(&[0.3, 0.1]), f64::NEG_INFINITY);
    assert_eq!(b.log_density_f64(&[1.1, -0.9]), b.log_density_f64(&[0.1, 0.1]));
    assert!(b.log_density_f64(&[0.1]).is_nan());
    assert!(Checkerboard::new(3).is_err() && Checkerboard::new(0).is_err());
}

fn compare_batched(target: &dyn Target, points: &[f64], dtype: DType, rel_tol: f64) {
    let m = target.manifold();
    let c = m.ambient_dim();
    let x = egf_manifold::tensor_util::tensor_from_f64(points.to_vec(), &[points.len() / c, c], dtype, &Device::Cpu)
        .unwrap();
    // the reference sees the same (possibly f32-rounded) coordinates as the tensor code
    let (rounded, _, _) = tensor_to_f64_rows(&x).unwrap();
    let batched = target.log_density(&x).unwrap();
    assert_eq!(batched.dims(), &[points.len() / c]);
    assert_eq!(batched.dtype(), dtype);
    let values = batched.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    for (i, v) in values.iter().enumerate() {
        let reference = target.log_density_f64(&rounded[i * c..(i + 1) * c]);
        if reference == f64::NEG_INFINITY {
            assert_eq!(*v, f64::NEG_INFINITY, "{}: row {i}", target.name());
        } else {
            let err = (v - reference).abs() / reference.abs().max(1.0);
            assert!(err < rel_tol, "{} {dtype:?} row {i}: {v} vs {reference}", target.name());
        }
    }
}

#[test]
fn batched_log_density_matches_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for target in all_targets() {
        let m = target.manifold();
        let mut points: Vec<f64> = (0..300).flat_map(|_| m.sample_uniform_f64(&mut rng)).collect();
        points.extend(target.sample_f64(300, &mut rng));
        compare_batched(target.as_ref(), &points, DType::F64, 1e-10);
        compare_batched(target.as_ref(), &points, DType::F32, 1e-4);
    }
    let huge =
        VonMisesFisherMixture::new(vec![VmfComponent { weight: 1.0, lat: 10.0, lon: 20.0, kappa: 1e4 }]).unwrap();
    let pts = huge.sample_f64(200, &mut rng);
    compare_batched(&huge, &pts, DType::F64, 1e-10);
    compare_batched(&huge, &pts, DType::F32, 1e-4);
    assert!(huge.log_density(&Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap()).is_err());
}

/// Total variation between the histogram of `samples` and exact bin probabilities,
/// and the bound `1.5 · ½ Σ_b √(p_b (1 − p_b) / N)` (≈ 1.9 × its expected value for a correct sampler).
fn tv_and_bound(samples: &[usize], exact: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mut counts = vec![0.0; exact.len()];
    samples.iter().for_each(|&b| counts[b] += 1.0);
    let tv = 0.5 * counts.iter().zip(exact).map(|(c, p)| (c / n - p).abs()).sum::<f64>();
    let bound = 1.5 * 0.5 * exact.iter().map(|p| (p * (1.0 - p) / n).sqrt()).sum::<f64>();
    (tv, bound)
}

#[test]
fn torus_samples_follow_the_density() {
    const BINS: usize = 16;
    const N: usize = 60_000;
    let bin = |x: &[f64]| {
        let b = |u: f64| ((u * BINS as f64) as usize).min(BINS - 1);
        b(x[0]) * BINS + b(x[1])
    };
    // exact bin probabilities: a 512 × 512 midpoint grid nests 32 × 32 points in each bin
    let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 512).unwrap();
    for name in ["checkerboard", "wrapped_gaussians", "rings", "fine"] {
        let target = by_name(name).unwrap();
        let mut exact = vec![0.0; BINS * BINS];
        for k in 0..grid.len() {
            exact[bin(grid.point(k))] += grid.weights()[k] * target.density_f64(grid.point(k));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let samples = target.sample_f64(N, &mut rng);
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let bins: Vec<usize> = samples.chunks_exact(2).map(bin).collect();
        let (tv, bound) = tv_and_bound(&bins, &exact);
        assert!(tv < bound, "{name}: TV {tv} ≥ {bound}");
    }
}

#[test]
fn fine_pattern_samples_resolve_the_high_frequency() {
    // E[cos 2πk x₁ cos 2πk x₂] = a/4 under p; the estimator's sd is below 0.5/√N = 0.0016
    let fine = CosinePattern::new(8, 0.9).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let s = fine.sample_f64(100_000, &mut rng);
    let mean = s.chunks_exact(2).map(|x| (16.0 * PI * x[0]).cos() * (16.0 * PI * x[1]).cos()).sum::<f64>() / 1e5;
    assert!((mean - 0.225).abs() < 0.008, "{mean}");
}

#[test]
fn sphere_samples_follow_the_density() {
    // 15° × 15° latitude/longitude bins; exact probabilities from the 0.5° equiangular grid
    let bin = |x: &[f64]| {
        let (lat, lon) = unit_to_latlon_deg(x).unwrap();
        let i = (((lat + 90.0) / 15.0) as usize).min(11);
        let j = (((lon + 180.0) / 15.0) as usize).min(23);
        i * 24 + j
    };
    let target = by_name("vmf_mixture").unwrap();
    let grid = QuadratureGrid::sphere_equiangular(360, 720).unwrap();
    let mut exact = vec![0.0; 12 * 24];
    for k in 0..grid.len() {
        exact[bin(grid.point(k))] += grid.weights()[k] * target.density_f64(grid.point(k));
    }
    assert!((exact.iter().sum::<f64>() - 1.0).abs() < 1e-3);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let samples = target.sample_f64(60_000, &mut rng);
    let s2 = Manifold::sphere(2).unwrap();
    assert!(samples.chunks_exact(3).all(|x| s2.contains_f64(x, 1e-12)));
    let bins: Vec<usize> = samples.chunks_exact(3).map(bin).collect();
    let (tv, bound) = tv_and_bound(&bins, &exact);
    assert!(tv < bound, "TV {tv} ≥ {bound}");
}

#[test]
fn vmf_matches_the_closed_form_and_is_stable_for_huge_kappa() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let s2 = Manifold::sphere(2).unwrap();
    for kappa in [0.5, 4.0, 30.0] {
        let v = VonMisesFisherMixture::new(vec![VmfComponent { weight: 1.0, lat: -35.0, lon: 140.0, kappa }]).unwrap();
        let mu = v.means()[0];
        for _ in 0..50 {
            let x = s2.sample_uniform_f64(&mut rng);
            let dot: f64 = mu.iter().zip(&x).map(|(a, b)| a * b).sum();
            let closed = kappa / (4.0 * PI * kappa.sinh()) * (kappa * dot).exp();
            assert!((v.density_f64(&x) / closed - 1.0).abs() < 1e-12, "κ = {kappa}");
        }
    }
    for kappa in [1e4, 1e8, 1e12] {
        let v = VonMisesFisherMixture::new(vec![VmfComponent { weight: 1.0, lat: 0.0, lon: 0.0, kappa }]).unwrap();
        let at_mode = v.log_density_f64(&[1.0, 0.0, 0.0]);
        assert!((at_mode - (kappa / (2.0 * PI)).ln()).abs() < 1e-9, "κ = {kappa}: {at_mode}");
        let antipode = v.log_density_f64(&[-1.0, 0.0, 0.0]);
        assert!(antipode.is_finite() && (antipode - (at_mode - 2.0 * kappa)).abs() < 1e-6 * kappa);
        let x = Tensor::new(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]], &Device::Cpu).unwrap();
        let batched = v.log_density(&x).unwrap().to_vec1::<f32>().unwrap();
        assert!(batched.iter().all(|v| v.is_finite()), "{batched:?}");
    }
}

#[test]
fn vmf_sampler_moments() {
    // E[1 − μ·x] = 1 − coth κ + 1/κ; for κ = 1e4 it is 1e-4 and 1 − μ·x is exponential
    // (sd = mean), so the relative sd of a 20 000-sample mean is 0.7 %.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (kappa, expected, tol) in [(1e4, 1e-4, 3e-6), (2.0, 1.0 - 1.0 / 2f64.tanh() + 0.5, 0.01), (1e-8, 1.0, 0.015)] {
        let mu = [0.6, 0.0, 0.8];
        let n = 20_000;
        let mean = (0..n)
            .map(|_| {
                let x = sample_vmf_s2(&mu, kappa, &mut rng);
                assert!((x.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12);
                1.0 - mu.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>()
            })
            .sum::<f64>()
            / n as f64;
        assert!((mean - expected).abs() < tol, "κ = {kappa}: {mean} vs {expected}");
    }
}

#[test]
fn specs_parse_with_defaults_and_reject_unknown_fields() {
    let spec: TargetSpec = toml::from_str("kind = \"rings\"\nradii = [0.15, 0.3]").unwrap();
    assert_eq!(spec, TargetSpec::Rings { center: [0.5, 0.5], radii: vec![0.15, 0.3], width: 0.02 });
    let spec: TargetSpec =
        toml::from_str("kind = \"vmf_mixture\"\ncomponents = [{ weight = 1.0, lat = 10.0, lon = 20.0, kappa = 5.0 }]")
            .unwrap();
    assert_eq!(spec.build().unwrap().manifold(), Manifold::sphere(2).unwrap());
    assert!(toml::from_str::<TargetSpec>("kind = \"rings\"\nradius = 0.2").is_err());
    assert!(toml::from_str::<TargetSpec>("kind = \"donut\"").is_err());
    assert!(toml::from_str::<TargetSpec>("kind = \"checkerboard\"\ncells = 5").unwrap().build().is_err());
    for name in TargetSpec::NAMES {
        let spec: TargetSpec = name.parse().unwrap();
        assert_eq!(spec.name(), name);
        let back: TargetSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(spec.build().unwrap().manifold(), spec.manifold());
    }
    let err = by_name("donut").unwrap_err().to_string();
    assert!(err.contains("donut") && err.contains("vmf_mixture"), "{err}");
}

#[test]
fn invalid_parameters_are_rejected() {
    let wg =
        |weight, std| WrappedGaussianMixture::new(vec![WrappedGaussianComponent { weight, mean: vec![0.5, 0.5], std }]);
    assert!(wg(1.0, 0.0).is_err() && wg(1.0, 2.0).is_err() && wg(0.0, 0.1).is_err() && wg(f64::NAN, 0.1).is_err());
    assert!(WrappedGaussianMixture::new(vec![]).is_err());
    // every mean must have the first one's dimension
    let mixed = vec![
        WrappedGaussianComponent { weight: 1.0, mean: vec![0.5, 0.5], std: 0.1 },
        WrappedGaussianComponent { weight: 1.0, mean: vec![0.5, 0.5, 0.5], std: 0.1 },
    ];
    let err = WrappedGaussianMixture::new(mixed).unwrap_err().to_string();
    assert!(err.contains("mean") && err.contains("3 coordinates"), "{err}");
    assert!(Rings::new([0.5, 0.5], vec![], 0.02).is_err());
    assert!(Rings::new([0.5, 0.5], vec![0.8], 0.02).is_err());
    assert!(Rings::new([0.5, f64::INFINITY], vec![0.2], 0.02).is_err());
    assert!(CosinePattern::new(0, 0.5).is_err() && CosinePattern::new(3, 1.5).is_err());
    let vmf = |lat, kappa| VonMisesFisherMixture::new(vec![VmfComponent { weight: 1.0, lat, lon: 0.0, kappa }]);
    assert!(vmf(91.0, 1.0).is_err() && vmf(0.0, 0.0).is_err() && vmf(0.0, f64::NAN).is_err());
}

#[test]
fn tensor_sampling_has_the_right_shape() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for target in all_targets() {
        let x = target.sample(17, &mut rng, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[17, target.manifold().ambient_dim()]);
        target.manifold().check_points(&x, 1e-6).unwrap();
    }
}

/// The mixture on `T^3` and `T^4`: normalized (midpoint grid on `T^3`, the quasi-Monte-Carlo
/// rule on `T^4`), batched = reference, and samples with the components' means and spreads.
#[test]
fn wrapped_gaussians_in_higher_dimensions() {
    let spec: TargetSpec = toml::from_str(
        "kind = \"wrapped_gaussians\"\ncomponents = [\
         { weight = 2.0, mean = [0.2, 0.4, 0.9, 0.5], std = 0.15 },\
         { weight = 1.0, mean = [0.7, 0.1, 0.3, 0.6], std = 0.2 }]",
    )
    .unwrap();
    assert_eq!(spec.manifold(), Manifold::torus(4).unwrap());
    let t4 = spec.build().unwrap();
    assert_eq!(t4.manifold(), Manifold::torus(4).unwrap());
    // smooth and periodic with σ ≥ 0.15: 2·10^5 quasi-Monte-Carlo points give ∫ p to 1e-3
    let rule = QuadratureGrid::quasi_monte_carlo(t4.manifold(), 200_000).unwrap();
    let mass = rule.integrate_f64(|x| t4.log_density_f64(x).exp());
    assert!((mass - 1.0).abs() < 1e-3, "∫ p = {mass} on T^4");
    let t3 = WrappedGaussianMixture::new(vec![WrappedGaussianComponent {
        weight: 1.0,
        mean: vec![0.9, 0.5, 0.1],
        std: 0.1,
    }])
    .unwrap();
    let grid = QuadratureGrid::new(t3.manifold(), 48).unwrap();
    let mass = grid.integrate_f64(|x| t3.log_density_f64(x).exp());
    assert!((mass - 1.0).abs() < 1e-10, "∫ p = {mass} on T^3");

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let points = t4.sample_f64(4000, &mut rng);
    compare_batched(t4.as_ref(), &points[..400 * 4], DType::F64, 1e-12);
    compare_batched(t4.as_ref(), &points[..400 * 4], DType::F32, 1e-4);
    // one component alone: per coordinate, the circular mean sits at μ_a and the mean
    // resultant length is e^{−2π²σ²} (the characteristic function of the normal at 2π)
    let single = WrappedGaussianMixture::new(vec![WrappedGaussianComponent {
        weight: 1.0,
        mean: vec![0.2, 0.4, 0.9, 0.5],
        std: 0.15,
    }])
    .unwrap();
    let n = 20_000;
    let xs = single.sample_f64(n, &mut rng);
    for a in 0..4 {
        let (c, s) =
            xs.chunks(4).fold((0.0, 0.0), |(c, s), x| (c + (2.0 * PI * x[a]).cos(), s + (2.0 * PI * x[a]).sin()));
        let (c, s) = (c / n as f64, s / n as f64);
        let resultant = (c * c + s * s).sqrt();
        let expected = (-2.0 * PI * PI * 0.15f64.powi(2)).exp();
        assert!((resultant - expected).abs() < 0.02, "axis {a}: {resultant} vs {expected}");
        let mean = s.atan2(c) / (2.0 * PI);
        let target = [0.2, 0.4, 0.9, 0.5][a];
        let off = (mean - target + 0.5).rem_euclid(1.0) - 0.5;
        assert!(off.abs() < 0.01, "axis {a}: circular mean {mean} vs {target}");
    }
}
