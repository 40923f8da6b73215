//! # egf-flow
//!
//! Ergodic Generative Flow models (spec sections 3, 4 and 6 of `egf-spec.md`).
//!
//! A chain starts uniformly on a compact manifold, moves by maps `Φ_1 … Φ_p`
//! of a finite [`Family`](egf_diffeo::Family) chosen by a learned policy, and
//! stops. Two parameterizations implement [`EgfModel`]:
//!
//! * [`FlowModel`], the flow parameterization: a network gives the star outflow
//!   `g(x) ≥ 0` and the move policy `α(x)`. Because the family is finite the
//!   **star inflow** `h(y) = Σ_i α_i(Φ_i⁻¹ y) g(Φ_i⁻¹ y) |det D(Φ_i⁻¹)(y)|` is exact,
//!   and so is the **virtual terminal density** `t = f_init + h − g`, whose
//!   integral is `Z_init` whatever the weights ([`FlowModel::evaluate`]);
//! * [`PolicyModel`], the policy parameterization: forward and backward action
//!   logits and a learned `log Z`.
//!
//! [`sample`] runs the chain batched on the model's device; [`sample_backward`]
//! runs the backward kernel; [`trajectory_log_probs`] gives `log P_F(τ, x)` and
//! `log P_B(τ | x)`; [`importance_log_density`] estimates the log-density of the
//! sampler's output. [`save_model`] / [`load_flow_model`] store models as
//! safetensors plus a JSON description.

pub mod cpu_kernels;
mod error;
pub mod features;
mod flow_model;
mod fused_mlp;
mod io;
mod model;
pub mod network;
pub mod numerics;
mod policy_model;
mod sampler;
mod trajectory;

pub use error::{FlowError, Result};
pub use flow_model::{FlowModel, FlowModelConfig, FlowTerms, MassReport, OutflowLink, OutflowTerms};
pub use io::{
    load_flow_model, load_model, load_policy_model, read_description, save_model, ModelDescription, ModelKind,
    SavedModel,
};
pub use model::{EgfModel, PolicyLogProbs};
pub use policy_model::{PolicyModel, PolicyModelConfig};
pub use sampler::{sample, sample_backward, SampleOutput, SamplerConfig};
pub use trajectory::{
    importance_log_density, trajectory_log_probs, trajectory_log_probs_detached, trajectory_log_probs_with, Direction,
    LikelihoodEstimate, Trajectories, TrajectoryLogProbs,
};
