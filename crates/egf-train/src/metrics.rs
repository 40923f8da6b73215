//! `metrics.jsonl`: one JSON object per line, appended as the run goes.
//!
//! Lines have a `"kind"`: `"train"` (step, learning rates, loss, terms, counts, wall
//! time), `"eval"` (validation values at a step), `"test"` (the final evaluation of
//! the best checkpoint) and `"event"` (start, resume, warnings).
//!
//! Keys of an `"eval"` line:
//!
//! | task | keys |
//! |---|---|
//! | imitation | `validation_nll`, `fraction_nonpositive`, `negative_mass`, `integral_t`, `integral_t_plus`, `integral_g`, `z_init` |
//! | reward | `total_variation` (reported density vs `R/∫R`), `reward_mass`, `z_init`, `negative_mass`, `integral_t`, `integral_g`; with `eval.sampler_chains > 0` also `mean_moves`, `max_moves`, `truncation_rate` of that many forward chains |
//! | both, with `eval.gradient_probes ≥ 2` | `gradient_variance`, `gradient_mean_norm`, `gradient_relative_variance`, `probe_loss_mean`, `probe_loss_std` ([`GradientVariance`](crate::GradientVariance)) |
//!
//! and every line has `step`, `best` (whether the validation value improved) and
//! `wall_seconds`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Result, TrainError};

/// File name of the metrics inside the output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Appends JSON lines to `metrics.jsonl`, flushing each one.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `<output_dir>/metrics.jsonl`. A fresh run (`keep_up_to = None`) starts an
    /// empty file; a resumed run keeps the lines of steps up to `keep_up_to` (the
    /// checkpoint's step) and drops later ones, which the resumed run writes again.
    pub fn open(output_dir: &Path, keep_up_to: Option<usize>) -> Result<Self> {
        let path = output_dir.join(METRICS_FILE);
        match keep_up_to {
            None => {
                File::create(&path).map_err(TrainError::io(&path))?;
            }
            Some(step) if path.exists() => {
                let reader = BufReader::new(File::open(&path).map_err(TrainError::io(&path))?);
                let mut kept = String::new();
                for line in reader.lines() {
                    let line = line.map_err(TrainError::io(&path))?;
                    let keep = match serde_json::from_str::<Value>(&line) {
                        Ok(v) => v.get("step").and_then(Value::as_u64).map_or(true, |s| s as usize <= step),
                        Err(_) => false,
                    };
                    if keep {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                }
                let tmp = output_dir.join(format!(".{METRICS_FILE}.tmp"));
                std::fs::write(&tmp, kept).map_err(TrainError::io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(TrainError::io(&path))?;
            }
            Some(_) => {}
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(TrainError::io(&path))?;
        Ok(Self { path, file })
    }

    /// Appends one object as a line.
    pub fn write(&mut self, value: &Value) -> Result<()> {
        let mut line = serde_json::to_string(value)
            .map_err(|e| TrainError::Io { path: self.path.clone(), source: std::io::Error::other(e.to_string()) })?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(TrainError::io(&self.path))?;
        self.file.flush().map_err(TrainError::io(&self.path))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every line of a `metrics.jsonl` file.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(format!("line {}: {e}", i + 1)),
            })
        })
        .collect()
}
