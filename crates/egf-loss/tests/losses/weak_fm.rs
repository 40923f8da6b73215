//! KL-weakFM and ν_train.

use candle_core::{DType, Tensor};
use egf_flow::EgfModel;
use egf_loss::{check_weak_fm_weight, kl_weak_fm, sample_nu_train, KlWeakFmConfig, LossError, NuTrainConfig};
use egf_manifold::test_device;

use crate::common::*;

fn softplus(u: f64) -> f64 {
    u.max(0.0) + (-u.abs()).exp().ln_1p()
}

#[test]
fn kl_weak_fm_value_is_the_definition() {
    for manifold in [torus(), sphere()] {
        let model = flow_model(manifold, DType::F64, 3.0, false, 7);
        scale_var(&model, "net.l1.weight", 20.0);
        let (data, nu, u) = (
            uniform(manifold, 12, DType::F64, 1),
            uniform(manifold, 20, DType::F64, 2),
            uniform(manifold, 9, DType::F64, 3),
        );
        let cfg = KlWeakFmConfig { epsilon: 0.05, negative_weight: 3.0, outflow_weight: 0.7 };
        let d = kl_weak_fm(&model, &data, &nu, &u, &cfg).unwrap().to_host().unwrap();
        let vol = manifold.volume();
        let t_data = host(&model.evaluate(&data).unwrap().t);
        let t_nu = host(&model.evaluate(&nu).unwrap().t);
        let g_u = host(&model.evaluate(&u).unwrap().g);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let log_t_eps: Vec<f64> = t_data.iter().map(|t| 0.05f64.ln() + softplus(t / 0.05).ln()).collect();
        let ce = -mean(&log_t_eps);
        let neg = vol * mean(&t_nu.iter().map(|t| (-t).max(0.0)).collect::<Vec<_>>());
        let out = vol * mean(&g_u);
        let tmin = t_nu.iter().cloned().fold(f64::INFINITY, f64::min);
        let tmax = t_nu.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!(neg > 0.0, "the test needs negative t on ν_train: {manifold} {tmin} {tmax}");
        let expected = ce + 3.0 * neg + 0.7 * out;
        assert!((d.loss - expected).abs() < 1e-12 * (1.0 + expected.abs()), "{} vs {expected}", d.loss);
        assert!((d.terms["cross_entropy"] - ce).abs() < 1e-12);
        assert!((d.terms["mean_log_t_eps"] + ce).abs() < 1e-12);
        assert!((d.terms["negative_mass"] - neg).abs() < 1e-12);
        assert!((d.terms["outflow"] - out).abs() < 1e-12);
        assert_eq!(d.counts["data_t_nonpositive"], t_data.iter().filter(|t| **t <= 0.0).count());
        assert_eq!(d.counts["nu_train_t_negative"], t_nu.iter().filter(|t| **t < 0.0).count());
        assert_eq!((d.counts["data"], d.counts["nu_train"], d.counts["uniform"]), (12, 20, 9));
    }
}

#[test]
fn weak_term_is_exactly_zero_where_t_is_nonnegative() {
    let model = flow_model(torus(), DType::F64, 0.1, false, 3);
    let (data, nu) = (uniform(torus(), 16, DType::F64, 4), uniform(torus(), 64, DType::F64, 5));
    assert!(host(&model.evaluate(&nu).unwrap().t).iter().all(|t| *t > 0.0), "construction: t > 0 on ν_train");
    let cfg = KlWeakFmConfig { epsilon: 1e-3, negative_weight: 1e12, outflow_weight: 0.0 };
    let value = kl_weak_fm(&model, &data, &nu, &data.narrow(0, 0, 0).unwrap(), &cfg).unwrap();
    let d = value.to_host().unwrap();
    assert_eq!(d.terms["negative_mass"], 0.0);
    assert_eq!(d.loss, d.terms["cross_entropy"]);
    // the surrogate is the log-likelihood where t ≫ ε: −mean log t to round-off
    let t = host(&model.evaluate(&data).unwrap().t);
    let nll = -t.iter().map(|v| v.ln()).sum::<f64>() / t.len() as f64;
    assert!((d.loss - nll).abs() < 1e-12, "{} vs {nll}", d.loss);
    // and the huge weight contributes no gradient
    let grads = value.loss.backward().unwrap();
    let ce_only =
        kl_weak_fm(&model, &data, &nu, &data.narrow(0, 0, 0).unwrap(), &KlWeakFmConfig { negative_weight: 0.0, ..cfg })
            .unwrap();
    let grads_ce = ce_only.loss.backward().unwrap();
    for (_, v) in model.network_vars() {
        let (a, b) = (host(grads.get(v.as_tensor()).unwrap()), host(grads_ce.get(v.as_tensor()).unwrap()));
        assert!(a.iter().zip(&b).all(|(x, y)| x == y));
    }
}

