//! The tensor device and float type of a run, as written in configs.
//!
//! [`DeviceSpec`] lives in `egf-manifold` (so that every crate, and every test suite
//! through [`egf_manifold::test_device`], can use it) and is re-exported here; opening
//! an unavailable device is a [`TrainError::Device`](crate::TrainError::Device) once
//! converted with `?`.

use candle_core::DType;
use serde::{Deserialize, Serialize};

pub use egf_manifold::DeviceSpec;

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
    use crate::TrainError;

    #[test]
    fn dtypes() {
        assert_eq!(DTypeSpec::default().dtype(), DType::F32);
        assert_eq!(DTypeSpec::F64.dtype(), DType::F64);
    }

    #[test]
    fn unavailable_device_is_a_train_device_error() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let err = TrainError::from(DeviceSpec::Cuda(0).build().unwrap_err());
        assert!(matches!(&err, TrainError::Device { device, .. } if device == "cuda"), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("device `cuda` is not available: ") && msg.contains("--features cuda"), "{msg}");
    }
}
