//! Reading the earth data sets and point files, and the errors for malformed files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use egf_data::{load_earth, load_points_csv, write_points_csv, DataError, EarthDataset, PointFormat, PointSet};
use egf_manifold::Manifold;

/// The earth data: `EGF_DATA_DIR` when set, else `../shared/data/earth` beside the workspace.
fn earth_dir() -> PathBuf {
    match std::env::var_os("EGF_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/earth")),
    }
}

/// A fresh file in the system's temporary folder holding `content`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let k = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("egf-data-test-{}-{k}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn s2() -> Manifold {
    Manifold::sphere(2).unwrap()
}

#[test]
fn earth_files_load_with_the_published_counts() {
    let dir = earth_dir();
    // first data row of each file (latitude, longitude in degrees)
    let first = [
        (EarthDataset::Volcano, (-30.2f64, -178.47f64)),
        (EarthDataset::Earthquake, (31.1, 35.5)),
        (EarthDataset::Flood, (35.8142, 5.23026)),
        (EarthDataset::Fire, (-25.088, 152.358)),
    ];
    let expected_counts = [827, 6120, 4875, 12809];
    for ((dataset, (lat, lon)), count) in first.into_iter().zip(expected_counts) {
        let points = load_earth(&dir, dataset).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(points.len(), count, "{dataset}");
        assert_eq!(points.manifold(), s2());
        for x in points.iter() {
            let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-14, "{dataset}: {x:?}");
        }
        let (phi, theta) = (lat.to_radians(), lon.to_radians());
        let expected = [phi.cos() * theta.cos(), phi.cos() * theta.sin(), phi.sin()];
        let x0 = points.point(0);
        assert!(x0.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-14), "{dataset}: {x0:?} vs {expected:?}");
    }
    // last row of flood.csv (a CRLF file without a final newline): 31.8833,-88.3364
    let flood = load_earth(&dir, EarthDataset::Flood).unwrap();
    let (lat, lon) = egf_manifold::coords::unit_to_latlon_deg(flood.point(flood.len() - 1)).unwrap();
    assert!((lat - 31.8833).abs() < 1e-10 && (lon + 88.3364).abs() < 1e-10, "{lat}, {lon}");
}

/// Events repeat at one place (most of all volcanic eruptions); the counts are those of
/// the distinct (latitude, longitude) pairs of the files.
#[test]
fn earth_files_repeat_locations() {
    let dir = earth_dir();
    let expected = [
        (EarthDataset::Volcano, 267),
        (EarthDataset::Earthquake, 5447),
        (EarthDataset::Flood, 4861),
        (EarthDataset::Fire, 12802),
    ];
    for (dataset, distinct) in expected {
        let points = load_earth(&dir, dataset).unwrap();
        assert_eq!(points.distinct_locations(), distinct, "{dataset}");
        assert_eq!(points.count_located_in(&points).unwrap(), points.len(), "{dataset}");
    }
}

#[test]
fn earth_row_count_is_checked() {
    let dir = std::env::temp_dir().join(format!("egf-data-test-{}-earth", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("volcano.csv"), "# short\nLatitude,Longitude\n1,2\n3,4\n").unwrap();
    let err = load_earth(&dir, EarthDataset::Volcano).unwrap_err();
    let missing = load_earth(&dir, EarthDataset::Fire).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, DataError::UnexpectedRowCount { expected: 827, found: 2, .. }), "{err}");
    assert!(err.to_string().contains("volcano.csv"), "{err}");
    assert!(matches!(missing, DataError::Io { .. }) && missing.to_string().contains("fire.csv"), "{missing}");
}

/// Loads `content` and returns the error message, which must name the file.
fn error_of(content: &str, manifold: Manifold, format: PointFormat) -> (DataError, String) {
    let file = TempFile::new("bad.csv", content.as_bytes());
    let err = load_points_csv(file.path(), manifold, format).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&file.path().display().to_string()), "no file name in: {message}");
    (err, message)
}

/// Asserts a parse error at `line` (and `column` when given).
fn assert_parse_error(content: &str, manifold: Manifold, format: PointFormat, line: usize, column: Option<usize>) {
    let (err, message) = error_of(content, manifold, format);
    match err {
        DataError::Parse { line: l, column: c, .. } => {
            assert_eq!((l, c), (line, column), "{message}");
            assert!(message.contains(&format!("line {line}")), "{message}");
        }
        other => panic!("expected a parse error at line {line}, got {other}"),
    }
}

