//! Published test NLLs on the earth data sets (nats w.r.t. the surface measure
//! of S²); sources in `docs/literature.md`.

/// One published row: method and NLL per data set (volcano, earthquake, flood, fire).
pub struct Published {
    /// Method name.
    pub method: &'static str,
    /// `[volcano, earthquake, flood, fire]`, `None` where not reported.
    pub nll: [Option<f64>; 4],
}

/// The rows printed beside our measurements.
pub const PUBLISHED: &[Published] = &[
    Published { method: "Uniform density", nll: [Some(2.531), Some(2.531), Some(2.531), Some(2.531)] },
    Published { method: "Moser Flow", nll: [Some(-2.02), Some(-0.09), Some(0.62), Some(-1.03)] },
    Published { method: "RSGM", nll: [Some(-4.92), Some(-0.19), Some(0.45), Some(-1.33)] },
    Published { method: "Riemannian Flow Matching", nll: [Some(-7.93), Some(-0.28), Some(0.42), Some(-1.86)] },
    Published { method: "EGF (paper)", nll: [Some(-2.31), Some(-0.12), Some(0.56), None] },
];
