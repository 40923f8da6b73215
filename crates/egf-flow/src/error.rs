use thiserror::Error;

/// Errors of the flow layer.
#[derive(Debug, Error)]
pub enum FlowError {
    /// A configuration value is invalid; names the field.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A saved model does not match what loading expects.
    #[error("cannot load model from {path}: {reason}")]
    Load {
        /// File or directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An input tensor has the wrong shape or content.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// I/O error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error of the diffeomorphism layer.
    #[error(transparent)]
    Diffeo(#[from] egf_diffeo::DiffeoError),
    /// An error of the manifold layer.
    #[error(transparent)]
    Manifold(#[from] egf_manifold::ManifoldError),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`FlowError`].
pub type Result<T> = std::result::Result<T, FlowError>;
