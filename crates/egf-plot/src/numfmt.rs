//! Number formatting for tables and figure labels.

/// `v` with `sig` significant digits: fixed notation for magnitudes in `[1e-3, 1e5)`,
/// scientific otherwise; `nan`, `inf`, `-inf` spelled out.
pub fn sig(v: f64, sig: usize) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if (-3..5).contains(&mag) {
        let decimals = (sig as i32 - 1 - mag).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.prec$e}", prec = sig.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::sig;

    #[test]
    fn formats() {
        assert_eq!(sig(1.23456, 3), "1.23");
        assert_eq!(sig(-0.0123456, 3), "-0.0123");
        assert_eq!(sig(123.456, 3), "123");
        assert_eq!(sig(1.5e-7, 3), "1.50e-7");
        assert_eq!(sig(0.0, 3), "0");
        assert_eq!(sig(f64::NAN, 3), "nan");
        assert_eq!(sig(f64::NEG_INFINITY, 3), "-inf");
    }
}
