//! A synthetic dataset in VOC (or COCO) format: coloured shapes on textured backgrounds.
//!
//! [`write_synthetic`] writes a complete VOC root (`JPEGImages/`, `Annotations/`,
//! `ImageSets/Main/trainval.txt` and `test.txt`, and `classes.txt` with one class per line) that
//! [`DetectionDataset`](crate::DetectionDataset) reads like any other. Tests, benches and the quickstart use
//! it, so it is seeded and deterministic: the same config writes the same bytes.
//!
//! Each image has 1-6 objects (by default) of the classes in [`SYNTHETIC_CLASSES`], with sizes
//! from a few pixels to most of the image. Objects may run over the border (their box is then the
//! visible part and `<truncated>` is 1); objects whose visible box is under
//! [`SyntheticConfig::difficult_below`] pixels on a side are marked `<difficult>`. Objects drawn
//! later are in front and may hide part of earlier ones ([`SyntheticConfig::max_overlap`]).
//! Boxes are the exact extent of the pixels left in view; objects mostly hidden may be marked
//! `<difficult>` too ([`SyntheticConfig::difficult_visibility`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use ssd_core::parallel_map;

use crate::{DataError, SampleRng};

mod video;
pub use video::{VideoConfig, VideoSummary, write_synthetic_video};

/// The classes of the synthetic dataset, in label order (label 1 is `circle`).
pub const SYNTHETIC_CLASSES: [&str; 5] = ["circle", "square", "triangle", "ring", "cross"];

/// What to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Seed of everything drawn.
    pub seed: u64,
    /// Images in `trainval.txt`.
    pub train_images: usize,
    /// Images in `test.txt`.
    pub test_images: usize,
    /// Image width range in pixels (inclusive).
    pub width: [u32; 2],
    /// Image height range in pixels (inclusive).
    pub height: [u32; 2],
    /// Objects per image (inclusive range).
    pub objects: [usize; 2],
    /// Object size range as a fraction of the image's shorter side (log-uniform).
    pub object_size: [f64; 2],
    /// Probability that an object is placed so that it may run over the border.
    pub truncated_probability: f64,
    /// Where such an object goes: `None`, anywhere that keeps its centre in the image (at most
    /// half of it out, and often none); `Some([lo, hi])`, across one border picked at random, with
    /// a part `lo` to `hi` of its width (or height) outside, as an object entering or leaving a
    /// video's frame is.
    pub border_cut: Option<[f64; 2]>,
    /// The most that two objects' boxes may overlap, as a part of the smaller box: the later
    /// object is drawn in front and hides that much of the earlier one at most.
    pub max_overlap: f64,
    /// Objects with less of their shape in view than this part (hidden behind the objects in
    /// front of them or cut by the border) are `difficult` in the VOC layout, as a video's ground
    /// truth leaves such objects unscored; 0 marks none.
    pub difficult_visibility: f64,
    /// Objects whose visible box is smaller than this many pixels on a side are `difficult`.
    pub difficult_below: u32,
    /// JPEG quality (1-100).
    pub jpeg_quality: u8,
    /// Probability that an image also gets a crowd: 4 to 8 tiny shapes of one class close
    /// together, annotated as one region (a crowd region, `iscrowd`, in the COCO layout; a
    /// difficult object in VOC's), as COCO annotates crowds of people or cars.
    pub crowds: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            train_images: 800,
            test_images: 200,
            width: [300, 500],
            height: [300, 500],
            objects: [1, 6],
            object_size: [0.05, 0.6],
            truncated_probability: 0.15,
            border_cut: None,
            max_overlap: 0.25,
            difficult_visibility: 0.0,
            difficult_below: 12,
            jpeg_quality: 90,
            crowds: 0.0,
        }
    }
}

impl SyntheticConfig {
    /// Small images (96-128 px) with one or two large objects (35-70% of the short side), none
    /// truncated: data a tiny model learns in seconds, for tests and smoke runs.
    pub fn large_objects(train_images: usize, test_images: usize) -> Self {
        Self {
            train_images,
            test_images,
            width: [96, 128],
            height: [96, 128],
            objects: [1, 2],
            object_size: [0.35, 0.7],
            truncated_probability: 0.0,
            ..Self::default()
        }
    }
}