#[test]
fn kl_weak_fm_gradient_matches_finite_differences() {
    let model = flow_model(torus(), DType::F64, 3.0, false, 11);
    let (data, nu, u) =
        (uniform(torus(), 10, DType::F64, 6), uniform(torus(), 24, DType::F64, 7), uniform(torus(), 8, DType::F64, 8));
    let cfg = KlWeakFmConfig { epsilon: 0.1, negative_weight: 5.0, outflow_weight: 0.5 };
    let value = kl_weak_fm(&model, &data, &nu, &u, &cfg).unwrap();
    assert!(value.to_host().unwrap().terms["negative_mass"] > 0.0, "the test needs the weak term active");
    let grads = value.loss.backward().unwrap();
    let f = || scalar(&kl_weak_fm(&model, &data, &nu, &u, &cfg).unwrap().loss);
    assert_eq!(check_gradients(&flow_vars(&model), &grads, 3, 1e-5, &f), 12);
}

#[test]
fn extreme_flows_and_nonpositive_t_give_finite_loss_and_gradients() {
    for dtype in [DType::F32, DType::F64] {
        for bias in [50.0, -50.0] {
            let model = flow_model(torus(), dtype, 1.0, false, 2);
            set_outflow_bias(&model, bias);
            let cand = uniform(torus(), 256, dtype, 9);
            let t = host(&model.evaluate(&cand).unwrap().t);
            // data: points with t ≤ 0 where there are any (g = e^50), else arbitrary points
            let bad: Vec<u32> = (0..t.len()).filter(|i| t[*i] <= 0.0).map(|i| i as u32).collect();
            if bias > 0.0 {
                assert!(!bad.is_empty(), "construction: some t ≤ 0 when g is huge");
            }
            let idx: Vec<u32> = if bad.is_empty() { (0..8).collect() } else { bad };
            let data = cand.index_select(&Tensor::new(idx.as_slice(), &test_device()).unwrap(), 0).unwrap();
            let cfg = KlWeakFmConfig { epsilon: 1e-3, negative_weight: 5.0, outflow_weight: 0.1 };
            let value = kl_weak_fm(&model, &data, &cand, &cand, &cfg).unwrap();
            let d = value.to_host().unwrap();
            assert!(d.loss.is_finite(), "{dtype:?} bias {bias}: loss {}", d.loss);
            if bias > 0.0 {
                assert_eq!(d.counts["data_t_nonpositive"], idx.len());
            }
            let grads = value.loss.backward().unwrap();
            assert_finite_gradients(&flow_vars(&model), &grads);
        }
    }
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let model = flow_model(torus(), DType::F32, 1.0, false, 0);
    let x = uniform(torus(), 4, DType::F32, 1);
    let empty = x.narrow(0, 0, 0).unwrap();
    let ok = KlWeakFmConfig::default();
    assert!(matches!(kl_weak_fm(&model, &empty, &x, &x, &ok), Err(LossError::EmptyBatch { .. })));
    assert!(matches!(kl_weak_fm(&model, &x, &empty, &x, &ok), Err(LossError::EmptyBatch { .. })));
    let c = KlWeakFmConfig { outflow_weight: 1.0, ..ok.clone() };
    assert!(matches!(kl_weak_fm(&model, &x, &x, &empty, &c), Err(LossError::EmptyBatch { .. })));
    // c = 0: the uniform batch may be empty
    assert!(kl_weak_fm(&model, &x, &x, &empty, &ok).is_ok());
    for bad in [
        KlWeakFmConfig { epsilon: 0.0, ..ok.clone() },
        KlWeakFmConfig { epsilon: -1e-3, ..ok.clone() },
        KlWeakFmConfig { negative_weight: -1.0, ..ok.clone() },
        KlWeakFmConfig { outflow_weight: f64::NAN, ..ok.clone() },
    ] {
        assert!(matches!(kl_weak_fm(&model, &x, &x, &x, &bad), Err(LossError::InvalidConfig { .. })), "{bad:?}");
    }
    let wrong_dim = uniform(sphere(), 4, DType::F32, 1);
    assert!(matches!(kl_weak_fm(&model, &wrong_dim, &x, &x, &ok), Err(LossError::InvalidInput { .. })));
    let wrong_dtype = x.to_dtype(DType::F64).unwrap();
    assert!(matches!(kl_weak_fm(&model, &wrong_dtype, &x, &x, &ok), Err(LossError::InvalidInput { .. })));
    let err = kl_weak_fm(&model, &empty, &x, &x, &ok).unwrap_err().to_string();
    assert!(err.contains("data"), "{err}");
}

