//! `ssd track`: detection and tracking on video (files, frame folders, streams, devices), with
//! an annotated video, MOTChallenge results and JSON lines as outputs.
//!
//! Three threads: one reads and resizes frames (FFmpeg decodes in its own process), this one
//! detects in batches and tracks, one draws and encodes. Outputs are written under temporary
//! names and renamed into place at the end, also when the input stops early (a truncated file, a
//! stream that ends, Ctrl-C), so each output holds exactly the frames processed; a run killed
//! outright leaves the previous files (or none).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::bail;
use image::RgbImage;
use serde::Serialize;
use ssd_data::output::{AtomicFile, check_output};
use ssd_data::video::{VideoInput, VideoReader, VideoWriter};
use ssd_model::ImageDetections;
use ssd_track::{ByteTracker, MotRow, Observation, TrackerConfig};

use crate::detect::{InferenceArgs, ThresholdArgs};
use crate::render::{Labelled, draw_detections, draw_trail};

/// Arguments of `ssd track`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrackArgs {
    /// Trained model, as `ssd detect --trained-model` takes it.
    #[arg(long)]
    pub trained_model: PathBuf,
    /// The video: a file (whatever FFmpeg reads: mp4, mkv, avi, webm, ...), a folder of frames
    /// (`.jpg`/`.png`, in name order), a stream URL (`rtsp://`, `udp://`, `http://`) or a
    /// capture device (`/dev/video0`). Streams and devices run until they end or Ctrl-C.
    #[arg(long)]
    pub video: String,
    /// Write the annotated video here (`.mp4`, `.mkv`, `.mov`, `.webm`, `.avi`), at the input's
    /// frame rate: boxes, class, score, track id and a trail.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the tracks in the MOTChallenge format (`frame,id,x,y,w,h,score,class,-1,-1`,
    /// 1-based frames and pixels; with `--no-track` the id is -1).
    #[arg(long, value_name = "FILE")]
    pub mot: Option<PathBuf>,
    /// Write one JSON line per frame (frame, time, tracks or detections).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Replace output files that exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Detections of each frame only: no tracking, no identities.
    #[arg(long)]
    pub no_track: bool,
    /// Frames per second: the rate of a frame folder (default: `frameRate` of a
    /// MOTChallenge `seqinfo.ini` beside it, else 25), or an override of the video's.
    #[arg(long)]
    pub frame_rate: Option<f64>,
    /// Frames in the trail drawn behind each track (0: none).
    #[arg(long, default_value_t = 30)]
    pub trail: usize,
    /// The tracker's settings.
    #[command(flatten)]
    pub tracker: TrackerArgs,
    /// The post-processing thresholds: `--min-score` is also the lowest score the tracker
    /// takes (detections between it and `--high-score` only continue tracks).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Class list for a `.pth` with classes other than VOC's.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Frames per batch of the network, at least 1 (a stream's batch is what has arrived, up
    /// to this).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// What runs the network.
    #[command(flatten)]
    pub inference: InferenceArgs,
}

/// ByteTrack's settings as flags (the fields of [`TrackerConfig`], with its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct TrackerArgs {
    /// Detections scoring at least this are matched first and may start tracks.
    #[arg(long, default_value_t = TrackerConfig::default().high_score)]
    pub high_score: f32,
    /// Least score of a detection that starts a new track.
    #[arg(long, default_value_t = TrackerConfig::default().new_track_score)]
    pub new_track_score: f32,
    /// Least IoU (times the detection's score with `--fuse-score true`) of a track's predicted
    /// box and a detection it continues.
    #[arg(long, default_value_t = TrackerConfig::default().match_iou)]
    pub match_iou: f32,
    /// Frames (at 30 per second; scaled to the video's rate) a lost track waits to take its
    /// identity back.
    #[arg(long, default_value_t = TrackerConfig::default().track_buffer)]
    pub track_buffer: u32,
    /// Weigh the first matching's IoU by the detection score (ByteTrack's MOT17 setting;
    /// `false` is its MOT20 one).
    #[arg(long, default_value_t = TrackerConfig::default().fuse_score, action = clap::ArgAction::Set)]
    pub fuse_score: bool,
}

impl TrackerArgs {
    /// The tracker's settings for a video at `frame_rate`; an out-of-range value is an error
    /// naming its flag.
    pub fn config(&self, frame_rate: f64) -> anyhow::Result<TrackerConfig> {
        let config = TrackerConfig {
            high_score: self.high_score,
            new_track_score: self.new_track_score,
            match_iou: self.match_iou,
            track_buffer: self.track_buffer,
            frame_rate,
            fuse_score: self.fuse_score,
        };
        config.validate().map_err(|e| {
            anyhow::anyhow!(
                "--{} must be {}, not {}",
                e.field.replace('_', "-"),
                e.range,
                e.value
            )
        })?;
        Ok(config)
    }
}

