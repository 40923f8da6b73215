//! Serializable descriptions of maps and families, for configs and checkpoints.
//!
//! In TOML a family is written either as a preset, a list of maps, or both
//! (the maps are appended to the preset's):
//! ```toml
//! [family]
//! preset = { name = "sphere_axis_rotations", angle = 0.7853981633974483 }
//! [[family.maps]]
//! kind = "sphere_mobius"
//! center = [0.0, 0.0, 0.3]
//! learnable = true   # optional: w is trained with the model, starting here
//! ```

use std::f64::consts::SQRT_2;
use std::sync::Arc;

use candle_core::{DType, Device};
use egf_manifold::Manifold;
use serde::{Deserialize, Serialize};

use crate::{
    DiffeoError, Diffeomorphism, LearnableSphereMobius, Result, SphereMobius, SphereRotation, TorusAffine, TorusShear,
    TorusTranslation, TorusWarp,
};

/// One diffeomorphism, by kind and parameters (see the crate docs for the formulas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiffeoSpec {
    /// [`TorusTranslation`] by `shift`.
    TorusTranslation {
        /// `b ∈ R^d`.
        shift: Vec<f64>,
    },
    /// [`TorusAffine`] `x ↦ A x + b`.
    TorusAffine {
        /// `A` row by row; integer entries, `det A = 1`.
        matrix: Vec<Vec<f64>>,
        /// `b`; empty means zero.
        #[serde(default)]
        shift: Vec<f64>,
    },
    /// [`TorusShear`] `x_target ↦ x_target + amplitude · sin(2π(x_source + phase))`.
    TorusShear {
        /// Torus dimension `d`.
        dim: usize,
        /// Moved coordinate `j`.
        target: usize,
        /// Driving coordinate `k ≠ j`.
        source: usize,
        /// `a`.
        amplitude: f64,
        /// `c`.
        #[serde(default)]
        phase: f64,
    },
    /// [`TorusWarp`] with one amplitude per coordinate.
    TorusWarp {
        /// `a_j`, each `|a_j| < 1`.
        amplitudes: Vec<f64>,
    },
    /// [`SphereRotation`] by a matrix in `SO(d+1)`.
    SphereRotation {
        /// `R` row by row.
        matrix: Vec<Vec<f64>>,
    },
    /// [`SphereRotation`] of `S^2` about an axis (right-hand rule).
    SphereAxisRotation {
        /// Rotation axis (normalized on use).
        axis: [f64; 3],
        /// Angle in radians.
        angle: f64,
    },
    /// [`SphereMobius`] with parameter `w`, or with `learnable = true` a
    /// [`LearnableSphereMobius`] starting at `w`.
    SphereMobius {
        /// `w`, `|w| < 1` (the initial value when learnable).
        center: Vec<f64>,
        /// Whether `w` is trained with the model.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        learnable: bool,
    },
}

impl DiffeoSpec {
    /// Builds the map and checks that it acts on `manifold`; the variables of a
    /// learnable map are `f64` on the CPU (see [`build_on`](Self::build_on)).
    pub fn build(&self, manifold: Manifold) -> Result<Arc<dyn Diffeomorphism>> {
        self.build_on(manifold, DType::F64, &Device::Cpu)
    }

    /// [`build`](Self::build) with the variables of a learnable map of `dtype` on `device`.
    pub fn build_on(&self, manifold: Manifold, dtype: DType, device: &Device) -> Result<Arc<dyn Diffeomorphism>> {
        let map: Arc<dyn Diffeomorphism> = match self {
            DiffeoSpec::TorusTranslation { shift } => Arc::new(TorusTranslation::new(shift.clone())?),
            DiffeoSpec::TorusAffine { matrix, shift } => Arc::new(TorusAffine::new(matrix, shift.clone())?),
            DiffeoSpec::TorusShear { dim, target, source, amplitude, phase } => {
                Arc::new(TorusShear::new(*dim, *target, *source, *amplitude, *phase)?)
            }
            DiffeoSpec::TorusWarp { amplitudes } => Arc::new(TorusWarp::new(amplitudes.clone())?),
            DiffeoSpec::SphereRotation { matrix } => Arc::new(SphereRotation::new(matrix)?),
            DiffeoSpec::SphereAxisRotation { axis, angle } => Arc::new(SphereRotation::about_axis(*axis, *angle)?),
            DiffeoSpec::SphereMobius { center, learnable: false } => Arc::new(SphereMobius::new(center.clone())?),
            DiffeoSpec::SphereMobius { center, learnable: true } => {
                Arc::new(LearnableSphereMobius::new(center.clone(), dtype, device)?)
            }
        };
        if map.manifold() != manifold {
            return Err(DiffeoError::ManifoldMismatch {
                map: self.kind_name(),
                expected: map.manifold().to_string(),
                got: manifold.to_string(),
            });
        }
        Ok(map)
    }

