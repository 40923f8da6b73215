//! The whole multilayer perceptron as one fused CPU operation, forward and
//! backward, for `f32` on the CPU.
//!
//! A training step of the earth configuration spends most of its time in the
//! network (7 168 evaluations of a 256 × 5 MLP per 512 data points, spec
//! section 7). Built from candle ops, each layer costs a matmul plus a bias
//! addition, an activation and — in the backward pass — candle's gradient
//! bookkeeping (a zero tensor and an addition per intermediate), most of it on
//! one thread. Here the network is one [`CustomOp2`] of `(x, θ)` where `θ` is the
//! concatenation of every layer's `(W_l, b_l)`:
//!
//! * forward: `Z_l = A_l W_lᵀ + 1 b_lᵀ` by one `gemm` call per layer that
//!   accumulates onto the broadcast bias, then `A_{l+1} = σ(Z_l)` by a
//!   vectorized, multi-threaded kernel that also keeps what the backward pass
//!   needs (for SiLU the sigmoid `S_l = 1/(1 + e^{−Z_l})`, so no exponential is
//!   recomputed);
//! * backward, from `G_L = ∂L/∂out`: `∂L/∂W_l = G_lᵀ A_l`, `∂L/∂b_l = 1ᵀ G_l`,
//!   `G_{l−1} = (G_l W_l) ⊙ σ'(Z_{l−1})` with
//!   `silu'(z) = s + a (1 − s)` (`s = σ(z)`, `a = z s`), `relu'(z) = [a > 0]`,
//!   `tanh'(z) = 1 − a²`.
//!
//! Candle's autograd sees one node, so the gradient reaches the per-layer
//! variables through the concatenation and the rest of the loss graph is
//! untouched. Other devices and dtypes use the candle ops of [`crate::network`];
//! the two paths agree to rounding (tested below).

use std::mem::MaybeUninit;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Storage, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::network::Activation;

/// Rows per parallel task of the element-wise kernels.
const ROWS_PER_TASK: usize = 256;

/// Below this many multiply-adds a matrix product runs on one thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// What the backward pass needs from the forward pass.
struct Activations {
    /// `A_0 = x`, then `A_{l+1} = σ(Z_l)` for every hidden layer, row-major `(n, width_l)`.
    a: Vec<Vec<f32>>,
    /// For SiLU: `S_l = 1/(1 + e^{−Z_l})` per hidden layer; empty otherwise.
    s: Vec<Vec<f32>>,
}

/// The fused network `(x, θ) ↦ MLP_θ(x)` of layer sizes `sizes[0] → … → sizes[L+1]`.
pub(crate) struct FusedMlp {
    sizes: Vec<usize>,
    activation: Activation,
    /// Keep the activations for a backward pass (training); dropped with the graph.
    keep: bool,
    saved: Mutex<Option<Activations>>,
}

impl FusedMlp {
    /// Whether the fused path handles `activation` (GELU stays on candle's ops).
    pub(crate) fn supports(activation: Activation) -> bool {
        matches!(activation, Activation::Silu | Activation::Relu | Activation::Tanh)
    }

    /// An operation for layer sizes `sizes` (inputs, hidden widths…, outputs);
    /// `keep` saves the activations for the backward pass.
    pub(crate) fn new(sizes: Vec<usize>, activation: Activation, keep: bool) -> Self {
        Self { sizes, activation, keep, saved: Mutex::new(None) }
    }

    /// Number of entries of `θ`: `Σ_l (fan_out · fan_in + fan_out)`.
    pub(crate) fn parameter_len(sizes: &[usize]) -> usize {
        sizes.windows(2).map(|w| w[1] * w[0] + w[1]).sum()
    }

    fn layers(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        // (fan_in, fan_out, offset of W_l in θ); b_l follows W_l
        let mut offset = 0;
        self.sizes.windows(2).map(move |w| {
            let here = offset;
            offset += w[1] * w[0] + w[1];
            (w[0], w[1], here)
        })
    }

    /// The forward pass on host slices; returns the output `(n, outputs)` and,
    /// when `keep`, the activations.
    fn forward(&self, x: &[f32], theta: &[f32], keep: bool) -> (Vec<f32>, Option<Activations>) {
        let n = x.len() / self.sizes[0];
        let last = self.sizes.len() - 2;
        let mut saved = Activations { a: Vec::new(), s: Vec::new() };
        let mut input: Vec<f32> = x.to_vec();
        for (l, (fan_in, fan_out, offset)) in self.layers().enumerate() {
            let weight = &theta[offset..offset + fan_out * fan_in];
            let bias = &theta[offset + fan_out * fan_in..offset + fan_out * fan_in + fan_out];
            let mut z = broadcast_rows(bias, n);
            // Z (n × fan_out) += A (n × fan_in) · Wᵀ, Wᵀ read in place from the row-major W
            matmul_into(&mut z, true, n, fan_out, fan_in, (&input, 1, fan_in as isize), (weight, fan_in as isize, 1));
            let previous = std::mem::take(&mut input);
            if keep {
                saved.a.push(previous);
            }
            if l == last {
                return (z, keep.then_some(saved));
            }
            let s = self.activate(&mut z, keep);
            if keep && self.activation == Activation::Silu {
                saved.s.push(s);
            }
            input = z;
        }
        unreachable!("a network has at least one layer")
    }

