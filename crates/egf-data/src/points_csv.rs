//! Reading and writing points as comma-separated text, in one of the [`PointFormat`]s.
//!
//! The text is split into rows and fields by the [`csv`] crate (RFC 4180 quoting); this
//! module gives the rows their meaning and checks them.
//!
//! # File layout (read)
//!
//! * Lines end with `\n` or `\r\n`; the last line may lack its line end. A UTF-8
//!   byte-order mark at the start is ignored.
//! * Blank lines and lines that start with `#` are skipped.
//! * Fields are separated by `,` and may be enclosed in double quotes; spaces around a
//!   field (inside or outside the quotes) are ignored.
//! * Header: the first row is a header when one of its fields does not parse as a number
//!   (e.g. `Latitude,Longitude`, `lat,long`); it must have as many fields as a data row.
//!   Any later non-numeric field is an error.
//! * Every data row has exactly [`PointFormat::columns`] finite values in range.
//!
//! Every error names the file and the 1-based line number (comment and blank lines
//! count), and the 1-based column when one field is at fault.
//!
//! # File layout (write)
//!
//! A header line ([`PointFormat::header`]) and one row per point, each value printed with
//! the shortest decimal representation that reads back to the same `f64`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use egf_manifold::coords::{latlon_deg_to_unit, radians_to_torus, unit_to_latlon_deg, wrap_unit};
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::{DataError, PointSet, Result};

/// Largest accepted deviation `||x| − 1|` of a [`PointFormat::UnitVector`] row; rows within
/// it are normalized to `x / |x|`, rows beyond it are rejected.
pub const UNIT_NORM_TOLERANCE: f64 = 1e-6;

/// How the coordinates of a point are written in a file.
///
/// | format | manifold | columns | values |
/// |---|---|---|---|
/// | `LatLonDeg` | `S^2` | `lat, lon` | latitude `φ ∈ [−90, 90]`, longitude `θ ∈ [−180, 180]`, degrees; `x = (cos φ cos θ, cos φ sin θ, sin φ)` |
/// | `UnitVector` | `S^d` | `x1 … x(d+1)` | ambient coordinates, norm 1 within [`UNIT_NORM_TOLERANCE`] |
/// | `TorusCoords` | `T^d` | `x1 … xd` | coordinates in `[0, 1]`; 1 is the same point as 0 and is stored as 0 |
/// | `AnglesDeg` | `T^d` | `angle1_deg …` | any finite angle `α` in degrees, stored as `(α / 360) mod 1` |
/// | `AnglesRad` | `T^d` | `angle1_rad …` | any finite angle `α` in radians, stored as `(α / 2π) mod 1` |
///
/// The textual names (serde, [`FromStr`], [`Display`](fmt::Display)) are `lat_lon_deg`,
/// `unit_vector`, `torus_coords`, `angles_deg`, `angles_rad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointFormat {
    /// Latitude and longitude in degrees (sphere `S^2` only).
    LatLonDeg,
    /// Unit vectors of `R^(d+1)` (any sphere `S^d`).
    UnitVector,
    /// Torus coordinates in `[0, 1]` (any torus `T^d`).
    TorusCoords,
    /// Torus angles in degrees (any torus `T^d`).
    AnglesDeg,
    /// Torus angles in radians (any torus `T^d`).
    AnglesRad,
}

impl PointFormat {
    /// All formats.
    pub const ALL: [PointFormat; 5] = [
        PointFormat::LatLonDeg,
        PointFormat::UnitVector,
        PointFormat::TorusCoords,
        PointFormat::AnglesDeg,
        PointFormat::AnglesRad,
    ];

