//! The ergodicity diagnostic on mixing and degenerate families (fixed seeds).

use std::f64::consts::FRAC_PI_4;

use egf_diffeo::ergodicity::{
    check, diagnose, finite_orbit_warning, generic_point, Binning, ErgodicityConfig, Reference,
};
use egf_diffeo::{DiffeoSpec, Family, FamilySpec};
use egf_manifold::Manifold;
use rand::SeedableRng;

fn t2() -> Manifold {
    Manifold::torus(2).unwrap()
}

fn s2() -> Manifold {
    Manifold::sphere(2).unwrap()
}

fn family(maps: Vec<DiffeoSpec>, manifold: Manifold) -> Family {
    Family::from_spec(&FamilySpec { preset: None, maps }, manifold).unwrap()
}

fn z_rotations() -> Family {
    family(
        [FRAC_PI_4, -FRAC_PI_4]
            .iter()
            .map(|&angle| DiffeoSpec::SphereAxisRotation { axis: [0.0, 0.0, 1.0], angle })
            .collect(),
        s2(),
    )
}

fn rational_translations() -> Family {
    family(
        [[0.5, 0.0], [0.0, 0.5], [0.25, 0.0], [-0.25, 0.0], [0.0, 0.25], [0.0, -0.25]]
            .iter()
            .map(|s| DiffeoSpec::TorusTranslation { shift: s.to_vec() })
            .collect(),
        t2(),
    )
}

#[test]
fn torus_sl2z_mixes() {
    let f = Family::from_spec(&FamilySpec::torus_sl2z(), t2()).unwrap();
    let r = diagnose(&f, &ErgodicityConfig::default()).unwrap();
    assert_eq!(r.tv_by_step.len(), 101);
    assert_eq!(r.reference, Reference::Uniform);
    assert_eq!(r.bins, 256);
    assert!(r.tv_by_step[0] > 0.95, "{}", r.tv_by_step[0]);
    assert!((r.noise_floor - 0.0318).abs() < 1e-3, "{}", r.noise_floor);
    assert!((r.threshold - 0.05).abs() < 1e-15);
    // measured: first step below 0.05 is 45 (seed 0)
    let n = r.mixing_step.unwrap();
    assert!((30..=60).contains(&n), "{}", r.summary());
    assert!(r.final_tv < 0.04 && r.looks_ergodic, "{}", r.summary());
}

#[test]
fn torus_sl2z_irrational_mixes() {
    let f = Family::from_spec(&FamilySpec::torus_sl2z_irrational(), t2()).unwrap();
    let r = diagnose(&f, &ErgodicityConfig::default()).unwrap();
    // measured: 17
    assert!(r.mixing_step.unwrap() <= 30, "{}", r.summary());
    assert!(r.final_tv < 0.04 && r.looks_ergodic, "{}", r.summary());
}

#[test]
fn sphere_quarter_pi_rotations_mix() {
    let f = Family::from_spec(&FamilySpec::sphere_axis_rotations(FRAC_PI_4), s2()).unwrap();
    let r = diagnose(&f, &ErgodicityConfig::default()).unwrap();
    assert_eq!(r.bins, 128);
    // measured: 18
    assert!(r.mixing_step.unwrap() <= 30, "{}", r.summary());
    assert!(r.final_tv < 0.03 && r.looks_ergodic, "{}", r.summary());
}

#[test]
fn rotations_about_one_axis_do_not_mix() {
    let r = diagnose(&z_rotations(), &ErgodicityConfig::default()).unwrap();
    // the walkers stay on one latitude circle, at 4 of 8 longitudes (parity of the step)
    assert!(r.tv_by_step.iter().all(|&tv| tv > 0.9), "{}", r.summary());
    assert!(r.mixing_step.is_none() && !r.looks_ergodic);
}

#[test]
fn rational_translations_do_not_mix() {
    let f = rational_translations();
    let r = diagnose(&f, &ErgodicityConfig::default()).unwrap();
    assert!(r.tv_by_step.iter().all(|&tv| tv > 0.9), "{}", r.summary());
    assert!(!r.looks_ergodic);
    let w = finite_orbit_warning(&f).unwrap();
    assert!(w.contains("16 points") && w.contains("(1/4)Z"), "{w}");
}

#[test]
fn check_warns_about_finite_orbits_and_non_mixing() {
    let sl2z = Family::from_spec(&FamilySpec::torus_sl2z(), t2()).unwrap();
    let w = check(&sl2z).unwrap();
    assert!(w.contains("finite orbits") && w.contains("the point 0"), "{w}");
    assert!(!w.contains("does not mix"), "{w}");
    assert_eq!(sl2z.ergodicity_warning(), Some(w));

    let irrational = Family::from_spec(&FamilySpec::torus_sl2z_irrational(), t2()).unwrap();
    assert_eq!(check(&irrational), None);
    assert_eq!(finite_orbit_warning(&irrational), None);
    let sphere = Family::from_spec(&FamilySpec::sphere_axis_rotations(FRAC_PI_4), s2()).unwrap();
    assert_eq!(check(&sphere), None);

    let w = check(&z_rotations()).unwrap();
    assert!(w.contains("does not mix") && w.contains("does NOT look ergodic"), "{w}");
}