impl SyntheticConfig {
    /// The dataset of `ssd quickstart` in `format`'s layout: 3,200 training and 200 test images
    /// of 256-448 x 180-280 pixels (4:3 to wider than 16:9), 2 to 6 objects of 20-60% of the
    /// short side (large enough for the small preset's 128-pixel input), 30% of them across a
    /// border with 10-70% of their width or height outside (as objects entering or leaving a
    /// video's frame are), and objects in front that may cover up to 80% of the ones behind them, those
    /// with less than 40% in view marked difficult: the scenes of a video, so that the model that
    /// learns them also finds objects that cross, hide each other and leave the frame
    /// (`ssd track`). Four times the images of the quickstart's earlier dataset for the same
    /// 1,000 iterations of 16: each image is seen 5 times rather than 20, which the detector's
    /// recall on video frames needs more than the repeats. In the COCO layout, a crowd in one
    /// image of five.
    pub fn quickstart(seed: u64, format: SyntheticFormat) -> Self {
        Self {
            seed,
            crowds: match format {
                SyntheticFormat::Voc => 0.0,
                SyntheticFormat::Coco => 0.2,
            },
            train_images: 3200,
            test_images: 200,
            width: [256, 448],
            height: [180, 280],
            objects: [2, 6],
            object_size: [0.2, 0.6],
            truncated_probability: 0.3,
            border_cut: Some([0.1, 0.7]),
            max_overlap: 0.8,
            difficult_visibility: 0.4,
            ..Self::default()
        }
    }
}

impl SyntheticConfig {
    /// Sparse scenes, the quickstart's earlier dataset: 240-320 x 200-280 pixels, 1 to 4 objects
    /// of 20-60% of the short side that overlap by a quarter at most, 10% placed over the border;
    /// 800 training and 200 test images. Pinned for what compares runs on fixed data over
    /// versions (`scripts/train-parity.sh`), as [`SyntheticConfig::quickstart`] may change.
    pub fn sparse(seed: u64, format: SyntheticFormat) -> Self {
        Self {
            train_images: 800,
            width: [240, 320],
            height: [200, 280],
            objects: [1, 4],
            truncated_probability: 0.1,
            border_cut: None,
            max_overlap: 0.25,
            difficult_visibility: 0.0,
            ..Self::quickstart(seed, format)
        }
    }
}

/// What [`write_synthetic`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSummary {
    /// The VOC root written.
    pub root: PathBuf,
    /// The class-list file (`classes.txt` in the root).
    pub class_file: PathBuf,
    /// Images written.
    pub images: usize,
    /// Objects written.
    pub objects: usize,
    /// Of those, marked truncated.
    pub truncated: usize,
    /// Of those, marked difficult (crowds included: the COCO layout's crowd regions).
    pub difficult: usize,
}

/// One drawn object (or crowd), in 0-based inclusive pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
struct DrawnObject {
    class: usize,
    bbox: [u32; 4],
    truncated: bool,
    /// Tiny, or a crowd.
    difficult: bool,
    /// Less of it in view than [`SyntheticConfig::difficult_visibility`]: difficult in the VOC
    /// layout; the COCO layout, which has no such mark, annotates it as any other object.
    hidden: bool,
    /// Pixels the shape covers inside its box, over the box's (a crowd's over its region's).
    fill: f64,
}

impl DrawnObject {
    /// Whether the VOC layout marks it `<difficult>`.
    fn voc_difficult(&self) -> bool {
        self.difficult || self.hidden
    }
}

/// What the writer creates in a root, in either layout.
const WRITTEN: [&str; 11] = [
    "Annotations",
    "JPEGImages",
    "ImageSets",
    "annotations",
    "trainval",
    "test",
    "classes.txt",
    // A video sequence (write_synthetic_video).
    "img1",
    "gt",
    "seqinfo.ini",
    "video.mp4",
];

/// Removes a dataset folder the writer made, so that the next one starts empty: a VOC dataset
/// written over a COCO one would otherwise be read as the COCO one, whose annotation file the
/// dataset reader finds first. A folder that holds anything the writer does not write is refused
/// ([`DataError::UnknownLayout`], naming it) and left as it is; a missing folder is fine.
pub fn remove_synthetic(root: &Path) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: root.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let name = entry.map_err(io)?.file_name();
        if !WRITTEN.iter().any(|w| name == *w) {
            return Err(DataError::UnknownLayout {
                path: root.to_owned(),
                reason: format!(
                    "holds {:?}, which the synthetic dataset writer does not write; not removing \
                     it (remove it yourself, or write the dataset elsewhere)",
                    name.to_string_lossy()
                ),
            });
        }
    }
    std::fs::remove_dir_all(root).map_err(io)
}

/// Writes the dataset under `root` (created if needed; existing files of the same names are
/// replaced). Image ids are `000001`, `000002`, ...; the first `train_images` form `trainval`.
pub fn write_synthetic(
    root: &Path,
    config: &SyntheticConfig,
) -> Result<SyntheticSummary, DataError> {
    write_synthetic_as(root, config, SyntheticFormat::Voc)
}

/// The layouts [`write_synthetic_as`] writes.
///
/// The COCO layout is `annotations/instances_trainval.json` and `instances_test.json`, images in
/// `trainval/` and `test/`. The categories have the non-contiguous ids [`SYNTHETIC_COCO_IDS`],
/// listed in the file in descending order; objects that VOC marks difficult (tiny objects, and
/// the crowds of [`SyntheticConfig::crowds`]) are crowd regions; `area` is the shape's own area (a
/// circle's is π/4 of its box), not w * h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SyntheticFormat {
    /// A VOC root: Annotations, ImageSets, JPEGImages.
    #[default]
    Voc,
    /// The COCO layout: instances_*.json and image folders.
    Coco,
}

