//! `ssd detect` as a job over many images: list files, `--shard K/N`, `--jsonl` results that a
//! rerun resumes (after a SIGKILL too), and bad images reported without stopping the job. The
//! model is the small preset with random weights, saved once per test: the detections are
//! whatever they are, the same on every run. Batches (`--batch-size`, `--workers`) give the
//! detections of one image at a time. The ONNX Runtime engine (`#[ignore]`: needs ONNX
//! Runtime's library, scripts/install-onnx-tools.sh; CI runs them) gives Burn's detections on
//! the small preset and the reduced SSD300 of the PyTorch fixture, from the weights file and
//! from the `.onnx` file `ssd export` writes.

mod common;
#[path = "../../ssd-model/tests/common/parity.rs"]
mod parity;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ssd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssd"));
    c.env("RUST_BACKTRACE", "0");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(var);
    }
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `count` small images in `dir/images`, and the model, `dir/small.bpk`.
fn job(dir: &Path, count: u32) -> Vec<PathBuf> {
    use burn::tensor::Device;
    use ssd_data::ClassList;
    use ssd_model::{CheckpointInfo, SsdConfig};
    let config = SsdConfig::small(4);
    let info = CheckpointInfo {
        classes: ClassList::new(vec!["cat".into(), "dog".into(), "bird".into()]).expect("names"),
        config: config.clone(),
        iteration: None,
    };
    config
        .init(&Device::default())
        .expect("small preset")
        .save_trained(&dir.join("small.bpk"), &info)
        .expect("checkpoint");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("images");
    (0..count)
        .map(|i| {
            let path = images.join(format!("{i:03}.png"));
            image::RgbImage::from_fn(64 + i, 48, |x, y| {
                image::Rgb([(x * 3 + i) as u8, (y * 5) as u8, ((x + y) * i) as u8])
            })
            .save(&path)
            .expect("image");
            path
        })
        .collect()
}

fn detect(dir: &Path, input: &Path, extra: &[&str]) -> Command {
    let mut c = ssd();
    c.arg("detect")
        .arg("--trained-model")
        .arg(dir.join("small.bpk"))
        .arg("--test-image")
        .arg(input)
        .args(["--min-score", "0.05", "--output"])
        .arg(dir.join("drawn"))
        .args(extra);
    c
}

