use thiserror::Error;

/// Errors of the loss layer.
#[derive(Debug, Error)]
pub enum LossError {
    /// A configuration value is invalid; names the field.
    #[error("invalid loss config field `{field}`: {reason}")]
    InvalidConfig {
        /// The field (dotted path when nested).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch the loss needs is empty.
    #[error("empty batch: `{what}` has no {unit}")]
    EmptyBatch {
        /// Which argument.
        what: String,
        /// What it should contain (points, trajectories).
        unit: &'static str,
    },
    /// An input tensor has the wrong shape, dtype or content.
    #[error("invalid input `{what}`: {reason}")]
    InvalidInput {
        /// Which argument.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The reward function failed (the error of the caller's reward, boxed).
    #[error("reward evaluation failed: {0}")]
    Reward(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An error of the flow layer (model evaluation, sampling).
    #[error(transparent)]
    Flow(#[from] egf_flow::FlowError),
    /// An error of the manifold layer (uniform sampling, perturbation).
    #[error(transparent)]
    Manifold(#[from] egf_manifold::ManifoldError),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl LossError {
    /// Wraps any error of a reward implementation (see [`crate::RewardFn`]).
    pub fn reward<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        LossError::Reward(Box::new(err))
    }

    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        LossError::InvalidConfig { field: field.into(), reason: reason.into() }
    }

    pub(crate) fn input(what: &str, reason: impl Into<String>) -> Self {
        LossError::InvalidInput { what: what.into(), reason: reason.into() }
    }
}

/// `Result` with [`LossError`].
pub type Result<T> = std::result::Result<T, LossError>;
