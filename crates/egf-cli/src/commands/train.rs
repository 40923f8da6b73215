//! `egf train`: run `egf_train::train` on a config (or the embedded demo), then draw the
//! comparison figure of target, learned density and sampler histogram.

use std::path::PathBuf;

use anyhow::{Context, Result};
use egf_data::PointSet;
use egf_flow::{EgfModel, SamplerConfig};
use egf_manifold::Manifold;
use egf_train::{FigureData, RunOptions, TrainConfig, TrainReport};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::eval::report_rows;
use super::print_table;
use super::sample::sample_batched;
use crate::args::TrainArgs;
use crate::figures::{comparison_figure, histogram_grid, ColorScale};
use crate::numfmt::sig;
use crate::outln;
use crate::points::point_set_from_tensor;
use crate::usage::usage;

/// File name of the comparison figure inside the output directory.
pub const FIGURE_PNG: &str = "comparison.png";
/// Chains drawn for the sampler histogram of the figure.
const FIGURE_SAMPLES: usize = 20_000;

/// The config of `egf train`: the file (or the demo), the `--set` overrides, then the flags.
pub fn build_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => {
            if !path.is_file() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            TrainConfig::from_file(path)?
        }
        None => TrainConfig::demo(),
    };
    for spec in &args.overrides {
        config.apply_override(spec).map_err(|e| usage(format!("--set {spec}: {e}")))?;
    }
    if let Some(dir) = &args.output_dir {
        config.output_dir = dir.clone();
    }
    if let Some(device) = args.device {
        config.device = device;
    }
    Ok(config)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = build_config(&args)?;
    if args.print_config {
        outln!("{}", config.to_toml_string()?);
        return Ok(());
    }
    let source = match &args.config {
        Some(p) => p.display().to_string(),
        None => "the embedded demo (imitation learning of a toy density on T^2)".into(),
    };
    let warnings = config.validate().with_context(|| format!("invalid config ({source})"))?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // fail on an unavailable device before anything is written
    crate::model_io::open_device(config.device)?;
    let remaining = if args.resume { " (resuming)" } else { "" };
    outln!(
        "training `{}` from {source}: {} steps on {}{remaining}, output in {}",
        config.name,
        config.steps,
        config.device,
        config.output_dir.display()
    );
    let options = RunOptions { quiet: args.quiet, resume: args.resume, max_steps_this_run: args.max_steps };
    let report = egf_train::train(&config, &options).with_context(|| format!("training `{}` failed", config.name))?;
    print_report(&report);
    if report.finished && !args.no_figure {
        match draw_figure(&config, &report) {
            Ok(Some(path)) => outln!("  figure: {}", path.display()),
            Ok(None) => {}
            Err(e) => eprintln!("warning: the comparison figure was not drawn: {e:#}"),
        }
    }
    Ok(())
}

