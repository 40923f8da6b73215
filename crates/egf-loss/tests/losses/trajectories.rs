//! Trajectory balance, reverse KL, ELBO and the α-mixture on flow and policy models.

use candle_core::{DType, Tensor};
use egf_flow::{sample, sample_backward, trajectory_log_probs, EgfModel, SamplerConfig, Trajectories};
use egf_loss::{
    alpha_kl, elbo, elbo_on, elbo_surrogate, iw_elbo_surrogate, reverse_kl, reverse_kl_on, reverse_kl_surrogate,
    trajectory_balance, trajectory_balance_on, AlphaKlConfig, BackwardGradient, Baseline, ElboConfig, ElboEstimator,
    LossError, Result, ReverseKlConfig, ScoreSurrogate, TrajectoryConfig,
};
use egf_manifold::test_device;

use crate::common::*;

fn forward_trajectories<M: EgfModel>(model: &M, n: usize, max_moves: usize, seed: u64) -> Trajectories {
    let sampler = SamplerConfig { max_moves, defensive_weight: 0.0, record_trajectories: true };
    sample(model, n, &sampler, &mut rng(seed)).unwrap().trajectories.unwrap()
}

/// `log R = 0` on `x_0 ≥ 0.5`, `−∞` elsewhere.
fn half_reward(x: &Tensor) -> Result<Tensor> {
    let x0 = x.narrow(1, 0, 1)?.squeeze(1)?;
    let zero = x0.lt(0.5)?;
    let neg_inf = x0.ones_like()?.affine(0.0, f64::NEG_INFINITY)?;
    Ok(zero.where_cond(&neg_inf, &x0.zeros_like()?)?)
}

fn smooth_reward(x: &Tensor) -> Result<Tensor> {
    let x0 = x.narrow(1, 0, 1)?.squeeze(1)?;
    let x1 = x.narrow(1, 1, 1)?.squeeze(1)?;
    Ok(((x0 * 5.0)?.sin()? * 1.5)?.broadcast_add(&(x1 * 3.0)?.cos()?)?)
}

fn no_truncation() -> TrajectoryConfig {
    TrajectoryConfig { max_moves: 60, ..TrajectoryConfig::default() }
}

#[test]
fn flow_model_objectives_reach_their_optimum_when_the_reward_is_t() {
    // With t > 0 everywhere and the backward kernel of section 4,
    // log P_F(τ, x) − log P_B(τ | x) = log t(x) − log Z_init for every trajectory.
    for log_z in [0.0, 0.4] {
        let mut cfg = egf_flow::FlowModelConfig::new(torus(), egf_diffeo::FamilySpec::torus_sl2z_irrational());
        cfg.network = tiny_network();
        cfg.features = tiny_features();
        cfg.initial_expected_moves = 0.4;
        cfg.initial_log_z = log_z;
        cfg.seed = 3;
        let model = egf_flow::FlowModel::new(cfg, DType::F64, &test_device()).unwrap();
        let grid = egf_manifold::QuadratureGrid::torus_midpoint(2, 32).unwrap();
        assert_eq!(model.mass_report(&grid, 4096).unwrap().negative_mass, 0.0, "construction: t > 0");
        let reward = |x: &Tensor| -> Result<Tensor> { Ok(model.evaluate(x)?.t.detach().log()?) };
        let traj = forward_trajectories(&model, 48, 60, 1);
        assert_eq!(traj.truncated_count(), 0);
        assert!(traj.moves.len() > 5, "construction: some moves");
        let tb = trajectory_balance_on(&model, &reward, &traj, &no_truncation()).unwrap().to_host().unwrap();
        assert!(tb.loss < 1e-20, "TB {}", tb.loss);
        assert!((tb.terms["log_z"] - log_z).abs() < 1e-15);
        let rkl = ReverseKlConfig { trajectories: no_truncation(), baseline: Baseline::LeaveOneOut };
        let value = reverse_kl_on(&model, &reward, &traj, &rkl).unwrap();
        let d = value.to_host().unwrap();
        // KL = mean w + log Z_R = −log Z_init + log ∫ t = 0
        assert!((d.terms["reverse_kl"] + log_z).abs() < 1e-12, "{}", d.terms["reverse_kl"]);
        // the ELBO and the IW bound are both exactly the log-likelihood log t(x) − log Z_init
        let x = uniform(torus(), 10, DType::F64, 2);
        let ll = host(&model.evaluate(&x).unwrap().t).iter().map(|t| t.ln() - log_z).sum::<f64>() / 10.0;
        // ε → 0: the smoothed stop log t_ε is log t to e^{−t/ε} relative error
        let exact = ElboConfig { samples_per_point: 3, stop_epsilon: 1e-9, ..ElboConfig::default() };
        let e = elbo(&model, &x, &exact, &mut rng(3)).unwrap().to_host().unwrap();
        assert_eq!(e.counts["truncated"], 0);
        assert!((e.terms["elbo"] - ll).abs() < 1e-12, "{} vs {ll}", e.terms["elbo"]);
        assert!((e.terms["iw_elbo"] - ll).abs() < 1e-12);
        assert!((e.loss + ll).abs() < 1e-12);
    }
}