    /// The textual name (`lat_lon_deg`, `unit_vector`, `torus_coords`, `angles_deg`, `angles_rad`).
    pub fn name(self) -> &'static str {
        match self {
            PointFormat::LatLonDeg => "lat_lon_deg",
            PointFormat::UnitVector => "unit_vector",
            PointFormat::TorusCoords => "torus_coords",
            PointFormat::AnglesDeg => "angles_deg",
            PointFormat::AnglesRad => "angles_rad",
        }
    }

    /// The format every command uses unless told otherwise: `LatLonDeg` on `S^2`,
    /// `UnitVector` on other spheres, `TorusCoords` on tori.
    pub fn default_for(manifold: Manifold) -> PointFormat {
        match manifold {
            Manifold::Sphere { dim: 2 } => PointFormat::LatLonDeg,
            Manifold::Sphere { .. } => PointFormat::UnitVector,
            Manifold::Torus { .. } => PointFormat::TorusCoords,
        }
    }

    /// Whether the format can describe points of `manifold` (see the table above).
    pub fn applies_to(self, manifold: Manifold) -> bool {
        match self {
            PointFormat::LatLonDeg => manifold == Manifold::Sphere { dim: 2 },
            PointFormat::UnitVector => !manifold.is_torus(),
            PointFormat::TorusCoords | PointFormat::AnglesDeg | PointFormat::AnglesRad => manifold.is_torus(),
        }
    }

    /// `Ok` when the format [applies](Self::applies_to) to `manifold`, else a [`DataError::FormatMismatch`].
    pub fn check_applies(self, manifold: Manifold) -> Result<()> {
        if self.applies_to(manifold) {
            return Ok(());
        }
        let usable: Vec<&str> = Self::ALL.iter().filter(|f| f.applies_to(manifold)).map(|f| f.name()).collect();
        Err(DataError::FormatMismatch {
            format: self.name().into(),
            manifold: manifold.to_string(),
            reason: format!("use one of {}", usable.join(", ")),
        })
    }

    /// Number of values per row: 2 for `LatLonDeg`, `ambient_dim` otherwise.
    pub fn columns(self, manifold: Manifold) -> usize {
        match self {
            PointFormat::LatLonDeg => 2,
            _ => manifold.ambient_dim(),
        }
    }

    /// Column names written as the header: `lat,lon`; `x1,…,x(d+1)`; `x1,…,xd`;
    /// `angle1_deg,…`; `angle1_rad,…`.
    pub fn header(self, manifold: Manifold) -> Vec<String> {
        let n = self.columns(manifold);
        match self {
            PointFormat::LatLonDeg => vec!["lat".into(), "lon".into()],
            PointFormat::UnitVector | PointFormat::TorusCoords => (1..=n).map(|i| format!("x{i}")).collect(),
            PointFormat::AnglesDeg => (1..=n).map(|i| format!("angle{i}_deg")).collect(),
            PointFormat::AnglesRad => (1..=n).map(|i| format!("angle{i}_rad")).collect(),
        }
    }

    /// Manifold coordinates of one row of finite `values` (already counted), or the
    /// 1-based column at fault (when one is) and what is wrong.
    fn row_to_point(
        self,
        manifold: Manifold,
        values: &[f64],
    ) -> std::result::Result<Vec<f64>, (Option<usize>, String)> {
        match self {
            PointFormat::LatLonDeg => {
                let (lat, lon) = (values[0], values[1]);
                latlon_deg_to_unit(lat, lon).map(|x| x.to_vec()).map_err(|_| {
                    if !(-90.0..=90.0).contains(&lat) {
                        (Some(1), format!("latitude {lat} is outside [-90, 90] degrees"))
                    } else {
                        (Some(2), format!("longitude {lon} is outside [-180, 180] degrees"))
                    }
                })
            }
            PointFormat::UnitVector => {
                let r = values.iter().map(|v| v * v).sum::<f64>().sqrt();
                if (r - 1.0).abs() > UNIT_NORM_TOLERANCE {
                    return Err((
                        None,
                        format!("not a unit vector of {manifold}: norm {r} differs from 1 by more than {UNIT_NORM_TOLERANCE:e}"),
                    ));
                }
                Ok(values.iter().map(|v| v / r).collect())
            }
            PointFormat::TorusCoords => values
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    if (0.0..=1.0).contains(&v) {
                        Ok(wrap_unit(v))
                    } else {
                        Err((Some(j + 1), format!("torus coordinate {v} is outside [0, 1]")))
                    }
                })
                .collect(),
            PointFormat::AnglesDeg => Ok(values.iter().map(|v| wrap_unit(v / 360.0)).collect()),
            PointFormat::AnglesRad => Ok(values.iter().map(|&v| radians_to_torus(v)).collect()),
        }
    }

    /// The values written for point `x` (exactly invertible by reading, up to `f64` rounding).
    fn point_to_row(self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(match self {
            PointFormat::LatLonDeg => {
                let (lat, lon) = unit_to_latlon_deg(x)?;
                vec![lat, lon]
            }
            PointFormat::UnitVector | PointFormat::TorusCoords => x.to_vec(),
            PointFormat::AnglesDeg => x.iter().map(|u| u * 360.0).collect(),
            PointFormat::AnglesRad => x.iter().map(|u| u * std::f64::consts::TAU).collect(),
        })
    }
}

impl fmt::Display for PointFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PointFormat {
    type Err = DataError;

    /// Parses a [`name`](PointFormat::name), ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| DataError::UnknownName {
            what: "point format",
            name: s.into(),
            expected: Self::ALL.map(|f| f.name()).join(", "),
        })
    }
}

