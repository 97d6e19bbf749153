//! Prior (default) boxes, SSD paper §2.2 "Choosing scales and aspect ratios for default boxes".

use crate::{CenterBox, CoreError};

/// Where the prior boxes of an SSD model sit: one entry per feature-map level.
///
/// Only independent parameters are stored; the number of boxes per location is derived as
/// `2 + 2 * aspect_ratios[level].len()` (a min-size square, a `sqrt(min * max)` square, and a
/// `(r, 1/r)` pair per extra aspect ratio `r`).
///
/// Order of [`PriorConfig::priors`]: level by level; within a level row (y) outer, column (x)
/// inner; within a location the min-size square, the `sqrt(min * max)` square, then for each
/// aspect ratio `r`: `(s * sqrt r, s / sqrt r)` and `(s / sqrt r, s * sqrt r)`. This is the order of
/// amdegroot's `PriorBox`, lufficc's `PriorBox` and the Caffe original, so their head weights line
/// up with these priors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorConfig {
    /// Side of the square network input, in pixels (300 for SSD300).
    pub image_size: u32,
    /// Side of each square feature map, in cells (38, 19, 10, 5, 3, 1 for SSD300).
    pub feature_maps: Vec<u32>,
    /// Stride of each level in input pixels; cell centres are at `(j + 0.5) * step / image_size`.
    pub steps: Vec<f64>,
    /// Min box size of each level, in input pixels.
    pub min_sizes: Vec<f64>,
    /// Max box size of each level, in input pixels (the second square is `sqrt(min * max)`).
    pub max_sizes: Vec<f64>,
    /// Extra aspect ratios of each level (each `r` adds `r` and `1/r`).
    pub aspect_ratios: Vec<Vec<f64>>,
    /// Which coordinates are clamped to `[0, 1]` (see [`PriorClip`]).
    pub clip: PriorClip,
}

/// Which coordinates of each prior are clamped to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PriorClip {
    /// Nothing: the Caffe original.
    None,
    /// Width and height only: torchvision's `DefaultBoxGenerator` (centres of the last column of
    /// a level may exceed 1).
    Sizes,
    /// `cx, cy, w, h`: amdegroot and lufficc, and what their trained weights expect.
    All,
}

impl PriorConfig {
    /// SSD300 on PASCAL VOC (SSD paper; Caffe `ssd_pascal.py`): 8732 priors.
    pub fn ssd300_voc() -> Self {
        Self {
            image_size: 300,
            feature_maps: vec![38, 19, 10, 5, 3, 1],
            steps: vec![8.0, 16.0, 32.0, 64.0, 100.0, 300.0],
            min_sizes: vec![30.0, 60.0, 111.0, 162.0, 213.0, 264.0],
            max_sizes: vec![60.0, 111.0, 162.0, 213.0, 264.0, 315.0],
            aspect_ratios: vec![
                vec![2.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0],
                vec![2.0],
            ],
            clip: PriorClip::All,
        }
    }

