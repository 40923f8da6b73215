//! # egf-train
//!
//! Training of Ergodic Generative Flows (spec sections 5 and 7 of `egf-spec.md`):
//! one TOML [`TrainConfig`], the loop [`train`], Adam/AdamW with checkpointable
//! state ([`optim`]), learning-rate schedules ([`ScheduleConfig`]), atomic
//! checkpoints ([`checkpoint`]), `metrics.jsonl` ([`metrics`]) and the evaluation
//! protocol of spec section 7 ([`evaluate`]).
//!
//! ```no_run
//! use egf_train::{train, RunOptions, TrainConfig};
//! let mut config = TrainConfig::demo();
//! config.apply_override("steps=200").unwrap();
//! let report = train(&config, &RunOptions::default()).unwrap();
//! println!("test NLL {:?}", report.test.map(|t| t.nll));
//! ```
//!
//! A config (every table rejects unknown keys; omitted keys take their defaults;
//! [`TrainConfig::to_toml_string`] writes every key out):
//!
//! ```toml
//! name = "volcano-b5"
//! seed = 3                      # weights, split, batches, ν_train, evaluation
//! device = "cpu"                # cpu | cuda | cuda:N | metal | metal:N
//! dtype = "f32"                 # f32 | f64
//! steps = 75000
//! log_interval = 100            # loss read back to the host only here
//! eval_interval = 2500          # validation NLL; best checkpoint
//! checkpoint_interval = 2500    # checkpoints/last
//! output_dir = "runs/volcano"
//!
//! [model]                       # egf_flow::FlowModelConfig
//! manifold = { kind = "sphere", dim = 2 }
//! family = { preset = { name = "sphere_axis_rotations", angle = 0.7853981633974483 } }
//! network = { width = 256, depth = 5, activation = "silu" }
//! outflow_link = "exp"
//!
//! [task]
//! kind = "imitation"            # or "reward"
//! data = { source = "earth", dataset = "volcano", data_dir = "../shared/data/earth" }
//! # data = { source = "target", target = { kind = "rings" }, samples = 20000 }
//! # data = { source = "csv", path = "points.csv", format = "lat_lon_deg" }
//! split = { train = 0.8, validation = 0.1, test = 0.1 }
//! loss = { epsilon = 1e-3, negative_weight = 5.0, outflow_weight = 0.0 }
//! nu_train = { uniform_share = 0.5, data_noise = 0.02, on_policy_share = 0.0 }
//! batch = { data = 512, nu_train = 512, uniform = 256 }
//! data_jitter = 0.0             # σ of the noise on training points (a smoothing regularizer)
//!
//! [optimizer]
//! kind = "adam"                 # adam | adamw
//! lr = 1e-3
//! log_z_lr = 3e-2               # own rate of log Z_init (reward tasks)
//! # maps_lr = 1e-2              # own rate of learnable maps (model.family), else lr
//! weight_decay = 0.0
//!
//! [schedule]
//! kind = "exponential"          # constant | exponential | cosine
//! final_lr = 1e-5
//!
//! [eval]
//! quadrature_resolution = 64
//! defensive_weight = 1e-3
//! importance_samples = 16
//! sampler_chains = 1000
//! gradient_probes = 0           # ≥ 2: variance of the gradient estimator at each validation
//! ```
//!
//! A reward task instead has
//!
//! ```toml
//! [task]
//! kind = "reward"
//! reward = { kind = "density", target = { kind = "wrapped_gaussians" }, scale = 0.5 }
//! loss = { kind = "stable_fm", q = 2.0 }   # divergence_fm | trajectory_balance | reverse_kl | forward_kl | alpha_kl
//! batch = { nu_train = 512, trajectories = 128, target = 128 }
//! ```
//!
//! Output directory layout:
//!
//! | path | content |
//! |---|---|
//! | `config.toml` | the config of the run |
//! | `metrics.jsonl` | one JSON object per logged step, evaluation and event |
//! | `checkpoints/last/`, `checkpoints/best/` | [`checkpoint`] directories (model, optimizer, state) |
//! | `report.json` | the [`TrainReport`], with the test [`EvalReport`] of the best checkpoint |
//! | `figure.json` | [`FigureData`]: target and learned densities on a grid, for the comparison figure |
//!
//! Randomness: every step draws from its own generator derived from `(seed, step)`
//! ([`data::derived_rng`]); batches come from per-epoch permutations; so a run resumed
//! from a checkpoint reproduces an uninterrupted run bit for bit on CPU.

#![warn(missing_docs)]

pub mod checkpoint;
mod config;
pub mod data;
mod device;
mod error;
mod eval;
pub mod metrics;
pub mod optim;
mod trainer;

pub use checkpoint::{
    checkpoint_dir, load_checkpoint, save_checkpoint, CheckpointKind, CheckpointState, LoadedCheckpoint, Optimizers,
};
pub use config::{
    BatchSizes, DataSource, ImitationConfig, OptimizerConfig, OptimizerKind, RewardConfig, RewardLoss, ScheduleConfig,
    SplitConfig, TaskConfig, TrainConfig,
};
pub use device::{DTypeSpec, DeviceSpec};
pub use error::{Result, TrainError};
pub use eval::{
    density_grid, evaluate, reward_density_grid, reward_report, sampler_report, target_density_grid, target_nll,
    validation_nll, DensityGrid, EvalReport, EvalSettings, GradientVariance, ImportanceReport, NllReport,
    QuadratureCheck, RewardReport, SamplerReport,
};
pub use trainer::{train, FigureData, RunOptions, TrainReport, CONFIG_FILE, FIGURE_FILE, REPORT_FILE};
