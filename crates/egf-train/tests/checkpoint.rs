//! Atomic checkpoints: no temporary files remain, and loading gives identical weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use egf_diffeo::FamilySpec;
use egf_flow::{FlowModel, FlowModelConfig};
use egf_manifold::{test_device, Manifold};
use egf_train::optim::{Adam, AdamParams};
use egf_train::{load_checkpoint, save_checkpoint, CheckpointState, OptimizerKind, Optimizers};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("egf-train-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        }
        out.push(p);
    }
    out
}

fn weights(model: &FlowModel) -> Vec<(String, Vec<u32>)> {
    model
        .network_vars()
        .into_iter()
        .map(|(n, v)| {
            (n, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

fn state(step: usize) -> CheckpointState {
    CheckpointState {
        step,
        seed: 3,
        network_optimizer_steps: step as u64,
        log_z_optimizer_steps: 0,
        maps_optimizer_steps: 0,
        best_validation: Some(-0.5),
        best_step: Some(step),
        elapsed_seconds: 1.5,
        crate_version: "test".into(),
    }
}

#[test]
fn checkpoints_are_atomic_and_reload_identically() {
    let root = tmp_dir("atomic");
    let dir = root.join("checkpoints").join("last");
    let device = test_device();
    let mut config = FlowModelConfig::new(Manifold::Torus { dim: 2 }, FamilySpec::torus_sl2z_irrational());
    config.network.width = 16;
    let model = FlowModel::new(config, DType::F32, &device).unwrap();
    let params = AdamParams { kind: OptimizerKind::Adam, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut network = Adam::new(model.network_vars(), params).unwrap();
    // one real update so that the moments are nonzero
    let x = Tensor::new(&[[0.1f32, 0.2], [0.7, 0.4]], &device).unwrap();
    let loss = model.evaluate(&x).unwrap().t.log().unwrap().mean_all().unwrap().neg().unwrap();
    network.step(&loss.backward().unwrap(), 1e-2).unwrap();
    let optimizers = Optimizers { network, log_z: None, maps: None };

    save_checkpoint(&dir, &model, &optimizers, &state(1)).unwrap();
    save_checkpoint(&dir, &model, &optimizers, &state(2)).unwrap(); // overwrite an existing one
    let leftovers: Vec<PathBuf> = all_files(&root)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains("tmp") || name.ends_with(".old")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files remain: {leftovers:?}");

    let loaded = load_checkpoint(&dir, &device).unwrap();
    assert_eq!(loaded.state, state(2));
    assert_eq!(weights(&loaded.model), weights(&model));
    let saved_m = optimizers.network.state_tensors("network/");
    for (name, t) in saved_m {
        let back = &loaded.optimizer[&name];
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{name}"
        );
    }

    // a crash between the two renames leaves only `.last.old`: loading recovers it
    std::fs::rename(&dir, root.join("checkpoints").join(".last.old")).unwrap();
    std::fs::create_dir_all(root.join("checkpoints").join(".last.tmp")).unwrap();
    let recovered = load_checkpoint(&dir, &device).unwrap();
    assert_eq!(weights(&recovered.model), weights(&model));
    assert!(!root.join("checkpoints").join(".last.tmp").exists());
}
