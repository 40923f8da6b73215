//! [`LossValue`], the result of every loss of this crate, and its host copy [`Diagnostics`].

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::{LossError, Result};

/// A differentiable scalar loss and its diagnostics.
///
/// `loss` is the scalar to minimize: calling `loss.backward()` gives the gradient
/// estimator documented by the function that built it. The diagnostics are scalar
/// tensors that have **not** been copied to the host, so that building a loss never
/// waits for the device; [`to_host`](Self::to_host) copies everything at once.
#[derive(Clone, Debug)]
pub struct LossValue {
    /// The scalar loss (rank 0), differentiable with respect to the model's variables.
    pub loss: Tensor,
    /// Named scalar diagnostics (rank 0, detached): the loss's terms and estimates of
    /// the objectives behind it.
    pub terms: Vec<(String, Tensor)>,
    /// Named counts known on the host without touching the device (batch sizes,
    /// truncated trajectories).
    pub counts: Vec<(String, usize)>,
    /// Named counts computed on the device (rank-0 tensors of integer value, e.g. the
    /// number of data points with `t ≤ 0`); [`to_host`](Self::to_host) moves them into
    /// [`Diagnostics::counts`].
    pub device_counts: Vec<(String, Tensor)>,
}

/// A host copy of a [`LossValue`]: `loss`, every term as `f64`, every count as `usize`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Value of [`LossValue::loss`].
    pub loss: f64,
    /// Values of [`LossValue::terms`] by name.
    pub terms: BTreeMap<String, f64>,
    /// [`LossValue::counts`] and [`LossValue::device_counts`] by name.
    pub counts: BTreeMap<String, usize>,
}

impl LossValue {
    /// A loss with no diagnostics.
    pub fn new(loss: Tensor) -> Self {
        Self { loss, terms: Vec::new(), counts: Vec::new(), device_counts: Vec::new() }
    }

    /// Adds a named diagnostic (detached).
    pub fn with_term(mut self, name: &str, value: &Tensor) -> Self {
        self.terms.push((name.to_string(), value.detach()));
        self
    }

    /// Adds a named host count.
    pub fn with_count(mut self, name: &str, count: usize) -> Self {
        self.counts.push((name.to_string(), count));
        self
    }

    /// Adds a named device count (a rank-0 tensor of integer value).
    pub fn with_device_count(mut self, name: &str, count: &Tensor) -> Self {
        self.device_counts.push((name.to_string(), count.detach()));
        self
    }

    /// The diagnostic named `name`, if any.
    pub fn term(&self, name: &str) -> Option<&Tensor> {
        self.terms.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Copies the loss, the terms and the counts to the host in one transfer.
    /// Fails if one of them is not a single number.
    pub fn to_host(&self) -> Result<Diagnostics> {
        let mut parts = Vec::with_capacity(1 + self.terms.len() + self.device_counts.len());
        let all = std::iter::once(("loss", &self.loss))
            .chain(self.terms.iter().map(|(n, t)| (n.as_str(), t)))
            .chain(self.device_counts.iter().map(|(n, t)| (n.as_str(), t)));
        for (name, t) in all {
            if t.elem_count() != 1 {
                return Err(LossError::input(
                    name,
                    format!("a diagnostic must be one number, got shape {:?}", t.dims()),
                ));
            }
            parts.push(t.detach().to_dtype(DType::F64)?.flatten_all()?.to_device(&Device::Cpu)?);
        }
        let values = Tensor::cat(&parts, 0)?.to_vec1::<f64>()?;
        let k = self.terms.len();
        let mut counts: BTreeMap<String, usize> = self.counts.iter().cloned().collect();
        for ((name, _), v) in self.device_counts.iter().zip(&values[1 + k..]) {
            counts.insert(name.clone(), if v.is_finite() && *v > 0.0 { v.round() as usize } else { 0 });
        }
        Ok(Diagnostics {
            loss: values[0],
            terms: self.terms.iter().zip(&values[1..=k]).map(|((n, _), v)| (n.clone(), *v)).collect(),
            counts,
        })
    }
}

/// Checks that `x` is a non-empty `(n, ambient_dim)` batch of `dtype` points of `manifold`; returns `n`.
pub(crate) fn check_points(x: &Tensor, manifold: Manifold, dtype: DType, what: &str) -> Result<usize> {
    match x.dims() {
        [n, c] if *c == manifold.ambient_dim() => {
            if *n == 0 {
                return Err(LossError::EmptyBatch { what: what.into(), unit: "points" });
            }
            if x.dtype() != dtype {
                return Err(LossError::input(
                    what,
                    format!("dtype {:?} differs from the model's {:?}", x.dtype(), dtype),
                ));
            }
            Ok(*n)
        }
        dims => Err(LossError::input(
            what,
            format!("shape {dims:?} is not (n, {}) for points of {manifold}", manifold.ambient_dim()),
        )),
    }
}

/// Checks that a config value is finite.
pub(crate) fn check_finite(field: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(LossError::config(field, format!("{v} is not a finite number")))
    }
}

/// Checks that a config value is finite and `≥ 0`.
pub(crate) fn check_nonnegative(field: &str, v: f64) -> Result<()> {
    check_finite(field, v)?;
    if v < 0.0 {
        return Err(LossError::config(field, format!("{v} is negative")));
    }
    Ok(())
}

/// Checks that a config value is finite and `> 0`.
pub(crate) fn check_positive(field: &str, v: f64) -> Result<()> {
    check_finite(field, v)?;
    if v <= 0.0 {
        return Err(LossError::config(field, format!("{v} is not positive")));
    }
    Ok(())
}

/// A rank-0 tensor holding a host value.
pub(crate) fn host_scalar(v: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::new(v, device)?.to_dtype(dtype)?)
}

/// `x − x.detach()`: value exactly 0, gradient that of `x`. Adding it to a detached
/// estimate gives a loss whose value is the estimate and whose gradient is the surrogate's.
pub(crate) fn gradient_only(x: &Tensor) -> Result<Tensor> {
    Ok((x - x.detach())?)
}
