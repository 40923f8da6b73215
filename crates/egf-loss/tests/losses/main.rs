//! Tests of every loss of `egf-loss`: values at constructed solutions, gradients
//! against finite differences, unbiasedness of the score-function estimators,
//! extreme inputs, errors, and the instability of divergence flow matching.

mod common;
mod estimators;
mod flow_matching;
mod instability;
mod trajectories;
mod weak_fm;