/// Reads the points of `manifold` from the text file `path`, written in `format`
/// (see the [module documentation](self) for the layout and the checks).
///
/// Errors (each naming `path`, and the line and column where they apply): the file cannot
/// be read or is not UTF-8; `format` does not apply to `manifold`; a row has the wrong
/// number of fields; a value is not a number, is NaN or infinite, or is out of range
/// (latitude, longitude, torus coordinate, unit norm); the file has no data rows.
pub fn load_points_csv(path: &Path, manifold: Manifold, format: PointFormat) -> Result<PointSet> {
    manifold.validate()?;
    format.check_applies(manifold)?;
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let names = format.header(manifold);
    let columns = names.len();
    let parse_error = |line: usize, column: Option<usize>, message: String| DataError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false) // told apart from data below: a header has a non-numeric field
        .flexible(true) // rows of the wrong length get the error below, which names the format
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter { bytes, at: 0, line: 1 };
    let mut coords = Vec::new();
    let mut seen_content = false;
    let mut values = Vec::with_capacity(columns);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_of_record(p.byte() as usize));
                return Err(parse_error(line, None, e.to_string()));
            }
        }
        let line = record.position().map_or(0, |p| lines.line_of_record(p.byte() as usize));
        let mut fields: Vec<&str> = Vec::with_capacity(columns);
        for field in record.iter() {
            let text = std::str::from_utf8(field)
                .map_err(|e| parse_error(line, Some(fields.len() + 1), format!("not valid UTF-8 text ({e})")))?;
            fields.push(unquote(text));
        }
        if fields.iter().all(|f| f.is_empty()) {
            continue; // a line of blanks
        }
        let text = fields.join(",");
        let is_first = !seen_content;
        seen_content = true;
        if is_first && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            if fields.len() != columns {
                return Err(parse_error(
                    line,
                    None,
                    format!(
                        "header `{text}` has {} fields, expected {columns} ({}) for format {format}",
                        fields.len(),
                        names.join(",")
                    ),
                ));
            }
            continue;
        }
        if fields.len() != columns {
            return Err(parse_error(
                line,
                None,
                format!(
                    "expected {columns} comma-separated values ({}) for format {format} on {manifold}, found {}: `{text}`",
                    names.join(","),
                    fields.len()
                ),
            ));
        }
        values.clear();
        for (j, field) in fields.iter().enumerate() {
            let v: f64 = field
                .parse()
                .map_err(|_| parse_error(line, Some(j + 1), format!("{} = `{field}` is not a number", names[j])))?;
            if !v.is_finite() {
                return Err(parse_error(line, Some(j + 1), format!("{} = `{field}` is not finite", names[j])));
            }
            values.push(v);
        }
        let x =
            format.row_to_point(manifold, &values).map_err(|(column, message)| parse_error(line, column, message))?;
        coords.extend_from_slice(&x);
    }
    if coords.is_empty() {
        // lines of the file, for the message: a last line without its newline counts
        let line_count =
            bytes.iter().filter(|&&b| b == b'\n').count() + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
        return Err(DataError::NoData { path: path.to_path_buf(), lines: line_count });
    }
    // every row went through `row_to_point`, which returns points exactly on the manifold
    Ok(PointSet::from_projected(manifold, coords))
}

/// Writes `points` to the text file `path` in `format`: the header line
/// [`PointFormat::header`] and one line per point (the shortest decimal form of each `f64`,
/// so that [`load_points_csv`] reads the same points back, to within `f64` rounding of the
/// coordinate conversion). Overwrites an existing file.
pub fn write_points_csv(path: &Path, points: &PointSet, format: PointFormat) -> Result<()> {
    let manifold = points.manifold();
    format.check_applies(manifold)?;
    let io_error = |source| DataError::Io { path: PathBuf::from(path), source };
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(source) => io_error(source),
        other => io_error(std::io::Error::other(format!("{other:?}"))),
    };
    let mut out = csv::Writer::from_path(path).map_err(csv_error)?;
    out.write_record(format.header(manifold)).map_err(csv_error)?;
    for x in points.iter() {
        let row = format.point_to_row(x)?;
        out.write_record(row.iter().map(|v| v.to_string())).map_err(csv_error)?;
    }
    out.flush().map_err(io_error)
}

/// Line numbers of the records of a [`csv::Reader`] over `bytes`, read in order.
///
/// csv's [`csv::Position`] of a record is where the previous record ended (its line count
/// skips comment lines), so the comment lines, empty lines and the `\n` of a `\r\n` line
/// end between two records are stepped over here.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// A byte offset at or before the next record's start.
    at: usize,
    /// 1-based number of the line holding byte `at`.
    line: usize,
}

impl LineCounter<'_> {
    /// The 1-based line on which the record that csv reports at byte `offset` starts.
    fn line_of_record(&mut self, offset: usize) -> usize {
        let offset = offset.clamp(self.at, self.bytes.len());
        self.line += self.bytes[self.at..offset].iter().filter(|&&b| b == b'\n').count();
        self.at = offset;
        loop {
            let rest = &self.bytes[self.at..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else { return self.line };
            let text = &rest[..end];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if !(text.is_empty() || text.starts_with(b"#")) {
                return self.line;
            }
            self.at += end + 1;
            self.line += 1;
        }
    }
}

/// A field without surrounding blanks and one pair of enclosing double quotes.
fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"').and_then(|g| g.strip_suffix('"')).map(str::trim).unwrap_or(f)
}