fn succeed(c: &mut Command) -> Output {
    let out = c.output().expect("ssd runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn three_shards_give_the_unsharded_lines_exactly_once() {
    let dir = scratch("shards");
    let images = job(&dir, 10);
    // A list file, relative paths, a comment and a blank line.
    let list = dir.join("list.txt");
    let mut listed = String::from("# the job\n\n");
    for p in &images {
        listed.push_str(&format!(
            "images/{}\n",
            p.file_name().and_then(|n| n.to_str()).expect("name")
        ));
    }
    std::fs::write(&list, listed).expect("list");
    let all = dir.join("all.jsonl");
    succeed(&mut detect(
        &dir,
        &list,
        &["--jsonl", all.to_str().expect("path")],
    ));
    let all = lines(&all);
    assert_eq!(all.len(), 10);
    // Without --draw, no annotated copies.
    assert!(!dir.join("drawn").exists());
    let mut sharded = Vec::new();
    for k in 0..3 {
        let out = dir.join(format!("shard{k}.jsonl"));
        let run = succeed(&mut detect(
            &dir,
            &list,
            &[
                "--shard",
                &format!("{k}/3"),
                "--jsonl",
                out.to_str().expect("path"),
            ],
        ));
        assert!(
            text(&run.stderr).contains(&format!("shard {k}/3")),
            "{}",
            text(&run.stderr)
        );
        sharded.extend(lines(&out));
    }
    assert_eq!(sharded.len(), all.len(), "each image exactly once");
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (all.iter().collect(), sharded.iter().collect());
    assert_eq!(a, b, "the same lines");
    // A Slurm array task picks its shard from the environment (ids 1..3 here).
    let out = dir.join("slurm.jsonl");
    succeed(
        detect(&dir, &list, &["--jsonl", out.to_str().expect("path")])
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3"),
    );
    assert_eq!(lines(&out), lines(&dir.join("shard1.jsonl")));
    let bad = detect(&dir, &list, &["--shard", "3/3"])
        .output()
        .expect("runs");
    assert!(!bad.status.success() && text(&bad.stderr).contains("K must be in 0..N"));
    // The results never go into an input: the list file is left as it was.
    let before = std::fs::read(&list).expect("list");
    let bad = detect(&dir, &list, &["--jsonl", list.to_str().expect("path")])
        .output()
        .expect("runs");
    assert!(!bad.status.success(), "{}", text(&bad.stderr));
    assert_eq!(std::fs::read(&list).expect("list"), before);
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn a_killed_run_resumes_with_no_duplicate_and_no_missing_line() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("kill");
    let images = job(&dir, 40);
    let results = dir.join("results.jsonl");
    let args = ["--jsonl", results.to_str().expect("path")];
    let mut child = detect(&dir, &dir.join("images"), &args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssd starts");
    // Kill it once it has written a few lines.
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&results).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            started.elapsed().as_secs() < 120,
            "no results after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("exit status");
    assert_eq!(
        status.signal(),
        Some(9),
        "killed mid-run, not finished: {status:?}"
    );
    let before = lines(&results).len();
    assert!(before < images.len(), "{before} lines before the rerun");
    let rerun = succeed(&mut detect(&dir, &dir.join("images"), &args));
    assert!(
        text(&rerun.stderr).contains(&format!("({before} already there)")),
        "{}",
        text(&rerun.stderr)
    );
    let after = lines(&results);
    let names: Vec<String> = after
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            v["image"].as_str().expect("image").to_owned()
        })
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(names.len(), images.len(), "no duplicate");
    assert_eq!(unique.len(), images.len(), "no missing image");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_and_corrupt_images_in_a_list_are_reported_and_the_job_goes_on() {
    let dir = scratch("bad");
    let images = job(&dir, 3);
    std::fs::write(dir.join("images/corrupt.png"), b"not a png").expect("corrupt");
    let list = dir.join("list.txt");
    std::fs::write(
        &list,
        "images/000.png\nimages/missing.png\nimages/corrupt.png\nimages/001.png\nimages/002.png\n",
    )
    .expect("list");
    let results = dir.join("results.jsonl");
    let out = detect(
        &dir,
        &list,
        &["--jsonl", results.to_str().expect("path"), "--draw"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.png") && stderr.contains("corrupt.png"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 5 images could not be read"),
        "{stderr}"
    );
    assert_eq!(lines(&results).len(), images.len());
    // --draw writes the annotated copies too.
    assert!(dir.join("drawn/p_000.jpg").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn batches_and_decoding_threads_give_the_detections_of_one_image_at_a_time() {
    let dir = scratch("batches");
    job(&dir, 11);
    let images = dir.join("images");
    let one = dir.join("one.jsonl");
    succeed(&mut detect(
        &dir,
        &images,
        &["--jsonl", one.to_str().expect("path")],
    ));
    let batched = dir.join("batched.jsonl");
    succeed(&mut detect(
        &dir,
        &images,
        &[
            "--jsonl",
            batched.to_str().expect("path"),
            "--batch-size",
            "4",
            "--workers",
            "3",
        ],
    ));
    let (one, batched) = (common::json_lines(&one), common::json_lines(&batched));
    assert_eq!(one.len(), 11);
    // In input order, as without batches.
    let names = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter().map(|l| l["image"].to_string()).collect()
    };
    assert_eq!(names(&one), names(&batched));
    let compared = common::assert_same_detections(&one, &batched, 1e-3, 1e-5);
    assert!(compared > 0, "random weights still detect something");
    // A bad image inside a batch is skipped alone.
    std::fs::write(images.join("005.png"), b"not a png").expect("corrupt");
    let out = detect(&dir, &images, &["--batch-size", "4"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("005.png"));
    assert_eq!(text(&out.stdout).lines().count(), 10);
    for bad in [["--batch-size", "0"], ["--workers", "0"]] {
        let out = detect(&dir, &images, &bad).output().expect("runs");
        assert!(
            !out.status.success() && text(&out.stderr).contains(bad[0]),
            "{}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `ssd detect --jsonl` with `extra` flags over `dir/images`, into `dir/<name>.jsonl`.
fn detect_into(dir: &Path, model: &Path, name: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = dir.join(format!("{name}.jsonl"));
    let mut c = ssd();
    c.arg("detect")
        .arg("--trained-model")
        .arg(model)
        .arg("--test-image")
        .arg(dir.join("images"))
        .args(["--min-score", "0.05", "--jsonl"])
        .arg(&out)
        .args(extra);
    succeed(&mut c);
    common::json_lines(&out)
}

/// Burn's detections against ONNX Runtime's, from the weights file and from the exported
/// `.onnx`: the same count, boxes within 1e-3 px, scores within 1e-5.
fn engines_agree(dir: &Path, model: &Path) {
    let burn = detect_into(dir, model, "burn", &[]);
    let ort = detect_into(
        dir,
        model,
        "ort",
        &["--engine", "onnxruntime", "--batch-size", "3"],
    );
    let compared = common::assert_same_detections(&burn, &ort, 1e-3, 1e-5);
    assert!(compared > 0, "random weights still detect something");
    let onnx = dir.join("model.onnx");
    let mut export = ssd();
    export
        .arg("export")
        .arg("--trained-model")
        .arg(model)
        .arg("--output")
        .arg(&onnx);
    succeed(&mut export);
    let from_file = detect_into(
        dir,
        &onnx,
        "ort-file",
        &["--engine", "onnxruntime", "--threads", "1"],
    );
    common::assert_same_detections(&burn, &from_file, 1e-3, 1e-5);
    // The class names come back from the file's metadata.
    assert_eq!(
        burn[0]["detections"][0]["class"],
        from_file[0]["detections"][0]["class"]
    );
    // Burn does not run an ONNX file; ONNX Runtime's flags need its engine.
    let out = ssd()
        .args(["detect", "--trained-model"])
        .arg(&onnx)
        .arg("--test-image")
        .arg(dir.join("images"))
        .output()
        .expect("runs");
    assert!(
        !out.status.success() && text(&out.stderr).contains("--engine onnxruntime"),
        "{}",
        text(&out.stderr)
    );
    let out = ssd()
        .args(["detect", "--precision", "bf16", "--trained-model"])
        .arg(model)
        .arg("--test-image")
        .arg(dir.join("images"))
        .output()
        .expect("runs");
    assert!(
        !out.status.success() && text(&out.stderr).contains("--engine onnxruntime"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs ONNX Runtime's library (scripts/install-onnx-tools.sh)"]
fn onnxruntime_engine_gives_burns_detections_on_the_small_preset() {
    let dir = scratch("ort-small");
    job(&dir, 7);
    engines_agree(&dir, &dir.join("small.bpk"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs ONNX Runtime's library (scripts/install-onnx-tools.sh)"]
fn onnxruntime_engine_gives_burns_detections_on_the_reduced_ssd300() {
    use ssd_data::ClassList;
    use ssd_model::CheckpointInfo;
    let dir = scratch("ort-reduced");
    job(&dir, 5);
    let device = burn::tensor::Device::default();
    let model = dir.join("reduced.bpk");
    let info = CheckpointInfo {
        classes: ClassList::new((1..6).map(|i| format!("class{i}")).collect()).expect("names"),
        config: parity::reduced_config(6),
        iteration: None,
    };
    parity::load(&device, "model.pth")
        .save_trained(&model, &info)
        .expect("checkpoint");
    engines_agree(&dir, &model);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn onnxruntime_not_found_is_one_line_saying_how_to_install_it() {
    let dir = scratch("ort-missing");
    job(&dir, 1);
    let out = detect(&dir, &dir.join("images"), &["--engine", "onnxruntime"])
        .env("ORT_DYLIB_PATH", dir.join("libonnxruntime.so.1.99.0"))
        .output()
        .expect("runs");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("libonnxruntime.so.1.99.0") && stderr.contains("pip install onnxruntime"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `--precision bf16`: OpenVINO's bf16 on a CPU with bf16 matrix units (AMX, AVX512-BF16; needs
/// scripts/install-openvino.sh), else a warning and fp32, with fp32's detections.
#[test]
#[ignore = "needs ONNX Runtime with OpenVINO (scripts/install-openvino.sh)"]
fn onnxruntime_bf16_runs_or_falls_back_to_fp32() {
    let dir = scratch("ort-bf16");
    job(&dir, 4);
    let model = dir.join("small.bpk");
    let fp32 = detect_into(&dir, &model, "fp32", &["--engine", "onnxruntime"]);
    let out = dir.join("bf16.jsonl");
    let run = succeed(
        ssd()
            .arg("detect")
            .arg("--trained-model")
            .arg(&model)
            .arg("--test-image")
            .arg(dir.join("images"))
            .args(["--min-score", "0.05", "--engine", "onnxruntime"])
            .args(["--precision", "bf16", "--jsonl"])
            .arg(&out),
    );
    let bf16 = common::json_lines(&out);
    assert_eq!(bf16.len(), fp32.len());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_bf16 = cpuinfo.contains("amx_bf16") || cpuinfo.contains("avx512_bf16");
    let warned = text(&run.stderr).contains("running fp32");
    assert_eq!(warned, !has_bf16, "{}", text(&run.stderr));
    if !has_bf16 {
        common::assert_same_detections(&fp32, &bf16, 1e-3, 1e-5);
    }
    let _ = std::fs::remove_dir_all(dir);
}
