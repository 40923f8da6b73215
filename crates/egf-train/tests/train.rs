//! End-to-end training runs on the test device (`EGF_TEST_DEVICE`, default CPU):
//! learning, resume, NaN handling, checkpoints.

use std::path::PathBuf;

use egf_diffeo::DiffeoSpec;
use egf_flow::EgfModel;
use egf_manifold::{test_device, test_device_spec};
use egf_train::checkpoint::model_dir;
use egf_train::{checkpoint_dir, train, CheckpointKind, RunOptions, TrainConfig};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("egf-train-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A tiny T^2 run of `steps` steps on the test device.
fn tiny(name: &str, steps: usize) -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.name = name.into();
    c.output_dir = tmp_dir(name);
    c.device = test_device_spec();
    for o in [
        "steps=".to_string() + &steps.to_string(),
        "log_interval=10".into(),
        "eval_interval=50".into(),
        "checkpoint_interval=50".into(),
        "model.network.width=32".into(),
        "model.features.max_frequency=3".into(),
        "task.data.samples=3000".into(),
        "task.batch.data=128".into(),
        "task.batch.nu_train=128".into(),
        "task.batch.uniform=32".into(),
        "eval.quadrature_resolution=32".into(),
        "eval.importance_samples=2".into(),
        "eval.sampler_chains=200".into(),
        "eval.figure_resolution=16".into(),
    ] {
        c.apply_override(&o).unwrap();
    }
    c
}

#[test]
fn short_run_beats_the_uniform_density() {
    let c = tiny("short_run", 200);
    let t0 = std::time::Instant::now();
    let report = train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    println!("took {:?}", t0.elapsed());
    assert!(report.finished);
    assert!(report.best_validation.unwrap() < 0.0, "validation NLL {:?}", report.best_validation);
}

