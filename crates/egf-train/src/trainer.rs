//! The training loop: [`train`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use egf_data::{Reward, Target};
use egf_flow::{EgfModel, FlowModel};
use egf_loss::{LossError, LossValue};
use egf_manifold::Manifold;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::checkpoint::{
    checkpoint_dir, load_checkpoint, model_dir, save_checkpoint, CheckpointKind, CheckpointState, Optimizers,
};
use crate::config::{ImitationConfig, RewardConfig, RewardLoss, TaskConfig, TrainConfig};
use crate::data::{derived_rng, load_imitation_data, Batcher, ImitationData, Stream};
use crate::eval::{
    density_grid, evaluate, reward_density_grid, reward_report, sampler_report, target_density_grid, target_nll,
    validation_nll, DensityGrid, EvalReport, GradientVariance, RewardReport,
};
use crate::metrics::MetricsWriter;
use crate::optim::{Adam, AdamParams};
use crate::{Result, TrainError};

/// File of the final [`TrainReport`] inside the output directory.
pub const REPORT_FILE: &str = "report.json";
/// File of the comparison-figure data ([`FigureData`]) inside the output directory.
pub const FIGURE_FILE: &str = "figure.json";
/// File of the run's config inside the output directory.
pub const CONFIG_FILE: &str = "config.toml";

/// How to run [`train`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// No progress bar (it is also hidden when stderr is not a terminal).
    pub quiet: bool,
    /// Continue from `<output_dir>/checkpoints/last` instead of starting over.
    pub resume: bool,
    /// Stop after this many steps of this session (a checkpoint is written), as if interrupted.
    pub max_steps_this_run: Option<usize>,
}

/// What [`train`] returns (also written to `report.json` when the run completes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The run's name.
    pub name: String,
    /// The output directory.
    pub output_dir: PathBuf,
    /// Steps completed, over all sessions.
    pub steps_completed: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Whether the run reached `steps` (otherwise it stopped early and can be resumed).
    pub finished: bool,
    /// The step this session started from (0 for a fresh run).
    pub started_at_step: usize,
    /// What selects the best checkpoint: `"validation_nll"` or `"total_variation"`.
    pub validation_metric: String,
    /// Best validation value and its step.
    pub best_validation: Option<f64>,
    /// Step of the best validation value.
    pub best_step: Option<usize>,
    /// Loss of the last logged step.
    pub last_loss: Option<f64>,
    /// Final evaluation of the best checkpoint on the test split (imitation, finished runs).
    pub test: Option<EvalReport>,
    /// Final comparison of the best checkpoint with the reward (reward tasks, finished runs).
    pub reward: Option<RewardReport>,
    /// Config warnings.
    pub warnings: Vec<String>,
    /// Wall-clock seconds of this session.
    pub wall_seconds: f64,
    /// Optimizer steps per second in this session (evaluations included).
    pub steps_per_second: f64,
    /// `<output_dir>/checkpoints/best`.
    pub best_checkpoint: PathBuf,
    /// `<output_dir>/checkpoints/last`.
    pub last_checkpoint: PathBuf,
}

/// The data of the comparison figure (`figure.json`): the learned density, the target's
/// exact density for a toy target, and up to 2000 training points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FigureData {
    /// Reported density of the best checkpoint.
    pub learned: DensityGrid,
    /// Exact target density (toy targets and density rewards).
    pub target: Option<DensityGrid>,
    /// Training points, row-major `(n, ambient_dim)`.
    pub points: Vec<f64>,
}

/// Device-side record of the first step whose loss was not finite, and of the terms that
/// were not finite at such a step, so that the inner loop never waits for the device; read
/// back only at logging, evaluation and checkpoint steps. A diagnostic term that is not
/// finite while the loss is (e.g. an `−∞` log-likelihood estimate) does not stop the run.
struct NonFiniteTracker {
    loss: Option<Tensor>,
    terms: Vec<(String, Tensor)>,
}

const NEVER: f64 = 1e15;

