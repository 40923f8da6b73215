//! `egf eval`: the evaluation protocol of spec section 7 on a set of points.

use anyhow::{bail, Context, Result};
use egf_data::{PointSet, SplitFractions};
use egf_flow::EgfModel;
use egf_train::{EvalReport, EvalSettings, TaskConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{check_out_dir, print_table};
use crate::args::{EvalArgs, SplitPart};
use crate::model_io;
use crate::numfmt::sig;
use crate::outln;
use crate::points::load_data;

/// The rows of the evaluation table.
pub fn report_rows(r: &EvalReport) -> Vec<(String, String)> {
    let mut rows = vec![
        ("points".into(), r.points.to_string()),
        (format!("NLL, proper density (w = {})", r.defensive_weight), format!("{} nats", sig(r.nll, 6))),
    ];
    if let Some(imp) = &r.importance {
        let mut v = format!("{} nats", sig(imp.nll, 6));
        if imp.nonfinite_points > 0 {
            v.push_str(&format!(" ({} point(s) with no finite estimate left out)", imp.nonfinite_points));
        }
        rows.push((format!("NLL, importance sampling (K = {})", imp.samples_per_point), v));
    }
    if let Some(t) = r.target_nll {
        rows.push(("NLL of the true density".into(), format!("{} nats", sig(t, 6))));
    }
    rows.push(("δ = ∫ t⁻ dλ (negative mass)".into(), sig(r.negative_mass, 4)));
    rows.push(("fraction of points with t ≤ 0".into(), format!("{}%", sig(100.0 * r.fraction_nonpositive, 3))));
    rows.push(("∫ t dλ (= Z_init)".into(), sig(r.integral_t, 7)));
    rows.push(("∫ t⁺ dλ".into(), sig(r.integral_t_plus, 7)));
    rows.push(("∫ g dλ".into(), sig(r.integral_g, 5)));
    rows.push(("Z_init".into(), sig(r.z_init, 6)));
    if let Some(s) = &r.sampler {
        rows.push((
            format!("forward chains ({})", s.chains),
            format!(
                "mean moves {}, max {}, truncated {} ({}%)",
                sig(s.mean_moves, 4),
                s.max_moves,
                s.truncated,
                sig(100.0 * s.truncation_rate, 3)
            ),
        ));
    }
    if let Some(imp) = &r.importance {
        rows.push((
            "backward trajectories".into(),
            format!(
                "mean moves {}, truncated {} ({}%)",
                sig(imp.mean_moves, 4),
                imp.truncated,
                sig(100.0 * imp.truncation_rate, 3)
            ),
        ));
    }
    rows.push(("quadrature points".into(), r.quadrature_points.to_string()));
    if let Some(q) = &r.quadrature_check {
        rows.push((
            format!("quadrature check ({} points)", q.points),
            format!(
                "∫ t dλ {}, ∫ t⁺ dλ {}, NLL {} nats: the reported NLL differs by {} nats",
                sig(q.integral_t, 7),
                sig(q.integral_t_plus, 7),
                sig(q.nll, 6),
                sig(q.nll_change, 3)
            ),
        ));
    }
    rows.push(("parameters".into(), r.parameters.to_string()));
    rows
}

pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(p) = &args.json {
        check_out_dir(p)?;
    }
    let (location, model) = model_io::load_flow(&args.model, "eval")?;
    let manifold = model.manifold();
    let Some(data) = load_data(&args.data, manifold)? else {
        bail!("no points to evaluate: pass --data FILE or --dataset NAME");
    };
    let run_config = location.run_config();
    let mut settings = run_config.as_ref().map(|c| c.eval.clone()).unwrap_or_else(EvalSettings::default);
    if let Some(k) = args.importance_samples {
        settings.importance_samples = k;
    }
    if let Some(n) = args.sampler_chains {
        settings.sampler_chains = n;
    }
    if let Some(m) = args.max_moves {
        settings.importance_max_moves = m;
        settings.sampler_max_moves = m;
    }
    if let Some(w) = args.defensive_weight {
        settings.defensive_weight = w;
    }
    if let Some(q) = args.quadrature {
        settings.quadrature_resolution = q;
    }

    // the split: fractions and seed of the run when the checkpoint belongs to one
    let (fractions, run_seed) = match &run_config {
        Some(c) => match &c.task {
            TaskConfig::Imitation(im) => (
                SplitFractions { train: im.split.train, validation: im.split.validation, test: im.split.test },
                Some(im.split.seed.unwrap_or(c.seed)),
            ),
            TaskConfig::Reward(_) => (SplitFractions::default(), Some(c.seed)),
        },
        None => (SplitFractions::default(), None),
    };
    let total = data.points.len();
    let (points, part): (PointSet, String) = match args.split {
        SplitPart::All => (data.points, "all points".into()),
        part => {
            let seed = args.split_seed.or(run_seed).unwrap_or(0);
            let split = egf_data::split(total, fractions, seed)?;
            let parts = split.apply(&data.points)?;
            let (set, name) = match part {
                SplitPart::Train => (parts.train, "train"),
                SplitPart::Validation => (parts.validation, "validation"),
                _ => (parts.test, "test"),
            };
            if set.is_empty() {
                bail!("the {name} part of the split of {total} points is empty");
            }
            let f = [fractions.train, fractions.validation, fractions.test].map(|v| sig(100.0 * v, 3));
            (set, format!("{name} part of the {}/{}/{} split, seed {seed}", f[0], f[1], f[2]))
        }
    };
    let x = points.to_tensor(model.dtype(), model.device())?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let report = egf_train::evaluate(&model, &x, &settings, &mut rng)
        .with_context(|| format!("evaluating {} failed", location.model_dir.display()))?;
    outln!(
        "evaluation of {} on {} ({part}, {} of {total} points)",
        location.model_dir.display(),
        data.description,
        points.len()
    );
    print_table(&report_rows(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).with_context(|| format!("cannot write {}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