    /// SSD512 on PASCAL VOC (SSD paper; Caffe `ssd_pascal_512.py`): 24564 priors.
    pub fn ssd512_voc() -> Self {
        Self {
            image_size: 512,
            feature_maps: vec![64, 32, 16, 8, 4, 2, 1],
            steps: vec![8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            min_sizes: vec![35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
            max_sizes: vec![76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.65],
            aspect_ratios: vec![
                vec![2.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0],
                vec![2.0],
            ],
            clip: PriorClip::All,
        }
    }

    /// SSD300 on COCO: the paper's COCO scales (smallest 0.07 of the image, 21 px), as lufficc/SSD's
    /// `vgg_ssd300_coco_trainval35k.yaml` (`MIN_SIZES: [21, 45, 99, 153, 207, 261]`, `MAX_SIZES:
    /// [45, 99, 153, 207, 261, 315]`) and Caffe's `ssd_coco.py`; the VOC layout otherwise.
    pub fn ssd300_coco() -> Self {
        Self {
            min_sizes: vec![21.0, 45.0, 99.0, 153.0, 207.0, 261.0],
            max_sizes: vec![45.0, 99.0, 153.0, 207.0, 261.0, 315.0],
            ..Self::ssd300_voc()
        }
    }

    /// SSD512 on COCO: lufficc/SSD's `vgg_ssd512_coco_trainval35k.yaml` (`MIN_SIZES: [20.48,
    /// 51.2, 133.12, 215.04, 296.96, 378.88, 460.8]`, `MAX_SIZES: [51.2, 133.12, 215.04, 296.96,
    /// 378.88, 460.8, 542.72]`: 0.04 to 1.06 of 512 px); the VOC layout otherwise.
    pub fn ssd512_coco() -> Self {
        Self {
            min_sizes: vec![20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8],
            max_sizes: vec![51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72],
            ..Self::ssd512_voc()
        }
    }

    /// torchvision's `ssd300_vgg16` default boxes (its COCO recipe: scales 0.07, 0.15, 0.33, 0.51,
    /// 0.69, 0.87, 1.05 of 300 px): 8732 priors in the same order as [`PriorConfig::ssd300_voc`],
    /// with smaller boxes. Detecting with torchvision-trained weights needs these priors.
    pub fn ssd300_torchvision() -> Self {
        let scales = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05];
        Self {
            min_sizes: scales[..6].iter().map(|s| s * 300.0).collect(),
            max_sizes: scales[1..].iter().map(|s| s * 300.0).collect(),
            clip: PriorClip::Sizes,
            ..Self::ssd300_voc()
        }
    }

    /// torchvision's `DefaultBoxGenerator(aspect_ratios, min_ratio, max_ratio)` for `feature_maps`
    /// on an `image_size` input without explicit steps: scales evenly from `min_ratio` to
    /// `max_ratio` over the levels and then 1, cells of `image_size / feature_map` pixels, the
    /// same `aspect_ratios` on every level, widths and heights clamped to 1.
    pub fn torchvision_default_boxes(
        image_size: u32,
        feature_maps: &[u32],
        aspect_ratios: &[f64],
        min_ratio: f64,
        max_ratio: f64,
    ) -> Self {
        let levels = feature_maps.len();
        let size = f64::from(image_size);
        let mut scales: Vec<f64> = (0..levels)
            .map(|k| {
                if levels > 1 {
                    min_ratio + (max_ratio - min_ratio) * k as f64 / (levels as f64 - 1.0)
                } else {
                    min_ratio
                }
            })
            .collect();
        scales.push(1.0);
        Self {
            image_size,
            feature_maps: feature_maps.to_vec(),
            steps: feature_maps.iter().map(|&f| size / f64::from(f)).collect(),
            min_sizes: scales[..levels].iter().map(|s| s * size).collect(),
            max_sizes: scales[1..].iter().map(|s| s * size).collect(),
            aspect_ratios: vec![aspect_ratios.to_vec(); levels],
            clip: PriorClip::Sizes,
        }
    }

    /// torchvision's `ssdlite320_mobilenet_v3_large` default boxes: ratios 2 and 3 on the six
    /// maps (20, 10, 5, 3, 2, 1) of a 320-pixel input, scales 0.2 to 0.95: 3,234 priors.
    pub fn ssdlite320() -> Self {
        Self::torchvision_default_boxes(320, &[20, 10, 5, 3, 2, 1], &[2.0, 3.0], 0.2, 0.95)
    }

    /// The same configuration with `clip` set.
    pub fn with_clip(mut self, clip: PriorClip) -> Self {
        self.clip = clip;
        self
    }

    /// Number of feature-map levels.
    pub fn num_levels(&self) -> usize {
        self.feature_maps.len()
    }

    /// Boxes per location of each level, `2 + 2 * aspect_ratios[level].len()` (4, 6, 6, 6, 4, 4
    /// for SSD300).
    pub fn boxes_per_location(&self) -> Vec<usize> {
        self.aspect_ratios.iter().map(|r| 2 + 2 * r.len()).collect()
    }

    /// Total number of priors (8732 for SSD300).
    pub fn num_priors(&self) -> usize {
        self.feature_maps
            .iter()
            .zip(self.boxes_per_location())
            .map(|(&f, b)| (f as usize) * (f as usize) * b)
            .sum()
    }

    /// Checks that every per-level list has one entry per level and that sizes are positive.
    pub fn validate(&self) -> Result<(), CoreError> {
        let levels = self.feature_maps.len();
        let lists = [
            ("steps", self.steps.len()),
            ("min_sizes", self.min_sizes.len()),
            ("max_sizes", self.max_sizes.len()),
            ("aspect_ratios", self.aspect_ratios.len()),
        ];
        for (name, len) in lists {
            if len != levels {
                return Err(CoreError::InvalidPriorConfig(format!(
                    "{name} has {len} entries but feature_maps has {levels}"
                )));
            }
        }
        if levels == 0 || self.image_size == 0 {
            return Err(CoreError::InvalidPriorConfig(
                "need at least one level and a non-zero image_size".into(),
            ));
        }
        for level in 0..levels {
            let positive = self.feature_maps[level] > 0
                && self.steps[level] > 0.0
                && self.min_sizes[level] > 0.0
                && self.max_sizes[level] > 0.0
                && self.aspect_ratios[level].iter().all(|&r| r > 0.0);
            if !positive {
                return Err(CoreError::InvalidPriorConfig(format!(
                    "level {level}: feature map, step, sizes and aspect ratios must be positive"
                )));
            }
        }
        Ok(())
    }

    /// The prior boxes, normalised to the input size, in the order described on [`PriorConfig`].
    ///
    /// Computed in `f64` and rounded to `f32` once, as amdegroot's Python does before
    /// `torch.Tensor`; with `clip` each value is then clamped to `[0, 1]`.
    pub fn priors(&self) -> Result<Vec<CenterBox>, CoreError> {
        self.validate()?;
        let size = f64::from(self.image_size);
        let mut out = Vec::with_capacity(self.num_priors());
        for level in 0..self.num_levels() {
            let cells = self.feature_maps[level];
            let f_k = size / self.steps[level];
            let s_k = self.min_sizes[level] / size;
            let s_k_prime = (s_k * (self.max_sizes[level] / size)).sqrt();
            for i in 0..cells {
                let cy = (f64::from(i) + 0.5) / f_k;
                for j in 0..cells {
                    let cx = (f64::from(j) + 0.5) / f_k;
                    let mut push = |w: f64, h: f64| out.push(self.finish(cx, cy, w, h));
                    push(s_k, s_k);
                    push(s_k_prime, s_k_prime);
                    for &r in &self.aspect_ratios[level] {
                        let sr = r.sqrt();
                        push(s_k * sr, s_k / sr);
                        push(s_k / sr, s_k * sr);
                    }
                }
            }
        }
        Ok(out)
    }

    fn finish(&self, cx: f64, cy: f64, w: f64, h: f64) -> CenterBox {
        let b = CenterBox::new(cx as f32, cy as f32, w as f32, h as f32);
        let unit = |v: f32| v.clamp(0.0, 1.0);
        match self.clip {
            PriorClip::None => b,
            PriorClip::Sizes => CenterBox::new(b.cx, b.cy, unit(b.w), unit(b.h)),
            PriorClip::All => CenterBox::new(unit(b.cx), unit(b.cy), unit(b.w), unit(b.h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn counts_match_the_paper() {
        let c300 = PriorConfig::ssd300_voc();
        assert_eq!(c300.boxes_per_location(), vec![4, 6, 6, 6, 4, 4]);
        assert_eq!(c300.num_priors(), 8732);
        assert_eq!(c300.priors().map(|p| p.len()).ok(), Some(8732));
        let c512 = PriorConfig::ssd512_voc();
        assert_eq!(c512.num_priors(), 24564);
        assert_eq!(c512.priors().map(|p| p.len()).ok(), Some(24564));
    }

    /// Hand-computed values at each level boundary of SSD300.
    #[test]
    fn ssd300_priors_at_level_boundaries() {
        let p = PriorConfig::ssd300_voc()
            .with_clip(PriorClip::None)
            .priors()
            .unwrap_or_default();
        // Level 0, cell (0, 0): centre 4/300, min square 30/300, second square sqrt(30*60)/300.
        let c = 4.0 / 300.0;
        let (s, sp) = (0.1, (0.1f64 * 0.2).sqrt());
        let r2 = 2f64.sqrt();
        let expect0 = [
            (c, c, s, s),
            (c, c, sp, sp),
            (c, c, s * r2, s / r2),
            (c, c, s / r2, s * r2),
        ];
        for (k, e) in expect0.iter().enumerate() {
            let b = p[k];
            assert!(close(b.cx, e.0) && close(b.cy, e.1) && close(b.w, e.2) && close(b.h, e.3));
        }
        // Level 0, cell (row 0, column 1): x moves first.
        assert!(close(p[4].cx, 12.0 / 300.0) && close(p[4].cy, c));
        // Last prior of level 0: row 37, column 37, fourth box.
        let last0 = p[38 * 38 * 4 - 1];
        assert!(close(last0.cx, 37.5 * 8.0 / 300.0) && close(last0.cy, 37.5 * 8.0 / 300.0));
        assert!(close(last0.w, s / r2) && close(last0.h, s * r2));
        // First prior of level 1 (19x19, step 16, sizes 60/111, ratios 2 and 3).
        let first1 = p[38 * 38 * 4];
        assert!(close(first1.cx, 8.0 / 300.0) && close(first1.w, 0.2));
        let s1 = 0.2;
        let r3 = 3f64.sqrt();
        let sixth = p[38 * 38 * 4 + 5];
        assert!(close(sixth.w, s1 / r3) && close(sixth.h, s1 * r3));
        // The single prior location of the last level: centre 0.5; second square sqrt(264*315).
        let last = &p[8732 - 4..];
        assert!(close(last[0].cx, 0.5) && close(last[0].w, 264.0 / 300.0));
        assert!(close(last[1].w, (264.0f64 * 315.0).sqrt() / 300.0));
        assert!(close(last[2].w, 0.88 * r2) && close(last[2].h, 0.88 / r2));
        assert!(last[2].w > 1.0, "unclipped prior extends past the image");
    }

    #[test]
    fn clipping_clamps_the_last_level() {
        let p = PriorConfig::ssd300_voc().priors().unwrap_or_default();
        assert_eq!(p[8732 - 2].w, 1.0);
        assert_eq!(p[8732 - 1].h, 1.0);
        assert!(
            p.iter()
                .all(|b| b.to_array().iter().all(|v| (0.0..=1.0).contains(v)))
        );
    }

    #[test]
    fn mismatched_lists_are_an_error() {
        let mut c = PriorConfig::ssd300_voc();
        c.steps.pop();
        assert!(matches!(c.priors(), Err(CoreError::InvalidPriorConfig(_))));
        let mut c = PriorConfig::ssd300_voc();
        c.min_sizes[2] = 0.0;
        assert!(matches!(
            c.validate(),
            Err(CoreError::InvalidPriorConfig(_))
        ));
    }
}
