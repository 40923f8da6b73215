//! Trajectory objectives (spec section 6) for every [`EgfModel`]: trajectory balance,
//! the reverse KL with a score-function gradient, the ELBO / forward KL from target
//! samples with its importance-weighted variant, and their α-mixture.

use candle_core::Tensor;
use egf_flow::{
    sample_backward, trajectory_log_probs, trajectory_log_probs_with, EgfModel, SamplerConfig, Trajectories,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::estimators::{elbo_surrogate, iw_elbo_surrogate, reverse_kl_surrogate, BackwardGradient, Baseline};
use crate::reward::eval_log_reward;
use crate::value::{check_finite, check_points, host_scalar};
use crate::{LossError, LossValue, Result, RewardFn};

/// How on-policy trajectories are drawn and scored by [`trajectory_balance`] and [`reverse_kl`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryConfig {
    /// Move cap `T_max` of the sampler (default 100).
    #[serde(default = "default_max_moves")]
    pub max_moves: usize,
    /// Floor on `log R` (finite, default −50): `log R` is replaced by
    /// `max(log R, floor)`, so a trajectory ending where `R = 0` gets a large finite
    /// penalty instead of an infinite one. It changes the target by at most
    /// `e^floor · vol` in mass.
    #[serde(default = "default_log_reward_floor")]
    pub log_reward_floor: f64,
    /// Whether trajectories stopped by the move cap enter the loss (default false:
    /// their forced stop is not a stop of the policy, so they are draws of the capped
    /// sampler, not of the model's `P_F`; their `log P_F` is that of the capped sampler,
    /// without a stop term). They are counted in `truncated` either way.
    #[serde(default)]
    pub include_truncated: bool,
}

fn default_max_moves() -> usize {
    100
}
fn default_log_reward_floor() -> f64 {
    -50.0
}

impl Default for TrajectoryConfig {
    fn default() -> Self {
        Self { max_moves: default_max_moves(), log_reward_floor: default_log_reward_floor(), include_truncated: false }
    }
}

impl TrajectoryConfig {
    /// Checks that the floor is finite.
    pub fn validate(&self) -> Result<()> {
        check_finite("log_reward_floor", self.log_reward_floor)
    }
}

/// Per-trajectory quantities shared by the on-policy objectives.
struct Scored {
    log_pf: Tensor,
    log_pb: Tensor,
    log_reward: Tensor,
    included: usize,
    total: usize,
    truncated: usize,
}

fn check_trajectories<M: EgfModel + ?Sized>(model: &M, traj: &Trajectories) -> Result<()> {
    if traj.is_empty() {
        return Err(LossError::EmptyBatch { what: "trajectories".into(), unit: "trajectories" });
    }
    check_points(&traj.states, model.manifold(), model.dtype(), "trajectories.states")?;
    Ok(())
}

fn score_on_policy<M: EgfModel + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    traj: &Trajectories,
    config: &TrajectoryConfig,
) -> Result<Scored> {
    config.validate()?;
    check_trajectories(model, traj)?;
    let total = traj.len();
    let lp = trajectory_log_probs(model, traj)?;
    let x = traj.end_points()?.detach();
    let log_reward = eval_log_reward(reward, &x, total, model.dtype())?.maximum(config.log_reward_floor)?;
    let keep: Vec<u32> =
        (0..total).filter(|&b| config.include_truncated || !traj.truncated[b]).map(|b| b as u32).collect();
    if keep.is_empty() {
        return Err(LossError::input(
            "trajectories",
            format!("all {total} trajectories hit the move cap and include_truncated is false"),
        ));
    }
    let (log_pf, log_pb, log_reward) = if keep.len() == total {
        (lp.log_pf, lp.log_pb, log_reward)
    } else {
        let idx = Tensor::new(keep.as_slice(), x.device())?;
        (lp.log_pf.index_select(&idx, 0)?, lp.log_pb.index_select(&idx, 0)?, log_reward.index_select(&idx, 0)?)
    };
    Ok(Scored { log_pf, log_pb, log_reward, included: keep.len(), total, truncated: traj.truncated_count() })
}

fn sample_on_policy<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    n: usize,
    max_moves: usize,
    rng: &mut R,
) -> Result<Trajectories> {
    if n == 0 {
        return Err(LossError::EmptyBatch { what: "trajectories".into(), unit: "trajectories" });
    }
    let sampler = SamplerConfig { max_moves, defensive_weight: 0.0, record_trajectories: true };
    egf_flow::sample(model, n, &sampler, rng)?
        .trajectories
        .ok_or_else(|| LossError::input("trajectories", "the sampler recorded no trajectories"))
}

