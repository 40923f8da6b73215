//! Trajectories of the chain, their log-probabilities under the forward and
//! backward policies (spec section 6), and the importance-sampling estimate of
//! the log-density of what the sampler produces.

use candle_core::{DType, Tensor};

use crate::model::EgfModel;
use crate::numerics::logsumexp;
use crate::{FlowError, Result};

/// How a batch of trajectories was drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// By the forward sampler from uniform starts.
    Forward,
    /// By the backward kernel from given end points.
    Backward,
}

/// A batch of `B` trajectories `s_0 → s_1 = Φ_{i_1}(s_0) → … → s_L = x`.
///
/// Trajectory `b` has its states at rows `offsets[b] .. offsets[b + 1]` of
/// `states` (in forward order, `s_0` first, the end point `x` last) and its
/// `L_b = offsets[b+1] − offsets[b] − 1` moves at `moves[offsets[b] − b ..]`
/// (0-based map indices, `i_1` first).
#[derive(Clone, Debug)]
pub struct Trajectories {
    /// All states, `(Σ_b (L_b + 1), ambient_dim)`.
    pub states: Tensor,
    /// Row offsets, length `B + 1`.
    pub offsets: Vec<usize>,
    /// Map index of every move, trajectory by trajectory.
    pub moves: Vec<u32>,
    /// Whether the terminal action was forced by the step cap: the stop of a
    /// forward trajectory, or the start of a backward one.
    pub truncated: Vec<bool>,
    /// How the batch was drawn.
    pub direction: Direction,
}

impl Trajectories {
    /// Number of trajectories `B`.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of moves `L_b` of trajectory `b`.
    pub fn moves_of(&self, b: usize) -> usize {
        self.offsets[b + 1] - self.offsets[b] - 1
    }

    /// The end points `x_b`, `(B, ambient_dim)`.
    pub fn end_points(&self) -> Result<Tensor> {
        let idx: Vec<u32> = self.offsets[1..].iter().map(|o| (*o - 1) as u32).collect();
        Ok(self.states.index_select(&Tensor::new(idx, self.states.device())?, 0)?)
    }

    /// Number of truncated trajectories.
    pub fn truncated_count(&self) -> usize {
        self.truncated.iter().filter(|t| **t).count()
    }
}

/// `log P_F(τ, x)` and `log P_B(τ | x)` of each trajectory, `(B,)` each, differentiable.
#[derive(Clone, Debug)]
pub struct TrajectoryLogProbs {
    /// `log P_F(τ, x) = log q_init(s_0) + Σ_k log π_F(i_k | s_{k−1}) + log π_F(stop | x) +
    /// Σ_k log |det D(Φ_{i_k}⁻¹)(s_k)|`, a density in `x` with respect to `λ`. For a
    /// forward trajectory truncated at the cap the forced stop contributes 0 (it was
    /// drawn with probability 1), so that `log_pf` is the log-density of the law the
    /// capped sampler really drew the trajectory from.
    pub log_pf: Tensor,
    /// `log P_B(τ | x) = Σ_k log π_B(i_k | s_k) + log π_B(start | s_0)`; for a
    /// backward trajectory truncated at the cap the forced start contributes 0
    /// (it was drawn with probability 1), so that the pair is a valid importance weight.
    pub log_pb: Tensor,
}

/// Computes [`TrajectoryLogProbs`] with one policy evaluation over all states (spec section 6).
pub fn trajectory_log_probs<M: EgfModel + ?Sized>(model: &M, traj: &Trajectories) -> Result<TrajectoryLogProbs> {
    log_probs_of(model, traj, PolicyEvaluation::Tracked)
}

/// [`trajectory_log_probs`] with the stop probability of the last state taken from
/// [`EgfModel::policy_log_probs_smoothed_stop`] when `stop_epsilon` is given: for the
/// flow model `log P_F(τ, x)` then holds `log t_ε(x)` in place of `log t⁺(x)`, a
/// training surrogate that is finite where `t(x) ≤ 0` (spec section 5).
pub fn trajectory_log_probs_with<M: EgfModel + ?Sized>(
    model: &M,
    traj: &Trajectories,
    stop_epsilon: Option<f64>,
) -> Result<TrajectoryLogProbs> {
    match stop_epsilon {
        Some(epsilon) => log_probs_of(model, traj, PolicyEvaluation::SmoothedStop(epsilon)),
        None => log_probs_of(model, traj, PolicyEvaluation::Tracked),
    }
}

