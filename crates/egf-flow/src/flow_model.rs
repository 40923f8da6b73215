//! The flow parameterization (spec section 3): a network for the star outflow
//! `g(x) ≥ 0` and the move policy `α(x) ∈ Δ^(p−1)`, from which the star inflow
//! `h`, the total flow `F` and the virtual terminal density `t` follow exactly.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};
use egf_diffeo::{Family, FamilySpec};
use egf_manifold::{Manifold, QuadratureGrid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::features::{FeatureConfig, FeatureMap};
use crate::model::{EgfModel, PolicyLogProbs};
use crate::network::{Mlp, NetworkConfig};
use crate::numerics::{log_softmax_last, log_softplus, logsumexp};
use crate::{FlowError, Result};

/// How the outflow head `u` becomes `g ≥ 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutflowLink {
    /// `g = e^u` (`log g = u` exactly).
    #[default]
    Exp,
    /// `g = softplus(u)` (`log g` by the stable [`log_softplus`]).
    Softplus,
}

/// Everything that defines a flow model's shape (serialized in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowModelConfig {
    /// The manifold.
    pub manifold: Manifold,
    /// The family of moves.
    pub family: FamilySpec,
    /// Input features.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Network shape (one network, heads `[u, logits α_1 … α_p]`).
    #[serde(default)]
    pub network: NetworkConfig,
    /// Link from the outflow head to `g`.
    #[serde(default)]
    pub outflow_link: OutflowLink,
    /// Initial value of `∫ g dλ / Z_init`, the expected number of moves of the
    /// initial model (the outflow bias is set so that `g ≈ this · f_init`).
    #[serde(default = "default_initial_moves")]
    pub initial_expected_moves: f64,
    /// Whether `log Z_init` is learned (reinforcement learning) or fixed at `initial_log_z`.
    #[serde(default)]
    pub learn_log_z: bool,
    /// Initial (or fixed) `log Z_init`; 0 in imitation learning (`Z_init = 1`).
    #[serde(default)]
    pub initial_log_z: f64,
    /// Seed of the weight initialization.
    #[serde(default)]
    pub seed: u64,
}

fn default_initial_moves() -> f64 {
    1.0
}

impl FlowModelConfig {
    /// A config with defaults for everything but the manifold and the family.
    pub fn new(manifold: Manifold, family: FamilySpec) -> Self {
        Self {
            manifold,
            family,
            features: FeatureConfig::default(),
            network: NetworkConfig::default(),
            outflow_link: OutflowLink::Exp,
            initial_expected_moves: default_initial_moves(),
            learn_log_z: false,
            initial_log_z: 0.0,
            seed: 0,
        }
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.manifold.validate()?;
        self.network.validate("network")?;
        if !(self.initial_expected_moves.is_finite() && self.initial_expected_moves > 0.0) {
            return Err(FlowError::InvalidConfig {
                field: "initial_expected_moves".into(),
                reason: format!("{} is not a positive number", self.initial_expected_moves),
            });
        }
        if !self.initial_log_z.is_finite() {
            return Err(FlowError::InvalidConfig { field: "initial_log_z".into(), reason: "not finite".into() });
        }
        Ok(())
    }
}

/// A flow model `(g, α)` with initial flow `f_init = Z_init / vol` (spec section 3).
pub struct FlowModel {
    config: FlowModelConfig,
    family: Family,
    features: FeatureMap,
    net: Mlp,
    vars: VarMap,
    log_z: Tensor,
    device: Device,
    dtype: DType,
}

/// The exact flow quantities at a batch of points `y` (spec section 3), all
/// differentiable with respect to the parameters.
#[derive(Clone, Debug)]
pub struct FlowTerms {
    /// `log g(y)`, `(n,)`.
    pub log_g: Tensor,
    /// `log α_i(y)`, `(n, p)`.
    pub log_alpha: Tensor,
    /// `log[α_i(Φ_i⁻¹ y) g(Φ_i⁻¹ y) |det D(Φ_i⁻¹)(y)|]`, `(p, n)`: the inflow by each move.
    pub log_inflow_by_move: Tensor,
    /// `log f_init = log Z_init − log vol`, `(1,)`.
    pub log_f_init: Tensor,
    /// `log h(y) = log Σ_i exp(log_inflow_by_move[i])`, `(n,)`.
    pub log_h: Tensor,
    /// `log F(y) = log(f_init + h(y))`, `(n,)`.
    pub log_total_flow: Tensor,
    /// `g(y)`, `(n,)`.
    pub g: Tensor,
    /// `h(y)`, `(n,)`.
    pub h: Tensor,
    /// `t(y) = f_init + h(y) − g(y)`, the virtual terminal density, `(n,)`.
    pub t: Tensor,
}

