//! SSD data augmentation with the semantics of the original Caffe implementation.
//!
//! Training, in this order, every random choice drawn from one [`SampleRng`]:
//! 1. photometric distortion ([`Photometric`]): brightness, contrast, saturation and hue, each with
//!    probability 0.5, contrast either before or after the HSV steps; values saturate to
//!    `[0, 255]` after every step, as Caffe's `uint8` images do;
//! 2. expand ([`Expand`]): with probability 0.5, place the image at a random integer offset on a
//!    canvas `ratio` times its size (`ratio` uniform in `[1, 4]`) filled with the mean;
//! 3. min-IoU random crop ([`CropSampler`]): each sampler draws up to `max_trials` boxes (scale and
//!    aspect ratio uniform in their ranges) and keeps the first that satisfies it; one of the kept
//!    boxes is chosen uniformly. A box satisfies a sampler with `min_iou` when some ground truth
//!    overlaps it at least that much and, for every sampler, when at least one ground truth's
//!    centre lies in it (so a crop never empties an image that had objects). Ground truths whose
//!    centre lies in the crop are kept and clipped to it;
//! 4. horizontal flip with probability 0.5;
//! 5. bilinear resize to the network size (OpenCV's half-pixel convention);
//! 6. subtract the RGB mean `(123, 117, 104)`, giving `f32` planes in `[C, H, W]` order.
//!
//! Evaluation ([`Augment::eval`]) does only 5 and 6.
//!
//! Steps 2-5 are geometric, so they are planned on the boxes ([`Augment::plan`], cheap, which is
//! what property tests exercise) and then rendered in one resampling pass ([`Augment::render`])
//! that reads the mean for canvas pixels outside the image. The expanded canvas (up to 16 times
//! the image) is never allocated, which is most of why this is fast.

use image::RgbImage;
use ssd_core::{CornerBox, iou};

use crate::SampleRng;

/// The RGB mean subtracted from every pixel (ImageNet's, as in the paper's Caffe models).
pub const VOC_MEAN_RGB: [f32; 3] = [123.0, 117.0, 104.0];

/// Photometric distortion parameters (Caffe's `distort_param` in the SSD recipe).
#[derive(Debug, Clone, PartialEq)]
pub struct Photometric {
    /// Probability of each of the four steps.
    pub probability: f64,
    /// Brightness: add a value uniform in `[-delta, delta]`.
    pub brightness_delta: f64,
    /// Contrast: multiply by a value uniform in this range.
    pub contrast: [f64; 2],
    /// Saturation: multiply HSV saturation by a value uniform in this range.
    pub saturation: [f64; 2],
    /// Hue: rotate by a value uniform in `[-delta, delta]` degrees.
    pub hue_delta_degrees: f64,
}

impl Default for Photometric {
    fn default() -> Self {
        Self {
            probability: 0.5,
            brightness_delta: 32.0,
            contrast: [0.5, 1.5],
            saturation: [0.5, 1.5],
            hue_delta_degrees: 18.0,
        }
    }
}

/// Zoom-out parameters (Caffe's `expand_param`).
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    /// Probability of expanding.
    pub probability: f64,
    /// Largest canvas side ratio; the ratio is uniform in `[1, max_ratio]`.
    pub max_ratio: f64,
}

impl Default for Expand {
    fn default() -> Self {
        Self {
            probability: 0.5,
            max_ratio: 4.0,
        }
    }
}

/// One crop sampler (Caffe's `batch_sampler`).
#[derive(Debug, Clone, PartialEq)]
pub struct CropSampler {
    /// Minimum IoU that at least one ground truth must reach with the crop (`None`: no constraint).
    pub min_iou: Option<f32>,
    /// Range of the crop's scale (its side relative to the image's, before aspect ratio).
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height, relative to the image's).
    pub aspect_ratio: [f64; 2],
    /// Draws before the sampler gives up.
    pub max_trials: usize,
}

impl CropSampler {
    /// The whole image (always satisfied): keeps "no crop" among the choices.
    pub fn whole_image() -> Self {
        Self {
            min_iou: None,
            scale: [1.0, 1.0],
            aspect_ratio: [1.0, 1.0],
            max_trials: 1,
        }
    }

