//! Reward tasks: config parsing and short runs of every reward loss (on the test
//! device, `EGF_TEST_DEVICE`, default CPU).

use std::path::PathBuf;

use egf_manifold::test_device_spec;
use egf_train::{train, RewardLoss, RunOptions, TaskConfig, TrainConfig, TrainError};

fn reward_config(name: &str, loss: &str, steps: usize) -> TrainConfig {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("egf-train-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        r#"
name = "{name}"
seed = 1
steps = {steps}
log_interval = 10
eval_interval = 100
checkpoint_interval = 100
output_dir = {dir:?}

[model]
manifold = {{ kind = "torus", dim = 2 }}
family = {{ preset = {{ name = "torus_sl2z_irrational" }} }}
features = {{ max_frequency = 3 }}
network = {{ width = 32, depth = 2 }}
learn_log_z = true

[task]
kind = "reward"
reward = {{ kind = "density", target = {{ kind = "wrapped_gaussians" }}, scale = 0.5 }}
loss = {loss}
batch = {{ nu_train = 256, trajectories = 32, target = 16 }}

[optimizer]
lr = 3e-3
log_z_lr = 3e-2

[eval]
quadrature_resolution = 32
importance_samples = 0
sampler_chains = 0
figure_resolution = 8
"#,
        dir = dir.to_string_lossy()
    );
    let mut c = TrainConfig::from_toml_str(&text).unwrap();
    c.device = test_device_spec();
    c
}

#[test]
fn stable_fm_learns_the_reward_and_its_mass() {
    let c = reward_config("reward_stable_fm", "{ kind = \"stable_fm\", q = 2.0 }", 300);
    assert!(c.validate().unwrap().is_empty());
    let report = train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap();
    let r = report.reward.expect("a reward report");
    println!("TV {} Z_init {} (true 0.5), best {:?}", r.total_variation, r.mass.z_init, report.best_validation);
    // the initial model is uniform: TV to the target is about 0.6
    assert!(r.total_variation < 0.2, "TV {}", r.total_variation);
    assert!((r.mass.z_init - 0.5).abs() < 0.05, "Z_init {}", r.mass.z_init);
    assert!((r.reward_mass - 0.5).abs() < 1e-3);
    assert_eq!(report.validation_metric, "total_variation");
    assert!(c.output_dir.join("figure.json").exists());
}

#[test]
fn every_reward_loss_runs() {
    for (name, loss) in [
        ("reward_div", "{ kind = \"divergence_fm\", max_moves = 20, outflow_penalty = 0.1 }"),
        ("reward_tb", "{ kind = \"trajectory_balance\", max_moves = 20 }"),
        ("reward_rkl", "{ kind = \"reverse_kl\", trajectories = { max_moves = 20 } }"),
        ("reward_fkl", "{ kind = \"forward_kl\", samples_per_point = 2, max_moves = 20 }"),
        ("reward_akl", "{ kind = \"alpha_kl\", alpha = 0.5, forward = { samples_per_point = 2, max_moves = 20 } }"),
        ("reward_log", "{ kind = \"stable_fm\", residual = { kind = \"log\" } }"),
    ] {
        let c = reward_config(name, loss, 6);
        c.validate().unwrap();
        let report =
            train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.finished && report.reward.is_some(), "{name}");
        assert!(report.last_loss.unwrap().is_finite(), "{name}");
    }
}

