//! Box types and intersection-over-union.
//!
//! Inside `ssd` boxes are continuous `f32` coordinates normalised to `[0, 1]` by the image width
//! and height (or plain pixels, as long as both boxes of a comparison use the same unit). There is
//! no `+1` anywhere here: the VOC devkit's pixel convention lives only in `ssd-eval`.

/// A box in corner form `(xmin, ymin, xmax, ymax)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CornerBox {
    /// Left edge.
    pub xmin: f32,
    /// Top edge.
    pub ymin: f32,
    /// Right edge.
    pub xmax: f32,
    /// Bottom edge.
    pub ymax: f32,
}

/// A box in center form `(cx, cy, w, h)`, the form of prior boxes and of the box coder.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CenterBox {
    /// Horizontal centre.
    pub cx: f32,
    /// Vertical centre.
    pub cy: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl CornerBox {
    /// A box from its corners.
    pub const fn new(xmin: f32, ymin: f32, xmax: f32, ymax: f32) -> Self {
        Self {
            xmin,
            ymin,
            xmax,
            ymax,
        }
    }

    /// The corners as `[xmin, ymin, xmax, ymax]`.
    pub const fn to_array(self) -> [f32; 4] {
        [self.xmin, self.ymin, self.xmax, self.ymax]
    }

    /// Width, `xmax - xmin` (negative for an inverted box).
    pub fn width(&self) -> f32 {
        self.xmax - self.xmin
    }

    /// Height, `ymax - ymin` (negative for an inverted box).
    pub fn height(&self) -> f32 {
        self.ymax - self.ymin
    }

    /// Area; 0 for an empty or inverted box (never negative).
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// True when the box has a finite, strictly positive width and height: the boxes that can be
    /// encoded against a prior without reaching `ln(0)`.
    pub fn is_proper(&self) -> bool {
        let finite = self.to_array().iter().all(|v| v.is_finite());
        finite && self.width() > 0.0 && self.height() > 0.0
    }

    /// The box clamped to `[0, 1]` on both axes.
    pub fn clamp_unit(&self) -> Self {
        Self::new(
            self.xmin.clamp(0.0, 1.0),
            self.ymin.clamp(0.0, 1.0),
            self.xmax.clamp(0.0, 1.0),
            self.ymax.clamp(0.0, 1.0),
        )
    }

    /// The centre form of this box.
    pub fn to_center(&self) -> CenterBox {
        CenterBox::from(*self)
    }
}

impl From<[f32; 4]> for CornerBox {
    fn from([xmin, ymin, xmax, ymax]: [f32; 4]) -> Self {
        Self::new(xmin, ymin, xmax, ymax)
    }
}

impl CenterBox {
    /// A box from its centre and size.
    pub const fn new(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self { cx, cy, w, h }
    }

    /// The values as `[cx, cy, w, h]`.
    pub const fn to_array(self) -> [f32; 4] {
        [self.cx, self.cy, self.w, self.h]
    }

    /// Area, `w * h` clamped at 0.
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// The corner form of this box (`cx - w/2, cy - h/2, cx + w/2, cy + h/2`, as amdegroot's
    /// `point_form`).
    pub fn to_corner(&self) -> CornerBox {
        CornerBox::from(*self)
    }
}

impl From<CenterBox> for CornerBox {
    fn from(b: CenterBox) -> Self {
        let (hw, hh) = (b.w / 2.0, b.h / 2.0);
        Self::new(b.cx - hw, b.cy - hh, b.cx + hw, b.cy + hh)
    }
}

impl From<CornerBox> for CenterBox {
    fn from(b: CornerBox) -> Self {
        Self::new(
            (b.xmin + b.xmax) / 2.0,
            (b.ymin + b.ymax) / 2.0,
            b.width(),
            b.height(),
        )
    }
}

/// Intersection over union of two corner boxes, with no `+1`.
///
/// The arithmetic follows torchvision's `box_iou` step for step in `f32`
/// (`inter / (area_a + area_b - inter)`), so the results agree bit for bit on proper boxes.
/// Two empty boxes (union 0) have IoU 0, not NaN.
pub fn iou(a: &CornerBox, b: &CornerBox) -> f32 {
    iou_with_area(a, a.area(), b, b.area())
}

/// [`iou`] with both areas already known (for the inner loops of NMS and matching).
pub(crate) fn iou_with_area(a: &CornerBox, area_a: f32, b: &CornerBox, area_b: f32) -> f32 {
    let iw = (a.xmax.min(b.xmax) - a.xmin.max(b.xmin)).max(0.0);
    let ih = (a.ymax.min(b.ymax) - a.ymin.max(b.ymin)).max(0.0);
    let inter = iw * ih;
    let union = area_a + area_b - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// IoU of every box of `a` with every box of `b`, row-major `[a.len() x b.len()]`:
/// element `i * b.len() + j` is `iou(&a[i], &b[j])`.
pub fn iou_matrix(a: &[CornerBox], b: &[CornerBox]) -> Vec<f32> {
    let areas_b: Vec<f32> = b.iter().map(CornerBox::area).collect();
    let mut out = Vec::with_capacity(a.len() * b.len());
    for box_a in a {
        let area_a = box_a.area();
        out.extend(
            b.iter()
                .zip(&areas_b)
                .map(|(box_b, &area_b)| iou_with_area(box_a, area_a, box_b, area_b)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let c = CornerBox::new(0.1, 0.2, 0.5, 0.9);
        let back = c.to_center().to_corner();
        for (x, y) in c.to_array().iter().zip(back.to_array()) {
            assert!((x - y).abs() < 1e-6);
        }
        assert!((c.area() - 0.4 * 0.7).abs() < 1e-6);
    }

    #[test]
    fn inverted_box_has_zero_area_and_is_not_proper() {
        let b = CornerBox::new(0.5, 0.5, 0.2, 0.9);
        assert_eq!(b.area(), 0.0);
        assert!(!b.is_proper());
        assert!(!CornerBox::new(0.0, 0.0, f32::NAN, 1.0).is_proper());
        assert!(CornerBox::new(0.0, 0.0, 0.1, 0.1).is_proper());
    }

    #[test]
    fn iou_of_two_empty_boxes_is_zero() {
        let e = CornerBox::new(0.3, 0.3, 0.3, 0.3);
        assert_eq!(iou(&e, &e), 0.0);
    }

    #[test]
    fn iou_exact_half() {
        let a = CornerBox::new(0.0, 0.0, 2.0, 2.0);
        let b = CornerBox::new(0.0, 0.0, 2.0, 1.0);
        assert_eq!(iou(&a, &b), 0.5);
        assert_eq!(iou(&a, &a), 1.0);
    }

    #[test]
    fn iou_matrix_is_row_major() {
        let a = [
            CornerBox::new(0.0, 0.0, 1.0, 1.0),
            CornerBox::new(2.0, 2.0, 3.0, 3.0),
        ];
        let b = [
            CornerBox::new(0.0, 0.0, 1.0, 1.0),
            CornerBox::new(0.0, 0.0, 2.0, 1.0),
            CornerBox::new(2.0, 2.0, 3.0, 3.0),
        ];
        let m = iou_matrix(&a, &b);
        assert_eq!(m, vec![1.0, 0.5, 0.0, 0.0, 0.0, 1.0]);
    }
}
