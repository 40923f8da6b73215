//! A plain multilayer perceptron with seeded initialization.
//!
//! candle-nn's own initializers draw from candle's unseedable CPU generator, so
//! the weights here are drawn on the host from a seeded [`ChaCha8Rng`] and stored
//! in a [`VarMap`] (which also gives safetensors save/load and the variables for
//! the optimizer).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarMap};
use egf_manifold::random;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fused_mlp::FusedMlp;
use crate::{FlowError, Result};

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x σ(x)`.
    #[default]
    Silu,
    /// `max(x, 0)`.
    Relu,
    /// `tanh x`.
    Tanh,
    /// Gaussian error linear unit (erf form).
    Gelu,
}

impl Activation {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Silu => crate::cpu_kernels::silu(x)?,
            Activation::Relu => x.relu()?,
            Activation::Tanh => x.tanh()?,
            Activation::Gelu => x.gelu_erf()?,
        })
    }
}

/// Shape of a network: `depth` hidden layers of `width` units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Units per hidden layer.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Number of hidden layers (the network has `depth + 1` linear layers).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Hidden nonlinearity.
    #[serde(default)]
    pub activation: Activation,
}

fn default_width() -> usize {
    64
}
fn default_depth() -> usize {
    3
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { width: default_width(), depth: default_depth(), activation: Activation::Silu }
    }
}

impl NetworkConfig {
    /// Checks the shape; `prefix` names the config section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if self.width == 0 || self.width > 1 << 16 {
            return Err(FlowError::InvalidConfig {
                field: format!("{prefix}.width"),
                reason: format!("{} is not in 1..=65536", self.width),
            });
        }
        if self.depth > 64 {
            return Err(FlowError::InvalidConfig {
                field: format!("{prefix}.depth"),
                reason: format!("{} is not in 0..=64", self.depth),
            });
        }
        Ok(())
    }
}

/// `x ↦ W_L σ(… σ(W_1 x + b_1) …) + b_L`, weights in a shared [`VarMap`] under `name.l{i}.{weight,bias}`.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
    /// `inputs, width, …, width, outputs`.
    sizes: Vec<usize>,
    activation: Activation,
}

impl Mlp {
    /// Creates the layers `inputs → width → … → outputs` in `vars`, initialized
    /// like PyTorch's default (`U(−1/√fan_in, 1/√fan_in)` for weights and biases)
    /// from `rng`. The output bias is then set to `output_bias` (one value per output, or empty).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vars: &VarMap,
        name: &str,
        inputs: usize,
        outputs: usize,
        config: &NetworkConfig,
        output_bias: &[f64],
        rng: &mut ChaCha8Rng,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut sizes = vec![inputs];
        sizes.extend(std::iter::repeat_n(config.width, config.depth));
        sizes.push(outputs);
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for (i, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let wname = format!("{name}.l{i}.weight");
            let bname = format!("{name}.l{i}.bias");
            let weight = vars.get((fan_out, fan_in), &wname, Init::Const(0.0), dtype, device)?;
            let bias = vars.get(fan_out, &bname, Init::Const(0.0), dtype, device)?;
            let wv = ((random::uniform(rng, &[fan_out, fan_in], dtype, device)? * (2.0 * bound))? - bound)?;
            let mut bv = ((random::uniform(rng, &[fan_out], dtype, device)? * (2.0 * bound))? - bound)?;
            if i == sizes.len() - 2 && !output_bias.is_empty() {
                bv = egf_manifold::tensor_util::tensor_from_f64(output_bias.to_vec(), &[fan_out], dtype, device)?;
            }
            set_var(vars, &wname, &wv)?;
            set_var(vars, &bname, &bv)?;
            layers.push((weight, bias.unsqueeze(0)?));
        }
        Ok(Self { layers, sizes, activation: config.activation })
    }

    /// Applies the network to a batch `(n, inputs)` → `(n, outputs)`, recording
    /// the autograd graph.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }

    /// Like [`forward`](Self::forward) but on detached weights: no graph is
    /// recorded, so each activation is freed as soon as the next one exists
    /// (evaluation, sampling, density maps).
    pub fn forward_detached(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, false)
    }

    fn forward_with(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 && FusedMlp::supports(self.activation) {
            self.forward_fused(x, track)
        } else {
            self.forward_ops(x, track)
        }
    }

    /// The CPU `f32` path: the whole network as one fused operation of `x` and
    /// the concatenated parameters `θ = (W_0, b_0, W_1, b_1, …)`, see [`crate::fused_mlp`].
    fn forward_fused(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let mut pieces = Vec::with_capacity(2 * self.layers.len());
        for (weight, bias) in &self.layers {
            let (weight, bias) = if track { (weight.clone(), bias.clone()) } else { (weight.detach(), bias.detach()) };
            pieces.push(weight.flatten_all()?);
            pieces.push(bias.flatten_all()?);
        }
        let theta = Tensor::cat(&pieces, 0)?;
        let op = FusedMlp::new(self.sizes.clone(), self.activation, track);
        Ok(x.contiguous()?.apply_op2(&theta, op)?)
    }

    /// The same network from candle's ops (every device and dtype).
    pub(crate) fn forward_ops(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        // The bias enters as the rank-1 product 1·bᵀ: its gradient is then the
        // matmul 1ᵀ·G, several times faster on the CPU than candle's strided
        // reduction over the batch that a broadcast addition produces.
        let ones = Tensor::ones((x.dim(0)?, 1), x.dtype(), x.device())?;
        for (i, (weight, bias)) in self.layers.iter().enumerate() {
            let (weight, bias) = if track { (weight.clone(), bias.clone()) } else { (weight.detach(), bias.detach()) };
            h = (h.matmul(&weight.t()?)? + ones.matmul(&bias)?)?;
            if i < last {
                h = self.activation.apply(&h)?;
            }
        }
        Ok(h)
    }
}

fn set_var(vars: &VarMap, name: &str, value: &Tensor) -> Result<()> {
    let data = vars.data().lock().expect("var map lock poisoned");
    let var = data.get(name).expect("variable created just before");
    var.set(value)?;
    Ok(())
}
