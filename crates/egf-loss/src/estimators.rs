//! Score-function (REINFORCE) gradient estimators of the variational objectives of
//! spec section 6, on precomputed trajectory log-probabilities.
//!
//! Every estimator here is a [`ScoreSurrogate`]: a scalar `loss` whose **value** is the
//! Monte-Carlo estimate of the objective and whose **gradient** is
//! `Σ_i a_i ∇ log P_F(τ_i) + c_i ∇ log P_B(τ_i)` with detached coefficients `a`, `c`
//! (stored in the surrogate, so that tests can rebuild the gradient by finite
//! differences of `θ ↦ Σ a_i log P_F(τ_i; θ) + c_i log P_B(τ_i; θ)`). The trajectories
//! themselves are fixed (drawn without gradient): all dependence of the sampling law
//! on the parameters enters through score terms.

use candle_core::Tensor;
use egf_flow::numerics::logsumexp;
use serde::{Deserialize, Serialize};

use crate::value::gradient_only;
use crate::{LossError, Result};

/// The baseline subtracted from the learning signal of a score-function term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// No baseline: plain REINFORCE (unbiased, high variance).
    None,
    /// The leave-one-out baseline: sample `i` uses the mean learning signal of the
    /// other `K − 1` samples drawn with it, which is independent of sample `i`, so the
    /// estimator stays unbiased (needs `K ≥ 2`). For the importance-weighted bound it is
    /// the VIMCO baseline (Mnih & Rezende 2016).
    #[default]
    LeaveOneOut,
}

/// How the gradient of the ELBO treats the backward policy `P_B`, which is also the
/// law the trajectories are drawn from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackwardGradient {
    /// The unbiased gradient with respect to every parameter, `P_B`'s included: the
    /// pathwise term plus the score-function term `(learning signal − baseline) · ∇ log P_B`.
    #[default]
    Reinforce,
    /// `log P_B` is held fixed (coefficient 0): the gradient is `E_{P_B}[∇ log P_F]`, the
    /// maximum-likelihood gradient of `P_F` on the backward trajectories. Biased for the
    /// ELBO as soon as `P_B` has parameters (always for the flow model, whose `P_B` is
    /// derived from the same network); exact for a fixed backward policy.
    Fixed,
}

/// A surrogate loss of a score-function estimator (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct ScoreSurrogate {
    /// Rank-0 loss: value [`value`](Self::value), gradient `Σ a ∇ log P_F + c ∇ log P_B`.
    pub loss: Tensor,
    /// Rank-0 detached estimate of the objective being minimized.
    pub value: Tensor,
    /// The coefficients `a` of `log P_F`, detached, shaped like `log_pf`.
    pub pf_coefficients: Tensor,
    /// The coefficients `c` of `log P_B`, detached, shaped like `log_pb`.
    pub pb_coefficients: Tensor,
}

fn check_same_shape(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(LossError::input(what, format!("shapes {:?} and {:?} differ", a.dims(), b.dims())));
    }
    if a.elem_count() == 0 {
        return Err(LossError::EmptyBatch { what: what.into(), unit: "trajectories" });
    }
    Ok(())
}

fn assemble(log_pf: &Tensor, log_pb: &Tensor, value: Tensor, a: Tensor, c: Tensor) -> Result<ScoreSurrogate> {
    let s = ((&a * log_pf)?.sum_all()? + (&c * log_pb)?.sum_all()?)?;
    let loss = (&value + gradient_only(&s)?)?;
    Ok(ScoreSurrogate { loss, value, pf_coefficients: a, pb_coefficients: c })
}

/// The leave-one-out mean along dimension 0: `b_i = (Σ_j v_j − v_i) / (K − 1)` for
/// `v` of shape `(K, …)`, detached. Fails for `K < 2`.
pub fn leave_one_out_mean(v: &Tensor) -> Result<Tensor> {
    let k = v.dims().first().copied().unwrap_or(0);
    if k < 2 {
        return Err(LossError::input("baseline", format!("the leave-one-out baseline needs K ≥ 2 samples, got {k}")));
    }
    let v = v.detach();
    let total = v.sum_keepdim(0)?;
    Ok((total.broadcast_sub(&v)? / (k - 1) as f64)?)
}

