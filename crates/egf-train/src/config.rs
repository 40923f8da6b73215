//! [`TrainConfig`]: everything a training run needs, in one TOML file.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`), so a misspelt key is an
//! error that names it. Parse errors keep the TOML parser's line and column and are
//! prefixed with the file path. [`TrainConfig::validate`] checks value ranges and
//! cross-field rules; its errors name the dotted field path (e.g. `optimizer.lr`).
//!
//! A full example (the [demo](TrainConfig::demo) with every default written out) is
//! printed by [`TrainConfig::to_toml_string`]; see the crate documentation.

use std::path::{Path, PathBuf};

use egf_data::{EarthDataset, PointFormat, RewardSpec, TargetSpec};
use egf_diffeo::{Family, FamilySpec};
use egf_flow::features::{FeatureConfig, FrequencySet};
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{FlowModelConfig, OutflowLink};
use egf_loss::{
    AlphaKlConfig, DivergenceFmConfig, ElboConfig, KlWeakFmConfig, LossError, NuTrainConfig, ReverseKlConfig,
    StableFmConfig, TrajectoryConfig,
};
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::device::{DTypeSpec, DeviceSpec};
use crate::eval::EvalSettings;
use crate::{Result, TrainError};

/// The complete description of a training run (serde, TOML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Name of the run (written into metrics and reports).
    pub name: String,
    /// Seed of everything random: weight initialization (it replaces `model.seed`),
    /// toy-target samples, the split (unless `task.split.seed` is given), batches,
    /// `ν_train` and evaluation.
    #[serde(default)]
    pub seed: u64,
    /// Tensor device: `cpu` (default), `cuda`, `cuda:N`, `metal`, `metal:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Float type: `f32` (default) or `f64`.
    #[serde(default)]
    pub dtype: DTypeSpec,
    /// Number of optimizer steps of the whole run.
    pub steps: usize,
    /// Steps between two metric lines (the loss is read back to the host only then).
    #[serde(default = "default_log_interval")]
    pub log_interval: usize,
    /// Steps between two validations; the last step is always validated.
    #[serde(default = "default_interval")]
    pub eval_interval: usize,
    /// Steps between two `last/` checkpoints; the last step is always saved.
    #[serde(default = "default_interval")]
    pub checkpoint_interval: usize,
    /// Directory of metrics, checkpoints and reports (relative to the working directory).
    pub output_dir: PathBuf,
    /// The flow model (manifold, family, features, network, outflow link, …).
    pub model: FlowModelConfig,
    /// What to learn: imitation of data, or a reward.
    pub task: TaskConfig,
    /// Optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Evaluation settings (validation, test, sampler statistics, figure grids).
    #[serde(default)]
    pub eval: EvalSettings,
}

fn default_log_interval() -> usize {
    25
}
fn default_interval() -> usize {
    500
}

/// The task of a run, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskConfig {
    /// Imitation learning of a data set with the KL-weakFM loss (spec section 5).
    Imitation(ImitationConfig),
    /// Reinforcement learning of an unnormalized reward density (spec section 5).
    Reward(RewardConfig),
}

/// Imitation learning: data, split, KL-weakFM weights, `ν_train` and batch sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImitationConfig {
    /// Where the points come from.
    pub data: DataSource,
    /// The seeded train/validation/test split (80/10/10 by default).
    #[serde(default)]
    pub split: SplitConfig,
    /// Weights of the KL-weakFM loss (`epsilon`, `negative_weight` = b, `outflow_weight` = c).
    #[serde(default)]
    pub loss: KlWeakFmConfig,
    /// How `ν_train`, the points of the weak flow-matching term, are drawn
    /// (`uniform_share` = w_U, `data_noise`, `on_policy_share`).
    #[serde(default)]
    pub nu_train: NuTrainConfig,
    /// Batch sizes.
    #[serde(default)]
    pub batch: BatchSizes,
    /// Scale σ of the noise added to every data point of a training batch before the
    /// cross-entropy term of KL-weakFM sees it ([`Manifold::perturb`]: radians on the
    /// sphere, coordinate units on the torus); `0` (the default) trains on the points
    /// themselves. A σ > 0 fits `p_data * K_σ`, the data smoothed by the perturbation
    /// kernel, which keeps a large network from memorising the training points; the
    /// validation and test splits are never perturbed, so the reported NLL is of the
    /// unsmoothed data.
    #[serde(default)]
    pub data_jitter: f64,
}