    /// A random crop of scale `[0.3, 1]` and aspect ratio `[0.5, 2]`, up to 50 trials.
    pub fn random(min_iou: Option<f32>) -> Self {
        Self {
            min_iou,
            scale: [0.3, 1.0],
            aspect_ratio: [0.5, 2.0],
            max_trials: 50,
        }
    }

    /// The paper's samplers: whole image; min IoU 0.1, 0.3, 0.5, 0.7, 0.9; no constraint.
    pub fn ssd() -> Vec<Self> {
        let mut samplers = vec![Self::whole_image()];
        samplers.extend([0.1, 0.3, 0.5, 0.7, 0.9].map(|m| Self::random(Some(m))));
        samplers.push(Self::random(None));
        samplers
    }
}

/// The whole transform from a decoded image to network input.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Output side in pixels (the network input is square).
    pub size: u32,
    /// Mean subtracted per RGB channel; also the expand canvas colour.
    pub mean: [f32; 3],
    /// Each channel is then divided by this (1 for the VGG networks; 127.5 for SSDLite, whose
    /// input is in `[-1, 1]`).
    pub std: [f32; 3],
    /// Photometric distortion (`None`: off).
    pub photometric: Option<Photometric>,
    /// Expand / zoom out (`None`: off).
    pub expand: Option<Expand>,
    /// Crop samplers (empty: no cropping).
    pub samplers: Vec<CropSampler>,
    /// Probability of a horizontal flip.
    pub flip_probability: f64,
}

impl Augment {
    /// The SSD training transform at `size` pixels (all steps, paper parameters).
    pub fn ssd_train(size: u32) -> Self {
        Self {
            size,
            mean: VOC_MEAN_RGB,
            std: [1.0; 3],
            photometric: Some(Photometric::default()),
            expand: Some(Expand::default()),
            samplers: CropSampler::ssd(),
            flip_probability: 0.5,
        }
    }

    /// The evaluation transform: resize and mean subtraction only.
    pub fn eval(size: u32) -> Self {
        Self {
            size,
            mean: VOC_MEAN_RGB,
            std: [1.0; 3],
            photometric: None,
            expand: None,
            samplers: Vec::new(),
            flip_probability: 0.0,
        }
    }

    /// The same transform with the network's input normalisation: `(x - mean) / std` per RGB
    /// channel of 0..255 values.
    #[must_use]
    pub fn normalized(mut self, mean: [f64; 3], std: [f64; 3]) -> Self {
        self.mean = mean.map(|m| m as f32);
        self.std = std.map(|s| s as f32);
        self
    }

    /// Resize and mean subtraction of a whole image, no random step: `[3, size, size]` planes,
    /// what the network sees at test time (whatever the other settings of `self`).
    pub fn resize(&self, image: &RgbImage) -> Vec<f32> {
        self.render(
            image,
            &GeometryPlan::identity(image.width(), image.height()),
        )
    }

    /// Whether this transform draws anything from the RNG.
    pub fn is_random(&self) -> bool {
        self.photometric.is_some()
            || self.expand.is_some()
            || !self.samplers.is_empty()
            || self.flip_probability > 0.0
    }

    /// Runs the whole transform: `boxes` are normalised to the image, `labels` parallel to them.
    pub fn apply(
        &self,
        mut image: RgbImage,
        boxes: &[CornerBox],
        labels: &[usize],
        rng: &mut SampleRng,
    ) -> Augmented {
        if let Some(photometric) = &self.photometric {
            let plan = PhotometricPlan::draw(photometric, rng);
            plan.apply(&mut image);
        }
        let (plan, boxes, labels) = self.plan(image.width(), image.height(), boxes, labels, rng);
        let pixels = self.render(&image, &plan);
        Augmented {
            pixels,
            boxes,
            labels,
            plan,
        }
    }