/// The reverse KL `KL(P_F ‖ P_B · R / Z_R)` (spec section 6) from `B` trajectories
/// `τ_i ~ P_F` (shape `(B,)` each; `log_reward` = `log R(x_i)`, finite).
///
/// With `w_i = log P_F(τ_i, x_i) − log P_B(τ_i | x_i) − log R(x_i)`,
/// `KL = E_{P_F}[w] + log Z_R` and
/// `∇ KL = E_{P_F}[w ∇ log P_F] + E_{P_F}[∇ log P_F] − E_{P_F}[∇ log P_B]`, whose
/// middle term vanishes (`E_{P_F}[∇ log P_F] = 0`). The estimator is
///
/// `ĝ = (1/B) Σ_i [ (w_i − b_i) ∇ log P_F(τ_i) − ∇ log P_B(τ_i) ]`,
///
/// i.e. `a_i = (w_i − b_i)/B`, `c_i = −1/B`, unbiased for any baseline `b_i`
/// independent of `τ_i` (leave-one-out: `b_i = mean_{j≠i} w_j`). The value is
/// `mean_i w_i`, an estimate of `KL − log Z_R` (so `−value` is a lower bound on `log Z_R`
/// in expectation). With respect to the parameters of `P_F`, half the gradient of the
/// trajectory-balance loss `E[(log Z + w)²]` on the same on-policy trajectories is
/// `E[(log Z + w) ∇ log P_F]`: this same estimator with the baseline `−log Z`.
pub fn reverse_kl_surrogate(
    log_pf: &Tensor,
    log_pb: &Tensor,
    log_reward: &Tensor,
    baseline: Baseline,
) -> Result<ScoreSurrogate> {
    check_same_shape(log_pf, log_pb, "log_pf/log_pb")?;
    check_same_shape(log_pf, log_reward, "log_pf/log_reward")?;
    let b = log_pf.elem_count() as f64;
    let w = ((log_pf - log_pb)? - log_reward)?.detach();
    let signal = match baseline {
        Baseline::None => w.clone(),
        Baseline::LeaveOneOut => (&w - leave_one_out_mean(&w)?)?,
    };
    let a = (signal / b)?;
    let c = (log_pb.ones_like()? * (-1.0 / b))?;
    assemble(log_pf, log_pb, w.mean_all()?, a, c)
}

/// The negative ELBO `−E_{x} E_{τ~P_B(·|x)}[log P_F(τ, x) − log P_B(τ | x)]` (spec
/// sections 5 and 6; the forward KL `KL(P_B R/Z ‖ P_F)` up to a constant) from `K`
/// backward trajectories per point, `log_pf` and `log_pb` of shape `(K, n)`.
///
/// With `l = log P_F − log P_B`, the gradient of `E_{P_B}[l]` is `E[∇ log P_F]` plus
/// `E[l ∇ log P_B] − E[∇ log P_B]` (the score term of the sampling law and the
/// pathwise term of `−log P_B`); the last has mean 0 and is dropped. The estimator of
/// the gradient of the loss is
///
/// `ĝ = −(1/(K n)) Σ_{k,j} [ ∇ log P_F(τ_kj) + (l_kj − b_kj) ∇ log P_B(τ_kj) ]`
///
/// with [`BackwardGradient::Reinforce`] (`b` the leave-one-out mean over the `K`
/// trajectories of the same point, or 0), and without the `∇ log P_B` term with
/// [`BackwardGradient::Fixed`]. The value is `−mean l`.
pub fn elbo_surrogate(
    log_pf: &Tensor,
    log_pb: &Tensor,
    backward: BackwardGradient,
    baseline: Baseline,
) -> Result<ScoreSurrogate> {
    check_same_shape(log_pf, log_pb, "log_pf/log_pb")?;
    let scale = 1.0 / log_pf.elem_count() as f64;
    let l = (log_pf - log_pb)?.detach();
    let a = (log_pf.ones_like()? * (-scale))?;
    let c = match backward {
        BackwardGradient::Fixed => log_pb.zeros_like()?,
        BackwardGradient::Reinforce => {
            let signal = match baseline {
                Baseline::None => l.clone(),
                Baseline::LeaveOneOut => (&l - leave_one_out_mean(&l)?)?,
            };
            (signal * (-scale))?
        }
    };
    assemble(log_pf, log_pb, l.mean_all()?.neg()?, a, c)
}

