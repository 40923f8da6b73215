//! The paper's instability claim (spec section 5): divergence flow matching without
//! its regularizer lets the flow mass `∫ g` grow on an ergodic family, stable flow
//! matching does not.

use candle_core::{DType, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use egf_diffeo::FamilySpec;
use egf_flow::features::{FeatureConfig, FrequencySet};
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{EgfModel, FlowModel, FlowModelConfig};
use egf_loss::{divergence_fm, stable_fm, DivergenceFmConfig, Result, StableFmConfig};
use egf_manifold::{test_device, QuadratureGrid};

use crate::common::*;

/// A 4 × 4 checkerboard on `T^2`: `R = 1` on black cells, `0.1` on white cells.
fn checkerboard(x: &Tensor) -> Result<Tensor> {
    let cells = (x * 4.0)?.floor()?.sum(1)?; // i + j
    let parity = ((&cells / 2.0)?.floor()? * 2.0 - &cells)?.abs()?; // (i + j) mod 2
    Ok((parity * 0.1f64.ln())?)
}

fn model(learn_log_z: bool) -> FlowModel {
    let mut cfg = FlowModelConfig::new(torus(), FamilySpec::torus_sl2z_irrational());
    cfg.network = NetworkConfig { width: 16, depth: 1, activation: Activation::Silu };
    cfg.features = FeatureConfig { max_frequency: 2, frequencies: FrequencySet::Full, ..FeatureConfig::default() };
    cfg.initial_expected_moves = 1.0;
    cfg.learn_log_z = learn_log_z;
    cfg.seed = 1;
    FlowModel::new(cfg, DType::F32, &test_device()).unwrap()
}

fn integral_g(model: &FlowModel, grid: &QuadratureGrid) -> f64 {
    model.mass_report(grid, 4096).unwrap().integral_g
}

fn optimizer(model: &FlowModel) -> AdamW {
    let mut vars: Vec<_> = model.network_vars().into_iter().map(|(_, v)| v).collect();
    if model.config().learn_log_z {
        vars.push(model.log_z_var());
    }
    AdamW::new(vars, ParamsAdamW { lr: 0.02, weight_decay: 0.0, ..Default::default() }).unwrap()
}

const STEPS: usize = 60;

#[test]
fn divergence_fm_lets_the_flow_mass_grow_while_stable_fm_keeps_it_bounded() {
    let grid = QuadratureGrid::torus_midpoint(2, 24).unwrap();
    let start = std::time::Instant::now();

    let div = model(false);
    let g0 = integral_g(&div, &grid);
    let mut opt = optimizer(&div);
    let mut r = rng(3);
    let cfg = DivergenceFmConfig { max_moves: 30, outflow_penalty: 0.0 };
    let mut moves = 0.0;
    for _ in 0..STEPS {
        let value = divergence_fm(&div, &checkerboard, 64, &cfg, &mut r).unwrap();
        let d = value.to_host().unwrap();
        moves = d.terms["mean_moves"];
        opt.backward_step(&value.loss).unwrap();
    }
    let g_div = integral_g(&div, &grid);
    let t_div = start.elapsed();

    // the same with the regularizer λ Σ_t g(s_t)²
    let reg = model(false);
    let mut opt = optimizer(&reg);
    let mut r = rng(3);
    let cfg = DivergenceFmConfig { max_moves: 30, outflow_penalty: 1.0 };
    for _ in 0..STEPS {
        opt.backward_step(&divergence_fm(&reg, &checkerboard, 64, &cfg, &mut r).unwrap().loss).unwrap();
    }
    let g_reg = integral_g(&reg, &grid);

    let stable = model(true);
    let g0s = integral_g(&stable, &grid);
    let mut opt = optimizer(&stable);
    let mut r = rng(3);
    let cfg = StableFmConfig::default();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let nu = stable.manifold().sample_uniform(256, &mut r, DType::F32, &test_device()).unwrap();
        let value = stable_fm(&stable, &checkerboard, &nu, &cfg).unwrap();
        losses.push(value.to_host().unwrap().loss);
        opt.backward_step(&value.loss).unwrap();
    }
    let g_stable = integral_g(&stable, &grid);
    eprintln!(
        "∫g divergence FM: {g0:.3} → {g_div:.3} (mean moves {moves:.1}, {:.1}s), regularized {g_reg:.3}; stable FM: {g0s:.3} → {g_stable:.3} \
         (loss {:.4} → {:.4}, Z_init {:.3}); total {:.1}s",
        t_div.as_secs_f64(),
        losses[0],
        losses[STEPS - 1],
        stable.z_init().unwrap(),
        start.elapsed().as_secs_f64()
    );
    assert!(g_div > 5.0 * g0, "divergence FM: ∫g {g0} → {g_div}");
    assert!(g_reg < 2.0 * g0, "regularized divergence FM: ∫g {g0} → {g_reg}");
    assert!(g_stable < 2.0 * g0s, "stable FM: ∫g {g0s} → {g_stable}");
}