/// A source of data points, tagged by `source`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// One of the four earth data sets (points of `S^2`).
    Earth {
        /// `volcano`, `earthquake`, `flood` or `fire`.
        dataset: EarthDataset,
        /// Folder holding `<dataset>.csv`; when omitted, the `EGF_DATA_DIR` environment variable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_dir: Option<PathBuf>,
    },
    /// Exact samples of a toy target (`samples` points, drawn with the run's seed, then split).
    Target {
        /// The target and its parameters (`kind = "rings"`, …).
        target: TargetSpec,
        /// Number of points drawn before splitting.
        samples: usize,
    },
    /// A CSV file of points of the model's manifold.
    Csv {
        /// The file.
        path: PathBuf,
        /// Its [`PointFormat`]; default `lat_lon_deg` on `S^2`, `unit_vector` on other
        /// spheres, `torus_coords` on tori.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<PointFormat>,
    },
}

impl DataSource {
    /// The manifold of the points this source yields (`model_manifold` for CSV files).
    pub fn manifold(&self, model_manifold: Manifold) -> Manifold {
        match self {
            DataSource::Earth { .. } => Manifold::Sphere { dim: 2 },
            DataSource::Target { target, .. } => target.manifold(),
            DataSource::Csv { .. } => model_manifold,
        }
    }
}

/// Fractions of the seeded split (spec section 7) and an optional seed of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction of training points.
    #[serde(default = "default_train_fraction")]
    pub train: f64,
    /// Fraction of validation points.
    #[serde(default = "default_holdout_fraction")]
    pub validation: f64,
    /// Fraction of test points.
    #[serde(default = "default_holdout_fraction")]
    pub test: f64,
    /// Seed of the split; the run's `seed` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn default_train_fraction() -> f64 {
    0.8
}
fn default_holdout_fraction() -> f64 {
    0.1
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { train: 0.8, validation: 0.1, test: 0.1, seed: None }
    }
}

/// Points or trajectories per step. Imitation uses `data`, `nu_train` and `uniform`;
/// a reward task uses `nu_train` (stable FM), `trajectories` (on-policy losses) and
/// `target` (forward KL); the other sizes are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSizes {
    /// Data points per step (imitation).
    #[serde(default = "default_batch")]
    pub data: usize,
    /// `ν_train` points per step (KL-weakFM's weak term, stable flow matching).
    #[serde(default = "default_batch")]
    pub nu_train: usize,
    /// Uniform points per step (outflow regularizer of KL-weakFM and its diagnostic).
    #[serde(default = "default_uniform_batch")]
    pub uniform: usize,
    /// On-policy trajectories per step (divergence FM, trajectory balance, reverse KL, α-KL).
    #[serde(default = "default_trajectory_batch")]
    pub trajectories: usize,
    /// Target samples per step (forward KL, α-KL; each gets `samples_per_point` backward trajectories).
    #[serde(default = "default_trajectory_batch")]
    pub target: usize,
}

fn default_batch() -> usize {
    512
}
fn default_uniform_batch() -> usize {
    256
}
fn default_trajectory_batch() -> usize {
    128
}

impl Default for BatchSizes {
    fn default() -> Self {
        Self {
            data: default_batch(),
            nu_train: default_batch(),
            uniform: default_uniform_batch(),
            trajectories: default_trajectory_batch(),
            target: default_trajectory_batch(),
        }
    }
}

/// Reinforcement learning of a reward `R ≥ 0` (spec section 5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    /// The reward.
    pub reward: RewardSpec,
    /// The reward loss (stable flow matching by default).
    #[serde(default)]
    pub loss: RewardLoss,
    /// How the points of stable flow matching are drawn: a reward task has no data, so
    /// `uniform_share + on_policy_share` must be 1 (default: all uniform).
    #[serde(default = "reward_nu_train_default")]
    pub nu_train: NuTrainConfig,
    /// Batch sizes (`nu_train`, `trajectories`, `target`).
    #[serde(default)]
    pub batch: BatchSizes,
}

