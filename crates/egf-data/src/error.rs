//! The error type of the data layer.

use std::path::PathBuf;

use thiserror::Error;

/// Errors of the data layer: reading and writing point files, splits, targets and rewards.
///
/// File errors always name the file, and errors about the content of a file name the
/// 1-based line number (and the 1-based column where one field is at fault).
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a point file is malformed: wrong number of fields, a value that is not a
    /// finite number, a value out of its range, or a point that is not on the manifold.
    #[error("{path}, line {line}{}: {message}", column_suffix(*column))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file (comment and blank lines count).
        line: usize,
        /// 1-based column of the offending field, when a single field is at fault.
        column: Option<usize>,
        /// What is wrong, with the offending text.
        message: String,
    },
    /// A point file holds no data rows (only comments, blank lines and perhaps a header).
    #[error("{path}: no data rows in the file's {lines} line(s) (only comments, blank lines or a header)")]
    NoData {
        /// The file.
        path: PathBuf,
        /// Number of lines in the file.
        lines: usize,
    },
    /// An earth file holds a number of rows other than the published one.
    #[error("{path}: expected {expected} data rows for the {dataset} data set, found {found}")]
    UnexpectedRowCount {
        /// The file.
        path: PathBuf,
        /// The data set's name.
        dataset: &'static str,
        /// The published number of rows.
        expected: usize,
        /// The number of rows read.
        found: usize,
    },
    /// A file format that does not apply to the manifold (e.g. latitude/longitude on a torus).
    #[error("point format `{format}` does not apply to {manifold}: {reason}")]
    FormatMismatch {
        /// The format's name.
        format: String,
        /// The manifold, in words.
        manifold: String,
        /// Which formats apply instead.
        reason: String,
    },
    /// The earth data directory was not given.
    #[error(
        "no earth data directory given: pass --data-dir <DIR> or set the environment variable EGF_DATA_DIR \
         (the folder holding volcano.csv, earthquake.csv, flood.csv and fire.csv)"
    )]
    DataDirNotSet,
    /// A name (data set, target, reward, point format) that is not known.
    #[error("unknown {what} `{name}`; expected one of: {expected}")]
    UnknownName {
        /// What kind of name it is.
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, comma separated.
        expected: String,
    },
    /// A parameter of a target, reward, split or point set is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter.
        what: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An index beyond the end of a point set.
    #[error("index {index} out of range for a point set of {len} points")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of points.
        len: usize,
    },
    /// An error of the manifold layer (shapes, off-manifold points, coordinates).
    #[error(transparent)]
    Manifold(#[from] egf_manifold::ManifoldError),
    /// An error of the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn column_suffix(column: Option<usize>) -> String {
    column.map(|c| format!(", column {c}")).unwrap_or_default()
}

impl DataError {
    /// Shorthand for [`DataError::InvalidParameter`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::InvalidParameter { what: what.into(), reason: reason.into() }
    }
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;