/// Outflow and move policy at points, without the star inflow (one network pass per point).
#[derive(Clone, Debug)]
pub struct OutflowTerms {
    /// `log g(x)`, `(n,)`.
    pub log_g: Tensor,
    /// `log α_i(x)`, `(n, p)`.
    pub log_alpha: Tensor,
}

/// Integrals of a flow model over a quadrature grid (spec sections 3 and 7), in `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MassReport {
    /// `∫ t dλ` (equals `Z_init` by the mass identity).
    pub integral_t: f64,
    /// `∫ t⁺ dλ = Z_init + δ`.
    pub integral_t_plus: f64,
    /// `δ = ∫ t⁻ dλ`, the negative mass.
    pub negative_mass: f64,
    /// `∫ g dλ`, the outflow mass (`/ Z_init`: expected moves when `t ≥ 0`).
    pub integral_g: f64,
    /// `∫ h dλ` (equals `∫ g` by the mass identity).
    pub integral_h: f64,
    /// `Z_init`.
    pub z_init: f64,
    /// Number of grid points.
    pub grid_points: usize,
}

impl FlowModel {
    /// A freshly initialized model (weights from `config.seed`).
    pub fn new(config: FlowModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        config.validate()?;
        let family = Family::from_spec_on(&config.family, config.manifold, dtype, device)?;
        let features = FeatureMap::new(config.manifold, &config.features)?;
        let p = family.len();
        let vars = VarMap::new();
        {
            // the parameters of learnable maps are trained and saved with the network
            let mut data = vars.data().lock().expect("var map lock");
            for (name, var) in family.parameters() {
                data.insert(name, var);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let vol = config.manifold.volume();
        // g ≈ moves · f_init at initialization, uniform α
        let g0 = config.initial_expected_moves * config.initial_log_z.exp() / vol;
        let u0 = match config.outflow_link {
            OutflowLink::Exp => g0.ln(),
            OutflowLink::Softplus => g0 + (-(-g0).exp_m1()).ln(), // softplus⁻¹(g0) = log(e^g0 − 1)
        };
        let mut bias = vec![0.0; 1 + p];
        bias[0] = u0;
        let net = Mlp::new(&vars, "net", features.dim(), 1 + p, &config.network, &bias, &mut rng, dtype, device)?;
        let log_z = vars.get(1, "log_z", Init::Const(config.initial_log_z), dtype, device)?;
        let log_z = if config.learn_log_z { log_z } else { log_z.detach() };
        Ok(Self { config, family, features, net, vars, log_z, device: device.clone(), dtype })
    }

    /// The configuration.
    pub fn config(&self) -> &FlowModelConfig {
        &self.config
    }

    /// The variables (for optimizers and save/load). `log_z` is among them but
    /// only receives gradients when `learn_log_z` is set.
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// Mutable access to the variables (for loading weights).
    pub fn vars_mut(&mut self) -> &mut VarMap {
        &mut self.vars
    }

    /// The network variables (`net.*`), in a deterministic (name) order.
    pub fn network_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.vars).into_iter().filter(|(n, _)| n.starts_with("net.")).collect()
    }