fn reward_nu_train_default() -> NuTrainConfig {
    NuTrainConfig { uniform_share: 1.0, data_noise: 0.0, on_policy_share: 0.0 }
}

/// The loss of a reward task, tagged by `kind`; the other keys are those of the
/// `egf-loss` config of that loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RewardLoss {
    /// Stable flow matching `vol · E_ν |r|^q` ([`egf_loss::stable_fm`]): keys `q`, `residual`.
    StableFm(StableFmConfig),
    /// Divergence flow matching along on-policy trajectories ([`egf_loss::divergence_fm`]):
    /// keys `max_moves`, `outflow_penalty`. Unstable without the penalty (spec section 5).
    DivergenceFm(DivergenceFmConfig),
    /// Trajectory balance on on-policy trajectories ([`egf_loss::trajectory_balance`]):
    /// keys `max_moves`, `log_reward_floor`, `include_truncated`.
    TrajectoryBalance(TrajectoryConfig),
    /// Reverse KL with a leave-one-out baseline ([`egf_loss::reverse_kl`]): keys
    /// `trajectories`, `baseline`.
    ReverseKl(ReverseKlConfig),
    /// Forward KL (the ELBO) from exact target samples ([`egf_loss::elbo`]); needs a
    /// reward whose normalized law `R/Z` can be sampled
    /// ([`RewardSpec::normalized_target`]: `density`, `checkerboard` with `floor = 0`,
    /// `vmf_mixture`). Keys of [`ElboConfig`].
    ForwardKl(ElboConfig),
    /// α-mixture of reverse and forward KL ([`egf_loss::alpha_kl`]); for `alpha < 1` it
    /// needs a reward whose `R/Z` can be sampled, as [`RewardLoss::ForwardKl`]. Keys
    /// `alpha`, `reverse`, `forward`.
    AlphaKl(AlphaKlConfig),
}

impl Default for RewardLoss {
    fn default() -> Self {
        RewardLoss::StableFm(StableFmConfig::default())
    }
}

impl RewardLoss {
    /// The `kind` tag.
    pub fn kind_name(&self) -> &'static str {
        match self {
            RewardLoss::StableFm(_) => "stable_fm",
            RewardLoss::DivergenceFm(_) => "divergence_fm",
            RewardLoss::TrajectoryBalance(_) => "trajectory_balance",
            RewardLoss::ReverseKl(_) => "reverse_kl",
            RewardLoss::ForwardKl(_) => "forward_kl",
            RewardLoss::AlphaKl(_) => "alpha_kl",
        }
    }

    /// Whether the loss needs exact samples of the target `R / Z`.
    pub fn needs_target_samples(&self) -> bool {
        match self {
            RewardLoss::ForwardKl(_) => true,
            RewardLoss::AlphaKl(c) => c.alpha < 1.0,
            _ => false,
        }
    }
}

/// Which Adam variant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam; `weight_decay` adds `λ θ` to the gradient (L2 penalty).
    #[default]
    Adam,
    /// AdamW; `weight_decay` shrinks the weights directly, `θ ← θ (1 − lr λ)` (decoupled).
    Adamw,
}

/// Optimizer settings. The network and `log Z_init` have separate optimizers so that
/// `log Z_init` can learn at its own, larger rate (spec section 5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Adam or AdamW.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Peak learning rate of the network.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Learning rate of `log Z_init` (only used when `model.learn_log_z`); `lr` when omitted.
    /// The schedule scales it by the same factor as `lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_z_lr: Option<f64>,
    /// Learning rate of the parameters of learnable maps (`model.family`); `lr` when
    /// omitted. The schedule scales it by the same factor as `lr`; no weight decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps_lr: Option<f64>,
    /// `β₁`.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// `β₂`.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// `ε` of the denominator.
    #[serde(default = "default_adam_eps")]
    pub eps: f64,
    /// Weight decay `λ ≥ 0` (network weights only, never `log Z_init` or the maps).
    #[serde(default)]
    pub weight_decay: f64,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: default_lr(),
            log_z_lr: None,
            maps_lr: None,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_adam_eps(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// The learning rate of `log Z_init` (`log_z_lr`, else `lr`).
    pub fn log_z_lr(&self) -> f64 {
        self.log_z_lr.unwrap_or(self.lr)
    }

    /// The learning rate of the learnable maps (`maps_lr`, else `lr`).
    pub fn maps_lr(&self) -> f64 {
        self.maps_lr.unwrap_or(self.lr)
    }
}

