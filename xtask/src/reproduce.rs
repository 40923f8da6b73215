//! The experiments of `cargo xtask reproduce`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use egf_diffeo::FamilySpec;
use egf_train::{train, DataSource, DeviceSpec, RunOptions, TaskConfig, TrainConfig, TrainReport};

use crate::literature::PUBLISHED;
use crate::{Experiment, ReproduceArgs};

const EARTH: [&str; 4] = ["volcano", "earthquake", "flood", "fire"];

/// Runs the experiment and returns the Markdown table it also wrote.
pub fn run(args: &ReproduceArgs) -> Result<String> {
    let name = match args.experiment {
        Experiment::Earth => "earth",
        Experiment::TorusIl => "torus-il",
        Experiment::Rl => "rl",
        Experiment::Variational => "variational",
    };
    let out = args.out.join(name);
    std::fs::create_dir_all(out.join("configs")).with_context(|| format!("creating {}", out.display()))?;
    let started = std::time::Instant::now();
    let (mut table, csv) = match args.experiment {
        Experiment::Earth => earth(args, &out)?,
        Experiment::TorusIl => torus_il(args, &out)?,
        Experiment::Rl => rl(args, &out)?,
        Experiment::Variational => variational(args, &out)?,
    };
    let _ = writeln!(
        table,
        "\nWall time {:.1} s on {} ({}), `cargo xtask reproduce {name}{}{}`.",
        started.elapsed().as_secs_f64(),
        args.device,
        hardware(),
        if args.quick { " --quick" } else { "" },
        args.seeds.map(|s| format!(" --seeds {s}")).unwrap_or_default()
    );
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(out.join("results.csv"), csv)?;
    Ok(table)
}

fn hardware() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpu}, {cores} cores")
}

fn load_config(args: &ReproduceArgs, file: &str) -> Result<TrainConfig> {
    let path = args.configs.join(file);
    let mut config = TrainConfig::from_file(&path).with_context(|| format!("loading {}", path.display()))?;
    config.device = args.device.parse::<DeviceSpec>().map_err(|e| anyhow!("--device: {e}"))?;
    Ok(config)
}

/// Scales a config down for `--quick`: few steps, a small network, small batches and cheap evaluation.
fn shrink(config: &mut TrainConfig, steps: usize) {
    config.steps = steps;
    config.log_interval = (steps / 10).max(1);
    config.eval_interval = (steps / 4).max(1);
    config.checkpoint_interval = (steps / 2).max(1);
    config.model.network.width = config.model.network.width.min(32);
    config.model.network.depth = config.model.network.depth.min(2);
    let batch = match &mut config.task {
        TaskConfig::Imitation(im) => &mut im.batch,
        TaskConfig::Reward(r) => &mut r.batch,
    };
    batch.data = batch.data.min(128);
    batch.nu_train = batch.nu_train.min(128);
    batch.uniform = batch.uniform.min(64);
    config.eval.quadrature_resolution = config.eval.quadrature_resolution.min(48);
    config.eval.importance_samples = config.eval.importance_samples.min(4);
    config.eval.sampler_chains = config.eval.sampler_chains.min(2000);
    config.eval.figure_resolution = config.eval.figure_resolution.min(96);
}

/// Applies `--quick` and `--steps` to a config.
fn scale(args: &ReproduceArgs, config: &mut TrainConfig) {
    if args.quick {
        shrink(config, args.steps.unwrap_or(300));
    } else if let Some(steps) = args.steps {
        config.steps = steps;
        config.eval_interval = config.eval_interval.min(steps).max(1);
        config.checkpoint_interval = config.checkpoint_interval.min(steps).max(1);
    }
}

fn run_one(config: &TrainConfig, out: &Path, label: &str) -> Result<TrainReport> {
    std::fs::write(out.join("configs").join(format!("{label}.toml")), config.to_toml_string()?)?;
    eprintln!("[xtask] {label}: {} steps on {}", config.steps, config.device);
    let report = train(config, &RunOptions { quiet: true, resume: false, max_steps_this_run: None })
        .with_context(|| format!("training {label}"))?;
    Ok(report)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (m, s)
}

