//! Saving and loading models: `weights.safetensors` (the variables, bit for bit)
//! and `model.json` (a human-readable [`ModelDescription`]).

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::flow_model::sorted_vars;
use crate::{FlowError, FlowModel, FlowModelConfig, PolicyModel, PolicyModelConfig, Result};

/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// File name of the description inside a model directory.
pub const DESCRIPTION_FILE: &str = "model.json";

/// Which parameterization a saved model uses, with its full config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "parameterization", content = "config", rename_all = "snake_case")]
pub enum ModelKind {
    /// A [`FlowModel`].
    Flow(FlowModelConfig),
    /// A [`PolicyModel`].
    Policy(PolicyModelConfig),
}

/// The contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    /// Version of the `egf-flow` crate that wrote the model.
    pub crate_version: String,
    /// Parameter dtype, `"f32"` or `"f64"`.
    pub dtype: String,
    /// The model.
    pub model: ModelKind,
}

/// A loaded model of either parameterization.
#[derive(Debug)]
pub enum SavedModel {
    /// A flow model.
    Flow(FlowModel),
    /// A policy model.
    Policy(PolicyModel),
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "f64",
        _ => "f32",
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FlowError + '_ {
    move |source| FlowError::Io { path: path.display().to_string(), source }
}

/// Writes `model.json` and `weights.safetensors` into `dir` (created if
/// missing); each file is written to a temporary name and renamed, so a crash
/// never leaves a half-written file.
pub fn save_model(dir: &Path, kind: ModelKind, dtype: DType, vars: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let description = ModelDescription {
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        dtype: dtype_name(dtype).into(),
        model: kind,
    };
    let json = serde_json::to_string_pretty(&description).expect("description serializes");
    let desc_path = dir.join(DESCRIPTION_FILE);
    let tmp = dir.join(format!(".{DESCRIPTION_FILE}.tmp"));
    std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &desc_path).map_err(io_err(&desc_path))?;
    let weights = dir.join(WEIGHTS_FILE);
    let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
    vars.save(&tmp)?;
    std::fs::rename(&tmp, &weights).map_err(io_err(&weights))?;
    Ok(())
}

/// Reads `model.json` of a model directory.
pub fn read_description(dir: &Path) -> Result<ModelDescription> {
    let path = dir.join(DESCRIPTION_FILE);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text).map_err(|e| FlowError::Load { path: path.display().to_string(), reason: e.to_string() })
}

fn parse_dtype(desc: &ModelDescription, dir: &Path) -> Result<DType> {
    match desc.dtype.as_str() {
        "f32" => Ok(DType::F32),
        "f64" => Ok(DType::F64),
        other => Err(FlowError::Load {
            path: dir.join(DESCRIPTION_FILE).display().to_string(),
            reason: format!("unknown dtype {other:?} (expected \"f32\" or \"f64\")"),
        }),
    }
}

/// Copies the saved weights into `vars`, after checking that the file holds
/// exactly the variables of `vars` with the same shapes and dtypes, and only finite
/// values (a model saved from a diverged run is refused, naming the tensor, rather than
/// producing NaN densities downstream).
fn load_weights(dir: &Path, vars: &VarMap) -> Result<()> {
    let path = dir.join(WEIGHTS_FILE);
    let load_err = |reason: String| FlowError::Load { path: path.display().to_string(), reason };
    if !path.exists() {
        return Err(load_err("file not found".into()));
    }
    let saved = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| load_err(e.to_string()))?;
    let expected = sorted_vars(vars);
    for (name, var) in &expected {
        let t = saved.get(name).ok_or_else(|| load_err(format!("missing tensor `{name}`")))?;
        if t.dims() != var.dims() {
            return Err(load_err(format!(
                "tensor `{name}` has shape {:?}, the model described in {DESCRIPTION_FILE} needs {:?}",
                t.dims(),
                var.dims()
            )));
        }
        if t.dtype() != var.dtype() {
            return Err(load_err(format!("tensor `{name}` has dtype {:?}, expected {:?}", t.dtype(), var.dtype())));
        }
        let values: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(load_err(format!(
                "tensor `{name}` holds {bad} non-finite value(s) of {} (NaN or ±∞): the model was saved from a run that diverged",
                values.len()
            )));
        }
    }
    if let Some(extra) = saved.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        return Err(load_err(format!("unexpected tensor `{extra}`")));
    }
    for (name, var) in expected {
        var.set(&saved[&name].to_device(var.device())?)?;
    }
    Ok(())
}

/// Loads a model directory written by [`save_model`], of either parameterization.
pub fn load_model(dir: &Path, device: &Device) -> Result<SavedModel> {
    let desc = read_description(dir)?;
    let dtype = parse_dtype(&desc, dir)?;
    let wrap = |e: FlowError| match e {
        FlowError::Load { .. } => e,
        other => FlowError::Load { path: dir.join(DESCRIPTION_FILE).display().to_string(), reason: other.to_string() },
    };
    match desc.model {
        ModelKind::Flow(config) => {
            let model = FlowModel::new(config, dtype, device).map_err(wrap)?;
            load_weights(dir, model.vars())?;
            Ok(SavedModel::Flow(model))
        }
        ModelKind::Policy(config) => {
            let model = PolicyModel::new(config, dtype, device).map_err(wrap)?;
            load_weights(dir, model.vars())?;
            Ok(SavedModel::Policy(model))
        }
    }
}

/// Loads a flow model (an error if the directory holds a policy model).
pub fn load_flow_model(dir: &Path, device: &Device) -> Result<FlowModel> {
    match load_model(dir, device)? {
        SavedModel::Flow(m) => Ok(m),
        SavedModel::Policy(_) => Err(FlowError::Load {
            path: dir.display().to_string(),
            reason: "holds a policy model, not a flow model".into(),
        }),
    }
}

/// Loads a policy model (an error if the directory holds a flow model).
pub fn load_policy_model(dir: &Path, device: &Device) -> Result<PolicyModel> {
    match load_model(dir, device)? {
        SavedModel::Policy(m) => Ok(m),
        SavedModel::Flow(_) => Err(FlowError::Load {
            path: dir.display().to_string(),
            reason: "holds a flow model, not a policy model".into(),
        }),
    }
}

impl FlowModel {
    /// Saves the model into `dir` (see [`save_model`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, ModelKind::Flow(self.config().clone()), crate::EgfModel::dtype(self), self.vars())
    }
}

impl PolicyModel {
    /// Saves the model into `dir` (see [`save_model`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, ModelKind::Policy(self.config().clone()), crate::EgfModel::dtype(self), self.vars())
    }
}
