//! A synthetic video in the MOTChallenge layout: shapes of [`SYNTHETIC_CLASSES`] that enter,
//! cross, occlude each other and leave over a textured background, with their ground-truth
//! tracks.
//!
//! [`write_synthetic_video`] writes `img1/000001.jpg`, ... (one JPEG per frame), `gt/gt.txt`
//! (`frame,id,x,y,w,h,scored,class,visibility`, 1-based frames and pixels), `seqinfo.ini`
//! (name, frame rate, length, size, as MOTChallenge sequences have) and `classes.txt`. A ground-
//! truth box is the extent of the object's pixels left in view (outside the frame's border and
//! behind the objects in front excluded), as the still images' boxes are the extent of their
//! drawn pixels and as the detector learns to box them; MOT's pedestrian sets box occluded
//! people whole instead. Its visibility is the part of the whole shape left in view. Objects
//! less visible than [`VideoConfig::scored_visibility`] are written with `scored` 0: MOT's
//! evaluation ignores them (neither a miss when not found nor a false positive when found); a
//! wholly hidden object has the box it would have and visibility 0. The same config writes the
//! same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::Rgb;

use super::{
    SYNTHETIC_CLASSES, background, create_dirs, draw_owned, object_colour, visible_parts,
    write_file, write_jpeg,
};
use crate::{DataError, SampleRng};

/// What [`write_synthetic_video`] draws.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    /// Seed of everything drawn.
    pub seed: u64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames in the video.
    pub frames: usize,
    /// Frames per second (written to `seqinfo.ini`).
    pub frame_rate: f64,
    /// Objects over the whole video; the first third are in view from the first frame, the rest
    /// enter from a border during the first 60% of it. They bounce off the borders until their
    /// time to leave (from 40% of the video's length after they came; some stay to the end).
    pub objects: usize,
    /// Object size range as a fraction of the frame's shorter side.
    pub object_size: [f64; 2],
    /// Speed range in pixels per frame.
    pub speed: [f64; 2],
    /// Ground truth less visible than this is not scored (`scored` 0 in `gt.txt`).
    pub scored_visibility: f64,
    /// JPEG quality of the frames (1-100).
    pub jpeg_quality: u8,
}

impl Default for VideoConfig {
    /// 10 seconds of 640x360 at 25 frames per second, 6 objects of 25-45% of the frame's height
    /// moving 1.5-4 pixels per frame: large enough for the quickstart model (128-pixel input).
    fn default() -> Self {
        Self {
            seed: 0,
            width: 640,
            height: 360,
            frames: 250,
            frame_rate: 25.0,
            objects: 6,
            object_size: [0.25, 0.45],
            speed: [1.5, 4.0],
            scored_visibility: 0.4,
            jpeg_quality: 90,
        }
    }
}

/// What [`write_synthetic_video`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSummary {
    /// The sequence's folder.
    pub root: PathBuf,
    /// The frames' folder (`img1`).
    pub frames_dir: PathBuf,
    /// The ground truth (`gt/gt.txt`).
    pub ground_truth: PathBuf,
    /// Frames written.
    pub frames: usize,
    /// Objects (ground-truth identities) that are in view at some frame.
    pub tracks: usize,
    /// Ground-truth rows, scored and ignored.
    pub rows: usize,
    /// Of those, not scored (visibility under the config's threshold).
    pub ignored: usize,
}

/// One moving object and where it is in each frame (`None`: not in the scene).
struct Mover {
    class: usize,
    colour: [u8; 3],
    path: Vec<Option<[f64; 4]>>,
}

impl Mover {
    fn rect(&self, frame: usize) -> Option<[f64; 4]> {
        self.path.get(frame).copied().flatten()
    }
}