#[test]
fn malformed_files_name_the_file_line_and_column() {
    use PointFormat::*;
    let t2 = Manifold::torus(2).unwrap();
    // non-numeric value after the header
    assert_parse_error("# c\nlat,lon\n10,20\n10,abc\n", s2(), LatLonDeg, 4, Some(2));
    // NaN and infinity
    assert_parse_error("10,20\nNaN,5\n", s2(), LatLonDeg, 2, Some(1));
    assert_parse_error("# a\n# b\n\n10,inf\n", s2(), LatLonDeg, 4, Some(2));
    // latitude 91, longitude 181
    assert_parse_error("lat,lon\n1,1\n91,0\n", s2(), LatLonDeg, 3, Some(1));
    assert_parse_error("lat,lon\n1,1\n0,181", s2(), LatLonDeg, 3, Some(2));
    // wrong number of columns, in the data and in the header
    assert_parse_error("lat,lon\n1,2\n1,2,3\n", s2(), LatLonDeg, 3, None);
    assert_parse_error("lat,lon\n1,2\n1\n", s2(), LatLonDeg, 3, None);
    assert_parse_error("# x\na,b,c\n1,2\n", s2(), LatLonDeg, 2, None);
    // a unit vector of norm 2
    assert_parse_error("x,y,z\n1,0,0\n0,2,0\n", s2(), UnitVector, 3, None);
    // torus coordinates out of [0, 1]
    assert_parse_error("x1,x2\n0.5,1.5\n", t2, TorusCoords, 2, Some(2));
    assert_parse_error("x1,x2\n-0.1,0.5\n", t2, TorusCoords, 2, Some(1));
    // Windows line ends keep the line numbers
    assert_parse_error("# c\r\nlat,lon\r\n1,2\r\n1,x\r\n", s2(), LatLonDeg, 4, Some(2));
    // comments and blank lines between data rows, before and after Windows line ends
    assert_parse_error("# a\n1,2\n# b\n\n# c\n3,x\n", s2(), LatLonDeg, 6, Some(2));
    assert_parse_error("1,2\r\n\r\n# x\r\n3,x", s2(), LatLonDeg, 4, Some(2));
    assert_parse_error("\n\n   \n1,2\n3,4\n\n\n5,x\n", s2(), LatLonDeg, 8, Some(2));
    // a quoted comma stays inside its field (RFC 4180)
    assert_parse_error("lat,lon\n\"1,5\",2\n", s2(), LatLonDeg, 2, Some(1));
    // invalid UTF-8
    let file = TempFile::new("latin1.csv", b"lat,lon\n1,2\n\xe9t\xe9,3\n");
    let err = load_points_csv(file.path(), s2(), LatLonDeg).unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 3, .. }), "{err}");
}

#[test]
fn empty_and_header_only_files_are_errors() {
    let (err, message) = error_of("", s2(), PointFormat::LatLonDeg);
    assert!(matches!(err, DataError::NoData { lines: 0, .. }), "{message}");
    let (err, message) = error_of("# only a comment\nlat,lon\n", s2(), PointFormat::LatLonDeg);
    assert!(matches!(err, DataError::NoData { lines: 2, .. }), "{message}");
    assert!(message.contains("no data rows") && message.contains("2 line"), "{message}");
    let (err, _) = error_of("\n\n# c\n   \n", s2(), PointFormat::LatLonDeg);
    assert!(matches!(err, DataError::NoData { lines: 4, .. }));
}

#[test]
fn missing_file_and_wrong_format_are_errors() {
    let path = std::env::temp_dir().join("egf-data-test-does-not-exist.csv");
    let err = load_points_csv(&path, s2(), PointFormat::LatLonDeg).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("does-not-exist"), "{err}");
    let t2 = Manifold::torus(2).unwrap();
    let file = TempFile::new("ok.csv", b"1,2\n");
    for (m, f) in [
        (t2, PointFormat::LatLonDeg),
        (s2(), PointFormat::TorusCoords),
        (Manifold::sphere(3).unwrap(), PointFormat::LatLonDeg),
    ] {
        let err = load_points_csv(file.path(), m, f).unwrap_err();
        assert!(matches!(err, DataError::FormatMismatch { .. }), "{err}");
    }
}

