//! Shared set-up of the benchmarks: the earth configuration of the paper
//! (S², 6 rotations by π/4, MLP width 256 × 5 hidden layers).

use candle_core::{DType, Device};
use egf_diffeo::FamilySpec;
use egf_flow::features::FeatureConfig;
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{FlowModel, FlowModelConfig};
use egf_manifold::Manifold;

/// The flow model of the earth experiments (spec section 7), f32, on `device`.
pub fn earth_model(device: &Device) -> FlowModel {
    let manifold = Manifold::sphere(2).expect("S^2");
    let mut config = FlowModelConfig::new(manifold, FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4));
    config.features = FeatureConfig::default();
    config.network = NetworkConfig { width: 256, depth: 5, activation: Activation::Silu };
    config.initial_expected_moves = 2.0;
    FlowModel::new(config, DType::F32, device).expect("earth model")
}

/// The device the benchmarks run on: `EGF_BENCH_DEVICE=cuda` selects the first CUDA GPU.
pub fn bench_device() -> Device {
    match std::env::var("EGF_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).expect("EGF_BENCH_DEVICE=cuda needs a CUDA build and GPU"),
        _ => Device::Cpu,
    }
}
