//! Stable and divergence flow matching.

use candle_core::{DType, Tensor};
use egf_flow::{sample, FlowModel, SamplerConfig};
use egf_loss::{
    divergence_fm, divergence_fm_on, stable_fm, DivergenceFmConfig, FmResidual, LossError, Result, StableFmConfig,
};

use crate::common::*;

/// `log R = log t` of the model itself (detached): the exact solution of flow matching.
fn reward_from_t(model: &FlowModel) -> impl Fn(&Tensor) -> Result<Tensor> + '_ {
    move |x: &Tensor| Ok(model.evaluate(x)?.t.detach().log()?)
}

/// A smooth reward that vanishes on `x_0 < 0.3` (`log R = −∞` there).
fn reward_with_zeros(x: &Tensor) -> Result<Tensor> {
    let x0 = x.narrow(1, 0, 1)?.squeeze(1)?;
    let x1 = x.narrow(1, 1, 1)?.squeeze(1)?;
    let smooth = ((x0.clone() * 6.0)?.sin()? * (x1 * 4.0)?.cos()?)?;
    let zero = x0.lt(0.3)?;
    let neg_inf = smooth.ones_like()?.affine(0.0, f64::NEG_INFINITY)?;
    Ok(zero.where_cond(&neg_inf, &smooth)?)
}

fn residuals() -> [FmResidual; 4] {
    [
        FmResidual::Absolute,
        FmResidual::Relative { epsilon: 1e-6 },
        FmResidual::Log { epsilon: 0.0 },
        FmResidual::Log { epsilon: 1e-3 },
    ]
}

#[test]
fn stable_fm_vanishes_when_the_reward_is_t() {
    for manifold in [torus(), sphere()] {
        let model = flow_model(manifold, DType::F64, 0.3, true, 5);
        let nu = uniform(manifold, 64, DType::F64, 1);
        assert!(host(&model.evaluate(&nu).unwrap().t).iter().all(|t| *t > 0.0), "construction: t > 0");
        let reward = reward_from_t(&model);
        let twice = |x: &Tensor| -> Result<Tensor> { Ok((model.evaluate(x)?.t.detach().log()? + 2f64.ln())?) };
        for residual in residuals() {
            for q in [1.0, 2.0, 3.5] {
                let cfg = StableFmConfig { q, residual };
                let d = stable_fm(&model, &reward, &nu, &cfg).unwrap().to_host().unwrap();
                assert!(d.loss.abs() < 1e-10, "{residual:?} q={q}: {}", d.loss);
                assert!(d.terms["l1_residual"] < 1e-10);
                assert!(stable_fm(&model, &twice, &nu, &cfg).unwrap().to_host().unwrap().loss > 1e-3);
            }
        }
    }
}

#[test]
fn stable_fm_value_is_the_definition() {
    let model = flow_model(sphere(), DType::F64, 2.0, true, 1);
    let nu = uniform(sphere(), 16, DType::F64, 2);
    let reward = |x: &Tensor| -> Result<Tensor> { Ok((x.narrow(1, 2, 1)?.squeeze(1)? * 2.0)?) };
    let terms = model.evaluate(&nu).unwrap();
    let (t, g, h) = (host(&terms.t), host(&terms.g), host(&terms.h));
    let r: Vec<f64> = host(&nu).chunks(3).map(|p| (2.0 * p[2]).exp()).collect();
    let f_init = 1.0 / (4.0 * std::f64::consts::PI);
    let vol = 4.0 * std::f64::consts::PI;
    let mean = |f: &dyn Fn(usize) -> f64| (0..16).map(f).sum::<f64>() / 16.0;
    let cases: [(FmResidual, f64, f64); 3] = [
        (FmResidual::Absolute, 3.0, vol * mean(&|i| (t[i] - r[i]).abs().powi(3))),
        (
            FmResidual::Relative { epsilon: 0.01 },
            2.0,
            vol * mean(&|i| ((f_init + h[i] - r[i] - g[i]) / (f_init + h[i] + r[i] + g[i] + 0.01)).powi(2)),
        ),
        (
            FmResidual::Log { epsilon: 0.0 },
            1.5,
            vol * mean(&|i| ((f_init + h[i]) / (r[i] + g[i])).ln().abs().powf(1.5)),
        ),
    ];
    for (residual, q, expected) in cases {
        let d = stable_fm(&model, &reward, &nu, &StableFmConfig { q, residual }).unwrap().to_host().unwrap();
        assert!((d.loss - expected).abs() < 1e-11 * (1.0 + expected), "{residual:?}: {} vs {expected}", d.loss);
        assert!(d.terms["log_z_init"].abs() < 1e-15);
    }
}

