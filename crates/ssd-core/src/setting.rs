//! Range checks of numeric settings, shared by every crate's configuration types so that a value
//! out of range gets the same one-line error from the library and from the command line.

use std::fmt::Display;

/// A setting outside its allowed range: which setting, the range, and the value given.
///
/// Libraries name the setting after its field (`min_score`); a front end that exposes it
/// under another name (a command line flag, `--min-score`) renames it with [`SettingError::named`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be {allowed}, got {value}")]
pub struct SettingError {
    /// The setting.
    pub name: &'static str,
    /// The allowed values, in words (`in [0, 1]`, `at least 1`).
    pub allowed: &'static str,
    /// The value given, as written by `Display` (`NaN`, `0`).
    pub value: String,
}

impl SettingError {
    /// The same error under another name.
    #[must_use]
    pub fn named(self, name: &'static str) -> Self {
        Self { name, ..self }
    }

    /// The message with the setting named as the command-line flag of the same name
    /// (`min_score` is `--min-score`): one setting has one name from the field to the flag.
    pub fn as_flag(&self) -> String {
        format!(
            "--{} must be {}, got {}",
            self.name.replace('_', "-"),
            self.allowed,
            self.value
        )
    }
}

/// `Ok` when `ok`, else a [`SettingError`] for `name` with `value`. `ok` is the range test
/// itself, written so that NaN fails it (`(0.0..=1.0).contains(&v)`, not `!(v < 0.0)`).
pub fn check_setting(
    name: &'static str,
    ok: bool,
    allowed: &'static str,
    value: impl Display,
) -> Result<(), SettingError> {
    if ok {
        Ok(())
    } else {
        Err(SettingError {
            name,
            allowed,
            value: value.to_string(),
        })
    }
}

/// `value` (`f32` or `f64`, said as given) in the closed unit interval `[0, 1]` (NaN is not).
pub fn unit_interval<T: Into<f64> + Display + Copy>(
    name: &'static str,
    value: T,
) -> Result<(), SettingError> {
    check_setting(
        name,
        (0.0..=1.0).contains(&value.into()),
        "in [0, 1]",
        value,
    )
}

/// `value` (`f32` or `f64`) in `(0, 1]`: an IoU threshold (NaN is not).
pub fn iou_threshold<T: Into<f64> + Display + Copy>(
    name: &'static str,
    value: T,
) -> Result<(), SettingError> {
    let v: f64 = value.into();
    check_setting(name, v > 0.0 && v <= 1.0, "in (0, 1]", value)
}

/// A count of at least 1.
pub fn at_least_one(name: &'static str, value: usize) -> Result<(), SettingError> {
    check_setting(name, value >= 1, "at least 1", value)
}

/// Most loading threads a setting may ask for: each holds a few batches in memory, so a typo
/// (`--workers 4000`) would exhaust it long before it helped.
pub const MAX_WORKERS: usize = 256;

/// A number of loading threads: `1..=MAX_WORKERS`.
pub fn workers(name: &'static str, value: usize) -> Result<(), SettingError> {
    check_setting(
        name,
        (1..=MAX_WORKERS).contains(&value),
        "in 1..=256",
        value,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_nan_and_name_the_setting() {
        assert!(unit_interval("s", 0.0).is_ok() && unit_interval("s", 1.0).is_ok());
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let e = unit_interval("score", bad).expect_err("out of range");
            assert_eq!(e.to_string(), format!("score must be in [0, 1], got {bad}"));
        }
        assert!(iou_threshold("iou", 0.0).is_err() && iou_threshold("iou", f64::NAN).is_err());
        assert!(iou_threshold("iou", 1.0).is_ok() && iou_threshold("iou", 2.0).is_err());
        assert!(at_least_one("k", 0).is_err() && at_least_one("k", 1).is_ok());
        assert!(workers("w", 0).is_err() && workers("w", MAX_WORKERS + 1).is_err());
        let e = at_least_one("top_k", 0).expect_err("zero").named("--top-k");
        assert_eq!(e.to_string(), "--top-k must be at least 1, got 0");
    }
}
