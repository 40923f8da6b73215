//! Evaluation of a flow model (spec section 7): the proper reported density
//! `p = (1 − w) t⁺ / ∫ t⁺ + w / vol`, its NLL over **every** point, the negative mass
//! `δ`, the fraction of points with `t ≤ 0`, the importance-sampling NLL of what the
//! chain really produces, and sampler statistics; plus density grids for figures.

use candle_core::{DType, Tensor};
use egf_data::{Reward, Target};
use egf_flow::{FlowModel, MassReport, SamplerConfig};
use egf_manifold::{Manifold, QuadratureGrid};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Settings of [`evaluate`] and of the periodic validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// Resolution of the quadrature grid for `∫ t⁺`, `δ`, `∫ g`: points per axis on the
    /// torus, Gauss–Legendre latitudes on `S^2` (with twice as many longitudes). Validation
    /// uses it; the final [`evaluate`] integrates at twice it and checks against it.
    #[serde(default = "default_resolution")]
    pub quadrature_resolution: usize,
    /// Defensive uniform weight `w` of the reported density (spec section 7).
    #[serde(default = "default_defensive_weight")]
    pub defensive_weight: f64,
    /// Backward trajectories `K` per point of the importance-sampling NLL; 0 skips it.
    #[serde(default = "default_importance_samples")]
    pub importance_samples: usize,
    /// Cap on the moves of each backward trajectory.
    #[serde(default = "default_max_moves")]
    pub importance_max_moves: usize,
    /// Number of forward chains for the trajectory-length statistics; 0 skips them.
    #[serde(default = "default_sampler_chains")]
    pub sampler_chains: usize,
    /// Cap `T_max` on the moves of each forward chain.
    #[serde(default = "default_max_moves")]
    pub sampler_max_moves: usize,
    /// Points per network evaluation (bounds memory).
    #[serde(default = "default_chunk")]
    pub chunk: usize,
    /// Resolution of the density grids of the comparison figure (`figure.json`).
    #[serde(default = "default_figure_resolution")]
    pub figure_resolution: usize,
    /// Independent batches `M` drawn at every validation to measure the variance of the
    /// step's gradient estimator (see [`GradientVariance`]); 0 (the default) skips the
    /// measurement, otherwise `M ≥ 2`. Each batch costs one loss and backward pass.
    #[serde(default)]
    pub gradient_probes: usize,
}

fn default_resolution() -> usize {
    64
}
fn default_defensive_weight() -> f64 {
    1e-3
}
fn default_importance_samples() -> usize {
    16
}
fn default_max_moves() -> usize {
    1000
}
fn default_sampler_chains() -> usize {
    1000
}
fn default_chunk() -> usize {
    8192
}
fn default_figure_resolution() -> usize {
    128
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            quadrature_resolution: default_resolution(),
            defensive_weight: default_defensive_weight(),
            importance_samples: default_importance_samples(),
            importance_max_moves: default_max_moves(),
            sampler_chains: default_sampler_chains(),
            sampler_max_moves: default_max_moves(),
            chunk: default_chunk(),
            figure_resolution: default_figure_resolution(),
            gradient_probes: 0,
        }
    }
}