    /// Overwrites `z` with `σ(z)`; for SiLU returns `σ_logistic(z)` when `keep` (else empty).
    fn activate(&self, z: &mut [f32], keep: bool) -> Vec<f32> {
        let chunk = ROWS_PER_TASK * 64;
        match self.activation {
            Activation::Silu if keep => filled_vec(z.len(), |s| {
                z.par_chunks_mut(chunk).zip(s.par_chunks_mut(chunk)).for_each(|(z, s)| {
                    for (z, s) in z.iter_mut().zip(s.iter_mut()) {
                        let sigma = logistic(*z);
                        s.write(sigma);
                        *z *= sigma;
                    }
                })
            }),
            Activation::Silu => {
                z.par_chunks_mut(chunk).for_each(|z| z.iter_mut().for_each(|z| *z *= logistic(*z)));
                Vec::new()
            }
            Activation::Relu => {
                z.par_chunks_mut(chunk).for_each(|z| z.iter_mut().for_each(|z| *z = z.max(0.0)));
                Vec::new()
            }
            Activation::Tanh => {
                z.par_chunks_mut(chunk).for_each(|z| z.iter_mut().for_each(|z| *z = z.tanh()));
                Vec::new()
            }
            Activation::Gelu => unreachable!("GELU is not fused (FusedMlp::supports)"),
        }
    }

    /// The backward pass: `(∂L/∂x, ∂L/∂θ)` from `∂L/∂out`.
    fn backward(&self, saved: &Activations, theta: &[f32], grad_out: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = saved.a[0].len() / self.sizes[0];
        let mut grad_theta = vec![0f32; theta.len()];
        let layers: Vec<_> = self.layers().collect();
        let mut g = grad_out.to_vec();
        for (l, &(fan_in, fan_out, offset)) in layers.iter().enumerate().rev() {
            let a = &saved.a[l];
            let (grad_w, rest) = grad_theta[offset..].split_at_mut(fan_out * fan_in);
            // ∂L/∂W_l (fan_out × fan_in) = G_lᵀ A_l
            matmul_into(grad_w, false, fan_out, fan_in, n, (&g, fan_out as isize, 1), (a, 1, fan_in as isize));
            column_sums(&g, fan_out, &mut rest[..fan_out]);
            // ∂L/∂A_l (n × fan_in) = G_l W_l
            let weight = &theta[offset..offset + fan_out * fan_in];
            let mut grad_a = matmul_new(n, fan_in, fan_out, (&g, 1, fan_out as isize), (weight, 1, fan_in as isize));
            if l == 0 {
                return (grad_a, grad_theta);
            }
            self.times_derivative(&mut grad_a, &saved.a[l], saved.s.get(l - 1).map(Vec::as_slice));
            g = grad_a;
        }
        unreachable!("a network has at least one layer")
    }

    /// `grad ⊙ σ'(Z)` in place, from the activation `a = σ(Z)` (and `s` for SiLU).
    fn times_derivative(&self, grad: &mut [f32], a: &[f32], s: Option<&[f32]>) {
        let chunk = ROWS_PER_TASK * 64;
        match (self.activation, s) {
            (Activation::Silu, Some(s)) => {
                grad.par_chunks_mut(chunk).zip(a.par_chunks(chunk).zip(s.par_chunks(chunk))).for_each(|(g, (a, s))| {
                    for ((g, a), s) in g.iter_mut().zip(a).zip(s) {
                        *g *= s + a * (1.0 - s);
                    }
                })
            }
            (Activation::Relu, _) => grad.par_chunks_mut(chunk).zip(a.par_chunks(chunk)).for_each(|(g, a)| {
                for (g, a) in g.iter_mut().zip(a) {
                    *g = if *a > 0.0 { *g } else { 0.0 };
                }
            }),
            (Activation::Tanh, _) => grad.par_chunks_mut(chunk).zip(a.par_chunks(chunk)).for_each(|(g, a)| {
                for (g, a) in g.iter_mut().zip(a) {
                    *g *= 1.0 - a * a;
                }
            }),
            _ => unreachable!("SiLU activations are saved with their sigmoid"),
        }
    }
}

/// `1/(1 + e^{−z})` with a vectorizable exponential.
#[inline(always)]
fn logistic(z: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-z))
}

