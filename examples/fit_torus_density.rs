//! Imitation learning of a toy density on the torus T^2 through the library API:
//! exact samples of a target (`egf-data`), a flow model (`egf-flow`), the KL-weakFM
//! loss and its training measure ν_train (`egf-loss`), Adam (`egf-train`), and the
//! evaluation protocol of spec section 7 (`egf-train`).
//!
//! ```text
//! cargo run --release --example fit_torus_density [-- STEPS [TARGET]]
//! ```
//! TARGET is one of checkerboard, wrapped_gaussians (default), rings, fine.

use candle_core::{DType, Device, Tensor};
use egf_data::TargetSpec;
use egf_diffeo::FamilySpec;
use egf_flow::network::NetworkConfig;
use egf_flow::{FlowModel, FlowModelConfig};
use egf_loss::{kl_weak_fm, sample_nu_train, KlWeakFmConfig, NuTrainConfig};
use egf_manifold::Manifold;
use egf_train::optim::{Adam, AdamParams};
use egf_train::{evaluate, target_nll, EvalSettings, OptimizerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let target_name = args.next().unwrap_or_else(|| "wrapped_gaussians".into());
    let (device, dtype) = (Device::Cpu, DType::F32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    // 1. Data: exact samples of the target, 8000 for training and 2000 for testing.
    let target = TargetSpec::default_for(&target_name)?.build()?;
    let train = target.sample(8000, &mut rng, dtype, &device)?;
    let test = target.sample(2000, &mut rng, dtype, &device)?;

    // 2. Model: SL_2(Z) maps plus irrational translations (no finite orbits), a small MLP.
    let mut config = FlowModelConfig::new(Manifold::torus(2)?, FamilySpec::torus_sl2z_irrational());
    config.network = NetworkConfig { width: 64, depth: 2, ..NetworkConfig::default() };
    let model = FlowModel::new(config, dtype, &device)?;
    println!("{target_name} on T^2: {} parameters, {steps} steps", model.parameter_count());

    // 3. Loss weights (b · w_U = 2.5 ≥ 1, spec section 5) and the optimizer.
    let loss_config = KlWeakFmConfig { epsilon: 1e-3, negative_weight: 5.0, outflow_weight: 0.0 };
    let nu_config = NuTrainConfig { uniform_share: 0.5, data_noise: 0.02, on_policy_share: 0.0 };
    let (lr0, lr1) = (3e-3, 1e-4);
    let opt = OptimizerConfig { lr: lr0, ..OptimizerConfig::default() };
    let mut adam = Adam::new(model.network_vars(), AdamParams::from_config(&opt, 0.0))?;
    let no_uniform = Tensor::zeros((0, 2), dtype, &device)?;

    // 4. Training: a random batch of data, ν_train around it, one Adam step.
    let n_train = train.dim(0)?;
    for step in 0..steps {
        let idx: Vec<u32> = (0..256).map(|_| rng.random_range(0..n_train as u32)).collect();
        let x = train.index_select(&Tensor::new(idx, &device)?, 0)?;
        let nu = sample_nu_train(&model, &x, 256, &nu_config, &mut rng)?;
        let value = kl_weak_fm(&model, &x, &nu, &no_uniform, &loss_config)?;
        let grads = value.loss.backward()?;
        // exponential learning-rate decay from lr0 to lr1
        let lr = lr0 * (lr1 / lr0).powf(step as f64 / (steps.max(2) - 1) as f64);
        adam.step(&grads, lr)?;
        if step % 200 == 0 || step + 1 == steps {
            let d = value.to_host()?;
            let ce = d.terms.get("cross_entropy").copied().unwrap_or(f64::NAN);
            let neg = d.terms.get("negative_mass").copied().unwrap_or(f64::NAN);
            println!("step {step:5}  loss {:8.4}  cross-entropy {ce:8.4}  vol·E t⁻ {neg:.4}", d.loss);
        }
    }

    // 5. Evaluation on the test samples (spec section 7): every point counts.
    let settings = EvalSettings { importance_samples: 4, sampler_chains: 2000, ..EvalSettings::default() };
    let report = evaluate(&model, &test, &settings, &mut rng)?;
    println!("test NLL (proper density, w = {}): {:.4} nats", report.defensive_weight, report.nll);
    if let Some(imp) = &report.importance {
        println!("test NLL (importance sampling, K = {}): {:.4} nats", imp.samples_per_point, imp.nll);
    }
    println!("true density's NLL on the same points:   {:.4} nats", target_nll(target.as_ref(), &test)?);
    println!(
        "∫t = {:.6}, δ = {:.4}, points with t ≤ 0: {:.2}%, ∫g = {:.3}",
        report.integral_t,
        report.negative_mass,
        100.0 * report.fraction_nonpositive,
        report.integral_g
    );
    if let Some(s) = &report.sampler {
        println!("sampler: mean moves {:.2}, truncated {} of {}", s.mean_moves, s.truncated, s.chains);
    }
    Ok(())
}
