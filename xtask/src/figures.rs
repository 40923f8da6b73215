//! The figures of `cargo xtask reproduce`, drawn through the `egf-plot` library into
//! `results/<experiment>/figures/`:
//!
//! * [`earth_map`]: the reported density of the best checkpoint on a world map
//!   (equirectangular, log colour scale) with the test points of the split;
//! * [`torus_grid`]: target, learned (reported) density and a histogram of sampler
//!   draws on `T^2`, and below them the target and the learned density in a window
//!   centred at the fixed point 0 of the SL₂(Z) maps (spec section 2);
//! * [`training_curves`]: ∫ g, mean trajectory length, TV to the normalized reward and
//!   (when measured) the gradient's relative variance over training, one line per run,
//!   read from the runs' `metrics.jsonl` (the `eval` lines of `egf-train`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use egf_data::PointSet;
use egf_flow::{EgfModel, FlowModel, SamplerConfig};
use egf_manifold::Manifold;
use egf_plot::curves::{curves_figure, CurvePanel, Series};
use egf_plot::figures::{
    covering_scale, density_figure, histogram_grid, panel_grid_figure, ColorScale, Field, GridCell, GridRow, WindowGrid,
};
use egf_plot::numfmt::sig;
use egf_train::{DataSource, FigureData, TaskConfig, TrainConfig, TrainReport};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Where the figures of an experiment go: `<out>/figures/`, created on demand.
pub fn figures_dir(out: &Path) -> Result<PathBuf> {
    let dir = out.join("figures");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The `figure.json` a finished run wrote (learned and target densities of the best checkpoint).
fn figure_data(report: &TrainReport) -> Result<FigureData> {
    let path = report.output_dir.join(egf_train::FIGURE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The flow model of the best checkpoint of a finished run (the last one if none was best).
fn best_model(report: &TrainReport) -> Result<FlowModel> {
    let ckpt = if report.best_checkpoint.exists() { &report.best_checkpoint } else { &report.last_checkpoint };
    let dir = egf_train::checkpoint::model_dir(ckpt);
    egf_flow::load_flow_model(&dir, &Device::Cpu).with_context(|| format!("loading the model in {}", dir.display()))
}

/// The reported density `(1 − w) t⁺/∫t⁺ + w/vol` of `model` at `points` (∫t⁺ on the
/// evaluation's quadrature grid).
fn reported_density(model: &FlowModel, config: &TrainConfig, points: &[[f64; 2]]) -> Result<Vec<f64>> {
    let grid = config.eval.grid(model.manifold())?;
    let mass = model.mass_report(&grid, config.eval.chunk)?;
    let flat: Vec<f64> = points.iter().flatten().copied().collect();
    let x = Tensor::from_vec(flat, (points.len(), 2), &Device::Cpu)?.to_dtype(model.dtype())?;
    let lp = model.log_reported_density(&x, &mass, config.eval.defensive_weight)?;
    Ok(lp.exp()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// Earth: the reported density of the best checkpoint of `report` on a world map, with
/// the run's test points (the seeded split of `config`), written to `<dir>/earth-<ds>.png`.
pub fn earth_map(dir: &Path, dataset: &str, config: &TrainConfig, report: &TrainReport) -> Result<PathBuf> {
    let fig = figure_data(report)?;
    let TaskConfig::Imitation(im) = &config.task else { bail!("earth configs must be imitation-learning configs") };
    let data = egf_train::data::load_imitation_data(im, config.model.manifold, config.seed)?;
    let scale = ColorScale::covering(&fig.learned.values, true);
    let nll = report.test.as_ref().map(|t| format!(", TEST NLL {}", sig(t.nll, 4))).unwrap_or_default();
    let title = format!(
        "{} SEED {}, BEST CHECKPOINT (STEP {}){nll}, {} TEST POINTS",
        dataset.to_uppercase(),
        config.seed,
        report.best_step.map(|s| s.to_string()).unwrap_or_else(|| "LAST".into()),
        data.test.len()
    );
    let canvas = density_figure(&fig.learned, &scale, &title, Some(&data.test));
    let path = dir.join(format!("earth-{dataset}.png"));
    canvas.save_png(&path)?;
    Ok(path)
}

/// Sampler draws for the histogram panel of the torus figure.
const TORUS_SAMPLES: usize = 20_000;

/// Torus: a 2 × 3 grid for one run — target, learned and sampler histogram on the whole
/// torus, then the target and the learned density in the window `[−0.125, 0.125]²`
/// around the fixed point 0 (marked in every panel), and the values at 0 in the
/// caption — written to `<dir>/<stem>.png`.
pub fn torus_grid(dir: &Path, stem: &str, family: &str, config: &TrainConfig, report: &TrainReport) -> Result<PathBuf> {
    let fig = figure_data(report)?;
    let target_grid = fig.target.as_ref().ok_or_else(|| anyhow!("{stem}: figure.json holds no target density"))?;
    let target = match &config.task {
        TaskConfig::Imitation(im) => match &im.data {
            DataSource::Target { target, .. } => target.build()?,
            _ => bail!("{stem}: torus-il configs must use a toy target as data source"),
        },
        TaskConfig::Reward(_) => bail!("{stem}: torus-il configs must be imitation-learning configs"),
    };
    let model = best_model(report)?;
    if model.manifold() != (Manifold::Torus { dim: 2 }) {
        bail!("{stem}: the torus figure needs a model on T^2, not {}", model.manifold());
    }
    let sampler = SamplerConfig {
        max_moves: config.eval.sampler_max_moves,
        defensive_weight: config.eval.defensive_weight,
        record_trajectories: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xF16);
    let out = egf_flow::sample(&model, TORUS_SAMPLES, &sampler, &mut rng)?;
    let samples = PointSet::from_tensor(model.manifold(), &out.samples)?;
    let histogram = histogram_grid(&samples, 50).ok_or_else(|| anyhow!("no histogram on {}", model.manifold()))?;

    let (centre, half, n) = ([0.0, 0.0], 0.125, 96);
    let window_points = WindowGrid::points(centre, half, n)?;
    let target_zoom = WindowGrid::from_fn(centre, half, n, |p| target.density_f64(&p))?;
    let learned_zoom = WindowGrid::with_values(centre, half, n, reported_density(&model, config, &window_points)?)?;
    let zero = Tensor::new(&[[0.0f64, 0.0]], &Device::Cpu)?.to_dtype(model.dtype())?;
    let t0 = model.evaluate(&zero)?.t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    let p0 = reported_density(&model, config, &[[0.0, 0.0]])?[0];

    let cell = |title: String, field| GridCell { title, field, points: None, marker: Some(centre) };
    // the whole torus on the scale of target and learned density; the windows on a
    // scale of their own, so that t(0) = f_init stands out against a target near 0
    let rows = vec![
        GridRow {
            cells: vec![
                cell("TARGET".into(), Field::Grid(target_grid)),
                cell("LEARNED (REPORTED)".into(), Field::Grid(&fig.learned)),
                cell(format!("SAMPLER ({TORUS_SAMPLES} DRAWS)"), Field::Grid(&histogram)),
            ],
            scale: covering_scale(&[Field::Grid(target_grid), Field::Grid(&fig.learned)], false),
        },
        GridRow {
            cells: vec![
                cell("TARGET NEAR 0".into(), Field::Window(&target_zoom)),
                cell("LEARNED NEAR 0".into(), Field::Window(&learned_zoom)),
            ],
            scale: covering_scale(&[Field::Window(&target_zoom), Field::Window(&learned_zoom)], false),
        },
    ];
    let caption = vec![
        format!(
            "{stem} ({family}), {} STEPS, SEED {}, BEST CHECKPOINT (STEP {}). RINGS MARK THE POINT 0.",
            report.steps_completed,
            config.seed,
            report.best_step.map(|s| s.to_string()).unwrap_or_else(|| "LAST".into())
        ),
        format!(
            "AT 0: t(0) = {} (f_init = 1), REPORTED DENSITY {}, TARGET DENSITY {}. SAMPLER MEAN MOVES {}, TRUNCATED {}.",
            sig(t0, 6),
            sig(p0, 4),
            sig(target.density_f64(&[0.0, 0.0]), 4),
            sig(out.mean_moves(), 3),
            out.truncated_count()
        ),
        "THE PURE SL2(Z) FAMILY FIXES 0, SO t(0) = f_init WHATEVER THE WEIGHTS (SPEC SECTION 2).".into(),
    ];
    let canvas = panel_grid_figure(&rows, &caption)?;
    let path = dir.join(format!("{stem}.png"));
    canvas.save_png(&path)?;
    Ok(path)
}

/// One run's curves: the `eval` lines of its `metrics.jsonl`.
#[derive(Clone, Debug)]
pub struct RunCurves {
    /// Legend label.
    pub label: String,
    /// `(step, eval line)` in order.
    pub evals: Vec<(f64, Value)>,
}

impl RunCurves {
    /// Reads the `eval` lines of `<run_dir>/metrics.jsonl`.
    pub fn read(label: &str, run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(egf_train::metrics::METRICS_FILE);
        let lines = egf_train::metrics::read_metrics(&path).with_context(|| format!("reading {}", path.display()))?;
        let evals = lines
            .into_iter()
            .filter(|l| l["kind"] == "eval")
            .filter_map(|l| Some((l["step"].as_f64()?, l)))
            .collect::<Vec<_>>();
        if evals.is_empty() {
            bail!("{} has no evaluation lines", path.display());
        }
        Ok(Self { label: label.to_string(), evals })
    }

    /// `(step, value)` of one key of the eval lines (lines without it skipped).
    pub fn series(&self, key: &str) -> Series {
        Series {
            label: self.label.clone(),
            points: self.evals.iter().filter_map(|(s, l)| Some((*s, l[key].as_f64()?))).collect(),
        }
    }

    /// The median of one key over the eval lines that have it (NaN when none has).
    pub fn median(&self, key: &str) -> f64 {
        let mut v: Vec<f64> = self.evals.iter().filter_map(|(_, l)| l[key].as_f64()).filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let k = v.len();
        if k % 2 == 1 {
            v[k / 2]
        } else {
            0.5 * (v[k / 2 - 1] + v[k / 2])
        }
    }
}

/// Training curves of several runs, one line per run: ∫ g (log), mean trajectory length
/// of the sampler (log), TV to the normalized reward and, when `gradient` is set, the
/// relative variance of the gradient (log), at every evaluation; written to `<dir>/<file>`.
pub fn training_curves(
    dir: &Path,
    file: &str,
    runs: &[RunCurves],
    gradient: bool,
    caption: &[String],
) -> Result<PathBuf> {
    let panel = |title: &str, y: &str, key: &str, log_y: bool| CurvePanel {
        title: title.into(),
        y_label: y.into(),
        log_y,
        series: runs.iter().map(|r| r.series(key)).collect(),
    };
    let mut panels = vec![
        panel("FLOW MASS", "INTEGRAL OF g", "integral_g", true),
        panel("TRAJECTORY LENGTH", "MEAN MOVES", "mean_moves", true),
        panel("MATCH TO THE REWARD", "TV TO R/Z", "total_variation", false),
    ];
    if gradient {
        panels.push(panel("GRADIENT NOISE", "TR COV / |MEAN GRAD|^2", "gradient_relative_variance", true));
    }
    let canvas = curves_figure(&panels, 2, "TRAINING STEP", caption)?;
    let path = dir.join(file);
    canvas.save_png(&path)?;
    Ok(path)
}