fn fmt_ms(v: &[f64], digits: usize) -> String {
    let (m, s) = mean_std(v);
    if v.len() > 1 {
        format!("{m:.digits$} ± {s:.digits$}")
    } else {
        format!("{m:.digits$}")
    }
}

fn data_dir(args: &ReproduceArgs) -> PathBuf {
    args.data_dir
        .clone()
        .or_else(|| std::env::var_os("EGF_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data/earth"))
}

/// Experiment 1: the earth data sets (spec section 7).
fn earth(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    let seeds = args.seeds.unwrap_or(if args.quick { 1 } else { 5 });
    let datasets: Vec<&str> = if args.datasets.is_empty() {
        EARTH.to_vec()
    } else {
        for d in &args.datasets {
            if !EARTH.contains(&d.as_str()) {
                bail!("--datasets: unknown data set `{d}` (expected one of {EARTH:?})");
            }
        }
        EARTH.iter().copied().filter(|d| args.datasets.iter().any(|a| a == d)).collect()
    };
    let mut csv = String::from("dataset,seed,test_nll,importance_nll,negative_mass,fraction_t_nonpositive,mean_moves,truncation_rate,parameters,train_seconds,best_step\n");
    let mut rows = Vec::new();
    for ds in &datasets {
        let mut cols: [Vec<f64>; 7] = Default::default();
        let mut params = 0;
        for seed in 0..seeds as u64 {
            let mut config = load_config(args, &format!("earth-{ds}.toml"))?;
            config.seed = seed;
            if let TaskConfig::Imitation(im) = &mut config.task {
                if let DataSource::Earth { data_dir: dir, .. } = &mut im.data {
                    *dir = Some(data_dir(args));
                }
            }
            scale(args, &mut config);
            let label = format!("{ds}-seed{seed}");
            config.output_dir = out.join("runs").join(&label);
            let report = run_one(&config, out, &label)?;
            let test = report.test.as_ref().ok_or_else(|| anyhow!("{label}: no test evaluation in the report"))?;
            let is_nll = test.importance.as_ref().map(|i| i.nll).unwrap_or(f64::NAN);
            let (moves, trunc) =
                test.sampler.as_ref().map(|s| (s.mean_moves, s.truncation_rate)).unwrap_or((f64::NAN, f64::NAN));
            let values =
                [test.nll, is_nll, test.negative_mass, test.fraction_nonpositive, moves, trunc, report.wall_seconds];
            for (c, v) in cols.iter_mut().zip(values) {
                c.push(v);
            }
            params = test.parameters;
            let _ = writeln!(
                csv,
                "{ds},{seed},{},{is_nll},{},{},{moves},{trunc},{},{},{}",
                test.nll,
                test.negative_mass,
                test.fraction_nonpositive,
                test.parameters,
                report.wall_seconds,
                report.best_step.map(|s| s.to_string()).unwrap_or_default()
            );
        }
        rows.push((ds.to_string(), cols, params));
    }
    let mut table = format!(
        "# Earth data: test NLL (nats, lower is better){}\n\n{seeds} seed(s) per data set; mean ± std over seeds at the best-validation checkpoint. NLL of the proper reported density of spec section 7 (every test point counted, defensive weight 1e-3); IS NLL: importance-sampling estimate of what the sampler produces.\n\n",
        if args.quick { " — QUICK (scaled-down) run, not comparable to the paper" } else { "" }
    );
    table.push_str("| data set | test NLL | IS NLL | δ | t ≤ 0 (fraction) | mean moves | truncation | parameters | train time (s) |\n|---|---|---|---|---|---|---|---|---|\n");
    for (ds, c, params) in &rows {
        let _ = writeln!(
            table,
            "| {ds} | {} | {} | {} | {} | {} | {} | {params} | {} |",
            fmt_ms(&c[0], 3),
            fmt_ms(&c[1], 3),
            fmt_ms(&c[2], 4),
            fmt_ms(&c[3], 4),
            fmt_ms(&c[4], 2),
            fmt_ms(&c[5], 4),
            fmt_ms(&c[6], 0)
        );
    }
    table.push_str("\n## Published numbers (see docs/literature.md)\n\n| method | volcano | earthquake | flood | fire |\n|---|---|---|---|---|\n");
    let ours: Vec<String> = EARTH
        .iter()
        .map(|d| {
            rows.iter().find(|r| r.0 == *d).map(|r| format!("{:.2}", mean_std(&r.1[0]).0)).unwrap_or_else(|| "—".into())
        })
        .collect();
    for p in PUBLISHED {
        let cells: Vec<String> =
            p.nll.iter().map(|v| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())).collect();
        let _ = writeln!(table, "| {} | {} |", p.method, cells.join(" | "));
    }
    let _ = writeln!(table, "| **egf (this run)** | {} |", ours.join(" | "));
    Ok((table, csv))
}

