//! Shared helpers of the egf-flow integration tests.
#![allow(dead_code)]

use candle_core::{DType, Tensor};
use egf_diffeo::FamilySpec;
use egf_flow::features::{FeatureConfig, FrequencySet};
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{FlowModel, FlowModelConfig};
use egf_manifold::{test_device, Manifold};

/// A small f64 flow model with random weights from `seed`.
pub fn small_flow(manifold: Manifold, family: FamilySpec, seed: u64) -> FlowModel {
    let mut config = FlowModelConfig::new(manifold, family);
    config.features = FeatureConfig { max_frequency: 2, frequencies: FrequencySet::Full, ..FeatureConfig::default() };
    config.network = NetworkConfig { width: 16, depth: 2, activation: Activation::Tanh };
    config.seed = seed;
    FlowModel::new(config, DType::F64, &test_device()).unwrap()
}

/// Sets variable `name` of the model to `value`.
pub fn set_var(model: &FlowModel, name: &str, value: &Tensor) {
    let data = model.vars().data().lock().unwrap();
    data.get(name).unwrap_or_else(|| panic!("no variable {name}")).set(value).unwrap();
}

/// Reads variable `name`.
pub fn get_var(model: &FlowModel, name: &str) -> Tensor {
    let data = model.vars().data().lock().unwrap();
    data.get(name).unwrap().as_tensor().copy().unwrap()
}

/// Scales the output layer's weights by `scale` and sets the outflow bias so
/// that `log g = log_g_center + scale · (random smooth function)`.
pub fn shape_outflow(model: &FlowModel, scale: f64, log_g_center: f64) {
    let depth = model.config().network.depth;
    let w = format!("net.l{depth}.weight");
    let b = format!("net.l{depth}.bias");
    set_var(model, &w, &(get_var(model, &w) * scale).unwrap());
    let mut bias = get_var(model, &b).to_vec1::<f64>().unwrap();
    bias[0] = log_g_center;
    set_var(model, &b, &Tensor::new(bias, &test_device()).unwrap());
}

/// Host copy of a 1-d tensor.
pub fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}