/// Every tensor of a safetensors file, as raw bits (read on the host: the files do not
/// depend on the device that wrote them).
fn tensor_bits(path: &std::path::Path) -> Vec<(String, Vec<u64>)> {
    let map = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let mut all: Vec<(String, Vec<u64>)> = map
        .into_iter()
        .map(|(k, t)| {
            let bits = match t.dtype() {
                candle_core::DType::F32 => {
                    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits() as u64).collect()
                }
                _ => t.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().map(|v| v.to_bits()).collect(),
            };
            (k, bits)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn resumed_run_matches_uninterrupted_run_bit_for_bit() {
    let quiet = RunOptions { quiet: true, ..Default::default() };
    let mut straight = tiny("resume_straight", 60);
    straight.apply_override("eval_interval=20").unwrap();
    straight.apply_override("checkpoint_interval=20").unwrap();
    let a = train(&straight, &quiet).unwrap();
    assert!(a.finished);

    let mut split = straight.clone();
    split.output_dir = tmp_dir("resume_split");
    let first = train(&split, &RunOptions { quiet: true, resume: false, max_steps_this_run: Some(27) }).unwrap();
    assert!(!first.finished);
    assert_eq!(first.steps_completed, 27);
    assert!(first.test.is_none());
    let second = train(&split, &RunOptions { quiet: true, resume: true, max_steps_this_run: None }).unwrap();
    assert!(second.finished);
    assert_eq!(second.started_at_step, 27);

    for file in ["model/weights.safetensors", "optimizer.safetensors"] {
        let wa = tensor_bits(&a.last_checkpoint.join(file));
        let wb = tensor_bits(&second.last_checkpoint.join(file));
        assert!(!wa.is_empty());
        assert_eq!(wa, wb, "{file} differs between the straight and the resumed run");
    }
    assert_eq!(a.best_step, second.best_step);
    assert_eq!(a.best_validation, second.best_validation);
    assert_eq!(a.test.as_ref().unwrap().nll, second.test.as_ref().unwrap().nll);
    // metrics: one train line per logged step, no duplicates after the resume
    let lines = egf_train::metrics::read_metrics(&split.output_dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = lines.iter().filter(|l| l["kind"] == "train").map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![10, 20, 27, 30, 40, 50, 60]);
}

/// `task.data_jitter = σ` fits the data smoothed by the perturbation kernel: with
/// σ = 0.3 (on the unit torus) the wrapped Gaussians are smoothed almost to the uniform
/// density, so the fitted density scores the unperturbed validation points much worse
/// than the plain run's, yet still close to the uniform density's NLL of 0.
#[test]
fn data_jitter_fits_the_smoothed_data() {
    let quiet = RunOptions { quiet: true, ..Default::default() };
    let plain = train(&tiny("jitter_off", 150), &quiet).unwrap();
    let mut c = tiny("jitter_on", 150);
    c.apply_override("task.data_jitter=0.3").unwrap();
    let smooth = train(&c, &quiet).unwrap();
    let (plain, smooth) = (plain.best_validation.unwrap(), smooth.best_validation.unwrap());
    println!("validation NLL: plain {plain}, jitter 0.3 {smooth}");
    assert!(smooth > plain + 0.2, "plain {plain}, smoothed {smooth}");
    assert!(smooth.abs() < 0.2, "smoothed {smooth}");
}

#[test]
fn resume_without_checkpoint_is_an_error() {
    let c = tiny("resume_nothing", 10);
    let err = train(&c, &RunOptions { quiet: true, resume: true, max_steps_this_run: None }).unwrap_err();
    assert!(err.to_string().contains("nothing to resume"), "{err}");
}

#[test]
fn non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint() {
    // lr = 1e30: step 1 is finite, its update makes the weights ~1e30 and the loss of step 2 overflows.
    let mut c = tiny("nan_run", 50);
    for o in ["optimizer.lr=1e30", "schedule={kind=\"constant\"}", "checkpoint_interval=1", "log_interval=1"] {
        c.apply_override(o).unwrap();
    }
    let err = train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    match &err {
        egf_train::TrainError::NonFinite { step, term, checkpoint } => {
            assert_eq!(*step, 2, "{msg}");
            assert!(!term.is_empty());
            let ckpt = checkpoint.as_ref().expect("a checkpoint of step 1");
            let state = egf_train::checkpoint::load_checkpoint_state(ckpt).unwrap();
            assert_eq!(state.step, 1);
            let device = test_device();
            let loaded = egf_train::load_checkpoint(ckpt, &device).unwrap();
            let terms = loaded.model.evaluate(&candle_core::Tensor::new(&[[0.3f32, 0.6]], &device).unwrap());
            assert!(terms.is_ok());
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(msg.contains("step 2"), "{msg}");

    // detected only at the next logging step, but the step named is still the first bad one
    let mut late = tiny("nan_late", 50);
    for o in ["optimizer.lr=1e30", "schedule={kind=\"constant\"}", "checkpoint_interval=7", "log_interval=7"] {
        late.apply_override(o).unwrap();
    }
    match train(&late, &RunOptions { quiet: true, ..Default::default() }).unwrap_err() {
        egf_train::TrainError::NonFinite { step, checkpoint, .. } => {
            assert_eq!(step, 2);
            assert!(checkpoint.is_none());
        }
        other => panic!("expected NonFinite, got {other}"),
    }
}

fn earth_dir() -> PathBuf {
    match std::env::var_os("EGF_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/earth")),
    }
}

/// A tiny run of `steps` steps on the volcano data with the family override `family`.
fn tiny_volcano(name: &str, steps: usize, family: &str) -> TrainConfig {
    let mut c = tiny(name, steps);
    let data =
        format!("task.data={{source=\"earth\", dataset=\"volcano\", data_dir={:?}}}", earth_dir().to_string_lossy());
    for o in [
        "model.manifold={kind=\"sphere\", dim=2}",
        family,
        data.as_str(),
        "eval_interval=75",
        "eval.quadrature_resolution=24",
    ] {
        c.apply_override(o).unwrap();
    }
    c
}

#[test]
fn volcano_run_beats_the_uniform_density_on_the_sphere() {
    let c = tiny_volcano(
        "volcano",
        150,
        "model.family={preset={name=\"sphere_axis_rotations\", angle=0.7853981633974483}}",
    );
    let report = train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap();
    let uniform = (4.0 * std::f64::consts::PI).ln();
    let best = report.best_validation.unwrap();
    println!("volcano: validation NLL {best}, test {:?}", report.test.as_ref().map(|t| (t.nll, t.negative_mass)));
    assert!(best < uniform - 0.1, "validation NLL {best} vs uniform {uniform}");
    let test = report.test.unwrap();
    assert_eq!(test.points, 82);
    assert!(test.nll.is_finite());
}

/// The two learnable Möbius maps of [`learnable_volcano`] start here.
const MAP_STARTS: [(usize, [f64; 3]); 2] = [(6, [0.0, 0.0, 0.5]), (7, [0.0, 0.0, -0.5])];

/// A tiny volcano run whose family has two learnable Möbius maps, at `maps_lr`.
fn learnable_volcano(name: &str, steps: usize, maps_lr: f64) -> TrainConfig {
    let mut c = tiny_volcano(
        name,
        steps,
        "model.family={preset={name=\"sphere_axis_rotations\", angle=0.7853981633974483}, maps=[\
         {kind=\"sphere_mobius\", center=[0.0, 0.0, 0.5], learnable=true}, \
         {kind=\"sphere_mobius\", center=[0.0, 0.0, -0.5], learnable=true}]}",
    );
    c.apply_override(&format!("optimizer.maps_lr={maps_lr}")).unwrap();
    c
}

/// How far each learnable map of the last checkpoint of `c` has moved from its start.
fn map_moves(c: &TrainConfig) -> Vec<f64> {
    let dir = model_dir(&checkpoint_dir(&c.output_dir, CheckpointKind::Last));
    let model = egf_flow::load_flow_model(&dir, &test_device()).unwrap();
    MAP_STARTS
        .iter()
        .map(|(member, start)| {
            let DiffeoSpec::SphereMobius { center, learnable: true } = model.family().member(*member).spec() else {
                panic!("member {member} is not a learnable Möbius map");
            };
            assert!(center.iter().map(|a| a * a).sum::<f64>() < 1.0, "{center:?}");
            center.iter().zip(start).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
        })
        .collect()
}

/// Learnable Möbius maps train with the network at their own rate `optimizer.maps_lr`:
/// they move away from the start, faster at a larger rate, the run beats the uniform
/// density, and a resumed run continues their optimizer bit for bit.
#[test]
fn learnable_mobius_maps_train_on_volcano() {
    let quiet = RunOptions { quiet: true, ..Default::default() };
    let slow = learnable_volcano("volcano_learnable_slow", 100, 1e-3);
    let report = train(&slow, &quiet).unwrap();
    let uniform = (4.0 * std::f64::consts::PI).ln();
    let best = report.best_validation.unwrap();
    assert!(best < uniform - 0.1, "validation NLL {best} vs uniform {uniform}");
    let test = report.test.unwrap();
    assert!(test.nll.is_finite() && test.negative_mass.is_finite());
    let fast = learnable_volcano("volcano_learnable_fast", 100, 2e-2);
    let straight = train(&fast, &quiet).unwrap();
    let (slow_moves, fast_moves) = (map_moves(&slow), map_moves(&fast));
    println!("maps moved {slow_moves:?} at maps_lr 1e-3, {fast_moves:?} at 2e-2");
    for (s, f) in slow_moves.iter().zip(&fast_moves) {
        assert!(*s > 1e-3 && f > s, "moves {slow_moves:?} at 1e-3 vs {fast_moves:?} at 2e-2");
    }

    let mut split = fast.clone();
    split.output_dir = tmp_dir("volcano_learnable_split");
    train(&split, &RunOptions { quiet: true, resume: false, max_steps_this_run: Some(40) }).unwrap();
    let resumed = train(&split, &RunOptions { quiet: true, resume: true, max_steps_this_run: None }).unwrap();
    for file in ["model/weights.safetensors", "optimizer.safetensors"] {
        let a = tensor_bits(&straight.last_checkpoint.join(file));
        assert!(a.iter().any(|(name, _)| name.contains("family.map7.v")), "{file} holds no map variable");
        assert_eq!(a, tensor_bits(&resumed.last_checkpoint.join(file)), "{file}");
    }
}