impl EvalSettings {
    /// Checks the ranges; `prefix` names the config section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let field = |f: &str| format!("{prefix}.{f}");
        if self.quadrature_resolution == 0 {
            return Err(TrainError::config(field("quadrature_resolution"), "must be > 0"));
        }
        if !(self.defensive_weight > 0.0 && self.defensive_weight < 1.0) {
            return Err(TrainError::config(
                field("defensive_weight"),
                format!(
                    "{} is not in (0, 1): the reported density needs w > 0 to be finite everywhere",
                    self.defensive_weight
                ),
            ));
        }
        if self.chunk == 0 {
            return Err(TrainError::config(field("chunk"), "must be > 0"));
        }
        if self.figure_resolution == 0 {
            return Err(TrainError::config(field("figure_resolution"), "must be > 0"));
        }
        if self.gradient_probes == 1 {
            return Err(TrainError::config(
                field("gradient_probes"),
                "1 batch gives no variance: use 0 (off) or at least 2",
            ));
        }
        if self.importance_samples > 0 && self.importance_max_moves == 0 {
            return Err(TrainError::config(field("importance_max_moves"), "must be > 0"));
        }
        Ok(())
    }

    /// Resolution of the rule the final [`evaluate`] reports on: twice
    /// `quadrature_resolution` (whose rule becomes the [`QuadratureCheck`]).
    pub fn report_resolution(&self) -> usize {
        2 * self.quadrature_resolution
    }

    /// The quadrature grid of `manifold` at `quadrature_resolution`.
    pub fn grid(&self, manifold: Manifold) -> Result<QuadratureGrid> {
        Ok(QuadratureGrid::new(manifold, self.quadrature_resolution)?)
    }
}

/// The proper-density NLL of a point set and the mass of the model (cheap; used for validation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NllReport {
    /// Number of points scored.
    pub points: usize,
    /// Mean of `−log p(x)` over every point, `p` the reported density of spec section 7.
    pub nll: f64,
    /// Fraction of the points with `t(x) ≤ 0` (scored through the defensive uniform part only).
    pub fraction_nonpositive: f64,
    /// `∫ t`, `∫ t⁺`, `δ`, `∫ g`, `∫ h`, `Z_init` on the quadrature grid.
    pub mass: MassReport,
}

/// Importance-sampling estimate of the NLL of the chain's output (spec section 6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    /// `−mean log p̂(x)` over the points with a finite estimate.
    pub nll: f64,
    /// Points whose estimate is `−∞` or NaN (every sampled trajectory had probability 0).
    pub nonfinite_points: usize,
    /// Backward trajectories per point `K`.
    pub samples_per_point: usize,
    /// Backward trajectories truncated at the cap.
    pub truncated: usize,
    /// Fraction of backward trajectories truncated at the cap.
    pub truncation_rate: f64,
    /// Mean moves of the backward trajectories.
    pub mean_moves: f64,
}

/// Trajectory-length statistics of the forward sampler (bare chain, no defensive draws).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerReport {
    /// Number of chains.
    pub chains: usize,
    /// Mean number of moves (≈ `∫ g / Z_init` when `t ≥ 0`).
    pub mean_moves: f64,
    /// Largest number of moves.
    pub max_moves: u32,
    /// Chains stopped at the cap.
    pub truncated: usize,
    /// Fraction of chains stopped at the cap.
    pub truncation_rate: f64,
}

/// The integrals of [`evaluate`] on the coarser of its two quadrature grids.
///
/// The reported density is normalized by `∫ t⁺` computed by quadrature (spec section 7).
/// A model with peaks narrower than the grid's spacing is integrated wrongly, and the
/// error goes straight into the NLL: `−log` of the ratio of the two normalizations when
/// the defensive weight is small. [`evaluate`] therefore integrates on the grid of
/// resolution `2 R` (`R = quadrature_resolution`; on `S²` twice the latitudes and the
/// longitudes, four times the points) for the numbers it reports, and on the grid of `R`
/// for this check; `nll_change` far from 0 says that `R` (validation uses it) does not
/// resolve the model. A small `nll_change` is not proof that `2R` does: check also that
/// `∫ t dλ` is `Z_init` on both rules (the mass identity, spec section 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuadratureCheck {
    /// The coarse grid's resolution `R`.
    pub resolution: usize,
    /// Its number of points.
    pub points: usize,
    /// `∫ t dλ` on it: the mass identity `∫ t dλ = Z_init` holds exactly, so its distance
    /// from `Z_init` (like that of the report's `integral_t`) measures the rule's error
    /// independently of `nll_change`, which two equally unresolved rules can make small.
    #[serde(default)]
    pub integral_t: f64,
    /// `∫ t⁺ dλ` on it.
    pub integral_t_plus: f64,
    /// `δ = ∫ t⁻ dλ` on it.
    pub negative_mass: f64,
    /// The NLL of the same points with the coarse grid's `∫ t⁺` (nats).
    pub nll: f64,
    /// The reported NLL minus `nll`: the quadrature's error estimate in nats.
    pub nll_change: f64,
}