/// A `(1,)` mask, 1 where the first element of `value` is finite (`|v| < ∞` fails for ±∞ and NaN).
///
/// `value` is detached first: the tracker keeps its running minimum across steps, and a
/// mask still linked to the loss would keep every step's autograd graph (activations
/// included) alive for the whole run.
fn finite_mask(value: &Tensor) -> Result<Tensor> {
    let v = value.detach().flatten_all()?.to_dtype(DType::F64)?;
    let v = v.narrow(0, 0, 1.min(v.dim(0)?))?;
    Ok(v.abs()?.lt(f64::INFINITY)?)
}

fn running_min(slot: Option<Tensor>, candidate: Tensor) -> Result<Tensor> {
    Ok(match slot {
        Some(prev) => prev.minimum(&candidate)?,
        None => candidate,
    })
}

impl NonFiniteTracker {
    fn new() -> Self {
        Self { loss: None, terms: Vec::new() }
    }

    fn observe(&mut self, step: usize, value: &LossValue) -> Result<()> {
        let finite = finite_mask(&value.loss)?;
        let never = finite.to_dtype(DType::F64)?.affine(0.0, NEVER)?;
        let here = never.affine(0.0, step as f64)?;
        // `step` where the loss is not finite, NEVER elsewhere
        let loss_bad_at = finite.where_cond(&never, &here)?;
        for (name, t) in &value.terms {
            let term_bad_at = finite_mask(t)?.where_cond(&never, &loss_bad_at)?;
            match self.terms.iter_mut().find(|(n, _)| n == name) {
                Some((_, slot)) => *slot = slot.minimum(&term_bad_at)?,
                None => self.terms.push((name.clone(), term_bad_at)),
            }
        }
        self.loss = Some(running_min(self.loss.take(), loss_bad_at)?);
        Ok(())
    }

    /// `(step, term)` of the first step with a non-finite loss: the first term that was
    /// not finite at that step, or `loss` when every term was.
    fn check(&self) -> Result<Option<(usize, String)>> {
        let Some(loss) = &self.loss else { return Ok(None) };
        let first = loss.to_vec1::<f64>()?[0];
        if first >= NEVER {
            return Ok(None);
        }
        for (name, t) in &self.terms {
            if t.to_vec1::<f64>()?[0] == first {
                return Ok(Some((first as usize, name.clone())));
            }
        }
        Ok(Some((first as usize, "loss".into())))
    }
}