/// Where the virtual terminal density is not positive the exact forward-KL term
/// is infinite; the smoothed stop of `ElboConfig::stop_epsilon` gives a finite
/// loss and finite gradients that push `t` up there.
#[test]
fn elbo_on_the_flow_model_is_finite_where_t_is_negative() {
    let mut cfg = egf_flow::FlowModelConfig::new(torus(), egf_diffeo::FamilySpec::torus_sl2z_irrational());
    cfg.network = tiny_network();
    cfg.features = tiny_features();
    cfg.initial_expected_moves = 20.0; // g ≫ f_init: t < 0 somewhere
    cfg.seed = 5;
    let model = egf_flow::FlowModel::new(cfg, DType::F64, &test_device()).unwrap();
    let grid = egf_manifold::QuadratureGrid::torus_midpoint(2, 32).unwrap();
    let (points, _) = grid.chunk_tensors(0, grid.len(), DType::F64, &test_device()).unwrap();
    let t = host(&model.evaluate(&points).unwrap().t);
    let worst = (0..t.len()).min_by(|a, b| t[*a].total_cmp(&t[*b])).unwrap();
    assert!(t[worst] < 0.0, "construction: t(x) = {} should be negative", t[worst]);
    let x = points.narrow(0, worst, 1).unwrap();
    let config = ElboConfig { samples_per_point: 2, ..ElboConfig::default() };
    let traj = sample_backward(&model, &Tensor::cat(&[&x, &x], 0).unwrap(), config.max_moves, &mut rng(4)).unwrap();
    let exact = trajectory_log_probs(&model, &traj).unwrap();
    assert!(host(&exact.log_pf).iter().all(|v| *v == f64::NEG_INFINITY), "exact log P_F is −∞ where t ≤ 0");
    let value = elbo_on(&model, &traj, &config).unwrap();
    let d = value.to_host().unwrap();
    assert!(d.loss.is_finite() && d.loss > 0.0, "smoothed loss {}", d.loss);
    // log t_ε(x) = log ε + log softplus(t/ε) ≈ t/ε + log ε for t ≪ −ε
    let expected_floor = t[worst] / config.stop_epsilon + config.stop_epsilon.ln();
    assert!(-d.terms["elbo"] < expected_floor.abs() * 2.0 + 50.0);
    let grads = value.loss.backward().unwrap();
    let mut any = false;
    for (_, var) in model.network_vars() {
        let g = host(&grads.get(&var).unwrap().flatten_all().unwrap());
        assert!(g.iter().all(|v| v.is_finite()));
        any |= g.iter().any(|v| *v != 0.0);
    }
    assert!(any, "the loss moves the weights");
    let bad = ElboConfig { stop_epsilon: 0.0, ..ElboConfig::default() };
    assert!(matches!(elbo_on(&model, &traj, &bad), Err(LossError::InvalidConfig { .. })));
}