/// Everything [`evaluate`] measures (serializes to JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of points scored.
    pub points: usize,
    /// NLL of the proper reported density over every point (nats w.r.t. `λ`).
    pub nll: f64,
    /// Fraction of points with `t ≤ 0`.
    pub fraction_nonpositive: f64,
    /// Defensive weight `w` used.
    pub defensive_weight: f64,
    /// `δ = ∫ t⁻ dλ`.
    pub negative_mass: f64,
    /// `∫ t dλ` (`= Z_init` by the mass identity).
    pub integral_t: f64,
    /// `∫ t⁺ dλ`.
    pub integral_t_plus: f64,
    /// `∫ g dλ` (expected moves × `Z_init` when `t ≥ 0`).
    pub integral_g: f64,
    /// `Z_init`.
    pub z_init: f64,
    /// Quadrature points used for the integrals (the grid of twice
    /// `quadrature_resolution`, see [`QuadratureCheck`]).
    pub quadrature_points: usize,
    /// The same integrals and NLL on the grid of `quadrature_resolution`: how far the
    /// quadrature is from converged (absent in reports written before the check existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quadrature_check: Option<QuadratureCheck>,
    /// Importance-sampling NLL (absent when `importance_samples = 0`).
    pub importance: Option<ImportanceReport>,
    /// Sampler statistics (absent when `sampler_chains = 0`).
    pub sampler: Option<SamplerReport>,
    /// Number of scalar parameters of the model.
    pub parameters: usize,
    /// For a toy target: the NLL of the true density on the same points (the best achievable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_nll: Option<f64>,
}

impl EvalReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// The proper-density NLL of `points` (every point counted) and the model's mass report.
pub fn validation_nll(model: &FlowModel, points: &Tensor, settings: &EvalSettings) -> Result<NllReport> {
    let grid = settings.grid(egf_flow::EgfModel::manifold(model))?;
    let mass = model.mass_report(&grid, settings.chunk)?;
    nll_with_mass(model, points, settings, mass)
}

fn nll_with_mass(model: &FlowModel, points: &Tensor, settings: &EvalSettings, mass: MassReport) -> Result<NllReport> {
    let n = points.dim(0)?;
    if n == 0 {
        return Err(TrainError::Flow(egf_flow::FlowError::InvalidInput("no points to evaluate".into())));
    }
    let (mut sum, mut nonpositive) = (0.0f64, 0usize);
    let chunk = settings.chunk.max(1);
    for start in (0..n).step_by(chunk) {
        let x = points.narrow(0, start, chunk.min(n - start))?;
        let log_p = model.log_reported_density(&x, &mass, settings.defensive_weight)?;
        sum += host_f64(&log_p)?.iter().sum::<f64>();
        let t = model.evaluate(&x)?.t.detach();
        nonpositive += host_f64(&t)?.iter().filter(|v| v.is_nan() || **v <= 0.0).count();
    }
    Ok(NllReport { points: n, nll: -sum / n as f64, fraction_nonpositive: nonpositive as f64 / n as f64, mass })
}