/// [`trajectory_log_probs`] without gradients, for evaluation: the policy is
/// evaluated on detached weights, `chunk` states at a time, so memory is bounded
/// by the chunk whatever the trajectories' length (a tracked evaluation keeps
/// every network activation of every state alive until the result is dropped:
/// gigabytes for long chains).
pub fn trajectory_log_probs_detached<M: EgfModel + ?Sized>(
    model: &M,
    traj: &Trajectories,
    chunk: usize,
) -> Result<TrajectoryLogProbs> {
    if chunk == 0 {
        return Err(FlowError::InvalidInput("trajectory_log_probs_detached: chunk must be ≥ 1".into()));
    }
    log_probs_of(model, traj, PolicyEvaluation::Detached { chunk })
}

/// How [`log_probs_of`] evaluates the policy over the states.
#[derive(Clone, Copy, Debug)]
enum PolicyEvaluation {
    /// [`EgfModel::policy_log_probs`], differentiable.
    Tracked,
    /// [`EgfModel::policy_log_probs_smoothed_stop`] with this `ε`, differentiable.
    SmoothedStop(f64),
    /// [`EgfModel::policy_log_probs_detached`], this many states at a time.
    Detached { chunk: usize },
}

fn policy_tables<M: EgfModel + ?Sized>(
    model: &M,
    states: &Tensor,
    how: PolicyEvaluation,
) -> Result<crate::model::PolicyLogProbs> {
    match how {
        PolicyEvaluation::Tracked => model.policy_log_probs(states),
        PolicyEvaluation::SmoothedStop(epsilon) => model.policy_log_probs_smoothed_stop(states, epsilon),
        PolicyEvaluation::Detached { chunk } => {
            let n = states.dim(0)?;
            if n <= chunk {
                return model.policy_log_probs_detached(states);
            }
            let (mut forward, mut backward) = (Vec::new(), Vec::new());
            for start in (0..n).step_by(chunk) {
                let part = model.policy_log_probs_detached(&states.narrow(0, start, chunk.min(n - start))?)?;
                forward.push(part.forward);
                backward.push(part.backward);
            }
            Ok(crate::model::PolicyLogProbs {
                forward: Tensor::cat(&forward, 0)?,
                backward: Tensor::cat(&backward, 0)?,
            })
        }
    }
}

fn log_probs_of<M: EgfModel + ?Sized>(
    model: &M,
    traj: &Trajectories,
    how: PolicyEvaluation,
) -> Result<TrajectoryLogProbs> {
    let b = traj.len();
    if b == 0 {
        return Err(FlowError::InvalidInput("empty batch of trajectories".into()));
    }
    let device = traj.states.device();
    let family = model.family();
    let width = family.len() + 1;
    let lp = policy_tables(model, &traj.states, how)?;
    let fwd = lp.forward.flatten_all()?;
    let bwd = lp.backward.flatten_all()?;
    // flat indices into the (N, 1+p) tables and the trajectory of each term
    let (mut f_idx, mut f_traj, mut b_idx, mut b_traj) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut move_rows, mut move_choice, mut move_traj) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..b {
        let (start, end) = (traj.offsets[t], traj.offsets[t + 1]);
        let first_move = start - t;
        for k in 1..(end - start) {
            let i = traj.moves[first_move + k - 1] as usize;
            let (prev, cur) = (start + k - 1, start + k);
            f_idx.push((prev * width + 1 + i) as u32);
            f_traj.push(t as u32);
            b_idx.push((cur * width + 1 + i) as u32);
            b_traj.push(t as u32);
            move_rows.push(cur as u32);
            move_choice.push(i as u32);
            move_traj.push(t as u32);
        }
        if !(traj.truncated[t] && traj.direction == Direction::Forward) {
            f_idx.push(((end - 1) * width) as u32);
            f_traj.push(t as u32);
        }
        if !(traj.truncated[t] && traj.direction == Direction::Backward) {
            b_idx.push((start * width) as u32);
            b_traj.push(t as u32);
        }
    }
    let gather_sum = |table: &Tensor, idx: Vec<u32>, owner: Vec<u32>| -> Result<Tensor> {
        let zeros = Tensor::zeros(b, table.dtype(), device)?;
        if idx.is_empty() {
            return Ok(zeros);
        }
        let vals = table.index_select(&Tensor::new(idx, device)?, 0)?;
        Ok(zeros.index_add(&Tensor::new(owner, device)?, &vals, 0)?)
    };
    let mut log_pf = (gather_sum(&fwd, f_idx, f_traj)? - model.manifold().log_volume())?;
    let log_pb = gather_sum(&bwd, b_idx, b_traj)?;
    if !family.is_volume_preserving() && !move_rows.is_empty() {
        let states = traj.states.index_select(&Tensor::new(move_rows, device)?, 0)?;
        let (_, ld) = family.invert_chosen(&states, &Tensor::new(move_choice, device)?)?;
        let ld = if matches!(how, PolicyEvaluation::Detached { .. }) { ld.detach() } else { ld };
        let zeros = Tensor::zeros(b, ld.dtype(), device)?;
        log_pf = (log_pf + zeros.index_add(&Tensor::new(move_traj, device)?, &ld, 0)?)?;
    }
    Ok(TrajectoryLogProbs { log_pf, log_pb })
}

