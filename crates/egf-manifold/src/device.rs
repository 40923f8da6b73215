//! The tensor device of a run or of a test suite, as written in configs, on command
//! lines and in environment variables.
//!
//! [`DeviceSpec`] is the written form (`cpu`, `cuda:1`, …) and opens the candle
//! [`Device`] with [`DeviceSpec::build`]; [`test_device`] is the device the test
//! suites of this workspace run on, chosen by the `EGF_TEST_DEVICE` variable.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{ManifoldError, Result};

/// The environment variable that selects the device of the test suites (see [`test_device`]).
pub const TEST_DEVICE_VAR: &str = "EGF_TEST_DEVICE";

/// Where tensors live: `"cpu"`, `"cuda"`, `"cuda:N"`, `"metal"` or `"metal:N"`
/// (`N` the device ordinal, 0 when omitted).
///
/// Parsing ([`FromStr`], serde) ignores ASCII case and surrounding blanks and also
/// accepts `gpu` / `gpu:N` for CUDA; [`Display`](fmt::Display) writes the canonical
/// form (`cuda` for ordinal 0, `cuda:N` otherwise), which parses back to the same value.
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
    ///
    /// # Errors
    /// An unknown device name, `cpu:N`, or an ordinal that is not a non-negative
    /// integer, with a message that quotes the input and lists the accepted forms.
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

    /// Same as [`str::parse`]; used by serde.
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    /// The canonical form written by [`Display`](fmt::Display); used by serde.
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl DeviceSpec {
    /// Opens the device.
    ///
    /// # Errors
    /// A CUDA or Metal device in a build without the matching feature, or one that
    /// the driver cannot open, is a [`ManifoldError::Device`] that says how to fix it
    /// (for a missing feature: rebuild with `--features cuda` / `--features metal`).
    pub fn build(&self) -> Result<Device> {
        let hint = |feature: &str| {
            format!("this binary was built without GPU support; rebuild with `--features {feature}` (e.g. `cargo run --release -p egf-cli --features {feature}`)")
        };
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(ManifoldError::Device { device: self.to_string(), reason: hint("cuda") });
                }
                Device::new_cuda(n)
                    .map_err(|e| ManifoldError::Device { device: self.to_string(), reason: e.to_string() })
            }
            DeviceSpec::Metal(n) => {
                if !candle_core::utils::metal_is_available() {
                    return Err(ManifoldError::Device { device: self.to_string(), reason: hint("metal") });
                }
                Device::new_metal(n)
                    .map_err(|e| ManifoldError::Device { device: self.to_string(), reason: e.to_string() })
            }
        }
    }

    /// Reads the device from the environment variable `var`: unset, empty or blank
    /// means [`DeviceSpec::Cpu`], anything else is parsed as by [`str::parse`].
    /// The device is not opened; call [`build`](Self::build) for that.
    ///
    /// # Errors
    /// [`ManifoldError::InvalidEnvVar`], naming the variable and its value, when the
    /// value is not valid Unicode or not a device (`cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`).
    pub fn from_env(var: &str) -> Result<DeviceSpec> {
        let invalid =
            |value: String, reason: String| ManifoldError::InvalidEnvVar { var: var.to_string(), value, reason };
        match std::env::var(var) {
            Err(std::env::VarError::NotPresent) => Ok(DeviceSpec::Cpu),
            Err(std::env::VarError::NotUnicode(raw)) => {
                Err(invalid(raw.to_string_lossy().into_owned(), "not valid Unicode".to_string()))
            }
            Ok(value) if value.trim().is_empty() => Ok(DeviceSpec::Cpu),
            Ok(value) => value.parse().map_err(|reason| invalid(value, reason)),
        }
    }
}

/// The [`DeviceSpec`] of the test suites: `EGF_TEST_DEVICE` ([`TEST_DEVICE_VAR`]) parsed,
/// [`DeviceSpec::Cpu`] when unset or empty. For tests that pass a device spec on (e.g. in
/// a training config) rather than a [`Device`]; [`test_device`] opens it.
///
/// # Panics
/// With a message naming the variable and its value if the value is not a device
/// (tests only; programs should call [`DeviceSpec::from_env`] and handle the error).
pub fn test_device_spec() -> DeviceSpec {
    DeviceSpec::from_env(TEST_DEVICE_VAR).unwrap_or_else(|e| panic!("{e}"))
}

/// The device the test suites run on: `EGF_TEST_DEVICE` ([`TEST_DEVICE_VAR`]), default CPU.
///
/// The variable takes the values of [`DeviceSpec`] (`cpu`, `cuda`, `cuda:N`, `metal`,
/// `metal:N`); unset or empty means `cpu`. The device is opened once per process and
/// every call returns a handle to that same device, so tensors made by different
/// helpers of a test can be mixed (two separately opened CUDA devices cannot).
/// A CUDA or Metal device needs the tests built with `--features cuda` / `--features metal`.
///
/// # Panics
/// With a clear message if the variable is malformed or the device cannot be opened
/// (e.g. `EGF_TEST_DEVICE=cuda` in a build without the `cuda` feature). Meant for tests
/// only; programs should take a [`DeviceSpec`] and handle the error of [`DeviceSpec::build`].
pub fn test_device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let spec = test_device_spec();
            spec.build().unwrap_or_else(|e| {
                panic!("{TEST_DEVICE_VAR}={spec}: {e}; build the tests with the matching feature or unset {TEST_DEVICE_VAR} to run them on the CPU")
            })
        })
        .clone()
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

    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let err = DeviceSpec::Cuda(0).build().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[test]
    fn reads_the_device_from_the_environment() {
        // Variables private to this test, so that it races with no other test.
        let var = "EGF_MANIFOLD_DEVICE_SPEC_UNIT_TEST";
        std::env::remove_var(var);
        assert_eq!(DeviceSpec::from_env(var).unwrap(), DeviceSpec::Cpu);
        for (value, want) in
            [("", DeviceSpec::Cpu), ("  ", DeviceSpec::Cpu), ("cpu", DeviceSpec::Cpu), ("cuda:1", DeviceSpec::Cuda(1))]
        {
            std::env::set_var(var, value);
            assert_eq!(DeviceSpec::from_env(var).unwrap(), want, "{value:?}");
        }
        std::env::set_var(var, "tpu");
        let err = DeviceSpec::from_env(var).unwrap_err().to_string();
        assert!(err.contains(var) && err.contains("tpu"), "{err}");
        std::env::remove_var(var);
    }
}
