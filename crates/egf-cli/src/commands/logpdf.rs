//! `egf logpdf`: log-density of the reported density at points of a file.

use std::io::Write;

use anyhow::{bail, Context, Result};
use egf_flow::EgfModel;

use super::check_out_dir;
use crate::args::LogpdfArgs;
use crate::model_io;
use crate::outln;
use crate::points::{data_rows, format_for, read_points};

pub fn run(args: LogpdfArgs) -> Result<()> {
    check_out_dir(&args.out)?;
    let (location, model) = model_io::load_flow(&args.model, "logpdf")?;
    let manifold = model.manifold();
    let format = format_for(manifold, args.format, "--format")?;
    let points = read_points(&args.points, manifold, format)?;
    let rows = data_rows(&args.points)?;
    if rows.len() != points.len() {
        bail!(
            "internal: {} holds {} points but {} data rows were echoed",
            args.points.display(),
            points.len(),
            rows.len()
        );
    }
    let mass = model_io::mass(&model, &location, args.quadrature, args.chunk)?;
    let x = points.to_tensor(model.dtype(), model.device())?;
    let (log_p, nonpositive) = model_io::log_density_and_sign(&model, &x, &mass, args.defensive_weight, args.chunk)?;

    let io = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", args.out.display());
    let file = std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut header = format.header(manifold);
    header.push("log_density".into());
    header.push("t_nonpositive".into());
    writeln!(out, "{}", header.join(",")).map_err(io)?;
    for ((fields, lp), np) in rows.iter().zip(&log_p).zip(&nonpositive) {
        writeln!(out, "{},{lp},{}", fields.join(","), u8::from(*np)).map_err(io)?;
    }
    out.flush().map_err(io)?;

    let n = points.len();
    let mean = log_p.iter().sum::<f64>() / n as f64;
    let bad = nonpositive.iter().filter(|b| **b).count();
    outln!("wrote log-densities of {n} points to {}", args.out.display());
    outln!(
        "  mean log-density {mean:.5} nats (NLL {:.5}); {bad} point(s) with t ≤ 0 (scored by the uniform part w = {})",
        -mean,
        args.defensive_weight
    );
    outln!(
        "  ∫t⁺ = {:.6}, δ = {:.3e} (quadrature, {} points)",
        mass.integral_t_plus,
        mass.negative_mass,
        mass.grid_points
    );
    Ok(())
}