/// Network rows per detached policy evaluation in [`importance_log_density`]: the
/// policy at a state evaluates the network at the state and at its `p` preimages, so a
/// chunk holds `ROW_BUDGET / (1 + p)` states (16 384 for the six rotations of the earth
/// configs) and the activations stay the same size whatever the family.
const ROW_BUDGET: usize = 16_384 * 7;

/// Result of [`importance_log_density`].
#[derive(Clone, Debug)]
pub struct LikelihoodEstimate {
    /// `log p̂(x)` per point, `(n,)`, no gradients.
    pub log_density: Tensor,
    /// Backward trajectories per point `K`.
    pub samples_per_point: usize,
    /// How many of the `K n` backward trajectories were truncated at the cap.
    pub truncated: usize,
    /// Mean number of moves of the backward trajectories.
    pub mean_moves: f64,
}

/// The importance-sampling estimate of the log-density of the chain's output
/// (spec section 6): `log p̂(x) = log (1/K) Σ_k P_F(τ_k, x) / P_B(τ_k | x)` with
/// `τ_k` drawn by the backward kernel, at most `max_moves` moves each (a
/// backward trajectory reaching the cap is forced to start, so the estimate is
/// that of the chain truncated at `max_moves`). Points are processed in chunks of
/// `chunk`, and the states of their trajectories evaluated on detached weights
/// in chunks of `114 688 / (1 + p)` states, so memory stays bounded whatever the length
/// of the trajectories and the size of the family. A lower bound in expectation; for the flow
/// model with `t ≥ 0` it equals `log t(x) − log Z_init` for every `τ`.
pub fn importance_log_density<M: EgfModel + ?Sized, R: rand::Rng + ?Sized>(
    model: &M,
    x: &Tensor,
    samples_per_point: usize,
    max_moves: usize,
    chunk: usize,
    rng: &mut R,
) -> Result<LikelihoodEstimate> {
    let k = samples_per_point;
    if k == 0 {
        return Err(FlowError::InvalidInput("importance sampling needs K ≥ 1 backward trajectories".into()));
    }
    let n = x.dim(0)?;
    let mut parts = Vec::new();
    let (mut truncated, mut moves_total) = (0usize, 0usize);
    for start in (0..n).step_by(chunk.max(1)) {
        let len = chunk.max(1).min(n - start);
        let xs = x.narrow(0, start, len)?;
        // K copies, copy-major: row c·len + j is point j
        let rep = Tensor::cat(&vec![xs.clone(); k], 0)?;
        let traj = crate::sampler::sample_backward(model, &rep, max_moves, rng)?;
        truncated += traj.truncated_count();
        moves_total += traj.moves.len();
        let states = (ROW_BUDGET / (1 + model.family().len())).max(1);
        let lp = trajectory_log_probs_detached(model, &traj, states)?;
        let w = (lp.log_pf - lp.log_pb)?.reshape((k, len))?;
        parts.push((logsumexp(&w, 0)? - (k as f64).ln())?);
    }
    let log_density = Tensor::cat(&parts, 0)?;
    Ok(LikelihoodEstimate {
        log_density,
        samples_per_point: k,
        truncated,
        mean_moves: moves_total as f64 / (k * n).max(1) as f64,
    })
}

/// Copies a 1-d tensor to the host as `f64`.
pub(crate) fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}
