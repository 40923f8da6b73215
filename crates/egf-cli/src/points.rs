//! Points from files and earth data sets, in the CSV conventions shared by all commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use egf_data::{load_earth, load_points_csv, EarthDataset, PointFormat, PointSet};
use egf_manifold::Manifold;

use crate::args::DataArgs;
use crate::usage::usage;

/// The format to read or write points of `manifold` in: `given`, checked, or the default.
/// A format that does not apply is a usage error naming the flag.
pub fn format_for(manifold: Manifold, given: Option<PointFormat>, flag: &str) -> Result<PointFormat> {
    match given {
        None => Ok(PointFormat::default_for(manifold)),
        Some(f) => {
            f.check_applies(manifold).map_err(|e| usage(format!("{flag} {}: {e}", f.name())))?;
            Ok(f)
        }
    }
}

/// Reads a points file of `manifold` (errors name the file, line and column).
pub fn read_points(path: &Path, manifold: Manifold, format: PointFormat) -> Result<PointSet> {
    Ok(load_points_csv(path, manifold, format)?)
}

/// The earth data directory: `--data-dir`, else `EGF_DATA_DIR`.
pub fn data_dir(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => Ok(egf_data::default_data_dir()?),
    }
}

/// Where a set of points came from, in words.
pub struct Sourced {
    pub points: PointSet,
    pub description: String,
}

/// Loads the points of `--data FILE [--format F]` or `--dataset NAME [--data-dir DIR]`;
/// `None` when neither is given.
pub fn load_data(args: &DataArgs, manifold: Manifold) -> Result<Option<Sourced>> {
    if let Some(path) = &args.data {
        let format = format_for(manifold, args.format, "--format")?;
        let points = read_points(path, manifold, format)?;
        return Ok(Some(Sourced { description: path.display().to_string(), points }));
    }
    if let Some(dataset) = args.dataset {
        return load_dataset(dataset, args.data_dir.as_ref(), manifold).map(Some);
    }
    Ok(None)
}

fn load_dataset(dataset: EarthDataset, dir: Option<&PathBuf>, manifold: Manifold) -> Result<Sourced> {
    if manifold != (Manifold::Sphere { dim: 2 }) {
        return Err(usage(format!(
            "--dataset {dataset}: the earth data sets are points of S^2, but the model lives on {manifold}"
        )));
    }
    let dir = data_dir(dir)?;
    let points = load_earth(&dir, dataset)
        .with_context(|| format!("cannot load the {dataset} data set from {}", dir.display()))?;
    Ok(Sourced { description: format!("{dataset} ({})", dir.join(dataset.file_name()).display()), points })
}

/// The data rows of a points file that [`load_points_csv`] accepted, as their trimmed,
/// unquoted fields, in order (comments, blank lines and the header skipped by the same
/// rules), so that outputs can repeat the input coordinates exactly as written.
pub fn data_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let text = std::str::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let mut rows = Vec::new();
    let mut seen_content = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line.split(',').map(|f| unquote(f).to_string()).collect();
        let first = !seen_content;
        seen_content = true;
        if first && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            continue; // header
        }
        rows.push(fields);
    }
    Ok(rows)
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"').and_then(|g| g.strip_suffix('"')).map(str::trim).unwrap_or(f)
}

/// A [`PointSet`] from an `(n, ambient_dim)` tensor of model output (`f32` on any device):
/// points are projected exactly onto the manifold in `f64` first (an `f32` unit vector
/// is off the sphere by about 1e-7, beyond [`PointSet`]'s tolerance).
pub fn point_set_from_tensor(manifold: Manifold, x: &candle_core::Tensor) -> Result<PointSet> {
    let (mut coords, _, c) = egf_manifold::tensor_util::tensor_to_f64_rows(x)?;
    if c != manifold.ambient_dim() {
        bail!("internal: samples have {c} columns, expected {}", manifold.ambient_dim());
    }
    for p in coords.chunks_exact_mut(c) {
        manifold.project_f64(p);
    }
    Ok(PointSet::new(manifold, coords)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_skip_comments_and_header() {
        let dir = std::env::temp_dir().join(format!("egf-cli-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.csv");
        std::fs::write(&path, "# comment\n\"lat\",lon\r\n10, 20\n\n-5,\"7.5\"").unwrap();
        let rows = data_rows(&path).unwrap();
        assert_eq!(rows, vec![vec!["10", "20"], vec!["-5", "7.5"]]);
        let set = read_points(&path, Manifold::Sphere { dim: 2 }, PointFormat::LatLonDeg).unwrap();
        assert_eq!(set.len(), rows.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn formats_are_checked_against_the_manifold() {
        let t2 = Manifold::Torus { dim: 2 };
        assert_eq!(format_for(t2, None, "--format").unwrap(), PointFormat::TorusCoords);
        let err = format_for(t2, Some(PointFormat::LatLonDeg), "--format").unwrap_err();
        assert!(err.downcast_ref::<crate::usage::UsageError>().is_some());
        assert!(err.to_string().contains("--format lat_lon_deg"), "{err}");
    }
}
