//! Constructor validation, serde of family descriptions, presets, and the
//! finite-orbit facts of spec section 2.

use std::f64::consts::{FRAC_PI_4, SQRT_2};

use egf_diffeo::{
    DiffeoError, DiffeoSpec, Family, FamilySpec, Preset, SphereMobius, SphereRotation, TorusAffine, TorusShear,
    TorusTranslation, TorusWarp,
};
use egf_manifold::Manifold;

/// The error message of a failed constructor.
fn message<T: std::fmt::Debug>(r: Result<T, DiffeoError>) -> String {
    let e = r.unwrap_err();
    assert!(matches!(e, DiffeoError::InvalidParameter { .. }), "{e:?}");
    e.to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

#[test]
fn torus_affine_rejects_matrices_outside_sl_d_z() {
    let m = |rows: &[&[f64]]| rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    assert_mentions(
        &message(TorusAffine::new(&m(&[&[1.0, 0.5], &[0.0, 1.0]]), vec![])),
        &["torus_affine", "(0, 1) = 0.5", "not an integer", "SL_2(Z)"],
    );
    assert_mentions(&message(TorusAffine::new(&m(&[&[2.0, 0.0], &[0.0, 1.0]]), vec![])), &["det A = 2", "det 1"]);
    assert_mentions(&message(TorusAffine::new(&m(&[&[0.0, 1.0], &[1.0, 0.0]]), vec![])), &["det A = -1"]);
    assert_mentions(&message(TorusAffine::new(&m(&[&[1.0, 1.0], &[1.0, 1.0]]), vec![])), &["det A = 0"]);
    assert_mentions(&message(TorusAffine::new(&m(&[&[1.0, f64::NAN], &[0.0, 1.0]]), vec![])), &["NaN", "not finite"]);
    assert_mentions(&message(TorusAffine::new(&m(&[&[1.0, 0.0]]), vec![])), &["square"]);
    assert_mentions(&message(TorusAffine::new(&[], vec![])), &["non-empty"]);
    assert_mentions(&message(TorusAffine::new(&m(&[&[1.0, 1.0], &[0.0, 1.0]]), vec![0.1])), &["shift has 1 entries"]);
    assert_mentions(
        &message(TorusAffine::new(&m(&[&[1.0, 1.0], &[0.0, 1.0]]), vec![0.1, f64::INFINITY])),
        &["shift", "non-finite"],
    );
    assert_mentions(&message(TorusAffine::new(&m(&[&[1e12, 0.0], &[0.0, 1.0]]), vec![])), &["too large"]);
    // a valid SL_3(Z) matrix and its exact integer inverse
    let a = TorusAffine::new(&m(&[&[2.0, 1.0, 0.0], &[1.0, 1.0, 0.0], &[3.0, -2.0, 1.0]]), vec![]).unwrap();
    let product = a.matrix() * a.inverse_matrix();
    assert_eq!(product, nalgebra::DMatrix::identity(3, 3));
}

#[test]
fn sphere_rotations_reject_non_rotations() {
    let m = |rows: &[&[f64]]| rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    assert_mentions(
        &message(SphereRotation::new(&m(&[&[1.0, 0.1, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]]))),
        &["sphere_rotation", "not orthogonal", "SO(3)"],
    );
    assert_mentions(
        &message(SphereRotation::new(&m(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, -1.0]]))),
        &["det R = -1", "reflection"],
    );
    assert_mentions(
        &message(SphereRotation::new(&m(&[&[f64::NAN, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]]))),
        &["non-finite"],
    );
    assert_mentions(&message(SphereRotation::new(&m(&[&[1.0]]))), &["size ≥ 2"]);
    assert_mentions(&message(SphereRotation::about_axis([0.0, 0.0, 0.0], 1.0)), &["axis", "zero"]);
    assert_mentions(&message(SphereRotation::about_axis([0.0, 0.0, 1.0], f64::NAN)), &["NaN", "non-finite"]);
    assert_mentions(&message(SphereRotation::about_axis([f64::INFINITY, 0.0, 1.0], 1.0)), &["non-finite"]);
    assert!(SphereRotation::about_axis([1.0, 2.0, 3.0], 0.3).is_ok());
}

#[test]
fn mobius_and_warp_reject_out_of_range_parameters() {
    assert_mentions(&message(SphereMobius::new(vec![0.0, 0.0, 1.0])), &["sphere_mobius", "|w| = 1", "< 1"]);
    assert_mentions(&message(SphereMobius::new(vec![0.8, 0.8, 0.0])), &["|w| = 1.13", "< 1"]);
    assert_mentions(&message(SphereMobius::new(vec![0.0, f64::NAN, 0.0])), &["NaN", "not finite"]);
    assert_mentions(&message(SphereMobius::new(vec![0.5])), &["d ≥ 1"]);
    assert_mentions(&message(TorusWarp::new(vec![0.5, 1.0])), &["torus_warp", "|a_1| = 1", "< 1"]);
    assert_mentions(&message(TorusWarp::new(vec![-1.5])), &["|a_0| = 1.5"]);
    assert_mentions(&message(TorusWarp::new(vec![f64::NAN])), &["a_0 = NaN", "not finite"]);
    assert_mentions(&message(TorusWarp::new(vec![])), &["got none"]);
    assert!(SphereMobius::new(vec![0.0, 0.5, 0.5]).is_ok() && TorusWarp::new(vec![0.99, -0.99]).is_ok());
}