#[test]
fn reward_config_errors_name_the_field() {
    let mut c = reward_config("reward_cfg", "{ kind = \"forward_kl\" }", 5);
    // a checkerboard with a floor has no exact sampler of R/Z; with floor 0 it has one
    c.apply_override("task.reward={kind=\"checkerboard\", floor=0.1}").unwrap();
    match c.validate().unwrap_err() {
        TrainError::Config { field, .. } => assert_eq!(field, "task.loss.kind"),
        other => panic!("{other}"),
    }
    c.apply_override("task.reward={kind=\"checkerboard\"}").unwrap();
    c.validate().unwrap();
    let mut c = reward_config("reward_cfg", "{ kind = \"stable_fm\", q = 0.5 }", 5);
    match c.validate().unwrap_err() {
        TrainError::Config { field, .. } => assert_eq!(field, "task.loss.q"),
        other => panic!("{other}"),
    }
    c.apply_override("task.loss={kind=\"stable_fm\"}").unwrap();
    c.apply_override("task.nu_train.uniform_share=0.5").unwrap();
    match c.validate().unwrap_err() {
        TrainError::Config { field, .. } => assert_eq!(field, "task.nu_train"),
        other => panic!("{other}"),
    }
    let err = TrainConfig::from_toml_str(
        &reward_config("reward_cfg", "{ kind = \"stable_fm\" }", 5)
            .to_toml_string()
            .unwrap()
            .replace("kind = \"stable_fm\"", "kind = \"stable_fm\"\nqq = 3"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("qq"), "{err}");
    // learnable maps train with the losses that evaluate the flow at points only
    let mut c = reward_config("reward_cfg", "{ kind = \"trajectory_balance\" }", 5);
    for o in [
        "model.manifold={kind=\"sphere\", dim=2}",
        "model.features={}",
        "model.family={maps=[{kind=\"sphere_axis_rotation\", axis=[0.0, 0.0, 1.0], angle=0.7}, \
         {kind=\"sphere_mobius\", center=[0.3, 0.0, 0.0], learnable=true}]}",
        "task.reward={kind=\"vmf_mixture\"}",
    ] {
        c.apply_override(o).unwrap();
    }
    match c.validate().unwrap_err() {
        TrainError::Config { field, reason } => {
            assert_eq!(field, "model.family");
            assert!(reason.contains("trajectory_balance"), "{reason}");
        }
        other => panic!("{other}"),
    }
    c.apply_override("task.loss={kind=\"stable_fm\"}").unwrap();
    c.validate().unwrap();
    let c = reward_config("reward_cfg", "{ kind = \"trajectory_balance\" }", 5);
    match &c.task {
        TaskConfig::Reward(r) => assert!(matches!(r.loss, RewardLoss::TrajectoryBalance(_))),
        _ => panic!(),
    }
    assert_eq!(TrainConfig::from_toml_str(&c.to_toml_string().unwrap()).unwrap(), c);
}

/// Forward KL runs on the two rewards that are not declared as densities but whose
/// `R/Z` is a registered target, and the evaluation lines carry the sampler's
/// trajectory lengths and the gradient-variance measurement.
#[test]
fn forward_kl_on_checkerboard_and_vmf_rewards_with_gradient_probes() {
    for (name, reward, manifold, family) in [
        (
            "reward_fkl_board",
            "{ kind = \"checkerboard\" }",
            "{ kind = \"torus\", dim = 2 }",
            "{ preset = { name = \"torus_sl2z_irrational\" } }",
        ),
        (
            "reward_fkl_vmf",
            "{ kind = \"vmf_mixture\" }",
            "{ kind = \"sphere\", dim = 2 }",
            "{ preset = { name = \"sphere_axis_rotations\", angle = 0.7853981633974483 } }",
        ),
    ] {
        let mut c = reward_config(name, "{ kind = \"forward_kl\", samples_per_point = 2, max_moves = 20 }", 4);
        c.apply_override(&format!("task.reward={reward}")).unwrap();
        c.apply_override(&format!("model.manifold={manifold}")).unwrap();
        c.apply_override(&format!("model.family={family}")).unwrap();
        c.apply_override("eval_interval=2").unwrap();
        c.apply_override("eval.sampler_chains=50").unwrap();
        c.apply_override("eval.gradient_probes=3").unwrap();
        c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let report =
            train(&c, &RunOptions { quiet: true, ..Default::default() }).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = report.reward.unwrap();
        assert!((0.0..=1.0).contains(&r.total_variation), "{name}");
        assert!(r.sampler.as_ref().is_some_and(|s| s.chains == 50 && s.mean_moves >= 0.0), "{name}");
        let lines = egf_train::metrics::read_metrics(&c.output_dir.join(egf_train::metrics::METRICS_FILE)).unwrap();
        let evals: Vec<_> = lines.iter().filter(|l| l["kind"] == "eval").collect();
        assert_eq!(evals.len(), 2, "{name}");
        for e in evals {
            for key in ["mean_moves", "truncation_rate", "integral_g", "total_variation"] {
                assert!(e[key].as_f64().is_some_and(f64::is_finite), "{name}: {key} in {e}");
            }
            let var = e["gradient_variance"].as_f64().unwrap();
            let norm = e["gradient_mean_norm"].as_f64().unwrap();
            let rel = e["gradient_relative_variance"].as_f64().unwrap();
            // three different batches give different gradients
            assert!(var > 0.0 && norm > 0.0 && (rel - var / (norm * norm)).abs() <= 1e-9 * rel, "{name}: {e}");
        }
    }
}
