//! From network outputs to detections: softmax, decode, per-class threshold / top-k / NMS, and a
//! cap per image.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use ssd_core::{
    BoxCoder, CenterBox, CornerBox, SettingError, at_least_one, iou_threshold, nms, top_k,
    unit_interval,
};

use crate::ModelError;

/// Post-processing thresholds; the default is the paper's test setting. The names are those of
/// `ssd detect`'s flags (`--min-score`, `--top-k`, `--nms-overlap`) and of `ssd serve`'s query.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PostProcessConfig {
    /// Per class, keep scores above this (0.01).
    pub min_score: f32,
    /// Per class, keep at most this many boxes before NMS (400).
    pub top_k_per_class: usize,
    /// Per class NMS IoU threshold (0.45): a box overlapping a better one of its class by more
    /// than this is dropped; 1 keeps every box.
    pub nms_overlap: f32,
    /// Per image, keep the best this many detections over all classes (200).
    pub top_k: usize,
}

impl Default for PostProcessConfig {
    fn default() -> Self {
        Self {
            min_score: 0.01,
            top_k_per_class: 400,
            nms_overlap: 0.45,
            top_k: 200,
        }
    }
}

impl PostProcessConfig {
    /// Checks every threshold's range: `min_score` in `[0, 1]`, `nms_overlap` in `(0, 1]`,
    /// both counts at least 1. [`PostProcessor::detect`] refuses a configuration that fails it.
    pub fn validate(&self) -> Result<(), SettingError> {
        unit_interval("min_score", self.min_score)?;
        at_least_one("top_k_per_class", self.top_k_per_class)?;
        iou_threshold("nms_overlap", self.nms_overlap)?;
        at_least_one("top_k", self.top_k)
    }
}

/// One detection in an original image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// 1-based class label (0 is background and never reported).
    pub label: usize,
    /// Softmax probability of the class.
    pub score: f32,
    /// `[xmin, ymin, xmax, ymax]` in the original image's pixels (0-based, continuous; clipped to
    /// the image). Add 1 for VOC's 1-based result files.
    pub bbox: [f32; 4],
}

/// Turns `(loc, conf)` into detections for a fixed set of priors.
#[derive(Debug, Clone)]
pub struct PostProcessor {
    priors: Vec<CenterBox>,
    coder: BoxCoder,
    config: PostProcessConfig,
    clip_before_nms: bool,
}

impl PostProcessor {
    /// A post-processor for `priors` (as from [`ssd_core::PriorConfig::priors`]) with the default
    /// variances.
    pub fn new(priors: Vec<CenterBox>, config: PostProcessConfig) -> Self {
        Self {
            priors,
            coder: BoxCoder::default(),
            config,
            clip_before_nms: false,
        }
    }

    /// Whether decoded boxes are clipped to the image before NMS (torchvision's
    /// `SSD.postprocess_detections`; see [`crate::SsdConfig::clips_before_nms`]) rather than
    /// after it (amdegroot, lufficc, NVIDIA). Either way the detections are clipped.
    pub fn with_clip_before_nms(mut self, clip: bool) -> Self {
        self.clip_before_nms = clip;
        self
    }

    /// The thresholds.
    pub fn config(&self) -> &PostProcessConfig {
        &self.config
    }

    /// Changes the thresholds.
    pub fn set_config(&mut self, config: PostProcessConfig) {
        self.config = config;
    }

    /// The priors as a `[1, P, 4]` tensor `(cx, cy, w, h)`.
    fn prior_tensor(&self, device: &Device) -> Tensor<3> {
        let values: Vec<f32> = self
            .priors
            .iter()
            .flat_map(|p| [p.cx, p.cy, p.w, p.h])
            .collect();
        Tensor::from_data(TensorData::new(values, [1, self.priors.len(), 4]), device)
    }

