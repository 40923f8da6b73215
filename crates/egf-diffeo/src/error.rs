use thiserror::Error;

/// Errors of the diffeomorphism layer.
#[derive(Debug, Error)]
pub enum DiffeoError {
    /// A parameter of a map is invalid (wrong length, out of range, not finite, …).
    #[error("invalid {map}: {reason}")]
    InvalidParameter {
        /// The kind of map, e.g. `"torus_affine"`.
        map: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A map does not act on the manifold it was combined with.
    #[error("{map} acts on {expected}, not on {got}")]
    ManifoldMismatch {
        /// The kind of map.
        map: &'static str,
        /// The manifold of the map.
        expected: String,
        /// The manifold it was used with.
        got: String,
    },
    /// A family with no maps.
    #[error("a family needs at least one map (give a preset or a list of maps)")]
    EmptyFamily,
    /// An error of the manifold layer.
    #[error(transparent)]
    Manifold(#[from] egf_manifold::ManifoldError),
    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`DiffeoError`].
pub type Result<T> = std::result::Result<T, DiffeoError>;