#[test]
fn shear_and_translation_reject_bad_parameters() {
    assert_mentions(&message(TorusShear::new(2, 1, 1, 0.1, 0.0)), &["torus_shear", "distinct"]);
    assert_mentions(&message(TorusShear::new(2, 0, 2, 0.1, 0.0)), &["below d = 2"]);
    assert_mentions(&message(TorusShear::new(2, 0, 1, f64::NAN, 0.0)), &["amplitude", "non-finite"]);
    assert_mentions(&message(TorusTranslation::new(vec![])), &["empty shift"]);
    assert_mentions(&message(TorusTranslation::new(vec![0.1, f64::NAN])), &["shift", "non-finite"]);
}

fn torus_spec() -> FamilySpec {
    FamilySpec {
        preset: Some(Preset::TorusSl2z),
        maps: vec![
            DiffeoSpec::TorusTranslation { shift: vec![SQRT_2 - 1.0, 0.0] },
            DiffeoSpec::TorusShear { dim: 2, target: 0, source: 1, amplitude: 0.1, phase: 0.25 },
            DiffeoSpec::TorusWarp { amplitudes: vec![0.3, -0.2] },
            DiffeoSpec::TorusAffine { matrix: vec![vec![2.0, 1.0], vec![1.0, 1.0]], shift: vec![0.5, 0.0] },
        ],
    }
}

fn sphere_spec() -> FamilySpec {
    FamilySpec {
        preset: Some(Preset::SphereAxisRotations { angle: FRAC_PI_4 }),
        maps: vec![
            DiffeoSpec::SphereMobius { center: vec![0.1, -0.2, 0.3], learnable: false },
            DiffeoSpec::SphereRotation { matrix: vec![vec![0.0, -1.0, 0.0], vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]] },
            DiffeoSpec::SphereAxisRotation { axis: [1.0, 1.0, 0.0], angle: 0.5 },
        ],
    }
}

#[test]
fn family_specs_round_trip_through_toml_and_json() {
    for spec in [
        torus_spec(),
        sphere_spec(),
        FamilySpec::torus_sl2z(),
        FamilySpec::torus_sl2z_irrational(),
        FamilySpec::sphere_axis_rotations(0.3),
    ] {
        let text = toml::to_string(&spec).unwrap();
        assert_eq!(toml::from_str::<FamilySpec>(&text).unwrap(), spec, "{text}");
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<FamilySpec>(&json).unwrap(), spec, "{json}");
    }
    // the documented config syntax
    let text = r#"
        preset = { name = "sphere_axis_rotations", angle = 0.7853981633974483 }
        [[maps]]
        kind = "sphere_mobius"
        center = [0.0, 0.0, 0.3]
    "#;
    let spec: FamilySpec = toml::from_str(text).unwrap();
    let family = Family::from_spec(&spec, Manifold::sphere(2).unwrap()).unwrap();
    assert_eq!(family.len(), 7);
    assert!(!family.is_volume_preserving());
    let spec: FamilySpec = toml::from_str(r#"preset = { name = "torus_sl2z" }"#).unwrap();
    assert_eq!(spec, FamilySpec::torus_sl2z());
}

