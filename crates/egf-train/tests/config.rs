//! Config parsing, round trips, validation and overrides.

use egf_train::{DataSource, TaskConfig, TrainConfig, TrainError};

#[test]
fn demo_round_trips_through_toml() {
    let demo = TrainConfig::demo();
    demo.validate().unwrap();
    let text = demo.to_toml_string().unwrap();
    println!("{text}");
    let back = TrainConfig::from_toml_str(&text).unwrap();
    assert_eq!(back, demo);
    assert_eq!(back.to_toml_string().unwrap(), text);
}

fn field_of(err: TrainError) -> String {
    match err {
        TrainError::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let base = TrainConfig::demo().to_toml_string().unwrap();
    // top level
    let err = TrainConfig::from_toml_str(&format!("bogus_key = 1\n{base}")).unwrap_err().to_string();
    assert!(err.contains("bogus_key") && err.contains("<string>"), "{err}");
    // nested tables
    for (table, key) in [("[optimizer]", "learning_rate"), ("[task.batch]", "datas"), ("[eval]", "resolution")] {
        let text = base.replacen(table, &format!("{table}\n{key} = 3"), 1);
        let err = TrainConfig::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains(key), "{table}: {err}");
    }
    let text = base.replacen("kind = \"imitation\"", "kind = \"imitation\"\nextra = true", 1);
    let err = TrainConfig::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("extra"), "{err}");
    let text = base.replacen("[model.network]", "[model.network]\nlayers = 3", 1);
    let err = TrainConfig::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("layers"), "{err}");
}

#[test]
fn files_are_named_in_errors() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("egf-train-config");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let err = TrainConfig::from_file(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.toml"), "{err}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nsteps = \"many\"\n").unwrap();
    let err = TrainConfig::from_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
    let good = dir.join("good.toml");
    std::fs::write(&good, TrainConfig::demo().to_toml_string().unwrap()).unwrap();
    assert_eq!(TrainConfig::from_file(&good).unwrap(), TrainConfig::demo());
}

#[test]
fn bad_values_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("optimizer.lr=-1e-3", "optimizer.lr"),
        ("optimizer.lr=0.0", "optimizer.lr"),
        ("optimizer.log_z_lr=-1.0", "optimizer.log_z_lr"),
        ("optimizer.beta1=1.0", "optimizer.beta1"),
        ("task.batch.data=0", "task.batch.data"),
        ("task.batch.nu_train=0", "task.batch.nu_train"),
        ("task.batch.uniform=0", "task.batch.uniform"),
        ("steps=0", "steps"),
        ("eval_interval=0", "eval_interval"),
        ("task.loss.epsilon=0.0", "task.loss.epsilon"),
        ("task.loss.negative_weight=-1.0", "task.loss.negative_weight"),
        ("task.nu_train.uniform_share=1.5", "task.nu_train.uniform_share"),
        ("task.data_jitter=-0.01", "task.data_jitter"),
        ("task.data_jitter=nan", "task.data_jitter"),
        ("task.split.train=0.9", "task.split"),
        ("eval.defensive_weight=0.0", "eval.defensive_weight"),
        ("model.network.width=0", "model.network.width"),
        ("model.learn_log_z=true", "model.learn_log_z"),
        ("schedule={kind=\"exponential\", final_lr=-1.0}", "schedule.final_lr"),
        ("model.manifold={kind=\"sphere\", dim=2}", "model.family"),
    ];
    for (o, field) in cases {
        let mut c = TrainConfig::demo();
        c.apply_override(o).unwrap();
        assert_eq!(field_of(c.validate().unwrap_err()), *field, "override {o}");
    }
    // the data must live on the model's manifold
    let mut c = TrainConfig::demo();
    c.apply_override("task.data={source=\"earth\", dataset=\"volcano\"}").unwrap();
    assert_eq!(field_of(c.validate().unwrap_err()), "model.manifold");
}

#[test]
fn weak_fm_threshold_is_a_warning() {
    let mut c = TrainConfig::demo();
    c.apply_override("task.loss.negative_weight=1.0").unwrap();
    let warnings = c.validate().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(TrainConfig::demo().validate().unwrap().is_empty());
}

#[test]
fn overrides_change_existing_keys_and_reject_unknown_ones() {
    let mut c = TrainConfig::demo();
    c.apply_override("optimizer.lr=3e-4").unwrap();
    assert_eq!(c.optimizer.lr, 3e-4);
    c.apply_override("task.batch.data = 64").unwrap();
    c.apply_override("device=cuda:1").unwrap();
    assert_eq!(c.device, egf_train::DeviceSpec::Cuda(1));
    c.apply_override("optimizer.log_z_lr=0.03").unwrap(); // optional key, absent before
    assert_eq!(c.optimizer.log_z_lr, Some(0.03));
    c.apply_override("name=other").unwrap();
    assert_eq!(c.name, "other");
    c.apply_override("task.data={source=\"earth\", dataset=\"fire\", data_dir=\"/data\"}").unwrap();
    match &c.task {
        TaskConfig::Imitation(im) => assert!(matches!(im.data, DataSource::Earth { .. })),
        _ => panic!("task changed kind"),
    }
    match &c.task {
        TaskConfig::Imitation(im) => assert_eq!(im.batch.data, 64),
        _ => unreachable!(),
    }
    for bad in ["optimizer.learning_rate=1", "nosuch.key=1", "steps=\"many\"", "optimizer", "=3", "steps.x=1"] {
        let err = c.apply_override(bad).unwrap_err();
        assert!(matches!(err, TrainError::Override { .. }), "{bad}: {err}");
    }
    let err = c.apply_override("optimizer.learning_rate=1").unwrap_err().to_string();
    assert!(err.contains("learning_rate"), "{err}");
}

#[test]
fn a_full_earth_config_parses() {
    let text = r#"
name = "volcano-b5"
seed = 3
device = "cpu"
dtype = "f64"
steps = 75000
log_interval = 100
eval_interval = 2500
checkpoint_interval = 2500
output_dir = "runs/volcano"

[model]
manifold = { kind = "sphere", dim = 2 }
family = { preset = { name = "sphere_axis_rotations", angle = 0.7853981633974483 } }
network = { width = 256, depth = 5, activation = "silu" }
outflow_link = "softplus"

[task]
kind = "imitation"
data = { source = "earth", dataset = "volcano", data_dir = "../shared/data/earth" }
split = { train = 0.8, validation = 0.1, test = 0.1, seed = 0 }
loss = { epsilon = 1e-3, negative_weight = 5.0, outflow_weight = 0.0 }
nu_train = { uniform_share = 0.5, data_noise = 0.02, on_policy_share = 0.0 }
batch = { data = 512, nu_train = 512, uniform = 256 }

[optimizer]
kind = "adamw"
lr = 1e-3
weight_decay = 1e-4

[schedule]
kind = "exponential"
final_lr = 1e-5

[eval]
quadrature_resolution = 96
defensive_weight = 1e-3
importance_samples = 16
"#;
    let c = TrainConfig::from_toml_str(text).unwrap();
    assert!(c.validate().unwrap().is_empty());
    assert_eq!(TrainConfig::from_toml_str(&c.to_toml_string().unwrap()).unwrap(), c);
    let lr_end = c.schedule.lr_at(c.optimizer.lr, c.steps - 1, c.steps);
    assert!((lr_end - 1e-5).abs() < 1e-15);
}
