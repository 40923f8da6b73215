//! Coordinate conversions.
//!
//! * Sphere `S^2`: latitude `φ` and longitude `θ` in **degrees** ↔ unit vectors
//!   `x = (cos φ cos θ, cos φ sin θ, sin φ)` (spec section 1).
//! * Torus: angles in **radians** ↔ coordinates in `[0, 1)`, `u = (θ / 2π) mod 1`.

use candle_core::Tensor;

use crate::{ManifoldError, Result};

/// Unit vector of latitude `lat` ∈ [−90, 90] and longitude `lon` ∈ [−180, 180], both in degrees.
///
/// Returns an error naming the coordinate when a value is out of range or not finite.
pub fn latlon_deg_to_unit(lat: f64, lon: f64) -> Result<[f64; 3]> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(ManifoldError::OutOfRange { what: "latitude", value: lat, range: "[-90, 90] degrees" });
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(ManifoldError::OutOfRange { what: "longitude", value: lon, range: "[-180, 180] degrees" });
    }
    let (phi, theta) = (lat.to_radians(), lon.to_radians());
    Ok([phi.cos() * theta.cos(), phi.cos() * theta.sin(), phi.sin()])
}

/// Latitude and longitude in degrees (`lat` ∈ [−90, 90], `lon` ∈ (−180, 180]) of a
/// nonzero vector of `R^3` (it is normalized first).
pub fn unit_to_latlon_deg(x: &[f64]) -> Result<(f64, f64)> {
    if x.len() != 3 {
        return Err(ManifoldError::ShapeMismatch { expected: "3 coordinates".into(), got: vec![x.len()] });
    }
    let r = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
    if !(r.is_finite() && r > 0.0) {
        return Err(ManifoldError::OutOfRange { what: "vector norm", value: r, range: "(0, ∞)" });
    }
    let lat = (x[2] / r).clamp(-1.0, 1.0).asin().to_degrees();
    let lon = x[1].atan2(x[0]).to_degrees();
    Ok((lat, lon))
}

/// Batched [`latlon_deg_to_unit`]: `(n, 2)` tensor of `(lat, lon)` in degrees → `(n, 3)` unit vectors.
/// No range check (validate inputs on the host first).
pub fn latlon_deg_to_unit_tensor(latlon: &Tensor) -> Result<Tensor> {
    let (_, c) = latlon.dims2()?;
    if c != 2 {
        return Err(ManifoldError::ShapeMismatch { expected: "(n, 2)".into(), got: latlon.dims().to_vec() });
    }
    let rad = (latlon * (std::f64::consts::PI / 180.0))?;
    let phi = rad.narrow(1, 0, 1)?;
    let theta = rad.narrow(1, 1, 1)?;
    let cphi = phi.cos()?;
    Ok(Tensor::cat(&[(&cphi * theta.cos()?)?, (&cphi * theta.sin()?)?, phi.sin()?], 1)?)
}

/// Torus coordinate `(θ / 2π) mod 1 ∈ [0, 1)` of an angle `θ` in radians.
pub fn radians_to_torus(theta: f64) -> f64 {
    wrap_unit(theta / std::f64::consts::TAU)
}

/// Angle in radians `2π u ∈ [0, 2π)` of a torus coordinate `u`.
pub fn torus_to_radians(u: f64) -> f64 {
    wrap_unit(u) * std::f64::consts::TAU
}

/// `u mod 1` in `[0, 1)`, also for negative `u` (a value that rounds to 1 is mapped to 0).
pub fn wrap_unit(u: f64) -> f64 {
    let w = u.rem_euclid(1.0);
    if w >= 1.0 {
        0.0
    } else {
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latlon_round_trip_and_poles() {
        for &(lat, lon) in &[(0.0, 0.0), (45.0, 90.0), (-30.2, -178.47), (89.9, 179.0), (-60.0, 12.5)] {
            let x = latlon_deg_to_unit(lat, lon).unwrap();
            let n = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
            assert!((n - 1.0).abs() < 1e-15);
            let (la, lo) = unit_to_latlon_deg(&x).unwrap();
            assert!((la - lat).abs() < 1e-9 && (lo - lon).abs() < 1e-9, "{lat},{lon} -> {la},{lo}");
        }
        let north = latlon_deg_to_unit(90.0, 33.0).unwrap();
        assert!((north[2] - 1.0).abs() < 1e-15);
        assert_eq!(latlon_deg_to_unit(0.0, 90.0).unwrap().map(|v| (v * 1e12).round() / 1e12), [0.0, 1.0, 0.0]);
    }

    #[test]
    fn latlon_out_of_range_is_an_error() {
        assert!(matches!(latlon_deg_to_unit(90.5, 0.0), Err(ManifoldError::OutOfRange { what: "latitude", .. })));
        assert!(matches!(latlon_deg_to_unit(0.0, -181.0), Err(ManifoldError::OutOfRange { what: "longitude", .. })));
        assert!(latlon_deg_to_unit(f64::NAN, 0.0).is_err());
        assert!(unit_to_latlon_deg(&[0.0, 0.0, 0.0]).is_err());
    }

    #[test]
    fn tensor_conversion_matches_f64() {
        let pts = [(10.0f64, 20.0f64), (-45.0, 170.0), (80.0, -100.0)];
        let flat: Vec<f64> = pts.iter().flat_map(|&(a, b)| [a, b]).collect();
        let t = Tensor::from_vec(flat, (3, 2), &candle_core::Device::Cpu).unwrap();
        let u = latlon_deg_to_unit_tensor(&t).unwrap().to_vec2::<f64>().unwrap();
        for (row, &(lat, lon)) in u.iter().zip(pts.iter()) {
            let r = latlon_deg_to_unit(lat, lon).unwrap();
            for k in 0..3 {
                assert!((row[k] - r[k]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn torus_angles() {
        assert!((radians_to_torus(-std::f64::consts::FRAC_PI_2) - 0.75).abs() < 1e-15);
        assert!((torus_to_radians(0.25) - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
        assert_eq!(wrap_unit(-1e-300), 0.0);
        assert!((0.0..1.0).contains(&wrap_unit(-1e-17)));
    }
}
