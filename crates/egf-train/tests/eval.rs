//! The final evaluation integrates on two quadrature grids and reports the finer one,
//! with the coarser one as an error estimate (`QuadratureCheck`).

use candle_core::DType;
use egf_diffeo::{DiffeoSpec, FamilySpec};
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{FlowModel, FlowModelConfig};
use egf_manifold::{test_device, Manifold};
use egf_train::{evaluate, EvalReport, EvalSettings};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn s2() -> Manifold {
    Manifold::sphere(2).unwrap()
}

fn model(family: FamilySpec) -> FlowModel {
    let mut config = FlowModelConfig::new(s2(), family);
    config.network = NetworkConfig { width: 16, depth: 2, activation: Activation::Tanh };
    config.seed = 3;
    FlowModel::new(config, DType::F64, &test_device()).unwrap()
}

/// Rotations by π/4 plus two strongly contracting Möbius maps (`|w| = 0.95`: a Jacobian
/// of up to `(1.95/0.05)² ≈ 1500`), so `h` has peaks far narrower than a coarse grid.
fn sharp_family() -> FamilySpec {
    let mut f = FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4);
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![0.0, 0.6, 0.76], learnable: false });
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![0.95, 0.0, 0.0], learnable: false });
    f
}

fn report(model: &FlowModel, resolution: usize, defensive_weight: f64) -> EvalReport {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let points = s2().sample_uniform(64, &mut rng, DType::F64, &test_device()).unwrap();
    let settings = EvalSettings {
        quadrature_resolution: resolution,
        defensive_weight,
        importance_samples: 0,
        sampler_chains: 0,
        ..EvalSettings::default()
    };
    evaluate(model, &points, &settings, &mut rng).unwrap()
}

fn integral_t_on(model: &FlowModel, resolution: usize) -> f64 {
    let grid = egf_manifold::QuadratureGrid::new(s2(), resolution).unwrap();
    model.mass_report(&grid, 4096).unwrap().integral_t
}

#[test]
fn reported_numbers_come_from_the_finer_grid() {
    let m = model(sharp_family());
    // a tiny defensive weight, so that −log p = log ∫t⁺ − log t⁺(x) up to 1e-9 wherever t > 0
    let r = report(&m, 6, 1e-12);
    assert_eq!(r.fraction_nonpositive, 0.0, "the identity below needs t > 0 at every point");
    let check = r.quadrature_check.as_ref().expect("evaluate always checks its quadrature");
    assert_eq!(check.resolution, 6);
    // S²: R Gauss–Legendre latitudes × 2R longitudes, so the grid of 2R has four times the points
    assert_eq!((check.points, r.quadrature_points), (6 * 12, 4 * 6 * 12));
    let fine = egf_manifold::QuadratureGrid::new(s2(), 12).unwrap();
    let mass = m.mass_report(&fine, 4096).unwrap();
    assert_eq!((r.integral_t_plus, r.negative_mass), (mass.integral_t_plus, mass.negative_mass));
    let coarse = m.mass_report(&egf_manifold::QuadratureGrid::new(s2(), 6).unwrap(), 4096).unwrap();
    assert_eq!((check.integral_t, check.integral_t_plus), (coarse.integral_t, coarse.integral_t_plus));
    let expected_change = (r.integral_t_plus / check.integral_t_plus).ln();
    assert!((check.nll_change - expected_change).abs() < 1e-6, "{} vs {expected_change}", check.nll_change);
    assert!((r.nll - check.nll - check.nll_change).abs() < 1e-12);
}

#[test]
fn the_check_flags_an_unresolved_model_and_passes_a_resolved_one() {
    // The mass identity ∫ t dλ = Z_init (= 1 here) holds exactly, so the quadrature's error
    // on ∫ t is measurable. On the sharp model a grid of 6 latitudes is far off, and the
    // check says so by a change of NLL well above the 0.01 nats a table could show.
    let sharp = model(sharp_family());
    assert!((integral_t_on(&sharp, 6) - 1.0).abs() > 0.05, "the test needs an unresolved grid");
    let r = report(&sharp, 6, 1e-3);
    let change = r.quadrature_check.unwrap().nll_change;
    assert!(change.abs() > 0.01, "the check must see the coarse grid's error: {change}");
    // The rotations alone give a smooth t: 32 latitudes integrate it to 1e-8, and the check agrees.
    let smooth = model(FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4));
    assert!((integral_t_on(&smooth, 32) - 1.0).abs() < 1e-8);
    let change = report(&smooth, 32, 1e-3).quadrature_check.unwrap().nll_change;
    assert!(change.abs() < 1e-8, "{change}");
}
