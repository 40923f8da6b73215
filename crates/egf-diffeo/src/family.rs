//! [`Family`]: a finite list of diffeomorphisms evaluated together.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use egf_manifold::Manifold;

use crate::{DiffeoError, Diffeomorphism, FamilySpec, Result};

/// A finite family `Φ_1 … Φ_p` of diffeomorphisms of one manifold.
///
/// The batched methods stack the `p` maps member-major: for a batch of `n`
/// points the result has `p · n` rows and row `i · n + k` belongs to map `i` and
/// point `k`, so that one network pass can evaluate all of them.
#[derive(Clone, Debug)]
pub struct Family {
    manifold: Manifold,
    spec: FamilySpec,
    members: Vec<Arc<dyn Diffeomorphism>>,
}

impl Family {
    /// Builds the family described by `spec` on `manifold`; fails if it is empty
    /// or a map does not act on `manifold`. Learnable maps get `f64` variables on
    /// the CPU; a model builds its family with [`from_spec_on`](Self::from_spec_on).
    pub fn from_spec(spec: &FamilySpec, manifold: Manifold) -> Result<Self> {
        Self::from_spec_on(spec, manifold, DType::F64, &Device::Cpu)
    }

    /// [`from_spec`](Self::from_spec) with the variables of learnable maps of
    /// `dtype` on `device`.
    pub fn from_spec_on(spec: &FamilySpec, manifold: Manifold, dtype: DType, device: &Device) -> Result<Self> {
        let members =
            spec.expanded().iter().map(|m| m.build_on(manifold, dtype, device)).collect::<Result<Vec<_>>>()?;
        if members.is_empty() {
            return Err(DiffeoError::EmptyFamily);
        }
        Ok(Self { manifold, spec: spec.clone(), members })
    }

    /// The manifold the maps act on.
    pub fn manifold(&self) -> Manifold {
        self.manifold
    }

    /// The description this family was built from.
    pub fn spec(&self) -> &FamilySpec {
        &self.spec
    }

    /// Number of maps `p`.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false (a family has at least one map).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Map `i` (0-based); panics if `i ≥ p` (see [`get`](Self::get)).
    pub fn member(&self, i: usize) -> &dyn Diffeomorphism {
        self.members[i].as_ref()
    }

    /// The maps in order.
    pub fn members(&self) -> &[Arc<dyn Diffeomorphism>] {
        &self.members
    }

    /// Map `i` (0-based), or `None` if `i ≥ p`.
    pub fn get(&self, i: usize) -> Option<&dyn Diffeomorphism> {
        self.members.get(i).map(|m| m.as_ref())
    }

    /// Ergodicity warnings of [`crate::ergodicity::check`] (finite orbits; a random
    /// walk that does not mix), also emitted with `log::warn!`; `None` when the
    /// family looks ergodic. Runs a Monte-Carlo walk of at most about 0.35 s (release build).
    pub fn ergodicity_warning(&self) -> Option<String> {
        crate::ergodicity::check(self)
    }

    /// The learnable parameters of the maps, named `family.map<i>.<name>` after the
    /// map's 0-based index `i`; empty when every map is fixed.
    pub fn parameters(&self) -> Vec<(String, Var)> {
        let mut all = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            for (name, var) in m.parameters() {
                all.push((format!("family.map{i}.{name}"), var));
            }
        }
        all
    }

    /// Whether every map preserves `λ`.
    pub fn is_volume_preserving(&self) -> bool {
        self.members.iter().all(|m| m.is_volume_preserving())
    }

    /// Preimages `Φ_i⁻¹(y_k)` stacked as `(p · n, c)` and, unless every map is
    /// volume preserving, `log |det D(Φ_i⁻¹)(y_k)|` as a `(p, n)` tensor.
    pub fn preimages(&self, y: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        self.manifold.check_shape(y)?;
        let n = y.dim(0)?;
        let mut points = Vec::with_capacity(self.len());
        let mut log_dets = Vec::with_capacity(self.len());
        for m in &self.members {
            let (x, ld) = m.inverse_with_log_det(y)?;
            points.push(x);
            log_dets.push(ld);
        }
        let points = Tensor::cat(&points, 0)?;
        if self.is_volume_preserving() {
            return Ok((points, None));
        }
        let zeros = Tensor::zeros(n, y.dtype(), y.device())?;
        let rows = log_dets.into_iter().map(|ld| ld.unwrap_or_else(|| zeros.clone())).collect::<Vec<_>>();
        Ok((points, Some(Tensor::stack(&rows, 0)?)))
    }

    /// Images `Φ_i(x_k)` stacked as `(p · n, c)`.
    pub fn images(&self, x: &Tensor) -> Result<Tensor> {
        self.manifold.check_shape(x)?;
        let parts = self.members.iter().map(|m| m.forward(x)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// `Φ_{i_k}(x_k)` for one chosen map index per point (`choice` of dtype `u32`, shape `(n,)`),
    /// computed by evaluating every map and gathering; shape `(n, c)`.
    pub fn apply_chosen(&self, x: &Tensor, choice: &Tensor) -> Result<Tensor> {
        let (n, c) = x.dims2()?;
        let all = self.images(x)?.reshape((self.len(), n, c))?;
        let index = choice.reshape((1, n, 1))?.broadcast_as((1, n, c))?.contiguous()?;
        Ok(all.gather(&index, 0)?.squeeze(0)?)
    }

    /// `Φ_{i_k}⁻¹(y_k)` and `log |det D(Φ_{i_k}⁻¹)(y_k)|` (zeros when volume preserving)
    /// for one chosen map per point; shapes `(n, c)` and `(n,)`.
    pub fn invert_chosen(&self, y: &Tensor, choice: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, c) = y.dims2()?;
        let (pre, ld) = self.preimages(y)?;
        let pre = pre.reshape((self.len(), n, c))?;
        let index = choice.reshape((1, n, 1))?.broadcast_as((1, n, c))?.contiguous()?;
        let x = pre.gather(&index, 0)?.squeeze(0)?;
        let ld = match ld {
            Some(ld) => ld.gather(&choice.reshape((1, n))?.contiguous()?, 0)?.squeeze(0)?,
            None => Tensor::zeros(n, y.dtype(), y.device())?,
        };
        Ok((x, ld))
    }
}