#[test]
fn early_stop_shortens_the_run_of_a_mixing_family() {
    let f = Family::from_spec(&FamilySpec::sphere_axis_rotations(FRAC_PI_4), s2()).unwrap();
    let config = ErgodicityConfig { early_stop: true, walkers: 10_000, ..ErgodicityConfig::default() };
    let r = diagnose(&f, &config).unwrap();
    assert!(r.tv_by_step.len() < 60 && r.looks_ergodic, "{}", r.summary());
    // with 10 000 walkers the noise floor (0.045) raises the level above 0.05
    assert!((r.threshold - 1.5 * r.noise_floor).abs() < 1e-15 && r.threshold > 0.05);
}

#[test]
fn non_isometric_families_are_compared_with_a_uniform_start_chain() {
    let base = FamilySpec::sphere_axis_rotations(FRAC_PI_4);
    let mut spec = base.clone();
    spec.maps.push(DiffeoSpec::SphereMobius { center: vec![0.0, 0.0, 0.3], learnable: false });
    spec.maps.push(DiffeoSpec::SphereMobius { center: vec![0.0, 0.0, -0.3], learnable: false });
    let config = ErgodicityConfig { walkers: 10_000, max_steps: 60, ..ErgodicityConfig::default() };
    let r = diagnose(&Family::from_spec(&spec, s2()).unwrap(), &config).unwrap();
    assert_eq!(r.reference, Reference::UniformStartChain);
    assert!(r.looks_ergodic, "{}", r.summary());

    // M_w and M_(−w) alone move points along the great circles through ±w/|w|: no mixing
    let hyperbolic = family(
        vec![
            DiffeoSpec::SphereMobius { center: vec![0.0, 0.0, 0.5], learnable: false },
            DiffeoSpec::SphereMobius { center: vec![0.0, 0.0, -0.5], learnable: false },
        ],
        s2(),
    );
    let r = diagnose(&hyperbolic, &config).unwrap();
    assert!(!r.looks_ergodic && r.final_tv > 0.5, "{}", r.summary());

    // a single Möbius map sends every walker to the fixed point −w/|w|: both
    // populations collapse there, the TV vanishes, but the support test fails
    // (w in general position, so that −w/|w| lies inside one cell)
    let w: Vec<f64> = generic_point(s2()).iter().map(|c| 0.7 * c).collect();
    let collapse = family(vec![DiffeoSpec::SphereMobius { center: w, learnable: false }], s2());
    let r = diagnose(&collapse, &config).unwrap();
    assert!(r.final_tv < 0.05 && r.reference_support < 0.1 && !r.looks_ergodic, "{}", r.summary());
}

#[test]
fn binnings_have_cells_of_equal_measure() {
    // uniform samples land at the Monte-Carlo noise floor from the uniform law
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for binning in [
        Binning::default_for(Manifold::torus(1).unwrap()),
        Binning::default_for(Manifold::torus(2).unwrap()),
        Binning::default_for(Manifold::torus(3).unwrap()),
        Binning::default_for(Manifold::sphere(1).unwrap()),
        Binning::default_for(Manifold::sphere(2).unwrap()),
        Binning::default_for(Manifold::sphere(3).unwrap()),
        Binning::SphereOrthants { dim: 2 },
    ] {
        let m = binning.manifold();
        let bins = binning.num_bins().unwrap();
        let n = 40_000;
        let mut h = vec![0.0; bins];
        for _ in 0..n {
            h[binning.bin(&m.sample_uniform_f64(&mut rng))] += 1.0 / n as f64;
        }
        let tv = 0.5 * h.iter().map(|v| (v - 1.0 / bins as f64).abs()).sum::<f64>();
        let floor = ((bins as f64 - 1.0) / (std::f64::consts::TAU * n as f64)).sqrt();
        assert!((tv / floor - 1.0).abs() < 0.3, "{binning:?}: TV {tv} vs floor {floor}");
    }
    assert_eq!(Binning::default_for(Manifold::torus(2).unwrap()), Binning::TorusGrid { dim: 2, per_axis: 16 });
    assert_eq!(Binning::default_for(Manifold::sphere(3).unwrap()).num_bins().unwrap(), 64);
    assert!(Binning::TorusGrid { dim: 2, per_axis: 0 }.num_bins().is_err());
    assert!(Binning::TorusGrid { dim: 9, per_axis: 100 }.num_bins().is_err());
}

#[test]
fn generic_points_are_on_the_manifold() {
    for m in [t2(), s2(), Manifold::torus(20).unwrap(), Manifold::sphere(5).unwrap()] {
        let p = generic_point(m);
        assert!(m.contains_f64(&p, 1e-12), "{m}: {p:?}");
        assert!(p.iter().all(|c| c.abs() > 0.05), "{m}: {p:?}");
    }
}

#[test]
fn invalid_configurations_are_errors() {
    let f = Family::from_spec(&FamilySpec::torus_sl2z(), t2()).unwrap();
    let bad = |config: ErgodicityConfig| diagnose(&f, &config).unwrap_err().to_string();
    let e = bad(ErgodicityConfig { walkers: 0, ..Default::default() });
    assert!(e.contains("walker"), "{e}");
    let e = bad(ErgodicityConfig { start_radius: f64::NAN, ..Default::default() });
    assert!(e.contains("start radius"), "{e}");
    let e =
        bad(ErgodicityConfig { binning: Some(Binning::SphereBands { bands: 4, sectors: 4 }), ..Default::default() });
    assert!(e.contains("not a partition of T^2"), "{e}");
    let e = bad(ErgodicityConfig { start: Some(vec![0.5, 2.0]), ..Default::default() });
    assert!(e.contains("not on the T^2"), "{e}");
    let e = bad(ErgodicityConfig { threshold: f64::INFINITY, ..Default::default() });
    assert!(e.contains("threshold"), "{e}");
}