/// Exact KL(target ‖ model) and TV on the model's picture grid, and t(0).
fn torus_metrics(report: &TrainReport, config: &TrainConfig) -> Result<(f64, f64, f64)> {
    let target = match &config.task {
        TaskConfig::Imitation(im) => match &im.data {
            DataSource::Target { target, .. } => target.build()?,
            _ => bail!("torus-il configs must use a toy target as data source"),
        },
        _ => bail!("torus-il configs must be imitation-learning configs"),
    };
    let model = egf_flow::load_flow_model(&egf_train::checkpoint::model_dir(&report.best_checkpoint), &Device::Cpu)?;
    let resolution = 128;
    let learned = egf_train::density_grid(&model, resolution, config.eval.defensive_weight)?;
    let truth = egf_train::target_density_grid(target.as_ref(), resolution)?;
    let cell = 1.0 / learned.values.len() as f64;
    let (mut kl, mut tv) = (0.0, 0.0);
    for (p, q) in truth.values.iter().zip(&learned.values) {
        if *p > 0.0 {
            kl += cell * p * (p / q).ln();
        }
        tv += 0.5 * cell * (p - q).abs();
    }
    let zero = Tensor::new(&[[0.0f64, 0.0]], &Device::Cpu)?.to_dtype(egf_flow::EgfModel::dtype(&model))?;
    let t0 = model.evaluate(&zero)?.t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?[0];
    Ok((kl, tv, t0))
}

/// A short name of a family for tables.
fn family_name(family: &FamilySpec) -> String {
    if *family == FamilySpec::torus_sl2z() {
        "sl2z".into()
    } else if *family == FamilySpec::torus_sl2z_irrational() {
        "sl2z+irrational".into()
    } else {
        format!("{} maps", family.expanded().len())
    }
}

