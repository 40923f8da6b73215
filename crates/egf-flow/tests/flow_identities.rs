//! Exact identities of the flow parameterization (spec sections 2 and 3).

mod common;

use candle_core::{DType, Tensor};
use common::{get_var, host, set_var, shape_outflow, small_flow};
use egf_diffeo::{DiffeoSpec, FamilySpec, Preset};
use egf_flow::EgfModel;
use egf_manifold::{test_device, Manifold, QuadratureGrid};
use proptest::prelude::*;

fn shear_family() -> FamilySpec {
    let mut f = FamilySpec::torus_sl2z_irrational();
    f.maps.push(DiffeoSpec::TorusShear { dim: 2, target: 0, source: 1, amplitude: 0.15, phase: 0.3 });
    f.maps.push(DiffeoSpec::TorusShear { dim: 2, target: 0, source: 1, amplitude: -0.15, phase: 0.3 });
    f
}

fn mobius_family() -> FamilySpec {
    let mut f = FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4);
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![0.2, -0.1, 0.3], learnable: false });
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![-0.2, 0.1, -0.3], learnable: false });
    f
}

/// Mass identity ∫ t dλ = Z_init and ∫ h = ∫ g (spec section 3). The integrands
/// are smooth (analytic networks, smooth maps), so the spectrally accurate grids
/// (128² midpoint on T², 64-node Gauss–Legendre on S²) reach 1e-8 relative.
fn check_mass_identity(manifold: Manifold, family: FamilySpec, seed: u64, grid: &QuadratureGrid) {
    let model = small_flow(manifold, family, seed);
    // make the outflow substantial and varied: ∫ g ≈ 2 with a spread of e^{±1}
    shape_outflow(&model, 1.0, (2.0 / manifold.volume()).ln());
    let mass = model.mass_report(grid, 4096).unwrap();
    assert!((mass.integral_t - 1.0).abs() < 1e-8, "{manifold} seed {seed}: ∫t = {}", mass.integral_t);
    assert!(
        (mass.integral_h - mass.integral_g).abs() < 1e-8 * mass.integral_g,
        "∫h = {} vs ∫g = {}",
        mass.integral_h,
        mass.integral_g
    );
    assert!(mass.integral_g > 0.5, "test must exercise a real outflow, ∫g = {}", mass.integral_g);
    assert!((mass.integral_t_plus - mass.negative_mass - mass.integral_t).abs() < 1e-12);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn mass_identity_torus_sl2z(seed in 0u64..1000) {
        let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 128).unwrap();
        check_mass_identity(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z(), seed, &grid);
    }

    #[test]
    fn mass_identity_torus_shear(seed in 0u64..1000) {
        let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 128).unwrap();
        check_mass_identity(Manifold::torus(2).unwrap(), shear_family(), seed, &grid);
    }

    #[test]
    fn mass_identity_sphere_rotations(seed in 0u64..1000) {
        let grid = QuadratureGrid::sphere_gauss_legendre(64).unwrap();
        check_mass_identity(Manifold::sphere(2).unwrap(), FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4), seed, &grid);
    }

    #[test]
    fn mass_identity_sphere_mobius(seed in 0u64..1000) {
        let grid = QuadratureGrid::sphere_gauss_legendre(64).unwrap();
        check_mass_identity(Manifold::sphere(2).unwrap(), mobius_family(), seed, &grid);
    }
}

/// 0-flow invariance (spec section 3): isometric family, constant α, g ≡ c ⇒ h ≡ c, t ≡ f_init.
#[test]
fn zero_flow_is_invisible() {
    for (manifold, family) in [
        (Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z_irrational()),
        (Manifold::sphere(2).unwrap(), FamilySpec::sphere_axis_rotations(0.7)),
    ] {
        let model = small_flow(manifold, family, 3);
        let depth = model.config().network.depth;
        let w = format!("net.l{depth}.weight");
        set_var(&model, &w, &get_var(&model, &w).zeros_like().unwrap());
        let c = 3.7f64;
        let p = model.family().len();
        let mut bias = vec![0.0; 1 + p];
        bias[0] = c.ln();
        set_var(&model, &format!("net.l{depth}.bias"), &Tensor::new(bias, &test_device()).unwrap());
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let y = manifold.sample_uniform(200, &mut rng, DType::F64, &test_device()).unwrap();
        let terms = model.evaluate(&y).unwrap();
        let f_init = 1.0 / manifold.volume();
        for (h, t) in host(&terms.h).iter().zip(host(&terms.t)) {
            assert!((h - c).abs() < 1e-12 && (t - f_init).abs() < 1e-12, "{manifold}: h = {h}, t = {t}");
        }
    }
}

