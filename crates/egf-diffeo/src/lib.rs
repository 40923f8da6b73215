//! # egf-diffeo
//!
//! Diffeomorphisms `Φ: S → S` of tori and spheres, with their inverses and the
//! log-determinants of their Jacobians with respect to the manifold's reference
//! measure `λ`, and finite families `Φ_1 … Φ_p` of them (spec section 2 of
//! `egf-spec.md`).
//!
//! | map | space | formula | `log |det DΦ(x)|` |
//! |---|---|---|---|
//! | [`TorusTranslation`] | `T^d` | `x + b mod 1` | 0 |
//! | [`TorusAffine`] | `T^d` | `A x + b mod 1`, `A ∈ SL_d(Z)` | 0 |
//! | [`TorusShear`] | `T^d` | `x_j ↦ x_j + a sin(2π(x_k + c))` | 0 |
//! | [`TorusWarp`] | `T^d` | `x_j ↦ x_j + a_j sin(2π x_j)/(2π)` | `Σ_j log(1 + a_j cos 2π x_j)` |
//! | [`SphereRotation`] | `S^d` | `R x`, `R ∈ SO(d+1)` | 0 |
//! | [`SphereMobius`] | `S^d` | `(1−|w|²)/|x−w|² (x−w) − w` | `d log((1−|w|²)/|x−w|²)` |
//! | [`LearnableSphereMobius`] | `S^d` | the same, `w = v/√(1+|v|²)` with `v` learned | the same |
//!
//! Every map works batched on candle tensors of shape `(n, ambient_dim)` on any
//! device and has an exact `f64` reference. Families are described by the
//! serde-serializable [`FamilySpec`], so that configs and checkpoints can name them.
//!
//! [`ergodicity`] checks that the uniform random walk on a family mixes (the
//! condition for the model to reach every target density) and warns about
//! finite orbits (spec section 2); [`Family::ergodicity_warning`] is the one-call check.

pub mod ergodicity;
mod error;
mod family;
mod spec;
mod sphere;
mod torus;
mod traits;

pub use error::{DiffeoError, Result};
pub use family::Family;
pub use spec::{DiffeoSpec, FamilySpec, Preset};
pub use sphere::{LearnableSphereMobius, SphereMobius, SphereRotation};
pub use torus::{TorusAffine, TorusShear, TorusTranslation, TorusWarp};
pub use traits::Diffeomorphism;
