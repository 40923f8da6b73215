//! The experiments of `cargo xtask reproduce`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use egf_diffeo::FamilySpec;
use egf_train::{train, DataSource, DeviceSpec, RunOptions, TaskConfig, TrainConfig, TrainReport};

use crate::figures::{earth_map, figures_dir, torus_grid, training_curves, RunCurves};
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
    // the command exactly as given, so that the table says how to make it again
    let command: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(
        table,
        "\nWall time {:.1} s on {} ({}), `cargo xtask {}`.",
        started.elapsed().as_secs_f64(),
        args.device,
        hardware(),
        command.join(" ")
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

/// Trains one run into `config.output_dir` (after writing its config to `<out>/configs/`),
/// or with `resume` picks it up where an earlier invocation left it ([`PreviousRun`]).
fn run_one(config: &TrainConfig, out: &Path, label: &str, resume: bool) -> Result<TrainReport> {
    let config_text = config.to_toml_string()?;
    std::fs::write(out.join("configs").join(format!("{label}.toml")), &config_text)?;
    let previous = if resume { previous_run(&config.output_dir, &config_text)? } else { PreviousRun::None };
    let resume_training = match previous {
        PreviousRun::Finished(report) => {
            eprintln!("[xtask] {label}: finished earlier, report reused ({})", config.output_dir.display());
            return Ok(*report);
        }
        PreviousRun::Interrupted => {
            eprintln!("[xtask] {label}: resuming from its last checkpoint, {} steps in all", config.steps);
            true
        }
        PreviousRun::None => {
            eprintln!("[xtask] {label}: {} steps on {}", config.steps, config.device);
            false
        }
    };
    let report = train(config, &RunOptions { quiet: true, resume: resume_training, max_steps_this_run: None })
        .with_context(|| format!("training {label}"))?;
    Ok(report)
}

/// A run folder that `--resume` must not touch: it holds a run of another config. Unlike
/// a run that diverges, which the reward experiments record and go past, this stops the
/// whole invocation.
#[derive(Debug)]
struct ResumeConflict(String);

impl std::fmt::Display for ResumeConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResumeConflict {}

/// What an earlier invocation left in a run's output folder.
enum PreviousRun {
    /// Nothing to pick up (no folder, or no checkpoint yet): train from step 0.
    None,
    /// A checkpoint but no final report: continue from `checkpoints/last`.
    Interrupted,
    /// The run finished; its `report.json`.
    Finished(Box<TrainReport>),
}

/// Reads what is in `dir` for `--resume`. The saved `config.toml` must equal
/// `config_text` (the config the run gets now), so that a changed config or step count
/// can never mix two trainings in one result; a mismatch is an error naming the folder.
fn previous_run(dir: &Path, config_text: &str) -> Result<PreviousRun> {
    let saved_config = dir.join(egf_train::CONFIG_FILE);
    if !saved_config.exists() {
        return Ok(PreviousRun::None);
    }
    let saved =
        std::fs::read_to_string(&saved_config).with_context(|| format!("reading {}", saved_config.display()))?;
    if saved != config_text {
        return Err(ResumeConflict(format!(
            "--resume: {} was written by a different config than this run's (changed config file, --steps, \
             --quick or --device); remove {} or choose another --out",
            saved_config.display(),
            dir.display()
        ))
        .into());
    }
    let report_file = dir.join(egf_train::REPORT_FILE);
    if report_file.exists() {
        let text =
            std::fs::read_to_string(&report_file).with_context(|| format!("reading {}", report_file.display()))?;
        let report: TrainReport =
            serde_json::from_str(&text).with_context(|| format!("{}: not a training report", report_file.display()))?;
        if report.finished {
            return Ok(PreviousRun::Finished(Box::new(report)));
        }
    }
    let has_checkpoint = egf_train::checkpoint_dir(dir, egf_train::CheckpointKind::Last).exists();
    Ok(if has_checkpoint { PreviousRun::Interrupted } else { PreviousRun::None })
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
    let mut csv = String::from("dataset,seed,test_nll,importance_nll,negative_mass,fraction_t_nonpositive,mean_moves,truncation_rate,parameters,train_seconds,best_step,test_share_at_train_location,quadrature_nll_change\n");
    let mut rows = Vec::new();
    for ds in &datasets {
        let mut cols: [Vec<f64>; 9] = Default::default();
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
            let report = run_one(&config, out, &label, args.resume)?;
            if seed == 0 {
                let path = earth_map(&figures_dir(out)?, ds, &config, &report)?;
                eprintln!("[xtask] figure {}", path.display());
            }
            let test = report.test.as_ref().ok_or_else(|| anyhow!("{label}: no test evaluation in the report"))?;
            let is_nll = test.importance.as_ref().map(|i| i.nll).unwrap_or(f64::NAN);
            let (moves, trunc) =
                test.sampler.as_ref().map(|s| (s.mean_moves, s.truncation_rate)).unwrap_or((f64::NAN, f64::NAN));
            let at_train = test_share_at_train_location(&config)?;
            let quad = test.quadrature_check.as_ref().map(|q| q.nll_change).unwrap_or(f64::NAN);
            let values = [
                test.nll,
                is_nll,
                test.negative_mass,
                test.fraction_nonpositive,
                moves,
                trunc,
                report.wall_seconds,
                at_train,
                quad,
            ];
            for (c, v) in cols.iter_mut().zip(values) {
                c.push(v);
            }
            params = test.parameters;
            let _ = writeln!(
                csv,
                "{ds},{seed},{},{is_nll},{},{},{moves},{trunc},{},{},{},{at_train},{quad}",
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
        "# Earth data: test NLL (nats, lower is better){}\n\n{seeds} seed(s) per data set; mean ± std over seeds at the best-validation checkpoint. NLL of the proper reported density of spec section 7 (every test point counted, defensive weight 1e-3); IS NLL: importance-sampling estimate of what the sampler produces. The integrals that normalize the density are taken on the quadrature grid of twice `eval.quadrature_resolution`; quadrature check: how much the test NLL changes from the grid of `eval.quadrature_resolution` (far from 0: the grid does not resolve the model).\n\n",
        match (args.quick, args.steps) {
            (true, _) => " — QUICK (scaled-down) run, not comparable to the paper".to_string(),
            (false, Some(n)) => format!(" — {n} training steps per run (the configs' budget overridden by --steps)"),
            (false, None) => String::new(),
        }
    );
    table.push_str("| data set | test NLL | IS NLL | δ | t ≤ 0 (fraction) | mean moves | truncation | quadrature check | test at a training location | parameters | train time (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (ds, c, params) in &rows {
        let _ = writeln!(
            table,
            "| {ds} | {} | {} | {} | {} | {} | {} | {} | {} | {params} | {} |",
            fmt_ms(&c[0], 3),
            fmt_ms(&c[1], 3),
            fmt_ms(&c[2], 4),
            fmt_ms(&c[3], 4),
            fmt_ms(&c[4], 2),
            fmt_ms(&c[5], 4),
            fmt_ms(&c[8], 3),
            fmt_ms(&c[7], 3),
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
    let _ = writeln!(
        table,
        "\n\"Test at a training location\": the share of test points whose coordinates occur exactly in the training set (repeated events at one place); a density can score on those by peaking sharply at training points.\n\nFigures: `figures/earth-<data set>.png`, the reported density of the best checkpoint of seed 0 on a world map (log colour scale) with the test points."
    );
    Ok((table, csv))
}

/// The share of the test points of `config`'s split whose location occurs exactly in its
/// training set ([`egf_data::PointSet::count_located_in`]).
fn test_share_at_train_location(config: &TrainConfig) -> Result<f64> {
    let TaskConfig::Imitation(im) = &config.task else {
        bail!("{}: the earth experiment needs an imitation task", config.name);
    };
    let data = egf_train::data::load_imitation_data(im, config.model.manifold, config.seed)?;
    if data.test.is_empty() {
        bail!("{}: the split leaves no test points", config.name);
    }
    Ok(data.test.count_located_in(&data.train)? as f64 / data.test.len() as f64)
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
        // the checkerboard (0 is a corner where black and white cells meet) and the rings
        // (target density ≈ 0 at 0, where the pure SL₂(Z) family pins t(0) = 1)
        files.retain(|f| f.starts_with("torus-il-checkerboard") || f.starts_with("torus-il-rings"));
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
            let report = run_one(&config, out, &label, args.resume)?;
            let test = report.test.as_ref().ok_or_else(|| anyhow!("{label}: no test evaluation"))?;
            let (kl, tv, t0) = torus_metrics(&report, &config)?;
            if seed == 0 {
                let path = torus_grid(&figures_dir(out)?, stem, &fname, &config, &report)?;
                eprintln!("[xtask] figure {}", path.display());
            }
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
    let _ = writeln!(
        table,
        "\nFigures: `figures/<config>.png`, per config (seed 0): target, learned (reported) density and a histogram of sampler draws on T², and below them target and learned density in the window [−0.125, 0.125]² around the fixed point 0 (ringed)."
    );
    Ok((table, csv))
}

/// Experiment 3: the checkerboard reward with the reward losses of the configs
/// `rl-checkerboard-*.toml` (stable FM, divergence FM with and without its regularizer).
fn rl(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    let mut files: Vec<String> = std::fs::read_dir(&args.configs)
        .with_context(|| format!("reading {}", args.configs.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("rl-checkerboard-") && n.ends_with(".toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no rl-checkerboard-*.toml configs in {}", args.configs.display());
    }
    let runs = files
        .iter()
        .map(|f| {
            let stem = f.trim_end_matches(".toml").to_string();
            let config = load_config(args, f)?;
            let objective = stem.trim_start_matches("rl-checkerboard-").to_string();
            Ok(RewardRun { stem, reward: "checkerboard".into(), objective, config })
        })
        .collect::<Result<Vec<_>>>()?;
    reward_runs(args, out, "Checkerboard reward on T²", "rl", runs)
}

/// The objectives of the variational experiment: stable FM as the reference, trajectory
/// balance, reverse KL without and with the leave-one-out baseline, forward KL (from
/// exact samples of R/Z) and the α-mixture with α = 0.5 (spec sections 5 and 6).
pub fn variational_objectives() -> Vec<(&'static str, egf_train::RewardLoss)> {
    use egf_loss::{AlphaKlConfig, Baseline, ElboConfig, ReverseKlConfig, StableFmConfig, TrajectoryConfig};
    use egf_train::RewardLoss;
    vec![
        ("stable-fm", RewardLoss::StableFm(StableFmConfig::default())),
        ("trajectory-balance", RewardLoss::TrajectoryBalance(TrajectoryConfig::default())),
        ("reverse-kl", RewardLoss::ReverseKl(ReverseKlConfig { baseline: Baseline::None, ..Default::default() })),
        (
            "reverse-kl-loo",
            RewardLoss::ReverseKl(ReverseKlConfig { baseline: Baseline::LeaveOneOut, ..Default::default() }),
        ),
        ("forward-kl", RewardLoss::ForwardKl(ElboConfig::default())),
        ("alpha-kl-0.5", RewardLoss::AlphaKl(AlphaKlConfig { alpha: 0.5, ..Default::default() })),
    ]
}

/// The rewards of the variational experiment: `(name, base config)`; only the loss changes.
pub const VARIATIONAL_REWARDS: [(&str, &str); 2] =
    [("checkerboard", "rl-checkerboard-stable.toml"), ("vmf-sphere", "rl-vmf-sphere-stable.toml")];

/// Experiment 4: every objective of [`variational_objectives`] on the checkerboard
/// reward on T² and the von Mises–Fisher mixture reward on S² (the settings of
/// [`VARIATIONAL_REWARDS`]' configs, only the loss changes). Both rewards have an exact
/// sampler of R/Z, which forward KL needs (`egf_data::RewardSpec::normalized_target`).
fn variational(args: &ReproduceArgs, out: &Path) -> Result<(String, String)> {
    let mut runs = Vec::new();
    for (reward, file) in VARIATIONAL_REWARDS {
        for (objective, loss) in variational_objectives() {
            let mut config = load_config(args, file)?;
            match &mut config.task {
                TaskConfig::Reward(r) => r.loss = loss,
                TaskConfig::Imitation(_) => bail!("{file} must be a reward config"),
            }
            config.name = format!("variational-{reward}-{objective}");
            runs.push(RewardRun {
                stem: format!("{reward}-{objective}"),
                reward: reward.into(),
                objective: objective.into(),
                config,
            });
        }
    }
    reward_runs(args, out, "Variational objectives on two rewards", "variational", runs)
}

/// One reward run of [`reward_runs`].
struct RewardRun {
    /// Label of the run (file names, first table column).
    stem: String,
    /// The reward's short name (one curve figure per reward).
    reward: String,
    /// The objective's short name (legend of the curves).
    objective: String,
    /// The config, before seeds and `--quick`.
    config: TrainConfig,
}

/// Gradient batches measured at every evaluation of the reward experiments.
const GRADIENT_PROBES: usize = 6;

/// Trains each reward run for every seed, tabulates the final match to the reward and
/// the gradient noise, and draws the training curves of seed 0, one figure per reward.
fn reward_runs(
    args: &ReproduceArgs,
    out: &Path,
    title: &str,
    experiment: &str,
    runs: Vec<RewardRun>,
) -> Result<(String, String)> {
    let seeds = args.seeds.unwrap_or(1);
    let mut csv = String::from(
        "config,reward,objective,seed,total_variation,z_init,reward_mass,integral_g,negative_mass,mean_moves,truncation_rate,gradient_variance,gradient_relative_variance,train_seconds,best_step,status\n",
    );
    let mut table = format!(
        "# {title}{}\n\nFinal TV between the reported density of the best checkpoint and the normalized reward, Z_init against the reward's mass ∫ R, ∫ g (the sampling cost), δ, and the mean trajectory length of {} forward chains. Gradient noise, measured at every evaluation from {GRADIENT_PROBES} independent batches at the same parameters (gradients with respect to the network's weights): tr Σ is the trace of the covariance of one batch's gradient, tr Σ/|ḡ|² the same relative to the squared norm of the mean gradient; the table gives the median over the evaluations of the run. Curves over training: `figures/`.\n\n| config | objective | TV | Z_init | ∫ R | ∫ g | δ | mean moves | grad. var. tr Σ | tr Σ / \\|ḡ\\|² |\n|---|---|---|---|---|---|---|---|---|---|\n",
        if args.quick { " — QUICK run" } else { "" },
        runs.first().map(|r| r.config.eval.sampler_chains.min(if args.quick { 1000 } else { usize::MAX })).unwrap_or(0)
    );
    let mut curves: Vec<(String, RunCurves)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for run in &runs {
        let mut cols: [Vec<f64>; 9] = Default::default();
        let mut mass = None;
        for seed in 0..seeds as u64 {
            let mut config = run.config.clone();
            config.seed = seed;
            scale(args, &mut config);
            if args.quick {
                // ten evaluations give the curves their points
                config.eval_interval = (config.steps / 10).max(1);
                config.eval.sampler_chains = config.eval.sampler_chains.min(1000);
            }
            config.eval.gradient_probes = GRADIENT_PROBES;
            let label = format!("{}-seed{seed}", run.stem);
            config.output_dir = out.join("runs").join(&label);
            // a run that diverges is a result (divergence FM, the forward KL of a flow whose
            // t ≤ 0 at a target sample): record it and go on with the others
            let report = match run_one(&config, out, &label, args.resume) {
                Ok(report) => report,
                Err(e) if e.downcast_ref::<ResumeConflict>().is_some() => return Err(e),
                Err(e) => {
                    let last = last_logged_step(&config.output_dir);
                    let message = format!("{e:#} (last step logged: {last})").replace([',', '\n'], ";");
                    eprintln!("[xtask] {label} FAILED: {message}");
                    for c in cols.iter_mut() {
                        c.push(f64::NAN);
                    }
                    let _ = writeln!(
                        csv,
                        "{},{},{},{seed},NaN,NaN,NaN,NaN,NaN,NaN,NaN,NaN,NaN,NaN,,failed: {message}",
                        run.stem, run.reward, run.objective
                    );
                    failures.push(format!("{label}: {message}"));
                    if seed == 0 {
                        if let Ok(rc) = RunCurves::read(&run.objective, &config.output_dir) {
                            curves.push((run.reward.clone(), rc));
                        }
                    }
                    continue;
                }
            };
            let r = report.reward.as_ref().ok_or_else(|| anyhow!("{label}: the trainer returned no reward report"))?;
            let rc = RunCurves::read(&run.objective, &config.output_dir)?;
            let (grad_var, grad_rel) = (rc.median("gradient_variance"), rc.median("gradient_relative_variance"));
            let (moves, trunc) =
                r.sampler.as_ref().map(|s| (s.mean_moves, s.truncation_rate)).unwrap_or((f64::NAN, f64::NAN));
            mass = Some(r.reward_mass);
            for (c, v) in cols.iter_mut().zip([
                r.total_variation,
                r.mass.z_init,
                r.mass.integral_g,
                r.mass.negative_mass,
                moves,
                grad_var,
                grad_rel,
                report.wall_seconds,
            ]) {
                c.push(v);
            }
            let _ = writeln!(
                csv,
                "{},{},{},{seed},{},{},{},{},{},{moves},{trunc},{grad_var},{grad_rel},{},{},ok",
                run.stem,
                run.reward,
                run.objective,
                r.total_variation,
                r.mass.z_init,
                r.reward_mass,
                r.mass.integral_g,
                r.mass.negative_mass,
                report.wall_seconds,
                report.best_step.map(|s| s.to_string()).unwrap_or_default()
            );
            if seed == 0 {
                curves.push((run.reward.clone(), rc));
            }
        }
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.stem,
            run.objective,
            fmt_ms(&cols[0], 4),
            fmt_ms(&cols[1], 4),
            mass.map(|m| format!("{m:.4}")).unwrap_or_else(|| "—".into()),
            fmt_ms(&cols[2], 3),
            fmt_ms(&cols[3], 4),
            fmt_ms(&cols[4], 2),
            fmt_sci(&cols[5]),
            fmt_sci(&cols[6])
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(table, "\nRuns that stopped (NaN in their rows; their curves end where they stopped):\n");
        for f in &failures {
            let _ = writeln!(table, "- {f}");
        }
    }
    let dir = figures_dir(out)?;
    let mut rewards: Vec<&str> = curves.iter().map(|(r, _)| r.as_str()).collect();
    rewards.dedup();
    let _ = writeln!(table);
    for reward in rewards {
        let group: Vec<RunCurves> = curves.iter().filter(|(r, _)| r == reward).map(|(_, c)| c.clone()).collect();
        let file = format!("{experiment}-{reward}-curves.png");
        let caption = vec![format!(
            "{} REWARD, SEED 0: ONE LINE PER OBJECTIVE, VALUES AT EVERY EVALUATION OF THE TRAINER (METRICS.JSONL).",
            reward.to_uppercase()
        )];
        let path = training_curves(&dir, &file, &group, true, &caption)?;
        eprintln!("[xtask] figure {}", path.display());
        let _ = writeln!(table, "Figure `figures/{file}`: ∫ g, mean trajectory length, TV and gradient noise over training, {reward} reward, seed 0.");
    }
    Ok((table, csv))
}

/// The largest `step` of a run's `metrics.jsonl` (0 when there is none).
fn last_logged_step(run_dir: &Path) -> u64 {
    egf_train::metrics::read_metrics(&run_dir.join(egf_train::metrics::METRICS_FILE))
        .map(|lines| lines.iter().filter_map(|l| l["step"].as_u64()).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Mean (± std) in scientific notation with 2 decimals.
fn fmt_sci(v: &[f64]) -> String {
    let (m, s) = mean_std(v);
    if v.len() > 1 {
        format!("{m:.2e} ± {s:.2e}")
    } else {
        format!("{m:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty output folder of this test process, `<tmp>/egf-xtask-<name>-<pid>`.
    fn fresh_out(name: &str) -> PathBuf {
        let out = std::env::temp_dir().join(format!("egf-xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        out
    }

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
            resume: false,
        }
    }

    /// Width and height of a PNG file, after checking its signature and that it has
    /// image data (the IHDR chunk holds width and height as big-endian `u32`s).
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]), "{} is no PNG", path.display());
        assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
        assert!(
            bytes.windows(4).any(|w| w == b"IDAT") && bytes.ends_with(&[0xae, 0x42, 0x60, 0x82]),
            "{}",
            path.display()
        );
        let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().unwrap());
        (be(16), be(20))
    }

    /// `--quick` runs end to end and writes the table, the CSV, the configs used and the world map.
    #[test]
    fn quick_earth_reproduction_writes_its_results() {
        let out = fresh_out("test");
        let table = run(&args(Experiment::Earth, &out)).unwrap();
        assert!(table.contains("| volcano |") && table.contains("Moser Flow") && table.contains("QUICK"), "{table}");
        let csv = std::fs::read_to_string(out.join("earth/results.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 2, "{csv}");
        let nll: f64 = rows[1].split(',').nth(2).unwrap().parse().unwrap();
        // 80 % of the volcano test points sit at a place with a training event
        let at_train: f64 = rows[1].split(',').nth(11).unwrap().parse().unwrap();
        assert!((0.5..=1.0).contains(&at_train), "share of test points at a training location {at_train}");
        // finite, and better than a wildly wrong model: uniform is log 4π ≈ 2.53
        assert!(nll.is_finite() && nll < 4.0, "test NLL {nll}");
        // the quick model is smooth: the two quadrature grids agree on its NLL
        let quad: f64 = rows[1].split(',').nth(12).unwrap().parse().unwrap();
        assert!(quad.abs() < 0.01, "quadrature check {quad}");
        assert!(out.join("earth/configs/volcano-seed0.toml").exists());
        assert!(out.join("earth/table.md").exists());
        // the world map: 1024 × 512 map plus margins and colour bar
        assert_eq!(png_size(&out.join("earth/figures/earth-volcano.png")), (60 + 1024 + 110, 44 + 512 + 44));
        let _ = std::fs::remove_dir_all(&out);
    }

    /// The torus experiment computes exact KL and TV, the pure SL₂(Z) family keeps
    /// t(0) = 1, and every config gets its figure grid.
    #[test]
    fn quick_torus_reproduction_reports_the_fixed_point() {
        let out = fresh_out("torus");
        let mut a = args(Experiment::TorusIl, &out);
        a.steps = Some(30);
        let table = run(&a).unwrap();
        let csv = std::fs::read_to_string(out.join("torus-il/results.csv")).unwrap();
        let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
        assert_eq!(rows.len(), 4, "{csv}");
        for r in &rows {
            let (kl, tv, t0): (f64, f64, f64) = (r[5].parse().unwrap(), r[6].parse().unwrap(), r[7].parse().unwrap());
            assert!(kl.is_finite() && kl >= -1e-9 && (0.0..=1.0).contains(&tv), "{r:?}");
            if r[1] == "sl2z" {
                assert!((t0 - 1.0).abs() < 1e-5, "pure SL2(Z) family must keep t(0) = 1: {r:?}");
            }
            // 3 panels of 300 px in the first row, 2 in the second, 3 caption lines
            let png = out.join("torus-il/figures").join(format!("{}.png", r[0]));
            assert_eq!(png_size(&png), (60 + 3 * 300 + 2 * 50 + 120, 40 + 2 * 300 + 64 + 36 + 3 * 14), "{r:?}");
        }
        assert_eq!(rows.iter().filter(|r| r[1] == "sl2z").count(), 2);
        assert!(table.contains("figures/"), "{table}");
        let _ = std::fs::remove_dir_all(&out);
    }

    /// The variational comparison runs every objective on both rewards end to end,
    /// records the gradient noise, and draws one curve figure per reward.
    #[test]
    fn quick_variational_comparison_runs() {
        let out = fresh_out("var");
        let mut a = args(Experiment::Variational, &out);
        a.steps = Some(4);
        let table = run(&a).unwrap();
        let csv = std::fs::read_to_string(out.join("variational/results.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
        for (reward, _) in VARIATIONAL_REWARDS {
            for (objective, _) in variational_objectives() {
                let row = rows
                    .iter()
                    .find(|r| r[col("reward")] == reward && r[col("objective")] == objective)
                    .unwrap_or_else(|| panic!("no row for {reward} / {objective}:\n{csv}"));
                let tv: f64 = row[col("total_variation")].parse().unwrap();
                assert!((0.0..=1.0).contains(&tv), "{row:?}");
                let var: f64 = row[col("gradient_variance")].parse().unwrap();
                let rel: f64 = row[col("gradient_relative_variance")].parse().unwrap();
                assert!(var > 0.0 && rel > 0.0, "{row:?}");
                let moves: f64 = row[col("mean_moves")].parse().unwrap();
                assert!(moves >= 0.0, "{row:?}");
                let best: usize = row[col("best_step")].parse().unwrap();
                assert!((1..=4).contains(&best), "{row:?}");
                assert_eq!(row[col("status")], "ok", "{row:?}");
                assert!(table.contains(&format!("| {reward}-{objective} |")), "{table}");
            }
            // a 2 × 2 grid of 460 × 300 charts
            let (w, h) = png_size(&out.join(format!("variational/figures/variational-{reward}-curves.png")));
            assert!(w > 2 * 460 && h == 44 + 2 * 300 + 84 + 40 + 14 + 8, "{w} × {h}");
        }
        assert_eq!(rows.len(), VARIATIONAL_REWARDS.len() * variational_objectives().len());
        let _ = std::fs::remove_dir_all(&out);
    }

    /// The flow-matching comparison draws its curves from every run's metrics.
    #[test]
    fn quick_rl_comparison_draws_curves() {
        let out = fresh_out("rl");
        let mut a = args(Experiment::Rl, &out);
        a.steps = Some(6);
        run(&a).unwrap();
        let csv = std::fs::read_to_string(out.join("rl/results.csv")).unwrap();
        let objectives: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
        assert_eq!(objectives, ["divergence-reg", "divergence", "stable"], "{csv}");
        let (w, _) = png_size(&out.join("rl/figures/rl-checkerboard-curves.png"));
        assert!(w > 2 * 460);
        let _ = std::fs::remove_dir_all(&out);
    }

    /// `--resume` reuses finished runs untouched, finishes an interrupted one, and refuses
    /// a run folder written by another config.
    #[test]
    fn resume_picks_up_finished_and_interrupted_runs() {
        let out = fresh_out("resume");
        let mut a = args(Experiment::Rl, &out);
        a.steps = Some(6);
        run(&a).unwrap();
        let csv_path = out.join("rl/results.csv");
        let first = std::fs::read_to_string(&csv_path).unwrap();
        let run_dir = out.join("rl/runs/rl-checkerboard-stable-seed0");
        let metrics = std::fs::read(run_dir.join(egf_train::metrics::METRICS_FILE)).unwrap();

        // everything finished: no training, the same table to the byte
        a.resume = true;
        run(&a).unwrap();
        assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), first);
        assert_eq!(
            std::fs::read(run_dir.join(egf_train::metrics::METRICS_FILE)).unwrap(),
            metrics,
            "a finished run was retrained"
        );

        // a run killed after its last checkpoint but before its report: only the final
        // evaluation is left, and it evaluates the same best checkpoint
        std::fs::remove_file(run_dir.join(egf_train::REPORT_FILE)).unwrap();
        run(&a).unwrap();
        assert!(run_dir.join(egf_train::REPORT_FILE).exists());
        let column = |csv: &str, row: &str, name: &str| -> String {
            let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
            let col = header.iter().position(|h| *h == name).unwrap();
            let line = csv.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no row {row}:\n{csv}"));
            line.split(',').nth(col).unwrap().to_string()
        };
        let again = std::fs::read_to_string(&csv_path).unwrap();
        for name in ["total_variation", "z_init", "negative_mass"] {
            assert_eq!(
                column(&again, "rl-checkerboard-stable,", name),
                column(&first, "rl-checkerboard-stable,", name),
                "{name}"
            );
        }

        // another step count is another run: an error naming the folder, nothing overwritten
        a.steps = Some(7);
        let err = format!("{:#}", run(&a).unwrap_err());
        assert!(err.contains("--resume") && err.contains("rl-checkerboard-"), "{err}");
        assert!(run_dir.join(egf_train::REPORT_FILE).exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}
