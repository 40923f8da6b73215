//! Every shipped config in `configs/` parses and validates with `TrainConfig`, so that
//! they never rot as the config schema evolves.

use std::path::PathBuf;

use egf_train::TrainConfig;

#[test]
fn every_shipped_config_parses_and_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected the shipped configs in {}, found {files:?}", dir.display());
    let mut failures = Vec::new();
    for path in &files {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        match TrainConfig::from_file(path) {
            Err(e) => failures.push(e.to_string()),
            Ok(config) => {
                if let Err(e) = config.validate() {
                    failures.push(format!("{}: {e}", path.display()));
                }
                if config.name != stem {
                    failures.push(format!("{}: name `{}` differs from the file name", path.display(), config.name));
                }
                let out = config.output_dir.to_string_lossy().to_string();
                if out != format!("runs/{stem}") {
                    failures.push(format!("{}: output_dir `{out}` is not runs/{stem}", path.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "broken configs:\n{}", failures.join("\n"));
}