    /// Draws the geometric steps (expand, crop, flip) for an image of `width x height` and maps the
    /// normalised `boxes` (and their `labels`) through them. Boxes whose centre falls outside the
    /// crop are removed together with their label.
    pub fn plan(
        &self,
        width: u32,
        height: u32,
        boxes: &[CornerBox],
        labels: &[usize],
        rng: &mut SampleRng,
    ) -> (GeometryPlan, Vec<CornerBox>, Vec<usize>) {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let mut plan = GeometryPlan::identity(width, height);
        // Boxes in normalised canvas coordinates.
        let mut canvas_boxes: Vec<CornerBox> = boxes.to_vec();
        if let Some(expand) = &self.expand
            && rng.chance(expand.probability)
        {
            let ratio = rng.uniform(1.0, expand.max_ratio);
            let (cw, ch) = ((w * ratio).floor().max(w), (h * ratio).floor().max(h));
            let ox = rng.uniform(0.0, cw - w).floor();
            let oy = rng.uniform(0.0, ch - h).floor();
            plan.canvas = [cw, ch];
            plan.offset = [ox, oy];
            for b in &mut canvas_boxes {
                *b = CornerBox::new(
                    ((f64::from(b.xmin) * w + ox) / cw) as f32,
                    ((f64::from(b.ymin) * h + oy) / ch) as f32,
                    ((f64::from(b.xmax) * w + ox) / cw) as f32,
                    ((f64::from(b.ymax) * h + oy) / ch) as f32,
                );
            }
        }
        let mut kept_boxes = canvas_boxes;
        let mut kept_labels = labels.to_vec();
        if let Some((index, crop)) = self.sample_crop(&kept_boxes, rng) {
            plan.sampler = Some(index);
            plan.crop = crop;
            (kept_boxes, kept_labels) = crop_boxes(&kept_boxes, &kept_labels, &crop);
        }
        if rng.chance(self.flip_probability) {
            plan.flip = true;
            for b in &mut kept_boxes {
                *b = flip_box(b);
            }
        }
        (plan, kept_boxes, kept_labels)
    }

    /// Caffe's batch sampling: one candidate per sampler (its first satisfying draw), then one of
    /// the candidates uniformly. Returns the sampler index and the crop (normalised canvas).
    fn sample_crop(&self, boxes: &[CornerBox], rng: &mut SampleRng) -> Option<(usize, CornerBox)> {
        let mut candidates = Vec::with_capacity(self.samplers.len());
        for (index, sampler) in self.samplers.iter().enumerate() {
            for _ in 0..sampler.max_trials {
                let crop = draw_crop(sampler, rng);
                if crop_satisfies(sampler, &crop, boxes) {
                    candidates.push((index, crop));
                    break;
                }
            }
        }
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[rng.below(candidates.len())])
    }

    /// Resamples `image` through `plan` into `[3, size, size]` planes minus the mean.
    pub fn render(&self, image: &RgbImage, plan: &GeometryPlan) -> Vec<f32> {
        let size = self.size as usize;
        let (iw, ih) = (image.width() as usize, image.height() as usize);
        let crop = plan.crop_pixels();
        let columns = axis_taps(
            size,
            crop[0],
            crop[2],
            plan.canvas[0],
            plan.offset[0],
            iw,
            plan.flip,
        );
        let rows = axis_taps(
            size,
            crop[1],
            crop[3],
            plan.canvas[1],
            plan.offset[1],
            ih,
            false,
        );
        let raw = image.as_raw();
        let plane = size * size;
        let mut out = vec![0.0f32; 3 * plane];
        let mean = self.mean;
        let scale = self.std.map(|s| 1.0 / s);
        let mut row0 = vec![[0.0f32; 3]; size];
        let mut row1 = vec![[0.0f32; 3]; size];
        for (v, row) in rows.iter().enumerate() {
            fill_row(&mut row0, raw, iw, row.i0, &columns, mean);
            fill_row(&mut row1, raw, iw, row.i1, &columns, mean);
            let w = row.weight;
            for (u, (a, b)) in row0.iter().zip(&row1).enumerate() {
                let at = v * size + u;
                for c in 0..3 {
                    // `a + (b - a) w` is exact where both taps agree (the mean fill gives 0).
                    out[c * plane + at] = (a[c] + (b[c] - a[c]) * w - mean[c]) * scale[c];
                }
            }
        }
        out
    }
}