#[test]
fn stable_fm_gradient_matches_finite_differences() {
    let model = flow_model(torus(), DType::F64, 2.0, true, 3);
    let nu = uniform(torus(), 24, DType::F64, 4);
    for (residual, q) in [
        (FmResidual::Absolute, 2.0),
        (FmResidual::Relative { epsilon: 1e-3 }, 3.0),
        (FmResidual::Log { epsilon: 0.0 }, 2.0),
        (FmResidual::Log { epsilon: 0.1 }, 1.5),
    ] {
        let cfg = StableFmConfig { q, residual };
        let value = stable_fm(&model, &reward_with_zeros, &nu, &cfg).unwrap();
        assert!(value.to_host().unwrap().counts["reward_zero"] > 0, "construction: R = 0 somewhere");
        let grads = value.loss.backward().unwrap();
        let f = || scalar(&stable_fm(&model, &reward_with_zeros, &nu, &cfg).unwrap().loss);
        check_gradients(&flow_vars(&model), &grads, 2, 1e-5, &f);
        let log_z = grads.get(model.log_z_var().as_tensor()).map(scalar).unwrap_or(0.0);
        assert!(log_z != 0.0, "log Z_init must get a gradient when learned");
    }
}

#[test]
fn divergence_fm_gradient_matches_finite_differences_on_fixed_trajectories() {
    let model = flow_model(torus(), DType::F64, 2.0, false, 8);
    let sampler = SamplerConfig { max_moves: 6, defensive_weight: 0.0, record_trajectories: true };
    let traj = sample(&model, 12, &sampler, &mut rng(3)).unwrap().trajectories.unwrap();
    assert!(traj.states.dim(0).unwrap() > 12, "construction: some moves");
    let cfg = DivergenceFmConfig { max_moves: 6, outflow_penalty: 0.3 };
    let value = divergence_fm_on(&model, &reward_with_zeros, &traj, &cfg).unwrap();
    let d = value.to_host().unwrap();
    assert!((d.loss - d.terms["divergence_fm"] - 0.3 * d.terms["outflow_penalty"]).abs() < 1e-12);
    assert_eq!(d.counts["states"], traj.states.dim(0).unwrap());
    let grads = value.loss.backward().unwrap();
    let f = || scalar(&divergence_fm_on(&model, &reward_with_zeros, &traj, &cfg).unwrap().loss);
    check_gradients(&flow_vars(&model), &grads, 3, 1e-5, &f);
}

#[test]
fn divergence_fm_vanishes_when_reward_closes_the_flow() {
    // R := F − g = t > 0 makes every ratio (f_init + h)/(g + R) exactly 1.
    let model = flow_model(torus(), DType::F64, 0.5, false, 2);
    let reward = reward_from_t(&model);
    let d = divergence_fm(&model, &reward, 32, &DivergenceFmConfig::default(), &mut rng(4)).unwrap().to_host().unwrap();
    assert!(d.terms["divergence_fm"] < 1e-20, "{}", d.terms["divergence_fm"]);
    assert_eq!(d.counts["trajectories"], 32);
}

