//! Value parsers of the numeric options: every number is checked when the command line is
//! parsed, so a NaN, an infinity, a negative count or a zero cadence is refused with the
//! option's name and the rule instead of reaching a trainer (clap prefixes the message with
//! `invalid value '...' for '--option <VALUE>'`). Options using them accept a leading minus
//! sign as a value (`allow_hyphen_values`), so `--steps -1` is reported as a negative
//! number rather than as an unknown option.

use std::str::FromStr;

/// A whole number (any size the type holds).
fn whole<T: FromStr>(s: &str) -> Result<T, String> {
    let s = s.trim();
    s.parse::<T>().map_err(|_| {
        if s.starts_with('-') {
            "must not be negative".to_string()
        } else {
            "must be a whole number".to_string()
        }
    })
}

/// A whole number >= 0 (seeds, optional extras such as `--variations`).
pub fn count0<T: FromStr>(s: &str) -> Result<T, String> {
    whole(s)
}

/// A whole number >= 1 (steps, batch sizes, cadences, sizes).
pub fn count<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let v: T = whole(s)?;
    if v < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(v)
}

fn finite<T: FromStr + Into<f64> + Copy>(s: &str) -> Result<T, String> {
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| "must be a number".to_string())?;
    if !v.into().is_finite() {
        return Err("must be a finite number (not NaN or infinite)".into());
    }
    Ok(v)
}

/// A finite number > 0 (learning rates, time budgets, scales).
pub fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = finite(s)?;
    if v <= 0.0 {
        return Err("must be greater than 0".into());
    }
    Ok(v)
}

/// A finite number > 0, single precision (pen widths).
pub fn positive_f32(s: &str) -> Result<f32, String> {
    let v: f32 = finite(s)?;
    if v <= 0.0 {
        return Err("must be greater than 0".into());
    }
    Ok(v)
}

/// A finite number >= 0 (loss weights, regularisation strengths).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = finite(s)?;
    if v < 0.0 {
        return Err("must be 0 or greater".into());
    }
    Ok(v)
}

/// A probability or score threshold in [0, 1].
pub fn probability(s: &str) -> Result<f32, String> {
    let v: f32 = finite(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err("must lie in [0, 1]".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_with_a_reason() {
        assert_eq!(count::<u64>("3"), Ok(3));
        assert_eq!(count::<usize>("0").unwrap_err(), "must be at least 1");
        assert_eq!(count::<u64>("-1").unwrap_err(), "must not be negative");
        assert_eq!(count::<u32>("2.5").unwrap_err(), "must be a whole number");
        assert_eq!(count0::<u64>("0"), Ok(0));
        assert_eq!(positive("2e-4"), Ok(2e-4));
        for bad in ["NaN", "inf", "-inf"] {
            assert!(positive(bad).unwrap_err().contains("finite"), "{bad}");
            assert!(non_negative(bad).unwrap_err().contains("finite"), "{bad}");
            assert!(probability(bad).unwrap_err().contains("finite"), "{bad}");
        }
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(non_negative("-0.5").is_err());
        assert!(probability("1.5").is_err());
        assert_eq!(probability("0.35"), Ok(0.35));
        assert!(positive_f32("0").is_err());
        assert!(positive("ten").unwrap_err().contains("number"));
    }
}
