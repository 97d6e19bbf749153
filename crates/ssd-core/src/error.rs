//! The error type of `ssd-core`.

use crate::CornerBox;

/// What can go wrong in the geometry core. Every variant names the offending item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A box without a finite, positive width and height where one is required (encoding a
    /// ground truth would take `ln(0)`).
    #[error("box {index} is degenerate (zero-area, inverted or not finite): {bbox:?}")]
    DegenerateBox {
        /// Index of the box in the list the caller passed.
        index: usize,
        /// The box itself.
        bbox: CornerBox,
    },
    /// Two lists that must be parallel differ in length.
    #[error("{what}: expected {expected} entries (one per box), found {found}")]
    LengthMismatch {
        /// Which list is wrong.
        what: &'static str,
        /// Its expected length.
        expected: usize,
        /// Its actual length.
        found: usize,
    },
    /// A ground-truth label of 0, which is reserved for the background.
    #[error("ground truth {index} has label 0, which is reserved for the background")]
    BackgroundLabel {
        /// Index of the ground truth.
        index: usize,
    },
    /// A [`crate::PriorConfig`] whose lists disagree or whose sizes are not positive.
    #[error("invalid prior configuration: {0}")]
    InvalidPriorConfig(String),
}