/// Whether every weight of the model is finite (one host read per variable).
fn weights_finite(model: &FlowModel) -> Result<bool> {
    for (_, v) in model.vars().data().lock().map_err(|_| poisoned())?.iter() {
        let finite = v.as_tensor().abs()?.lt(f64::INFINITY)?.to_dtype(DType::F32)?;
        if finite.min_all()?.to_scalar::<f32>()? < 1.0 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn poisoned() -> TrainError {
    TrainError::Checkpoint { path: PathBuf::from("<model>"), reason: "variable map lock poisoned".into() }
}

/// A task ready to produce losses.
enum Prepared {
    Imitation {
        cfg: Box<ImitationConfig>,
        data: Box<ImitationData>,
        train: Tensor,
        validation: Tensor,
        test: Tensor,
        batcher: Batcher,
    },
    Reward {
        cfg: Box<RewardConfig>,
        reward: Box<dyn Reward>,
        target: Option<Box<dyn Target>>,
    },
}

fn prepare(config: &TrainConfig, device: &Device, dtype: DType) -> Result<Prepared> {
    match &config.task {
        TaskConfig::Imitation(cfg) => {
            let data = load_imitation_data(cfg, config.model.manifold, config.seed)?;
            let train = data.train.to_tensor(dtype, device)?;
            let validation = data.validation.to_tensor(dtype, device)?;
            let test = if data.test.is_empty() { validation.clone() } else { data.test.to_tensor(dtype, device)? };
            let batcher = Batcher::new(data.train.len(), cfg.batch.data, config.seed)?;
            Ok(Prepared::Imitation {
                cfg: Box::new(cfg.clone()),
                data: Box::new(data),
                train,
                validation,
                test,
                batcher,
            })
        }
        TaskConfig::Reward(cfg) => {
            let reward = cfg.reward.build()?;
            let target = if cfg.loss.needs_target_samples() {
                let (target, _) = cfg.reward.normalized_target()?.ok_or_else(|| {
                    TrainError::config("task.reward", "this reward has no exact sampler of R/Z (see validate)")
                })?;
                Some(target.build()?)
            } else {
                None
            };
            Ok(Prepared::Reward { cfg: Box::new(cfg.clone()), reward, target })
        }
    }
}

impl Prepared {
    fn metric_name(&self) -> &'static str {
        match self {
            Prepared::Imitation { .. } => "validation_nll",
            Prepared::Reward { .. } => "total_variation",
        }
    }

    /// The loss of step `step` (1-based): everything random comes from the step's own generator.
    fn loss(&mut self, model: &FlowModel, step: usize, seed: u64) -> Result<LossValue> {
        let mut rng = derived_rng(seed, Stream::Step, step as u64);
        self.loss_on(model, step - 1, &mut rng)
    }

    /// The loss on data batch `batch` (imitation) with the random draws of `rng`.
    fn loss_on(&mut self, model: &FlowModel, batch: usize, rng: &mut ChaCha8Rng) -> Result<LossValue> {
        let (dtype, device) = (model.dtype(), model.device().clone());
        match self {
            Prepared::Imitation { cfg, train, batcher, .. } => {
                let idx = batcher.indices(batch);
                let mut x = train.index_select(&Tensor::new(idx, train.device())?, 0)?;
                let nu = egf_loss::sample_nu_train(model, &x, cfg.batch.nu_train, &cfg.nu_train, rng)?;
                let u = model.manifold().sample_uniform(cfg.batch.uniform, rng, dtype, &device)?;
                if cfg.data_jitter > 0.0 {
                    x = model.manifold().perturb(&x, cfg.data_jitter, rng)?;
                }
                Ok(egf_loss::kl_weak_fm(model, &x, &nu, &u, &cfg.loss)?)
            }
            Prepared::Reward { cfg, reward, target } => {
                let reward: &dyn Reward = reward.as_ref();
                let log_reward =
                    |x: &Tensor| -> egf_loss::Result<Tensor> { reward.log_reward(x).map_err(LossError::reward) };
                let n = cfg.batch.trajectories;
                let mut target_batch = |rng: &mut ChaCha8Rng| -> Result<Tensor> {
                    match target {
                        Some(t) => Ok(t.sample(cfg.batch.target, rng, dtype, &device)?),
                        None => Ok(Tensor::zeros((0, model.manifold().ambient_dim()), dtype, &device)?),
                    }
                };
                let value = match &cfg.loss {
                    RewardLoss::StableFm(c) => {
                        let none = Tensor::zeros((0, model.manifold().ambient_dim()), dtype, &device)?;
                        let nu = egf_loss::sample_nu_train(model, &none, cfg.batch.nu_train, &cfg.nu_train, rng)?;
                        egf_loss::stable_fm(model, &log_reward, &nu, c)?
                    }
                    RewardLoss::DivergenceFm(c) => egf_loss::divergence_fm(model, &log_reward, n, c, rng)?,
                    RewardLoss::TrajectoryBalance(c) => egf_loss::trajectory_balance(model, &log_reward, n, c, rng)?,
                    RewardLoss::ReverseKl(c) => egf_loss::reverse_kl(model, &log_reward, n, c, rng)?,
                    RewardLoss::ForwardKl(c) => {
                        let x = target_batch(rng)?;
                        egf_loss::elbo(model, &x, c, rng)?
                    }
                    RewardLoss::AlphaKl(c) => {
                        let x = if c.alpha < 1.0 {
                            target_batch(rng)?
                        } else {
                            Tensor::zeros((0, model.manifold().ambient_dim()), dtype, &device)?
                        };
                        let n_reverse = if c.alpha > 0.0 { n } else { 0 };
                        egf_loss::alpha_kl(model, &log_reward, &x, n_reverse, c, rng)?
                    }
                };
                Ok(value)
            }
        }
    }

    /// The variance of the gradient estimator of the step's loss at the current
    /// parameters ([`GradientVariance`]): `M = eval.gradient_probes` losses on
    /// independent batches (data batches `step − 1 + m` for imitation, and draws from
    /// the generators `(seed, GradientProbe, step · 2¹⁶ + m)`, which leave the training
    /// stream untouched), each differentiated with respect to the network's variables.
    fn gradient_probe(&mut self, model: &FlowModel, config: &TrainConfig, step: usize) -> Result<GradientVariance> {
        let m = config.eval.gradient_probes;
        let vars = model.network_vars();
        let (mut gradients, mut losses) = (Vec::with_capacity(m), Vec::with_capacity(m));
        for k in 0..m {
            let mut rng = derived_rng(config.seed, Stream::GradientProbe, ((step as u64) << 16) | k as u64);
            let value = self.loss_on(model, step - 1 + k, &mut rng)?;
            let loss = value.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let grads = value.loss.backward()?;
            let mut flat = Vec::new();
            for (_, var) in &vars {
                match grads.get(var.as_tensor()) {
                    Some(g) => flat.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?),
                    None => flat.resize(flat.len() + var.elem_count(), 0.0),
                }
            }
            gradients.push(flat);
            losses.push(loss);
        }
        GradientVariance::from_samples(&gradients, &losses)
    }

    /// The validation value (lower is better) and the metrics line of an evaluation at `step`.
    fn validate(&self, model: &FlowModel, config: &TrainConfig, step: usize) -> Result<(f64, serde_json::Value)> {
        match self {
            Prepared::Imitation { validation, .. } => {
                let r = validation_nll(model, validation, &config.eval)?;
                let line = json!({
                    "validation_nll": r.nll,
                    "fraction_nonpositive": r.fraction_nonpositive,
                    "negative_mass": r.mass.negative_mass,
                    "integral_t": r.mass.integral_t,
                    "integral_t_plus": r.mass.integral_t_plus,
                    "integral_g": r.mass.integral_g,
                    "z_init": r.mass.z_init,
                });
                Ok((r.nll, line))
            }
            Prepared::Reward { reward, .. } => {
                let r = reward_report(model, reward.as_ref(), &config.eval)?;
                let mut line = json!({
                    "total_variation": r.total_variation,
                    "reward_mass": r.reward_mass,
                    "z_init": r.mass.z_init,
                    "negative_mass": r.mass.negative_mass,
                    "integral_t": r.mass.integral_t,
                    "integral_g": r.mass.integral_g,
                });
                let mut rng = derived_rng(config.seed, Stream::Eval, step as u64);
                if let (Some(sr), Some(obj)) = (sampler_report(model, &config.eval, &mut rng)?, line.as_object_mut()) {
                    obj.insert("mean_moves".into(), json!(sr.mean_moves));
                    obj.insert("max_moves".into(), json!(sr.max_moves));
                    obj.insert("truncation_rate".into(), json!(sr.truncation_rate));
                }
                Ok((r.total_variation, line))
            }
        }
    }
}

