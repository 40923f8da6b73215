//! Flow models whose family holds learnable Möbius maps: the maps' variables are
//! model variables with exact gradients, the mass identity holds wherever they
//! move, detached evaluation stays detached, and a save/load round trip keeps them.

mod common;

use candle_core::{DType, Tensor};
use common::{host, set_var, shape_outflow, small_flow};
use egf_diffeo::{DiffeoSpec, FamilySpec};
use egf_flow::{load_flow_model, EgfModel, FlowModel};
use egf_manifold::{test_device, Manifold, QuadratureGrid};
use rand::SeedableRng;

fn s2() -> Manifold {
    Manifold::sphere(2).unwrap()
}

/// Six rotations by π/4 and two learnable Möbius maps (members 6 and 7).
fn learnable_family() -> FamilySpec {
    let mut f = FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4);
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![0.2, -0.1, 0.3], learnable: true });
    f.maps.push(DiffeoSpec::SphereMobius { center: vec![-0.2, 0.1, -0.3], learnable: true });
    f
}

fn model() -> FlowModel {
    let model = small_flow(s2(), learnable_family(), 4);
    shape_outflow(&model, 1.0, (2.0 / s2().volume()).ln());
    model
}

fn points(n: usize, seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    s2().sample_uniform(n, &mut rng, DType::F64, &test_device()).unwrap()
}

fn var_values(model: &FlowModel, name: &str) -> Vec<f64> {
    let data = model.vars().data().lock().unwrap();
    data.get(name).unwrap().as_tensor().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

#[test]
fn map_variables_are_model_variables_with_exact_gradients() {
    let model = model();
    let names: Vec<String> = model.map_vars().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["family.map6.v".to_string(), "family.map7.v".to_string()]);
    assert!(model.network_vars().iter().all(|(n, _)| n.starts_with("net.")));
    let fixed = small_flow(s2(), FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4), 4);
    // two more policy logits (width 16 + bias) and three coordinates per learnable map
    assert_eq!(model.parameter_count(), fixed.parameter_count() + 2 * 17 + 2 * 3);

    // d/dv Σ_k t(y_k) by autograd against central differences of the whole model
    let y = points(40, 1);
    let objective = |m: &FlowModel| m.evaluate(&y).unwrap().t.sum_all().unwrap();
    let grads = objective(&model).backward().unwrap();
    let var = model.map_vars().into_iter().find(|(n, _)| n == "family.map7.v").unwrap().1;
    let analytic = host(&grads.get(var.as_tensor()).expect("a gradient reaches the map").flatten_all().unwrap());
    assert!(analytic.iter().any(|g| g.abs() > 1e-3), "the test must see a real dependence: {analytic:?}");
    let v0 = var_values(&model, "family.map7.v");
    let h = 1e-6;
    for j in 0..3 {
        let value = |shift: f64| {
            let mut v = v0.clone();
            v[j] += shift;
            set_var(&model, "family.map7.v", &Tensor::new(&[[v[0], v[1], v[2]]], &test_device()).unwrap());
            let s = objective(&model).to_scalar::<f64>().unwrap();
            set_var(&model, "family.map7.v", &Tensor::new(&[[v0[0], v0[1], v0[2]]], &test_device()).unwrap());
            s
        };
        let numeric = (value(h) - value(-h)) / (2.0 * h);
        assert!(
            (analytic[j] - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
            "coordinate {j}: autograd {} vs finite differences {numeric}",
            analytic[j]
        );
    }

    // detached evaluation: same values, and no gradient reaches any variable
    let detached = model.evaluate_detached(&y).unwrap();
    assert_eq!(host(&detached.t), host(&model.evaluate(&y).unwrap().t));
    let none = detached.t.sum_all().unwrap().backward().unwrap();
    assert!(none.get(var.as_tensor()).is_none());
}

/// ∫ t = Z_init and ∫ h = ∫ g for any value of the maps' parameters (spec section 3).
#[test]
fn mass_identity_holds_wherever_the_maps_move() {
    let model = model();
    let grid = QuadratureGrid::sphere_gauss_legendre(64).unwrap();
    for v in [[0.3, -0.2, 0.4], [-0.5, 0.1, 0.0]] {
        set_var(&model, "family.map6.v", &Tensor::new(&[v], &test_device()).unwrap());
        let w = match model.family().member(6).spec() {
            DiffeoSpec::SphereMobius { center, learnable: true } => center,
            other => panic!("{other:?}"),
        };
        let stretch = (1.0 + v.iter().map(|a| a * a).sum::<f64>()).sqrt();
        assert!(w.iter().zip(&v).all(|(a, b)| (a * stretch - b).abs() < 1e-12), "{w:?} for v = {v:?}");
        let mass = model.mass_report(&grid, 4096).unwrap();
        assert!((mass.integral_t - 1.0).abs() < 1e-7, "v = {v:?}: ∫t = {}", mass.integral_t);
        assert!((mass.integral_h - mass.integral_g).abs() < 1e-7 * mass.integral_g);
        assert!(mass.integral_g > 0.5, "∫g = {}", mass.integral_g);
    }
}

#[test]
fn learned_maps_survive_save_and_load() {
    let model = model();
    set_var(&model, "family.map7.v", &Tensor::new(&[[0.1, 0.6, -0.2]], &test_device()).unwrap());
    let dir = std::env::temp_dir().join(format!("egf-flow-test-learnable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    model.save(&dir).unwrap();
    let loaded = load_flow_model(&dir, &test_device()).unwrap();
    // the config keeps the starting point; the weights carry the learned value
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.family().member(7).spec(), model.family().member(7).spec());
    assert_eq!(var_values(&loaded, "family.map7.v"), vec![0.1, 0.6, -0.2]);
    let y = points(16, 2);
    assert_eq!(host(&loaded.evaluate(&y).unwrap().t), host(&model.evaluate(&y).unwrap().t));
    let _ = std::fs::remove_dir_all(&dir);
}