#[test]
fn family_specs_reject_unknown_fields_and_kinds() {
    let e = toml::from_str::<FamilySpec>("[[maps]]\nkind = \"torus_twist\"\nshift = [0.1]\n").unwrap_err().to_string();
    assert!(e.contains("torus_twist") && e.contains("unknown variant"), "{e}");
    let e = toml::from_str::<FamilySpec>("[[maps]]\nkind = \"torus_translation\"\nshift = [0.1]\nscale = 2.0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field") && e.contains("scale"), "{e}");
    let e = toml::from_str::<FamilySpec>("preset = { name = \"torus_sl2z\" }\nmapz = []\n").unwrap_err().to_string();
    assert!(e.contains("unknown field") && e.contains("mapz"), "{e}");
    let e = serde_json::from_str::<FamilySpec>(r#"{"preset": {"name": "torus_sl3z"}}"#).unwrap_err().to_string();
    assert!(e.contains("unknown variant") && e.contains("torus_sl3z"), "{e}");
    let e =
        serde_json::from_str::<FamilySpec>(r#"{"preset": {"name": "sphere_axis_rotations", "angle": 1, "axis": 2}}"#)
            .unwrap_err()
            .to_string();
    assert!(e.contains("unknown field"), "{e}");
    let e = serde_json::from_str::<FamilySpec>(r#"{"maps": [{"shift": [0.1]}]}"#).unwrap_err().to_string();
    assert!(e.contains("kind"), "{e}");
}

#[test]
fn families_check_the_manifold() {
    let e = Family::from_spec(&FamilySpec::torus_sl2z(), Manifold::sphere(2).unwrap()).unwrap_err();
    assert!(matches!(e, DiffeoError::ManifoldMismatch { map: "torus_affine", .. }), "{e:?}");
    assert_eq!(e.to_string(), "torus_affine acts on T^2, not on S^2");
    let spec = FamilySpec { preset: None, maps: vec![DiffeoSpec::TorusTranslation { shift: vec![0.1, 0.2, 0.3] }] };
    let e = Family::from_spec(&spec, Manifold::torus(2).unwrap()).unwrap_err().to_string();
    assert_eq!(e, "torus_translation acts on T^3, not on T^2");
    let e = Family::from_spec(&sphere_spec(), Manifold::sphere(3).unwrap()).unwrap_err().to_string();
    assert!(e.contains("not on S^3"), "{e}");
    let e = Family::from_spec(&FamilySpec::default(), Manifold::torus(2).unwrap()).unwrap_err();
    assert!(matches!(e, DiffeoError::EmptyFamily));
    // invalid parameters inside a spec surface as the constructor's error
    let spec = FamilySpec {
        preset: None,
        maps: vec![DiffeoSpec::SphereMobius { center: vec![0.0, 0.0, 2.0], learnable: false }],
    };
    let e = Family::from_spec(&spec, Manifold::sphere(2).unwrap()).unwrap_err().to_string();
    assert!(e.contains("|w| = 2"), "{e}");
    let e = Family::from_spec(&FamilySpec::sphere_axis_rotations(f64::NAN), Manifold::sphere(2).unwrap()).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

#[test]
fn preset_sizes_and_members() {
    let t2 = Manifold::torus(2).unwrap();
    let s2 = Manifold::sphere(2).unwrap();
    for (preset, p, manifold) in [
        (Preset::TorusSl2z, 4, t2),
        (Preset::TorusSl2zIrrational, 8, t2),
        (Preset::SphereAxisRotations { angle: FRAC_PI_4 }, 6, s2),
    ] {
        assert_eq!(preset.maps().len(), p);
        assert_eq!(preset.manifold(), manifold);
        let family = Family::from_spec(&FamilySpec::preset(preset), manifold).unwrap();
        assert_eq!(family.len(), p);
        assert!(family.is_volume_preserving());
        assert!(family.get(p).is_none() && family.get(p - 1).is_some());
        // every member rebuilds from its own description (axis rotations as their matrix)
        let x = egf_diffeo::ergodicity::generic_point(manifold);
        for m in family.members() {
            let rebuilt = m.spec().build(manifold).unwrap();
            assert_eq!(rebuilt.spec(), m.spec());
            assert!(manifold.distance_f64(&rebuilt.forward_f64(&x), &m.forward_f64(&x)) < 1e-15);
        }
        assert_eq!(family.members()[0].spec(), family.spec().expanded()[0].build(manifold).unwrap().spec());
    }
    // the preset's maps come in inverse pairs
    let family = Family::from_spec(&FamilySpec::torus_sl2z_irrational(), t2).unwrap();
    let x = [0.3141, 0.2718];
    for pair in 0..4 {
        let y = family.member(2 * pair).forward_f64(&x);
        let back = family.member(2 * pair + 1).forward_f64(&y);
        assert!(t2.distance_f64(&back, &x) < 1e-14, "pair {pair}");
    }
}

#[test]
fn sl2z_maps_fix_zero_and_preserve_rationals_of_denominator_five() {
    let t2 = Manifold::torus(2).unwrap();
    let family = Family::from_spec(&FamilySpec::torus_sl2z(), t2).unwrap();
    let q = 5usize;
    let points: Vec<[f64; 2]> = (0..q * q).map(|k| [(k / q) as f64 / q as f64, (k % q) as f64 / q as f64]).collect();
    for m in family.members() {
        assert_eq!(m.forward_f64(&[0.0, 0.0]), vec![0.0, 0.0]);
        assert_eq!(m.inverse_f64(&[0.0, 0.0]), vec![0.0, 0.0]);
        let mut hit = vec![false; q * q];
        for x in &points {
            let y = m.forward_f64(x);
            // y has denominator 5: 5 y is an integer vector, mod 5
            let k: Vec<usize> = y
                .iter()
                .map(|c| {
                    let s = c * q as f64;
                    assert!((s - s.round()).abs() < 1e-12, "{x:?} -> {y:?}");
                    (s.round() as usize) % q
                })
                .collect();
            hit[k[0] * q + k[1]] = true;
        }
        // the map permutes the 25 points
        assert!(hit.iter().all(|&h| h));
    }
    // the irrational translations break the orbit
    let family = Family::from_spec(&FamilySpec::torus_sl2z_irrational(), t2).unwrap();
    let y = family.member(4).forward_f64(&[0.0, 0.0]);
    assert!((y[0] * 5.0 - (y[0] * 5.0).round()).abs() > 0.01);
}