struct Session<'a> {
    config: &'a TrainConfig,
    model: FlowModel,
    optimizers: Optimizers,
    state: CheckpointState,
    metrics: MetricsWriter,
    last_dir: PathBuf,
    best_dir: PathBuf,
    last_saved_step: Option<usize>,
    session_start: Instant,
    elapsed_before: f64,
}

impl Session<'_> {
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.session_start.elapsed().as_secs_f64()
    }

    fn snapshot_state(&self, step: usize) -> CheckpointState {
        CheckpointState {
            step,
            seed: self.config.seed,
            network_optimizer_steps: self.optimizers.network.step_count(),
            log_z_optimizer_steps: self.optimizers.log_z.as_ref().map_or(0, |o| o.step_count()),
            maps_optimizer_steps: self.optimizers.maps.as_ref().map_or(0, |o| o.step_count()),
            best_validation: self.state.best_validation,
            best_step: self.state.best_step,
            elapsed_seconds: self.elapsed(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The error for a non-finite loss `term` at `step`, naming the last good checkpoint.
    fn non_finite(&self, step: usize, term: String) -> TrainError {
        TrainError::NonFinite { step, term, checkpoint: self.last_saved_step.map(|_| self.last_dir.clone()) }
    }

    fn save(&mut self, step: usize, kind: CheckpointKind) -> Result<()> {
        if !weights_finite(&self.model)? {
            return Err(self.non_finite(step, "weights".into()));
        }
        let state = self.snapshot_state(step);
        let dir = match kind {
            CheckpointKind::Last => &self.last_dir,
            CheckpointKind::Best => &self.best_dir,
        };
        save_checkpoint(dir, &self.model, &self.optimizers, &state)?;
        if kind == CheckpointKind::Last {
            self.last_saved_step = Some(step);
        }
        Ok(())
    }
}

fn build_optimizers(config: &TrainConfig, model: &FlowModel) -> Result<Optimizers> {
    let o = &config.optimizer;
    let network = Adam::new(model.network_vars(), AdamParams::from_config(o, o.weight_decay))?;
    let log_z = if config.model.learn_log_z {
        Some(Adam::new(vec![("log_z".into(), model.log_z_var())], AdamParams::from_config(o, 0.0))?)
    } else {
        None
    };
    let map_vars = model.map_vars();
    let maps = if map_vars.is_empty() { None } else { Some(Adam::new(map_vars, AdamParams::from_config(o, 0.0))?) };
    Ok(Optimizers { network, log_z, maps })
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(TrainError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(TrainError::io(path))
}

fn progress_bar(options: &RunOptions, total: usize, position: usize) -> ProgressBar {
    if options.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < ETA {eta}]") {
        pb.set_style(style);
    }
    pb.set_position(position as u64);
    pb
}

/// Runs (or resumes) the training described by `config` (spec sections 5 and 7).
///
/// * Writes `<output_dir>/config.toml`, `metrics.jsonl` (see [`crate::metrics`]),
///   checkpoints `checkpoints/last` every `checkpoint_interval` steps and at the end,
///   and `checkpoints/best` whenever the validation value improves (validation every
///   `eval_interval` steps and at the last step): the proper-density NLL of the
///   validation split over every point for imitation, the total variation to the
///   normalized reward for a reward task.
/// * A fresh run (`resume = false`) starts over, replacing earlier checkpoints and
///   metrics in `output_dir`; `resume = true` continues from `checkpoints/last` and
///   ends, on CPU, with weights bit-identical to an uninterrupted run.
/// * A NaN or infinite loss term stops the run with [`TrainError::NonFinite`], naming the
///   step and the term; `checkpoints/last` then still holds the last good weights.
/// * When the run finishes, the best checkpoint is evaluated on the test split
///   ([`evaluate`]), and `report.json` and `figure.json` (density grids of the
///   comparison figure, on `T^2` and `S^2`) are written.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<TrainReport> {
    let warnings = config.validate()?;
    for w in &warnings {
        log::warn!("{w}");
    }
    let device = config.device.build()?;
    let dtype = config.dtype.dtype();
    let out = config.output_dir.clone();
    std::fs::create_dir_all(&out).map_err(TrainError::io(&out))?;
    let last_dir = checkpoint_dir(&out, CheckpointKind::Last);
    let best_dir = checkpoint_dir(&out, CheckpointKind::Best);
    let mut task = prepare(config, &device, dtype)?;
    let model_config = config.effective_model_config();

    let (model, optimizers, state) = if options.resume {
        if !last_dir.join(crate::checkpoint::STATE_FILE).exists() {
            crate::checkpoint::recover(&last_dir)?;
        }
        if !last_dir.exists() {
            return Err(TrainError::Checkpoint {
                path: last_dir,
                reason: "nothing to resume: no checkpoint in the output directory (run without resume first)".into(),
            });
        }
        let loaded = load_checkpoint(&last_dir, &device)?;
        if loaded.model.config() != &model_config {
            return Err(TrainError::Checkpoint {
                path: last_dir,
                reason: "the checkpoint was written for another model config (model section or seed changed)".into(),
            });
        }
        if EgfModel::dtype(&loaded.model) != dtype {
            return Err(TrainError::Checkpoint {
                path: last_dir,
                reason: format!(
                    "the checkpoint holds {:?} weights but the config asks for {:?}",
                    EgfModel::dtype(&loaded.model),
                    dtype
                ),
            });
        }
        let mut optimizers = build_optimizers(config, &loaded.model)?;
        optimizers.restore(&loaded.optimizer, &loaded.state)?;
        (loaded.model, optimizers, loaded.state)
    } else {
        let ckpts = out.join(crate::checkpoint::CHECKPOINTS_DIR);
        if ckpts.exists() {
            std::fs::remove_dir_all(&ckpts).map_err(TrainError::io(&ckpts))?;
        }
        for f in [crate::trainer::REPORT_FILE, FIGURE_FILE] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(TrainError::io(&p))?;
            }
        }
        let model = FlowModel::new(model_config.clone(), dtype, &device)?;
        let optimizers = build_optimizers(config, &model)?;
        let state = CheckpointState {
            step: 0,
            seed: config.seed,
            network_optimizer_steps: 0,
            log_z_optimizer_steps: 0,
            maps_optimizer_steps: 0,
            best_validation: None,
            best_step: None,
            elapsed_seconds: 0.0,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        (model, optimizers, state)
    };
    let start_step = state.step;
    if start_step > config.steps {
        return Err(TrainError::config(
            "steps",
            format!("{} is below the step of the checkpoint being resumed ({start_step})", config.steps),
        ));
    }
    let config_text = config.to_toml_string()?;
    write_atomically(&out.join(CONFIG_FILE), &config_text)?;
    let metrics = MetricsWriter::open(&out, options.resume.then_some(start_step))?;
    let mut s = Session {
        config,
        model,
        optimizers,
        elapsed_before: state.elapsed_seconds,
        state,
        metrics,
        last_saved_step: options.resume.then_some(start_step),
        last_dir: last_dir.clone(),
        best_dir: best_dir.clone(),
        session_start: Instant::now(),
    };
    s.metrics.write(&json!({
        "kind": "event",
        "event": if options.resume { "resume" } else { "start" },
        "step": start_step,
        "name": config.name,
        "parameters": s.model.parameter_count(),
        "warnings": warnings,
    }))?;

    let end_step = match options.max_steps_this_run {
        Some(k) => config.steps.min(start_step.saturating_add(k)),
        None => config.steps,
    };
    let pb = progress_bar(options, config.steps, start_step);
    let mut tracker = NonFiniteTracker::new();
    let mut last_loss = None;
    let mut last_val: Option<f64> = None;
    let schedule = &config.schedule;
    let lr0 = config.optimizer.lr;
    let lr_z0 = config.optimizer.log_z_lr();
    let lr_maps0 = config.optimizer.maps_lr();

    for step in start_step + 1..=end_step {
        let lr = schedule.lr_at(lr0, step - 1, config.steps);
        let factor = lr / lr0;
        let value = match task.loss(&s.model, step, config.seed) {
            Ok(value) => value,
            Err(e) => {
                // NaN weights left by an earlier non-finite loss make this step fail (e.g. in
                // the sampler): report that earlier step and term, not the symptom
                if let Some((bad_step, term)) = tracker.check()? {
                    pb.abandon();
                    return Err(s.non_finite(bad_step, term));
                }
                return Err(e);
            }
        };
        tracker.observe(step, &value)?;
        let grads = value.loss.backward()?;
        s.optimizers.network.step(&grads, lr)?;
        if let Some(z) = &mut s.optimizers.log_z {
            z.step(&grads, lr_z0 * factor)?;
        }
        if let Some(m) = &mut s.optimizers.maps {
            m.step(&grads, lr_maps0 * factor)?;
        }
        pb.inc(1);

        let log_due = step % config.log_interval == 0 || step == end_step;
        let eval_due = step % config.eval_interval == 0 || step == config.steps;
        let ckpt_due = step % config.checkpoint_interval == 0 || step == end_step;
        if !(log_due || eval_due || ckpt_due) {
            continue;
        }
        if let Some((bad_step, term)) = tracker.check()? {
            pb.abandon();
            return Err(s.non_finite(bad_step, term));
        }
        if log_due {
            let d = value.to_host()?;
            last_loss = Some(d.loss);
            s.metrics.write(&json!({
                "kind": "train",
                "step": step,
                "lr": lr,
                "lr_log_z": s.optimizers.log_z.as_ref().map(|_| lr_z0 * factor),
                "loss": d.loss,
                "terms": d.terms,
                "counts": d.counts,
                "wall_seconds": s.elapsed(),
            }))?;
            let val = last_val.map(|v| format!(" val {v:.4}")).unwrap_or_default();
            pb.set_message(format!("loss {:.4}{val}", d.loss));
        }
        if eval_due {
            let (v, mut line) = task.validate(&s.model, config, step)?;
            if config.eval.gradient_probes >= 2 {
                let probe = task.gradient_probe(&s.model, config, step)?;
                if let Some(obj) = line.as_object_mut() {
                    obj.insert("gradient_variance".into(), json!(probe.variance));
                    obj.insert("gradient_mean_norm".into(), json!(probe.mean_norm));
                    obj.insert("gradient_relative_variance".into(), json!(probe.relative_variance));
                    obj.insert("probe_loss_mean".into(), json!(probe.loss_mean));
                    obj.insert("probe_loss_std".into(), json!(probe.loss_std));
                }
            }
            let improved = v.is_finite() && s.state.best_validation.is_none_or_greater(v);
            if improved {
                s.state.best_validation = Some(v);
                s.state.best_step = Some(step);
            }
            if let Some(obj) = line.as_object_mut() {
                obj.insert("kind".into(), json!("eval"));
                obj.insert("step".into(), json!(step));
                obj.insert("best".into(), json!(improved));
                obj.insert("wall_seconds".into(), json!(s.elapsed()));
            }
            s.metrics.write(&line)?;
            last_val = Some(v);
            if improved {
                s.save(step, CheckpointKind::Best)?;
            }
        }
        if ckpt_due {
            s.save(step, CheckpointKind::Last)?;
        }
    }
    if s.last_saved_step != Some(end_step) {
        s.save(end_step, CheckpointKind::Last)?;
    }
    pb.finish_and_clear();

    let finished = end_step >= config.steps;
    let wall = s.session_start.elapsed().as_secs_f64();
    let mut report = TrainReport {
        name: config.name.clone(),
        output_dir: out.clone(),
        steps_completed: end_step,
        total_steps: config.steps,
        finished,
        started_at_step: start_step,
        validation_metric: task.metric_name().into(),
        best_validation: s.state.best_validation,
        best_step: s.state.best_step,
        last_loss,
        test: None,
        reward: None,
        warnings,
        wall_seconds: wall,
        steps_per_second: (end_step - start_step) as f64 / wall.max(1e-9),
        best_checkpoint: best_dir.clone(),
        last_checkpoint: last_dir.clone(),
    };
    if !finished {
        return Ok(report);
    }

    // Final evaluation of the best checkpoint (the last one if no validation improved).
    let chosen = if best_dir.exists() { best_dir.clone() } else { last_dir.clone() };
    let best = egf_flow::load_flow_model(&model_dir(&chosen), &device)?;
    let mut rng = derived_rng(config.seed, Stream::Eval, u64::MAX);
    let mut figure_target = None;
    let mut figure_points = Vec::new();
    match &task {
        Prepared::Imitation { data, test, .. } => {
            let mut r = evaluate(&best, test, &config.eval, &mut rng)?;
            if let Some(t) = &data.target {
                r.target_nll = Some(target_nll(t.as_ref(), test)?);
                figure_target = Some(target_density_grid(t.as_ref(), config.eval.figure_resolution));
            }
            let c = data.train.manifold().ambient_dim();
            figure_points = data.train.coords()[..data.train.len().min(2000) * c].to_vec();
            s.metrics.write(&json!({ "kind": "test", "step": end_step, "checkpoint": chosen, "report": r }))?;
            report.test = Some(r);
        }
        Prepared::Reward { reward, .. } => {
            let mut r = reward_report(&best, reward.as_ref(), &config.eval)?;
            r.sampler = sampler_report(&best, &config.eval, &mut rng)?;
            figure_target = Some(reward_density_grid(reward.as_ref(), config.eval.figure_resolution));
            s.metrics.write(&json!({ "kind": "test", "step": end_step, "checkpoint": chosen, "reward": r }))?;
            report.reward = Some(r);
        }
    }
    if matches!(EgfModel::manifold(&best), Manifold::Torus { dim: 2 } | Manifold::Sphere { dim: 2 }) {
        let learned = density_grid(&best, config.eval.figure_resolution, config.eval.defensive_weight)?;
        let target = figure_target.transpose()?;
        let fig = FigureData { learned, target, points: figure_points };
        let text = serde_json::to_string(&fig).map_err(|e| TrainError::Io {
            path: out.join(FIGURE_FILE),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomically(&out.join(FIGURE_FILE), &text)?;
    }
    report.wall_seconds = s.session_start.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| TrainError::Io { path: out.join(REPORT_FILE), source: std::io::Error::other(e.to_string()) })?;
    write_atomically(&out.join(REPORT_FILE), &text)?;
    Ok(report)
}

