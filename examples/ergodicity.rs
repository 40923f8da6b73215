//! Ergodicity diagnostic of the diffeomorphism families (spec section 2).
//!
//! For each family, 40 000 walkers start in a ball of radius 0.01 around a
//! generic point and follow the uniform random walk `s ← Φ_i(s)`; the table
//! shows the total-variation distance between their histogram (16 × 16 cells
//! on T^2, 8 × 16 equal-area cells on S^2) and the uniform law after each
//! step, then a verdict and the finite-orbit check.
//!
//! Run with `cargo run --release --example ergodicity`.

use std::f64::consts::FRAC_PI_4;
use std::time::Instant;

use egf_diffeo::ergodicity::{diagnose, finite_orbit_warning, ErgodicityConfig, ErgodicityReport};
use egf_diffeo::{DiffeoSpec, Family, FamilySpec};
use egf_manifold::Manifold;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t2 = Manifold::torus(2)?;
    let s2 = Manifold::sphere(2)?;
    let z_rotations = FamilySpec {
        preset: None,
        maps: [FRAC_PI_4, -FRAC_PI_4]
            .iter()
            .map(|&angle| DiffeoSpec::SphereAxisRotation { axis: [0.0, 0.0, 1.0], angle })
            .collect(),
    };
    let rational_translations = FamilySpec {
        preset: None,
        maps: [[0.5, 0.0], [0.0, 0.5], [0.25, 0.0], [-0.25, 0.0], [0.0, 0.25], [0.0, -0.25]]
            .iter()
            .map(|s| DiffeoSpec::TorusTranslation { shift: s.to_vec() })
            .collect(),
    };
    let families = [
        ("torus_sl2z", FamilySpec::torus_sl2z(), t2),
        ("torus_sl2z_irrational", FamilySpec::torus_sl2z_irrational(), t2),
        ("sphere_axis_rotations(π/4)", FamilySpec::sphere_axis_rotations(FRAC_PI_4), s2),
        ("degenerate: rotations about z by ±π/4", z_rotations, s2),
        ("degenerate: translations by ±1/2, ±1/4 along the axes", rational_translations, t2),
    ];
    let config = ErgodicityConfig::default();
    let mut reports: Vec<(&str, ErgodicityReport, Option<String>)> = Vec::new();
    for (name, spec, manifold) in families {
        let family = Family::from_spec(&spec, manifold)?;
        let start = Instant::now();
        let report = diagnose(&family, &config)?;
        let elapsed = start.elapsed();
        println!("== {name} ({:.2} s)", elapsed.as_secs_f64());
        reports.push((name, report, finite_orbit_warning(&family)));
    }

    // TV table, one column per family
    println!();
    print!(" step");
    for (i, _) in reports.iter().enumerate() {
        print!("  {:>7}", format!("F{}", i + 1));
    }
    println!();
    let steps = reports[0].1.tv_by_step.len();
    for n in 0..steps {
        if n <= 40 || n % 10 == 0 {
            print!("{n:5}");
            for (_, r, _) in &reports {
                print!("  {:7.4}", r.tv_by_step[n]);
            }
            println!();
        }
    }
    println!();
    for (i, (name, r, orbit)) in reports.iter().enumerate() {
        println!("F{}: {name}", i + 1);
        println!("    {}", r.summary());
        if let Some(w) = orbit {
            println!("    warning: {w}");
        }
    }
    Ok(())
}
