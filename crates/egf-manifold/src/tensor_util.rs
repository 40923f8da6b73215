//! Small helpers to move exact `f64` host data into tensors of any dtype and device.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// Builds a tensor of shape `shape` and dtype `dtype` on `device` from row-major
/// `f64` host data. Conversion to `f32` happens on the host, so only the final
/// dtype crosses to the device.
pub fn tensor_from_f64(data: Vec<f64>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let t = match dtype {
        DType::F64 => Tensor::from_vec(data, shape, device)?,
        DType::F32 => Tensor::from_vec(data.into_iter().map(|v| v as f32).collect::<Vec<f32>>(), shape, device)?,
        other => Tensor::from_vec(data, shape, device)?.to_dtype(other)?,
    };
    Ok(t)
}

/// Copies a rank-2 tensor to the host as row-major `f64` values, with its shape `(rows, cols)`.
pub fn tensor_to_f64_rows(t: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let (r, c) = t.dims2()?;
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((v, r, c))
}