    /// Softmax and box decoding on the device: `[N, P, 4 + C]` (corner boxes in `[0, 1]`
    /// coordinates, then class probabilities).
    pub fn decode(&self, loc: Tensor<3>, conf: Tensor<3>) -> Tensor<3> {
        let [n, p, _] = loc.dims();
        let priors = self.prior_tensor(&loc.device()).expand([n, p, 4]);
        let [v0, v1] = self.coder.variances;
        let prior_centre = priors.clone().slice([0..n, 0..p, 0..2]);
        let prior_size = priors.slice([0..n, 0..p, 2..4]);
        let centre = loc
            .clone()
            .slice([0..n, 0..p, 0..2])
            .mul_scalar(v0)
            .mul(prior_size.clone())
            .add(prior_centre);
        let size = loc
            .slice([0..n, 0..p, 2..4])
            .mul_scalar(v1)
            .exp()
            .mul(prior_size);
        let half = size.div_scalar(2.0);
        let boxes = Tensor::cat(vec![centre.clone().sub(half.clone()), centre.add(half)], 2);
        Tensor::cat(vec![boxes, softmax(conf, 2)], 2)
    }

    /// Detections per image: one device-to-host transfer for the whole batch. `original_sizes`
    /// holds each image's width and height in pixels.
    pub fn detect(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        original_sizes: &[[u32; 2]],
    ) -> Result<Vec<Vec<Detection>>, ModelError> {
        let configs = vec![self.config; original_sizes.len()];
        self.detect_each(loc, conf, original_sizes, &configs)
    }

