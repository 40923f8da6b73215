//! Every shipped config in `configs/` and its subfolders (`configs/beyond/`,
//! `configs/learnable/`, `configs/higher/`) parses
//! and validates with `TrainConfig`, so that they never rot as the config schema evolves.

use std::path::{Path, PathBuf};

use egf_train::TrainConfig;

#[test]
fn every_shipped_config_parses_and_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
    };
    // (subfolder, file): the output_dir of configs/<sub>/<stem>.toml is runs/<sub>/<stem>
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for path in list(&dir) {
        if path.is_dir() {
            let sub = path.file_name().unwrap().to_string_lossy().to_string();
            files.extend(list(&path).into_iter().map(|p| (format!("{sub}/"), p)));
        } else {
            files.push((String::new(), path));
        }
    }
    files.retain(|(_, p)| p.extension().is_some_and(|e| e == "toml"));
    assert!(files.len() >= 19, "expected the shipped configs in {}, found {files:?}", dir.display());
    for folder in ["beyond/", "learnable/", "higher/"] {
        assert!(files.iter().any(|(sub, _)| sub == folder), "configs/{folder} is missing");
    }
    let mut failures = Vec::new();
    for (sub, path) in &files {
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
                if out != format!("runs/{sub}{stem}") {
                    failures.push(format!("{}: output_dir `{out}` is not runs/{sub}{stem}", path.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "broken configs:\n{}", failures.join("\n"));
}