/// The output of [`Augment::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Augmented {
    /// `[3, size, size]` RGB planes, mean subtracted.
    pub pixels: Vec<f32>,
    /// Boxes normalised to the output, inside `[0, 1]`, each with positive area.
    pub boxes: Vec<CornerBox>,
    /// Labels parallel to `boxes`.
    pub labels: Vec<usize>,
    /// The geometric steps that were drawn.
    pub plan: GeometryPlan,
}

/// The geometric steps drawn for one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GeometryPlan {
    /// Source image width in pixels.
    pub width: u32,
    /// Source image height in pixels.
    pub height: u32,
    /// Canvas size in pixels (the image size when not expanded).
    pub canvas: [f64; 2],
    /// Integer pixel offset of the image on the canvas.
    pub offset: [f64; 2],
    /// Crop in normalised canvas coordinates (the whole canvas when not cropped).
    pub crop: CornerBox,
    /// Index of the sampler whose crop was chosen (`None`: cropping off or nothing satisfied).
    pub sampler: Option<usize>,
    /// Whether the output is mirrored horizontally.
    pub flip: bool,
}

impl GeometryPlan {
    /// The plan that keeps a `width x height` image as it is (no expand, crop or flip).
    pub fn identity(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            canvas: [f64::from(width.max(1)), f64::from(height.max(1))],
            offset: [0.0, 0.0],
            crop: CornerBox::new(0.0, 0.0, 1.0, 1.0),
            sampler: None,
            flip: false,
        }
    }

    /// The crop in canvas pixels `[x0, y0, x1, y1]`.
    pub fn crop_pixels(&self) -> [f64; 4] {
        [
            f64::from(self.crop.xmin) * self.canvas[0],
            f64::from(self.crop.ymin) * self.canvas[1],
            f64::from(self.crop.xmax) * self.canvas[0],
            f64::from(self.crop.ymax) * self.canvas[1],
        ]
    }
}

/// Mirrors a normalised box horizontally.
pub fn flip_box(b: &CornerBox) -> CornerBox {
    CornerBox::new(1.0 - b.xmax, b.ymin, 1.0 - b.xmin, b.ymax)
}

fn draw_crop(sampler: &CropSampler, rng: &mut SampleRng) -> CornerBox {
    let scale = rng.uniform(sampler.scale[0], sampler.scale[1]);
    let ratio = rng
        .uniform(sampler.aspect_ratio[0], sampler.aspect_ratio[1])
        .max(scale * scale)
        .min(1.0 / (scale * scale));
    let w = (scale * ratio.sqrt()).min(1.0);
    let h = (scale / ratio.sqrt()).min(1.0);
    let x = rng.uniform(0.0, 1.0 - w);
    let y = rng.uniform(0.0, 1.0 - h);
    CornerBox::new(x as f32, y as f32, (x + w) as f32, (y + h) as f32)
}

fn centre_inside(b: &CornerBox, crop: &CornerBox) -> bool {
    let cx = (b.xmin + b.xmax) * 0.5;
    let cy = (b.ymin + b.ymax) * 0.5;
    cx >= crop.xmin && cx <= crop.xmax && cy >= crop.ymin && cy <= crop.ymax
}

fn crop_satisfies(sampler: &CropSampler, crop: &CornerBox, boxes: &[CornerBox]) -> bool {
    if boxes.is_empty() {
        return sampler.min_iou.is_none();
    }
    if !boxes.iter().any(|b| centre_inside(b, crop)) {
        return false;
    }
    match sampler.min_iou {
        None => true,
        Some(min) => boxes.iter().any(|b| iou(b, crop) >= min),
    }
}

