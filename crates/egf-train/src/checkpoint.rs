//! Checkpoints: the model, the optimizer moments, the step and the best validation value,
//! written atomically.
//!
//! A checkpoint is a directory (`<output_dir>/checkpoints/last` or `…/best`) holding
//!
//! | file | content |
//! |---|---|
//! | `model/model.json`, `model/weights.safetensors` | the model ([`FlowModel::save`]); load it with [`egf_flow::load_flow_model`] |
//! | `optimizer.safetensors` | Adam moments, `network/<var>.m`, `network/<var>.v`, `log_z/log_z.m`, … |
//! | `state.json` | [`CheckpointState`]: step, optimizer step counts, best validation value, seed, elapsed time |
//!
//! No generator state is needed: every step draws from a generator derived from
//! `(seed, step)` ([`derived_rng`](crate::data::derived_rng)).
//!
//! Atomicity: the checkpoint is written into a hidden sibling `.<name>.tmp`, then the old
//! directory is renamed to `.<name>.old`, the new one into place, and the old one removed.
//! A crash leaves either the old or the new checkpoint complete; [`recover`] (called by
//! every loader) puts `.<name>.old` back if the crash came between the two renames.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use egf_flow::FlowModel;
use serde::{Deserialize, Serialize};

use crate::optim::Adam;
use crate::{Result, TrainError};

/// Sub-directory of the output directory that holds the checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// File of the optimizer moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File of the [`CheckpointState`] inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// Sub-directory of the model inside a checkpoint.
pub const MODEL_DIR: &str = "model";

/// Which checkpoint of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// The most recent one (resuming starts here).
    Last,
    /// The one with the best validation value.
    Best,
}

impl CheckpointKind {
    /// `"last"` or `"best"`.
    pub fn name(self) -> &'static str {
        match self {
            CheckpointKind::Last => "last",
            CheckpointKind::Best => "best",
        }
    }
}

/// `<output_dir>/checkpoints/<last|best>`.
pub fn checkpoint_dir(output_dir: &Path, kind: CheckpointKind) -> PathBuf {
    output_dir.join(CHECKPOINTS_DIR).join(kind.name())
}

/// The model directory of a checkpoint (`<checkpoint>/model`), for [`egf_flow::load_flow_model`].
pub fn model_dir(checkpoint: &Path) -> PathBuf {
    checkpoint.join(MODEL_DIR)
}

/// The bookkeeping of a checkpoint (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: usize,
    /// The run's seed (per-step generators derive from it).
    pub seed: u64,
    /// Updates applied by the network optimizer (Adam's `t`).
    pub network_optimizer_steps: u64,
    /// Updates applied by the `log Z_init` optimizer.
    pub log_z_optimizer_steps: u64,
    /// Updates applied by the optimizer of the learnable maps (0 in checkpoints
    /// written before it existed).
    #[serde(default)]
    pub maps_optimizer_steps: u64,
    /// Best validation value so far (NLL, or total variation for a reward), if any.
    pub best_validation: Option<f64>,
    /// Step of the best validation value.
    pub best_step: Option<usize>,
    /// Wall-clock seconds of training up to this checkpoint, over all sessions.
    pub elapsed_seconds: f64,
    /// Version of `egf-train` that wrote the checkpoint.
    pub crate_version: String,
}

/// The optimizers of a run: one over the network, one over `log Z_init` (when learned).
#[derive(Debug)]
pub struct Optimizers {
    /// Optimizer of the network weights.
    pub network: Adam,
    /// Optimizer of `log Z_init`, when it is learned.
    pub log_z: Option<Adam>,
    /// Optimizer of the learnable maps' parameters, when the family has any.
    pub maps: Option<Adam>,
}

const NETWORK_PREFIX: &str = "network/";
const LOG_Z_PREFIX: &str = "log_z/";
const MAPS_PREFIX: &str = "maps/";