#[test]
fn policy_model_trajectory_balance_vanishes_when_the_reward_balances() {
    let model = policy_model(DType::F64, 0.4, 2);
    let traj = forward_trajectories(&model, 32, 40, 5);
    let lp = trajectory_log_probs(&model, &traj).unwrap();
    let log_r = ((lp.log_pf - lp.log_pb).unwrap() + 0.3).unwrap().detach(); // log Z = 0.3
    let ends = host(&traj.end_points().unwrap());
    let reward = |x: &Tensor| -> Result<Tensor> {
        assert_eq!(host(x), ends, "the reward is defined on the trajectories' end points");
        Ok(log_r.clone())
    };
    let cfg = TrajectoryConfig { max_moves: 40, include_truncated: true, ..TrajectoryConfig::default() };
    let d = trajectory_balance_on(&model, &reward, &traj, &cfg).unwrap().to_host().unwrap();
    assert!(d.loss < 1e-20, "{}", d.loss);
    assert_eq!(d.counts["included"], 32);
    // and a reward off by a constant c gives exactly c²
    let shifted = |x: &Tensor| -> Result<Tensor> { Ok((reward(x)? + 0.25)?) };
    let d = trajectory_balance_on(&model, &shifted, &traj, &cfg).unwrap().to_host().unwrap();
    assert!((d.loss - 0.0625).abs() < 1e-12);
}

#[test]
fn trajectory_balance_gradient_matches_finite_differences() {
    let policy = policy_model(DType::F64, 0.5, 4);
    let traj = forward_trajectories(&policy, 16, 8, 6);
    let cfg = TrajectoryConfig { max_moves: 8, include_truncated: true, ..TrajectoryConfig::default() };
    let value = trajectory_balance_on(&policy, &smooth_reward, &traj, &cfg).unwrap();
    let grads = value.loss.backward().unwrap();
    let f = || scalar(&trajectory_balance_on(&policy, &smooth_reward, &traj, &cfg).unwrap().loss);
    let vars = policy.named_vars();
    assert!(vars.iter().any(|(n, _)| n == "log_z"));
    check_gradients(&vars, &grads, 3, 1e-5, &f);

    let flow = flow_model(torus(), DType::F64, 0.8, false, 4);
    let traj = forward_trajectories(&flow, 16, 30, 7);
    let value = trajectory_balance_on(&flow, &smooth_reward, &traj, &no_truncation()).unwrap();
    let grads = value.loss.backward().unwrap();
    let f = || scalar(&trajectory_balance_on(&flow, &smooth_reward, &traj, &no_truncation()).unwrap().loss);
    check_gradients(&flow_vars(&flow), &grads, 3, 1e-5, &f);
}

/// Checks a score surrogate built on `traj`: its gradient equals the finite
/// differences of `θ ↦ Σ a log P_F(τ; θ) + c log P_B(τ; θ)` with its frozen coefficients.
fn check_surrogate_gradient<M: EgfModel>(
    model: &M,
    vars: &[(String, candle_core::Var)],
    traj: &Trajectories,
    loss: &Tensor,
    sur: &ScoreSurrogate,
) {
    let (a, c) = (host(&sur.pf_coefficients), host(&sur.pb_coefficients));
    let grads = loss.backward().unwrap();
    let f = || {
        let lp = trajectory_log_probs(model, traj).unwrap();
        let (pf, pb) = (host(&lp.log_pf), host(&lp.log_pb));
        (0..pf.len()).map(|i| a[i] * pf[i] + c[i] * pb[i]).sum::<f64>()
    };
    check_gradients(vars, &grads, 3, 1e-5, &f);
}

#[test]
fn reverse_kl_surrogate_gradient_matches_finite_differences() {
    let model = policy_model(DType::F64, 0.5, 9);
    let traj = forward_trajectories(&model, 12, 30, 8);
    assert_eq!(traj.truncated_count(), 0);
    let cfg = ReverseKlConfig { trajectories: no_truncation(), baseline: Baseline::LeaveOneOut };
    let value = reverse_kl_on(&model, &smooth_reward, &traj, &cfg).unwrap();
    let lp = trajectory_log_probs(&model, &traj).unwrap();
    let log_r = smooth_reward(&traj.end_points().unwrap()).unwrap();
    let sur = reverse_kl_surrogate(&lp.log_pf, &lp.log_pb, &log_r, Baseline::LeaveOneOut).unwrap();
    assert!((scalar(&value.loss) - scalar(&sur.value)).abs() < 1e-14);
    // the loss's value is the estimate mean(log P_F − log P_B − log R)
    let w: Vec<f64> = host(&((&lp.log_pf - &lp.log_pb).unwrap() - &log_r).unwrap());
    assert!((scalar(&value.loss) - w.iter().sum::<f64>() / 12.0).abs() < 1e-12);
    check_surrogate_gradient(&model, &model.named_vars(), &traj, &value.loss, &sur);
}

