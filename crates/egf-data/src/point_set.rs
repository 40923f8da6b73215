//! [`PointSet`]: a finite set of points on a manifold, stored row-major in `f64`.

use std::collections::HashSet;

use candle_core::{DType, Device, Tensor};
use egf_manifold::tensor_util::{tensor_from_f64, tensor_to_f64_rows};
use egf_manifold::Manifold;

use crate::{DataError, Result};

/// Largest deviation from the manifold that [`PointSet::new`] accepts before projecting:
/// torus coordinates in `[−1e-9, 1 + 1e-9]`, sphere points with `||x| − 1| ≤ 1e-9`.
pub const MEMBERSHIP_TOLERANCE: f64 = 1e-9;

/// `n` points `x_0, …, x_{n−1}` of a [`Manifold`], stored row-major as `n × ambient_dim`
/// `f64` coordinates: torus points in `[0, 1)^d`, sphere points as unit vectors of `R^(d+1)`.
///
/// Every stored point lies exactly on the manifold (up to `f64` rounding): the
/// constructors check membership within [`MEMBERSHIP_TOLERANCE`] and then project
/// (`x mod 1` on the torus, `x / |x|` on the sphere).
#[derive(Clone, Debug, PartialEq)]
pub struct PointSet {
    manifold: Manifold,
    coords: Vec<f64>,
}

impl PointSet {
    /// Point set from row-major coordinates (`coords.len()` a multiple of `ambient_dim`).
    ///
    /// Errors when the length is not a multiple of `ambient_dim`, or a point is not
    /// finite or lies farther than [`MEMBERSHIP_TOLERANCE`] from the manifold (the error
    /// names the row).
    pub fn new(manifold: Manifold, mut coords: Vec<f64>) -> Result<Self> {
        manifold.validate()?;
        let c = manifold.ambient_dim();
        if coords.len() % c != 0 {
            return Err(DataError::invalid(
                "point coordinates",
                format!("{} values are not a whole number of points of {c} coordinates on {manifold}", coords.len()),
            ));
        }
        for (i, x) in coords.chunks_exact_mut(c).enumerate() {
            manifold.check_point_f64(x, MEMBERSHIP_TOLERANCE).map_err(|e| {
                let reason = match e {
                    egf_manifold::ManifoldError::OffManifold { reason, .. } => reason,
                    other => other.to_string(),
                };
                DataError::invalid(format!("point {i} of {manifold}"), format!("{x:?}: {reason}"))
            })?;
            manifold.project_f64(x);
        }
        Ok(Self { manifold, coords })
    }

    /// Point set from an `(n, ambient_dim)` tensor of any float dtype and device
    /// (copied to the host), with the checks of [`new`](Self::new).
    pub fn from_tensor(manifold: Manifold, x: &Tensor) -> Result<Self> {
        manifold.check_shape(x)?;
        let (coords, _, _) = tensor_to_f64_rows(x)?;
        Self::new(manifold, coords)
    }

    /// Point set from coordinates that the caller has already put exactly on the manifold
    /// (whole points, finite, projected).
    pub(crate) fn from_projected(manifold: Manifold, coords: Vec<f64>) -> Self {
        debug_assert!(coords.len() % manifold.ambient_dim() == 0);
        Self { manifold, coords }
    }

    /// The empty point set of `manifold`.
    pub fn empty(manifold: Manifold) -> Self {
        Self { manifold, coords: Vec::new() }
    }

    /// The manifold the points live on.
    pub fn manifold(&self) -> Manifold {
        self.manifold
    }

    /// Number of points `n`.
    pub fn len(&self) -> usize {
        self.coords.len() / self.manifold.ambient_dim()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    /// Point `i` as a slice of `ambient_dim` coordinates.
    ///
    /// # Panics
    /// When `i ≥ len()`, like slice indexing; see [`get`](Self::get) for a checked version.
    pub fn point(&self, i: usize) -> &[f64] {
        let c = self.manifold.ambient_dim();
        &self.coords[i * c..(i + 1) * c]
    }

    /// Point `i`, or `None` when `i ≥ len()`.
    pub fn get(&self, i: usize) -> Option<&[f64]> {
        (i < self.len()).then(|| self.point(i))
    }

    /// Iterator over the points in order, each a slice of `ambient_dim` coordinates.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.coords.chunks_exact(self.manifold.ambient_dim())
    }

    /// All coordinates, row-major `(len, ambient_dim)`.
    pub fn coords(&self) -> &[f64] {
        &self.coords
    }

    /// Consumes the set and returns its row-major coordinates.
    pub fn into_coords(self) -> Vec<f64> {
        self.coords
    }

    /// The points as an `(n, ambient_dim)` tensor of `dtype` on `device` (converted on the host).
    pub fn to_tensor(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        Ok(tensor_from_f64(self.coords.clone(), &[self.len(), self.manifold.ambient_dim()], dtype, device)?)
    }