/// Trajectory balance (spec section 6) on `n` on-policy trajectories of the model
/// (drawn without gradient, see [`trajectory_balance_on`]).
pub fn trajectory_balance<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    n: usize,
    config: &TrajectoryConfig,
    rng: &mut R,
) -> Result<LossValue> {
    config.validate()?;
    let traj = sample_on_policy(model, n, config.max_moves, rng)?;
    trajectory_balance_on(model, reward, &traj, config)
}

/// Trajectory balance on given trajectories:
///
/// `L = (1/B) Σ_b (log Z + log P_F(τ_b, x_b) − log R(x_b) − log P_B(τ_b | x_b))²`
///
/// with `log R` floored at [`TrajectoryConfig::log_reward_floor`] and the exact
/// gradient with respect to `log Z`, `P_F` and `P_B` (the trajectories are data). For
/// the flow model `log Z = log Z_init` and, where `t > 0` along the trajectory,
/// `log P_F − log P_B = log t(x) − log Z_init`, so the loss is `mean (log t − log R)²`.
/// Terms: `trajectory_balance`, `mean_log_weight` (`mean(log P_F − log P_B − log R)`),
/// `log_z`. Counts: `trajectories`, `included`, `truncated`.
pub fn trajectory_balance_on<M: EgfModel + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    traj: &Trajectories,
    config: &TrajectoryConfig,
) -> Result<LossValue> {
    let s = score_on_policy(model, reward, traj, config)?;
    let log_weight = ((&s.log_pf - &s.log_pb)? - &s.log_reward)?;
    let log_z = model.log_z()?.reshape(())?;
    let residual = log_weight.broadcast_add(&log_z)?;
    let loss = residual.sqr()?.mean_all()?;
    Ok(LossValue::new(loss.clone())
        .with_term("trajectory_balance", &loss)
        .with_term("mean_log_weight", &log_weight.mean_all()?)
        .with_term("log_z", &log_z)
        .with_count("trajectories", s.total)
        .with_count("included", s.included)
        .with_count("truncated", s.truncated))
}

/// Settings of [`reverse_kl`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseKlConfig {
    /// How trajectories are drawn and scored.
    #[serde(default)]
    pub trajectories: TrajectoryConfig,
    /// The baseline of the score-function term (default leave-one-out).
    #[serde(default)]
    pub baseline: Baseline,
}

/// The reverse KL `KL(P_F ‖ P_B · R / Z_R)` (spec section 6) on `n` on-policy
/// trajectories (see [`reverse_kl_on`]).
pub fn reverse_kl<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    n: usize,
    config: &ReverseKlConfig,
    rng: &mut R,
) -> Result<LossValue> {
    config.trajectories.validate()?;
    let traj = sample_on_policy(model, n, config.trajectories.max_moves, rng)?;
    reverse_kl_on(model, reward, &traj, config)
}

/// The reverse KL on given on-policy trajectories, with the score-function estimator
/// of [`reverse_kl_surrogate`]: the loss's gradient is
/// `(1/B) Σ_i [(w_i − b_i) ∇ log P_F(τ_i) − ∇ log P_B(τ_i)]`,
/// `w = log P_F − log P_B − log R` (floored `log R`), `b` the leave-one-out mean of `w`;
/// unbiased for `∇ KL` when the trajectories are drawn from `P_F` (truncated ones
/// excluded: then it is the gradient of the KL of the chain conditioned on stopping
/// within the cap). `log Z` of the model gets no gradient. Its expected gradient with
/// respect to `P_F`'s parameters is half that of [`trajectory_balance`] on the same
/// trajectories, the model's `log Z` acting as baseline.
///
/// The loss's value is `mean w`, an estimate of `KL − log Z_R`. Terms: `reverse_kl`
/// (= `mean w`), `log_z_lower_bound` (`−mean w`, a lower bound on `log ∫ R dλ` in
/// expectation). Counts: `trajectories`, `included`, `truncated`.
pub fn reverse_kl_on<M: EgfModel + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    traj: &Trajectories,
    config: &ReverseKlConfig,
) -> Result<LossValue> {
    let s = score_on_policy(model, reward, traj, &config.trajectories)?;
    if config.baseline == Baseline::LeaveOneOut && s.included < 2 {
        return Err(LossError::input(
            "trajectories",
            format!("the leave-one-out baseline needs at least 2 included trajectories, got {}", s.included),
        ));
    }
    let sur = reverse_kl_surrogate(&s.log_pf, &s.log_pb, &s.log_reward, config.baseline)?;
    Ok(LossValue::new(sur.loss)
        .with_term("reverse_kl", &sur.value)
        .with_term("log_z_lower_bound", &sur.value.neg()?)
        .with_count("trajectories", s.total)
        .with_count("included", s.included)
        .with_count("truncated", s.truncated))
}