#[test]
fn lenient_layout_is_accepted() {
    // BOM, Windows line ends, blanks, spaces, quoted header, no final newline
    let content =
        "\u{feff}# source\r\n\r\n \"Latitude\" , \"Longitude\" \r\n 10.5 , -20 \r\n\r\n# mid comment\r\n-90,180";
    let file = TempFile::new("lenient.csv", content.as_bytes());
    let points = load_points_csv(file.path(), s2(), PointFormat::LatLonDeg).unwrap();
    assert_eq!(points.len(), 2);
    assert!((points.point(1)[2] + 1.0).abs() < 1e-15);
    // no header at all; torus coordinate 1 wraps to 0; angles wrap
    let t2 = Manifold::torus(2).unwrap();
    let file = TempFile::new("torus.csv", b"1,0.25\n0,0.5\n");
    let points = load_points_csv(file.path(), t2, PointFormat::TorusCoords).unwrap();
    assert_eq!(points.coords(), &[0.0, 0.25, 0.0, 0.5]);
    let file = TempFile::new("deg.csv", b"angle1_deg,angle2_deg\n-90,450\n");
    let points = load_points_csv(file.path(), t2, PointFormat::AnglesDeg).unwrap();
    assert_eq!(points.coords(), &[0.75, 0.25]);
    let file = TempFile::new(
        "rad.csv",
        format!("{},{}\n", -std::f64::consts::FRAC_PI_2, 7.0 * std::f64::consts::PI).as_bytes(),
    );
    let points = load_points_csv(file.path(), t2, PointFormat::AnglesRad).unwrap();
    assert!((points.point(0)[0] - 0.75).abs() < 1e-15 && (points.point(0)[1] - 0.5).abs() < 1e-15);
    // unit vectors within the tolerance are normalized
    let file = TempFile::new("unit.csv", b"0,0.6,0.8000001\n");
    let points = load_points_csv(file.path(), s2(), PointFormat::UnitVector).unwrap();
    assert!((points.point(0).iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-15);
}

#[test]
fn written_files_read_back() {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
    let cases = [
        (s2(), PointFormat::LatLonDeg, "lat,lon", 1e-13),
        (s2(), PointFormat::UnitVector, "x1,x2,x3", 1e-15),
        (Manifold::sphere(3).unwrap(), PointFormat::UnitVector, "x1,x2,x3,x4", 1e-15),
        (Manifold::torus(2).unwrap(), PointFormat::TorusCoords, "x1,x2", 0.0),
        (Manifold::torus(3).unwrap(), PointFormat::AnglesDeg, "angle1_deg,angle2_deg,angle3_deg", 1e-15),
        (Manifold::torus(1).unwrap(), PointFormat::AnglesRad, "angle1_rad", 1e-15),
    ];
    for (m, format, header, tol) in cases {
        let coords: Vec<f64> = (0..50).flat_map(|_| m.sample_uniform_f64(&mut rng)).collect();
        let points = PointSet::new(m, coords).unwrap();
        let file = TempFile::new("out.csv", b"");
        write_points_csv(file.path(), &points, format).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(text.lines().next(), Some(header), "{m} {format}");
        assert_eq!(text.lines().count(), 51);
        let back = load_points_csv(file.path(), m, format).unwrap();
        assert_eq!(back.len(), 50);
        for (a, b) in back.iter().zip(points.iter()) {
            assert!(m.distance_f64(a, b) <= tol, "{m} {format}: {a:?} vs {b:?}");
        }
    }
    let t2 = Manifold::torus(2).unwrap();
    let points = PointSet::new(t2, vec![0.5, 0.5]).unwrap();
    let err = write_points_csv(Path::new("/nonexistent-dir/x.csv"), &points, PointFormat::TorusCoords).unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/x.csv"), "{err}");
    let unused = std::env::temp_dir().join("egf-data-test-unused.csv");
    assert!(matches!(
        write_points_csv(&unused, &points, PointFormat::UnitVector),
        Err(DataError::FormatMismatch { .. })
    ));
}

#[test]
fn format_names() {
    for f in PointFormat::ALL {
        assert_eq!(f.to_string().parse::<PointFormat>().unwrap(), f);
    }
    assert_eq!(PointFormat::default_for(s2()), PointFormat::LatLonDeg);
    assert_eq!(PointFormat::default_for(Manifold::torus(3).unwrap()), PointFormat::TorusCoords);
    assert_eq!(PointFormat::default_for(Manifold::sphere(4).unwrap()), PointFormat::UnitVector);
    assert!("xyz".parse::<PointFormat>().is_err());
}