/// The negative importance-weighted ELBO `−E_x E[log (1/K) Σ_k exp(l_k)]`,
/// `l_k = log P_F(τ_k, x) − log P_B(τ_k | x)`, `τ_1 … τ_K ~ P_B(·|x)` i.i.d. (spec
/// section 6: the importance-sampling estimate of `log p(x)`, a tighter lower bound
/// than the ELBO); `log_pf`, `log_pb` of shape `(K, n)`.
///
/// With `L̂ = log (1/K) Σ_k e^{l_k}` and the normalized weights `w̃_k = e^{l_k} / Σ_j e^{l_j}`,
/// `∇ E[L̂] = E[Σ_k w̃_k (∇ log P_F(τ_k) − ∇ log P_B(τ_k))] + E[Σ_k L̂ ∇ log P_B(τ_k)]`;
/// in the score term `L̂` is replaced by `L̂ − L̂_{−k}` with the VIMCO baseline
/// `L̂_{−k} = log (1/K)(Σ_{j≠k} e^{l_j} + e^{l̄_{−k}})`, `l̄_{−k}` the mean of the other
/// `l_j` (independent of `τ_k`, so unbiased; [`Baseline::None`] keeps `L̂`). Hence
/// `a_kj = −w̃_kj / n` and `c_kj = (w̃_kj − (L̂_j − L̂_{−k,j})) / n`
/// ([`BackwardGradient::Reinforce`]) or `c = 0` ([`BackwardGradient::Fixed`]).
/// The value is `−mean_j L̂_j`. For `K = 1` this is the ELBO.
pub fn iw_elbo_surrogate(
    log_pf: &Tensor,
    log_pb: &Tensor,
    backward: BackwardGradient,
    baseline: Baseline,
) -> Result<ScoreSurrogate> {
    check_same_shape(log_pf, log_pb, "log_pf/log_pb")?;
    let (k, n) = match log_pf.dims() {
        [k, n] => (*k, *n),
        dims => return Err(LossError::input("log_pf", format!("shape {dims:?} is not (K, n)"))),
    };
    let l = (log_pf - log_pb)?.detach();
    let lse = logsumexp(&l, 0)?; // (n,)
    let l_hat = (&lse - (k as f64).ln())?;
    let weights = l.broadcast_sub(&lse.unsqueeze(0)?)?.exp()?;
    let a = (&weights * (-1.0 / n as f64))?;
    let c = match backward {
        BackwardGradient::Fixed => log_pb.zeros_like()?,
        BackwardGradient::Reinforce => {
            let signal = match baseline {
                Baseline::None => l_hat.unsqueeze(0)?.broadcast_as((k, n))?.contiguous()?,
                Baseline::LeaveOneOut => l_hat.unsqueeze(0)?.broadcast_sub(&vimco_baseline(&l)?)?,
            };
            ((&weights - signal)? / n as f64)?
        }
    };
    assemble(log_pf, log_pb, l_hat.mean_all()?.neg()?, a, c)
}

/// `L̂_{−k} = log (1/K)(Σ_{j≠k} e^{l_j} + e^{l̄_{−k}})` for `l` of shape `(K, n)`; `(K, n)`.
fn vimco_baseline(l: &Tensor) -> Result<Tensor> {
    let (k, n) = l.dims2()?;
    let others_mean = leave_one_out_mean(l)?; // (K, n)
    let eye: Vec<u8> = (0..k * k).map(|i| u8::from(i / k == i % k)).collect();
    let mask = Tensor::from_vec(eye, (k, k, 1), l.device())?.broadcast_as((k, k, n))?;
    // row k of the (K, K, n) stack: l with its k-th entry replaced by l̄_{−k}
    let replaced = others_mean.unsqueeze(1)?.broadcast_as((k, k, n))?;
    let base = l.unsqueeze(0)?.broadcast_as((k, k, n))?;
    let stacked = mask.where_cond(&replaced, &base)?;
    Ok((logsumexp(&stacked, 1)? - (k as f64).ln())?)
}
