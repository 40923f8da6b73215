//! Loading and splitting the data of an imitation task, deterministic batches and
//! per-step random generators.

use std::collections::HashMap;

use egf_data::{load_earth, load_points_csv, PointFormat, PointSet, SplitFractions, Target};
use egf_manifold::Manifold;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{DataSource, ImitationConfig};
use crate::{Result, TrainError};

/// The three parts of an imitation data set, and the toy target when the data are its samples.
#[derive(Debug)]
pub struct ImitationData {
    /// Training points.
    pub train: PointSet,
    /// Validation points (checkpoint selection).
    pub validation: PointSet,
    /// Test points (final report).
    pub test: PointSet,
    /// The toy target the points were drawn from, if any.
    pub target: Option<Box<dyn Target>>,
}

/// What a random stream is used for; each purpose has its own generator family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Samples of a toy target (drawn once).
    TargetSamples,
    /// The randomness of one optimizer step (`ν_train`, uniform points).
    Step,
    /// Shuffling the training set, one permutation per epoch.
    Epoch,
    /// Validation and test evaluation.
    Eval,
    /// The extra batches of the gradient-variance measurement (`eval.gradient_probes`).
    GradientProbe,
}

impl Stream {
    fn key(self) -> u64 {
        match self {
            Stream::TargetSamples => 0x5441_5247_4554_0001,
            Stream::Step => 0x5354_4550_0000_0002,
            Stream::Epoch => 0x4550_4f43_4800_0003,
            Stream::Eval => 0x4556_414c_0000_0004,
            Stream::GradientProbe => 0x4752_4144_0000_0005,
        }
    }
}

/// The generator of `(seed, purpose, index)`: `ChaCha8Rng::seed_from_u64(seed ^ key(purpose))`
/// on stream `index`. Every step draws from its own generator, so a run resumed at
/// step `k` draws exactly what an uninterrupted run draws, with no generator state to save.
pub fn derived_rng(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream.key());
    rng.set_stream(index);
    rng
}

/// Loads the points of `config.data` (a toy target is sampled with `seed`), checks that
/// they live on `manifold`, and splits them with `config.split` (seed `split.seed` or `seed`).
pub fn load_imitation_data(config: &ImitationConfig, manifold: Manifold, seed: u64) -> Result<ImitationData> {
    let (points, target) = match &config.data {
        DataSource::Earth { dataset, data_dir } => {
            let dir = match data_dir {
                Some(d) => d.clone(),
                None => egf_data::default_data_dir()?,
            };
            (load_earth(&dir, *dataset)?, None)
        }
        DataSource::Target { target, samples } => {
            let t = target.build()?;
            let mut rng = derived_rng(seed, Stream::TargetSamples, 0);
            let coords = t.sample_f64(*samples, &mut rng);
            (PointSet::new(t.manifold(), coords)?, Some(t))
        }
        DataSource::Csv { path, format } => {
            let format = format.unwrap_or_else(|| PointFormat::default_for(manifold));
            (load_points_csv(path, manifold, format)?, None)
        }
    };
    if points.manifold() != manifold {
        return Err(TrainError::config(
            "model.manifold",
            format!("the model lives on {manifold} but the data on {}", points.manifold()),
        ));
    }
    let s = &config.split;
    let fractions = SplitFractions { train: s.train, validation: s.validation, test: s.test };
    let split = egf_data::split(points.len(), fractions, s.seed.unwrap_or(seed))?;
    let parts = split.apply(&points)?;
    if parts.train.is_empty() || parts.validation.is_empty() {
        return Err(TrainError::config(
            "task.data",
            format!(
                "{} points give {} training and {} validation points; both must be non-empty",
                points.len(),
                parts.train.len(),
                parts.validation.len()
            ),
        ));
    }
    Ok(ImitationData { train: parts.train, validation: parts.validation, test: parts.test, target })
}

/// Deterministic mini-batches of training indices: the training set is shuffled once
/// per epoch (permutation seeded by `(seed, epoch)`), and batch `k` (0-based) takes
/// positions `k·B … k·B + B − 1` of the concatenated epochs. Batch `k` therefore depends
/// only on `(seed, n, B, k)`.
#[derive(Debug)]
pub struct Batcher {
    n: usize,
    batch: usize,
    seed: u64,
    cache: HashMap<u64, Vec<usize>>,
}

impl Batcher {
    /// Batches of `batch` indices out of `0..n` (`n, batch > 0`).
    pub fn new(n: usize, batch: usize, seed: u64) -> Result<Self> {
        if n == 0 || batch == 0 {
            return Err(TrainError::config("task.batch.data", "needs a non-empty training set and batch size > 0"));
        }
        Ok(Self { n, batch, seed, cache: HashMap::new() })
    }

    fn permutation(&mut self, epoch: u64) -> &Vec<usize> {
        let (n, seed) = (self.n, self.seed);
        self.cache.entry(epoch).or_insert_with(|| {
            use rand::RngCore;
            let epoch_seed = derived_rng(seed, Stream::Epoch, epoch).next_u64();
            egf_data::permutation(n, epoch_seed)
        })
    }

    /// The indices of batch `k` (0-based).
    pub fn indices(&mut self, k: usize) -> Vec<u32> {
        let first = k as u64 * self.batch as u64;
        let n = self.n as u64;
        // keep only the epochs this batch touches
        let (lo, hi) = (first / n, (first + self.batch as u64 - 1) / n);
        self.cache.retain(|e, _| *e >= lo && *e <= hi);
        (0..self.batch as u64)
            .map(|j| {
                let p = first + j;
                self.permutation(p / n)[(p % n) as usize] as u32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn batches_cover_each_epoch_once_and_are_reproducible() {
        let mut b = Batcher::new(10, 4, 7).unwrap();
        let first: Vec<u32> = (0..5).flat_map(|k| b.indices(k)).collect();
        let mut epoch0 = first[..10].to_vec();
        epoch0.sort_unstable();
        assert_eq!(epoch0, (0..10).collect::<Vec<u32>>());
        let mut fresh = Batcher::new(10, 4, 7).unwrap();
        assert_eq!(fresh.indices(3), first[12..16].to_vec());
        assert_ne!(Batcher::new(10, 4, 8).unwrap().indices(0), first[..4].to_vec());
        let mut big = Batcher::new(3, 7, 1).unwrap();
        assert_eq!(big.indices(2).len(), 7);
    }

    #[test]
    fn derived_rngs_differ_by_stream_and_index() {
        let a: u64 = derived_rng(1, Stream::Step, 5).random();
        let b: u64 = derived_rng(1, Stream::Step, 5).random();
        let c: u64 = derived_rng(1, Stream::Step, 6).random();
        let d: u64 = derived_rng(1, Stream::Eval, 5).random();
        assert_eq!(a, b);
        assert!(a != c && a != d);
    }
}