/// Full evaluation of `model` on `points` (spec section 7): NLL of the proper density
/// over every point, fraction with `t ≤ 0`, `δ`, `∫ t`, `∫ g` (on the quadrature grid of
/// twice `quadrature_resolution`, checked against the grid of `quadrature_resolution`:
/// [`QuadratureCheck`]), the importance-sampling
/// NLL with `K` backward trajectories per point (truncations reported), the mean and
/// largest trajectory length and truncation rate of `sampler_chains` forward chains,
/// and the parameter count. Random draws come from `rng`.
pub fn evaluate<R: Rng + ?Sized>(
    model: &FlowModel,
    points: &Tensor,
    settings: &EvalSettings,
    rng: &mut R,
) -> Result<EvalReport> {
    settings.validate("eval")?;
    let coarse = validation_nll(model, points, settings)?;
    let fine_settings = EvalSettings { quadrature_resolution: settings.report_resolution(), ..settings.clone() };
    let nll = validation_nll(model, points, &fine_settings)?;
    let quadrature_check = QuadratureCheck {
        resolution: settings.quadrature_resolution,
        points: coarse.mass.grid_points,
        integral_t: coarse.mass.integral_t,
        integral_t_plus: coarse.mass.integral_t_plus,
        negative_mass: coarse.mass.negative_mass,
        nll: coarse.nll,
        nll_change: nll.nll - coarse.nll,
    };
    let n = nll.points;
    let importance = if settings.importance_samples > 0 {
        let k = settings.importance_samples;
        let chunk = (settings.chunk / k).max(1);
        let est = egf_flow::importance_log_density(model, points, k, settings.importance_max_moves, chunk, rng)?;
        let lp = host_f64(&est.log_density)?;
        let finite: Vec<f64> = lp.iter().copied().filter(|v| v.is_finite()).collect();
        let nll = if finite.is_empty() { f64::INFINITY } else { -finite.iter().sum::<f64>() / finite.len() as f64 };
        Some(ImportanceReport {
            nll,
            nonfinite_points: n - finite.len(),
            samples_per_point: k,
            truncated: est.truncated,
            truncation_rate: est.truncated as f64 / (k * n) as f64,
            mean_moves: est.mean_moves,
        })
    } else {
        None
    };
    let sampler = sampler_report(model, settings, rng)?;
    Ok(EvalReport {
        points: n,
        nll: nll.nll,
        fraction_nonpositive: nll.fraction_nonpositive,
        defensive_weight: settings.defensive_weight,
        negative_mass: nll.mass.negative_mass,
        integral_t: nll.mass.integral_t,
        integral_t_plus: nll.mass.integral_t_plus,
        integral_g: nll.mass.integral_g,
        z_init: nll.mass.z_init,
        quadrature_points: nll.mass.grid_points,
        quadrature_check: Some(quadrature_check),
        importance,
        sampler,
        parameters: model.parameter_count(),
        target_nll: None,
    })
}

/// Trajectory-length statistics of `settings.sampler_chains` forward chains of the bare
/// sampler (no defensive draws, cap `settings.sampler_max_moves`, spec section 4);
/// `None` when `sampler_chains = 0`. When `t ≥ 0` the mean number of moves estimates
/// `∫ g dλ / Z_init`.
pub fn sampler_report<R: Rng + ?Sized>(
    model: &FlowModel,
    settings: &EvalSettings,
    rng: &mut R,
) -> Result<Option<SamplerReport>> {
    if settings.sampler_chains == 0 {
        return Ok(None);
    }
    let config =
        SamplerConfig { max_moves: settings.sampler_max_moves, defensive_weight: 0.0, record_trajectories: false };
    let out = egf_flow::sample(model, settings.sampler_chains, &config, rng)?;
    Ok(Some(SamplerReport {
        chains: settings.sampler_chains,
        mean_moves: out.mean_moves(),
        max_moves: out.max_moves(),
        truncated: out.truncated_count(),
        truncation_rate: out.truncated_count() as f64 / settings.sampler_chains as f64,
    }))
}

