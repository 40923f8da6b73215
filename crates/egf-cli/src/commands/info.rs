//! `egf info`: what a checkpoint holds.

use anyhow::Result;
use egf_diffeo::{DiffeoSpec, Family, FamilySpec};
use egf_flow::features::{FeatureConfig, FeatureMap, FrequencySet};
use egf_flow::network::NetworkConfig;
use egf_flow::{EgfModel, ModelKind, SavedModel};
use egf_manifold::Manifold;
use serde_json::json;

use super::print_table;
use crate::args::InfoArgs;
use crate::model_io::{self, Loaded};
use crate::numfmt::sig;
use crate::outln;

/// `preset torus_sl2z_irrational + 2 maps (p = 10: 4 torus_affine, 6 torus_translation)`.
fn family_summary(spec: &FamilySpec) -> String {
    let maps = spec.expanded();
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for m in &maps {
        match counts.iter_mut().find(|(k, _)| *k == m.kind_name()) {
            Some((_, c)) => *c += 1,
            None => counts.push((m.kind_name(), 1)),
        }
    }
    let kinds: Vec<String> = counts.iter().map(|(k, c)| format!("{c} {k}")).collect();
    let preset = spec.preset.as_ref().map(|p| {
        let v = serde_json::to_value(p).unwrap_or_default();
        let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("?").to_string();
        match p {
            egf_diffeo::Preset::SphereAxisRotations { angle } => format!("preset {name} (angle {})", sig(*angle, 6)),
            _ => format!("preset {name}"),
        }
    });
    let head = match (preset, spec.maps.len()) {
        (Some(p), 0) => p,
        (Some(p), k) => format!("{p} + {k} map(s)"),
        (None, k) => format!("{k} map(s)"),
    };
    format!("{head} (p = {}: {})", maps.len(), kinds.join(", "))
}

fn features_summary(manifold: Manifold, features: &FeatureConfig) -> String {
    let dim = FeatureMap::new(manifold, features).map(|f| f.dim()).unwrap_or(0);
    match manifold {
        Manifold::Torus { .. } => {
            let set = match features.frequencies {
                FrequencySet::Axes => "axes",
                FrequencySet::Full => "full",
            };
            format!("Fourier, max frequency {} ({set}), {dim} inputs", features.max_frequency)
        }
        Manifold::Sphere { .. } if features.sphere_octaves == 0 => format!("unit vector, {dim} inputs"),
        Manifold::Sphere { .. } => {
            format!("unit vector + {} positional-encoding octaves, {dim} inputs", features.sphere_octaves)
        }
    }
}

fn network_summary(net: &NetworkConfig, outputs: usize, what: &str) -> String {
    let act = serde_json::to_value(net.activation).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    format!("MLP {} hidden layer(s) × {} units, {act}; {outputs} outputs ({what})", net.depth, net.width)
}

fn uses_nonisometric(maps: &[DiffeoSpec]) -> bool {
    maps.iter().any(|m| matches!(m, DiffeoSpec::TorusWarp { .. } | DiffeoSpec::SphereMobius { .. }))
}