/// Learning-rate schedule over the run, tagged by `kind`. Step `s = 0 … steps − 1`
/// uses `lr · factor(s)`, with `f = s / (steps − 1)` running from 0 to 1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// `lr` throughout.
    #[default]
    Constant,
    /// Exponential decay from `lr` to `final_lr`: `lr · (final_lr / lr)^f`.
    Exponential {
        /// Rate of the last step.
        final_lr: f64,
    },
    /// Cosine decay from `lr` to `final_lr`: `final_lr + (lr − final_lr)(1 + cos πf)/2`.
    Cosine {
        /// Rate of the last step.
        #[serde(default)]
        final_lr: f64,
    },
}

impl ScheduleConfig {
    /// The learning rate of step `s` (0-based) of a run of `steps` steps with peak rate `lr`.
    pub fn lr_at(&self, lr: f64, s: usize, steps: usize) -> f64 {
        let f = if steps <= 1 { 0.0 } else { (s.min(steps - 1)) as f64 / (steps - 1) as f64 };
        match *self {
            ScheduleConfig::Constant => lr,
            ScheduleConfig::Exponential { final_lr } => lr * (final_lr / lr).powf(f),
            ScheduleConfig::Cosine { final_lr } => {
                final_lr + (lr - final_lr) * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())
            }
        }
    }
}

