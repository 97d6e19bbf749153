//! `ssd track` end to end: frame folders and video files in, an annotated video, MOTChallenge
//! results and JSON lines out, and every kind of bad input (not a video, a truncated one, a
//! frame of another size, an output that cannot be written, FFmpeg missing, Ctrl-C) as a
//! one-line error with complete outputs. The model is the small preset with random weights
//! (its detections are whatever they are; the tracker's thresholds are lowered so that it
//! tracks some); how well a trained model tracks is measured by `tools/mot_metrics.py` in CI.
//! Tests named `ffmpeg_*` need FFmpeg's tools (`scripts/install-video-tools.sh`): they are
//! `#[ignore]`d, and CI runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ssd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssd"));
    c.env("RUST_BACKTRACE", "0");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-track-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn succeed(c: &mut Command) -> Output {
    let out = c.output().expect("ssd runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn fail(c: &mut Command) -> String {
    let out = c.output().expect("ssd runs");
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    errors[0].to_owned()
}

/// The small preset with random weights for the synthetic classes, `dir/small.bpk`, and a
/// synthetic video of `frames` frames (`dir/seq`, with `video.mp4` when `mp4`).
fn setup(dir: &Path, frames: usize, mp4: bool) -> (PathBuf, PathBuf) {
    use burn::tensor::Device;
    use ssd_data::{ClassList, SYNTHETIC_CLASSES};
    use ssd_model::{CheckpointInfo, SsdConfig};
    let names = SYNTHETIC_CLASSES.iter().map(|c| (*c).to_owned()).collect();
    let config = SsdConfig::small(SYNTHETIC_CLASSES.len() + 1);
    let info = CheckpointInfo {
        classes: ClassList::new(names).expect("names"),
        config: config.clone(),
        iteration: None,
    };
    let model = dir.join("small.bpk");
    config
        .init(&Device::default())
        .expect("small preset")
        .save_trained(&model, &info)
        .expect("checkpoint");
    let seq = dir.join("seq");
    let mut c = ssd();
    c.args([
        "synthetic",
        "--video",
        "--width",
        "96",
        "--height",
        "64",
        "--frames",
    ])
    .arg(frames.to_string())
    .arg(&seq);
    if mp4 {
        c.arg("--mp4");
    }
    succeed(&mut c);
    (model, seq)
}

/// `ssd track` with thresholds low enough for a random model to make tracks.
fn track(model: &Path, video: &Path, extra: &[&str]) -> Command {
    let mut c = ssd();
    c.arg("track")
        .arg("--trained-model")
        .arg(model)
        .arg("--video")
        .arg(video)
        .args(["--min-score", "0.05", "--top-k", "20"])
        .args(["--high-score", "0.15", "--new-track-score", "0.15"])
        .args(extra);
    c
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("output")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Files in `dir` whose name says they are an unfinished output.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_frame_folder_gives_one_json_line_per_frame_and_mot_rows_of_its_tracks() {
    let dir = scratch("folder");
    let (model, seq) = setup(&dir, 20, false);
    let (mot, jsonl) = (dir.join("tracks.txt"), dir.join("tracks.jsonl"));
    let out = succeed(
        track(&model, &seq.join("img1"), &["--mot"])
            .arg(&mot)
            .arg("--jsonl")
            .arg(&jsonl),
    );
    let stderr = text(&out.stderr);
    // The frame rate comes from the sequence's seqinfo.ini.
    assert!(
        stderr.contains("96x64 at 25.000 frames/s, 20 frames"),
        "{stderr}"
    );
    let frames = common::json_lines(&jsonl);
    assert_eq!(frames.len(), 20);
    let mut expected_rows = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["frame"], i + 1);
        assert!((f["time"].as_f64().expect("time") - i as f64 / 25.0).abs() < 1e-9);
        for t in f["tracks"].as_array().expect("tracks") {
            let b: Vec<f64> = (0..4)
                .map(|k| t["bbox"][k].as_f64().expect("box"))
                .collect();
            expected_rows.push(format!(
                "{},{},{:.2},{:.2},{:.2},{:.2},{:.4},{},-1,-1",
                i + 1,
                t["id"],
                b[0] + 1.0,
                b[1] + 1.0,
                b[2] - b[0],
                b[3] - b[1],
                t["score"].as_f64().expect("score"),
                t["label"]
            ));
        }
    }
    let rows = lines(&mot);
    assert!(!rows.is_empty(), "the lowered thresholds make tracks");
    // f32 values printed through f64 may round the last digit the other way.
    assert_eq!(rows.len(), expected_rows.len());
    for (row, want) in rows.iter().zip(&expected_rows) {
        let parse =
            |l: &str| -> Vec<f64> { l.split(',').map(|v| v.parse().expect("number")).collect() };
        let (a, b) = (parse(row), parse(want));
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 0.011),
            "{row} vs {want}"
        );
    }
    assert!(temporaries(&dir).is_empty());
    // Outputs that exist are replaced only with --overwrite.
    let e = fail(track(&model, &seq.join("img1"), &["--mot"]).arg(&mot));
    assert!(e.contains("--overwrite") && e.contains("tracks.txt"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_track_gives_the_detections_of_ssd_detect() {
    let dir = scratch("no-track");
    let (model, seq) = setup(&dir, 6, false);
    let frames = seq.join("img1");
    let tracked = dir.join("frames.jsonl");
    succeed(
        track(
            &model,
            &frames,
            &["--no-track", "--batch-size", "4", "--jsonl"],
        )
        .arg(&tracked),
    );
    let detected = dir.join("detect.jsonl");
    succeed(
        ssd()
            .arg("detect")
            .arg("--trained-model")
            .arg(&model)
            .arg("--test-image")
            .arg(&frames)
            .args(["--min-score", "0.05", "--top-k", "20", "--jsonl"])
            .arg(&detected),
    );
    let detect_lines = common::json_lines(&detected);
    let as_images: Vec<serde_json::Value> = common::json_lines(&tracked)
        .iter()
        .zip(&detect_lines)
        .map(|(t, d)| serde_json::json!({"image": d["image"], "detections": t["detections"]}))
        .collect();
    assert_eq!(as_images.len(), 6);
    let compared = common::assert_same_detections(&as_images, &detect_lines, 1e-3, 1e-5);
    assert!(compared > 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_frame_of_another_size_stops_the_run_with_complete_outputs() {
    let dir = scratch("sizes");
    let (model, seq) = setup(&dir, 8, false);
    let frames = seq.join("img1");
    image::RgbImage::new(50, 40)
        .save(frames.join("000005.jpg"))
        .expect("odd frame");
    let jsonl = dir.join("out.jsonl");
    let e = fail(track(&model, &frames, &["--jsonl"]).arg(&jsonl));
    assert!(
        e.contains("000005.jpg") && e.contains("50x40") && e.contains("after 4 frames"),
        "{e}"
    );
    assert_eq!(common::json_lines(&jsonl).len(), 4, "the frames before it");
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn outputs_that_cannot_be_written_fail_before_the_first_frame() {
    let dir = scratch("unwritable");
    let (model, seq) = setup(&dir, 2, false);
    let frames = seq.join("img1");
    let e = fail(track(&model, &frames, &["--mot"]).arg(dir.join("missing/tracks.txt")));
    assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
    let e = fail(track(&model, &frames, &["--output"]).arg(dir.join("out.txt")));
    assert!(e.contains("out.txt") && e.contains("mp4"), "{e}");
    // An output over an input is refused.
    let e = fail(track(&model, &frames, &["--overwrite", "--jsonl"]).arg(&model));
    assert!(e.contains("small.bpk"), "{e}");
    assert!(model.exists());
    let e = fail(&mut track(&model, &frames, &["--match-iou", "2"]));
    assert!(e.contains("--match-iou"), "{e}");
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_video_without_ffmpeg_installed_says_how_to_install_it() {
    let dir = scratch("no-ffmpeg");
    let (model, _) = setup(&dir, 1, false);
    let video = dir.join("clip.mp4");
    std::fs::write(&video, b"not really").expect("file");
    let empty = dir.join("bin");
    std::fs::create_dir_all(&empty).expect("dir");
    let e = fail(track(&model, &video, &[]).env("PATH", &empty));
    assert!(
        e.contains("ffprobe not found") && e.contains("apt-get install ffmpeg"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn ctrl_c_finishes_the_outputs_with_the_frames_done() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("interrupt");
    let (model, seq) = setup(&dir, 600, false);
    let (mot, jsonl) = (dir.join("t.txt"), dir.join("t.jsonl"));
    let mut child = track(&model, &seq.join("img1"), &["--batch-size", "1", "--mot"])
        .arg(&mot)
        .arg("--jsonl")
        .arg(&jsonl)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ssd runs");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("the header line");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let status = child.wait().expect("exits");
    assert!(
        status.success(),
        "an interrupted run is not a failure: {rest}"
    );
    assert!(rest.contains("interrupted"), "{rest}");
    let done = common::json_lines(&jsonl).len();
    assert!(done > 0 && done < 600, "{done} frames");
    assert!(rest.contains(&format!("{done} frames in")), "{rest}");
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

fn ffprobe_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let line = text(&out.stdout);
    let fields: Vec<&str> = line.trim().split(',').collect();
    assert_eq!(&fields[..2], ["96", "64"], "{line}");
    fields[2].parse().expect("a frame count")
}

#[test]
#[ignore = "needs FFmpeg (scripts/install-video-tools.sh)"]
fn ffmpeg_video_in_annotated_video_out() {
    let dir = scratch("ffmpeg-io");
    let (model, seq) = setup(&dir, 24, true);
    let out_video = dir.join("annotated.mkv");
    let jsonl = dir.join("t.jsonl");
    let out = succeed(
        track(&model, &seq.join("video.mp4"), &["--output"])
            .arg(&out_video)
            .arg("--jsonl")
            .arg(&jsonl),
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("96x64 at 25.000 frames/s, 24 frames"),
        "{stderr}"
    );
    assert_eq!(common::json_lines(&jsonl).len(), 24);
    assert_eq!(ffprobe_frames(&out_video), 24);
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs FFmpeg (scripts/install-video-tools.sh)"]
fn ffmpeg_truncated_video_keeps_the_frames_that_decode() {
    let dir = scratch("ffmpeg-truncated");
    let (model, seq) = setup(&dir, 60, true);
    let whole = std::fs::read(seq.join("video.mp4")).expect("video");
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("truncated copy");
    let (out_video, jsonl) = (dir.join("annotated.mp4"), dir.join("t.jsonl"));
    let e = fail(
        track(&model, &cut, &["--output"])
            .arg(&out_video)
            .arg("--jsonl")
            .arg(&jsonl),
    );
    assert!(
        e.contains("cut.mp4") && e.contains("of the 60 frames"),
        "{e}"
    );
    let done = common::json_lines(&jsonl).len();
    assert!(done > 5 && done < 60, "{done} frames decoded");
    assert!(e.contains(&format!("after {done} frames")), "{e}");
    assert_eq!(
        ffprobe_frames(&out_video),
        done as u64,
        "the video holds them all"
    );
    assert!(temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs FFmpeg (scripts/install-video-tools.sh)"]
fn ffmpeg_a_file_that_is_not_a_video_is_one_line() {
    let dir = scratch("ffmpeg-not-video");
    let (model, _) = setup(&dir, 1, false);
    let fake = dir.join("notes.mp4");
    std::fs::write(&fake, "meeting notes, not a video\n").expect("file");
    let mot = dir.join("t.txt");
    let e = fail(track(&model, &fake, &["--mot"]).arg(&mot));
    assert!(e.contains("notes.mp4") && e.contains("not a video"), "{e}");
    assert!(!mot.exists() && temporaries(&dir).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