/// Keeps boxes whose centre lies in `crop`, re-expressed in the crop's normalised coordinates and
/// clipped to `[0, 1]`; boxes left without area are dropped.
fn crop_boxes(
    boxes: &[CornerBox],
    labels: &[usize],
    crop: &CornerBox,
) -> (Vec<CornerBox>, Vec<usize>) {
    let (cw, ch) = (crop.xmax - crop.xmin, crop.ymax - crop.ymin);
    let mut out_boxes = Vec::with_capacity(boxes.len());
    let mut out_labels = Vec::with_capacity(labels.len());
    for (b, &label) in boxes.iter().zip(labels) {
        if !centre_inside(b, crop) {
            continue;
        }
        let projected = CornerBox::new(
            ((b.xmin - crop.xmin) / cw).clamp(0.0, 1.0),
            ((b.ymin - crop.ymin) / ch).clamp(0.0, 1.0),
            ((b.xmax - crop.xmin) / cw).clamp(0.0, 1.0),
            ((b.ymax - crop.ymin) / ch).clamp(0.0, 1.0),
        );
        if projected.xmax > projected.xmin && projected.ymax > projected.ymin {
            out_boxes.push(projected);
            out_labels.push(label);
        }
    }
    (out_boxes, out_labels)
}

/// Bilinear taps along one axis: source indices (`usize::MAX` for canvas outside the image) and
/// the weight of the second tap.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    weight: f32,
}

const OUTSIDE: usize = usize::MAX;

fn axis_taps(
    size: usize,
    start: f64,
    end: f64,
    canvas: f64,
    offset: f64,
    image_len: usize,
    flip: bool,
) -> Vec<Tap> {
    let scale = (end - start) / size as f64;
    let last = (canvas - 1.0).max(0.0);
    let to_image = |canvas_index: f64| -> usize {
        let i = canvas_index - offset;
        if i >= 0.0 && i < image_len as f64 {
            i as usize
        } else {
            OUTSIDE
        }
    };
    (0..size)
        .map(|u| {
            let u = if flip { size - 1 - u } else { u };
            let x = (start + (u as f64 + 0.5) * scale - 0.5).clamp(0.0, last);
            let x0 = x.floor();
            let x1 = (x0 + 1.0).min(last);
            Tap {
                i0: to_image(x0),
                i1: to_image(x1),
                weight: (x - x0) as f32,
            }
        })
        .collect()
}

/// Interpolates one source row (or the mean, for canvas rows outside the image) along x.
fn fill_row(
    out: &mut [[f32; 3]],
    raw: &[u8],
    width: usize,
    row: usize,
    columns: &[Tap],
    mean: [f32; 3],
) {
    if row == OUTSIDE {
        out.fill(mean);
        return;
    }
    let line = &raw[row * width * 3..(row + 1) * width * 3];
    let pixel = |i: usize| -> [f32; 3] {
        if i == OUTSIDE {
            mean
        } else {
            let p = &line[i * 3..i * 3 + 3];
            [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
        }
    };
    for (o, tap) in out.iter_mut().zip(columns) {
        let (a, b) = (pixel(tap.i0), pixel(tap.i1));
        let w = tap.weight;
        *o = [
            a[0] + (b[0] - a[0]) * w,
            a[1] + (b[1] - a[1]) * w,
            a[2] + (b[2] - a[2]) * w,
        ];
    }
}

/// The photometric steps drawn for one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotometricPlan {
    /// Added to every channel.
    pub brightness: Option<f32>,
    /// Multiplies every channel.
    pub contrast: Option<f32>,
    /// Whether contrast comes before the HSV steps (else after).
    pub contrast_first: bool,
    /// Multiplies HSV saturation.
    pub saturation: Option<f32>,
    /// Added to HSV hue, in degrees.
    pub hue: Option<f32>,
}

impl PhotometricPlan {
    /// Draws the steps in Caffe's order (brightness, order bit, contrast, saturation, hue).
    pub fn draw(p: &Photometric, rng: &mut SampleRng) -> Self {
        let pick = |rng: &mut SampleRng, low: f64, high: f64| {
            rng.chance(p.probability)
                .then(|| rng.uniform(low, high) as f32)
        };
        let brightness = pick(rng, -p.brightness_delta, p.brightness_delta);
        let contrast_first = rng.chance(0.5);
        let contrast = pick(rng, p.contrast[0], p.contrast[1]);
        let saturation = pick(rng, p.saturation[0], p.saturation[1]);
        let hue = pick(rng, -p.hue_delta_degrees, p.hue_delta_degrees);
        Self {
            brightness,
            contrast,
            contrast_first,
            saturation,
            hue,
        }
    }