/// The objects: each in view from the first frame (the first third of them) or entering from a
/// border, moving at a constant speed and bouncing off the borders until its time to leave, then
/// leaving through the border it heads to (some stay to the end).
fn movers(config: &VideoConfig, backdrop: [f64; 3], rng: &mut SampleRng) -> Vec<Mover> {
    let (w, h) = (f64::from(config.width), f64::from(config.height));
    let short = w.min(h);
    let frames = config.frames;
    (0..config.objects)
        .map(|i| {
            let class = rng.below(SYNTHETIC_CLASSES.len());
            let colour = contrasting_colour(backdrop, rng);
            let side = short * rng.uniform(config.object_size[0], config.object_size[1]);
            let aspect = rng.uniform(0.8, 1.25);
            let size = [side * aspect.sqrt(), side / aspect.sqrt()];
            let speed = rng.uniform(config.speed[0], config.speed[1]);
            let inside = |rng: &mut SampleRng| {
                [rng.uniform(0.0, w - size[0]), rng.uniform(0.0, h - size[1])]
            };
            let in_view_at_start = i < config.objects.div_ceil(3);
            let (mut corner, start) = if in_view_at_start {
                (inside(rng), 0)
            } else {
                let start = rng.below((frames as f64 * 0.6) as usize + 1);
                let along = |rng: &mut SampleRng, extent: f64, s: f64| rng.uniform(0.0, extent - s);
                let corner = match rng.below(4) {
                    0 => [-size[0], along(rng, h, size[1])],
                    1 => [w, along(rng, h, size[1])],
                    2 => [along(rng, w, size[0]), -size[1]],
                    _ => [along(rng, w, size[0]), h],
                };
                (corner, start)
            };
            // Towards a point inside the frame.
            let target = inside(rng);
            let (dx, dy) = (target[0] - corner[0], target[1] - corner[1]);
            let length = dx.hypot(dy).max(1e-9);
            let mut velocity = [dx / length * speed, dy / length * speed];
            let leave = start + (frames as f64 * rng.uniform(0.4, 1.5)) as usize;
            let mut entered = in_view_at_start;
            let mut path = vec![None; frames];
            for (frame, slot) in path.iter_mut().enumerate().skip(start) {
                let rect = [
                    corner[0],
                    corner[1],
                    corner[0] + size[0],
                    corner[1] + size[1],
                ];
                let in_frame = rect[0] >= 0.0 && rect[1] >= 0.0 && rect[2] <= w && rect[3] <= h;
                entered |= in_frame;
                let gone = rect[2] <= 0.0 || rect[3] <= 0.0 || rect[0] >= w || rect[1] >= h;
                if entered && gone {
                    break;
                }
                *slot = Some(rect);
                if entered && frame < leave {
                    // Bounce off the borders.
                    if (rect[0] + velocity[0] < 0.0 && velocity[0] < 0.0)
                        || (rect[2] + velocity[0] > w && velocity[0] > 0.0)
                    {
                        velocity[0] = -velocity[0];
                    }
                    if (rect[1] + velocity[1] < 0.0 && velocity[1] < 0.0)
                        || (rect[3] + velocity[1] > h && velocity[1] > 0.0)
                    {
                        velocity[1] = -velocity[1];
                    }
                }
                corner = [corner[0] + velocity[0], corner[1] + velocity[1]];
            }
            Mover {
                class,
                colour,
                path,
            }
        })
        .collect()
}

