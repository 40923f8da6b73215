//! `egf plot`: a torus heat map or a world map of the density, with data points.

use anyhow::Result;
use egf_data::PointSet;
use egf_flow::EgfModel;
use egf_manifold::Manifold;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::density::is_log;
use super::{check_out_dir, out_kind, OutKind};
use crate::args::PlotArgs;
use crate::figures::{density_figure, ColorScale};
use crate::model_io;
use crate::numfmt::sig;
use crate::outln;
use crate::points::load_data;

/// At most `max` points of `points`, a seeded subset when there are more.
pub fn thin(points: PointSet, max: usize) -> Result<PointSet> {
    if points.len() <= max {
        return Ok(points);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut idx = sample(&mut rng, points.len(), max).into_vec();
    idx.sort_unstable();
    Ok(points.subset(&idx)?)
}

pub fn run(args: PlotArgs) -> Result<()> {
    out_kind(&args.out, &[OutKind::Png], "--out")?;
    check_out_dir(&args.out)?;
    let (location, model) = model_io::load_flow(&args.model, "plot")?;
    let manifold = model.manifold();
    model_io::picture_grid(manifold, 1)?;
    let data = load_data(&args.data, manifold)?;
    let (_, _, density) = model_io::density_grid(&model, &location, &args.grid)?;
    let scale = ColorScale::covering(&density.values, is_log(args.grid.scale, manifold));
    let what = match manifold {
        Manifold::Sphere { .. } => "WORLD MAP OF THE DENSITY",
        _ => "DENSITY ON T^2",
    };
    let (points, title) = match data {
        Some(d) => {
            let n = d.points.len();
            let shown = thin(d.points, args.max_points)?;
            let title = if shown.len() < n {
                format!("{what} ({} OF {n} POINTS)", shown.len())
            } else {
                format!("{what} ({n} POINTS)")
            };
            (Some((shown, d.description)), title)
        }
        None => (None, what.to_string()),
    };
    density_figure(&density, &scale, &title, points.as_ref().map(|(p, _)| p)).save_png(&args.out)?;
    outln!("wrote {} (the density of {} on {manifold})", args.out.display(), location.model_dir.display());
    if let Some((p, source)) = &points {
        outln!("  {} data points from {source}", p.len());
    }
    outln!(
        "  colour scale: {} from {} to {}",
        if scale.log { "log" } else { "linear" },
        sig(scale.lo, 4),
        sig(scale.hi, 4)
    );
    Ok(())
}