/// A frame read and resized for the network.
struct Frame {
    image: RgbImage,
    pixels: Vec<f32>,
}

/// What the drawing thread gets per frame.
struct ToDraw {
    image: RgbImage,
    boxes: Vec<Labelled>,
    trails: Vec<(usize, Vec<(f32, f32)>)>,
}

/// One object in a JSON line.
#[derive(Debug, Serialize)]
struct JsonObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    class: &'a str,
    label: usize,
    score: f32,
    bbox: [f32; 4],
}

/// Time spent in each stage (the stages overlap: they run on three threads).
#[derive(Debug, Default, Clone, Copy)]
struct Split {
    decode: Duration,
    detect: Duration,
    track: Duration,
    encode: Duration,
}

/// Runs `ssd track`.
pub fn track(args: &TrackArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    // The tracker's ranges are checked before anything is loaded.
    args.tracker.config(30.0)?;
    let input = VideoInput::parse(&args.video);
    let live = input.is_live();
    let outputs: Vec<&PathBuf> = [&args.output, &args.mot, &args.jsonl]
        .into_iter()
        .flatten()
        .collect();
    for (i, a) in outputs.iter().enumerate() {
        if outputs[..i].contains(a) {
            bail!("{} is given as two outputs", a.display());
        }
        let inputs = [args.trained_model.clone(), PathBuf::from(&args.video)];
        check_output(a, args.overwrite, &inputs)?;
    }
    let detector = args
        .inference
        .load(&args.trained_model, args.classes.as_deref())?
        .with_post_process(post);
    let mut reader = VideoReader::open(&input, args.frame_rate)?;
    let info = reader.info().clone();
    let config = args.tracker.config(info.frame_rate)?;
    // Every output is created before the first frame: an unwritable one fails here.
    let mut mot = args.mot.as_deref().map(AtomicFile::create).transpose()?;
    let mut jsonl = args.jsonl.as_deref().map(AtomicFile::create).transpose()?;
    let writer = match &args.output {
        Some(path) => Some(VideoWriter::create(
            path,
            info.width,
            info.height,
            info.frame_rate,
        )?),
        None => None,
    };
    eprintln!(
        "{}: {}x{} at {:.3} frames/s{}; {}",
        input.name(),
        info.width,
        info.height,
        info.frame_rate,
        info.frames
            .map_or(String::new(), |n| format!(", {n} frames")),
        if args.no_track {
            "detection only".to_owned()
        } else {
            format!(
                "ByteTrack (high score {}, new track {}, match IoU {}, buffer {} frames)",
                config.high_score,
                config.new_track_score,
                config.match_iou,
                config.max_lost_frames()
            )
        }
    );
    crate::interrupt::install("finishing the outputs");
    let bar = frame_bar(info.frames);
    let transform = detector.preprocessor();
    let mut tracker = ByteTracker::new(config)?;
    let started = Instant::now();
    let mut split = Split::default();
    let mut processed = 0u64;
    let (frame_tx, frame_rx) = sync_channel::<Frame>(args.batch_size * 2);
    let (draw_tx, draw_rx) = sync_channel::<ToDraw>(4);
    let stopper = reader.stop_handle();
    let finished = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| -> anyhow::Result<(Option<anyhow::Error>, bool)> {
        let reading = scope.spawn(move || read_frames(&mut reader, transform, &frame_tx));
        // Ctrl-C stops the reader even while it waits for a stream's next frame.
        let watcher = scope.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if crate::interrupt::interrupted() {
                    stopper.stop();
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let drawing = scope.spawn(move || draw_frames(writer, draw_rx));
        let mut trails: HashMap<u64, VecDeque<(f32, f32)>> = HashMap::new();
        let mut failure = None;
        let drawing_video = args.output.is_some();
        'frames: loop {
            // The reader's error, if it stopped on one, comes with its join below.
            let batch = next_batch(&frame_rx, args.batch_size, live);
            if batch.is_empty() {
                break;
            }
            let t = Instant::now();
            let size = [info.width, info.height];
            let mut pixels = Vec::with_capacity(batch.iter().map(|f| f.pixels.len()).sum());
            for f in &batch {
                pixels.extend_from_slice(&f.pixels);
            }
            let found = match detector.detect_preprocessed(
                pixels,
                &vec![size; batch.len()],
                &vec![post; batch.len()],
            ) {
                Ok(found) => found,
                Err(e) => {
                    failure = Some(anyhow::Error::from(e).context("detection"));
                    break;
                }
            };
            split.detect += t.elapsed();
            for (frame, found) in batch.into_iter().zip(found) {
                processed += 1;
                let report = detector.describe(&format!("frame {processed}"), size, &found);
                let t = Instant::now();
                let drawn = if args.no_track {
                    detections_only(&report, processed, &mut mot, &mut jsonl, info.frame_rate)
                } else {
                    tracked(
                        &mut tracker,
                        &report,
                        processed,
                        &mut mot,
                        &mut jsonl,
                        info.frame_rate,
                        &mut trails,
                        args.trail,
                    )
                };
                split.track += t.elapsed();
                let (boxes, trails) = match drawn {
                    Ok(d) => d,
                    Err(e) => {
                        failure = Some(e);
                        break 'frames;
                    }
                };
                if drawing_video
                    && draw_tx
                        .send(ToDraw {
                            image: frame.image,
                            boxes,
                            trails,
                        })
                        .is_err()
                {
                    break 'frames; // the encoder failed: its error is below
                }
                bar.inc(1);
            }
        }
        // Stop the reader (on a failure, or the frames left after an error), then the encoder.
        finished.store(true, Ordering::SeqCst);
        stopper.stop();
        drop(frame_rx);
        let _ = watcher.join();
        drop(draw_tx);
        let (decode, read_error) = reading
            .join()
            .map_err(|_| anyhow::anyhow!("the frame reader panicked"))?;
        split.decode = decode;
        let (encode, video) = drawing
            .join()
            .map_err(|_| anyhow::anyhow!("the encoder panicked"))?;
        split.encode = encode;
        let interrupted = crate::interrupt::interrupted();
        // The first error in pipeline order; the outputs are finished whatever it is.
        let error = failure.or(read_error.err());
        let video_result = video
            .map(|v| v.map(VideoWriter::finish).transpose())
            .and_then(|r| r.map_err(anyhow::Error::from));
        let files = [mot.take(), jsonl.take()]
            .into_iter()
            .flatten()
            .map(|f| f.commit().map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<()>>>();
        let error = error.or(video_result.err()).or(files.err());
        Ok((error, interrupted))
    });
    bar.finish_and_clear();
    let (error, interrupted) = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{processed} frames in {seconds:.1} s ({:.1} frames/s){}; busy: decode {:.1} s, detect {:.1} s, \
         track {:.2} s, draw and encode {:.1} s{}",
        processed as f64 / seconds.max(1e-9),
        if args.no_track {
            String::new()
        } else {
            format!(", {} identities", tracker.identities())
        },
        split.decode.as_secs_f64(),
        split.detect.as_secs_f64(),
        split.track.as_secs_f64(),
        split.encode.as_secs_f64(),
        if interrupted { "; interrupted" } else { "" }
    );
    for path in &outputs {
        if path.exists() {
            eprintln!("  wrote {}", path.display());
        }
    }
    match error {
        Some(e) => Err(e.context(format!("after {processed} frames (the outputs hold them)"))),
        None => Ok(()),
    }
}