#[test]
fn weak_fm_weight_warning_follows_the_threshold() {
    assert!(check_weak_fm_weight(5.0, 0.5).is_none());
    assert!(check_weak_fm_weight(2.0, 0.5).is_none());
    let w = check_weak_fm_weight(1.0, 0.5).unwrap();
    assert!(w.contains("1.0000") && w.contains("b ≥ 2"), "{w}");
    assert!(check_weak_fm_weight(5.0, 0.0).is_some());
    assert!(check_weak_fm_weight(f64::NAN, 0.5).is_some());
}

#[test]
fn config_defaults_and_unknown_fields() {
    let c: KlWeakFmConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, KlWeakFmConfig { epsilon: 1e-3, negative_weight: 5.0, outflow_weight: 0.0 });
    assert_eq!(c, KlWeakFmConfig::default());
    assert!(serde_json::from_str::<KlWeakFmConfig>(r#"{"b": 5}"#).is_err());
    let n: NuTrainConfig = serde_json::from_str(r#"{"on_policy_share": 0.1}"#).unwrap();
    assert_eq!(n, NuTrainConfig { uniform_share: 0.5, data_noise: 0.02, on_policy_share: 0.1 });
    assert!(serde_json::from_str::<NuTrainConfig>(r#"{"uniform": 0.5}"#).is_err());
}

#[test]
fn nu_train_mixes_uniform_data_and_on_policy_points() {
    let model = flow_model(torus(), DType::F64, 1.0, false, 0);
    let data = uniform(torus(), 5, DType::F64, 10);
    let cfg = NuTrainConfig { uniform_share: 0.3, data_noise: 0.0, on_policy_share: 0.2 };
    assert_eq!(cfg.split(10), (3, 5, 2));
    assert_eq!(cfg.split(1), (0, 1, 0));
    let nu = sample_nu_train(&model, &data, 10, &cfg, &mut rng(1)).unwrap();
    assert_eq!(nu.dims(), &[10, 2]);
    let v = host(&nu);
    assert!(v.iter().all(|c| (0.0..1.0).contains(c)));
    // without noise the data share is made of data rows
    let rows = host(&data);
    for i in 3..8 {
        let p = &v[2 * i..2 * i + 2];
        assert!(rows.chunks(2).any(|r| r == p), "row {i} is not a data point");
    }
    // seeded: same seed, same points; noise moves the data rows
    assert_eq!(host(&sample_nu_train(&model, &data, 10, &cfg, &mut rng(1)).unwrap()), v);
    let noisy = NuTrainConfig { data_noise: 0.05, ..cfg.clone() };
    let w = host(&sample_nu_train(&model, &data, 10, &noisy, &mut rng(1)).unwrap());
    assert!((6..16).any(|i| w[i] != v[i]));
    // on the sphere every point is a unit vector
    let sm = flow_model(sphere(), DType::F64, 1.0, false, 0);
    let sd = uniform(sphere(), 5, DType::F64, 2);
    let s = host(&sample_nu_train(&sm, &sd, 12, &noisy, &mut rng(3)).unwrap());
    assert!(s.chunks(3).all(|p| (p.iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-9));
    // errors
    let empty = data.narrow(0, 0, 0).unwrap();
    assert!(matches!(sample_nu_train(&model, &empty, 10, &cfg, &mut rng(1)), Err(LossError::EmptyBatch { .. })));
    let all_uniform = NuTrainConfig { uniform_share: 1.0, ..cfg.clone() };
    assert!(sample_nu_train(&model, &empty, 10, &NuTrainConfig { on_policy_share: 0.0, ..all_uniform }, &mut rng(1))
        .is_ok());
    assert!(matches!(sample_nu_train(&model, &data, 0, &cfg, &mut rng(1)), Err(LossError::EmptyBatch { .. })));
    for bad in [
        NuTrainConfig { uniform_share: 1.5, ..cfg.clone() },
        NuTrainConfig { uniform_share: 0.7, on_policy_share: 0.5, data_noise: 0.0 },
        NuTrainConfig { data_noise: -0.1, ..cfg.clone() },
    ] {
        assert!(matches!(sample_nu_train(&model, &data, 10, &bad, &mut rng(1)), Err(LossError::InvalidConfig { .. })));
    }
    assert_eq!(model.dtype(), DType::F64);
}