/// `e^x` for `f32`, written so that LLVM vectorizes it with baseline x86-64
/// (SSE2) instructions: `x = k ln 2 + r` with `|r| ≤ ln 2 / 2`, `k` rounded to
/// nearest by adding and subtracting `1.5·2²³`, `e^r` by its degree-7 Taylor
/// polynomial (relative error below `5·10⁻⁹`), `2^k` through the exponent bits.
/// Inputs are clamped to `[−87, 88]`, so the result is a normal float
/// (`e^{−87} ≈ 1.6·10⁻³⁸` stands for anything smaller, `e^{88} ≈ 1.7·10³⁸` for
/// anything larger); NaN stays NaN.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUNDER: f32 = 12_582_912.0; // 1.5·2²³: its ulp is 1
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let k = shifted - ROUNDER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // the low mantissa bits of `shifted` hold k (two's complement) for |k| < 2²²
    let k_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    p * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

/// A vector of `len` entries, all written by `fill` (which must write every one)
/// before the vector exists: no zeroing pass over memory that is overwritten anyway.
fn filled_vec(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialized all `len` entries (the contract of every caller below).
    unsafe { v.set_len(len) };
    v
}

/// `(n, width)` rows each equal to `row`.
fn broadcast_rows(row: &[f32], n: usize) -> Vec<f32> {
    filled_vec(n * row.len(), |out| {
        out.par_chunks_mut(row.len() * ROWS_PER_TASK).for_each(|rows| {
            for r in rows.chunks_mut(row.len()) {
                r.iter_mut().zip(row).for_each(|(d, v)| {
                    d.write(*v);
                });
            }
        })
    })
}

/// `out[j] = Σ_r g[r, j]` for a row-major `(n, width)` matrix `g`.
fn column_sums(g: &[f32], width: usize, out: &mut [f32]) {
    let partial = g
        .par_chunks(width * ROWS_PER_TASK * 4)
        .fold(
            || vec![0f32; width],
            |mut acc, rows| {
                for row in rows.chunks(width) {
                    acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
                acc
            },
        )
        .reduce(
            || vec![0f32; width],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    out.copy_from_slice(&partial);
}

/// `dst (m × n, row-major) = [dst +] lhs · rhs` with `lhs (m × k)` and `rhs (k × n)`
/// given as `(data, column stride, row stride)` in elements.
fn matmul_into(
    dst: &mut [f32],
    accumulate: bool,
    m: usize,
    n: usize,
    k: usize,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
) {
    assert_eq!(dst.len(), m * n, "destination shape");
    // SAFETY: `dst` is an initialized, exclusively borrowed m × n buffer.
    unsafe { gemm_raw(dst.as_mut_ptr(), accumulate, m, n, k, lhs, rhs) }
}

/// `lhs · rhs` into a new row-major `(m × n)` vector (strides as in [`matmul_into`]).
fn matmul_new(m: usize, n: usize, k: usize, lhs: (&[f32], isize, isize), rhs: (&[f32], isize, isize)) -> Vec<f32> {
    if k == 0 {
        return vec![0f32; m * n];
    }
    filled_vec(m * n, |dst| {
        // SAFETY: gemm with `read_dst = false` and k ≥ 1 writes all m × n entries of `dst`.
        unsafe { gemm_raw(dst.as_mut_ptr().cast(), false, m, n, k, lhs, rhs) }
    })
}

/// # Safety
/// `dst` must point to `m × n` writable `f32`s (initialized when `accumulate`),
/// not aliasing `lhs` or `rhs`.
unsafe fn gemm_raw(
    dst: *mut f32,
    accumulate: bool,
    m: usize,
    n: usize,
    k: usize,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    check_extent(lhs, m, k);
    check_extent(rhs, k, n);
    let parallelism = if m * n * k >= PARALLEL_MIN_FLOPS {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: `check_extent` keeps every index of `lhs` (m × k) and `rhs` (k × n)
    // inside its slice; the caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.1,
            lhs.2,
            rhs.0.as_ptr(),
            rhs.1,
            rhs.2,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Panics unless every index `i·rs + j·cs` (`i < rows`, `j < cols`) lies inside `data`.
fn check_extent((data, cs, rs): (&[f32], isize, isize), rows: usize, cols: usize) {
    assert!(cs >= 0 && rs >= 0, "negative strides");
    if rows * cols > 0 {
        let last = (rows - 1) * rs as usize + (cols - 1) * cs as usize;
        assert!(last < data.len(), "matrix ({rows} × {cols}) outside its buffer of {}", data.len());
    }
}

fn contiguous<'a>(data: &'a [f32], layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("egf-fused-mlp needs contiguous inputs"),
    }
}

/// The `f32` contents of a contiguous CPU tensor, borrowed.
fn with_host<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(f(contiguous(v, layout)?)),
        _ => candle_core::bail!("egf-fused-mlp runs on f32 CPU tensors"),
    }
}

