//! Imitation learning with the KL-weakFM loss (spec section 5) and the training
//! measure `ν_train` of its weak flow-matching term.

use candle_core::Tensor;
use egf_flow::numerics::log_softplus;
use egf_flow::{EgfModel, FlowModel, SamplerConfig};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::value::{check_finite, check_nonnegative, check_points, check_positive};
use crate::{LossError, LossValue, Result};

/// Weights of the KL-weakFM loss (spec section 5):
/// `L = −E_{x~D} log t_ε(x) + b · vol(S) · E_{s~ν_train} t⁻(s) + c · vol(S) · E_{s~U} g(s)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlWeakFmConfig {
    /// `ε > 0` of the smooth positive surrogate `t_ε = ε · softplus(t / ε)` (default `1e-3`).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// `b ≥ 0`, the weight of the weak flow-matching term (default 5). Keep
    /// `b · w_U ≥ 1` (see [`check_weak_fm_weight`]).
    #[serde(default = "default_negative_weight")]
    pub negative_weight: f64,
    /// `c ≥ 0`, the weight of the outflow regularizer, which bounds the expected
    /// number of moves `∫ g dλ / Z_init` (spec section 4; default 0).
    #[serde(default)]
    pub outflow_weight: f64,
}

fn default_epsilon() -> f64 {
    1e-3
}
fn default_negative_weight() -> f64 {
    5.0
}

impl Default for KlWeakFmConfig {
    fn default() -> Self {
        Self { epsilon: default_epsilon(), negative_weight: default_negative_weight(), outflow_weight: 0.0 }
    }
}

impl KlWeakFmConfig {
    /// Checks `ε > 0`, `b ≥ 0`, `c ≥ 0` (all finite); errors name the field.
    pub fn validate(&self) -> Result<()> {
        check_positive("epsilon", self.epsilon)?;
        check_nonnegative("negative_weight", self.negative_weight)?;
        check_nonnegative("outflow_weight", self.outflow_weight)
    }
}

/// The warning of spec section 5 about the weight `b` of the weak term: `None` when
/// `b · w_U ≥ 1`, else a message giving the negative mass the optimum keeps.
///
/// Moving negative mass `δ` to where there are no data lowers the cross-entropy by
/// `log(1 + δ)` and costs at most `b · w_U · δ` in the weak term (`ν_train` has the
/// density `w_U / vol` on its uniform share), so below the threshold the optimum has
/// `δ = 1/(b · w_U) − 1 > 0` and `−log t` is no longer a log-likelihood.
pub fn check_weak_fm_weight(b: f64, uniform_share: f64) -> Option<String> {
    let product = b * uniform_share;
    if product >= 1.0 {
        return None;
    }
    if product.is_nan() || product <= 0.0 {
        return Some(format!(
            "KL-weakFM: b · w_U = {b} · {uniform_share} is not positive: nothing bounds the negative mass δ = ∫ t⁻ \
             away from the data (spec section 5 requires b · w_U ≥ 1)"
        ));
    }
    Some(format!(
        "KL-weakFM: b · w_U = {b} · {uniform_share} = {product} < 1: the optimum keeps a negative mass \
         δ = 1/(b · w_U) − 1 = {:.4} and −log t is no longer a log-likelihood; use b ≥ {} (spec section 5)",
        1.0 / product - 1.0,
        1.0 / uniform_share
    ))
}