    /// The points `x_{indices[0]}, x_{indices[1]}, …` in that order (repeats allowed).
    /// Errors on an index `≥ len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<PointSet> {
        let c = self.manifold.ambient_dim();
        let mut coords = Vec::with_capacity(indices.len() * c);
        for &i in indices {
            coords.extend_from_slice(self.get(i).ok_or(DataError::IndexOutOfRange { index: i, len: self.len() })?);
        }
        Ok(Self { manifold: self.manifold, coords })
    }

    /// Number of distinct locations among the points: points with identical coordinates
    /// (compared exactly, `−0.0 = 0.0`) count once.
    ///
    /// The earth data repeat locations (a volcano erupts again at the same coordinates):
    /// volcano has 827 events at 267 locations.
    pub fn distinct_locations(&self) -> usize {
        self.location_keys().collect::<HashSet<_>>().len()
    }

    /// Number of points of `self` whose location also occurs in `reference` (coordinates
    /// compared exactly, `−0.0 = 0.0`).
    ///
    /// For a test set against its training set this is the number of test points a model
    /// can score on by putting a sharp peak on a training point: 69 of the 82 volcano test
    /// points of the seed-0 split have a twin in the training set. Errors when the two sets
    /// live on different manifolds.
    pub fn count_located_in(&self, reference: &PointSet) -> Result<usize> {
        if self.manifold != reference.manifold {
            return Err(DataError::invalid(
                "reference point set",
                format!("lives on {}, the points on {}", reference.manifold, self.manifold),
            ));
        }
        let known: HashSet<Vec<u64>> = reference.location_keys().collect();
        Ok(self.location_keys().filter(|k| known.contains(k)).count())
    }

    /// Exact keys of the locations: the bit patterns of the coordinates, with `−0.0`
    /// mapped to `0.0` (all coordinates are finite).
    fn location_keys(&self) -> impl Iterator<Item = Vec<u64>> + '_ {
        self.iter().map(|x| x.iter().map(|v| (v + 0.0).to_bits()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_projects_and_checks() {
        let s2 = Manifold::sphere(2).unwrap();
        let set = PointSet::new(s2, vec![1.0, 0.0, 0.0, 0.0, 0.6, 0.8 + 5e-10]).unwrap();
        assert_eq!(set.len(), 2);
        let n: f64 = set.point(1).iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-15);
        assert!(PointSet::new(s2, vec![2.0, 0.0, 0.0]).is_err());
        assert!(PointSet::new(s2, vec![1.0, 0.0]).is_err());
        let t2 = Manifold::torus(2).unwrap();
        let set = PointSet::new(t2, vec![1.0, 0.25, -1e-12, 0.5]).unwrap();
        assert_eq!(set.coords(), &[0.0, 0.25, 1.0 - 1e-12, 0.5]);
        let err = PointSet::new(t2, vec![0.5, 0.5, 0.5, f64::NAN]).unwrap_err();
        assert!(err.to_string().contains("point 1"), "{err}");
    }

    #[test]
    fn subset_tensor_and_iteration() {
        let t2 = Manifold::torus(2).unwrap();
        let set = PointSet::new(t2, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
        let sub = set.subset(&[2, 0, 2]).unwrap();
        assert_eq!(sub.coords(), &[0.5, 0.6, 0.1, 0.2, 0.5, 0.6]);
        assert!(matches!(set.subset(&[3]), Err(DataError::IndexOutOfRange { index: 3, len: 3 })));
        assert_eq!(set.get(3), None);
        assert_eq!(set.iter().map(|p| p[0]).collect::<Vec<_>>(), vec![0.1, 0.3, 0.5]);
        let x = set.to_tensor(DType::F32, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[3, 2]);
        let back = PointSet::from_tensor(t2, &x).unwrap();
        assert!(back.coords().iter().zip(set.coords()).all(|(a, b)| (a - b).abs() < 1e-7));
        assert!(PointSet::empty(t2).is_empty());
    }

    #[test]
    fn repeated_locations_are_counted_exactly() {
        let t2 = Manifold::torus(2).unwrap();
        // Points 0 and 2 coincide; -0.0 is the same location as 0.0; 1e-12 apart is not.
        let set = PointSet::new(t2, vec![0.25, 0.5, 0.0, 0.5, 0.25, 0.5, -0.0, 0.5, 0.25, 0.5 + 1e-12]).unwrap();
        assert_eq!(set.distinct_locations(), 3);
        let reference = PointSet::new(t2, vec![0.0, 0.5, 0.75, 0.75]).unwrap();
        assert_eq!(set.count_located_in(&reference).unwrap(), 2);
        assert_eq!(reference.count_located_in(&set).unwrap(), 1);
        assert_eq!(set.count_located_in(&PointSet::empty(t2)).unwrap(), 0);
        assert_eq!(PointSet::empty(t2).distinct_locations(), 0);
        let s2 = Manifold::sphere(2).unwrap();
        let err = set.count_located_in(&PointSet::empty(s2)).unwrap_err().to_string();
        assert!(err.contains("reference point set"), "{err}");
    }
}