/// The spread of a stochastic gradient estimator at fixed parameters, from `M`
/// independent batches drawn at the same step (the trainer's validation steps, when
/// `eval.gradient_probes = M ≥ 2`).
///
/// With `g_m` the gradient of the step's loss on batch `m` with respect to the
/// **network's** parameters (the `g` and `α` heads; `log Z_init` is left out because it
/// has its own optimizer and not every objective trains it), flattened into one vector,
/// and `ḡ = (1/M) Σ_m g_m`:
///
/// * `variance = (1/(M − 1)) Σ_m ‖g_m − ḡ‖²`, the unbiased estimate of the trace of the
///   covariance of one batch's gradient (the expected squared distance of one step's
///   gradient from the true gradient);
/// * `mean_norm = ‖ḡ‖`;
/// * `relative_variance = variance / ‖ḡ‖²`, scale-free: objectives whose losses differ
///   by a constant factor get the same value (above 1, the noise of one batch is larger
///   than the signal of the average of `M`);
/// * `loss_mean`, `loss_std`: mean and sample standard deviation of the `M` loss values.
///
/// The numbers depend on the batch sizes of the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientVariance {
    /// `M`, the number of batches.
    pub batches: usize,
    /// Number of scalar parameters the gradient covers.
    pub parameters: usize,
    /// `(1/(M − 1)) Σ_m ‖g_m − ḡ‖²`.
    pub variance: f64,
    /// `‖ḡ‖`.
    pub mean_norm: f64,
    /// `variance / ‖ḡ‖²` (infinite when `ḡ = 0`).
    pub relative_variance: f64,
    /// Mean of the `M` loss values.
    pub loss_mean: f64,
    /// Sample standard deviation of the `M` loss values.
    pub loss_std: f64,
}

impl GradientVariance {
    /// The statistics of `M ≥ 2` flattened gradients of equal length and their losses;
    /// an error for fewer than 2 gradients, unequal lengths or a length other than that
    /// of `losses`.
    pub fn from_samples(gradients: &[Vec<f64>], losses: &[f64]) -> Result<Self> {
        let m = gradients.len();
        if m < 2 || losses.len() != m {
            return Err(TrainError::Flow(egf_flow::FlowError::InvalidInput(format!(
                "gradient variance needs at least 2 gradients and one loss per gradient, got {m} and {}",
                losses.len()
            ))));
        }
        let n = gradients[0].len();
        if gradients.iter().any(|g| g.len() != n) {
            return Err(TrainError::Flow(egf_flow::FlowError::InvalidInput("gradients of different lengths".into())));
        }
        let mut mean = vec![0.0; n];
        for g in gradients {
            for (a, v) in mean.iter_mut().zip(g) {
                *a += v / m as f64;
            }
        }
        let variance =
            gradients.iter().map(|g| g.iter().zip(&mean).map(|(v, a)| (v - a) * (v - a)).sum::<f64>()).sum::<f64>()
                / (m - 1) as f64;
        let sq_norm: f64 = mean.iter().map(|a| a * a).sum();
        let loss_mean = losses.iter().sum::<f64>() / m as f64;
        let loss_var = losses.iter().map(|l| (l - loss_mean).powi(2)).sum::<f64>() / (m - 1) as f64;
        Ok(Self {
            batches: m,
            parameters: n,
            variance,
            mean_norm: sq_norm.sqrt(),
            relative_variance: if sq_norm > 0.0 { variance / sq_norm } else { f64::INFINITY },
            loss_mean,
            loss_std: loss_var.sqrt(),
        })
    }
}

/// NLL of a toy target's exact density on `points` (the best a model can reach).
pub fn target_nll(target: &dyn Target, points: &Tensor) -> Result<f64> {
    let (v, rows, cols) = egf_manifold::tensor_util::tensor_to_f64_rows(points)?;
    if rows == 0 {
        return Ok(f64::NAN);
    }
    let s: f64 = (0..rows).map(|i| target.log_density_f64(&v[i * cols..(i + 1) * cols])).sum();
    Ok(-s / rows as f64)
}