impl TrainConfig {
    /// Parses a TOML string (errors keep TOML's line, column and key, prefixed with `<string>`).
    /// Does not [`validate`](Self::validate).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::parse_named(text, "<string>")
    }

    fn parse_named(text: &str, source_name: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| TrainError::Parse { source_name: source_name.to_string(), message: e.to_string() })
    }

    /// Reads and parses a TOML file; errors name the file. Does not [`validate`](Self::validate).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// The config as TOML (every field written out, defaults included);
    /// [`from_toml_str`](Self::from_toml_str) reads it back to an equal config.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::config("<config>", format!("cannot be written as TOML: {e}")))
    }

    /// Applies one `key.path=value` override (the CLI's `--set`). `value` is parsed as a
    /// TOML value (`lr=3e-4`, `task.data={source="earth", dataset="fire"}`); when it is not
    /// valid TOML it is taken as a string (`device=cuda`). The key must name a field of
    /// the config: a key that does not exist, or a value of the wrong type, is an error.
    pub fn apply_override(&mut self, spec: &str) -> Result<()> {
        let err = |reason: String| TrainError::Override { spec: spec.to_string(), reason };
        let (key, raw) = spec.split_once('=').ok_or_else(|| err("expected `key.path=value`".into()))?;
        let key = key.trim();
        let parts: Vec<&str> = key.split('.').map(str::trim).collect();
        if key.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err(err(format!("`{key}` is not a dotted key path")));
        }
        let value = parse_override_value(raw.trim());
        let mut root = toml::Value::try_from(&*self).map_err(|e| err(format!("cannot serialize config: {e}")))?;
        let mut table = root.as_table_mut().ok_or_else(|| err("config is not a table".into()))?;
        let mut walked = Vec::new();
        for part in &parts[..parts.len() - 1] {
            walked.push(*part);
            let entry = table
                .get_mut(*part)
                .ok_or_else(|| err(format!("unknown key `{}` (no such table in the config)", walked.join("."))))?;
            table =
                entry.as_table_mut().ok_or_else(|| err(format!("`{}` is a value, not a table", walked.join("."))))?;
        }
        let last = parts[parts.len() - 1];
        let existed = table.contains_key(last);
        table.insert(last.to_string(), value);
        let text = toml::to_string(&root).map_err(|e| err(format!("cannot serialize config: {e}")))?;
        match toml::from_str::<TrainConfig>(&text) {
            Ok(updated) => {
                *self = updated;
                Ok(())
            }
            Err(e) if !existed => Err(err(format!("unknown key `{key}`: {}", e.message()))),
            Err(e) => Err(err(format!("bad value for `{key}`: {}", e.message()))),
        }
    }

    /// Checks value ranges and cross-field rules; errors name the field. Returns
    /// warnings that do not stop a run (e.g. `b · w_U < 1`, see spec section 5).
    pub fn validate(&self) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if self.name.trim().is_empty() {
            return Err(TrainError::config("name", "must not be empty"));
        }
        positive_count("steps", self.steps)?;
        positive_count("log_interval", self.log_interval)?;
        positive_count("eval_interval", self.eval_interval)?;
        positive_count("checkpoint_interval", self.checkpoint_interval)?;
        if self.output_dir.as_os_str().is_empty() {
            return Err(TrainError::config("output_dir", "must not be empty"));
        }
        // model
        self.model.validate().map_err(|e| match e {
            egf_flow::FlowError::InvalidConfig { field, reason } => {
                TrainError::config(format!("model.{field}"), reason)
            }
            other => TrainError::config("model", other.to_string()),
        })?;
        let family = Family::from_spec(&self.model.family, self.model.manifold)
            .map_err(|e| TrainError::config("model.family", e.to_string()))?;
        egf_flow::features::FeatureMap::new(self.model.manifold, &self.model.features)
            .map_err(|e| TrainError::config("model.features", e.to_string()))?;
        if self.model.seed != 0 && self.model.seed != self.seed {
            warnings.push(format!(
                "model.seed = {} is ignored: the run's seed ({}) initializes the weights",
                self.model.seed, self.seed
            ));
        }
        // optimizer and schedule
        let o = &self.optimizer;
        positive_finite("optimizer.lr", o.lr)?;
        if let Some(z) = o.log_z_lr {
            positive_finite("optimizer.log_z_lr", z)?;
        }
        if let Some(m) = o.maps_lr {
            positive_finite("optimizer.maps_lr", m)?;
        }
        unit_interval_open_right("optimizer.beta1", o.beta1)?;
        unit_interval_open_right("optimizer.beta2", o.beta2)?;
        positive_finite("optimizer.eps", o.eps)?;
        non_negative_finite("optimizer.weight_decay", o.weight_decay)?;
        match self.schedule {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Exponential { final_lr } => positive_finite("schedule.final_lr", final_lr)?,
            ScheduleConfig::Cosine { final_lr } => non_negative_finite("schedule.final_lr", final_lr)?,
        }
        self.eval.validate("eval")?;
        // task
        match &self.task {
            TaskConfig::Imitation(im) => {
                let data_manifold = im.data.manifold(self.model.manifold);
                if data_manifold != self.model.manifold {
                    return Err(TrainError::config(
                        "model.manifold",
                        format!(
                            "the model lives on {} but the data (task.data) on {data_manifold}",
                            self.model.manifold
                        ),
                    ));
                }
                if family.manifold() != data_manifold {
                    return Err(TrainError::config("model.family", "acts on another manifold than the data"));
                }
                match &im.data {
                    DataSource::Earth { .. } => {}
                    DataSource::Target { target, samples } => {
                        target.build().map_err(|e| TrainError::config("task.data.target", e.to_string()))?;
                        if *samples < 3 {
                            return Err(TrainError::config(
                                "task.data.samples",
                                format!("{samples} points cannot be split into train, validation and test"),
                            ));
                        }
                    }
                    DataSource::Csv { format, path } => {
                        if path.as_os_str().is_empty() {
                            return Err(TrainError::config("task.data.path", "must not be empty"));
                        }
                        if let Some(f) = format {
                            f.check_applies(self.model.manifold)
                                .map_err(|e| TrainError::config("task.data.format", e.to_string()))?;
                        }
                    }
                }
                let s = &im.split;
                for (field, v) in [("train", s.train), ("validation", s.validation), ("test", s.test)] {
                    non_negative_finite(&format!("task.split.{field}"), v)?;
                }
                if (s.train + s.validation + s.test - 1.0).abs() > 1e-9 {
                    return Err(TrainError::config(
                        "task.split",
                        format!("train + validation + test = {} must be 1", s.train + s.validation + s.test),
                    ));
                }
                if s.test == 0.0 {
                    warnings.push("task.split.test = 0: the final report scores the validation split".into());
                }
                if s.train <= 0.0 || s.validation <= 0.0 {
                    return Err(TrainError::config(
                        "task.split",
                        "the train and validation fractions must be positive (validation selects the best checkpoint)",
                    ));
                }
                im.loss.validate().map_err(|e| loss_field("task.loss", e))?;
                im.nu_train.validate().map_err(|e| loss_field("task.nu_train", e))?;
                validate_batch("task.batch", &im.batch)?;
                non_negative_finite("task.data_jitter", im.data_jitter)?;
                if let Some(w) = egf_loss::check_weak_fm_weight(im.loss.negative_weight, im.nu_train.uniform_share) {
                    warnings.push(w);
                }
                if self.model.learn_log_z {
                    return Err(TrainError::config(
                        "model.learn_log_z",
                        "must be false in imitation learning (Z_init = 1, spec section 3)",
                    ));
                }
                if self.model.initial_log_z != 0.0 {
                    return Err(TrainError::config(
                        "model.initial_log_z",
                        "must be 0 in imitation learning (Z_init = 1, spec section 3)",
                    ));
                }
            }
            TaskConfig::Reward(rw) => {
                let reward = rw.reward.build().map_err(|e| TrainError::config("task.reward", e.to_string()))?;
                if reward.manifold() != self.model.manifold {
                    return Err(TrainError::config(
                        "model.manifold",
                        format!("the model lives on {} but the reward on {}", self.model.manifold, reward.manifold()),
                    ));
                }
                validate_reward_loss(&rw.loss)?;
                if !family.parameters().is_empty()
                    && !matches!(rw.loss, RewardLoss::StableFm(_) | RewardLoss::DivergenceFm(_))
                {
                    return Err(TrainError::config(
                        "model.family",
                        format!(
                            "learnable maps train with the losses that evaluate the flow at points \
                             (kl_weak_fm, stable_fm, divergence_fm), not with `{}`: a trajectory \
                             objective would need the gradient of its sampled states with respect \
                             to the maps",
                            rw.loss.kind_name()
                        ),
                    ));
                }
                let samplable =
                    rw.reward.normalized_target().map_err(|e| TrainError::config("task.reward", e.to_string()))?;
                if rw.loss.needs_target_samples() && samplable.is_none() {
                    return Err(TrainError::config(
                        "task.loss.kind",
                        format!(
                            "`{}` needs exact samples of R/Z, which this reward does not offer (task.reward: a \
                             `density` reward, a `checkerboard` with floor = 0 or a `vmf_mixture` do)",
                            rw.loss.kind_name()
                        ),
                    ));
                }
                rw.nu_train.validate().map_err(|e| loss_field("task.nu_train", e))?;
                if (rw.nu_train.uniform_share + rw.nu_train.on_policy_share - 1.0).abs() > 1e-9 {
                    return Err(TrainError::config(
                        "task.nu_train",
                        "a reward task has no data: uniform_share + on_policy_share must be 1",
                    ));
                }
                validate_batch("task.batch", &rw.batch)?;
                if !self.model.learn_log_z {
                    warnings.push(
                        "model.learn_log_z is false: with a reward only log Z_init can fix the total mass \
                         (spec section 5)"
                            .into(),
                    );
                }
            }
        }
        Ok(warnings)
    }

    /// The model config the run actually builds: `model` with `seed` replaced by the run's seed.
    pub fn effective_model_config(&self) -> FlowModelConfig {
        let mut m = self.model.clone();
        m.seed = self.seed;
        m
    }

    /// The embedded default run of `egf train` without a config: imitation learning of
    /// the `wrapped_gaussians` toy density on `T^2` with the `torus_sl2z_irrational`
    /// family (8 maps) and a small network, sized to finish in well under 3 minutes on
    /// 2 CPU cores in a release build. It writes metrics, checkpoints, a report and the
    /// grids of the comparison figure (`figure.json`) into `runs/demo`.
    pub fn demo() -> Self {
        let mut model = FlowModelConfig::new(Manifold::Torus { dim: 2 }, FamilySpec::torus_sl2z_irrational());
        model.features = FeatureConfig { max_frequency: 4, frequencies: FrequencySet::Full, sphere_octaves: 0 };
        model.network = NetworkConfig { width: 64, depth: 2, activation: Activation::Silu };
        model.outflow_link = OutflowLink::Exp;
        model.initial_expected_moves = 1.0;
        TrainConfig {
            name: "demo".into(),
            seed: 0,
            device: DeviceSpec::Cpu,
            dtype: DTypeSpec::F32,
            steps: 1000,
            log_interval: 25,
            eval_interval: 250,
            checkpoint_interval: 250,
            output_dir: PathBuf::from("runs/demo"),
            model,
            task: TaskConfig::Imitation(ImitationConfig {
                data: DataSource::Target {
                    target: TargetSpec::default_for("wrapped_gaussians").expect("a registered target"),
                    samples: 20_000,
                },
                split: SplitConfig::default(),
                loss: KlWeakFmConfig { epsilon: 1e-3, negative_weight: 5.0, outflow_weight: 0.0 },
                nu_train: NuTrainConfig { uniform_share: 0.5, data_noise: 0.02, on_policy_share: 0.0 },
                batch: BatchSizes { data: 256, nu_train: 256, uniform: 128, ..BatchSizes::default() },
                data_jitter: 0.0,
            }),
            optimizer: OptimizerConfig { lr: 5e-3, ..OptimizerConfig::default() },
            schedule: ScheduleConfig::Exponential { final_lr: 1e-4 },
            eval: EvalSettings { importance_samples: 4, sampler_chains: 2000, ..EvalSettings::default() },
        }
    }
}