impl Optimizers {
    fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut all: Vec<(String, Tensor)> = self.network.state_tensors(NETWORK_PREFIX);
        if let Some(z) = &self.log_z {
            all.extend(z.state_tensors(LOG_Z_PREFIX));
        }
        if let Some(m) = &self.maps {
            all.extend(m.state_tensors(MAPS_PREFIX));
        }
        all.into_iter().map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?))).collect()
    }

    /// Restores the moments of [`load_checkpoint`] and the step counts of `state`.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, state: &CheckpointState) -> Result<()> {
        self.network.load_state_tensors(NETWORK_PREFIX, tensors, state.network_optimizer_steps)?;
        if let Some(z) = &mut self.log_z {
            z.load_state_tensors(LOG_Z_PREFIX, tensors, state.log_z_optimizer_steps)?;
        }
        if let Some(m) = &mut self.maps {
            m.load_state_tensors(MAPS_PREFIX, tensors, state.maps_optimizer_steps)?;
        }
        Ok(())
    }
}

fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        reason: "a checkpoint path needs a final directory name".into(),
    })?;
    let parent = dir.parent().unwrap_or_else(|| Path::new("."));
    Ok(parent.join(format!(".{}.{suffix}", name.to_string_lossy())))
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(TrainError::io(path))?;
    }
    Ok(())
}

/// Writes a checkpoint into `dir` atomically (see the [module documentation](self)).
pub fn save_checkpoint(dir: &Path, model: &FlowModel, optimizers: &Optimizers, state: &CheckpointState) -> Result<()> {
    let tmp = sibling(dir, "tmp")?;
    let old = sibling(dir, "old")?;
    remove_dir_if_exists(&tmp)?;
    std::fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    model.save(&tmp.join(MODEL_DIR))?;
    let opt_path = tmp.join(OPTIMIZER_FILE);
    candle_core::safetensors::save(&optimizers.state_tensors()?, &opt_path)
        .map_err(|e| TrainError::Checkpoint { path: opt_path.clone(), reason: e.to_string() })?;
    let state_path = tmp.join(STATE_FILE);
    let json = serde_json::to_string_pretty(state)
        .map_err(|e| TrainError::Checkpoint { path: state_path.clone(), reason: e.to_string() })?;
    std::fs::write(&state_path, json).map_err(TrainError::io(&state_path))?;
    // make the files durable before they become visible under the final name
    for f in [state_path.as_path(), opt_path.as_path()] {
        if let Ok(file) = std::fs::File::open(f) {
            let _ = file.sync_all();
        }
    }
    remove_dir_if_exists(&old)?;
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(TrainError::io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(TrainError::io(dir))?;
    remove_dir_if_exists(&old)?;
    Ok(())
}

/// Repairs the effect of a crash during [`save_checkpoint`]: when `dir` is missing but
/// its `.old` sibling exists, the sibling is renamed back; a stray `.tmp` sibling is removed.
pub fn recover(dir: &Path) -> Result<()> {
    let old = sibling(dir, "old")?;
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir).map_err(TrainError::io(dir))?;
    }
    remove_dir_if_exists(&sibling(dir, "tmp")?)?;
    Ok(())
}

/// Reads `state.json` of a checkpoint.
pub fn load_checkpoint_state(dir: &Path) -> Result<CheckpointState> {
    recover(dir)?;
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint { path, reason: e.to_string() })
}

/// A checkpoint read back: the model on `device`, the optimizer moments (host tensors) and the state.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// The model.
    pub model: FlowModel,
    /// Optimizer moments by name, for [`Optimizers::restore`].
    pub optimizer: HashMap<String, Tensor>,
    /// The bookkeeping.
    pub state: CheckpointState,
}

/// Reads a checkpoint written by [`save_checkpoint`].
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<LoadedCheckpoint> {
    let state = load_checkpoint_state(dir)?;
    let model = egf_flow::load_flow_model(&dir.join(MODEL_DIR), device)?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let optimizer = candle_core::safetensors::load(&opt_path, &Device::Cpu)
        .map_err(|e| TrainError::Checkpoint { path: opt_path.clone(), reason: e.to_string() })?;
    Ok(LoadedCheckpoint { model, optimizer, state })
}