#[test]
fn elbo_surrogate_gradients_match_finite_differences() {
    let model = policy_model(DType::F64, 0.5, 10);
    let x = uniform(torus(), 5, DType::F64, 11);
    let k = 3;
    let rep = Tensor::cat(&vec![x.clone(); k], 0).unwrap();
    let traj = sample_backward(&model, &rep, 30, &mut rng(12)).unwrap();
    for estimator in [ElboEstimator::Standard, ElboEstimator::ImportanceWeighted] {
        for backward_gradient in [BackwardGradient::Reinforce, BackwardGradient::Fixed] {
            let cfg =
                ElboConfig { samples_per_point: k, max_moves: 30, estimator, backward_gradient, ..Default::default() };
            let value = elbo_on(&model, &traj, &cfg).unwrap();
            let lp = trajectory_log_probs(&model, &traj).unwrap();
            let (pf, pb) = (lp.log_pf.reshape((k, 5)).unwrap(), lp.log_pb.reshape((k, 5)).unwrap());
            let sur = match estimator {
                ElboEstimator::Standard => elbo_surrogate(&pf, &pb, backward_gradient, Baseline::LeaveOneOut),
                ElboEstimator::ImportanceWeighted => {
                    iw_elbo_surrogate(&pf, &pb, backward_gradient, Baseline::LeaveOneOut)
                }
            }
            .unwrap();
            assert!((scalar(&value.loss) - scalar(&sur.value)).abs() < 1e-14);
            let d = value.to_host().unwrap();
            assert!(d.terms["iw_elbo"] >= d.terms["elbo"], "Jensen: IW bound ≥ ELBO");
            check_surrogate_gradient(&model, &model.named_vars(), &traj, &value.loss, &sur);
        }
    }
}

#[test]
fn zero_rewards_give_finite_losses_and_gradients() {
    let model = policy_model(DType::F32, 0.5, 1);
    let traj = forward_trajectories(&model, 32, 20, 2);
    let cfg = TrajectoryConfig { max_moves: 20, include_truncated: true, ..TrajectoryConfig::default() };
    let vars = model.named_vars();
    let tb = trajectory_balance_on(&model, &half_reward, &traj, &cfg).unwrap();
    let d = tb.to_host().unwrap();
    assert!(d.loss.is_finite() && d.loss > 100.0, "the floor −50 gives a large finite penalty: {}", d.loss);
    assert_finite_gradients(&vars, &tb.loss.backward().unwrap());
    let rkl = ReverseKlConfig { trajectories: cfg, baseline: Baseline::LeaveOneOut };
    let value = reverse_kl_on(&model, &half_reward, &traj, &rkl).unwrap();
    assert!(value.to_host().unwrap().loss.is_finite());
    assert_finite_gradients(&vars, &value.loss.backward().unwrap());
    // a flow model with a huge or tiny outflow (long or short trajectories)
    for bias in [3.0, -50.0] {
        let flow = flow_model(torus(), DType::F32, 1.0, false, 2);
        set_outflow_bias(&flow, bias);
        let traj = forward_trajectories(&flow, 16, 10, 3);
        let tb = trajectory_balance_on(&flow, &half_reward, &traj, &cfg).unwrap();
        assert!(tb.to_host().unwrap().loss.is_finite(), "bias {bias}");
        assert_finite_gradients(&flow_vars(&flow), &tb.loss.backward().unwrap());
    }
}