    /// Applies the steps to every pixel, saturating to `[0, 255]` after each.
    pub fn apply(&self, image: &mut RgbImage) {
        let hsv = self.saturation.is_some() || self.hue.is_some();
        if self.brightness.is_none() && self.contrast.is_none() && !hsv {
            return;
        }
        let brightness = self.brightness.unwrap_or(0.0);
        let (before, after) = match (self.contrast, self.contrast_first) {
            (Some(c), true) => (c, 1.0),
            (Some(c), false) => (1.0, c),
            (None, _) => (1.0, 1.0),
        };
        // Brightness and the first contrast act on each channel alone: a table over u8 inputs.
        let pre: [f32; 256] = std::array::from_fn(|v| {
            ((v as f32 + brightness).clamp(0.0, 255.0) * before).clamp(0.0, 255.0)
        });
        // Round half up; `f32::round` is a libm call on baseline x86-64, and this runs per value.
        let finish = |v: f32| ((v * after).clamp(0.0, 255.0) + 0.5) as u8;
        if !hsv {
            let table: [u8; 256] = pre.map(finish);
            for v in image.as_mut() {
                *v = table[usize::from(*v)];
            }
            return;
        }
        let saturation = self.saturation.unwrap_or(1.0);
        let hue_sectors = self.hue.unwrap_or(0.0) / 60.0;
        for p in image.as_mut().chunks_exact_mut(3) {
            let rgb = [
                pre[usize::from(p[0])],
                pre[usize::from(p[1])],
                pre[usize::from(p[2])],
            ];
            let rgb = rotate_hue_scale_saturation(rgb, hue_sectors, saturation);
            for (out, v) in p.iter_mut().zip(rgb) {
                *out = finish(v);
            }
        }
    }
}