pub fn run(args: InfoArgs) -> Result<()> {
    let Loaded { location, description, model } = model_io::load(&args.model)?;
    let mut rows: Vec<(String, String)> = vec![
        ("model directory".into(), location.model_dir.display().to_string()),
        ("written by egf-flow".into(), description.crate_version.clone()),
        ("this egf".into(), env!("CARGO_PKG_VERSION").to_string()),
        ("dtype".into(), description.dtype.clone()),
    ];
    let mut out = json!({
        "model_dir": location.model_dir,
        "crate_version": description.crate_version,
        "cli_version": env!("CARGO_PKG_VERSION"),
        "dtype": description.dtype,
    });
    let family_spec = match &description.model {
        ModelKind::Flow(c) => &c.family,
        ModelKind::Policy(c) => &c.family,
    };
    let manifold = match &model {
        SavedModel::Flow(m) => m.manifold(),
        SavedModel::Policy(m) => m.manifold(),
    };
    rows.push(("manifold".into(), manifold.to_string()));
    rows.push(("family".into(), family_summary(family_spec)));
    let volume_preserving = !uses_nonisometric(&family_spec.expanded());
    rows.push(("volume preserving".into(), volume_preserving.to_string()));
    out["manifold"] = json!(manifold.to_string());
    out["family"] = serde_json::to_value(family_spec)?;
    let p = family_spec.expanded().len();
    match (&description.model, &model) {
        (ModelKind::Flow(c), SavedModel::Flow(m)) => {
            rows.push(("parameterization".into(), "flow (g, α)".into()));
            rows.push(("features".into(), features_summary(manifold, &c.features)));
            rows.push(("network".into(), network_summary(&c.network, 1 + p, "log-outflow u and p policy logits")));
            let link = serde_json::to_value(c.outflow_link)?.as_str().unwrap_or_default().to_string();
            rows.push(("outflow link".into(), link));
            rows.push(("parameters".into(), m.parameter_count().to_string()));
            rows.push(("learned log Z_init".into(), c.learn_log_z.to_string()));
            let learned: Vec<(usize, DiffeoSpec)> = m
                .family()
                .members()
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.parameters().is_empty())
                .map(|(i, d)| (i, d.spec()))
                .collect();
            if !learned.is_empty() {
                let text: Vec<String> = learned
                    .iter()
                    .map(|(i, d)| format!("map {i}: {}", serde_json::to_string(d).unwrap_or_default()))
                    .collect();
                rows.push(("learned maps (now)".into(), text.join("; ")));
                out["learned_maps"] =
                    json!(learned.iter().map(|(i, d)| json!({"index": i, "map": d})).collect::<Vec<_>>());
            }
            out["parameterization"] = json!("flow");
            out["config"] = serde_json::to_value(c)?;
            out["parameters"] = json!(m.parameter_count());
            match model_io::mass(m, &location, args.quadrature, 8192) {
                Ok(mass) => {
                    rows.push(("Z_init".into(), sig(mass.z_init, 6)));
                    rows.push(("∫ t dλ".into(), sig(mass.integral_t, 6)));
                    rows.push(("∫ t⁺ dλ".into(), sig(mass.integral_t_plus, 6)));
                    rows.push(("δ = ∫ t⁻ dλ".into(), sig(mass.negative_mass, 4)));
                    rows.push(("∫ g dλ".into(), sig(mass.integral_g, 5)));
                    rows.push((
                        "expected moves ∫g/Z_init".into(),
                        format!("{} (exact when t ≥ 0)", sig(mass.integral_g / mass.z_init, 4)),
                    ));
                    rows.push(("quadrature points".into(), mass.grid_points.to_string()));
                    out["mass"] = serde_json::to_value(mass)?;
                }
                Err(e) => rows.push(("∫ t, δ, ∫ g".into(), format!("not computed: {e:#}"))),
            }
        }
        (ModelKind::Policy(c), SavedModel::Policy(m)) => {
            rows.push(("parameterization".into(), "policy (π_F, π_B, log Z)".into()));
            rows.push(("features".into(), features_summary(manifold, &c.features)));
            rows.push(("network".into(), network_summary(&c.network, 2 * (1 + p), "forward and backward logits")));
            rows.push(("parameters".into(), m.parameter_count().to_string()));
            let log_z = model_io::host(&m.log_z()?)?.first().copied().unwrap_or(f64::NAN);
            rows.push(("log Z".into(), sig(log_z, 6)));
            out["parameterization"] = json!("policy");
            out["config"] = serde_json::to_value(c)?;
            out["parameters"] = json!(m.parameter_count());
        }
        _ => unreachable!("the description and the loaded model have the same parameterization"),
    }
    if let Some(state) = location.checkpoint_state() {
        rows.push(("checkpoint step".into(), state.step.to_string()));
        if let (Some(v), Some(s)) = (state.best_validation, state.best_step) {
            rows.push(("best validation".into(), format!("{} at step {s}", sig(v, 6))));
        }
        out["checkpoint"] = serde_json::to_value(&state)?;
    }
    if let Some(run) = &location.run_dir {
        rows.push(("run directory".into(), run.display().to_string()));
    }
    if args.ergodicity {
        // the maps as they are now (learnable maps at their learned parameters)
        let family = match &model {
            SavedModel::Flow(m) => {
                let maps = m.family().members().iter().map(|d| d.spec()).collect();
                Family::from_spec(&FamilySpec { preset: None, maps }, manifold)?
            }
            SavedModel::Policy(_) => Family::from_spec(family_spec, manifold)?,
        };
        let warning = family.ergodicity_warning();
        let text = warning.clone().unwrap_or_else(|| "no finite orbits found; the walk mixes".into());
        rows.push(("ergodicity".into(), text));
        out["ergodicity_warning"] = json!(warning);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&rows);
    }
    Ok(())
}
