//! What every EGF parameterization offers to the sampler, the backward kernel
//! and the trajectory objectives (spec sections 4 and 6).

use candle_core::{DType, Device, Tensor};
use egf_diffeo::Family;
use egf_manifold::Manifold;

use crate::Result;

/// Log-probabilities of the forward and backward policies at a batch of states.
///
/// Column 0 of `forward` is `log π_F(stop | s)`, column `i` (1-based) is
/// `log π_F(move i | s)`; column 0 of `backward` is `log π_B(start | s)`, column
/// `i` is `log π_B(unmove i | s)`, the probability that `s` was reached from
/// `Φ_i⁻¹ s` by move `i`. Each row is a log-probability vector over `1 + p` entries.
#[derive(Clone, Debug)]
pub struct PolicyLogProbs {
    /// `(n, 1 + p)` forward log-probabilities.
    pub forward: Tensor,
    /// `(n, 1 + p)` backward log-probabilities.
    pub backward: Tensor,
}

/// A Markov chain on a manifold that moves by the maps of a finite family
/// (spec section 4): the flow model and the policy model both implement it.
pub trait EgfModel {
    /// The manifold of the chain.
    fn manifold(&self) -> Manifold;
    /// The family `Φ_1 … Φ_p` of moves.
    fn family(&self) -> &Family;
    /// The tensor device of the parameters.
    fn device(&self) -> &Device;
    /// The float dtype of the parameters.
    fn dtype(&self) -> DType;
    /// `log Z`: `log Z_init` for the flow model, the learned normalizer for the policy model; shape `(1,)`.
    fn log_z(&self) -> Result<Tensor>;
    /// Forward and backward policies at the states `s` (`(n, ambient_dim)`), differentiable.
    fn policy_log_probs(&self, s: &Tensor) -> Result<PolicyLogProbs>;
    /// [`policy_log_probs`](Self::policy_log_probs) for training objectives that
    /// need a finite `log π_F(stop | s)` everywhere: the flow model replaces the
    /// virtual terminal density `t` in its stop probability by the smooth positive
    /// surrogate `t_ε` of spec section 5 (`log t_ε = log ε + log softplus(t/ε)`),
    /// so a target point where `t ≤ 0` costs a large finite loss with a useful
    /// gradient instead of `−∞`. Parameterizations whose stop probability is
    /// already positive (the policy model) return the exact values.
    fn policy_log_probs_smoothed_stop(&self, s: &Tensor, epsilon: f64) -> Result<PolicyLogProbs> {
        let _ = epsilon;
        self.policy_log_probs(s)
    }
    /// The same values without recording the autograd graph (sampling, evaluation).
    fn policy_log_probs_detached(&self, s: &Tensor) -> Result<PolicyLogProbs> {
        let lp = self.policy_log_probs(s)?;
        Ok(PolicyLogProbs { forward: lp.forward.detach(), backward: lp.backward.detach() })
    }
}