/// In HSV (value = max channel, saturation = (max - min) / max): adds `hue_sectors` (degrees / 60)
/// to the hue, multiplies the saturation by `saturation` (capped at 1), keeps the value. Written
/// without the conversion's divisions and `fmod`s, since it runs for every pixel.
fn rotate_hue_scale_saturation(rgb: [f32; 3], hue_sectors: f32, saturation: f32) -> [f32; 3] {
    let [r, g, b] = rgb;
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if delta <= 0.0 {
        return rgb;
    }
    // Hue in sectors [0, 6).
    let mut h = if max == r {
        (g - b) / delta
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    } + hue_sectors;
    if h < 0.0 {
        h += 6.0;
    }
    if h >= 6.0 {
        h -= 6.0;
    }
    // Chroma after scaling the saturation (s * v = delta), at most the value.
    let c = (delta * saturation).min(max);
    let m = max - c;
    let sector = (h as u32).min(5);
    let f = h - sector as f32;
    let (up, down) = (c * f, c * (1.0 - f));
    let (r, g, b) = match sector {
        0 => (c, up, 0.0),
        1 => (down, c, 0.0),
        2 => (0.0, c, up),
        3 => (0.0, down, c),
        4 => (up, 0.0, c),
        _ => (c, 0.0, down),
    };
    [r + m, g + m, b + m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hue_and_saturation_steps() {
        let colours = [
            [0.0, 0.0, 0.0],
            [255.0, 0.0, 0.0],
            [10.0, 200.0, 30.0],
            [12.0, 34.0, 250.0],
            [128.0, 128.0, 128.0],
            [255.0, 255.0, 1.0],
            [200.0, 50.0, 120.0],
        ];
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        for rgb in colours {
            // No change, and a full turn, are the identity.
            assert!(
                close(rotate_hue_scale_saturation(rgb, 0.0, 1.0), rgb),
                "{rgb:?}"
            );
            assert!(
                close(rotate_hue_scale_saturation(rgb, 6.0 - 1e-6, 1.0), rgb),
                "{rgb:?}"
            );
            // Rotating there and back is the identity.
            let there = rotate_hue_scale_saturation(rgb, 1.3, 1.0);
            assert!(
                close(rotate_hue_scale_saturation(there, -1.3, 1.0), rgb),
                "{rgb:?}"
            );
            // Saturation 0 gives grey at the value (the max channel).
            let max = rgb[0].max(rgb[1]).max(rgb[2]);
            assert!(
                close(rotate_hue_scale_saturation(rgb, 0.7, 0.0), [max; 3]),
                "{rgb:?}"
            );
        }
        // Pure red turned by 120 degrees is pure green, by -120 pure blue.
        assert!(close(
            rotate_hue_scale_saturation([255.0, 0.0, 0.0], 2.0, 1.0),
            [0.0, 255.0, 0.0]
        ));
        assert!(close(
            rotate_hue_scale_saturation([255.0, 0.0, 0.0], -2.0, 1.0),
            [0.0, 0.0, 255.0]
        ));
        // Half saturation of (200, 100, 0): value 200, chroma 100 -> (200, 150, 100).
        assert!(close(
            rotate_hue_scale_saturation([200.0, 100.0, 0.0], 0.0, 0.5),
            [200.0, 150.0, 100.0]
        ));
        // Saturation cannot exceed 1: doubling (200, 100, 0)'s chroma caps at the value.
        assert!(close(
            rotate_hue_scale_saturation([200.0, 100.0, 50.0], 0.0, 3.0),
            [200.0, 0.0 + 66.666_67, 0.0]
        ));
    }

    #[test]
    fn eval_transform_is_a_plain_resize() {
        // A 2x2 image resized to 4x4 with the half-pixel convention.
        let image = RgbImage::from_raw(2, 2, vec![0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100])
            .expect("buffer size");
        let augment = Augment {
            mean: [0.0; 3],
            ..Augment::eval(4)
        };
        let mut rng = SampleRng::new(0);
        let out = augment.apply(image, &[], &[], &mut rng);
        let row: Vec<f32> = out.pixels[0..4].to_vec();
        assert_eq!(row, vec![0.0, 25.0, 75.0, 100.0]);
        assert!(out.plan.sampler.is_none() && !out.plan.flip);
    }

    #[test]
    fn expanded_canvas_outside_the_image_is_zero_after_mean() {
        let image = RgbImage::from_pixel(10, 10, image::Rgb([255, 255, 255]));
        let augment = Augment {
            photometric: None,
            samplers: Vec::new(),
            flip_probability: 0.0,
            expand: Some(Expand {
                probability: 1.0,
                max_ratio: 4.0,
            }),
            ..Augment::ssd_train(20)
        };
        let boxes = [CornerBox::new(0.0, 0.0, 1.0, 1.0)];
        let out = augment.apply(image, &boxes, &[1], &mut SampleRng::new(5));
        assert!(out.plan.canvas[0] > 10.0);
        // The box is where the image is; pixels well outside it are exactly the mean.
        let b = out.boxes[0];
        let plane = 400;
        for v in 0..20 {
            for u in 0..20 {
                let (x, y) = ((u as f32 + 0.5) / 20.0, (v as f32 + 0.5) / 20.0);
                let margin = 1.5 / 20.0;
                let outside = x < b.xmin - margin
                    || x > b.xmax + margin
                    || y < b.ymin - margin
                    || y > b.ymax + margin;
                let inside = x > b.xmin + margin
                    && x < b.xmax - margin
                    && y > b.ymin + margin
                    && y < b.ymax - margin;
                let value = out.pixels[v * 20 + u];
                if outside {
                    assert_eq!(value, 0.0, "({u},{v})");
                    assert_eq!(out.pixels[2 * plane + v * 20 + u], 0.0);
                }
                if inside {
                    assert!((value - (255.0 - 123.0)).abs() < 1e-3, "({u},{v}) {value}");
                }
            }
        }
    }

    #[test]
    fn photometric_saturates_and_keeps_grey_grey() {
        let mut image = RgbImage::from_pixel(2, 1, image::Rgb([250, 250, 250]));
        let plan = PhotometricPlan {
            brightness: Some(30.0),
            contrast: Some(0.5),
            contrast_first: true,
            saturation: Some(1.5),
            hue: Some(10.0),
        };
        plan.apply(&mut image);
        // Brightness saturates at 255 before contrast halves it; grey has no hue to rotate.
        assert_eq!(image.get_pixel(0, 0).0, [128, 128, 128]);
    }
}
