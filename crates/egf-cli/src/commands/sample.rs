//! `egf sample`: run the chain and write its outputs.

use anyhow::{Context, Result};
use candle_core::Tensor;
use egf_data::write_points_csv;
use egf_flow::{EgfModel, SampleOutput, SamplerConfig, SavedModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::check_out_dir;
use crate::args::SampleArgs;
use crate::model_io;
use crate::outln;
use crate::points::{format_for, point_set_from_tensor};

/// Totals over the batches of a sampling run.
#[derive(Debug, Default)]
pub struct SampleStats {
    pub truncated: usize,
    pub total_moves: u64,
    pub max_moves: u32,
    pub uniform_draws: usize,
    pub chains: usize,
}

impl SampleStats {
    fn add(&mut self, out: &SampleOutput) {
        self.truncated += out.truncated_count();
        self.total_moves += out.moves.iter().map(|m| *m as u64).sum::<u64>();
        self.max_moves = self.max_moves.max(out.max_moves());
        self.uniform_draws += out.uniform_draw.iter().filter(|u| **u).count();
        self.chains += out.moves.len();
    }

    pub fn mean_moves(&self) -> f64 {
        self.total_moves as f64 / self.chains.max(1) as f64
    }
}

/// Draws `n` samples in batches of `batch` chains; returns the stacked samples.
pub fn sample_batched<M: EgfModel + ?Sized>(
    model: &M,
    n: usize,
    batch: usize,
    config: &SamplerConfig,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, SampleStats)> {
    let mut parts = Vec::new();
    let mut stats = SampleStats::default();
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let out = egf_flow::sample(model, k, config, rng)?;
        stats.add(&out);
        parts.push(out.samples);
        done += k;
    }
    Ok((Tensor::cat(&parts, 0)?, stats))
}

pub fn run(args: SampleArgs) -> Result<()> {
    check_out_dir(&args.out)?;
    let loaded = model_io::load(&args.model)?;
    let manifold = match &loaded.model {
        SavedModel::Flow(m) => m.manifold(),
        SavedModel::Policy(m) => m.manifold(),
    };
    let format = format_for(manifold, args.format, "--format")?;
    let config = SamplerConfig {
        max_moves: args.max_moves,
        defensive_weight: args.defensive_weight,
        record_trajectories: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (samples, stats) = match &loaded.model {
        SavedModel::Flow(m) => sample_batched(m, args.n, args.batch, &config, &mut rng)?,
        SavedModel::Policy(m) => sample_batched(m, args.n, args.batch, &config, &mut rng)?,
    };
    let points = point_set_from_tensor(manifold, &samples)?;
    write_points_csv(&args.out, &points, format).with_context(|| format!("cannot write {}", args.out.display()))?;
    outln!("wrote {} samples on {manifold} to {} (format {})", points.len(), args.out.display(), format.name());
    outln!(
        "  truncated chains (hit --max-moves {}): {} of {} ({:.3}%)",
        args.max_moves,
        stats.truncated,
        stats.chains,
        100.0 * stats.truncated as f64 / stats.chains.max(1) as f64
    );
    outln!("  mean moves: {:.3} (largest {})", stats.mean_moves(), stats.max_moves);
    if args.defensive_weight > 0.0 {
        outln!("  defensive uniform draws (w = {}): {}", args.defensive_weight, stats.uniform_draws);
    }
    Ok(())
}
