//! Finding and loading the model behind `--checkpoint`, opening the device, and the
//! quadrature mass that every density needs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use egf_flow::{EgfModel, FlowModel, MassReport, ModelDescription, SavedModel};
use egf_manifold::{Manifold, QuadratureGrid};
use egf_train::{DeviceSpec, TrainConfig};

use crate::args::{DensityGridArgs, ModelArgs};
use crate::usage::usage;

/// File that marks a model directory.
const MODEL_FILE: &str = "model.json";

/// A model directory found from what the user gave.
#[derive(Debug, Clone)]
pub struct ModelLocation {
    /// The directory holding `model.json` and `weights.safetensors`.
    pub model_dir: PathBuf,
    /// The checkpoint directory (`…/checkpoints/best`) when the model sits in one.
    pub checkpoint_dir: Option<PathBuf>,
    /// The run's output directory (holding `config.toml`), when found.
    pub run_dir: Option<PathBuf>,
}

impl ModelLocation {
    /// The run's config (`<run>/config.toml`), when the model belongs to a run and it parses.
    pub fn run_config(&self) -> Option<TrainConfig> {
        let run = self.run_dir.as_ref()?;
        TrainConfig::from_file(&run.join(egf_train::CONFIG_FILE)).ok()
    }

    /// The checkpoint's `state.json` (step, best validation value), when there is one.
    pub fn checkpoint_state(&self) -> Option<egf_train::CheckpointState> {
        let dir = self.checkpoint_dir.as_ref()?;
        egf_train::checkpoint::load_checkpoint_state(dir).ok()
    }
}

/// Resolves `--checkpoint DIR`: a model directory (`DIR/model.json`), a checkpoint of a run
/// (`DIR/model/model.json`), or a run's output directory (`DIR/checkpoints/best`, else `last`).
pub fn locate(dir: &Path) -> Result<ModelLocation> {
    if !dir.exists() {
        bail!("checkpoint directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("checkpoint {} is a file; pass the directory that holds model.json", dir.display());
    }
    let find_run = |start: &Path| -> Option<PathBuf> {
        start.ancestors().take(4).find(|d| d.join(egf_train::CONFIG_FILE).is_file()).map(Path::to_path_buf)
    };
    if dir.join(MODEL_FILE).is_file() {
        let checkpoint_dir =
            dir.parent().filter(|p| p.join(egf_train::checkpoint::STATE_FILE).is_file()).map(Path::to_path_buf);
        return Ok(ModelLocation { model_dir: dir.to_path_buf(), checkpoint_dir, run_dir: find_run(dir) });
    }
    let nested = egf_train::checkpoint::model_dir(dir);
    if nested.join(MODEL_FILE).is_file() {
        return Ok(ModelLocation {
            model_dir: nested,
            checkpoint_dir: Some(dir.to_path_buf()),
            run_dir: find_run(dir),
        });
    }
    for kind in [egf_train::CheckpointKind::Best, egf_train::CheckpointKind::Last] {
        let ckpt = egf_train::checkpoint_dir(dir, kind);
        let model = egf_train::checkpoint::model_dir(&ckpt);
        if model.join(MODEL_FILE).is_file() {
            return Ok(ModelLocation {
                model_dir: model,
                checkpoint_dir: Some(ckpt),
                run_dir: Some(dir.to_path_buf()),
            });
        }
    }
    bail!(
        "{} holds no model: expected {MODEL_FILE} in it, in its model/ folder (a checkpoint), \
         or in checkpoints/best/model/ (a run's output directory)",
        dir.display()
    )
}

/// Opens the tensor device; an unavailable device is a usage error that says how to fix it.
pub fn open_device(spec: DeviceSpec) -> Result<Device> {
    spec.build().map_err(|e| usage(format!("--device {spec}: {e}")))
}

/// The loaded model of either parameterization, with where it came from.
pub struct Loaded {
    pub location: ModelLocation,
    pub description: ModelDescription,
    pub model: SavedModel,
}

/// Loads the model of `--checkpoint` on `--device`.
pub fn load(args: &ModelArgs) -> Result<Loaded> {
    let location = locate(&args.checkpoint)?;
    let device = open_device(args.device)?;
    let description = egf_flow::read_description(&location.model_dir)
        .with_context(|| format!("cannot read the model in {}", location.model_dir.display()))?;
    let model = egf_flow::load_model(&location.model_dir, &device)
        .with_context(|| format!("cannot load the model in {}", location.model_dir.display()))?;
    Ok(Loaded { location, description, model })
}

/// Loads a flow model; a policy model is an error naming the command that needs the flow.
pub fn load_flow(args: &ModelArgs, command: &str) -> Result<(ModelLocation, FlowModel)> {
    let loaded = load(args)?;
    match loaded.model {
        SavedModel::Flow(m) => Ok((loaded.location, m)),
        SavedModel::Policy(_) => bail!(
            "{} holds a policy-parameterized model; `egf {command}` needs a flow model \
             (the reported density t⁺/∫t⁺ exists only for the flow parameterization)",
            loaded.location.model_dir.display()
        ),
    }
}

/// `∫t`, `∫t⁺`, `δ`, `∫g` of `model` on its default quadrature rule of resolution
/// `resolution`, or by default on the rule of the final evaluation of the run the model
/// belongs to (twice its `eval.quadrature_resolution`; 128 outside a run), so that the
/// reported density is normalized as in the run's `report.json`.
pub fn mass(
    model: &FlowModel,
    location: &ModelLocation,
    resolution: Option<usize>,
    chunk: usize,
) -> Result<MassReport> {
    let resolution =
        resolution.unwrap_or_else(|| location.run_config().map(|c| c.eval).unwrap_or_default().report_resolution());
    let grid = QuadratureGrid::new(model.manifold(), resolution)
        .with_context(|| format!("no quadrature rule of resolution {resolution} on {}", model.manifold()))?;
    Ok(model.mass_report(&grid, chunk)?)
}

/// `log p(x)` of the reported density and whether `t(x) ≤ 0`, evaluated in chunks.
pub fn log_density_and_sign(
    model: &FlowModel,
    x: &Tensor,
    mass: &MassReport,
    defensive_weight: f64,
    chunk: usize,
) -> Result<(Vec<f64>, Vec<bool>)> {
    let n = x.dim(0)?;
    let (mut log_p, mut nonpositive) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for start in (0..n).step_by(chunk.max(1)) {
        let xs = x.narrow(0, start, chunk.max(1).min(n - start))?;
        let lp = model.log_reported_density(&xs, mass, defensive_weight)?;
        log_p.extend(host(&lp)?);
        let t = host(&model.evaluate(&xs)?.t.detach())?;
        // NaN counts as non-positive
        nonpositive.extend(t.iter().map(|v| v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)));
    }
    Ok((log_p, nonpositive))
}

