//! Fused, multi-threaded CPU kernels for the hot element-wise work of the
//! networks. candle's CPU element-wise ops run on one thread and the backward
//! pass of SiLU allocates several temporaries; on the 2-core reference machine
//! these kernels cut the activation cost of a training step roughly in half
//! (see `docs/performance.md`). Other devices use candle's own ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;

const CHUNK: usize = 16 * 1024;

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("egf cpu kernel needs a contiguous input"),
    }
}

fn silu_scalar(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// `d silu / dx = s (1 + x (1 − s))` with `s = σ(x)`.
fn silu_derivative(x: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

struct SiluForward;

impl CustomOp1 for SiluForward {
    fn name(&self) -> &'static str {
        "egf-silu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(v) => {
                let x = contiguous(v, layout)?;
                let mut y = vec![0f32; x.len()];
                y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
                    for (y, x) in y.iter_mut().zip(x) {
                        *y = x / (1.0 + (-x).exp());
                    }
                });
                CpuStorage::F32(y)
            }
            CpuStorage::F64(v) => {
                let x = contiguous(v, layout)?;
                CpuStorage::F64(x.par_iter().map(|x| silu_scalar(*x)).collect())
            }
            _ => candle_core::bail!("egf-silu supports f32 and f64"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &SiluBackward)?))
    }
}

/// `(x, g) ↦ g · silu'(x)`.
struct SiluBackward;

impl CustomOp2 for SiluBackward {
    fn name(&self) -> &'static str {
        "egf-silu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (x, g) = (contiguous(x, l1)?, contiguous(g, l2)?);
                let mut out = vec![0f32; x.len()];
                out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK))).for_each(|(o, (x, g))| {
                    for ((o, x), g) in o.iter_mut().zip(x).zip(g) {
                        let s = 1.0 / (1.0 + (-x).exp());
                        *o = g * s * (1.0 + x * (1.0 - s));
                    }
                });
                CpuStorage::F32(out)
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (x, g) = (contiguous(x, l1)?, contiguous(g, l2)?);
                CpuStorage::F64(x.par_iter().zip(g.par_iter()).map(|(x, g)| g * silu_derivative(*x)).collect())
            }
            _ => candle_core::bail!("egf-silu-backward supports f32 and f64 of the same dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `silu(x) = x σ(x)`, differentiable; a fused multi-threaded kernel on the CPU,
/// candle's op elsewhere.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64) {
        Ok(x.contiguous()?.apply_op1(SiluForward)?)
    } else {
        Ok(candle_nn::ops::silu(x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_silu_matches_candle_value_and_gradient() {
        let data: Vec<f64> = (0..5000).map(|i| (i as f64 - 2500.0) / 100.0).collect();
        let x = Var::new(data.as_slice(), &Device::Cpu).unwrap();
        let y = silu(x.as_tensor()).unwrap();
        let reference = candle_nn::ops::silu(x.as_tensor()).unwrap();
        let diff: f64 = (&y - &reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-12);
        let w = Tensor::new(data.iter().map(|v| v.sin()).collect::<Vec<_>>().as_slice(), &Device::Cpu).unwrap();
        let g1 = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d: f64 =
            (g1.get(&x).unwrap() - g2.get(&x).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-12, "gradient differs by {d}");
    }
}