#[test]
fn extreme_flows_and_zero_rewards_give_finite_values_and_gradients() {
    for bias in [50.0, -50.0] {
        // the absolute residual in f64 (its square would overflow f32 at g = e^50)
        let cases: [(DType, FmResidual); 3] = [
            (DType::F64, FmResidual::Absolute),
            (DType::F32, FmResidual::Log { epsilon: 0.0 }),
            (DType::F32, FmResidual::Relative { epsilon: 0.0 }),
        ];
        for (dtype, residual) in cases {
            let model = flow_model(torus(), dtype, 1.0, true, 4);
            set_outflow_bias(&model, bias);
            let nu = uniform(torus(), 64, dtype, 5);
            let value = stable_fm(&model, &reward_with_zeros, &nu, &StableFmConfig { q: 2.0, residual }).unwrap();
            assert!(value.to_host().unwrap().loss.is_finite(), "{bias} {residual:?}");
            assert_finite_gradients(&flow_vars(&model), &value.loss.backward().unwrap());
        }
        // divergence FM on fixed trajectories (states of the uniform batch: zero moves)
        let model = flow_model(torus(), DType::F32, 1.0, false, 4);
        set_outflow_bias(&model, bias);
        let sampler = SamplerConfig { max_moves: 3, defensive_weight: 0.0, record_trajectories: true };
        let traj = sample(&model, 16, &sampler, &mut rng(1)).unwrap().trajectories.unwrap();
        let cfg = DivergenceFmConfig { max_moves: 3, outflow_penalty: 0.0 };
        let value = divergence_fm_on(&model, &reward_with_zeros, &traj, &cfg).unwrap();
        assert!(value.to_host().unwrap().loss.is_finite(), "divergence FM, bias {bias}");
        assert_finite_gradients(&flow_vars(&model), &value.loss.backward().unwrap());
    }
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let model = flow_model(torus(), DType::F32, 1.0, true, 0);
    let nu = uniform(torus(), 8, DType::F32, 0);
    let empty = nu.narrow(0, 0, 0).unwrap();
    let ok = StableFmConfig::default();
    assert!(matches!(stable_fm(&model, &reward_with_zeros, &empty, &ok), Err(LossError::EmptyBatch { .. })));
    for bad in [
        StableFmConfig { q: 0.5, ..ok },
        StableFmConfig { q: f64::INFINITY, ..ok },
        StableFmConfig { q: 2.0, residual: FmResidual::Log { epsilon: -1.0 } },
        StableFmConfig { q: 2.0, residual: FmResidual::Relative { epsilon: f64::NAN } },
    ] {
        assert!(matches!(stable_fm(&model, &reward_with_zeros, &nu, &bad), Err(LossError::InvalidConfig { .. })));
    }
    let wrong_shape = |x: &Tensor| -> Result<Tensor> { Ok(x.clone()) };
    assert!(matches!(stable_fm(&model, &wrong_shape, &nu, &ok), Err(LossError::InvalidInput { .. })));
    let failing = |_: &Tensor| -> Result<Tensor> { Err(LossError::reward(std::fmt::Error)) };
    assert!(matches!(stable_fm(&model, &failing, &nu, &ok), Err(LossError::Reward(_))));
    let column = |x: &Tensor| -> Result<Tensor> { Ok(x.narrow(1, 0, 1)?) };
    assert!(stable_fm(&model, &column, &nu, &ok).is_ok(), "an (n, 1) column is accepted");
    let cfg = DivergenceFmConfig::default();
    assert!(matches!(
        divergence_fm(&model, &reward_with_zeros, 0, &cfg, &mut rng(0)),
        Err(LossError::EmptyBatch { .. })
    ));
    let bad = DivergenceFmConfig { outflow_penalty: -1.0, ..cfg };
    assert!(matches!(
        divergence_fm(&model, &reward_with_zeros, 4, &bad, &mut rng(0)),
        Err(LossError::InvalidConfig { .. })
    ));
    let parsed: StableFmConfig = serde_json::from_str(r#"{"residual": {"kind": "log"}}"#).unwrap();
    assert_eq!(parsed, StableFmConfig { q: 2.0, residual: FmResidual::Log { epsilon: 0.0 } });
    assert!(serde_json::from_str::<StableFmConfig>(r#"{"p": 2}"#).is_err());
}
