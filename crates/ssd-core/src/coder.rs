//! The variance box coder of SSD (paper eq. 2; Caffe `EncodeBBox` with `variance_encoded_in_target
//! = false`).

use crate::{CenterBox, CoreError, CornerBox};

/// Encodes ground-truth boxes as offsets from prior boxes, and decodes predicted offsets back.
///
/// For a ground truth `g` (centre form) and a prior `d`:
/// `((g.cx - d.cx) / (v0 * d.w), (g.cy - d.cy) / (v0 * d.h), ln(g.w / d.w) / v1, ln(g.h / d.h) / v1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCoder {
    /// `[centre variance, size variance]`; `[0.1, 0.2]` in the paper's code.
    pub variances: [f32; 2],
}

impl Default for BoxCoder {
    /// The SSD variances `(0.1, 0.2)` (Caffe `ssd_pascal.py`, `prior_variance`).
    fn default() -> Self {
        Self {
            variances: [0.1, 0.2],
        }
    }
}

impl BoxCoder {
    /// A coder with the given `[centre, size]` variances.
    pub const fn new(variances: [f32; 2]) -> Self {
        Self { variances }
    }

    /// Encodes a ground-truth corner box against a prior: `[dx, dy, dw, dh]`.
    ///
    /// A ground truth without a finite positive width and height would need `ln(0)` (or worse); it
    /// is refused with [`CoreError::DegenerateBox`] (index 0: callers that encode lists report
    /// their own index). A prior with zero width or height is refused the same way.
    pub fn encode(&self, gt: &CornerBox, prior: &CenterBox) -> Result<[f32; 4], CoreError> {
        if !gt.is_proper() {
            return Err(CoreError::DegenerateBox {
                index: 0,
                bbox: *gt,
            });
        }
        if !(prior.w > 0.0 && prior.h > 0.0) {
            return Err(CoreError::DegenerateBox {
                index: 0,
                bbox: prior.to_corner(),
            });
        }
        Ok(self.encode_proper(gt, prior))
    }

    /// [`BoxCoder::encode`] for boxes already checked to be proper.
    pub(crate) fn encode_proper(&self, gt: &CornerBox, prior: &CenterBox) -> [f32; 4] {
        let [v0, v1] = self.variances;
        let g = gt.to_center();
        [
            (g.cx - prior.cx) / (v0 * prior.w),
            (g.cy - prior.cy) / (v0 * prior.h),
            (g.w / prior.w).ln() / v1,
            (g.h / prior.h).ln() / v1,
        ]
    }

    /// Decodes predicted offsets `[dx, dy, dw, dh]` against a prior into a centre-form box.
    pub fn decode_center(&self, loc: [f32; 4], prior: &CenterBox) -> CenterBox {
        let [v0, v1] = self.variances;
        CenterBox::new(
            prior.cx + loc[0] * v0 * prior.w,
            prior.cy + loc[1] * v0 * prior.h,
            prior.w * (loc[2] * v1).exp(),
            prior.h * (loc[3] * v1).exp(),
        )
    }

    /// Decodes predicted offsets `[dx, dy, dw, dh]` against a prior into a corner box.
    pub fn decode(&self, loc: [f32; 4], prior: &CenterBox) -> CornerBox {
        self.decode_center(loc, prior).to_corner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_known_values() {
        let coder = BoxCoder::default();
        let prior = CenterBox::new(0.5, 0.5, 0.2, 0.4);
        let gt = CornerBox::new(0.45, 0.4, 0.65, 0.6); // centre (0.55, 0.5), size (0.2, 0.2)
        let e = coder.encode(&gt, &prior).unwrap_or_default();
        let want = [0.05 / 0.02, 0.0, 0.0, (0.5f32).ln() / 0.2];
        for (a, b) in e.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{e:?} vs {want:?}");
        }
    }

    #[test]
    fn degenerate_ground_truth_is_an_error_not_a_nan() {
        let coder = BoxCoder::default();
        let prior = CenterBox::new(0.5, 0.5, 0.2, 0.4);
        for gt in [
            CornerBox::new(0.3, 0.3, 0.3, 0.5),
            CornerBox::new(0.5, 0.3, 0.3, 0.5),
            CornerBox::new(0.1, f32::NAN, 0.3, 0.5),
        ] {
            assert!(matches!(
                coder.encode(&gt, &prior),
                Err(CoreError::DegenerateBox { .. })
            ));
        }
    }
}