    /// The variables of the family's learnable maps (`family.map<i>.*`, see
    /// [`Family::parameters`]), in name order; empty when every map is fixed.
    pub fn map_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.vars).into_iter().filter(|(n, _)| n.starts_with(FAMILY_PREFIX)).collect()
    }

    /// The `log_z` variable (trainable only when `learn_log_z`).
    pub fn log_z_var(&self) -> Var {
        self.vars.data().lock().expect("var map lock").get("log_z").expect("log_z exists").clone()
    }

    /// Number of scalar parameters: the network's, those of learnable maps, and
    /// `log Z_init` when learned.
    pub fn parameter_count(&self) -> usize {
        let count = |vars: Vec<(String, Var)>| vars.iter().map(|(_, v)| v.elem_count()).sum::<usize>();
        count(self.network_vars()) + count(self.map_vars()) + usize::from(self.config.learn_log_z)
    }

    /// `log f_init = log Z_init − log vol`, shape `(1,)`.
    pub fn log_f_init(&self) -> Result<Tensor> {
        Ok((&self.log_z - self.config.manifold.log_volume())?)
    }

    /// Network outputs at `x`: `log g` `(n,)` and `log α` `(n, p)`.
    pub fn outflow(&self, x: &Tensor) -> Result<OutflowTerms> {
        self.outflow_with(x, true)
    }

    fn outflow_with(&self, x: &Tensor, track: bool) -> Result<OutflowTerms> {
        self.config.manifold.check_shape(x)?;
        let features = self.features.apply(x)?;
        let out = if track { self.net.forward(&features)? } else { self.net.forward_detached(&features)? };
        let p = self.family.len();
        let u = out.narrow(1, 0, 1)?.squeeze(1)?;
        let log_g = match self.config.outflow_link {
            OutflowLink::Exp => u,
            OutflowLink::Softplus => log_softplus(&u)?,
        };
        let log_alpha = log_softmax_last(&out.narrow(1, 1, p)?)?;
        Ok(OutflowTerms { log_g, log_alpha })
    }

    /// The flow at `y` (spec section 3): one network pass over the `(1 + p) n`
    /// points `y, Φ_1⁻¹ y, …, Φ_p⁻¹ y`.
    pub fn evaluate(&self, y: &Tensor) -> Result<FlowTerms> {
        self.evaluate_with(y, true)
    }

    /// [`evaluate`](Self::evaluate) without recording the autograd graph: the
    /// same values, bounded memory (used by evaluation, sampling and density maps).
    pub fn evaluate_detached(&self, y: &Tensor) -> Result<FlowTerms> {
        self.evaluate_with(y, false)
    }

    fn evaluate_with(&self, y: &Tensor, track: bool) -> Result<FlowTerms> {
        let n = y.dim(0)?;
        if n == 0 {
            return Err(FlowError::InvalidInput("empty batch of points".into()));
        }
        let p = self.family.len();
        let (pre, log_det) = self.family.preimages(y)?;
        // learnable maps make the preimages depend on their variables
        let (pre, log_det) = if track { (pre, log_det) } else { (pre.detach(), log_det.map(|l| l.detach())) };
        let all = Tensor::cat(&[y, &pre], 0)?;
        let out = self.outflow_with(&all, track)?;
        let log_g = out.log_g.narrow(0, 0, n)?;
        let log_alpha = out.log_alpha.narrow(0, 0, n)?;
        // α_i at the i-th preimage: the diagonal of the (p, n, p) block
        let alpha_pre = out.log_alpha.narrow(0, n, p * n)?.reshape((p, n, p))?;
        let diag_index =
            Tensor::arange(0u32, p as u32, y.device())?.reshape((p, 1, 1))?.broadcast_as((p, n, 1))?.contiguous()?;
        let log_alpha_own = alpha_pre.gather(&diag_index, 2)?.squeeze(2)?;
        let log_g_pre = out.log_g.narrow(0, n, p * n)?.reshape((p, n))?;
        let mut log_inflow_by_move = (log_alpha_own + log_g_pre)?;
        if let Some(ld) = log_det {
            log_inflow_by_move = (log_inflow_by_move + ld)?;
        }
        let log_h = logsumexp(&log_inflow_by_move, 0)?;
        let log_f_init = if track { self.log_f_init()? } else { self.log_f_init()?.detach() };
        let log_total_flow = logsumexp(&Tensor::cat(&[&log_f_init.broadcast_as((1, n))?, &log_inflow_by_move], 0)?, 0)?;
        let g = log_g.exp()?;
        let h = log_h.exp()?;
        let t = (h.broadcast_add(&log_f_init.exp()?)? - &g)?;
        Ok(FlowTerms { log_g, log_alpha, log_inflow_by_move, log_f_init, log_h, log_total_flow, g, h, t })
    }

    /// `∫ t`, `∫ t⁺`, `δ = ∫ t⁻`, `∫ g`, `∫ h` by the quadrature `grid`, evaluated
    /// in chunks of `chunk` points so memory stays bounded. No gradients.
    pub fn mass_report(&self, grid: &QuadratureGrid, chunk: usize) -> Result<MassReport> {
        if grid.manifold() != self.config.manifold {
            return Err(FlowError::InvalidInput(format!(
                "grid on {} for a model on {}",
                grid.manifold(),
                self.config.manifold
            )));
        }
        let mut acc = [0.0f64; 5];
        for (start, len) in grid.chunks(chunk) {
            let (x, w) = grid.chunk_tensors(start, len, self.dtype, &self.device)?;
            let terms = self.evaluate_detached(&x)?;
            let t = terms.t.detach();
            let parts = [&t, &t.relu()?, &t.neg()?.relu()?, &terms.g.detach(), &terms.h.detach()];
            for (a, v) in acc.iter_mut().zip(parts) {
                *a += (v * &w)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
            }
        }
        Ok(MassReport {
            integral_t: acc[0],
            integral_t_plus: acc[1],
            negative_mass: acc[2],
            integral_g: acc[3],
            integral_h: acc[4],
            z_init: self.z_init()?,
            grid_points: grid.len(),
        })
    }

    /// `Z_init = exp(log Z_init)`.
    pub fn z_init(&self) -> Result<f64> {
        Ok(self.log_z.to_dtype(DType::F64)?.to_vec1::<f64>()?[0].exp())
    }

    /// Log of the reported density of spec section 7,
    /// `p(x) = (1 − w) t⁺(x) / ∫ t⁺ + w / vol`, with `∫ t⁺` from `mass`;
    /// finite at every point for `w > 0`. Shape `(n,)`, no gradients.
    pub fn log_reported_density(&self, x: &Tensor, mass: &MassReport, defensive_weight: f64) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&defensive_weight) {
            return Err(FlowError::InvalidInput(format!("defensive weight {defensive_weight} is not in [0, 1]")));
        }
        let t_plus = self.evaluate_detached(x)?.t.relu()?;
        let scale = (1.0 - defensive_weight) / mass.integral_t_plus;
        Ok(t_plus.affine(scale, defensive_weight / self.config.manifold.volume())?.log()?)
    }
}