/// Copies a tensor to the host as `f64`.
pub fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// A density on the picture grid of a 2-dimensional manifold (layout of
/// [`egf_train::DensityGrid`]: torus rows = `x1`, columns = `x2`; sphere rows = latitudes
/// from north, columns = longitudes from −180°).
pub fn picture_grid(manifold: Manifold, resolution: usize) -> Result<(QuadratureGrid, usize, usize)> {
    match manifold {
        Manifold::Torus { dim: 2 } => Ok((QuadratureGrid::torus_midpoint(2, resolution)?, resolution, resolution)),
        Manifold::Sphere { dim: 2 } => {
            Ok((QuadratureGrid::sphere_equiangular(resolution, 2 * resolution)?, resolution, 2 * resolution))
        }
        m => bail!("density grids and pictures are available on T^2 and S^2 only; this model lives on {m}"),
    }
}

/// The reported density `(1 − w) t⁺/∫t⁺ + w/vol` of spec section 7 on the picture grid of
/// `args` (`w = args.defensive_weight`), with the [`mass`] report whose `∫t⁺` normalizes it
/// (on the rule of `args.quadrature`, else on the run's final rule).
pub fn density_grid(
    model: &FlowModel,
    location: &ModelLocation,
    args: &DensityGridArgs,
) -> Result<(MassReport, QuadratureGrid, egf_train::DensityGrid)> {
    let mass = mass(model, location, args.quadrature, args.chunk)?;
    let manifold = model.manifold();
    let (grid, rows, cols) = picture_grid(manifold, args.resolution)?;
    let mut values = Vec::with_capacity(grid.len());
    for (start, len) in grid.chunks(args.chunk) {
        let (x, _) = grid.chunk_tensors(start, len, model.dtype(), model.device())?;
        values.extend(host(&model.log_reported_density(&x, &mass, args.defensive_weight)?.exp()?)?);
    }
    Ok((mass, grid, egf_train::DensityGrid { manifold, rows, cols, values }))
}
