use thiserror::Error;

/// Errors of the manifold layer.
#[derive(Debug, Error)]
pub enum ManifoldError {
    /// A manifold of an unsupported or meaningless dimension was requested.
    #[error("invalid dimension {dim} for {manifold}: {reason}")]
    InvalidDimension {
        /// `"torus"` or `"sphere"`.
        manifold: &'static str,
        /// The requested intrinsic dimension.
        dim: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor or slice does not have the expected shape.
    #[error("shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// The expected shape, in words (e.g. `"(n, 3)"`).
        expected: String,
        /// The shape that was passed.
        got: Vec<usize>,
    },
    /// A point is not on the manifold (within the stated tolerance).
    #[error("point {index} is not on the {manifold}: {reason} (point = {point:?})")]
    OffManifold {
        /// Row index of the offending point in its batch.
        index: usize,
        /// The manifold, in words.
        manifold: String,
        /// The offending coordinates.
        point: Vec<f64>,
        /// What is wrong with it.
        reason: String,
    },
    /// A coordinate value is outside its allowed range (e.g. latitude > 90°).
    #[error("{what} = {value} is outside {range}")]
    OutOfRange {
        /// Name of the coordinate.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// The operation is not available for this manifold or dimension.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The requested tensor device is not available (e.g. a build without the `cuda` feature).
    #[error("device `{device}` is not available: {reason}")]
    Device {
        /// The device as written (e.g. `"cuda:1"`).
        device: String,
        /// Why it cannot be used, with how to fix it where known.
        reason: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("environment variable {var}=`{value}` is invalid: {reason}")]
    InvalidEnvVar {
        /// The variable's name.
        var: String,
        /// Its value (lossily decoded if it was not Unicode).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`ManifoldError`].
pub type Result<T> = std::result::Result<T, ManifoldError>;
