//! The four earth event data sets on the sphere `S^2` (spec section 7).
//!
//! Each is a file `<dir>/<name>.csv` of latitude/longitude pairs in degrees, read with
//! [`load_points_csv`] in [`PointFormat::LatLonDeg`]: 1 to 3 `#` comment lines, an
//! optional header (`Latitude,Longitude`, `LATITUDE,LONGITUDE`, `lat,long` or none), `\n`
//! or `\r\n` line ends, the last line possibly without a newline. Points become unit
//! vectors `x = (cos φ cos θ, cos φ sin θ, sin φ)`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::{load_points_csv, DataError, PointFormat, PointSet, Result};

/// Name of the environment variable that [`default_data_dir`] reads.
pub const DATA_DIR_ENV: &str = "EGF_DATA_DIR";

/// One of the four earth event catalogues (points on `S^2`).
///
/// | data set | file | events |
/// |---|---|---|
/// | `Volcano` | `volcano.csv` | 827 |
/// | `Earthquake` | `earthquake.csv` | 6120 |
/// | `Flood` | `flood.csv` | 4875 |
/// | `Fire` | `fire.csv` | 12809 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarthDataset {
    /// NOAA NGDC significant volcanic eruptions.
    Volcano,
    /// NOAA NGDC significant earthquakes.
    Earthquake,
    /// Dartmouth Flood Observatory archive.
    Flood,
    /// NASA FIRMS active fires.
    Fire,
}

impl EarthDataset {
    /// All four data sets, in the order of the benchmark tables.
    pub const ALL: [EarthDataset; 4] =
        [EarthDataset::Volcano, EarthDataset::Earthquake, EarthDataset::Flood, EarthDataset::Fire];

    /// The lower-case name: `volcano`, `earthquake`, `flood`, `fire`.
    pub fn name(self) -> &'static str {
        match self {
            EarthDataset::Volcano => "volcano",
            EarthDataset::Earthquake => "earthquake",
            EarthDataset::Flood => "flood",
            EarthDataset::Fire => "fire",
        }
    }

    /// The file name inside the data directory, `<name>.csv`.
    pub fn file_name(self) -> String {
        format!("{}.csv", self.name())
    }

    /// The published number of events, which [`load_earth`] checks.
    pub fn expected_len(self) -> usize {
        match self {
            EarthDataset::Volcano => 827,
            EarthDataset::Earthquake => 6120,
            EarthDataset::Flood => 4875,
            EarthDataset::Fire => 12809,
        }
    }
}

impl fmt::Display for EarthDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EarthDataset {
    type Err = DataError;

    /// Parses a [`name`](EarthDataset::name), ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| DataError::UnknownName {
            what: "earth data set",
            name: s.into(),
            expected: Self::ALL.map(|d| d.name()).join(", "),
        })
    }
}

/// Loads `<data_dir>/<name>.csv` as points of `S^2` (unit vectors, in file order).
///
/// Errors: the file is missing or malformed (with path and line), or its number of rows
/// differs from [`EarthDataset::expected_len`] ([`DataError::UnexpectedRowCount`]).
pub fn load_earth(data_dir: &Path, dataset: EarthDataset) -> Result<PointSet> {
    let path = data_dir.join(dataset.file_name());
    let points = load_points_csv(&path, Manifold::Sphere { dim: 2 }, PointFormat::LatLonDeg)?;
    if points.len() != dataset.expected_len() {
        return Err(DataError::UnexpectedRowCount {
            path,
            dataset: dataset.name(),
            expected: dataset.expected_len(),
            found: points.len(),
        });
    }
    Ok(points)
}

/// The earth data directory named by the environment variable `EGF_DATA_DIR`
/// ([`DATA_DIR_ENV`]); [`DataError::DataDirNotSet`] (telling the user to pass `--data-dir`
/// or set the variable) when it is unset or empty.
pub fn default_data_dir() -> Result<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(DataError::DataDirNotSet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in EarthDataset::ALL {
            assert_eq!(d.to_string().parse::<EarthDataset>().unwrap(), d);
        }
        assert_eq!("FIRE".parse::<EarthDataset>().unwrap(), EarthDataset::Fire);
        let err = "volcanoes".parse::<EarthDataset>().unwrap_err().to_string();
        assert!(err.contains("volcanoes") && err.contains("earthquake"), "{err}");
        assert!(DataError::DataDirNotSet.to_string().contains("--data-dir"));
        assert!(DataError::DataDirNotSet.to_string().contains(DATA_DIR_ENV));
    }
}
