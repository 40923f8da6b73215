//! criterion benchmarks of the hot paths (issue: performance), on the earth
//! configuration (S², 6 rotations by π/4, MLP 256 × 5). Run with
//! `cargo bench -p egf-benches` (CPU) or `EGF_BENCH_DEVICE=cuda cargo bench -p egf-benches --features cuda`.
//!
//! Each benchmark reports throughput in elements per second: data samples per
//! training step, points per star-inflow evaluation, chains per sampling run,
//! grid points per density map. With `EGF_BENCH_MEMORY=1` the peak resident
//! memory of a training step and of the grid evaluation is printed once before the timings.

use candle_core::{DType, Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use egf_benches::{bench_device, earth_model};
use egf_flow::{sample, FlowModel, SamplerConfig};
use egf_loss::{kl_weak_fm, sample_nu_train, KlWeakFmConfig, NuTrainConfig};
use egf_manifold::{Manifold, QuadratureGrid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// glibc returns every large tensor buffer to the OS with munmap and page-faults
// it back in on the next step (about a third of a training step's time on the
// reference machine); mimalloc keeps the pages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 512;

struct TrainStep {
    model: FlowModel,
    optimizer: AdamW,
    data: Tensor,
    rng: ChaCha8Rng,
}

impl TrainStep {
    fn new(device: &Device, batch: usize) -> Self {
        let model = earth_model(device);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let sphere = Manifold::sphere(2).unwrap();
        // a concentrated synthetic "data set": points perturbed around a few sites
        let sites = sphere.sample_uniform(16, &mut rng, DType::F32, device).unwrap();
        let idx: Vec<u32> = (0..batch as u32).map(|i| i % 16).collect();
        let data = sites.index_select(&Tensor::new(idx, device).unwrap(), 0).unwrap();
        let data = sphere.perturb(&data, 0.05, &mut rng).unwrap();
        let vars = model.network_vars().into_iter().map(|(_, v)| v).collect();
        let optimizer =
            AdamW::new(vars, ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..ParamsAdamW::default() }).unwrap();
        Self { model, optimizer, data, rng }
    }

    fn step(&mut self) {
        let batch = self.data.dim(0).unwrap();
        let nu = NuTrainConfig { uniform_share: 0.5, data_noise: 0.02, on_policy_share: 0.0 };
        let nu_points = sample_nu_train(&self.model, &self.data, batch, &nu, &mut self.rng).unwrap();
        let sphere = Manifold::sphere(2).unwrap();
        let device = self.data.device().clone();
        let uniform = sphere.sample_uniform(1, &mut self.rng, DType::F32, &device).unwrap();
        let loss = kl_weak_fm(&self.model, &self.data, &nu_points, &uniform, &KlWeakFmConfig::default()).unwrap();
        self.optimizer.backward_step(&loss.loss).unwrap();
    }
}

fn status_kib(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident memory above the level at the call while `f` runs, in bytes
/// (Linux: resets the high-water mark through `/proc/self/clear_refs`); `None` elsewhere.
fn peak_bytes(f: impl FnOnce()) -> Option<usize> {
    let base = status_kib("VmRSS:")?;
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    f();
    Some(status_kib("VmHWM:")?.saturating_sub(base) * 1024)
}

fn report_memory(device: &Device) {
    let mut step = TrainStep::new(device, BATCH);
    step.step();
    let train = peak_bytes(|| step.step());
    let model = earth_model(device);
    let grid = QuadratureGrid::sphere_equiangular(720, 1440).unwrap();
    let map = peak_bytes(|| {
        density_map(&model, &grid, 16_384);
    });
    let mib = |b: Option<usize>| b.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0)).unwrap_or_else(|| "n/a".into());
    eprintln!(
        "peak resident memory: training step (batch {BATCH} + {BATCH}) {}; density map 720×1440 in chunks of 16384 points {}",
        mib(train),
        mib(map)
    );
}

fn density_map(model: &FlowModel, grid: &QuadratureGrid, chunk: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(grid.len());
    for (start, len) in grid.chunks(chunk) {
        let (x, _) = grid.chunk_tensors(start, len, DType::F32, model_device(model)).unwrap();
        let t = model.evaluate_detached(&x).unwrap().t;
        out.extend(t.to_vec1::<f32>().unwrap());
    }
    out
}

fn model_device(model: &FlowModel) -> &Device {
    egf_flow::EgfModel::device(model)
}

fn benches(c: &mut Criterion) {
    let device = bench_device();
    // the memory figures evaluate a whole 720 × 1440 map once: opt in
    if std::env::var_os("EGF_BENCH_MEMORY").is_some() {
        report_memory(&device);
    }

    let mut group = c.benchmark_group("training_step");
    group.sample_size(20);
    // EGF_BENCH_BATCHES=512,4096,32768 adds larger batches (for the GPU)
    let batches: Vec<usize> = std::env::var("EGF_BENCH_BATCHES")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![BATCH]);
    for batch in batches {
        let mut step = TrainStep::new(&device, batch);
        step.step();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| b.iter(|| step.step()));
    }
    group.finish();

    let model = earth_model(&device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 100_000;
    let points = Manifold::sphere(2).unwrap().sample_uniform(n, &mut rng, DType::F32, &device).unwrap();
    let mut group = c.benchmark_group("star_inflow");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("evaluate_1e5", |b| {
        b.iter(|| {
            let terms = model.evaluate_detached(&points).unwrap();
            terms.t.detach().sum_all().unwrap().to_scalar::<f32>().unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("sampling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    let config = SamplerConfig { max_moves: 100, defensive_weight: 0.0, record_trajectories: false };
    group.bench_function("chains_1e5", |b| b.iter(|| sample(&model, n, &config, &mut rng).unwrap().mean_moves()));
    group.finish();

    let grid = QuadratureGrid::sphere_equiangular(720, 1440).unwrap();
    let mut group = c.benchmark_group("density_grid");
    group.sample_size(10);
    group.throughput(Throughput::Elements(grid.len() as u64));
    group.bench_function("sphere_720x1440", |b| b.iter(|| density_map(&model, &grid, 16_384).len()));
    group.finish();
}

criterion_group!(egf, benches);
criterion_main!(egf);