impl CustomOp2 for FusedMlp {
    fn name(&self) -> &'static str {
        "egf-fused-mlp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(theta)) = (s1, s2) else {
            candle_core::bail!("egf-fused-mlp runs on f32 tensors")
        };
        let (x, theta) = (contiguous(x, l1)?, contiguous(theta, l2)?);
        let (n, inputs) = l1.shape().dims2()?;
        if inputs != self.sizes[0] || theta.len() != Self::parameter_len(&self.sizes) {
            candle_core::bail!(
                "egf-fused-mlp: input ({n}, {inputs}) and {} parameters for layer sizes {:?}",
                theta.len(),
                self.sizes
            );
        }
        let (out, saved) = self.forward(x, theta, self.keep);
        if saved.is_some() {
            *self.saved.lock().expect("activation cache lock") = saved;
        }
        Ok((CpuStorage::F32(out), Shape::from((n, *self.sizes.last().expect("sizes")))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        theta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let theta = theta.contiguous()?;
        let mut saved = self.saved.lock().expect("activation cache lock");
        if saved.is_none() {
            // forwarded without keeping the activations: recompute them
            let x = x.contiguous()?;
            *saved = with_host(&x, |x| with_host(&theta, |t| self.forward(x, t, true).1))??;
        }
        let saved = saved.as_ref().expect("activations present");
        let (grad_x, grad_theta) = with_host(&theta, |t| with_host(&grad_res, |g| self.backward(saved, t, g)))??;
        let grad_x = Tensor::from_vec(grad_x, x.shape(), &Device::Cpu)?;
        let grad_theta = Tensor::from_vec(grad_theta, theta.shape(), &Device::Cpu)?;
        Ok((Some(grad_x), Some(grad_theta)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Mlp, NetworkConfig};
    use candle_core::{DType, Var};
    use candle_nn::VarMap;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    }

    /// The fused path and candle's ops give the same outputs and the same
    /// gradients for every weight, bias and the input, in both the
    /// single-threaded (small) and the parallel (large) matrix products.
    #[test]
    fn fused_network_matches_candle_ops_in_value_and_gradient() {
        for (activation, n, width) in [
            (Activation::Silu, 37, 16),
            (Activation::Silu, 2048, 64),
            (Activation::Relu, 301, 32),
            (Activation::Tanh, 301, 32),
        ] {
            let vars = VarMap::new();
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let config = NetworkConfig { width, depth: 3, activation };
            let mlp = Mlp::new(&vars, "net", 5, 7, &config, &[], &mut rng, DType::F32, &Device::Cpu).unwrap();
            let x =
                Var::from_tensor(&(Tensor::randn(0f32, 1.0, (n, 5), &Device::Cpu).unwrap() * 2.0).unwrap()).unwrap();
            let weights = Tensor::randn(0f32, 1.0, (n, 7), &Device::Cpu).unwrap();
            let fused = mlp.forward(x.as_tensor()).unwrap();
            let ops = mlp.forward_ops(x.as_tensor(), true).unwrap();
            assert!(max_rel_diff(&fused, &ops) < 1e-5, "{activation:?}: outputs differ");
            let g_fused = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ops = (&ops * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let data = vars.data().lock().unwrap();
            assert_eq!(data.len(), 8, "4 layers of weights and biases");
            for (name, var) in data.iter().chain([(&"x".to_string(), &x)]) {
                let (a, b) = (g_fused.get(var).unwrap(), g_ops.get(var).unwrap());
                assert!(max_rel_diff(a, b) < 1e-4, "{activation:?} n = {n}: gradient of {name} differs");
            }
        }
    }

    /// With detached weights only the input is differentiated: the activations
    /// were not kept, so the backward pass recomputes them.
    #[test]
    fn input_gradient_on_detached_weights_recomputes_the_activations() {
        let vars = VarMap::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mlp =
            Mlp::new(&vars, "net", 3, 2, &NetworkConfig::default(), &[], &mut rng, DType::F32, &Device::Cpu).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (50, 3), &Device::Cpu).unwrap()).unwrap();
        let fused = mlp.forward_detached(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let ops = mlp.forward_ops(x.as_tensor(), false).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_rel_diff(fused.get(&x).unwrap(), ops.get(&x).unwrap()) < 1e-5);
        assert!(vars.data().lock().unwrap().values().all(|v| fused.get(v).is_none()));
    }

    #[test]
    fn vectorized_exponential_is_accurate_to_a_few_ulps() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let exact = (x as f64).exp();
            worst = worst.max(((exp_approx(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp_approx(-1e4), exp_approx(-87.0));
        assert!(exp_approx(1e4).is_finite());
        assert!(exp_approx(f32::NAN).is_nan());
    }
}