    /// [`PostProcessor::detect`] with thresholds of its own for each image (`configs[i]` for
    /// image `i`, as a server batching requests with different settings needs); image `i`'s
    /// detections are those [`PostProcessor::detect`] gives with `configs[i]`.
    pub fn detect_each(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        original_sizes: &[[u32; 2]],
        configs: &[PostProcessConfig],
    ) -> Result<Vec<Vec<Detection>>, ModelError> {
        for config in configs {
            config.validate()?;
        }
        let [n, p, c] = conf.dims();
        if original_sizes.len() != n || configs.len() != n || p != self.priors.len() {
            return Err(ModelError::Input(format!(
                "post-processing {n} images with {p} priors, but got {} sizes, {} settings and {} \
                 priors",
                original_sizes.len(),
                configs.len(),
                self.priors.len()
            )));
        }
        let host: Vec<f32> = self
            .decode(loc, conf)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| ModelError::Device(format!("{e:?}")))?;
        let row = 4 + c;
        Ok(host
            .chunks_exact(p * row)
            .zip(original_sizes)
            .zip(configs)
            .map(|((image, size), config)| {
                Self::detect_one(config, self.clip_before_nms, image, row, c, *size)
            })
            .collect())
    }

    /// Per class: threshold, top k, NMS; then the best `top_k` over all classes.
    fn detect_one(
        cfg: &PostProcessConfig,
        clip_before_nms: bool,
        image: &[f32],
        row: usize,
        classes: usize,
        size: [u32; 2],
    ) -> Vec<Detection> {
        let boxes: Vec<CornerBox> = image
            .chunks_exact(row)
            .map(|r| {
                let b = CornerBox::new(r[0], r[1], r[2], r[3]);
                if clip_before_nms { b.clamp_unit() } else { b }
            })
            .collect();
        let mut out: Vec<Detection> = Vec::new();
        let mut candidates: Vec<usize> = Vec::new();
        let mut scores: Vec<f32> = Vec::new();
        for class in 1..classes {
            candidates.clear();
            scores.clear();
            for (i, r) in image.chunks_exact(row).enumerate() {
                let s = r[4 + class];
                if s > cfg.min_score {
                    candidates.push(i);
                    scores.push(s);
                }
            }
            if candidates.is_empty() {
                continue;
            }
            let best = top_k(&scores, cfg.top_k_per_class);
            let cand_boxes: Vec<CornerBox> = best.iter().map(|&k| boxes[candidates[k]]).collect();
            let cand_scores: Vec<f32> = best.iter().map(|&k| scores[k]).collect();
            // `nms` fails only when boxes and scores differ in length, which they cannot here.
            let Ok(keep) = nms(&cand_boxes, &cand_scores, cfg.nms_overlap) else {
                continue;
            };
            let (w, h) = (size[0] as f32, size[1] as f32);
            out.extend(keep.into_iter().map(|k| {
                let b = cand_boxes[k].clamp_unit();
                Detection {
                    label: class,
                    score: cand_scores[k],
                    bbox: [b.xmin * w, b.ymin * h, b.xmax * w, b.ymax * h],
                }
            }));
        }
        // Stable: equal scores keep class order.
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(cfg.top_k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor3(values: Vec<f32>, shape: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(values, shape), &Device::default())
    }

    /// Three priors: two overlapping squares on the left, one on the right.
    fn processor(config: PostProcessConfig) -> PostProcessor {
        let priors = vec![
            CenterBox::new(0.25, 0.5, 0.4, 0.4),
            CenterBox::new(0.27, 0.5, 0.4, 0.4),
            CenterBox::new(0.75, 0.5, 0.3, 0.3),
        ];
        PostProcessor::new(priors, config)
    }

    /// Logits for 3 classes (background, a, b) per prior.
    fn logits() -> Vec<f32> {
        vec![
            0.0, 5.0, 0.0, // prior 0: class a, p = 0.987
            0.0, 4.0, 0.0, // prior 1: class a, overlaps prior 0 (IoU 0.9)
            0.0, 0.0, 3.0, // prior 2: class b
        ]
    }

    /// Each image of a batch post-processed with thresholds of its own gets what `detect` gives
    /// it with those thresholds alone; a settings count other than the batch's is an error.
    #[test]
    fn each_image_gets_its_own_thresholds() {
        let loc = || tensor3(vec![0.0; 2 * 3 * 4], [2, 3, 4]);
        let conf = || tensor3([logits(), logits()].concat(), [2, 3, 3]);
        let loose = PostProcessConfig {
            min_score: 0.01,
            nms_overlap: 0.95,
            ..PostProcessConfig::default()
        };
        let strict = PostProcessConfig {
            min_score: 0.9,
            ..PostProcessConfig::default()
        };
        let sizes = [[100, 50], [40, 80]];
        let each = processor(loose)
            .detect_each(loc(), conf(), &sizes, &[loose, strict])
            .expect("detect");
        let alone = |config, i: usize| {
            processor(config)
                .detect(loc(), conf(), &sizes)
                .expect("detect")
                .swap_remove(i)
        };
        assert_eq!(each[0], alone(loose, 0));
        assert_eq!(each[1], alone(strict, 1));
        assert_ne!(each[0].len(), each[1].len(), "the thresholds matter here");
        assert!(
            processor(loose)
                .detect_each(loc(), conf(), &sizes, &[loose])
                .is_err()
        );
    }

    /// Each threshold out of its range is refused by name before anything is computed: a NaN
    /// score threshold or a `top_k` of 0 would otherwise return no detections, an IoU of
    /// 0 or 2 would break or switch off NMS.
    #[test]
    fn thresholds_out_of_range_are_errors_naming_them() {
        let base = PostProcessConfig::default();
        let cases = [
            (
                "min_score",
                PostProcessConfig {
                    min_score: f32::NAN,
                    ..base
                },
            ),
            (
                "min_score",
                PostProcessConfig {
                    min_score: -0.5,
                    ..base
                },
            ),
            (
                "min_score",
                PostProcessConfig {
                    min_score: 1.5,
                    ..base
                },
            ),
            (
                "top_k_per_class",
                PostProcessConfig {
                    top_k_per_class: 0,
                    ..base
                },
            ),
            (
                "nms_overlap",
                PostProcessConfig {
                    nms_overlap: 0.0,
                    ..base
                },
            ),
            (
                "nms_overlap",
                PostProcessConfig {
                    nms_overlap: 2.0,
                    ..base
                },
            ),
            (
                "nms_overlap",
                PostProcessConfig {
                    nms_overlap: f32::NAN,
                    ..base
                },
            ),
            ("top_k", PostProcessConfig { top_k: 0, ..base }),
        ];
        for (name, config) in cases {
            let loc = tensor3(vec![0.0; 12], [1, 3, 4]);
            let conf = tensor3(logits(), [1, 3, 3]);
            let err = processor(config)
                .detect(loc, conf, &[[200, 100]])
                .expect_err(name);
            assert!(
                matches!(&err, ModelError::Setting(e) if e.name == name),
                "{name}: {err}"
            );
        }
        assert!(base.validate().is_ok());
    }

    #[test]
    fn detects_suppresses_and_scales_to_the_image() {
        let pp = processor(PostProcessConfig::default());
        let loc = tensor3(vec![0.0; 12], [1, 3, 4]);
        let conf = tensor3(logits(), [1, 3, 3]);
        let out = pp.detect(loc, conf, &[[200, 100]]).expect("detect");
        let dets = &out[0];
        // Class a: prior 0 kept, prior 1 suppressed by NMS; class b: prior 2. Low scores of the
        // other class on each prior (~0.0066, ~0.018, ...) fall below or above 0.01: the 0.018
        // ones survive as separate detections.
        let strong: Vec<&Detection> = dets.iter().filter(|d| d.score > 0.5).collect();
        assert_eq!(strong.len(), 2, "{dets:?}");
        assert_eq!(strong[0].label, 1);
        let e5 = 5f32.exp();
        assert!((strong[0].score - e5 / (e5 + 2.0)).abs() < 1e-6);
        // Prior 0 is (0.05, 0.3, 0.45, 0.7) in [0, 1]: times 200 x 100 pixels.
        let b = strong[0].bbox;
        for (got, want) in b.iter().zip([10.0, 30.0, 90.0, 70.0]) {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
        assert_eq!(strong[1].label, 2);
        // Sorted by score over all classes.
        assert!(dets.windows(2).all(|w| w[0].score >= w[1].score));
        // Nothing is background.
        assert!(dets.iter().all(|d| d.label >= 1));
    }

    #[test]
    fn thresholds_and_the_per_image_cap_apply() {
        let pp = processor(PostProcessConfig {
            min_score: 0.5,
            top_k: 1,
            ..PostProcessConfig::default()
        });
        let loc = tensor3(vec![0.0; 24], [2, 3, 4]);
        let mut two = logits();
        two.extend([9.0, 0.0, 0.0, 9.0, 0.0, 0.0, 9.0, 0.0, 0.0]); // second image: all background
        let conf = tensor3(two, [2, 3, 3]);
        let out = pp.detect(loc, conf, &[[10, 10], [10, 10]]).expect("detect");
        assert_eq!(out[0].len(), 1);
        assert_eq!(out[0][0].label, 1);
        assert!(out[1].is_empty());
        // Mismatched sizes are an error, not a panic.
        let loc = tensor3(vec![0.0; 12], [1, 3, 4]);
        let conf = tensor3(logits(), [1, 3, 3]);
        assert!(pp.detect(loc, conf, &[]).is_err());
    }

    #[test]
    fn decoding_matches_the_core_coder() {
        let pp = processor(PostProcessConfig::default());
        let offsets = [0.3f32, -0.2, 0.5, -0.4];
        let loc = tensor3(offsets.repeat(3), [1, 3, 4]);
        let conf = tensor3(logits(), [1, 3, 3]);
        let decoded: Vec<f32> = pp
            .decode(loc, conf)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("f32");
        for (i, prior) in pp.priors.iter().enumerate() {
            let want = BoxCoder::default().decode(offsets, prior);
            let got = &decoded[i * 7..i * 7 + 4];
            for (g, w) in got.iter().zip([want.xmin, want.ymin, want.xmax, want.ymax]) {
                assert!((g - w).abs() < 1e-6, "prior {i}: {got:?} vs {want:?}");
            }
        }
    }
}
