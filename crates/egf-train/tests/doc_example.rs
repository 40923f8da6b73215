//! The config examples of the crate documentation parse and validate.

#[test]
fn crate_doc_examples_parse() {
    let docs = include_str!("../src/lib.rs");
    let blocks: Vec<String> = docs
        .split("//! ```toml\n")
        .skip(1)
        .map(|b| {
            b.split("//! ```\n")
                .next()
                .unwrap()
                .lines()
                .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    let mut c = egf_train::TrainConfig::from_toml_str(&blocks[0]).unwrap();
    assert!(c.validate().unwrap().is_empty());
    // the reward block replaces the [task] table
    let mut text = blocks[0].split("[task]").next().unwrap().to_string();
    text.push_str(&blocks[1]);
    text.push_str("\n[optimizer]\nlog_z_lr = 3e-2\n");
    let mut r = egf_train::TrainConfig::from_toml_str(&text.replace(
        "manifold = { kind = \"sphere\", dim = 2 }\nfamily = { preset = { name = \"sphere_axis_rotations\", angle = 0.7853981633974483 } }",
        "manifold = { kind = \"torus\", dim = 2 }\nfamily = { preset = { name = \"torus_sl2z_irrational\" } }\nlearn_log_z = true",
    ))
    .unwrap();
    r.validate().unwrap();
    c.apply_override("steps=10").unwrap();
    r.apply_override("steps=10").unwrap();
}
