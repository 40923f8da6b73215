//! Random tensors drawn from a host-side, seedable generator.
//!
//! candle's own CPU random number generator cannot be seeded, so every random
//! tensor of this workspace is drawn on the host from a [`rand::Rng`] and then
//! copied to the device. A given seed therefore gives the same numbers on CPU,
//! CUDA and Metal, which makes runs reproducible and resumable.

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::tensor_util::tensor_from_f64;
use crate::Result;

/// Tensor of i.i.d. uniform values on `[0, 1)`.
pub fn uniform<R: Rng + ?Sized>(rng: &mut R, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    tensor_from_f64(data, shape, dtype, device)
}

/// Tensor of i.i.d. standard normal values `N(0, 1)`.
pub fn normal<R: Rng + ?Sized>(rng: &mut R, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    tensor_from_f64(data, shape, dtype, device)
}