/// The orbit of a rational point of denominator q under the SL_2(Z) generators
/// and their inverses, in exact integer arithmetic mod q.
fn sl2z_orbit(start: (i64, i64), q: i64) -> Vec<(i64, i64)> {
    let maps: [[i64; 4]; 4] = [[1, 1, 0, 1], [1, -1, 0, 1], [1, 0, 1, 1], [1, 0, -1, 1]];
    let mut orbit = vec![start];
    let mut i = 0;
    while i < orbit.len() {
        let (a, b) = orbit[i];
        for m in maps {
            let next = ((m[0] * a + m[1] * b).rem_euclid(q), (m[2] * a + m[3] * b).rem_euclid(q));
            if !orbit.contains(&next) {
                orbit.push(next);
            }
        }
        i += 1;
    }
    orbit
}

/// Finite-orbit invariance (spec section 2): with `torus_sl2z`, t(0) = f_init and
/// Σ_{y ∈ O} t(y) = |O| f_init over a finite orbit, whatever the weights; the
/// irrational translations break both.
#[test]
fn finite_orbits_trap_the_pure_sl2z_family() {
    for seed in [0u64, 1, 2] {
        let model = small_flow(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z(), seed);
        shape_outflow(&model, 1.5, 0.5);
        let zero = Tensor::new(&[[0.0f64, 0.0]], &test_device()).unwrap();
        assert!((host(&model.evaluate(&zero).unwrap().t)[0] - 1.0).abs() < 1e-12);
        let orbit = sl2z_orbit((1, 2), 5);
        assert!(orbit.len() > 4, "orbit of (1/5, 2/5) has {} points", orbit.len());
        let pts: Vec<f64> = orbit.iter().flat_map(|(a, b)| [*a as f64 / 5.0, *b as f64 / 5.0]).collect();
        let y = Tensor::from_vec(pts, (orbit.len(), 2), &test_device()).unwrap();
        let t = host(&model.evaluate(&y).unwrap().t);
        let spread =
            t.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - t.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(spread > 1e-2, "t must vary on the orbit for the test to mean something");
        assert!((t.iter().sum::<f64>() - orbit.len() as f64).abs() < 1e-10);

        let irr = small_flow(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z_irrational(), seed);
        shape_outflow(&irr, 1.5, 0.5);
        assert!((host(&irr.evaluate(&zero).unwrap().t)[0] - 1.0).abs() > 1e-3);
        let t = host(&irr.evaluate(&y).unwrap().t);
        assert!((t.iter().sum::<f64>() - orbit.len() as f64).abs() > 1e-3);
    }
}

/// Every batched function gives the same answer on a batch as row by row.
#[test]
fn batched_equals_row_by_row() {
    let model = small_flow(Manifold::sphere(2).unwrap(), mobius_family(), 9);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(2);
    let y = Manifold::sphere(2).unwrap().sample_uniform(17, &mut rng, DType::F64, &test_device()).unwrap();
    let batch = model.evaluate(&y).unwrap();
    let lp = model.policy_log_probs(&y).unwrap();
    for i in 0..17 {
        let row = y.narrow(0, i, 1).unwrap();
        let single = model.evaluate(&row).unwrap();
        let single_lp = model.policy_log_probs(&row).unwrap();
        for (a, b) in [(&batch.t, &single.t), (&batch.h, &single.h), (&batch.g, &single.g)] {
            assert!((host(a)[i] - host(b)[0]).abs() < 1e-12);
        }
        for (a, b) in [(&lp.forward, &single_lp.forward), (&lp.backward, &single_lp.backward)] {
            let ra = a.narrow(0, i, 1).unwrap().flatten_all().unwrap();
            let rb = b.flatten_all().unwrap();
            for (u, v) in host(&ra).iter().zip(host(&rb)) {
                assert!((u - v).abs() < 1e-12 || (u.is_infinite() && *u == v));
            }
        }
    }
}

/// The forward and backward policies are probability vectors.
#[test]
fn policies_sum_to_one() {
    let model = small_flow(Manifold::torus(2).unwrap(), shear_family(), 4);
    shape_outflow(&model, 2.0, 1.0); // large outflow: t < 0 in places
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let y = Manifold::torus(2).unwrap().sample_uniform(500, &mut rng, DType::F64, &test_device()).unwrap();
    let lp = model.policy_log_probs(&y).unwrap();
    for table in [&lp.forward, &lp.backward] {
        for s in host(&table.exp().unwrap().sum(1).unwrap()) {
            assert!((s - 1.0).abs() < 1e-12, "row sums to {s}");
        }
    }
    let t = host(&model.evaluate(&y).unwrap().t);
    assert!(t.iter().any(|v| *v < 0.0), "the test should include points with t < 0");
}

#[test]
fn presets_have_the_documented_sizes() {
    assert_eq!(Preset::TorusSl2z.maps().len(), 4);
    assert_eq!(Preset::TorusSl2zIrrational.maps().len(), 8);
}