/// How well a model matches a reward `R`: the total-variation distance between the
/// reported density and `R / ∫ R` on the quadrature grid, and `Z_init` against `∫ R`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardReport {
    /// `½ ∫ |p − R/Z| dλ` by quadrature, `p` the reported density.
    pub total_variation: f64,
    /// `Z = ∫ R dλ` by quadrature.
    pub reward_mass: f64,
    /// The closed-form `Z`, when the reward has one.
    pub reward_normalizer: Option<f64>,
    /// The model's mass report (`Z_init` should approach `Z`).
    pub mass: MassReport,
    /// Trajectory lengths of the forward sampler ([`sampler_report`]); `None` from
    /// [`reward_report`] itself, filled by the trainer.
    #[serde(default)]
    pub sampler: Option<SamplerReport>,
}

/// Compares the model's reported density with the normalized reward on the quadrature grid.
pub fn reward_report(model: &FlowModel, reward: &dyn Reward, settings: &EvalSettings) -> Result<RewardReport> {
    let grid = settings.grid(egf_flow::EgfModel::manifold(model))?;
    let mass = model.mass_report(&grid, settings.chunk)?;
    let (dtype, device) = (egf_flow::EgfModel::dtype(model), egf_flow::EgfModel::device(model).clone());
    let (mut p_all, mut r_all, mut w_all) = (Vec::new(), Vec::new(), Vec::new());
    for (start, len) in grid.chunks(settings.chunk) {
        let (x, w) = grid.chunk_tensors(start, len, dtype, &device)?;
        p_all.extend(host_f64(&model.log_reported_density(&x, &mass, settings.defensive_weight)?.exp()?)?);
        r_all.extend(host_f64(&reward.reward(&x)?)?);
        w_all.extend(host_f64(&w)?);
    }
    let z: f64 = r_all.iter().zip(&w_all).map(|(r, w)| r * w).sum();
    let tv = 0.5 * p_all.iter().zip(&r_all).zip(&w_all).map(|((p, r), w)| w * (p - r / z).abs()).sum::<f64>();
    Ok(RewardReport {
        total_variation: tv,
        reward_mass: z,
        reward_normalizer: reward.normalizer(),
        mass,
        sampler: None,
    })
}

/// A density sampled on a regular grid of `T^2` or `S^2`, for pictures.
///
/// Layout: `values[i * cols + j]`.
/// * `T^2`: `rows = cols = resolution`; row `i` is `x₁ = (i + ½)/rows`, column `j` is
///   `x₂ = (j + ½)/cols` (the midpoint grid).
/// * `S^2`: `rows = resolution` latitudes from north (90°) to south, `cols = 2 · resolution`
///   longitudes from −180° to 180°; cell centres of the equiangular grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensityGrid {
    /// The manifold.
    pub manifold: Manifold,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Density values w.r.t. `λ`, row-major.
    pub values: Vec<f64>,
}

fn picture_grid(manifold: Manifold, resolution: usize) -> Result<(QuadratureGrid, usize, usize)> {
    match manifold {
        Manifold::Torus { dim: 2 } => Ok((QuadratureGrid::torus_midpoint(2, resolution)?, resolution, resolution)),
        Manifold::Sphere { dim: 2 } => {
            Ok((QuadratureGrid::sphere_equiangular(resolution, 2 * resolution)?, resolution, 2 * resolution))
        }
        m => Err(TrainError::Unsupported(format!("density grids on {m} (only T^2 and S^2)"))),
    }
}

/// The reported density `p = (1 − w) t⁺/∫ t⁺ + w/vol` of `model` on the picture grid
/// of [`DensityGrid`] (`∫ t⁺` by the same grid).
pub fn density_grid(model: &FlowModel, resolution: usize, defensive_weight: f64) -> Result<DensityGrid> {
    let manifold = egf_flow::EgfModel::manifold(model);
    let (grid, rows, cols) = picture_grid(manifold, resolution)?;
    let chunk = 8192;
    let mass = model.mass_report(&grid, chunk)?;
    let (dtype, device) = (egf_flow::EgfModel::dtype(model), egf_flow::EgfModel::device(model).clone());
    let mut values = Vec::with_capacity(grid.len());
    for (start, len) in grid.chunks(chunk) {
        let (x, _) = grid.chunk_tensors(start, len, dtype, &device)?;
        values.extend(host_f64(&model.log_reported_density(&x, &mass, defensive_weight)?.exp()?)?);
    }
    Ok(DensityGrid { manifold, rows, cols, values })
}