/// The COCO category ids of [`SYNTHETIC_CLASSES`] in the COCO layout (ascending, with gaps).
pub const SYNTHETIC_COCO_IDS: [u64; 5] = [3, 7, 11, 19, 42];

/// Writes the synthetic dataset in either layout (the same images and objects for one config).
pub fn write_synthetic_as(
    root: &Path,
    config: &SyntheticConfig,
    format: SyntheticFormat,
) -> Result<SyntheticSummary, DataError> {
    if format == SyntheticFormat::Coco {
        return write_coco(root, config);
    }
    let dirs = [
        root.join("JPEGImages"),
        root.join("Annotations"),
        root.join("ImageSets").join("Main"),
    ];
    create_dirs(&dirs)?;
    let total = config.train_images + config.test_images;
    let ids: Vec<String> = (1..=total).map(|i| format!("{i:06}")).collect();
    let results = parallel_map(&ids, |i, id| write_one(root, id, i as u64, config));
    let mut summary = SyntheticSummary::empty(root, total);
    for objects in results {
        for o in &objects? {
            summary.objects += 1;
            summary.truncated += usize::from(o.truncated);
            summary.difficult += usize::from(o.voc_difficult());
        }
    }
    let (train, test) = ids.split_at(config.train_images);
    let list = |ids: &[String]| ids.iter().map(|id| format!("{id}\n")).collect::<String>();
    write_file(&dirs[2].join("trainval.txt"), list(train).as_bytes())?;
    write_file(&dirs[2].join("test.txt"), list(test).as_bytes())?;
    let classes: String = SYNTHETIC_CLASSES.iter().map(|c| format!("{c}\n")).collect();
    write_file(&summary.class_file, classes.as_bytes())?;
    Ok(summary)
}

fn write_coco(root: &Path, config: &SyntheticConfig) -> Result<SyntheticSummary, DataError> {
    let total = config.train_images + config.test_images;
    let dirs = [
        root.join("annotations"),
        root.join("trainval"),
        root.join("test"),
    ];
    create_dirs(&dirs)?;
    let indices: Vec<usize> = (0..total).collect();
    let drawn = parallel_map(&indices, |_, &i| -> Result<_, DataError> {
        let mut rng = SampleRng::for_sample(config.seed, u64::MAX, i as u64);
        let (image, objects) = draw_image(config, &mut rng);
        let set = if i < config.train_images { 1 } else { 2 };
        let path = dirs[set].join(format!("{:06}.jpg", i + 1));
        write_jpeg(&path, &image, config.jpeg_quality)?;
        Ok((image.width(), image.height(), objects))
    });
    let mut summary = SyntheticSummary::empty(root, total);
    let mut sets = [CocoText::default(), CocoText::default()];
    let mut annotation_id = 1;
    for (i, result) in drawn.into_iter().enumerate() {
        let (width, height, objects) = result?;
        let set = usize::from(i >= config.train_images);
        let json = &mut sets[set];
        let image_id = i + 1;
        let _ = write!(
            json.images,
            "{}{{\"id\": {image_id}, \"file_name\": \"{image_id:06}.jpg\", \"width\": {width}, \"height\": {height}}}",
            if json.images.is_empty() { "" } else { ",\n  " }
        );
        for o in &objects {
            summary.objects += 1;
            summary.truncated += usize::from(o.truncated);
            summary.difficult += usize::from(o.difficult);
            let [x0, y0, x1, y1] = o.bbox;
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            // The shape's area inside its box.
            let area = (f64::from(w) * f64::from(h) * o.fill * 100.0).round() / 100.0;
            let _ = write!(
                json.annotations,
                "{}{{\"id\": {annotation_id}, \"image_id\": {image_id}, \"category_id\": {}, \"bbox\": [{x0}, {y0}, {w}, {h}], \"area\": {area:?}, \"iscrowd\": {}}}",
                if json.annotations.is_empty() {
                    ""
                } else {
                    ",\n  "
                },
                SYNTHETIC_COCO_IDS[o.class],
                u8::from(o.difficult)
            );
            annotation_id += 1;
        }
    }
    // Categories out of id order, as files may list them.
    let categories: Vec<String> = SYNTHETIC_CLASSES
        .iter()
        .zip(SYNTHETIC_COCO_IDS)
        .rev()
        .map(|(name, id)| {
            format!("{{\"id\": {id}, \"name\": \"{name}\", \"supercategory\": \"shape\"}}")
        })
        .collect();
    for (json, name) in sets.iter().zip(["trainval", "test"]) {
        let text = format!(
            "{{\"info\": {{\"description\": \"ssd synthetic shapes\"}},\n \"images\": [\n  {}],\n \"annotations\": [\n  {}],\n \"categories\": [{}]}}\n",
            json.images,
            json.annotations,
            categories.join(", ")
        );
        write_file(
            &dirs[0].join(format!("instances_{name}.json")),
            text.as_bytes(),
        )?;
    }
    let classes: String = SYNTHETIC_CLASSES.iter().map(|c| format!("{c}\n")).collect();
    write_file(&summary.class_file, classes.as_bytes())?;
    Ok(summary)
}

