//! Density estimation of volcanic eruptions on the sphere S^2 with the shipped config
//! `configs/earth-volcano.toml` (the paper's settings: 6 rotations by π/4, MLP 256 × 5,
//! KL-weakFM with b = 5), run for a few steps only, through `egf_train::train`.
//!
//! ```text
//! EGF_DATA_DIR=../shared/data/earth cargo run --release --example fit_earth
//! cargo run --release --example fit_earth -- --data-dir ../shared/data/earth --steps 300
//! ```
//! The full run is `egf train --config configs/earth-volcano.toml` (75 000 steps).

use std::path::PathBuf;

use egf_train::{train, DataSource, RunOptions, TaskConfig, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut data_dir, mut steps, mut output) = (None, 100usize, PathBuf::from("runs/example-fit-earth"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--steps" => steps = value("--steps")?.parse()?,
            "--output-dir" => output = PathBuf::from(value("--output-dir")?),
            other => return Err(format!("unknown argument `{other}` (use --data-dir, --steps, --output-dir)").into()),
        }
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/earth-volcano.toml");
    let mut config = TrainConfig::from_file(&path)?;
    // A short run: the paper's network and loss, fewer steps, lighter evaluation.
    config.steps = steps;
    config.eval_interval = (steps / 3).max(1);
    config.checkpoint_interval = steps;
    config.log_interval = 25;
    config.output_dir = output;
    config.eval.importance_samples = 4;
    config.eval.sampler_chains = 500;
    config.eval.figure_resolution = 90;
    if let TaskConfig::Imitation(im) = &mut config.task {
        if let DataSource::Earth { data_dir: dir, .. } = &mut im.data {
            // --data-dir, else EGF_DATA_DIR (read by the trainer)
            if data_dir.is_some() {
                *dir = data_dir;
            }
        }
    }
    println!("training {} for {steps} steps (of the paper's 75 000) into {}", config.name, config.output_dir.display());
    let report = train(&config, &RunOptions::default())?;
    println!("{:.1} s, {:.2} steps/s", report.wall_seconds, report.steps_per_second);
    if let Some(test) = &report.test {
        println!("test points: {}", test.points);
        println!("test NLL of the proper density (w = {}): {:.4} nats", test.defensive_weight, test.nll);
        if let Some(imp) = &test.importance {
            println!("test NLL, importance sampling (K = {}): {:.4} nats", imp.samples_per_point, imp.nll);
        }
        println!("uniform density on S^2: {:.4} nats", (4.0 * std::f64::consts::PI).ln());
        println!(
            "δ = {:.4}, test points with t ≤ 0: {:.2}%, ∫t = {:.6}, ∫g = {:.3}",
            test.negative_mass,
            100.0 * test.fraction_nonpositive,
            test.integral_t,
            test.integral_g
        );
    }
    println!("best checkpoint: {}", report.best_checkpoint.display());
    println!("draw it: egf plot --checkpoint {} --dataset volcano --out volcano.png", report.output_dir.display());
    Ok(())
}