/// Which bound [`elbo`] maximizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElboEstimator {
    /// The ELBO `E_{τ~P_B}[log P_F − log P_B]` ([`elbo_surrogate`]).
    #[default]
    Standard,
    /// The importance-weighted bound `E[log (1/K) Σ_k P_F(τ_k)/P_B(τ_k)]` ([`iw_elbo_surrogate`]).
    ImportanceWeighted,
}

/// Settings of [`elbo`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElboConfig {
    /// `K ≥ 1`, backward trajectories per point (default 4).
    #[serde(default = "default_samples_per_point")]
    pub samples_per_point: usize,
    /// Move cap of the backward sampler (default 100); at the cap the start is forced
    /// and contributes 0 to `log P_B`, which keeps the weights valid for the chain
    /// truncated at the cap.
    #[serde(default = "default_max_moves")]
    pub max_moves: usize,
    /// Which bound (default the ELBO).
    #[serde(default)]
    pub estimator: ElboEstimator,
    /// The gradient with respect to the backward policy (default REINFORCE).
    #[serde(default)]
    pub backward_gradient: BackwardGradient,
    /// The baseline of the score term (default leave-one-out over the `K` trajectories
    /// of each point; needs `K ≥ 2`).
    #[serde(default)]
    pub baseline: Baseline,
    /// `ε` of the smoothed stop probability (flow model only, default `10⁻³`, as
    /// KL-weakFM's `t_ε`): the target samples' `log t(x)` becomes `log t_ε(x)`, so a
    /// sample where `t ≤ 0` gives a large finite loss instead of `+∞`
    /// ([`EgfModel::policy_log_probs_smoothed_stop`]). Must be positive; a tiny
    /// value approaches the exact ELBO. Ignored by the policy model.
    #[serde(default = "default_stop_epsilon")]
    pub stop_epsilon: f64,
}

fn default_samples_per_point() -> usize {
    4
}

fn default_stop_epsilon() -> f64 {
    1e-3
}

impl Default for ElboConfig {
    fn default() -> Self {
        Self {
            samples_per_point: default_samples_per_point(),
            max_moves: default_max_moves(),
            estimator: ElboEstimator::Standard,
            backward_gradient: BackwardGradient::Reinforce,
            baseline: Baseline::LeaveOneOut,
            stop_epsilon: default_stop_epsilon(),
        }
    }
}

impl ElboConfig {
    /// Checks `K ≥ 1`, and `K ≥ 2` where a leave-one-out baseline is used.
    pub fn validate(&self) -> Result<()> {
        if self.samples_per_point == 0 {
            return Err(LossError::config("samples_per_point", "must be ≥ 1"));
        }
        if !(self.stop_epsilon.is_finite() && self.stop_epsilon > 0.0) {
            return Err(LossError::config("stop_epsilon", format!("{} is not a positive number", self.stop_epsilon)));
        }
        if self.samples_per_point < 2
            && self.baseline == Baseline::LeaveOneOut
            && self.backward_gradient == BackwardGradient::Reinforce
        {
            return Err(LossError::config(
                "samples_per_point",
                "the leave-one-out baseline needs K ≥ 2 trajectories per point (or use baseline = \"none\")",
            ));
        }
        Ok(())
    }
}

/// The ELBO of spec sections 5 and 6 — equivalently the forward KL
/// `KL(P_B · R/Z ‖ P_F)` from target samples up to a constant — as a loss to minimize
/// (`−ELBO`): draws `K` backward trajectories from each point of `x` (without
/// gradient) and calls [`elbo_on`].
pub fn elbo<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    x: &Tensor,
    config: &ElboConfig,
    rng: &mut R,
) -> Result<LossValue> {
    config.validate()?;
    check_points(x, model.manifold(), model.dtype(), "x")?;
    let rep = Tensor::cat(&vec![x.detach(); config.samples_per_point], 0)?;
    let traj = sample_backward(model, &rep, config.max_moves, rng)?;
    elbo_on(model, &traj, config)
}

