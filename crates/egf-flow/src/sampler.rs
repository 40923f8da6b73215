//! The batched forward sampler and the backward kernel sampler (spec section 4).
//!
//! States stay on the model's device; only the `(n, 1 + p)` action
//! probabilities of the still-running chains come to the host each step, where
//! the seeded generator draws the actions (so a seed gives the same samples on
//! every device). Finished chains leave the batch, so each step evaluates only
//! the chains still running.

use candle_core::Tensor;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::model::EgfModel;
use crate::trajectory::{Direction, Trajectories};
use crate::{FlowError, Result};

/// Options of the forward sampler.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Cap `T_max` on the number of moves; a chain still moving then is stopped and counted as truncated.
    pub max_moves: usize,
    /// Probability `w` of outputting a uniform point instead of running the chain
    /// (the defensive mixture of spec section 7); 0 for the bare chain.
    pub defensive_weight: f64,
    /// Whether to return every chain's trajectory.
    pub record_trajectories: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self { max_moves: 1000, defensive_weight: 0.0, record_trajectories: false }
    }
}

/// What the forward sampler returns.
#[derive(Clone, Debug)]
pub struct SampleOutput {
    /// The output points, `(n, ambient_dim)`.
    pub samples: Tensor,
    /// Moves made by each chain.
    pub moves: Vec<u32>,
    /// Whether each chain hit the cap.
    pub truncated: Vec<bool>,
    /// Whether each output is a defensive uniform draw.
    pub uniform_draw: Vec<bool>,
    /// The trajectories, if requested (defensive draws appear as zero-move trajectories).
    pub trajectories: Option<Trajectories>,
}

impl SampleOutput {
    /// Number of chains that hit the cap.
    pub fn truncated_count(&self) -> usize {
        self.truncated.iter().filter(|t| **t).count()
    }
    /// Mean number of moves over all chains.
    pub fn mean_moves(&self) -> f64 {
        self.moves.iter().map(|m| *m as f64).sum::<f64>() / self.moves.len().max(1) as f64
    }
    /// Largest number of moves.
    pub fn max_moves(&self) -> u32 {
        self.moves.iter().copied().max().unwrap_or(0)
    }
}

/// Draws an index from the categorical distribution with the given weights
/// (they sum to 1 up to round-off; the last positive entry absorbs the rest).
fn draw<R: Rng + ?Sized>(probs: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p > 0.0 {
            acc += p;
            last = i;
            if u < acc {
                return i;
            }
        }
    }
    last
}

fn host_probs(log_probs: &Tensor, what: &str) -> Result<(Vec<f64>, usize)> {
    let (_, w) = log_probs.dims2()?;
    let p = crate::trajectory::to_host(&log_probs.exp()?)?;
    if let Some(bad) = p.iter().position(|v| !v.is_finite()) {
        return Err(FlowError::InvalidInput(format!(
            "{what} probabilities are not finite at chain {} (the model produced NaN or infinity)",
            bad / w
        )));
    }
    Ok((p, w))
}

/// The chains that move on one step of a sampler, in batch order.
struct Movers {
    /// Row of each mover in the step's batch of running chains.
    rows: Vec<u32>,
    /// The map index `i` of its move (action `i + 1`; action 0 ends the chain).
    maps: Vec<u32>,
    /// Its chain id.
    chains: Vec<usize>,
}

impl Movers {
    /// The movers' states (rows of `states`) and their map indices, on `states`' device.
    fn select(&self, states: &Tensor) -> Result<(Tensor, Tensor)> {
        let device = states.device();
        let moving = states.index_select(&Tensor::new(self.rows.as_slice(), device)?, 0)?;
        Ok((moving, Tensor::new(self.maps.as_slice(), device)?))
    }
}

/// Draws the action of every running chain (`active[pos]` is the chain at batch row `pos`)
/// from its row of `probs` (`w` columns: 0 ends the chain, `1 + i` moves by map `i`),
/// except where `halts(chain)` says it ends without a draw; appends each move to
/// `moves_of[chain]`.
fn draw_movers<R: Rng + ?Sized>(
    active: &[usize],
    probs: &[f64],
    w: usize,
    mut halts: impl FnMut(usize) -> bool,
    moves_of: &mut [Vec<u32>],
    rng: &mut R,
) -> Movers {
    let mut movers = Movers { rows: Vec::new(), maps: Vec::new(), chains: Vec::new() };
    for (pos, &c) in active.iter().enumerate() {
        if halts(c) {
            continue;
        }
        let a = draw(&probs[pos * w..(pos + 1) * w], rng);
        if a > 0 {
            movers.rows.push(pos as u32);
            movers.maps.push((a - 1) as u32);
            moves_of[c].push((a - 1) as u32);
            movers.chains.push(c);
        }
    }
    movers
}

/// Per-step record used to assemble trajectories and outputs with one gather.
struct StepLog {
    rows: Vec<Tensor>,
    row_offset: Vec<usize>,
}

