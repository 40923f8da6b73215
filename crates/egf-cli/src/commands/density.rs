//! `egf density`: the reported density on a grid, as CSV or PNG.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use egf_flow::EgfModel;
use egf_manifold::coords::unit_to_latlon_deg;
use egf_manifold::{Manifold, QuadratureGrid};
use egf_train::DensityGrid;

use super::{check_out_dir, out_kind, OutKind};
use crate::args::{DensityArgs, Scale};
use crate::figures::{density_figure, ColorScale};
use crate::model_io;
use crate::outln;

/// Whether `scale` is logarithmic on `manifold`.
pub fn is_log(scale: Scale, manifold: Manifold) -> bool {
    match scale {
        Scale::Auto => !manifold.is_torus(),
        Scale::Linear => false,
        Scale::Log => true,
    }
}

/// Writes the grid as CSV: `x1,x2,density` on the torus, `lat,lon,density` on the sphere.
pub fn write_grid_csv(path: &Path, grid: &QuadratureGrid, density: &DensityGrid) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
    match density.manifold {
        Manifold::Sphere { .. } => writeln!(out, "lat,lon,density").map_err(io)?,
        _ => writeln!(out, "x1,x2,density").map_err(io)?,
    }
    for (k, v) in density.values.iter().enumerate() {
        let p = grid.point(k);
        match density.manifold {
            Manifold::Sphere { .. } => {
                let (lat, lon) = unit_to_latlon_deg(p)?;
                writeln!(out, "{lat:.6},{lon:.6},{v:e}").map_err(io)?;
            }
            _ => writeln!(out, "{},{},{v:e}", p[0], p[1]).map_err(io)?,
        }
    }
    out.flush().map_err(io)
}

pub fn run(args: DensityArgs) -> Result<()> {
    let kind = out_kind(&args.out, &[OutKind::Csv, OutKind::Png], "--out")?;
    check_out_dir(&args.out)?;
    let (location, model) = model_io::load_flow(&args.model, "density")?;
    let manifold = model.manifold();
    model_io::picture_grid(manifold, 1)?; // fails early on manifolds without pictures
    let (mass, grid, density) = model_io::density_grid(&model, &location, &args.grid)?;
    match kind {
        OutKind::Csv => write_grid_csv(&args.out, &grid, &density)?,
        OutKind::Png => {
            let scale = ColorScale::covering(&density.values, is_log(args.grid.scale, manifold));
            let title = format!("REPORTED DENSITY ON {manifold}");
            density_figure(&density, &scale, &title, None).save_png(&args.out)?;
        }
    }
    let integral: f64 = grid.weights().iter().zip(&density.values).map(|(w, v)| w * v).sum();
    outln!(
        "wrote the reported density of {} on a {}×{} grid of {manifold} to {}",
        location.model_dir.display(),
        density.rows,
        density.cols,
        args.out.display()
    );
    outln!(
        "  w = {}, ∫t⁺ = {:.6}, δ = {:.3e}; grid sum Σ w_k p(x_k) = {integral:.5}",
        args.grid.defensive_weight,
        mass.integral_t_plus,
        mass.negative_mass
    );
    Ok(())
}