/// The KL-weakFM loss of spec section 5 for a flow model:
///
/// `L = −(1/|D|) Σ_{x∈D} log t_ε(x) + b · vol(S) · (1/|ν|) Σ_{s∈ν} t⁻(s) + c · vol(S) · (1/|U|) Σ_{s∈U} g(s)`
///
/// with `t = f_init + h − g` the virtual terminal density (spec section 3),
/// `t⁻ = max(−t, 0)` and the smooth positive surrogate
/// `log t_ε = log ε + log softplus(t / ε)` (computed by the stable
/// [`log_softplus`]: finite with finite gradients for every `t`, so data points with
/// `t ≤ 0` are pushed up rather than producing `−∞`). The first term is the
/// cross-entropy of `t` (normalized by the mass identity `∫ t dλ = Z_init`); the
/// second only pushes the negative part of `t` to zero; the third bounds trajectory
/// lengths.
///
/// * `data`: `(n, ambient_dim)` data points, `n ≥ 1`;
/// * `nu_train`: points of `ν_train` (see [`sample_nu_train`]), non-empty when `b > 0`;
/// * `uniform`: uniform points, non-empty when `c > 0` (when `c = 0` and they are given,
///   the outflow term is still reported, without gradient).
///
/// `data` and `nu_train` are evaluated in one network pass. Terms: `cross_entropy`,
/// `mean_log_t_eps`, `negative_mass` (`vol · mean t⁻` on `ν_train`), `outflow`
/// (`vol · mean g` on `uniform`, an estimate of `∫ g dλ`). Device counts:
/// `data_t_nonpositive` (data points with `t ≤ 0`), `nu_train_t_negative`.
/// Counts: `data`, `nu_train`, `uniform`.
pub fn kl_weak_fm(
    model: &FlowModel,
    data: &Tensor,
    nu_train: &Tensor,
    uniform: &Tensor,
    config: &KlWeakFmConfig,
) -> Result<LossValue> {
    config.validate()?;
    let manifold = model.manifold();
    let dtype = model.dtype();
    let vol = manifold.volume();
    let n = check_points(data, manifold, dtype, "data")?;
    let use_nu = config.negative_weight > 0.0 || nu_train.elem_count() > 0;
    let m = if use_nu { check_points(nu_train, manifold, dtype, "nu_train")? } else { 0 };
    let use_uniform = config.outflow_weight > 0.0 || uniform.elem_count() > 0;
    let k = if use_uniform { check_points(uniform, manifold, dtype, "uniform")? } else { 0 };

    let points = if m > 0 { Tensor::cat(&[data, nu_train], 0)? } else { data.clone() };
    let t_all = model.evaluate(&points)?.t;
    let t_data = t_all.narrow(0, 0, n)?;
    let log_t_eps = (log_softplus(&(&t_data / config.epsilon)?)? + config.epsilon.ln())?;
    let mean_log_t = log_t_eps.mean_all()?;
    let cross_entropy = mean_log_t.neg()?;
    let nonpositive = t_data.le(0.0)?.to_dtype(dtype)?.sum_all()?;
    let mut loss = cross_entropy.clone();
    let mut value = LossValue::new(cross_entropy.clone())
        .with_term("cross_entropy", &cross_entropy)
        .with_term("mean_log_t_eps", &mean_log_t)
        .with_count("data", n)
        .with_device_count("data_t_nonpositive", &nonpositive);
    if m > 0 {
        let t_nu = t_all.narrow(0, n, m)?;
        let negative = (t_nu.neg()?.relu()?.mean_all()? * vol)?;
        if config.negative_weight > 0.0 {
            loss = (loss + (&negative * config.negative_weight)?)?;
        }
        let count = t_nu.lt(0.0)?.to_dtype(dtype)?.sum_all()?;
        value = value
            .with_term("negative_mass", &negative)
            .with_count("nu_train", m)
            .with_device_count("nu_train_t_negative", &count);
    }
    if k > 0 {
        let g = model.outflow(uniform)?.log_g.exp()?;
        let outflow = (g.mean_all()? * vol)?;
        if config.outflow_weight > 0.0 {
            loss = (loss + (&outflow * config.outflow_weight)?)?;
        }
        value = value.with_term("outflow", &outflow).with_count("uniform", k);
    }
    value.loss = loss;
    Ok(value)
}

/// How the training measure `ν_train` of the weak term mixes its three sources (spec section 5).
///
/// A batch of `n` points has `round(w_U n)` uniform points, `round(w_O n)` on-policy
/// samples of the current model (detached; capped so the two fit in `n`) and the rest
/// data points perturbed by noise of scale `data_noise` on the manifold
/// ([`Manifold::perturb`](egf_manifold::Manifold::perturb)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NuTrainConfig {
    /// `w_U ∈ [0, 1]`, the share of uniform points (default 0.5).
    #[serde(default = "default_uniform_share")]
    pub uniform_share: f64,
    /// Scale `σ ≥ 0` of the perturbation of data points (radians on the sphere,
    /// coordinate units on the torus; default 0.02).
    #[serde(default = "default_data_noise")]
    pub data_noise: f64,
    /// `w_O ∈ [0, 1 − w_U]`, the share of on-policy samples (default 0).
    #[serde(default)]
    pub on_policy_share: f64,
}