impl StepLog {
    fn new() -> Self {
        Self { rows: Vec::new(), row_offset: vec![0] }
    }
    fn push(&mut self, states: &Tensor) -> Result<usize> {
        let base = *self.row_offset.last().expect("non-empty");
        self.row_offset.push(base + states.dim(0)?);
        self.rows.push(states.clone());
        Ok(base)
    }
    fn gather(&self, idx: Vec<u32>) -> Result<Tensor> {
        let all = Tensor::cat(&self.rows, 0)?;
        let device = all.device().clone();
        Ok(all.index_select(&Tensor::new(idx, &device)?, 0)?)
    }
}

/// Runs `n` chains of the forward policy from uniform starts (spec section 4):
/// at state `s`, stop with probability `π_F(stop | s)` (for the flow model
/// `1 − min(1, g/F)`) and output `s`, else move by `Φ_i` with probability
/// `π_F(move i | s)`; stop after `max_moves` moves at the latest.
pub fn sample<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    n: usize,
    config: &SamplerConfig,
    rng: &mut R,
) -> Result<SampleOutput> {
    if !(0.0..=1.0).contains(&config.defensive_weight) {
        return Err(FlowError::InvalidInput(format!("defensive weight {} is not in [0, 1]", config.defensive_weight)));
    }
    let manifold = model.manifold();
    let start = manifold.sample_uniform(n, rng, model.dtype(), model.device())?;
    let uniform_draw: Vec<bool> =
        (0..n).map(|_| config.defensive_weight > 0.0 && rng.random::<f64>() < config.defensive_weight).collect();
    let mut log = StepLog::new();
    // history[c] = global rows of chain c's states
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut moves_of: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut truncated = vec![false; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut cur = start;
    let mut step = 0;
    while !active.is_empty() {
        let base = log.push(&cur)?;
        for (pos, &c) in active.iter().enumerate() {
            history[c].push((base + pos) as u32);
        }
        let (probs, w) = if step < config.max_moves && active.iter().any(|c| !uniform_draw[*c]) {
            host_probs(&model.policy_log_probs_detached(&cur)?.forward, "forward policy")?
        } else {
            (vec![], 0)
        };
        let halts = |c: usize| {
            if step == config.max_moves && !uniform_draw[c] {
                truncated[c] = true;
            }
            uniform_draw[c] || step == config.max_moves
        };
        let movers = draw_movers(&active, &probs, w, halts, &mut moves_of, rng);
        if movers.chains.is_empty() {
            break;
        }
        let (moving, maps) = movers.select(&cur)?;
        // detached: a learnable map would otherwise chain every step into one graph
        cur = model.family().apply_chosen(&moving, &maps)?.detach();
        active = movers.chains;
        step += 1;
    }
    let samples = log.gather(history.iter().map(|h| *h.last().expect("every chain has a start")).collect())?;
    let moves: Vec<u32> = moves_of.iter().map(|m| m.len() as u32).collect();
    let trajectories = if config.record_trajectories {
        let mut offsets = vec![0usize];
        for h in &history {
            offsets.push(offsets.last().expect("non-empty") + h.len());
        }
        Some(Trajectories {
            states: log.gather(history.concat())?,
            offsets,
            moves: moves_of.concat(),
            truncated: truncated.clone(),
            direction: Direction::Forward,
        })
    } else {
        None
    };
    Ok(SampleOutput { samples, moves, truncated, uniform_draw, trajectories })
}

/// Draws one backward trajectory from each end point `x` (`(n, ambient_dim)`)
/// with the backward policy: at `y`, "came from the start" with probability
/// `π_B(start | y)` (flow model: `f_init/F(y)`), else "came by move `i` from
/// `Φ_i⁻¹ y`" with probability `π_B(unmove i | y)`. After `max_moves` unmoves
/// the start is forced (and the trajectory marked truncated).
pub fn sample_backward<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    x: &Tensor,
    max_moves: usize,
    rng: &mut R,
) -> Result<Trajectories> {
    model.manifold().check_shape(x)?;
    let n = x.dim(0)?;
    let mut log = StepLog::new();
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut moves_of: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut truncated = vec![false; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut cur = x.clone();
    let mut step = 0;
    while !active.is_empty() {
        let base = log.push(&cur)?;
        for (pos, &c) in active.iter().enumerate() {
            history[c].push((base + pos) as u32);
        }
        if step == max_moves {
            active.iter().for_each(|c| truncated[*c] = true);
            break;
        }
        let (probs, w) = host_probs(&model.policy_log_probs_detached(&cur)?.backward, "backward policy")?;
        let movers = draw_movers(&active, &probs, w, |_| false, &mut moves_of, rng);
        if movers.chains.is_empty() {
            break;
        }
        let (moving, maps) = movers.select(&cur)?;
        cur = model.family().invert_chosen(&moving, &maps)?.0.detach();
        active = movers.chains;
        step += 1;
    }
    // reverse into forward order: s_0 first, x last; moves i_1 first
    let mut offsets = vec![0usize];
    let mut rows = Vec::new();
    let mut moves = Vec::new();
    for c in 0..n {
        rows.extend(history[c].iter().rev());
        moves.extend(moves_of[c].iter().rev());
        offsets.push(rows.len());
    }
    Ok(Trajectories { states: log.gather(rows)?, offsets, moves, truncated, direction: Direction::Backward })
}
