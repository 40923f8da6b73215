//! # egf-manifold
//!
//! The compact spaces on which Ergodic Generative Flows live (spec section 1 of
//! `egf-spec.md`): the flat torus `T^d = R^d / Z^d`, stored as coordinates in
//! `[0, 1)^d`, and the unit sphere `S^d ⊂ R^(d+1)`, stored as unit vectors.
//!
//! Every density in this workspace is taken with respect to the manifold's
//! reference measure `λ`: Lebesgue measure on `T^d` (total volume 1) and the
//! Riemannian surface measure on `S^d` (total volume `vol(S^2) = 4π`).
//! Log-likelihoods are in nats with respect to `λ`.
//!
//! The crate offers
//! * [`Manifold`]: dimensions, volume, uniform sampling, projection, membership
//!   checks, geodesic distance and small perturbations, both batched on candle
//!   [`Tensor`](candle_core::Tensor)s (any device) and as exact `f64` references;
//! * [`QuadratureGrid`]: points and weights that integrate smooth functions;
//! * [`coords`]: latitude/longitude ↔ unit vectors, angles ↔ torus coordinates;
//! * [`random`]: host-seeded random tensors, identical on every device for a given seed;
//! * [`DeviceSpec`]: the tensor device as written in configs (`cpu`, `cuda:N`, `metal:N`),
//!   and [`test_device`], the device of the test suites (`EGF_TEST_DEVICE`, default CPU).

pub mod coords;
mod device;
mod error;
mod low_discrepancy;
mod manifold;
mod quadrature;
pub mod random;
pub mod tensor_util;

pub use device::{test_device, test_device_spec, DeviceSpec, TEST_DEVICE_VAR};
pub use error::{ManifoldError, Result};
pub use manifold::Manifold;
pub use quadrature::{gauss_legendre, QuadratureGrid};
