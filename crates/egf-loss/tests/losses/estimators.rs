//! The score-function estimators are unbiased and the leave-one-out baseline lowers
//! their variance: checked against exact gradients by enumeration on small
//! categorical models of trajectories.

use candle_core::{DType, Tensor, Var};
use egf_flow::numerics::{log_softmax_last, logsumexp};
use egf_loss::{
    elbo_surrogate, iw_elbo_surrogate, leave_one_out_mean, reverse_kl_surrogate, BackwardGradient, Baseline,
    ScoreSurrogate,
};
use egf_manifold::test_device;
use rand::Rng;

use crate::common::*;

const ITERATIONS: usize = 400;
const REPLICATES: usize = 25;

fn var(values: &[f64], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(values.to_vec(), shape, &test_device()).unwrap()).unwrap()
}

fn draw<R: Rng>(p: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, pi) in p.iter().enumerate() {
        acc += pi;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

fn gradient(loss: &Tensor, vars: &[&Var]) -> Vec<f64> {
    let grads = loss.backward().unwrap();
    vars.iter().flat_map(|v| grads.get(v.as_tensor()).map(host).unwrap_or_else(|| vec![0.0; v.elem_count()])).collect()
}

/// Mean and variance (per component) of the estimates.
fn moments(samples: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let n = samples.len() as f64;
    let d = samples[0].len();
    let mean: Vec<f64> = (0..d).map(|i| samples.iter().map(|s| s[i]).sum::<f64>() / n).collect();
    let var: Vec<f64> =
        (0..d).map(|i| samples.iter().map(|s| (s[i] - mean[i]).powi(2)).sum::<f64>() / (n - 1.0)).collect();
    (mean, var)
}

/// Asserts that the mean estimate matches `exact` within 4.5 standard errors per
/// component; returns the total variance of one estimate.
fn assert_unbiased(samples: &[Vec<f64>], exact: &[f64], what: &str) -> f64 {
    let (mean, var) = moments(samples);
    for i in 0..exact.len() {
        let se = (var[i] / samples.len() as f64).sqrt();
        assert!(
            (mean[i] - exact[i]).abs() <= 4.5 * se + 1e-12,
            "{what}: component {i}: mean {} vs exact {} (se {se})",
            mean[i],
            exact[i]
        );
    }
    var.iter().sum()
}

#[test]
fn leave_one_out_mean_is_the_mean_of_the_others() {
    let device = test_device();
    let v = Tensor::new(&[[1.0f64, 10.0], [2.0, 20.0], [6.0, 60.0]], &device).unwrap();
    let b = host(&leave_one_out_mean(&v).unwrap());
    assert_eq!(b, vec![4.0, 40.0, 3.5, 35.0, 1.5, 15.0]);
    assert!(leave_one_out_mean(&Tensor::new(&[1.0f64], &device).unwrap()).is_err());
}

#[test]
fn surrogate_gradients_are_their_coefficients() {
    let pf = var(&[-1.0, -2.0, -0.5, -3.0], &[2, 2]);
    let pb = var(&[-0.7, -0.1, -1.5, -0.2], &[2, 2]);
    let r = Tensor::new(&[[0.5f64, 0.1], [-0.4, 0.2]], &test_device()).unwrap();
    let check = |s: ScoreSurrogate| {
        let g = s.loss.backward().unwrap();
        assert_eq!(host(g.get(pf.as_tensor()).unwrap()), host(&s.pf_coefficients));
        assert_eq!(host(g.get(pb.as_tensor()).unwrap()), host(&s.pb_coefficients));
        assert_eq!(scalar(&s.loss), scalar(&s.value));
    };
    let s = reverse_kl_surrogate(pf.as_tensor(), pb.as_tensor(), &r, Baseline::LeaveOneOut).unwrap();
    // w = pf − pb − r = [[−0.8, −2.0], [1.4, −3.0]]; leave-one-out along dim 0 pairs the rows
    let expect_a = [-2.2 / 4.0, 1.0 / 4.0, 2.2 / 4.0, -1.0 / 4.0];
    assert!(host(&s.pf_coefficients).iter().zip(expect_a).all(|(a, b)| (a - b).abs() < 1e-12));
    assert!(host(&s.pb_coefficients).iter().all(|c| *c == -0.25));
    assert!((scalar(&s.value) - (-0.8 - 2.0 + 1.4 - 3.0) / 4.0).abs() < 1e-12);
    check(s);
    for backward in [BackwardGradient::Reinforce, BackwardGradient::Fixed] {
        for baseline in [Baseline::None, Baseline::LeaveOneOut] {
            check(elbo_surrogate(pf.as_tensor(), pb.as_tensor(), backward, baseline).unwrap());
            check(iw_elbo_surrogate(pf.as_tensor(), pb.as_tensor(), backward, baseline).unwrap());
        }
    }
    let short = Tensor::new(&[1.0f64], &test_device()).unwrap();
    assert!(reverse_kl_surrogate(&short, pb.as_tensor(), &r, Baseline::None).is_err());
}

/// Reverse KL on four joint outcomes `k = (x, τ)`, `x = k / 2`, `τ = k % 2`:
/// `P_F(k) = softmax(θ)_k`, `P_B(τ | x) = softmax(ψ_x)_τ`.
#[test]
fn reverse_kl_estimator_is_unbiased_and_leave_one_out_lowers_its_variance() {
    let theta = var(&[0.3, -0.2, 0.8, -1.0], &[4]);
    let psi = var(&[0.5, -0.5, -0.3, 0.9], &[2, 2]);
    let log_r_all = Tensor::new(&[3.0f64, 3.0, 2.0, 2.0], &test_device()).unwrap();
    let tables = || {
        let lpf = log_softmax_last(theta.as_tensor()).unwrap();
        let lpb = log_softmax_last(psi.as_tensor()).unwrap().flatten_all().unwrap();
        (lpf, lpb)
    };
    // exact: ∇ Σ_k p_k (log p_k − log P_B − log R)
    let (lpf, lpb) = tables();
    let exact_kl = (lpf.exp().unwrap() * ((&lpf - &lpb).unwrap() - &log_r_all).unwrap()).unwrap().sum_all().unwrap();
    let exact = gradient(&exact_kl, &[&theta, &psi]);
    let p = host(&lpf.exp().unwrap());
    let batch = 4;
    let mut variances = Vec::new();
    for baseline in [Baseline::None, Baseline::LeaveOneOut] {
        let mut r = rng(17);
        let samples: Vec<Vec<f64>> = (0..ITERATIONS)
            .map(|_| {
                let idx: Vec<u32> = (0..batch * REPLICATES).map(|_| draw(&p, &mut r) as u32).collect();
                let idx = Tensor::from_vec(idx, batch * REPLICATES, &test_device()).unwrap();
                let (lpf, lpb) = tables();
                let gather = |t: &Tensor| t.index_select(&idx, 0).unwrap().reshape((batch, REPLICATES)).unwrap();
                let s = reverse_kl_surrogate(&gather(&lpf), &gather(&lpb), &gather(&log_r_all), baseline).unwrap();
                gradient(&s.loss, &[&theta, &psi])
            })
            .collect();
        variances.push(assert_unbiased(&samples, &exact, &format!("reverse KL, {baseline:?}")));
    }
    eprintln!("reverse KL gradient variance: plain {} leave-one-out {}", variances[0], variances[1]);
    assert!(variances[1] < 0.5 * variances[0], "variance: plain {} vs leave-one-out {}", variances[0], variances[1]);
    // power of the check: a baseline that includes the sample itself (the batch mean) is
    // biased by the factor (B − 1)/B on the score term, and the check sees it
    let mut r = rng(17);
    let biased: Vec<Vec<f64>> = (0..ITERATIONS)
        .map(|_| {
            let idx: Vec<u32> = (0..batch * REPLICATES).map(|_| draw(&p, &mut r) as u32).collect();
            let idx = Tensor::from_vec(idx, batch * REPLICATES, &test_device()).unwrap();
            let (lpf, lpb) = tables();
            let gather = |t: &Tensor| t.index_select(&idx, 0).unwrap().reshape((batch, REPLICATES)).unwrap();
            let (pf, pb) = (gather(&lpf), gather(&lpb));
            let w = ((&pf - &pb).unwrap() - gather(&log_r_all)).unwrap().detach();
            let signal = w.broadcast_sub(&w.mean_keepdim(0).unwrap()).unwrap();
            let n = (batch * REPLICATES) as f64;
            let s = ((signal * &pf).unwrap().sum_all().unwrap() - pb.sum_all().unwrap()).unwrap();
            gradient(&(s / n).unwrap(), &[&theta, &psi])
        })
        .collect();
    let (mean, var) = moments(&biased);
    let worst = (0..8).map(|i| (mean[i] - exact[i]).abs() / (var[i] / ITERATIONS as f64).sqrt()).fold(0.0, f64::max);
    assert!(worst > 6.0, "the biased estimator should be detected: {worst} standard errors");
}

/// Two points `x`, three backward trajectories each: `P_B(τ | x) = softmax(ψ_x)_τ`,
/// `P_F(τ, x) = softmax(θ)_{3x + τ}`.
struct ElboCase {
    theta: Var,
    psi: Var,
}

impl ElboCase {
    fn new() -> Self {
        Self {
            theta: var(&[0.2, -0.4, 1.0, 0.1, -0.8, 0.5], &[6]),
            psi: var(&[0.6, -0.2, 0.1, -0.5, 0.3, 0.7], &[2, 3]),
        }
    }

    /// `(log P_F, log P_B)` as flat tables over the six `(x, τ)` pairs.
    fn tables(&self) -> (Tensor, Tensor) {
        let lpf = log_softmax_last(self.theta.as_tensor()).unwrap();
        let lpb = log_softmax_last(self.psi.as_tensor()).unwrap().flatten_all().unwrap();
        (lpf, lpb)
    }

    /// Runs the estimator `surrogate` on `K` backward draws per point (copy-major `(K, 2 · REPLICATES)`).
    fn estimates(&self, k: usize, seed: u64, surrogate: &dyn Fn(&Tensor, &Tensor) -> ScoreSurrogate) -> Vec<Vec<f64>> {
        let (_, lpb) = self.tables();
        let pb = host(&lpb.exp().unwrap());
        let mut r = rng(seed);
        let cols = 2 * REPLICATES;
        (0..ITERATIONS)
            .map(|_| {
                let idx: Vec<u32> = (0..k * cols)
                    .map(|i| {
                        let x = (i % cols) % 2;
                        (3 * x + draw(&pb[3 * x..3 * x + 3], &mut r)) as u32
                    })
                    .collect();
                let idx = Tensor::from_vec(idx, k * cols, &test_device()).unwrap();
                let (lpf, lpb) = self.tables();
                let gather = |t: &Tensor| t.index_select(&idx, 0).unwrap().reshape((k, cols)).unwrap();
                let s = surrogate(&gather(&lpf), &gather(&lpb));
                gradient(&s.loss, &[&self.theta, &self.psi])
            })
            .collect()
    }
}

#[test]
fn elbo_estimator_is_unbiased_and_leave_one_out_lowers_its_variance() {
    let case = ElboCase::new();
    let (lpf, lpb) = case.tables();
    let l = (&lpf - &lpb).unwrap();
    let neg_elbo = (lpb.exp().unwrap() * l).unwrap().sum_all().unwrap().affine(-0.5, 0.0).unwrap();
    let exact = gradient(&neg_elbo, &[&case.theta, &case.psi]);
    let k = 4;
    let mut variances = Vec::new();
    for baseline in [Baseline::None, Baseline::LeaveOneOut] {
        let est =
            case.estimates(k, 5, &|pf, pb| elbo_surrogate(pf, pb, BackwardGradient::Reinforce, baseline).unwrap());
        variances.push(assert_unbiased(&est, &exact, &format!("ELBO, {baseline:?}")));
    }
    eprintln!("ELBO gradient variance: plain {} leave-one-out {}", variances[0], variances[1]);
    assert!(variances[1] < variances[0], "variance: plain {} vs leave-one-out {}", variances[0], variances[1]);
    // a fixed backward policy: E[∇ log P_F] for θ, nothing for ψ
    let est = case.estimates(k, 6, &|pf, pb| elbo_surrogate(pf, pb, BackwardGradient::Fixed, Baseline::None).unwrap());
    let mut fixed_exact = exact.clone();
    fixed_exact[6..].iter_mut().for_each(|v| *v = 0.0);
    assert_unbiased(&est, &fixed_exact, "ELBO, fixed P_B");
    assert!(est.iter().all(|g| g[6..].iter().all(|v| *v == 0.0)));
}

#[test]
fn importance_weighted_estimator_is_unbiased_and_vimco_lowers_its_variance() {
    let case = ElboCase::new();
    let k = 3;
    // exact −E[log (1/K) Σ_k e^{l(τ_k)}] by enumerating the 27 triples of each point
    let (lpf, lpb) = case.tables();
    let l = (&lpf - &lpb).unwrap();
    let triples: Vec<u32> = (0..27u32).flat_map(|c| [c % 3, (c / 3) % 3, c / 9]).collect();
    let mut total: Option<Tensor> = None;
    for x in 0..2u32 {
        let idx =
            Tensor::from_vec(triples.iter().map(|t| 3 * x + t).collect::<Vec<u32>>(), 81, &test_device()).unwrap();
        let lt = l.index_select(&idx, 0).unwrap().reshape((27, 3)).unwrap();
        let lse = (logsumexp(&lt, 1).unwrap() - 3f64.ln()).unwrap();
        let weight = lpb.index_select(&idx, 0).unwrap().reshape((27, 3)).unwrap().sum(1).unwrap().exp().unwrap();
        let term = (weight * lse).unwrap().sum_all().unwrap();
        total = Some(match total {
            None => term,
            Some(t) => (t + term).unwrap(),
        });
    }
    let neg_iw = total.unwrap().affine(-0.5, 0.0).unwrap();
    let exact = gradient(&neg_iw, &[&case.theta, &case.psi]);
    let mut variances = Vec::new();
    for baseline in [Baseline::None, Baseline::LeaveOneOut] {
        let est =
            case.estimates(k, 7, &|pf, pb| iw_elbo_surrogate(pf, pb, BackwardGradient::Reinforce, baseline).unwrap());
        variances.push(assert_unbiased(&est, &exact, &format!("IW-ELBO, {baseline:?}")));
    }
    eprintln!("IW-ELBO gradient variance: plain {} VIMCO {}", variances[0], variances[1]);
    assert!(variances[1] < variances[0], "variance: plain {} vs VIMCO {}", variances[0], variances[1]);
    assert_eq!(DType::F64, lpf.dtype());
}
