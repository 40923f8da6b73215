//! The error type of the training layer.

use std::path::PathBuf;

use thiserror::Error;

/// Errors of the training layer: configuration, data, devices, checkpoints and the run itself.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration value is invalid; `field` is its dotted path (e.g. `optimizer.lr`).
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration file or string could not be parsed (TOML syntax, unknown key, wrong type).
    /// The message keeps the TOML parser's line, column and key.
    #[error("{source_name}: {message}")]
    Parse {
        /// The file path, or `<string>` for [`TrainConfig::from_toml_str`](crate::TrainConfig::from_toml_str).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A `--set key=value` override that names no existing key or gives a bad value.
    #[error("cannot apply override `{spec}`: {reason}")]
    Override {
        /// The override as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested tensor device is not available (e.g. a build without the `cuda` feature).
    #[error("device `{device}` is not available: {reason}")]
    Device {
        /// The device as written in the config.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The loss or one of its terms became NaN or infinite.
    #[error(
        "non-finite loss at step {step}: term `{term}` is NaN or infinite{}",
        checkpoint.as_ref().map(|p| format!("; the last good checkpoint is {}", p.display())).unwrap_or_else(|| "; no checkpoint was written yet".into())
    )]
    NonFinite {
        /// The optimizer step (1-based) whose loss was not finite.
        step: usize,
        /// The name of the first non-finite loss term (`loss` for the total).
        term: String,
        /// The last checkpoint written with finite weights, if any.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint cannot be written, read or used.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A requested feature that this build does not offer yet.
    #[error("not yet supported: {0}")]
    Unsupported(String),
    /// I/O error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error of the loss layer.
    #[error(transparent)]
    Loss(#[from] egf_loss::LossError),
    /// An error of the data layer.
    #[error(transparent)]
    Data(#[from] egf_data::DataError),
    /// An error of the flow layer.
    #[error(transparent)]
    Flow(#[from] egf_flow::FlowError),
    /// An error of the diffeomorphism layer.
    #[error(transparent)]
    Diffeo(#[from] egf_diffeo::DiffeoError),
    /// An error of the manifold layer (its [`ManifoldError::Device`](egf_manifold::ManifoldError::Device)
    /// becomes [`TrainError::Device`] instead).
    #[error(transparent)]
    Manifold(egf_manifold::ManifoldError),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<egf_manifold::ManifoldError> for TrainError {
    /// Wraps the error in [`TrainError::Manifold`], except an unavailable device
    /// ([`DeviceSpec::build`](crate::DeviceSpec::build)), which is a [`TrainError::Device`].
    fn from(e: egf_manifold::ManifoldError) -> Self {
        match e {
            egf_manifold::ManifoldError::Device { device, reason } => TrainError::Device { device, reason },
            other => TrainError::Manifold(other),
        }
    }
}

impl TrainError {
    /// Shorthand for [`TrainError::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TrainError::Config { field: field.into(), reason: reason.into() }
    }

    /// A closure turning an [`std::io::Error`] into [`TrainError::Io`] for `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
        move |source| TrainError::Io { path: path.to_path_buf(), source }
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