/// Experiment 2: toy densities on T², each config with its family (the
/// `-sl2z` configs use the paper's pure family, the others add irrational translations).
fn torus_il(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    let seeds = args.seeds.unwrap_or(1);
    let mut files: Vec<String> = std::fs::read_dir(&args.configs)
        .with_context(|| format!("reading {}", args.configs.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("torus-il-") && n.ends_with(".toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no torus-il-*.toml configs in {}", args.configs.display());
    }
    if args.quick {
        files.truncate(2);
    }
    let mut csv = String::from("config,family,seed,test_nll,target_nll,kl,tv,t_at_zero,negative_mass,mean_moves\n");
    let mut table = format!(
        "# Toy densities on T²{}\n\nExact KL(target ‖ model) and TV on a 128² grid, test NLL beside the true density's NLL on the same points, and t(0) (spec section 2: the pure SL₂(Z) family fixes 0, so t(0) = f_init = 1 whatever the weights).\n\n| config | family | test NLL | target NLL | KL | TV | t(0) | δ | mean moves |\n|---|---|---|---|---|---|---|---|---|\n",
        if args.quick { " — QUICK run" } else { "" }
    );
    for file in &files {
        let mut cols: [Vec<f64>; 7] = Default::default();
        let mut fname = String::new();
        for seed in 0..seeds as u64 {
            let mut config = load_config(args, file)?;
            fname = family_name(&config.model.family);
            config.seed = seed;
            scale(args, &mut config);
            let stem = file.trim_end_matches(".toml");
            let label = format!("{stem}-seed{seed}");
            config.output_dir = out.join("runs").join(&label);
            let report = run_one(&config, out, &label)?;
            let test = report.test.as_ref().ok_or_else(|| anyhow!("{label}: no test evaluation"))?;
            let (kl, tv, t0) = torus_metrics(&report, &config)?;
            let moves = test.sampler.as_ref().map(|s| s.mean_moves).unwrap_or(f64::NAN);
            let target_nll = test.target_nll.unwrap_or(f64::NAN);
            for (c, v) in cols.iter_mut().zip([test.nll, target_nll, kl, tv, t0, test.negative_mass, moves]) {
                c.push(v);
            }
            let _ = writeln!(
                csv,
                "{stem},{fname},{seed},{},{target_nll},{kl},{tv},{t0},{},{moves}",
                test.nll, test.negative_mass
            );
        }
        let _ = writeln!(
            table,
            "| {} | {fname} | {} | {} | {} | {} | {} | {} | {} |",
            file.trim_end_matches(".toml"),
            fmt_ms(&cols[0], 3),
            fmt_ms(&cols[1], 3),
            fmt_ms(&cols[2], 4),
            fmt_ms(&cols[3], 4),
            fmt_ms(&cols[4], 4),
            fmt_ms(&cols[5], 4),
            fmt_ms(&cols[6], 2)
        );
    }
    Ok((table, csv))
}

/// Experiment 3: the checkerboard reward with the reward losses of the configs `rl-*.toml`.
fn rl(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    let mut files: Vec<String> = std::fs::read_dir(&args.configs)
        .with_context(|| format!("reading {}", args.configs.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("rl-") && n.ends_with(".toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no rl-*.toml configs in {}", args.configs.display());
    }
    let runs = files
        .iter()
        .map(|f| Ok((f.trim_end_matches(".toml").to_string(), load_config(args, f)?)))
        .collect::<Result<Vec<_>>>()?;
    reward_runs(args, out, "Checkerboard reward on T²", runs)
}

/// Experiment 4: trajectory balance and reverse KL with and without the
/// leave-one-out control variate on the checkerboard reward (the settings of
/// `rl-checkerboard-stable.toml`, only the loss changes).
fn variational(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    use egf_loss::{Baseline, ReverseKlConfig, TrajectoryConfig};
    use egf_train::RewardLoss;
    let variants = [
        ("trajectory-balance", RewardLoss::TrajectoryBalance(TrajectoryConfig::default())),
        ("reverse-kl", RewardLoss::ReverseKl(ReverseKlConfig { baseline: Baseline::None, ..Default::default() })),
        (
            "reverse-kl-loo",
            RewardLoss::ReverseKl(ReverseKlConfig { baseline: Baseline::LeaveOneOut, ..Default::default() }),
        ),
    ];
    let mut runs = Vec::new();
    for (name, loss) in variants {
        let mut config = load_config(args, "rl-checkerboard-stable.toml")?;
        match &mut config.task {
            TaskConfig::Reward(r) => r.loss = loss,
            TaskConfig::Imitation(_) => bail!("rl-checkerboard-stable.toml must be a reward config"),
        }
        config.name = format!("variational-{name}");
        runs.push((format!("checkerboard-{name}"), config));
    }
    reward_runs(args, out, "Variational objectives on the checkerboard reward", runs)
}

/// Trains each `(label, config)` reward run for every seed and tabulates the final match to the reward.
fn reward_runs(
    args: &ReproduceArgs,
    out: &Path,
    title: &str,
    runs: Vec<(String, TrainConfig)>,
) -> Result<(String, String)> {
    let seeds = args.seeds.unwrap_or(1);
    let mut csv =
        String::from("config,seed,total_variation,z_init,reward_mass,integral_g,negative_mass,train_seconds\n");
    let mut table = format!(
        "# {title}{}\n\nFinal TV between the reported density and the normalized reward, Z_init against the reward's mass, ∫ g (the sampling cost) and δ. Curves over training are in each run's `metrics.jsonl`.\n\n| config | TV | Z_init | ∫ R | ∫ g | δ |\n|---|---|---|---|---|---|\n",
        if args.quick { " — QUICK run" } else { "" }
    );
    for (stem, base) in &runs {
        let mut cols: [Vec<f64>; 5] = Default::default();
        let mut mass = 0.0;
        for seed in 0..seeds as u64 {
            let mut config = base.clone();
            config.seed = seed;
            scale(args, &mut config);
            let label = format!("{stem}-seed{seed}");
            config.output_dir = out.join("runs").join(&label);
            let report = run_one(&config, out, &label)?;
            let r = report.reward.as_ref().ok_or_else(|| anyhow!("{label}: the trainer returned no reward report"))?;
            mass = r.reward_mass;
            for (c, v) in cols.iter_mut().zip([
                r.total_variation,
                r.mass.z_init,
                r.mass.integral_g,
                r.mass.negative_mass,
                report.wall_seconds,
            ]) {
                c.push(v);
            }
            let _ = writeln!(
                csv,
                "{stem},{seed},{},{},{},{},{},{}",
                r.total_variation,
                r.mass.z_init,
                r.reward_mass,
                r.mass.integral_g,
                r.mass.negative_mass,
                report.wall_seconds
            );
        }
        let _ = writeln!(
            table,
            "| {stem} | {} | {} | {mass:.4} | {} | {} |",
            fmt_ms(&cols[0], 4),
            fmt_ms(&cols[1], 4),
            fmt_ms(&cols[2], 3),
            fmt_ms(&cols[3], 4)
        );
    }
    Ok((table, csv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(experiment: Experiment, out: &Path) -> ReproduceArgs {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        ReproduceArgs {
            experiment,
            seeds: Some(1),
            quick: true,
            device: "cpu".into(),
            data_dir: Some(root.join("../shared/data/earth")),
            configs: root.join("configs"),
            out: out.to_path_buf(),
            datasets: vec!["volcano".into()],
            steps: Some(60),
        }
    }

    /// `--quick` runs end to end and writes the table, the CSV and the configs used.
    #[test]
    fn quick_earth_reproduction_writes_its_results() {
        let out = std::env::temp_dir().join(format!("egf-xtask-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let table = run(&args(Experiment::Earth, &out)).unwrap();
        assert!(table.contains("| volcano |") && table.contains("Moser Flow") && table.contains("QUICK"), "{table}");
        let csv = std::fs::read_to_string(out.join("earth/results.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 2, "{csv}");
        let nll: f64 = rows[1].split(',').nth(2).unwrap().parse().unwrap();
        // finite, and better than a wildly wrong model: uniform is log 4π ≈ 2.53
        assert!(nll.is_finite() && nll < 4.0, "test NLL {nll}");
        assert!(out.join("earth/configs/volcano-seed0.toml").exists());
        assert!(out.join("earth/table.md").exists());
        let _ = std::fs::remove_dir_all(&out);
    }

    /// The torus experiment computes exact KL and TV, and the pure SL₂(Z) family keeps t(0) = 1.
    #[test]
    fn quick_torus_reproduction_reports_the_fixed_point() {
        let out = std::env::temp_dir().join(format!("egf-xtask-torus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let mut a = args(Experiment::TorusIl, &out);
        a.steps = Some(40);
        run(&a).unwrap();
        let csv = std::fs::read_to_string(out.join("torus-il/results.csv")).unwrap();
        let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
        assert_eq!(rows.len(), 2, "{csv}");
        for r in &rows {
            let (kl, tv, t0): (f64, f64, f64) = (r[5].parse().unwrap(), r[6].parse().unwrap(), r[7].parse().unwrap());
            assert!(kl.is_finite() && kl >= -1e-9 && (0.0..=1.0).contains(&tv), "{r:?}");
            if r[1] == "sl2z" {
                assert!((t0 - 1.0).abs() < 1e-5, "pure SL2(Z) family must keep t(0) = 1: {r:?}");
            }
        }
        assert!(rows.iter().any(|r| r[1] == "sl2z"));
        let _ = std::fs::remove_dir_all(&out);
    }

    /// The variational comparison runs every objective end to end.
    #[test]
    fn quick_variational_comparison_runs() {
        let out = std::env::temp_dir().join(format!("egf-xtask-var-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let mut a = args(Experiment::Variational, &out);
        a.steps = Some(10);
        let table = run(&a).unwrap();
        for name in ["trajectory-balance", "reverse-kl |", "reverse-kl-loo"] {
            assert!(table.contains(name), "{table}");
        }
        let csv = std::fs::read_to_string(out.join("variational/results.csv")).unwrap();
        for row in csv.lines().skip(1) {
            let tv: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&tv), "{row}");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