fn default_uniform_share() -> f64 {
    0.5
}
fn default_data_noise() -> f64 {
    0.02
}

impl Default for NuTrainConfig {
    fn default() -> Self {
        Self { uniform_share: default_uniform_share(), data_noise: default_data_noise(), on_policy_share: 0.0 }
    }
}

/// Move cap of the on-policy share of [`sample_nu_train`].
pub const DEFAULT_ON_POLICY_MAX_MOVES: usize = 1000;

impl NuTrainConfig {
    /// Checks `w_U, w_O ∈ [0, 1]`, `w_U + w_O ≤ 1`, `σ ≥ 0`; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("uniform_share", self.uniform_share), ("on_policy_share", self.on_policy_share)] {
            check_finite(field, v)?;
            if !(0.0..=1.0).contains(&v) {
                return Err(LossError::config(field, format!("{v} is not in [0, 1]")));
            }
        }
        if self.uniform_share + self.on_policy_share > 1.0 + 1e-12 {
            return Err(LossError::config(
                "on_policy_share",
                format!("uniform_share + on_policy_share = {} exceeds 1", self.uniform_share + self.on_policy_share),
            ));
        }
        check_nonnegative("data_noise", self.data_noise)
    }

    /// The numbers `(uniform, data, on_policy)` of points of a batch of `n`.
    pub fn split(&self, n: usize) -> (usize, usize, usize) {
        let n_u = ((self.uniform_share * n as f64).round() as usize).min(n);
        let n_o = ((self.on_policy_share * n as f64).round() as usize).min(n - n_u);
        (n_u, n - n_u - n_o, n_o)
    }
}

/// Draws `n` points of `ν_train` (see [`NuTrainConfig`]): uniform points first, then
/// data rows drawn with replacement and perturbed, then on-policy samples of the
/// model's sampler (at most [`DEFAULT_ON_POLICY_MAX_MOVES`] moves, detached). `data`
/// may be empty only when the data share is 0. All randomness comes from `rng`.
pub fn sample_nu_train<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    data: &Tensor,
    n: usize,
    config: &NuTrainConfig,
    rng: &mut R,
) -> Result<Tensor> {
    sample_nu_train_with(model, data, n, config, DEFAULT_ON_POLICY_MAX_MOVES, rng)
}

/// [`sample_nu_train`] with the move cap `max_moves` of the on-policy samples.
pub fn sample_nu_train_with<M: EgfModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    data: &Tensor,
    n: usize,
    config: &NuTrainConfig,
    max_moves: usize,
    rng: &mut R,
) -> Result<Tensor> {
    config.validate()?;
    if n == 0 {
        return Err(LossError::EmptyBatch { what: "nu_train".into(), unit: "points" });
    }
    let manifold = model.manifold();
    let (dtype, device) = (model.dtype(), model.device());
    let (n_u, n_d, n_o) = config.split(n);
    let mut parts = Vec::with_capacity(3);
    if n_u > 0 {
        parts.push(manifold.sample_uniform(n_u, rng, dtype, device)?);
    }
    if n_d > 0 {
        let rows = check_points(data, manifold, dtype, "data")?;
        let idx: Vec<u32> = (0..n_d).map(|_| rng.random_range(0..rows) as u32).collect();
        let x = data.index_select(&Tensor::new(idx, data.device())?, 0)?.detach();
        parts.push(if config.data_noise > 0.0 { manifold.perturb(&x, config.data_noise, rng)? } else { x });
    }
    if n_o > 0 {
        let sampler = SamplerConfig { max_moves, defensive_weight: 0.0, record_trajectories: false };
        parts.push(egf_flow::sample(model, n_o, &sampler, rng)?.samples.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}
