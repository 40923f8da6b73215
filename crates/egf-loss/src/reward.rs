//! Rewards for the reinforcement-learning objectives (spec section 5): an
//! unnormalized density `R ≥ 0` with respect to the reference measure `λ`, given
//! through its logarithm.

use candle_core::{DType, Tensor};

use crate::{LossError, Result};

/// An unnormalized target density `R ≥ 0` on the model's manifold (spec section 5),
/// given by `log R`.
///
/// `log_reward(x)` maps a batch `(n, ambient_dim)` to `(n,)` values of `log R(x)`;
/// where `R(x) = 0` it is `−∞` (never NaN), and the losses treat that case
/// explicitly (each function says how). `+∞` and NaN are not allowed. The reward has
/// no trainable parameters: its output is detached.
///
/// Every `Fn(&Tensor) -> Result<Tensor>` is a reward, so a closure will do; wrap the
/// errors of another crate with [`LossError::reward`].
pub trait RewardFn {
    /// `log R(x)` for a batch `(n, ambient_dim)`: shape `(n,)`, `−∞` where `R = 0`.
    fn log_reward(&self, x: &Tensor) -> Result<Tensor>;
}

impl<F> RewardFn for F
where
    F: Fn(&Tensor) -> Result<Tensor>,
{
    fn log_reward(&self, x: &Tensor) -> Result<Tensor> {
        self(x)
    }
}

/// Calls `reward` on `x` (`n` points) and checks its output: shape `(n,)` (an `(n, 1)`
/// column is accepted), converted to `dtype`, detached.
pub(crate) fn eval_log_reward(reward: &dyn RewardFn, x: &Tensor, n: usize, dtype: DType) -> Result<Tensor> {
    let r = reward.log_reward(x)?;
    let r = match r.dims() {
        [m] if *m == n => r,
        [m, 1] if *m == n => r.squeeze(1)?,
        dims => {
            return Err(LossError::input(
                "log_reward",
                format!("the reward returned shape {dims:?} for {n} points; expected ({n},)"),
            ))
        }
    };
    Ok(r.to_dtype(dtype)?.detach())
}