    /// The `kind` tag, as written in configs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            DiffeoSpec::TorusTranslation { .. } => "torus_translation",
            DiffeoSpec::TorusAffine { .. } => "torus_affine",
            DiffeoSpec::TorusShear { .. } => "torus_shear",
            DiffeoSpec::TorusWarp { .. } => "torus_warp",
            DiffeoSpec::SphereRotation { .. } => "sphere_rotation",
            DiffeoSpec::SphereAxisRotation { .. } => "sphere_axis_rotation",
            DiffeoSpec::SphereMobius { .. } => "sphere_mobius",
        }
    }
}

/// Named families of the paper and of the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preset {
    /// The two generators of `SL_2(Z)`, `A1 = [[1,1],[0,1]]`, `A2 = [[1,0],[1,1]]`,
    /// and their inverses, on `T^2` (`p = 4`): the paper's family. It fixes 0 and
    /// every finite set of rational points of a given denominator (spec section 2).
    TorusSl2z,
    /// [`Preset::TorusSl2z`] plus translations by `±(√2 − 1)` along each axis
    /// (`p = 8`): no finite orbits; the family to model with.
    TorusSl2zIrrational,
    /// Rotations of `S^2` by `±angle` about the three coordinate axes (`p = 6`);
    /// for `angle = π/4` they generate a dense subgroup of `SO(3)`.
    SphereAxisRotations {
        /// Angle in radians.
        angle: f64,
    },
}

impl Preset {
    /// The manifold the preset lives on.
    pub fn manifold(&self) -> Manifold {
        match self {
            Preset::TorusSl2z | Preset::TorusSl2zIrrational => Manifold::Torus { dim: 2 },
            Preset::SphereAxisRotations { .. } => Manifold::Sphere { dim: 2 },
        }
    }

    /// The maps of the preset, in a fixed order.
    pub fn maps(&self) -> Vec<DiffeoSpec> {
        let affine = |m: [[f64; 2]; 2]| DiffeoSpec::TorusAffine {
            matrix: m.iter().map(|r| r.to_vec()).collect(),
            shift: vec![],
        };
        let sl2z = vec![
            affine([[1.0, 1.0], [0.0, 1.0]]),
            affine([[1.0, -1.0], [0.0, 1.0]]),
            affine([[1.0, 0.0], [1.0, 1.0]]),
            affine([[1.0, 0.0], [-1.0, 1.0]]),
        ];
        match self {
            Preset::TorusSl2z => sl2z,
            Preset::TorusSl2zIrrational => {
                let s = SQRT_2 - 1.0;
                let mut maps = sl2z;
                for shift in [[s, 0.0], [-s, 0.0], [0.0, s], [0.0, -s]] {
                    maps.push(DiffeoSpec::TorusTranslation { shift: shift.to_vec() });
                }
                maps
            }
            Preset::SphereAxisRotations { angle } => {
                let mut maps = Vec::with_capacity(6);
                for axis in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
                    maps.push(DiffeoSpec::SphereAxisRotation { axis, angle: *angle });
                    maps.push(DiffeoSpec::SphereAxisRotation { axis, angle: -*angle });
                }
                maps
            }
        }
    }
}

/// A family `Φ_1 … Φ_p`: the maps of an optional preset followed by `maps`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySpec {
    /// A named family, expanded first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Further maps, appended in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<DiffeoSpec>,
}

impl FamilySpec {
    /// The family of a preset alone.
    pub fn preset(preset: Preset) -> Self {
        Self { preset: Some(preset), maps: vec![] }
    }

    /// The paper's torus family ([`Preset::TorusSl2z`]).
    pub fn torus_sl2z() -> Self {
        Self::preset(Preset::TorusSl2z)
    }

    /// The torus family to model with ([`Preset::TorusSl2zIrrational`]).
    pub fn torus_sl2z_irrational() -> Self {
        Self::preset(Preset::TorusSl2zIrrational)
    }

    /// The paper's sphere family ([`Preset::SphereAxisRotations`]) with the given angle in radians.
    pub fn sphere_axis_rotations(angle: f64) -> Self {
        Self::preset(Preset::SphereAxisRotations { angle })
    }

    /// All map specs, preset first.
    pub fn expanded(&self) -> Vec<DiffeoSpec> {
        let mut all = self.preset.as_ref().map(Preset::maps).unwrap_or_default();
        all.extend(self.maps.iter().cloned());
        all
    }
}