impl EgfModel for FlowModel {
    fn manifold(&self) -> Manifold {
        self.config.manifold
    }
    fn family(&self) -> &Family {
        &self.family
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn log_z(&self) -> Result<Tensor> {
        Ok(self.log_z.clone())
    }

    /// Forward: `π_F(stop | s) = t⁺(s)/F(s)`, `π_F(move i | s) = min(1, g/F) α_i(s)`;
    /// backward (spec section 4): `π_B(start | y) = f_init/F(y)`,
    /// `π_B(unmove i | y) = α_i(Φ_i⁻¹ y) g(Φ_i⁻¹ y) |det D(Φ_i⁻¹)(y)| / F(y)`.
    fn policy_log_probs(&self, s: &Tensor) -> Result<PolicyLogProbs> {
        self.policy_log_probs_with(s, true, None)
    }

    /// `π_F(stop | s) = t_ε(s)/F(s)` (spec section 5); the other columns are exact.
    fn policy_log_probs_smoothed_stop(&self, s: &Tensor, epsilon: f64) -> Result<PolicyLogProbs> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(FlowError::InvalidInput(format!("stop smoothing ε = {epsilon} is not a positive number")));
        }
        self.policy_log_probs_with(s, true, Some(epsilon))
    }

    fn policy_log_probs_detached(&self, s: &Tensor) -> Result<PolicyLogProbs> {
        self.policy_log_probs_with(s, false, None)
    }
}

impl FlowModel {
    /// The policies; `stop_epsilon` replaces `log t⁺` by `log t_ε` in the stop column.
    fn policy_log_probs_with(&self, s: &Tensor, track: bool, stop_epsilon: Option<f64>) -> Result<PolicyLogProbs> {
        let terms = self.evaluate_with(s, track)?;
        let log_f = terms.log_total_flow.unsqueeze(1)?;
        // log min(1, g/F)
        let log_move = (terms.log_g.unsqueeze(1)? - &log_f)?.minimum(0.0)?;
        let log_t = match stop_epsilon {
            Some(eps) => (log_softplus(&(&terms.t / eps)?)? + eps.ln())?,
            None => {
                let positive = terms.t.gt(0.0)?;
                let tiny = match self.dtype {
                    DType::F64 => 1e-300,
                    _ => 1e-37,
                };
                let log_t = terms.t.maximum(tiny)?.log()?;
                let neg_inf = log_t.ones_like()?.affine(0.0, f64::NEG_INFINITY)?;
                positive.where_cond(&log_t, &neg_inf)?
            }
        };
        let log_stop = (log_t.unsqueeze(1)? - &log_f)?;
        let forward = Tensor::cat(&[log_stop, terms.log_alpha.broadcast_add(&log_move)?], 1)?;
        let n = s.dim(0)?;
        let backward =
            Tensor::cat(&[terms.log_f_init.reshape((1, 1))?.broadcast_as((n, 1))?, terms.log_inflow_by_move.t()?], 1)?
                .broadcast_sub(&log_f)?;
        Ok(PolicyLogProbs { forward, backward })
    }
}

/// Prefix of the names of the learnable maps' variables ([`Family::parameters`]).
const FAMILY_PREFIX: &str = "family.";

/// Variables of a map sorted by name.
pub(crate) fn sorted_vars(vars: &VarMap) -> Vec<(String, Var)> {
    let data = vars.data().lock().expect("var map lock");
    let mut all: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

impl std::fmt::Debug for FlowModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowModel")
            .field("config", &self.config)
            .field("parameters", &self.parameter_count())
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish()
    }
}
