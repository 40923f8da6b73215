//! Data sources of the imitation task.

use egf_manifold::Manifold;
use egf_train::data::load_imitation_data;
use egf_train::{TaskConfig, TrainConfig};

fn imitation(c: &TrainConfig) -> &egf_train::ImitationConfig {
    match &c.task {
        TaskConfig::Imitation(im) => im,
        TaskConfig::Reward(_) => panic!("not an imitation task"),
    }
}

#[test]
fn csv_and_target_sources_load_and_split() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("egf-train-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("points.csv");
    let rows: String = (0..50).map(|i| format!("{},{}\n", (i as f64 * 0.37) % 1.0, (i as f64 * 0.11) % 1.0)).collect();
    std::fs::write(&path, format!("x1,x2\n{rows}")).unwrap();
    let mut c = TrainConfig::demo();
    c.apply_override(&format!("task.data={{source=\"csv\", path={:?}}}", path.to_string_lossy())).unwrap();
    c.validate().unwrap();
    let d = load_imitation_data(imitation(&c), Manifold::Torus { dim: 2 }, 0).unwrap();
    assert_eq!((d.train.len(), d.validation.len(), d.test.len()), (40, 5, 5));
    assert!(d.target.is_none());
    // the split is seeded: same seed, same parts; the split seed can differ from the run seed
    let again = load_imitation_data(imitation(&c), Manifold::Torus { dim: 2 }, 0).unwrap();
    assert_eq!(again.test, d.test);
    c.apply_override("task.split.seed=9").unwrap();
    let other = load_imitation_data(imitation(&c), Manifold::Torus { dim: 2 }, 0).unwrap();
    assert_ne!(other.test, d.test);

    // a format that does not fit the manifold is a config error naming the field
    c.apply_override("task.data.format=\"lat_lon_deg\"").unwrap();
    match c.validate().unwrap_err() {
        egf_train::TrainError::Config { field, .. } => assert_eq!(field, "task.data.format"),
        other => panic!("{other}"),
    }

    let demo = TrainConfig::demo();
    let d = load_imitation_data(imitation(&demo), Manifold::Torus { dim: 2 }, 0).unwrap();
    assert_eq!(d.train.len() + d.validation.len() + d.test.len(), 20_000);
    assert_eq!(d.target.as_ref().unwrap().name(), "wrapped_gaussians");
}

#[test]
fn missing_files_are_named() {
    let mut c = TrainConfig::demo();
    c.apply_override("task.data={source=\"csv\", path=\"/nonexistent/points.csv\"}").unwrap();
    let err = load_imitation_data(imitation(&c), Manifold::Torus { dim: 2 }, 0).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/points.csv"), "{err}");
}
