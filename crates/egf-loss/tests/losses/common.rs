//! Shared builders and checks.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use egf_diffeo::FamilySpec;
use egf_flow::features::{FeatureConfig, FrequencySet};
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{FlowModel, FlowModelConfig, PolicyModel, PolicyModelConfig};
use egf_manifold::{test_device, Manifold};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn tiny_network() -> NetworkConfig {
    NetworkConfig { width: 8, depth: 1, activation: Activation::Silu }
}

pub fn tiny_features() -> FeatureConfig {
    FeatureConfig { max_frequency: 1, frequencies: FrequencySet::Full, ..FeatureConfig::default() }
}

pub fn torus() -> Manifold {
    Manifold::torus(2).unwrap()
}

pub fn sphere() -> Manifold {
    Manifold::sphere(2).unwrap()
}

/// A tiny flow model on `T^2` with the irrational SL2(Z) family (p = 8), or on `S^2`
/// with the six rotations by π/4.
pub fn flow_model(manifold: Manifold, dtype: DType, moves: f64, learn_log_z: bool, seed: u64) -> FlowModel {
    let family = if manifold.is_torus() {
        FamilySpec::torus_sl2z_irrational()
    } else {
        FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4)
    };
    let mut cfg = FlowModelConfig::new(manifold, family);
    cfg.network = tiny_network();
    cfg.features = tiny_features();
    cfg.initial_expected_moves = moves;
    cfg.learn_log_z = learn_log_z;
    cfg.seed = seed;
    FlowModel::new(cfg, dtype, &test_device()).unwrap()
}

pub fn policy_model(dtype: DType, stop: f64, seed: u64) -> PolicyModel {
    let mut cfg = PolicyModelConfig::new(torus(), FamilySpec::torus_sl2z_irrational());
    cfg.network = tiny_network();
    cfg.features = tiny_features();
    cfg.initial_stop_probability = stop;
    cfg.initial_log_z = 0.3;
    cfg.seed = seed;
    PolicyModel::new(cfg, dtype, &test_device()).unwrap()
}

pub fn uniform(manifold: Manifold, n: usize, dtype: DType, seed: u64) -> Tensor {
    manifold.sample_uniform(n, &mut rng(seed), dtype, &test_device()).unwrap()
}

pub fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

pub fn scalar(t: &Tensor) -> f64 {
    let v = host(t);
    assert_eq!(v.len(), 1, "not a scalar: {:?}", t.dims());
    v[0]
}

/// Sets entry `idx` of the flattened variable to `value`.
pub fn set_entry(var: &Var, idx: usize, value: f64) {
    let mut v = host(var.as_tensor());
    v[idx] = value;
    let t = Tensor::from_vec(v, var.dims(), &test_device()).unwrap().to_dtype(var.dtype()).unwrap();
    var.set(&t).unwrap();
}

pub fn entry(var: &Var, idx: usize) -> f64 {
    host(var.as_tensor())[idx]
}

/// Central finite differences of `f` on `per_var` entries of each variable against
/// the gradients `grads` (relative tolerance `rel_tol`, absolute floor `1e-9 (1 + |f|)`).
/// Returns the number of entries checked.
pub fn check_gradients(
    vars: &[(String, Var)],
    grads: &GradStore,
    per_var: usize,
    rel_tol: f64,
    f: &dyn Fn() -> f64,
) -> usize {
    let f0 = f();
    let h = 1e-5;
    let mut checked = 0;
    for (name, var) in vars {
        let count = var.elem_count();
        let g = grads.get(var.as_tensor()).map(host).unwrap_or_else(|| vec![0.0; count]);
        for j in 0..per_var.min(count) {
            let idx = (j * 7919 + 3) % count;
            let x0 = entry(var, idx);
            set_entry(var, idx, x0 + h);
            let fp = f();
            set_entry(var, idx, x0 - h);
            let fm = f();
            set_entry(var, idx, x0);
            let fd = (fp - fm) / (2.0 * h);
            let ad = g[idx];
            let tol = rel_tol * fd.abs().max(ad.abs()) + 1e-9 * (1.0 + f0.abs());
            assert!((fd - ad).abs() <= tol, "{name}[{idx}]: finite difference {fd} vs autograd {ad} (f = {f0})");
            checked += 1;
        }
    }
    checked
}

/// Every gradient in `grads` of the variables `vars` is finite.
pub fn assert_finite_gradients(vars: &[(String, Var)], grads: &GradStore) {
    for (name, var) in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            assert!(host(g).iter().all(|v| v.is_finite()), "non-finite gradient of {name}");
        }
    }
}

/// The flow model's network variables plus `log_z` (for models that learn it).
pub fn flow_vars(model: &FlowModel) -> Vec<(String, Var)> {
    let mut v = model.network_vars();
    if model.config().learn_log_z {
        v.push(("log_z".into(), model.log_z_var()));
    }
    v
}

/// Sets the bias of the outflow head (output 0 of the last layer) of a flow model with a depth-1 network.
pub fn set_outflow_bias(model: &FlowModel, bias: f64) {
    let var = model.network_vars().into_iter().find(|(n, _)| n == "net.l1.bias").unwrap().1;
    set_entry(&var, 0, bias);
}

/// Multiplies a variable of a flow model's network by `factor` (to make `g` vary more).
pub fn scale_var(model: &FlowModel, name: &str, factor: f64) {
    let var = model.network_vars().into_iter().find(|(n, _)| n == name).unwrap().1;
    let scaled = (var.as_tensor() * factor).unwrap().copy().unwrap();
    var.set(&scaled).unwrap();
}