fn print_report(r: &TrainReport) {
    let out = &r.output_dir;
    let state = if r.finished { "finished" } else { "stopped early (continue with --resume)" };
    outln!(
        "{state} after {} of {} steps in {:.1} s ({:.1} steps/s)",
        r.steps_completed,
        r.total_steps,
        r.wall_seconds,
        r.steps_per_second
    );
    outln!("wrote {}", out.display());
    let best = match (r.best_validation, r.best_step) {
        (Some(v), Some(s)) => format!(" (step {s}, {} {})", r.validation_metric.replace('_', " "), sig(v, 6)),
        _ => String::new(),
    };
    for (path, what) in [
        (r.best_checkpoint.clone(), format!("best checkpoint{best}")),
        (r.last_checkpoint.clone(), "last checkpoint".to_string()),
        (out.join(egf_train::metrics::METRICS_FILE), "metrics, one JSON object per line".into()),
        (out.join(egf_train::CONFIG_FILE), "the config of the run".into()),
        (out.join(egf_train::REPORT_FILE), "final report".into()),
    ] {
        if path.exists() {
            outln!("  {}: {what}", path.display());
        }
    }
    if let Some(loss) = r.last_loss {
        outln!("final training loss: {}", sig(loss, 6));
    }
    if let Some(test) = &r.test {
        outln!("test split, best checkpoint:");
        print_table(&report_rows(test));
    }
    if let Some(rw) = &r.reward {
        outln!("reward match, best checkpoint:");
        let mut rows = vec![
            ("total variation to R/Z".to_string(), sig(rw.total_variation, 4)),
            ("Z = ∫ R dλ (quadrature)".to_string(), sig(rw.reward_mass, 6)),
            ("Z_init".to_string(), sig(rw.mass.z_init, 6)),
            ("δ".to_string(), sig(rw.mass.negative_mass, 4)),
            ("∫ g dλ".to_string(), sig(rw.mass.integral_g, 5)),
        ];
        if let Some(z) = rw.reward_normalizer {
            rows.insert(2, ("Z (closed form)".into(), sig(z, 6)));
        }
        print_table(&rows);
    }
    if !r.warnings.is_empty() {
        outln!("config warnings: {}", r.warnings.join("; "));
    }
}

/// Draws `comparison.png` from `figure.json` and a fresh sampler histogram of the best
/// checkpoint; `None` when the run wrote no figure data (manifolds other than T^2, S^2).
pub fn draw_figure(config: &TrainConfig, report: &TrainReport) -> Result<Option<PathBuf>> {
    let out = &report.output_dir;
    let fig_path = out.join(egf_train::FIGURE_FILE);
    if !fig_path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&fig_path).with_context(|| format!("cannot read {}", fig_path.display()))?;
    let fig: FigureData =
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", fig_path.display()))?;
    let manifold = fig.learned.manifold;
    let ckpt = if report.best_checkpoint.exists() { &report.best_checkpoint } else { &report.last_checkpoint };
    let device = config.device.build()?;
    let model = egf_flow::load_flow_model(&egf_train::checkpoint::model_dir(ckpt), &device)?;
    let sampler = SamplerConfig {
        max_moves: config.eval.sampler_max_moves,
        defensive_weight: config.eval.defensive_weight,
        record_trajectories: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xF16);
    let (samples, stats) = sample_batched(&model, FIGURE_SAMPLES, 8192, &sampler, &mut rng)?;
    let samples = point_set_from_tensor(model.manifold(), &samples)?;
    let hist_res = if manifold.is_torus() { 50 } else { 45 };
    let histogram = histogram_grid(&samples, hist_res).context("no histogram on this manifold")?;
    let points = (!fig.points.is_empty()).then(|| PointSet::new(manifold, fig.points.clone())).transpose()?;

    let mut panels: Vec<(String, &egf_train::DensityGrid, bool)> = Vec::new();
    if let Some(t) = &fig.target {
        panels.push(("TARGET".into(), t, false));
    }
    panels.push(("LEARNED".into(), &fig.learned, fig.target.is_none()));
    panels.push((format!("SAMPLER ({} DRAWS)", FIGURE_SAMPLES), &histogram, false));
    let log = !manifold.is_torus();
    let values = fig.target.iter().flat_map(|t| t.values.iter()).chain(fig.learned.values.iter());
    let scale = ColorScale::covering(values, log);
    let caption = format!(
        "{}: {} STEPS. SAMPLER MEAN MOVES {}, TRUNCATED {}. DENSITIES W.R.T. THE {} MEASURE.",
        config.name,
        report.steps_completed,
        sig(stats.mean_moves(), 3),
        stats.truncated,
        if manifold == (Manifold::Sphere { dim: 2 }) { "SURFACE" } else { "LEBESGUE" }
    );
    let canvas = comparison_figure(&panels, &scale, points.as_ref(), &caption);
    let path = out.join(FIGURE_PNG);
    canvas.save_png(&path)?;
    Ok(Some(path))
}
