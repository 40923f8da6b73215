//! # egf-loss
//!
//! Training objectives of Ergodic Generative Flows (spec sections 3–6 of `egf-spec.md`).
//! Every loss returns a [`LossValue`]: a differentiable scalar and named diagnostics
//! that stay on the device until [`LossValue::to_host`].
//!
//! | objective | function | model | spec |
//! |---|---|---|---|
//! | KL-weakFM `−E_D log t_ε + b·vol·E_ν t⁻ + c·vol·E_U g` | [`kl_weak_fm`] | [`FlowModel`](egf_flow::FlowModel) | 5 |
//! | training measure `ν_train` | [`sample_nu_train`] | any | 5 |
//! | stable FM `vol·E_ν |f_init + h − R − g|^q` | [`stable_fm`] | flow | 5 |
//! | divergence FM `Σ_t log²((f_init + h)/(g + R))(s_t)` | [`divergence_fm`] | flow | 5 |
//! | trajectory balance | [`trajectory_balance`] | any [`EgfModel`](egf_flow::EgfModel) | 6 |
//! | reverse KL `KL(P_F ‖ P_B R/Z)`, score function + leave-one-out | [`reverse_kl`] | any | 6 |
//! | ELBO / forward KL, importance-weighted bound | [`elbo`] | any | 5, 6 |
//! | α-mixture of reverse and forward KL | [`alpha_kl`] | any | 6 |
//!
//! Rewards are [`RewardFn`]s returning `log R` (`−∞` where `R = 0`); any closure
//! `Fn(&Tensor) -> Result<Tensor>` is one.
//!
//! ## Gradients
//!
//! Losses on points ([`kl_weak_fm`], [`stable_fm`]) and on fixed trajectories
//! ([`divergence_fm`], [`trajectory_balance`]) have exact gradients: the points and
//! trajectories are data, drawn without gradient. The variational objectives
//! ([`reverse_kl`], [`elbo`]) depend on the parameters through the law the
//! trajectories are drawn from, which no gradient reaches; their losses are
//! score-function surrogates ([`estimators`]) whose value is the objective's
//! Monte-Carlo estimate and whose gradient is an unbiased estimate of the objective's
//! gradient, variance-reduced by a leave-one-out baseline.

#![warn(missing_docs)]

mod error;
pub mod estimators;
mod flow_matching;
mod reward;
mod trajectory_losses;
mod value;
mod weak_fm;

pub use error::{LossError, Result};
pub use estimators::{
    elbo_surrogate, iw_elbo_surrogate, leave_one_out_mean, reverse_kl_surrogate, BackwardGradient, Baseline,
    ScoreSurrogate,
};
pub use flow_matching::{divergence_fm, divergence_fm_on, stable_fm, DivergenceFmConfig, FmResidual, StableFmConfig};
pub use reward::RewardFn;
pub use trajectory_losses::{
    alpha_kl, elbo, elbo_on, reverse_kl, reverse_kl_on, trajectory_balance, trajectory_balance_on, AlphaKlConfig,
    ElboConfig, ElboEstimator, ReverseKlConfig, TrajectoryConfig,
};
pub use value::{Diagnostics, LossValue};
pub use weak_fm::{
    check_weak_fm_weight, kl_weak_fm, sample_nu_train, sample_nu_train_with, KlWeakFmConfig, NuTrainConfig,
    DEFAULT_ON_POLICY_MAX_MOVES,
};
