//! Learnable Möbius maps: the same map as the fixed one at its start, exact
//! gradients with respect to the parameter, `|w| < 1` whatever the variable, and
//! how families and specs name and describe them.

use candle_core::{DType, Device, Tensor};
use egf_diffeo::{DiffeoSpec, Diffeomorphism, Family, FamilySpec, LearnableSphereMobius, SphereMobius};
use egf_manifold::Manifold;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn s2() -> Manifold {
    Manifold::sphere(2).unwrap()
}

fn points(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    s2().sample_uniform(n, &mut rng, DType::F64, &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_vec2().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

#[test]
fn at_its_start_it_is_the_fixed_map() {
    let w0 = vec![0.3, -0.5, 0.2];
    let fixed = SphereMobius::new(w0.clone()).unwrap();
    let learned = LearnableSphereMobius::new(w0.clone(), DType::F64, &Device::Cpu).unwrap();
    let center = learned.center().unwrap();
    assert!(center.iter().zip(&w0).all(|(a, b)| (a - b).abs() < 1e-15), "{center:?}");
    let x = points(200, 1);
    assert!(max_diff(&fixed.forward(&x).unwrap(), &learned.forward(&x).unwrap()) < 1e-13);
    assert!(max_diff(&fixed.inverse(&x).unwrap(), &learned.inverse(&x).unwrap()) < 1e-13);
    assert!(max_diff(&fixed.log_det_forward(&x).unwrap(), &learned.log_det_forward(&x).unwrap()) < 1e-12);
    let (pre, ld) = learned.inverse_with_log_det(&x).unwrap();
    assert!(max_diff(&learned.forward(&pre).unwrap(), &x) < 1e-12);
    // log |det D(M⁻¹)(y)| = −log |det DM(M⁻¹ y)|
    let back = learned.log_det_forward(&pre).unwrap().neg().unwrap();
    assert!(max_diff(&ld.unwrap(), &back) < 1e-12);
    let p = rows(&x)[7].clone();
    let y = learned.forward_f64(&p);
    assert!(y.iter().zip(fixed.forward_f64(&p)).all(|(a, b)| (a - b).abs() < 1e-14));
    assert_eq!(learned.spec(), DiffeoSpec::SphereMobius { center: center.clone(), learnable: true });
    assert_eq!(learned.manifold(), s2());
    assert!(!learned.is_volume_preserving());
}

/// d/dv of `Σ_k c_k · M_w⁻¹(y_k) + Σ_k log |det D(M_w⁻¹)(y_k)|` by autograd against
/// central differences of the `f64` reference.
#[test]
fn gradient_with_respect_to_the_parameter_is_exact() {
    let map = LearnableSphereMobius::new(vec![-0.2, 0.4, 0.35], DType::F64, &Device::Cpu).unwrap();
    let y = points(64, 2);
    let c = Tensor::new(&[0.7f64, -1.3, 0.4], &Device::Cpu).unwrap().reshape((1, 3)).unwrap();
    let objective = |map: &LearnableSphereMobius| -> Tensor {
        let (pre, ld) = map.inverse_with_log_det(&y).unwrap();
        (pre.broadcast_mul(&c).unwrap().sum_all().unwrap() + ld.unwrap().sum_all().unwrap()).unwrap()
    };
    let grads = objective(&map).backward().unwrap();
    let analytic: Vec<f64> = grads.get(map.variable().as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let reference = |v: &[f64]| -> f64 {
        let stretch = (1.0 + v.iter().map(|a| a * a).sum::<f64>()).sqrt().recip();
        let fixed = SphereMobius::new(v.iter().map(|a| a * stretch).collect()).unwrap();
        rows(&y)
            .iter()
            .map(|yk| {
                let x = fixed.inverse_f64(yk);
                x.iter().zip([0.7, -1.3, 0.4]).map(|(a, b)| a * b).sum::<f64>() - fixed.log_det_forward_f64(&x)
            })
            .sum()
    };
    let v0: Vec<f64> = map.variable().as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let h = 1e-6;
    for j in 0..3 {
        let (mut up, mut down) = (v0.clone(), v0.clone());
        up[j] += h;
        down[j] -= h;
        let numeric = (reference(&up) - reference(&down)) / (2.0 * h);
        assert!(
            (analytic[j] - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
            "coordinate {j}: autograd {} vs finite differences {numeric}",
            analytic[j]
        );
    }
}

/// An optimizer may drive `v` anywhere: `w` stays in the unit ball, the map keeps the
/// sphere, and every method sees the new value.
#[test]
fn any_parameter_value_is_a_diffeomorphism_of_the_sphere() {
    let map = LearnableSphereMobius::new(vec![0.0, 0.0, 0.5], DType::F32, &Device::Cpu).unwrap();
    assert_eq!(map.variable().dtype(), DType::F32);
    map.variable().set(&Tensor::new(&[[300.0f32, -400.0, 0.0]], &Device::Cpu).unwrap()).unwrap();
    let w = map.center().unwrap();
    let r = w.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(r < 1.0 && r > 0.99999, "|w| = {r}");
    assert!((w[0] - 0.6 * r).abs() < 1e-6 && (w[1] + 0.8 * r).abs() < 1e-6, "{w:?}");
    let x = points(100, 3).to_dtype(DType::F32).unwrap();
    let y = map.forward(&x).unwrap();
    let norms: Vec<f32> = y.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-3), "{norms:?}");
    let p = rows(&x.to_dtype(DType::F64).unwrap())[0].clone();
    let y0: Vec<f32> = y.get(0).unwrap().to_vec1().unwrap();
    let reference = SphereMobius::new(w).unwrap().forward_f64(&p);
    assert!(y0.iter().zip(&reference).all(|(a, b)| (*a as f64 - b).abs() < 1e-3), "{y0:?} vs {reference:?}");
}

#[test]
fn families_name_their_parameters_and_specs_round_trip() {
    let toml = r#"
        preset = { name = "sphere_axis_rotations", angle = 0.7853981633974483 }
        [[maps]]
        kind = "sphere_mobius"
        center = [0.5, 0.0, 0.0]
        [[maps]]
        kind = "sphere_mobius"
        center = [0.0, -0.5, 0.0]
        learnable = true
    "#;
    let spec: FamilySpec = toml::from_str(toml).unwrap();
    assert_eq!(spec.maps[1], DiffeoSpec::SphereMobius { center: vec![0.0, -0.5, 0.0], learnable: true });
    // a fixed map is written without the flag, so old configs and checkpoints read the same
    let written = toml::to_string(&spec).unwrap();
    assert_eq!(written.matches("learnable").count(), 1, "{written}");
    assert_eq!(toml::from_str::<FamilySpec>(&written).unwrap(), spec);

    let family = Family::from_spec_on(&spec, s2(), DType::F32, &Device::Cpu).unwrap();
    let names: Vec<String> = family
        .parameters()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), DType::F32);
            assert_eq!(v.dims(), &[1, 3]);
            n
        })
        .collect();
    assert_eq!(names, vec!["family.map7.v".to_string()]);
    assert!(!family.is_volume_preserving());
    let fixed = Family::from_spec(&FamilySpec::sphere_axis_rotations(0.3), s2()).unwrap();
    assert!(fixed.parameters().is_empty());
    // the learnable map validates its start like the fixed one
    let bad = FamilySpec {
        preset: None,
        maps: vec![DiffeoSpec::SphereMobius { center: vec![0.0, 1.0, 0.0], learnable: true }],
    };
    let err = Family::from_spec(&bad, s2()).unwrap_err().to_string();
    assert!(err.contains("sphere_mobius") && err.contains("< 1"), "{err}");
}