fn frame_bar(frames: Option<u64>) -> indicatif::ProgressBar {
    let target = indicatif::ProgressDrawTarget::stderr_with_hz(4);
    let (bar, template) = match frames {
        Some(n) => (
            indicatif::ProgressBar::with_draw_target(Some(n), target),
            "tracking {bar:30} {pos}/{len} frames, {per_sec} [{elapsed_precise} < {eta_precise}]",
        ),
        None => (
            indicatif::ProgressBar::with_draw_target(None, target),
            "tracking {spinner} {pos} frames, {per_sec} [{elapsed_precise}]",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// The reader thread: frames until the end, an error or an interruption; returns its busy
/// time and how the input ended.
fn read_frames(
    reader: &mut VideoReader,
    transform: &ssd_data::Augment,
    out: &SyncSender<Frame>,
) -> (Duration, anyhow::Result<()>) {
    let mut busy = Duration::ZERO;
    loop {
        let t = Instant::now();
        let next = reader.read();
        let frame = next.map(|f| {
            f.map(|image| Frame {
                pixels: transform.resize(&image),
                image,
            })
        });
        busy += t.elapsed();
        match frame {
            Ok(Some(frame)) => {
                if out.send(frame).is_err() {
                    reader.stop();
                    return (busy, Ok(()));
                }
            }
            Ok(None) => return (busy, Ok(())),
            Err(e) => return (busy, Err(e.into())),
        }
    }
}

/// Up to `size` frames: for a file, until the batch is full or the input ends; for a stream,
/// the first frame and whatever else has already arrived. An empty batch is the end.
fn next_batch(frames: &Receiver<Frame>, size: usize, live: bool) -> Vec<Frame> {
    let mut batch = Vec::with_capacity(size);
    while batch.len() < size {
        let next = if live && !batch.is_empty() {
            match frames.try_recv() {
                Ok(f) => f,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        } else {
            match frames.recv() {
                Ok(f) => f,
                Err(_) => break,
            }
        };
        batch.push(next);
    }
    batch
}

/// The drawing and encoding thread; returns its busy time and the writer (or its error).
fn draw_frames(
    mut writer: Option<VideoWriter>,
    frames: Receiver<ToDraw>,
) -> (Duration, anyhow::Result<Option<VideoWriter>>) {
    let mut busy = Duration::ZERO;
    for mut frame in frames {
        let Some(w) = &mut writer else { continue };
        let t = Instant::now();
        for (color, trail) in &frame.trails {
            draw_trail(&mut frame.image, trail, *color);
        }
        draw_detections(&mut frame.image, &frame.boxes);
        let written = w.write(&frame.image);
        busy += t.elapsed();
        if let Err(e) = written {
            return (busy, Err(e.into()));
        }
    }
    (busy, Ok(writer))
}

/// Seconds into the video of frame `frame` (1-based).
fn time_of(frame: u64, frame_rate: f64) -> f64 {
    ((frame - 1) as f64 / frame_rate * 1000.0).round() / 1000.0
}

fn write_line(file: &mut Option<AtomicFile>, line: &str) -> anyhow::Result<()> {
    if let Some(f) = file {
        f.write(line.as_bytes())?;
        f.write(b"\n")?;
    }
    Ok(())
}

type Drawn = (Vec<Labelled>, Vec<(usize, Vec<(f32, f32)>)>);

/// `--no-track`: the frame's detections as they are.
fn detections_only(
    report: &ImageDetections,
    frame: u64,
    mot: &mut Option<AtomicFile>,
    jsonl: &mut Option<AtomicFile>,
    frame_rate: f64,
) -> anyhow::Result<Drawn> {
    let mut objects = Vec::new();
    let mut boxes = Vec::new();
    for d in &report.detections {
        let row = MotRow {
            frame,
            id: -1,
            bbox: d.bbox,
            score: d.score,
            class: d.label,
            visibility: None,
        };
        write_line(mot, &row.result_line())?;
        objects.push(JsonObject {
            id: None,
            class: &d.class,
            label: d.label,
            score: d.score,
            bbox: d.bbox,
        });
        boxes.push(Labelled {
            bbox: d.bbox,
            class: d.label - 1,
            caption: format!("{} {:.2}", d.class, d.score),
        });
    }
    let line = serde_json::json!({
        "frame": frame,
        "time": time_of(frame, frame_rate),
        "detections": objects,
    });
    write_line(jsonl, &line.to_string())?;
    Ok((boxes, Vec::new()))
}

/// The frame's detections through the tracker: its tracks written and drawn with their trails.
#[allow(clippy::too_many_arguments)]
fn tracked(
    tracker: &mut ByteTracker,
    report: &ImageDetections,
    frame: u64,
    mot: &mut Option<AtomicFile>,
    jsonl: &mut Option<AtomicFile>,
    frame_rate: f64,
    trails: &mut HashMap<u64, VecDeque<(f32, f32)>>,
    trail_length: usize,
) -> anyhow::Result<Drawn> {
    let observations: Vec<Observation> = report
        .detections
        .iter()
        .map(|d| Observation {
            bbox: d.bbox,
            score: d.score,
            class: d.label,
        })
        .collect();
    let tracks = tracker.update(&observations);
    let mut objects = Vec::new();
    let mut boxes = Vec::new();
    let mut drawn_trails = Vec::new();
    for t in &tracks {
        let d = &report.detections[t.detection];
        let row = MotRow {
            frame,
            id: t.id as i64,
            bbox: t.bbox,
            score: t.score,
            class: t.class,
            visibility: None,
        };
        write_line(mot, &row.result_line())?;
        objects.push(JsonObject {
            id: Some(t.id),
            class: &d.class,
            label: d.label,
            score: t.score,
            bbox: t.bbox,
        });
        let color = t.id as usize;
        boxes.push(Labelled {
            bbox: t.bbox,
            class: color,
            caption: format!("#{} {} {:.2}", t.id, d.class, t.score),
        });
        if trail_length > 0 {
            let trail = trails.entry(t.id).or_default();
            let [x0, y0, x1, y1] = t.bbox;
            trail.push_back(((x0 + x1) / 2.0, (y0 + y1) / 2.0));
            while trail.len() > trail_length {
                trail.pop_front();
            }
            drawn_trails.push((color, trail.iter().copied().collect()));
        }
    }
    // Trails of tracks not seen for as long as a trail lasts are forgotten.
    if trails.len() > 4 * tracks.len() + 64 {
        let live: std::collections::HashSet<u64> = tracks.iter().map(|t| t.id).collect();
        trails.retain(|id, _| live.contains(id));
    }
    let line = serde_json::json!({
        "frame": frame,
        "time": time_of(frame, frame_rate),
        "tracks": objects,
    });
    write_line(jsonl, &line.to_string())?;
    Ok((boxes, drawn_trails))
}