/// An object colour at least [`MIN_CONTRAST`] from the background's mean colour (the best of 20
/// draws): a still image draws a new background and new colours every time, but a video keeps
/// both for an object's whole life, and a shape the colour of its background would be one that
/// no detector sees for as long as it is in view.
fn contrasting_colour(backdrop: [f64; 3], rng: &mut SampleRng) -> [u8; 3] {
    let distance = |c: [u8; 3]| {
        c.iter()
            .zip(backdrop)
            .map(|(&a, b)| (f64::from(a) - b).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut best = object_colour(rng);
    for _ in 0..20 {
        if distance(best) >= MIN_CONTRAST {
            break;
        }
        let next = object_colour(rng);
        if distance(next) > distance(best) {
            best = next;
        }
    }
    best
}

/// The least RGB distance of an object's colour from the background's mean colour.
const MIN_CONTRAST: f64 = 150.0;

/// Writes the sequence under `root` (created if needed; files of the same names are replaced).
pub fn write_synthetic_video(root: &Path, config: &VideoConfig) -> Result<VideoSummary, DataError> {
    let frames_dir = root.join("img1");
    let gt_dir = root.join("gt");
    create_dirs(&[frames_dir.clone(), gt_dir.clone()])?;
    let mut rng = SampleRng::new(config.seed ^ 0x05ee_d0f7_1de0);
    let (width, height) = (config.width.max(16), config.height.max(16));
    let base = background(width, height, &mut rng);
    let mut backdrop = [0.0; 3];
    for p in base.pixels() {
        for (sum, c) in backdrop.iter_mut().zip(p.0) {
            *sum += f64::from(c);
        }
    }
    let backdrop = backdrop.map(|sum| sum / f64::from(width * height));
    let movers = movers(config, backdrop, &mut rng);
    let mut gt = String::new();
    let mut summary = VideoSummary {
        root: root.to_owned(),
        frames_dir: frames_dir.clone(),
        ground_truth: gt_dir.join("gt.txt"),
        frames: config.frames,
        tracks: 0,
        rows: 0,
        ignored: 0,
    };
    let mut seen = vec![false; movers.len()];
    let mut owner = vec![usize::MAX; (width * height) as usize];
    for frame in 0..config.frames {
        let mut image = base.clone();
        // Sensor noise that changes from frame to frame.
        let mut noise = SampleRng::new(config.seed.wrapping_add(frame as u64 * 7919));
        for p in image.pixels_mut() {
            let n = noise.uniform(-6.0, 6.0);
            *p = Rgb(p.0.map(|c| (f64::from(c) + n).clamp(0.0, 255.0) as u8));
        }
        owner.fill(usize::MAX);
        // Draw back to front (the later objects are in front); remember who owns each pixel.
        let mut boxes: Vec<Option<([u32; 4], f64)>> = vec![None; movers.len()];
        for (i, m) in movers.iter().enumerate() {
            let Some(rect) = m.rect(frame) else { continue };
            boxes[i] = draw_owned(&mut image, &mut owner, i, m.class, rect, m.colour);
        }
        // What is left in view of each object: its pixels and their extent.
        let (visible, extents) = visible_parts(&owner, width, movers.len());
        for (i, m) in movers.iter().enumerate() {
            let Some((whole_box, whole)) = boxes[i] else {
                continue;
            };
            // Wholly hidden: the box it would have, visibility 0 (never scored).
            let bbox = extents[i].unwrap_or(whole_box);
            let visibility = (visible[i] as f64 / whole.max(1.0)).min(1.0);
            let scored = visibility >= config.scored_visibility;
            seen[i] = true;
            summary.rows += 1;
            summary.ignored += usize::from(!scored);
            let [x0, y0, x1, y1] = bbox;
            // MOT pixels are 1-based; the box covers whole pixels x0..=x1.
            let _ = writeln!(
                gt,
                "{},{},{},{},{},{},{},{},{visibility:.3}",
                frame + 1,
                i + 1,
                x0 + 1,
                y0 + 1,
                x1 - x0 + 1,
                y1 - y0 + 1,
                u8::from(scored),
                m.class + 1,
            );
        }
        write_jpeg(
            &frames_dir.join(format!("{:06}.jpg", frame + 1)),
            &image,
            config.jpeg_quality,
        )?;
    }
    summary.tracks = seen.iter().filter(|&&s| s).count();
    write_file(&summary.ground_truth, gt.as_bytes())?;
    let name = root
        .file_name()
        .map_or_else(|| "synthetic".into(), |n| n.to_string_lossy().into_owned());
    let seqinfo = format!(
        "[Sequence]\nname={name}\nimDir=img1\nframeRate={}\nseqLength={}\nimWidth={width}\n\
         imHeight={height}\nimExt=.jpg\n",
        config.frame_rate, config.frames
    );
    write_file(&root.join("seqinfo.ini"), seqinfo.as_bytes())?;
    let classes: String = SYNTHETIC_CLASSES.iter().map(|c| format!("{c}\n")).collect();
    write_file(&root.join("classes.txt"), classes.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_is_deterministic_and_its_ground_truth_matches_its_frames() {
        let config = VideoConfig {
            width: 160,
            height: 96,
            frames: 40,
            objects: 4,
            ..VideoConfig::default()
        };
        let dir = std::env::temp_dir().join(format!("ssd-video-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = write_synthetic_video(&dir.join("a"), &config).expect("written");
        let b = write_synthetic_video(&dir.join("b"), &config).expect("written");
        let read = |p: &Path| std::fs::read(p).expect("file");
        assert_eq!(read(&a.ground_truth), read(&b.ground_truth));
        assert_eq!(
            read(&a.frames_dir.join("000040.jpg")),
            read(&b.frames_dir.join("000040.jpg"))
        );
        assert!(a.tracks >= 2 && a.rows > 40, "{a:?}");
        let text = String::from_utf8(read(&a.ground_truth)).expect("text");
        for line in text.lines() {
            let f: Vec<f64> = line
                .split(',')
                .map(|v| v.parse().expect("number"))
                .collect();
            assert_eq!(f.len(), 9, "{line}");
            assert!((1.0..=40.0).contains(&f[0]));
            // Boxes lie inside the 1-based frame.
            assert!(f[2] >= 1.0 && f[3] >= 1.0, "{line}");
            assert!(
                f[2] + f[4] - 1.0 <= 160.0 && f[3] + f[5] - 1.0 <= 96.0,
                "{line}"
            );
            assert!((0.0..=1.0).contains(&f[8]));
            assert_eq!(f[6] == 1.0, f[8] >= config.scored_visibility, "{line}");
        }
        let seqinfo = std::fs::read_to_string(dir.join("a/seqinfo.ini")).expect("seqinfo");
        assert!(seqinfo.contains("frameRate=25") && seqinfo.contains("seqLength=40"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