#[derive(Default)]
struct CocoText {
    images: String,
    annotations: String,
}

fn create_dirs(dirs: &[PathBuf]) -> Result<(), DataError> {
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

impl SyntheticSummary {
    fn empty(root: &Path, images: usize) -> Self {
        Self {
            root: root.to_owned(),
            class_file: root.join("classes.txt"),
            images,
            objects: 0,
            truncated: 0,
            difficult: 0,
        }
    }
}

fn write_jpeg(path: &Path, image: &RgbImage, quality: u8) -> Result<(), DataError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100))
        .encode_image(image)
        .map_err(|e| DataError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
    write_file(path, &bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    std::fs::write(path, bytes).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_one(
    root: &Path,
    id: &str,
    index: u64,
    config: &SyntheticConfig,
) -> Result<Vec<DrawnObject>, DataError> {
    let mut rng = SampleRng::for_sample(config.seed, u64::MAX, index);
    let (image, objects) = draw_image(config, &mut rng);
    let image_path = root.join("JPEGImages").join(format!("{id}.jpg"));
    write_jpeg(&image_path, &image, config.jpeg_quality)?;
    let xml = annotation_xml(id, image.width(), image.height(), &objects);
    write_file(
        &root.join("Annotations").join(format!("{id}.xml")),
        xml.as_bytes(),
    )?;
    Ok(objects)
}

fn draw_image(config: &SyntheticConfig, rng: &mut SampleRng) -> (RgbImage, Vec<DrawnObject>) {
    let pick = |rng: &mut SampleRng, [lo, hi]: [u32; 2]| {
        lo + rng.below((hi.saturating_sub(lo) + 1) as usize) as u32
    };
    let width = pick(rng, config.width).max(1);
    let height = pick(rng, config.height).max(1);
    let mut image = background(width, height, rng);
    let [min_objects, max_objects] = config.objects;
    let count = min_objects + rng.below(max_objects.saturating_sub(min_objects) + 1);
    let short = f64::from(width.min(height));
    let (w, h) = (f64::from(width), f64::from(height));
    let mut placed: Vec<[f64; 4]> = Vec::new();
    // Each drawn object's class, whole shape area in pixels and whether it is wholly in view.
    let mut drawn: Vec<(usize, f64, bool)> = Vec::new();
    let mut owner = vec![usize::MAX; (width * height) as usize];
    for _ in 0..count {
        let class = rng.below(SYNTHETIC_CLASSES.len());
        let colour = object_colour(rng);
        // Up to 20 tries to find a place that does not cover earlier objects too much.
        for _ in 0..20 {
            let [lo, hi] = config.object_size;
            let size = short * (lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp();
            let aspect = rng.uniform(0.75, 1.33);
            let (bw, bh) = (
                (size * aspect.sqrt()).max(3.0),
                (size / aspect.sqrt()).max(3.0),
            );
            let run_over = rng.chance(config.truncated_probability);
            let (x0, y0) = if let (true, Some([cut_lo, cut_hi])) = (run_over, config.border_cut) {
                let cut = rng.uniform(cut_lo, cut_hi);
                let along = |rng: &mut SampleRng, room: f64| rng.uniform(0.0, room.max(0.0));
                match rng.below(4) {
                    0 => (-cut * bw, along(rng, h - bh)),
                    1 => (w - (1.0 - cut) * bw, along(rng, h - bh)),
                    2 => (along(rng, w - bw), -cut * bh),
                    _ => (along(rng, w - bw), h - (1.0 - cut) * bh),
                }
            } else if run_over {
                (
                    rng.uniform(-bw * 0.5, w - bw * 0.5),
                    rng.uniform(-bh * 0.5, h - bh * 0.5),
                )
            } else {
                (
                    rng.uniform(0.0, (w - bw).max(0.0)),
                    rng.uniform(0.0, (h - bh).max(0.0)),
                )
            };
            let candidate = [x0, y0, x0 + bw, y0 + bh];
            if placed
                .iter()
                .any(|p| overlap_fraction(p, &candidate) > config.max_overlap)
            {
                continue;
            }
            let index = drawn.len();
            if let Some((_, whole)) =
                draw_owned(&mut image, &mut owner, index, class, candidate, colour)
            {
                let full = x0 >= 0.0 && y0 >= 0.0 && x0 + bw <= w && y0 + bh <= h;
                placed.push(candidate);
                drawn.push((class, whole, full));
            }
            break;
        }
    }
    // Boxes are what is left in view once every object is drawn; a wholly hidden one is gone, and
    // so is one of which a line a pixel thin is left (a box with no area to VOC's readers).
    let (visible, extents) = visible_parts(&owner, width, drawn.len());
    let mut objects = Vec::new();
    for (i, &(class, whole, full)) in drawn.iter().enumerate() {
        let Some(bbox) = extents[i] else { continue };
        let (vw, vh) = (bbox[2] - bbox[0] + 1, bbox[3] - bbox[1] + 1);
        if vw.min(vh) < 2 {
            continue;
        }
        let visibility = visible[i] as f64 / whole.max(1.0);
        objects.push(DrawnObject {
            class,
            bbox,
            truncated: !full,
            difficult: vw.min(vh) < config.difficult_below,
            hidden: visibility < config.difficult_visibility,
            fill: visible[i] as f64 / f64::from(vw * vh),
        });
    }
    if config.crowds > 0.0 && rng.chance(config.crowds) {
        objects.extend(draw_crowd(&mut image, &placed, rng));
    }
    (image, objects)
}

/// The part of its box each shape covers: circle, square, triangle, ring, cross.
const SHAPE_FILL: [f64; 5] = [std::f64::consts::FRAC_PI_4, 1.0, 0.5, 0.35, 0.5];

/// Draws a crowd (4 to 8 shapes of one class, 5 to 9 pixels wide, close together) where it
/// does not cover the objects `placed`; returns its region as one difficult object, `None` when
/// no free place was found.
fn draw_crowd(
    image: &mut RgbImage,
    placed: &[[f64; 4]],
    rng: &mut SampleRng,
) -> Option<DrawnObject> {
    let (width, height) = (f64::from(image.width()), f64::from(image.height()));
    let class = rng.below(SYNTHETIC_CLASSES.len());
    let colour = object_colour(rng);
    let side = (width.min(height) * 0.2).max(20.0);
    for _ in 0..20 {
        let (x0, y0) = (
            rng.uniform(0.0, (width - side).max(0.0)),
            rng.uniform(0.0, (height - side).max(0.0)),
        );
        let region = [x0, y0, x0 + side, y0 + side];
        if placed.iter().any(|p| overlap_fraction(p, &region) > 0.1) {
            continue;
        }
        let mut extent: Option<[u32; 4]> = None;
        let mut covered = 0.0;
        for _ in 0..4 + rng.below(5) {
            let size = rng.uniform(5.0, 9.0);
            let (x, y) = (
                rng.uniform(x0, x0 + side - size),
                rng.uniform(y0, y0 + side - size),
            );
            if let Some(b) = draw_shape(image, class, [x, y, x + size, y + size], colour) {
                covered += size * size * SHAPE_FILL[class];
                extent = Some(match extent {
                    None => b,
                    Some(e) => [
                        e[0].min(b[0]),
                        e[1].min(b[1]),
                        e[2].max(b[2]),
                        e[3].max(b[3]),
                    ],
                });
            }
        }
        let bbox = extent?;
        let area = f64::from(bbox[2] - bbox[0] + 1) * f64::from(bbox[3] - bbox[1] + 1);
        return Some(DrawnObject {
            class,
            bbox,
            truncated: false,
            difficult: true,
            hidden: false,
            fill: (covered / area).min(1.0),
        });
    }
    None
}

/// Intersection over the smaller box's area: high when one box mostly hides the other.
fn overlap_fraction(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / area(a).min(area(b)).max(1e-9)
}

/// Draws shape `class` at `rect` over the pixels whose centre it covers inside the image,
/// marking them as object `index`'s in `owner` (row-major, one entry per pixel). Returns the
/// extent of those pixels (0-based, inclusive) and the shape's whole area in pixels (inside the
/// image or not); `None` when no pixel is inside the image.
fn draw_owned(
    image: &mut RgbImage,
    owner: &mut [usize],
    index: usize,
    class: usize,
    rect: [f64; 4],
    colour: [u8; 3],
) -> Option<([u32; 4], f64)> {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let first = |lo: f64| (lo - 0.5).ceil() as i64;
    let last = |hi: f64| (hi - 0.5).floor() as i64;
    let mut whole = 0.0;
    let mut extent: Option<[u32; 4]> = None;
    for y in first(rect[1])..=last(rect[3]) {
        let v = (y as f64 + 0.5 - rect[1]) / (rect[3] - rect[1]);
        for x in first(rect[0])..=last(rect[2]) {
            let u = (x as f64 + 0.5 - rect[0]) / (rect[2] - rect[0]);
            if !inside(class, u, v) {
                continue;
            }
            whole += 1.0;
            if x < 0 || y < 0 || x >= w || y >= h {
                continue;
            }
            let (px, py) = (x as u32, y as u32);
            image.put_pixel(px, py, Rgb(colour));
            owner[(y * w + x) as usize] = index;
            extent = Some(match extent {
                None => [px, py, px, py],
                Some(e) => [e[0].min(px), e[1].min(py), e[2].max(px), e[3].max(py)],
            });
        }
    }
    extent.map(|e| (e, whole))
}

/// What is left in view of each of `count` objects drawn with [`draw_owned`] into an image
/// `width` pixels wide: its pixels, and their extent (0-based, inclusive; `None` if hidden).
fn visible_parts(owner: &[usize], width: u32, count: usize) -> (Vec<usize>, Vec<Option<[u32; 4]>>) {
    let mut visible = vec![0usize; count];
    let mut extents: Vec<Option<[u32; 4]>> = vec![None; count];
    for (p, &o) in owner.iter().enumerate() {
        if o < count {
            visible[o] += 1;
            let (x, y) = ((p as u32) % width, (p as u32) / width);
            extents[o] = Some(match extents[o] {
                None => [x, y, x, y],
                Some(e) => [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)],
            });
        }
    }
    (visible, extents)
}

fn background(width: u32, height: u32, rng: &mut SampleRng) -> RgbImage {
    let base: [f64; 3] = std::array::from_fn(|_| rng.uniform(60.0, 200.0));
    let tint: [f64; 3] = std::array::from_fn(|_| rng.uniform(-50.0, 50.0));
    let (fx, fy) = (rng.uniform(0.005, 0.08), rng.uniform(0.005, 0.08));
    let (px, py) = (rng.uniform(0.0, 6.3), rng.uniform(0.0, 6.3));
    let mut noise = SampleRng::new(rng.next_u64());
    RgbImage::from_fn(width, height, |x, y| {
        let wave = (f64::from(x) * fx + px).sin() * (f64::from(y) * fy + py).cos();
        let grain = noise.uniform(-12.0, 12.0);
        Rgb(std::array::from_fn(|c| {
            (base[c] + tint[c] * wave + grain).clamp(0.0, 255.0) as u8
        }))
    })
}

fn object_colour(rng: &mut SampleRng) -> [u8; 3] {
    // A saturated colour: one channel high, one low, one anywhere.
    let mut c = [
        rng.uniform(180.0, 255.0),
        rng.uniform(0.0, 70.0),
        rng.uniform(0.0, 255.0),
    ];
    // Shuffle channels.
    for i in (1..3).rev() {
        c.swap(i, rng.below(i + 1));
    }
    c.map(|v| v as u8)
}

/// Whether the point `(u, v)` in the unit square (the shape's box) is inside shape `class`.
fn inside(class: usize, u: f64, v: f64) -> bool {
    let (dx, dy) = (2.0 * u - 1.0, 2.0 * v - 1.0);
    let r2 = dx * dx + dy * dy;
    match class {
        0 => r2 <= 1.0,
        1 => true,
        2 => (u - 0.5).abs() <= v * 0.5,
        3 => (0.36..=1.0).contains(&r2),
        _ => (u - 0.5).abs() <= 0.17 || (v - 0.5).abs() <= 0.17,
    }
}

/// Draws the shape whose box is `rect` (continuous pixels) over pixels whose centre is inside it;
/// returns the 0-based inclusive extent of the drawn pixels, `None` if none was drawn.
fn draw_shape(
    image: &mut RgbImage,
    class: usize,
    rect: [f64; 4],
    colour: [u8; 3],
) -> Option<[u32; 4]> {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let first = |lo: f64| (lo - 0.5).ceil().max(0.0) as u32;
    let last = |hi: f64, size: f64| ((hi - 0.5).floor().min(size - 1.0)).max(-1.0) as i64;
    let (x_first, y_first) = (first(rect[0]), first(rect[1]));
    let (x_last, y_last) = (last(rect[2], w), last(rect[3], h));
    let mut extent: Option<[u32; 4]> = None;
    for y in y_first..=u32::try_from(y_last).ok()? {
        let v = (f64::from(y) + 0.5 - rect[1]) / (rect[3] - rect[1]);
        for x in x_first..=u32::try_from(x_last).ok()? {
            let u = (f64::from(x) + 0.5 - rect[0]) / (rect[2] - rect[0]);
            if inside(class, u, v) {
                image.put_pixel(x, y, Rgb(colour));
                extent = Some(match extent {
                    None => [x, y, x, y],
                    Some(e) => [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)],
                });
            }
        }
    }
    extent
}

fn annotation_xml(id: &str, width: u32, height: u32, objects: &[DrawnObject]) -> String {
    let mut xml = String::new();
    let _ = write!(
        xml,
        "<annotation>\n\t<folder>synthetic</folder>\n\t<filename>{id}.jpg</filename>\n\
         \t<source><database>ssd synthetic shapes</database></source>\n\
         \t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n\
         \t<segmented>0</segmented>\n"
    );
    for o in objects {
        // VOC boxes are 1-based inclusive.
        let [x0, y0, x1, y1] = o.bbox.map(|v| v + 1);
        let _ = write!(
            xml,
            "\t<object>\n\t\t<name>{}</name>\n\t\t<pose>Unspecified</pose>\n\
             \t\t<truncated>{}</truncated>\n\t\t<difficult>{}</difficult>\n\
             \t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\
             \t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n",
            SYNTHETIC_CLASSES[o.class],
            u8::from(o.truncated),
            u8::from(o.voc_difficult()),
        );
    }
    xml.push_str("</annotation>\n");
    xml
}

/// A PNG of a few dozen bytes whose header claims `width` x `height` 8-bit gray pixels (a
/// decompression bomb): for tests of the size limits, which must refuse it from the header.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    // Encoding a 1x1 image into memory cannot fail.
    let _ = image::GrayImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png);
    // After the 8-byte signature: the IHDR chunk's length (4), type (4), width (4), height (4),
    // depth, colour type, compression, filter, interlace (5), then the CRC of type and data.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fill_their_boxes_and_report_the_drawn_extent() {
        let mut image = RgbImage::new(40, 40);
        let bbox = draw_shape(&mut image, 1, [10.0, 5.0, 20.0, 25.0], [255, 0, 0]);
        assert_eq!(bbox, Some([10, 5, 19, 24]));
        assert_eq!(image.get_pixel(10, 5).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(20, 5).0, [0, 0, 0]);
        // A shape mostly outside the image is clipped to it.
        let bbox = draw_shape(&mut image, 0, [-10.0, -10.0, 10.0, 10.0], [0, 255, 0]);
        assert_eq!(bbox.map(|b| [b[0], b[1]]), Some([0, 0]));
        // Entirely outside: nothing drawn.
        assert_eq!(
            draw_shape(&mut image, 0, [50.0, 50.0, 60.0, 60.0], [0, 0, 255]),
            None
        );
    }

    #[test]
    fn a_box_is_what_the_objects_in_front_leave_in_view() {
        let mut image = RgbImage::new(40, 30);
        let mut owner = vec![usize::MAX; 40 * 30];
        let back = draw_owned(
            &mut image,
            &mut owner,
            0,
            1,
            [0.0, 0.0, 20.0, 20.0],
            [255, 0, 0],
        );
        assert_eq!(back, Some(([0, 0, 19, 19], 400.0)));
        // In front, over the right half of the first; its own right part runs out of the image.
        let front = draw_owned(
            &mut image,
            &mut owner,
            1,
            1,
            [10.0, 0.0, 50.0, 20.0],
            [0, 0, 255],
        );
        assert_eq!(front, Some(([10, 0, 39, 19], 800.0)));
        let (visible, extents) = visible_parts(&owner, 40, 2);
        assert_eq!(visible, vec![200, 600]);
        assert_eq!(extents, vec![Some([0, 0, 9, 19]), Some([10, 0, 39, 19])]);
        assert_eq!(image.get_pixel(12, 5).0, [0, 0, 255]);
        // Wholly covered: no box.
        draw_owned(
            &mut image,
            &mut owner,
            2,
            1,
            [0.0, 0.0, 40.0, 30.0],
            [0, 255, 0],
        );
        assert_eq!(visible_parts(&owner, 40, 3).1[..2], [None, None]);
    }

    #[test]
    fn mostly_hidden_objects_are_difficult_in_voc_and_plain_objects_in_coco() {
        let config = SyntheticConfig {
            objects: [4, 4],
            max_overlap: 1.0,
            difficult_visibility: 0.5,
            // Only what is hidden is difficult: no slivers marked for their size.
            difficult_below: 0,
            ..SyntheticConfig::large_objects(16, 0)
        };
        let (voc, coco) = (scratch("hidden-voc"), scratch("hidden-coco"));
        let hidden = write_synthetic_as(&voc, &config, SyntheticFormat::Voc).expect("written");
        let coco_summary =
            write_synthetic_as(&coco, &config, SyntheticFormat::Coco).expect("written");
        assert!(hidden.difficult >= 2, "{hidden:?}");
        assert_eq!(coco_summary.objects, hidden.objects);
        let report = crate::check_coco_bytes(
            &std::fs::read(coco.join("annotations/instances_trainval.json")).expect("file"),
            Path::new("instances_trainval.json"),
        )
        .expect("COCO");
        assert_eq!(report.crowd, 0, "{report}");
        // The same scenes without the threshold: nothing is difficult (large objects only).
        let shown = scratch("shown-voc");
        let summary = write_synthetic_as(
            &shown,
            &SyntheticConfig {
                difficult_visibility: 0.0,
                ..config
            },
            SyntheticFormat::Voc,
        )
        .expect("written");
        assert_eq!((summary.objects, summary.difficult), (hidden.objects, 0));
        for dir in [voc, coco, shown] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_border_cut_puts_every_run_over_object_across_one_border() {
        let config = SyntheticConfig {
            objects: [1, 1],
            truncated_probability: 1.0,
            border_cut: Some([0.3, 0.6]),
            ..SyntheticConfig::large_objects(0, 0)
        };
        let mut rng = SampleRng::new(7);
        let mut sides = [0usize; 4];
        for _ in 0..40 {
            let (image, objects) = draw_image(&config, &mut rng);
            let [object] = objects.as_slice() else {
                panic!("one object, got {objects:?}");
            };
            let (w, h) = (image.width() - 1, image.height() - 1);
            let [x0, y0, x1, y1] = object.bbox;
            let touching = [x0 == 0, x1 == w, y0 == 0, y1 == h];
            assert_eq!(
                touching.iter().filter(|t| **t).count(),
                1,
                "{object:?} in {w}x{h}"
            );
            assert!(object.truncated, "{object:?}");
            for (count, touches) in sides.iter_mut().zip(touching) {
                *count += usize::from(touches);
            }
        }
        assert!(
            sides.iter().all(|&n| n > 0),
            "every border is used: {sides:?}"
        );
        // Without a cut, a run-over object keeps its centre in the image and is often whole.
        let mut rng = SampleRng::new(7);
        let uncut = SyntheticConfig {
            border_cut: None,
            ..config
        };
        let whole = (0..40)
            .filter(|_| !draw_image(&uncut, &mut rng).1[0].truncated)
            .count();
        assert!(whole > 0);
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssd-synthetic-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn crowds_are_crowd_regions_in_the_coco_layout() {
        let root = scratch("crowds");
        let config = SyntheticConfig {
            crowds: 0.5,
            ..SyntheticConfig::large_objects(12, 4)
        };
        write_synthetic_as(&root, &config, SyntheticFormat::Coco).expect("written");
        let report = crate::check_coco_bytes(
            &std::fs::read(root.join("annotations/instances_trainval.json")).expect("file"),
            Path::new("instances_trainval.json"),
        )
        .expect("a valid COCO file");
        assert!(report.crowd >= 2, "{report}");
        // Without crowds, the same config draws the same objects and no crowd region.
        let plain = scratch("no-crowds");
        let summary = write_synthetic_as(
            &plain,
            &SyntheticConfig::large_objects(12, 4),
            SyntheticFormat::Coco,
        )
        .expect("written");
        assert_eq!(summary.difficult, 0);
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(plain);
    }

    #[test]
    fn the_coco_quickstart_has_crowd_regions_and_the_voc_one_keeps_its_data() {
        let dir = scratch("quickstart");
        let config = SyntheticConfig {
            train_images: 40,
            test_images: 0,
            ..SyntheticConfig::quickstart(0, SyntheticFormat::Coco)
        };
        let summary = write_synthetic_as(&dir, &config, SyntheticFormat::Coco).expect("data");
        let report = crate::check_coco_bytes(
            &std::fs::read(dir.join("annotations/instances_trainval.json")).expect("file"),
            Path::new("instances_trainval.json"),
        )
        .expect("COCO");
        assert!(report.crowd >= 3, "{report}");
        assert_eq!(report.crowd, summary.difficult);
        assert_eq!(
            SyntheticConfig::quickstart(0, SyntheticFormat::Voc).crowds,
            0.0
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_a_folder_the_writer_made_is_removed() {
        let root = scratch("remove");
        let config = SyntheticConfig::large_objects(2, 2);
        write_synthetic_as(&root, &config, SyntheticFormat::Coco).expect("written");
        remove_synthetic(&root).expect("removed");
        assert!(!root.exists());
        write_synthetic_as(&root, &config, SyntheticFormat::Voc).expect("written");
        let location = crate::DataLocation::new(std::slice::from_ref(&root), "trainval");
        assert_eq!(
            location.format().expect("a dataset"),
            crate::DatasetFormat::Voc,
            "no COCO file left to win over the VOC root"
        );
        std::fs::write(root.join("notes.txt"), "mine").expect("a user's file");
        let err = remove_synthetic(&root).expect_err("a foreign file");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert!(root.join("notes.txt").exists() && root.join("JPEGImages").exists());
        remove_synthetic(&scratch("missing")).expect("a missing folder is fine");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn every_class_draws_something_distinct() {
        let masks: Vec<Vec<bool>> = (0..SYNTHETIC_CLASSES.len())
            .map(|class| {
                let mut image = RgbImage::new(32, 32);
                draw_shape(&mut image, class, [0.0, 0.0, 32.0, 32.0], [255, 255, 255]);
                image.pixels().map(|p| p.0[0] > 0).collect()
            })
            .collect();
        for i in 0..masks.len() {
            assert!(masks[i].iter().any(|&m| m));
            for j in 0..i {
                assert_ne!(
                    masks[i], masks[j],
                    "{} vs {}",
                    SYNTHETIC_CLASSES[i], SYNTHETIC_CLASSES[j]
                );
            }
        }
    }
}
