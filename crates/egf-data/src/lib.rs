//! # egf-data
//!
//! Data for Ergodic Generative Flows (spec sections 1 and 7 of `egf-spec.md`): point sets
//! on a [`Manifold`](egf_manifold::Manifold), the four earth event data sets, point files,
//! seeded train/validation/test splits, toy targets with exact densities and samplers,
//! and rewards for reinforcement learning.
//!
//! * [`PointSet`]: `n` points of a manifold, row-major `f64` (torus points in `[0, 1)^d`,
//!   sphere points as unit vectors).
//! * [`earth`]: [`load_earth`] reads `volcano`, `earthquake`, `flood` and `fire`
//!   (latitude/longitude in degrees → unit vectors of `S^2`).
//! * [`points_csv`]: [`load_points_csv`] / [`write_points_csv`] in a [`PointFormat`]
//!   (latitude/longitude, unit vectors, torus coordinates, angles), with errors naming the
//!   file, line and column.
//! * [`split`](mod@split): the seeded, platform-independent 80/10/10 [`Split`].
//! * [`targets`]: the [`Target`] trait and the toy distributions `checkerboard`,
//!   `wrapped_gaussians`, `rings`, `fine` (on `T^2`) and `vmf_mixture` (on `S^2`), with
//!   serde [`TargetSpec`]s.
//! * [`rewards`]: the [`Reward`] trait (unnormalized densities `R ≥ 0`) and serde [`RewardSpec`]s.
//!
//! All densities are w.r.t. the manifold's reference measure `λ` (Lebesgue on `T^d`,
//! surface measure on `S^d`); log-densities are in nats.

#![warn(missing_docs)]

pub mod earth;
mod error;
mod point_set;
pub mod points_csv;
pub mod rewards;
pub mod split;
pub mod targets;
mod tensor_ops;

pub use earth::{default_data_dir, load_earth, EarthDataset, DATA_DIR_ENV};
pub use error::{DataError, Result};
pub use point_set::{PointSet, MEMBERSHIP_TOLERANCE};
pub use points_csv::{load_points_csv, write_points_csv, PointFormat, UNIT_NORM_TOLERANCE};
pub use rewards::{reward_by_name, CheckerboardReward, DensityReward, Reward, RewardSpec, VmfMixtureReward};
pub use split::{permutation, split, Split, SplitFractions, SplitPoints};
pub use targets::{by_name, Target, TargetSpec};