#[test]
fn alpha_mixture_combines_the_two_sides() {
    let model = policy_model(DType::F64, 0.5, 3);
    let target = uniform(torus(), 6, DType::F64, 4);
    let cfg = AlphaKlConfig::default();
    let mixed = alpha_kl(&model, &smooth_reward, &target, 16, &cfg, &mut rng(9)).unwrap().to_host().unwrap();
    let mut r = rng(9);
    let rev = reverse_kl(&model, &smooth_reward, 16, &cfg.reverse, &mut r).unwrap().to_host().unwrap();
    let fwd = elbo(&model, &target, &cfg.forward, &mut r).unwrap().to_host().unwrap();
    assert!((mixed.loss - 0.5 * rev.loss - 0.5 * fwd.loss).abs() < 1e-12);
    assert_eq!(mixed.terms["reverse/reverse_kl"], rev.terms["reverse_kl"]);
    assert_eq!(mixed.terms["forward/elbo"], fwd.terms["elbo"]);
    let only_reverse = AlphaKlConfig { alpha: 1.0, ..cfg };
    let empty = target.narrow(0, 0, 0).unwrap();
    let d = alpha_kl(&model, &smooth_reward, &empty, 16, &only_reverse, &mut rng(9)).unwrap().to_host().unwrap();
    assert_eq!(d.loss, rev.loss);
    let only_forward = AlphaKlConfig { alpha: 0.0, ..cfg };
    assert!(alpha_kl(&model, &smooth_reward, &target, 0, &only_forward, &mut rng(9)).is_ok());
    for alpha in [-0.1, 1.5, f64::NAN] {
        let bad = AlphaKlConfig { alpha, ..cfg };
        assert!(matches!(
            alpha_kl(&model, &smooth_reward, &target, 16, &bad, &mut rng(9)),
            Err(LossError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn trajectory_losses_reject_bad_inputs() {
    let model = policy_model(DType::F32, 0.5, 0);
    let cfg = TrajectoryConfig::default();
    assert!(matches!(
        trajectory_balance(&model, &smooth_reward, 0, &cfg, &mut rng(0)),
        Err(LossError::EmptyBatch { .. })
    ));
    let nan_floor = TrajectoryConfig { log_reward_floor: f64::NAN, ..cfg };
    assert!(matches!(
        trajectory_balance(&model, &smooth_reward, 4, &nan_floor, &mut rng(0)),
        Err(LossError::InvalidConfig { .. })
    ));
    let x = uniform(torus(), 3, DType::F32, 0);
    let empty = x.narrow(0, 0, 0).unwrap();
    assert!(matches!(elbo(&model, &empty, &ElboConfig::default(), &mut rng(0)), Err(LossError::EmptyBatch { .. })));
    let k0 = ElboConfig { samples_per_point: 0, ..ElboConfig::default() };
    assert!(matches!(elbo(&model, &x, &k0, &mut rng(0)), Err(LossError::InvalidConfig { .. })));
    let k1 = ElboConfig { samples_per_point: 1, ..ElboConfig::default() };
    assert!(matches!(elbo(&model, &x, &k1, &mut rng(0)), Err(LossError::InvalidConfig { .. })));
    let k1_plain = ElboConfig { samples_per_point: 1, baseline: Baseline::None, ..ElboConfig::default() };
    assert!(elbo(&model, &x, &k1_plain, &mut rng(0)).is_ok());
    // every trajectory truncated and excluded
    let traj = forward_trajectories(&model, 8, 0, 1);
    let flow = flow_model(torus(), DType::F32, 1.0, false, 0);
    set_outflow_bias(&flow, 50.0);
    let long = forward_trajectories(&flow, 8, 2, 1);
    assert_eq!(long.truncated_count(), 8);
    assert!(matches!(trajectory_balance_on(&flow, &smooth_reward, &long, &cfg), Err(LossError::InvalidInput { .. })));
    assert!(traj.len() == 8);
    let wrong_k = ElboConfig { samples_per_point: 3, ..ElboConfig::default() };
    assert!(matches!(elbo_on(&model, &traj, &wrong_k), Err(LossError::InvalidInput { .. })));
    let one = forward_trajectories(&model, 1, 30, 1);
    let cfg_one = ReverseKlConfig {
        trajectories: TrajectoryConfig { include_truncated: true, ..cfg },
        baseline: Baseline::LeaveOneOut,
    };
    assert!(reverse_kl_on(&model, &smooth_reward, &one, &cfg_one).is_err());
    let parsed: ElboConfig = serde_json::from_str(r#"{"estimator": "importance_weighted"}"#).unwrap();
    assert_eq!(parsed.estimator, ElboEstimator::ImportanceWeighted);
    assert!(serde_json::from_str::<ReverseKlConfig>(r#"{"baseline": "median"}"#).is_err());
}
