//! # egf-plot
//!
//! Figures of Ergodic Generative Flows, written as PNG files:
//!
//! | figure | function | what it shows |
//! |---|---|---|
//! | one density map | [`figures::density_figure`] | a torus heat map (`x1` right, `x2` up) or an equirectangular world map (longitude right, latitude up) with a colour bar and optional points |
//! | several maps on one scale | [`figures::comparison_figure`] | e.g. target, learned (reported) density and a sampler histogram side by side |
//! | a panel grid | [`figures::panel_grid_figure`] | any number of rows of rectangular rasters on one colour scale (the torus figure of `cargo xtask reproduce torus-il`, with zooms around a point) |
//! | training curves | [`curves::curves_figure`] | stacked line charts over training steps, one line per run (plotters' `ChartBuilder` and `LineSeries`) |
//!
//! Densities are with respect to the manifold's reference measure (spec section 1 of
//! `egf-spec.md`: Lebesgue on `T^2`, surface measure on `S^2`); grids are
//! [`egf_train::DensityGrid`]s. All drawing goes through plotters (its bitmap back end,
//! shapes, colour map and chart API); the only thing drawn here by hand is text, see
//! [`render`].
//!
//! This crate sits beside `egf-cli` at the top of the workspace (it depends on
//! `egf-train`, `egf-data` and `egf-manifold`), so that the `egf` binary and
//! `cargo xtask reproduce` draw the same figures and no lower crate pulls in plotting.

#![warn(missing_docs)]

pub mod curves;
pub mod figures;
pub mod numfmt;
pub mod render;

use std::path::PathBuf;

/// Errors of this crate: bad figure input, or a PNG that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The figure's input cannot be drawn (empty, not finite, wrong manifold, …).
    #[error("invalid figure input: {0}")]
    InvalidInput(String),
    /// plotters failed while drawing or encoding.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The file being drawn (empty for an in-memory canvas).
        path: PathBuf,
        /// plotters' message.
        reason: String,
    },
    /// The output file cannot be written (e.g. its directory does not exist).
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// `Result` with [`PlotError`].
pub type Result<T> = std::result::Result<T, PlotError>;

impl PlotError {
    /// An [`InvalidInput`](PlotError::InvalidInput) error.
    pub fn invalid(message: impl Into<String>) -> Self {
        PlotError::InvalidInput(message.into())
    }
}
