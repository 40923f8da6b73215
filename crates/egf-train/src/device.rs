//! The tensor device and float type of a run, as written in configs.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Where the tensors of a run live: `"cpu"`, `"cuda"`, `"cuda:N"`, `"metal"` or `"metal:N"`
/// (`N` the device ordinal, 0 when omitted).
///
/// CUDA and Metal need a binary built with the `cuda` or `metal` feature;
/// [`DeviceSpec::build`] says so when it is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The host CPU.
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
    /// An Apple GPU by ordinal.
    Metal(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(0) => f.write_str("metal"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    /// Parses `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N` (ASCII case ignored).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match lower.split_once(':') {
            Some((k, n)) => {
                let n = n
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("device ordinal `{n}` in `{s}` is not a non-negative integer"))?;
                (k.trim().to_string(), Some(n))
            }
            None => (lower.clone(), None),
        };
        match (kind.as_str(), ordinal) {
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("cuda" | "gpu", n) => Ok(DeviceSpec::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(DeviceSpec::Metal(n.unwrap_or(0))),
            _ => Err(format!("unknown device `{s}`; expected cpu, cuda, cuda:N, metal or metal:N")),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl DeviceSpec {
    /// Opens the device. A CUDA or Metal device in a build without the matching
    /// feature, or one that the driver cannot open, is a [`TrainError::Device`]
    /// that says how to fix it.
    pub fn build(&self) -> Result<Device> {
        let hint = |feature: &str| {
            format!("this binary was built without GPU support; rebuild with `--features {feature}` (e.g. `cargo run --release -p egf-cli --features {feature}`)")
        };
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(TrainError::Device { device: self.to_string(), reason: hint("cuda") });
                }
                Device::new_cuda(n).map_err(|e| TrainError::Device { device: self.to_string(), reason: e.to_string() })
            }
            DeviceSpec::Metal(n) => {
                if !candle_core::utils::metal_is_available() {
                    return Err(TrainError::Device { device: self.to_string(), reason: hint("metal") });
                }
                Device::new_metal(n).map_err(|e| TrainError::Device { device: self.to_string(), reason: e.to_string() })
            }
        }
    }
}

/// The float type of the parameters and of every tensor of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DTypeSpec {
    /// 32-bit floats (the default).
    #[default]
    F32,
    /// 64-bit floats.
    F64,
}

impl DTypeSpec {
    /// The candle dtype.
    pub fn dtype(&self) -> DType {
        match self {
            DTypeSpec::F32 => DType::F32,
            DTypeSpec::F64 => DType::F64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(2));
        assert_eq!("metal:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Metal(1));
        assert!("cpu:1".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        for d in [DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(3), DeviceSpec::Metal(0)] {
            assert_eq!(d.to_string().parse::<DeviceSpec>().unwrap(), d);
        }
        assert!(DeviceSpec::Cpu.build().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).build().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