/// Parses an override value as TOML, or takes it as a string when it is not valid TOML.
fn parse_override_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.trim_matches('"').to_string()),
    }
}

fn positive_count(field: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(TrainError::config(field, "must be > 0"));
    }
    Ok(())
}

fn positive_finite(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(TrainError::config(field, format!("{v} is not a positive finite number")));
    }
    Ok(())
}

fn non_negative_finite(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(TrainError::config(field, format!("{v} is not a finite number ≥ 0")));
    }
    Ok(())
}

fn unit_interval_open_right(field: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(TrainError::config(field, format!("{v} is not in [0, 1)")));
    }
    Ok(())
}

/// A loss-config error as a train-config error under `prefix`.
fn loss_field(prefix: &str, e: LossError) -> TrainError {
    match e {
        LossError::InvalidConfig { field, reason } => TrainError::config(format!("{prefix}.{field}"), reason),
        other => TrainError::config(prefix, other.to_string()),
    }
}

fn validate_reward_loss(loss: &RewardLoss) -> Result<()> {
    let p = "task.loss";
    match loss {
        RewardLoss::StableFm(c) => c.validate().map_err(|e| loss_field(p, e)),
        RewardLoss::DivergenceFm(c) => {
            positive_count("task.loss.max_moves", c.max_moves)?;
            non_negative_finite("task.loss.outflow_penalty", c.outflow_penalty)
        }
        RewardLoss::TrajectoryBalance(c) => c.validate().map_err(|e| loss_field(p, e)),
        RewardLoss::ReverseKl(c) => c.trajectories.validate().map_err(|e| loss_field("task.loss.trajectories", e)),
        RewardLoss::ForwardKl(c) => c.validate().map_err(|e| loss_field(p, e)),
        RewardLoss::AlphaKl(c) => {
            if !(0.0..=1.0).contains(&c.alpha) {
                return Err(TrainError::config("task.loss.alpha", format!("{} is not in [0, 1]", c.alpha)));
            }
            c.reverse.trajectories.validate().map_err(|e| loss_field("task.loss.reverse.trajectories", e))?;
            c.forward.validate().map_err(|e| loss_field("task.loss.forward", e))
        }
    }
}

fn validate_batch(prefix: &str, b: &BatchSizes) -> Result<()> {
    positive_count(&format!("{prefix}.data"), b.data)?;
    positive_count(&format!("{prefix}.nu_train"), b.nu_train)?;
    positive_count(&format!("{prefix}.uniform"), b.uniform)?;
    positive_count(&format!("{prefix}.trajectories"), b.trajectories)?;
    positive_count(&format!("{prefix}.target"), b.target)
}
