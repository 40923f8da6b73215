//! Reinforcement learning of the checkerboard reward on the torus T^2 with stable flow
//! matching (spec section 5): no data, only an unnormalized density R (1 on the black
//! cells, 0 on the white ones, Z = ∫R = 1/2). Since ∫t = Z_init exactly, log Z_init is
//! learned, with its own, larger learning rate.
//!
//! ```text
//! cargo run --release --example reward_training [-- STEPS]
//! ```

use candle_core::{DType, Device, Tensor};
use egf_data::{CheckerboardReward, Reward};
use egf_diffeo::FamilySpec;
use egf_flow::network::NetworkConfig;
use egf_flow::{FlowModel, FlowModelConfig, SamplerConfig};
use egf_loss::{stable_fm, LossError, StableFmConfig};
use egf_manifold::Manifold;
use egf_train::optim::{Adam, AdamParams};
use egf_train::{reward_report, EvalSettings, OptimizerConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let (device, dtype) = (Device::Cpu, DType::F32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let reward = CheckerboardReward::new(4, 0.0)?;
    let manifold = Manifold::torus(2)?;

    let mut config = FlowModelConfig::new(manifold, FamilySpec::torus_sl2z_irrational());
    config.network = NetworkConfig { width: 64, depth: 2, ..NetworkConfig::default() };
    config.learn_log_z = true;
    let model = FlowModel::new(config, dtype, &device)?;

    let (lr0, lr1, lr_z) = (3e-3, 1e-4, 0.03);
    let opt = OptimizerConfig { lr: lr0, ..OptimizerConfig::default() };
    let mut adam = Adam::new(model.network_vars(), AdamParams::from_config(&opt, 0.0))?;
    let mut adam_z = Adam::new(vec![("log_z".into(), model.log_z_var())], AdamParams::from_config(&opt, 0.0))?;
    let loss_config = StableFmConfig::default(); // q = 2, residual t − R
                                                 // the loss takes log R as a function of a batch (−∞ on the white cells)
    let log_r = |x: &Tensor| reward.log_reward(x).map_err(LossError::reward);

    for step in 0..steps {
        let nu = manifold.sample_uniform(1024, &mut rng, dtype, &device)?;
        let value = stable_fm(&model, &log_r, &nu, &loss_config)?;
        let grads = value.loss.backward()?;
        let f = (lr1 / lr0).powf(step as f64 / (steps.max(2) - 1) as f64);
        adam.step(&grads, lr0 * f)?;
        adam_z.step(&grads, lr_z * f)?;
        if step % 250 == 0 || step + 1 == steps {
            let d = value.to_host()?;
            let l1 = d.terms.get("l1_residual").copied().unwrap_or(f64::NAN);
            println!("step {step:5}  loss {:9.5}  ∫|t − R| ≈ {l1:.4}  Z_init {:.5}", d.loss, model.z_init()?);
        }
    }

    let report = reward_report(&model, &reward, &EvalSettings::default())?;
    println!("Z_init = {:.5} (true Z = {:.5})", report.mass.z_init, reward.normalizer().unwrap_or(f64::NAN));
    println!("total variation between the reported density and R/Z: {:.4}", report.total_variation);
    println!("δ = {:.4}, ∫g = {:.3}", report.mass.negative_mass, report.mass.integral_g);

    // The chain's samples: the fraction on black cells should approach 1.
    let sampler = SamplerConfig { max_moves: 1000, defensive_weight: 0.0, record_trajectories: false };
    let out = egf_flow::sample(&model, 5000, &sampler, &mut rng)?;
    let pts = out.samples.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let black = pts.iter().filter(|p| reward.reward_f64(p) > 0.5).count();
    println!(
        "sampler: {:.1}% of 5000 samples on black cells, mean moves {:.2}, truncated {}",
        100.0 * black as f64 / pts.len() as f64,
        out.mean_moves(),
        out.truncated_count()
    );
    Ok(())
}