/// The exact density of a toy target on the picture grid of [`DensityGrid`].
pub fn target_density_grid(target: &dyn Target, resolution: usize) -> Result<DensityGrid> {
    let manifold = target.manifold();
    let (grid, rows, cols) = picture_grid(manifold, resolution)?;
    let values = (0..grid.len()).map(|k| target.density_f64(grid.point(k))).collect();
    Ok(DensityGrid { manifold, rows, cols, values })
}

/// The normalized reward `R / ∫ R` on the picture grid of [`DensityGrid`] (`∫ R` by the same grid).
pub fn reward_density_grid(reward: &dyn Reward, resolution: usize) -> Result<DensityGrid> {
    let manifold = reward.manifold();
    let (grid, rows, cols) = picture_grid(manifold, resolution)?;
    let r: Vec<f64> = (0..grid.len()).map(|k| reward.reward_f64(grid.point(k))).collect();
    let z: f64 = r.iter().zip(grid.weights()).map(|(r, w)| r * w).sum();
    let values = if z > 0.0 && z.is_finite() { r.iter().map(|v| v / z).collect() } else { r };
    Ok(DensityGrid { manifold, rows, cols, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statistics of gradients with known spread: ±d around a mean vector.
    #[test]
    fn gradient_variance_of_known_samples() {
        let mean = [3.0, 4.0];
        let grads = vec![
            vec![mean[0] + 1.0, mean[1]],
            vec![mean[0] - 1.0, mean[1]],
            vec![mean[0], mean[1] + 2.0],
            vec![mean[0], mean[1] - 2.0],
        ];
        let v = GradientVariance::from_samples(&grads, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        // Σ ‖g − ḡ‖² = 1 + 1 + 4 + 4 = 10 over M − 1 = 3
        assert!((v.variance - 10.0 / 3.0).abs() < 1e-12, "{v:?}");
        assert!((v.mean_norm - 5.0).abs() < 1e-12);
        assert!((v.relative_variance - 10.0 / 3.0 / 25.0).abs() < 1e-12);
        assert!((v.loss_mean - 2.5).abs() < 1e-12);
        assert!((v.loss_std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((v.batches, v.parameters), (4, 2));
        // identical gradients: no variance; a zero mean: infinite relative variance
        let same = GradientVariance::from_samples(&[vec![1.0, 2.0], vec![1.0, 2.0]], &[0.0, 0.0]).unwrap();
        assert_eq!(same.variance, 0.0);
        let zero = GradientVariance::from_samples(&[vec![1.0], vec![-1.0]], &[0.0, 0.0]).unwrap();
        assert!(zero.relative_variance.is_infinite() && (zero.variance - 2.0).abs() < 1e-12);
        assert!(GradientVariance::from_samples(&[vec![1.0]], &[0.0]).is_err());
        assert!(GradientVariance::from_samples(&[vec![1.0], vec![1.0, 2.0]], &[0.0, 0.0]).is_err());
        assert!(GradientVariance::from_samples(&[vec![1.0], vec![1.0]], &[0.0]).is_err());
    }

    #[test]
    fn one_gradient_probe_is_rejected() {
        let s = EvalSettings { gradient_probes: 1, ..EvalSettings::default() };
        let err = s.validate("eval").unwrap_err().to_string();
        assert!(err.contains("eval.gradient_probes"), "{err}");
        assert!(EvalSettings { gradient_probes: 2, ..EvalSettings::default() }.validate("eval").is_ok());
    }
}
