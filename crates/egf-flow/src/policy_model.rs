//! The policy parameterization (spec section 6): a forward head over
//! `{stop, move 1 … p}`, a backward head over `{start, unmove 1 … p}` and a learned `log Z`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};
use egf_diffeo::{Family, FamilySpec};
use egf_manifold::Manifold;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::features::{FeatureConfig, FeatureMap};
use crate::flow_model::sorted_vars;
use crate::model::{EgfModel, PolicyLogProbs};
use crate::network::{Mlp, NetworkConfig};
use crate::numerics::log_softmax_last;
use crate::Result;

/// Everything that defines a policy model's shape (serialized in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyModelConfig {
    /// The manifold.
    pub manifold: Manifold,
    /// The family of moves.
    pub family: FamilySpec,
    /// Input features.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Network shape (one network, heads `[forward logits (1+p), backward logits (1+p)]`).
    #[serde(default)]
    pub network: NetworkConfig,
    /// Initial stop probability of the forward policy (the stop logit's bias is
    /// set so that the expected trajectory length starts near `1/stop − 1`).
    #[serde(default = "default_initial_stop")]
    pub initial_stop_probability: f64,
    /// Initial `log Z`.
    #[serde(default)]
    pub initial_log_z: f64,
    /// Seed of the weight initialization.
    #[serde(default)]
    pub seed: u64,
}

fn default_initial_stop() -> f64 {
    0.5
}

impl PolicyModelConfig {
    /// A config with defaults for everything but the manifold and the family.
    pub fn new(manifold: Manifold, family: FamilySpec) -> Self {
        Self {
            manifold,
            family,
            features: FeatureConfig::default(),
            network: NetworkConfig::default(),
            initial_stop_probability: default_initial_stop(),
            initial_log_z: 0.0,
            seed: 0,
        }
    }
}

/// A policy model `(π_F, π_B, log Z)`.
pub struct PolicyModel {
    config: PolicyModelConfig,
    family: Family,
    features: FeatureMap,
    net: Mlp,
    vars: VarMap,
    log_z: Tensor,
    device: Device,
    dtype: DType,
}

impl PolicyModel {
    /// A freshly initialized model.
    pub fn new(config: PolicyModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        config.manifold.validate()?;
        config.network.validate("network")?;
        let stop = config.initial_stop_probability;
        if !(stop > 0.0 && stop < 1.0) {
            return Err(crate::FlowError::InvalidConfig {
                field: "initial_stop_probability".into(),
                reason: format!("{stop} is not in (0, 1)"),
            });
        }
        let family = Family::from_spec(&config.family, config.manifold)?;
        if !family.parameters().is_empty() {
            return Err(crate::FlowError::InvalidConfig {
                field: "family".into(),
                reason: "learnable maps need the flow parameterization (FlowModel): the policy \
                         parameterization trains on sampled trajectories, whose states do not follow \
                         a change of the maps"
                    .into(),
            });
        }
        let features = FeatureMap::new(config.manifold, &config.features)?;
        let p = family.len();
        let vars = VarMap::new();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        // forward: stop logit so that softmax gives `stop` against p equal move logits
        let mut bias = vec![0.0; 2 * (1 + p)];
        bias[0] = (stop / (1.0 - stop) * p as f64).ln();
        bias[1 + p] = bias[0];
        let net = Mlp::new(&vars, "net", features.dim(), 2 * (1 + p), &config.network, &bias, &mut rng, dtype, device)?;
        let log_z = vars.get(1, "log_z", Init::Const(config.initial_log_z), dtype, device)?;
        Ok(Self { config, family, features, net, vars, log_z, device: device.clone(), dtype })
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyModelConfig {
        &self.config
    }

    /// The variables (network and `log_z`).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// Mutable access to the variables (for loading weights).
    pub fn vars_mut(&mut self) -> &mut VarMap {
        &mut self.vars
    }

    /// All variables sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.vars)
    }

    /// Number of scalar parameters including `log Z`.
    pub fn parameter_count(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

impl EgfModel for PolicyModel {
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
    fn policy_log_probs(&self, s: &Tensor) -> Result<PolicyLogProbs> {
        self.policy_log_probs_with(s, true)
    }

    fn policy_log_probs_detached(&self, s: &Tensor) -> Result<PolicyLogProbs> {
        self.policy_log_probs_with(s, false)
    }
}

impl PolicyModel {
    fn policy_log_probs_with(&self, s: &Tensor, track: bool) -> Result<PolicyLogProbs> {
        self.config.manifold.check_shape(s)?;
        let p = self.family.len();
        let features = self.features.apply(s)?;
        let out = if track { self.net.forward(&features)? } else { self.net.forward_detached(&features)? };
        Ok(PolicyLogProbs {
            forward: log_softmax_last(&out.narrow(1, 0, 1 + p)?)?,
            backward: log_softmax_last(&out.narrow(1, 1 + p, 1 + p)?)?,
        })
    }
}

impl std::fmt::Debug for PolicyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyModel")
            .field("config", &self.config)
            .field("parameters", &self.parameter_count())
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish()
    }
}