trait BestExt {
    fn is_none_or_greater(&self, v: f64) -> bool;
}

impl BestExt for Option<f64> {
    /// Whether `v` improves on the stored best (lower is better).
    fn is_none_or_greater(&self, v: f64) -> bool {
        match self {
            None => true,
            Some(b) => v < *b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(loss: f64, a: f64, b: f64) -> LossValue {
        let t = |v: f64| Tensor::new(v, &Device::Cpu).unwrap();
        LossValue::new(t(loss)).with_term("a", &t(a)).with_term("b", &t(b))
    }

    #[test]
    fn tracker_names_the_first_bad_step_and_term() {
        let mut tr = NonFiniteTracker::new();
        tr.observe(1, &value(1.0, 1.0, 1.0)).unwrap();
        // a diagnostic at −∞ with a finite loss does not stop the run
        tr.observe(2, &value(1.0, f64::NEG_INFINITY, 1.0)).unwrap();
        assert_eq!(tr.check().unwrap(), None);
        tr.observe(3, &value(f64::NAN, 1.0, f64::INFINITY)).unwrap();
        tr.observe(4, &value(f64::NAN, f64::NAN, f64::NAN)).unwrap();
        assert_eq!(tr.check().unwrap(), Some((3, "b".into())));
        let mut only_total = NonFiniteTracker::new();
        only_total.observe(7, &value(f64::INFINITY, 0.0, 0.0)).unwrap();
        assert_eq!(only_total.check().unwrap(), Some((7, "loss".into())));
    }

    /// The tracker outlives every step: it must hold no link to a step's autograd graph,
    /// or each step's activations stay in memory until the run ends (an earth run grew by
    /// ≈ 25 MB per step and was killed for memory at 23 GB).
    #[test]
    fn tracker_keeps_no_autograd_graph() {
        let w = candle_core::Var::new(&[1.0f64, -2.0, 3.0], &Device::Cpu).unwrap();
        let mut tr = NonFiniteTracker::new();
        for step in 1..=3 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            assert!(loss.track_op(), "the loss itself is differentiable");
            let term = (w.as_tensor() * 2.0).unwrap().sum_all().unwrap();
            tr.observe(step, &LossValue::new(loss).with_term("t", &term)).unwrap();
            let kept = tr.loss.as_ref().unwrap();
            assert!(!kept.track_op(), "step {step}: the running minimum is linked to the graph");
            assert!(tr.terms.iter().all(|(_, t)| !t.track_op()), "step {step}: a term is linked to the graph");
        }
        assert_eq!(tr.check().unwrap(), None);
    }
}