/// `−ELBO` (or `−IW-ELBO`) on given backward trajectories: `K n` trajectories stored
/// copy-major (trajectory `c · n + j` is the `c`-th one of point `j`), as
/// [`elbo`] draws them. The gradient is that of [`elbo_surrogate`] (or
/// [`iw_elbo_surrogate`]) with the configured backward gradient and baseline.
///
/// Terms: `elbo` (`mean(log P_F − log P_B)`), `iw_elbo` (`mean_j log (1/K) Σ_k
/// e^{l_kj}`, the importance-sampling log-likelihood of spec section 6; for the flow
/// model both equal `mean log t_ε(x) − log Z_init` with the smoothed stop of
/// [`ElboConfig::stop_epsilon`], which is `log t(x)` to within `ε` where `t ≫ ε`). Counts: `points`,
/// `samples_per_point`, `truncated`.
pub fn elbo_on<M: EgfModel + ?Sized>(model: &M, traj: &Trajectories, config: &ElboConfig) -> Result<LossValue> {
    config.validate()?;
    check_trajectories(model, traj)?;
    let k = config.samples_per_point;
    let total = traj.len();
    if (total / k) * k != total {
        return Err(LossError::input("trajectories", format!("{total} trajectories are not K = {k} per point")));
    }
    let n = total / k;
    let lp = trajectory_log_probs_with(model, traj, Some(config.stop_epsilon))?;
    let log_pf = lp.log_pf.reshape((k, n))?;
    let log_pb = lp.log_pb.reshape((k, n))?;
    let standard = elbo_surrogate(&log_pf, &log_pb, config.backward_gradient, config.baseline)?;
    let weighted = iw_elbo_surrogate(&log_pf, &log_pb, config.backward_gradient, config.baseline)?;
    let loss = match config.estimator {
        ElboEstimator::Standard => standard.loss,
        ElboEstimator::ImportanceWeighted => weighted.loss,
    };
    let mean_moves = (traj.states.dim(0)? - total) as f64 / total as f64;
    Ok(LossValue::new(loss)
        .with_term("elbo", &standard.value.neg()?)
        .with_term("iw_elbo", &weighted.value.neg()?)
        .with_term("mean_moves", &host_scalar(mean_moves, model.dtype(), model.device())?)
        .with_count("points", n)
        .with_count("samples_per_point", k)
        .with_count("truncated", traj.truncated_count()))
}

/// Settings of [`alpha_kl`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlphaKlConfig {
    /// `α ∈ [0, 1]`, the weight of the reverse KL (default 0.5).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The reverse side.
    #[serde(default)]
    pub reverse: ReverseKlConfig,
    /// The forward side (the ELBO on target samples).
    #[serde(default)]
    pub forward: ElboConfig,
}

fn default_alpha() -> f64 {
    0.5
}

impl Default for AlphaKlConfig {
    fn default() -> Self {
        Self { alpha: default_alpha(), reverse: ReverseKlConfig::default(), forward: ElboConfig::default() }
    }
}

/// The α-mixture of spec section 6: `α · KL(P_F ‖ P_B R/Z) + (1 − α) · KL(P_B R/Z ‖ P_F)`,
/// as `α ·` [`reverse_kl`] on `n_reverse` on-policy trajectories `+ (1 − α) ·` [`elbo`]
/// on the target samples `target` (each side's loss value is its objective up to an
/// additive constant: `−log Z_R` for the reverse side, the target's
/// `E[log R/Z_R]` for the forward side). A side with weight 0 is not computed (then
/// `target` may be empty for `α = 1` and `n_reverse` 0 for `α = 0`). Terms are those
/// of both sides, prefixed `reverse/` and `forward/`.
pub fn alpha_kl<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    reward: &dyn RewardFn,
    target: &Tensor,
    n_reverse: usize,
    config: &AlphaKlConfig,
    rng: &mut R,
) -> Result<LossValue> {
    let alpha = config.alpha;
    check_finite("alpha", alpha)?;
    if !(0.0..=1.0).contains(&alpha) {
        return Err(LossError::config("alpha", format!("{alpha} is not in [0, 1]")));
    }
    let mut sides = Vec::with_capacity(2);
    if alpha > 0.0 {
        sides.push(("reverse", alpha, reverse_kl(model, reward, n_reverse, &config.reverse, rng)?));
    }
    if alpha < 1.0 {
        sides.push(("forward", 1.0 - alpha, elbo(model, target, &config.forward, rng)?));
    }
    let mut loss: Option<Tensor> = None;
    let mut out = LossValue::new(Tensor::zeros((), model.dtype(), model.device())?);
    for (name, weight, side) in sides {
        let weighted = (&side.loss * weight)?;
        loss = Some(match loss {
            None => weighted,
            Some(l) => (l + weighted)?,
        });
        out.terms.extend(side.terms.into_iter().map(|(k, v)| (format!("{name}/{k}"), v)));
        out.counts.extend(side.counts.into_iter().map(|(k, v)| (format!("{name}/{k}"), v)));
    }
    out.loss = loss.ok_or_else(|| LossError::config("alpha", "neither side has a positive weight"))?;
    Ok(out)
}
