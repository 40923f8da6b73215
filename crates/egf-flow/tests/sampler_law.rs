//! The sampler produces t / Z_init (spec section 4) and the backward kernel is
//! consistent with it (spec section 6).

mod common;

use candle_core::{DType, Tensor};
use common::{host, shape_outflow, small_flow};

use egf_diffeo::{DiffeoSpec, FamilySpec};
use egf_flow::features::FeatureConfig;
use egf_flow::network::{Activation, NetworkConfig};
use egf_flow::{
    importance_log_density, sample, sample_backward, trajectory_log_probs, trajectory_log_probs_detached, EgfModel,
    PolicyModel, PolicyModelConfig, SamplerConfig,
};
use egf_manifold::{test_device, Manifold, QuadratureGrid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A torus model with g(x) = 0.45 · exp(0.7 cos 2πx_1) ∈ [0.22, 0.91] (a network
/// with no hidden layer on Fourier features) and uniform α, so 0 < g < f_init = 1
/// and t ≥ 0.09 everywhere, yet t is clearly non-uniform.
fn nonnegative_torus_model() -> egf_flow::FlowModel {
    let device = test_device();
    let manifold = Manifold::torus(2).unwrap();
    let mut config = egf_flow::FlowModelConfig::new(manifold, FamilySpec::torus_sl2z_irrational());
    config.network = NetworkConfig { width: 8, depth: 0, activation: Activation::Tanh };
    let model = egf_flow::FlowModel::new(config.clone(), DType::F64, &device).unwrap();
    let features = egf_flow::features::FeatureMap::new(manifold, &config.features).unwrap();
    let probe =
        |x: f64, y: f64| host(&features.apply(&Tensor::new(&[[x, y]], &device).unwrap()).unwrap().squeeze(0).unwrap());
    let (a, b, c) = (probe(0.0, 0.0), probe(0.25, 0.0), probe(0.0, 0.25));
    let col = (0..features.dim())
        .find(|&j| (a[j] - 1.0).abs() < 1e-12 && b[j].abs() < 1e-12 && (c[j] - 1.0).abs() < 1e-12)
        .unwrap();
    let p = model.family().len();
    let mut w = vec![0.0; (1 + p) * features.dim()];
    w[col] = 0.7;
    common::set_var(&model, "net.l0.weight", &Tensor::from_vec(w, (1 + p, features.dim()), &device).unwrap());
    let mut bias = vec![0.0; 1 + p];
    bias[0] = 0.45f64.ln();
    common::set_var(&model, "net.l0.bias", &Tensor::new(bias, &device).unwrap());
    model
}

#[test]
fn sampler_matches_the_virtual_terminal_density() {
    let model = nonnegative_torus_model();
    let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 200).unwrap();
    let mass = model.mass_report(&grid, 8192).unwrap();
    assert!(mass.negative_mass == 0.0, "construction must give t ≥ 0, δ = {}", mass.negative_mass);
    // expected bin probabilities of t on a 10 × 10 histogram (each bin 20 × 20 grid cells)
    let (pts, w) = grid.chunk_tensors(0, grid.len(), DType::F64, &test_device()).unwrap();
    let t = host(&model.evaluate(&pts).unwrap().t);
    let w = host(&w);
    let bins = 10usize;
    let mut expected = vec![0.0; bins * bins];
    for k in 0..grid.len() {
        let x = grid.point(k);
        expected[(x[0] * bins as f64) as usize * bins + (x[1] * bins as f64) as usize] += t[k] * w[k];
    }
    let max_dev = expected.iter().map(|e| (e - 0.01f64).abs()).fold(0.0, f64::max);
    assert!(max_dev > 0.002, "t must be visibly non-uniform for the test to mean something ({max_dev})");

    let n = 100_000;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let out = sample(
        &model,
        n,
        &SamplerConfig { max_moves: 200, defensive_weight: 0.0, record_trajectories: false },
        &mut rng,
    )
    .unwrap();
    assert_eq!(out.truncated_count(), 0);
    let s = out.samples.to_vec2::<f64>().unwrap();
    let mut hist = vec![0.0; bins * bins];
    for x in &s {
        assert!(x.iter().all(|c| (0.0..1.0).contains(c)));
        hist[((x[0] * bins as f64) as usize).min(bins - 1) * bins + ((x[1] * bins as f64) as usize).min(bins - 1)] +=
            1.0 / n as f64;
    }
    let tv: f64 = 0.5 * hist.iter().zip(&expected).map(|(a, b)| (a - b).abs()).sum::<f64>();
    // Monte-Carlo floor for 100 bins and 1e5 samples: E[TV] ≈ 0.5·Σ sqrt(2 p/(π n)) ≈ 0.013
    assert!(tv < 0.02, "TV(sampler, t) = {tv}");
    // E[moves] = ∫ g / Z_init; moves have variance ≤ E[m²], bound the error by 5 standard errors
    let mean = out.mean_moves();
    let var = out.moves.iter().map(|m| (*m as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    let se = (var / n as f64).sqrt();
    assert!((mean - mass.integral_g).abs() < 5.0 * se, "mean moves {mean} vs ∫g = {} (se {se})", mass.integral_g);
}

#[test]
fn sampler_is_reproducible_and_counts_truncation_and_defensive_draws() {
    let model = small_flow(Manifold::sphere(2).unwrap(), FamilySpec::sphere_axis_rotations(0.785), 2);
    shape_outflow(&model, 0.3, 3.0); // g ≫ f_init: long chains
    let config = SamplerConfig { max_moves: 3, defensive_weight: 0.25, record_trajectories: true };
    let a = sample(&model, 400, &config, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let b = sample(&model, 400, &config, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    assert_eq!(a.samples.to_vec2::<f64>().unwrap(), b.samples.to_vec2::<f64>().unwrap());
    assert!(a.truncated_count() > 100, "most non-uniform chains should hit the cap of 3");
    assert!(a.moves.iter().all(|m| *m <= 3));
    let uniform = a.uniform_draw.iter().filter(|u| **u).count();
    assert!((60..=140).contains(&uniform), "{uniform} defensive draws of 400 at w = 0.25");
    for (i, u) in a.uniform_draw.iter().enumerate() {
        if *u {
            assert_eq!(a.moves[i], 0);
            assert!(!a.truncated[i]);
        }
    }
    // trajectories end at the samples and follow the recorded moves
    let traj = a.trajectories.unwrap();
    assert_eq!(traj.end_points().unwrap().to_vec2::<f64>().unwrap(), a.samples.to_vec2::<f64>().unwrap());
    let states = traj.states.to_vec2::<f64>().unwrap();
    for c in 0..traj.len() {
        for k in 0..traj.moves_of(c) {
            let i = traj.moves[traj.offsets[c] - c + k] as usize;
            let next = model.family().member(i).forward_f64(&states[traj.offsets[c] + k]);
            let d: f64 = next.iter().zip(&states[traj.offsets[c] + k + 1]).map(|(u, v)| (u - v).abs()).sum();
            assert!(d < 1e-12);
        }
    }
}

/// With t ≥ 0 everywhere, P_F(τ, x) / P_B(τ | x) = t(x) / Z_init for every backward
/// trajectory τ (spec section 6), also with non-isometric (Möbius) moves.
#[test]
fn backward_kernel_gives_zero_variance_importance_weights() {
    let mut family = FamilySpec::sphere_axis_rotations(std::f64::consts::FRAC_PI_4);
    family.maps.push(DiffeoSpec::SphereMobius { center: vec![0.1, 0.2, -0.3], learnable: false });
    family.maps.push(DiffeoSpec::SphereMobius { center: vec![-0.1, -0.2, 0.3], learnable: false });
    let model = small_flow(Manifold::sphere(2).unwrap(), family, 21);
    // g between 0.2 and 0.6 f_init·(max Jacobian of Möbius ≤ (1.37/0.63)²) keeps t > 0
    shape_outflow(&model, 0.05, (0.12 / (4.0 * std::f64::consts::PI)).ln());
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = Manifold::sphere(2).unwrap().sample_uniform(64, &mut rng, DType::F64, &test_device()).unwrap();
    let t = host(&model.evaluate(&x).unwrap().t);
    assert!(t.iter().all(|v| *v > 0.0));
    let rep = Tensor::cat(&[&x, &x, &x], 0).unwrap();
    let traj = sample_backward(&model, &rep, 50, &mut rng).unwrap();
    assert_eq!(traj.truncated_count(), 0);
    assert!(traj.moves.len() > 20, "backward trajectories must contain moves ({})", traj.moves.len());
    let lp = trajectory_log_probs(&model, &traj).unwrap();
    let ratio = host(&(&lp.log_pf - &lp.log_pb).unwrap());
    for (j, r) in ratio.iter().enumerate() {
        let expected = t[j % 64].ln(); // Z_init = 1
        assert!((r - expected).abs() < 1e-10, "trajectory {j}: {r} vs log t = {expected}");
    }
    // the evaluation path: detached weights, states in chunks of 7 (not a divisor of their number)
    let detached = trajectory_log_probs_detached(&model, &traj, 7).unwrap();
    assert!(traj.states.dim(0).unwrap() % 7 != 0);
    for (a, b) in [(&lp.log_pf, &detached.log_pf), (&lp.log_pb, &detached.log_pb)] {
        for (x, y) in host(a).iter().zip(&host(b)) {
            assert!((x - y).abs() < 1e-12, "tracked {x} vs detached {y}");
        }
    }
    assert!(trajectory_log_probs_detached(&model, &traj, 0).is_err());
    let est = importance_log_density(&model, &x, 4, 50, 32, &mut rng).unwrap();
    for (e, tv) in host(&est.log_density).iter().zip(&t) {
        assert!((e - tv.ln()).abs() < 1e-10);
    }
}

/// Policy model: trajectory log-probabilities equal a brute-force computation
/// that evaluates the policy one state at a time and sums in f64.
#[test]
fn policy_model_trajectory_log_probs_match_brute_force() {
    let mut family = FamilySpec::torus_sl2z();
    family.maps.push(DiffeoSpec::TorusWarp { amplitudes: vec![0.5, -0.3] });
    let mut config = PolicyModelConfig::new(Manifold::torus(2).unwrap(), family);
    config.features = FeatureConfig { max_frequency: 2, ..FeatureConfig::default() };
    config.network = NetworkConfig { width: 8, depth: 1, activation: Activation::Silu };
    config.initial_stop_probability = 0.3;
    let model = PolicyModel::new(config, DType::F64, &test_device()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let out =
        sample(&model, 30, &SamplerConfig { max_moves: 6, defensive_weight: 0.0, record_trajectories: true }, &mut rng)
            .unwrap();
    let traj = out.trajectories.unwrap();
    assert!(traj.moves.len() > 10);
    // some chains hit the cap: their forced stop must not be scored as a stop of the policy
    assert!((1..traj.len()).contains(&traj.truncated_count()), "{} truncated", traj.truncated_count());
    let lp = trajectory_log_probs(&model, &traj).unwrap();
    let (pf, pb) = (host(&lp.log_pf), host(&lp.log_pb));
    let states = traj.states.to_vec2::<f64>().unwrap();
    let policy_at = |s: &[f64]| {
        let lp = model.policy_log_probs(&Tensor::new(s, &test_device()).unwrap().unsqueeze(0).unwrap()).unwrap();
        (host(&lp.forward.squeeze(0).unwrap()), host(&lp.backward.squeeze(0).unwrap()))
    };
    for c in 0..traj.len() {
        let base = traj.offsets[c];
        let len = traj.moves_of(c);
        let mut f = -0.0f64; // log q_init = −log 1
        let mut b = 0.0f64;
        for k in 0..len {
            let i = traj.moves[base - c + k] as usize;
            f += policy_at(&states[base + k]).0[1 + i];
            b += policy_at(&states[base + k + 1]).1[1 + i];
            // log |det D(Φ_i⁻¹)(s_k)| = −log |det DΦ_i(s_{k−1})|
            f -= model.family().member(i).log_det_forward_f64(&states[base + k]);
        }
        if !traj.truncated[c] {
            f += policy_at(&states[base + len]).0[0]; // a capped chain was stopped with probability 1
        }
        b += policy_at(&states[base]).1[0];
        assert!((pf[c] - f).abs() < 1e-9, "chain {c}: log P_F {} vs {f}", pf[c]);
        assert!((pb[c] - b).abs() < 1e-9, "chain {c}: log P_B {} vs {b}", pb[c]);
    }
}

/// A model whose t is negative somewhere: the sampler still runs, reports
/// truncation honestly, and the importance estimate is finite.
#[test]
fn negative_mass_model_is_sampled_and_scored_honestly() {
    let model = small_flow(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z_irrational(), 13);
    shape_outflow(&model, 2.0, 1.5);
    let grid = QuadratureGrid::new(Manifold::torus(2).unwrap(), 64).unwrap();
    let mass = model.mass_report(&grid, 4096).unwrap();
    assert!(mass.negative_mass > 0.01, "δ = {}", mass.negative_mass);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let out = sample(&model, 2000, &SamplerConfig { max_moves: 40, ..SamplerConfig::default() }, &mut rng).unwrap();
    assert!(out.max_moves() <= 40);
    let x = Manifold::torus(2).unwrap().sample_uniform(50, &mut rng, DType::F64, &test_device()).unwrap();
    let est = importance_log_density(&model, &x, 8, 40, 25, &mut rng).unwrap();
    assert_eq!(est.samples_per_point, 8);
    assert!(host(&est.log_density).iter().all(|v| !v.is_nan()));
    let rep = model.log_reported_density(&x, &mass, 1e-3).unwrap();
    assert!(host(&rep).iter().all(|v| v.is_finite() && *v >= (1e-3f64).ln() - 1e-9));
}
