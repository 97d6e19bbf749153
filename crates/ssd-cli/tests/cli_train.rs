//! `ssd train`, `ssd detect` and `ssd eval --trained-model` as a user runs them: exit codes,
//! one-line errors, checkpoints that survive SIGKILL, Ctrl-C, NaN stops, annotated images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ssd_data::{
    SYNTHETIC_COCO_IDS, SyntheticConfig, SyntheticFormat, write_synthetic, write_synthetic_as,
};

fn ssd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssd"));
    c.env("RUST_BACKTRACE", "0");
    c
}

fn run(args: &[&str]) -> Output {
    ssd().args(args).output().expect("ssd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny_model.json")
        .display()
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A scratch folder with a tiny synthetic dataset in `data/`; results go to `results/`.
fn scene(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch(name);
    let data = dir.join("data");
    let config = SyntheticConfig {
        seed: 5,
        ..SyntheticConfig::large_objects(16, 6)
    };
    write_synthetic(&data, &config).expect("synthetic data");
    let results = dir.join("results");
    (dir, data, results)
}

/// Runs `c`, which must succeed.
fn succeed(c: &mut Command) -> Output {
    let out = c.output().expect("ssd runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

/// `ssd train` on the tiny data with the tiny model and the data's class file, plus `extra`.
fn train_command(data: &Path, results: &Path, extra: &[&str]) -> Command {
    let mut c = tiny_train(data, results);
    c.arg("--classes").arg(data.join("classes.txt")).args(extra);
    c
}

/// `ssd train` on `data` with the tiny model, its classes the dataset's own.
fn tiny_train(data: &Path, results: &Path) -> Command {
    let mut c = ssd();
    c.args(["train", "--dataroot"])
        .arg(data)
        .args([
            "--model",
            &tiny_model(),
            "--batch-size",
            "4",
            "--workers",
            "1",
        ])
        .args([
            "--expand-ratio",
            "1",
            "--model-save-name",
            "tiny",
            "--results",
        ])
        .arg(results);
    c
}

/// Stderr is one line starting with `error:`, no panic, no backtrace.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.last().is_some_and(|l| l.starts_with("error:")),
        "{err}"
    );
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_arguments_give_clear_errors() {
    let (dir, data, results) = scene("args");
    let out = run(&["train", "--model", "small"]);
    assert_one_line_error(&out, 1, "--dataroot is required");
    let out = train_command(&data, &results, &["--batch-size", "0"])
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "--batch-size");
    let out = train_command(&data, &results, &["--devices", "0,1"])
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "has one device (0)");
    let out = train_command(&data, &results, &["--devices", "0,0"])
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "listed twice");
    let out = train_command(&data, &results, &["--lr", "fast"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "clap rejects a non-number");
    let missing = dir.join("VOC2099");
    let out = run(&[
        "train",
        "--dataroot",
        missing.to_str().expect("utf-8"),
        "--model",
        "small",
    ]);
    assert_one_line_error(&out, 1, "VOC2099");
    let out = train_command(&data, &results, &["--model", "ssd301"])
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "ssd301");
    let out = train_command(&data, &results, &["--resume"])
        .arg(dir.join("nope"))
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "nope");
    // An I/O error is said once, with the file.
    let out = run(&[
        "train",
        "--dataroot",
        data.to_str().expect("utf-8"),
        "--classes",
        "/",
    ]);
    assert_one_line_error(&out, 1, "Is a directory");
    assert_eq!(
        text(&out.stderr).matches("Is a directory").count(),
        1,
        "{}",
        text(&out.stderr)
    );
    let out = train_command(&data, &results, &["--iterations", "0"])
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "--iterations must be at least 1");
    let bad_config = dir.join("bad.toml");
    std::fs::write(&bad_config, "batch_size = 4\n").expect("write");
    let out = train_command(&data, &results, &["--config"])
        .arg(&bad_config)
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "bad.toml");
    let out = run(&[
        "detect",
        "--trained-model",
        dir.join("none.bpk").to_str().expect("utf-8"),
        "--test-image",
        ".",
    ]);
    assert_one_line_error(&out, 1, "none.bpk");
    let _ = std::fs::remove_dir_all(dir);
}

fn checkpoints(weights: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(weights)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn partials(weights: &Path) -> usize {
    checkpoints(weights)
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".partial-"))
        })
        .count()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A training run far longer than the test, once it has done a few iterations (output piped).
fn long_run(data: &Path, results: &Path) -> std::process::Child {
    let child = train_command(
        data,
        results,
        &[
            "--iterations",
            "100000",
            "--save-every",
            "100000",
            "--log-every",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let csv = results.join("loss/tiny.csv");
    wait_for("a few iterations", Duration::from_secs(120), || {
        std::fs::read_to_string(&csv).is_ok_and(|t| t.lines().count() > 3)
    });
    child
}

/// A checkpoint folder loads as a model and holds a resumable state.
fn assert_loadable(dir: &Path) {
    let device = burn::tensor::Device::flex();
    ssd_model::Detector::load(dir, &device)
        .unwrap_or_else(|e| panic!("{} does not load: {e:#}", dir.display()));
    ssd_train::read_state(dir).unwrap_or_else(|e| panic!("{} has no state: {e:#}", dir.display()));
}

#[test]
fn sigkill_during_a_checkpoint_write_leaves_loadable_checkpoints_and_resume_works() {
    let (dir, data, results) = scene("kill");
    let weights = results.join("weights");
    let mut child = train_command(
        &data,
        &results,
        &[
            "--iterations",
            "1000",
            "--save-every",
            "2",
            "--log-every",
            "1",
        ],
    )
    .env("SSD_TEST_CHECKPOINT_DELAY_MS", "300")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    // Let one checkpoint complete, then kill while the next one is half written.
    wait_for("a first checkpoint", Duration::from_secs(120), || {
        checkpoints(&weights)
            .iter()
            .any(|p| p.join("train.json").exists() && !p.to_string_lossy().contains(".partial"))
    });
    wait_for(
        "a checkpoint being written",
        Duration::from_secs(60),
        || partials(&weights) > 0,
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(partials(&weights) > 0, "killed in the middle of a write");
    let complete: Vec<PathBuf> = checkpoints(&weights)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    assert!(!complete.is_empty());
    for c in &complete {
        assert_loadable(c);
    }
    // Resume from the last complete one and finish.
    let last = complete.last().expect("one").clone();
    let (_, state) = ssd_train::read_state(&last).expect("state");
    let target = (state.iteration + 2).to_string();
    succeed(
        train_command(&data, &results, &["--iterations", &target])
            .arg("--resume")
            .arg(&last),
    );
    assert_eq!(
        partials(&weights),
        0,
        "stale partial folders are cleaned up"
    );
    assert_loadable(&weights.join(format!("tiny_{target}")));
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let (dir, data, results) = scene("sigint");
    let child = long_run(&data, &results);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("exits");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("resume with --resume"), "{stdout}");
    let saved = checkpoints(&results.join("weights"));
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_loadable(&saved[0]);
    let _ = std::fs::remove_dir_all(dir);
}

/// The same run started twice (two terminals, a scheduler retrying): the second is refused with
/// one line naming the process that holds the folder, and the first keeps its loss log to
/// itself. Once the first is killed (`kill -9`, nothing cleaned up), the folder is free.
#[test]
fn a_second_run_in_a_busy_results_folder_is_refused_naming_the_holder() {
    let (dir, data, results) = scene("busy");
    let mut first = long_run(&data, &results);
    let out = train_command(&data, &results, &["--iterations", "2", "--overwrite"])
        .output()
        .expect("runs");
    assert_one_line_error(
        &out,
        1,
        &format!("in use by another training run (process {})", first.id()),
    );
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let csv = std::fs::read_to_string(results.join("loss/tiny.csv")).expect("loss csv");
    let iterations: Vec<u64> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    assert!(
        iterations.windows(2).all(|w| w[1] == w[0] + 1),
        "one run's rows only: {iterations:?}"
    );
    succeed(&mut train_command(
        &data,
        &results,
        &["--iterations", "2", "--overwrite"],
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_diverging_run_stops_naming_the_iteration_and_saves_nothing_bad() {
    let (dir, data, results) = scene("nan");
    let out = train_command(
        &data,
        &results,
        &["--iterations", "200", "--save-every", "1", "--lr", "1e30"],
    )
    .output()
    .expect("runs");
    assert_one_line_error(&out, 1, "at iteration");
    let err = text(&out.stderr);
    assert!(err.contains("last good checkpoint"), "{err}");
    for c in checkpoints(&results.join("weights")) {
        assert_loadable(&c);
        let weights = std::fs::read(c.join("model.bpk")).expect("model");
        assert!(!weights.is_empty());
    }
    assert!(
        !results.join("weights/tiny.bpk").exists(),
        "no final model from a diverged run"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_image_that_goes_bad_during_training_is_named_and_progress_is_kept() {
    let (dir, data, results) = scene("badimage");
    let child = long_run(&data, &results);
    // Every training image is read once per epoch: the run meets this one within a few batches.
    std::fs::write(data.join("JPEGImages/000003.jpg"), b"not a jpeg").expect("corrupt");
    let out = child.wait_with_output().expect("exits");
    assert_one_line_error(&out, 1, "000003.jpg");
    assert!(text(&out.stderr).contains("training stopped at iteration"));
    let saved = checkpoints(&results.join("weights"));
    assert_eq!(saved.len(), 1, "progress saved before the error: {saved:?}");
    assert_loadable(&saved[0]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A resumed COCO run keeps its checkpoint's category ids (results are written with them), and
/// data whose ids differ is refused even when the names match; a COCO file without a single
/// annotation is named, not reported as an empty image set.
#[test]
fn resuming_a_coco_run_keeps_its_category_ids() {
    let dir = scratch("coco-resume");
    let data = dir.join("coco");
    let config = SyntheticConfig {
        seed: 5,
        ..SyntheticConfig::large_objects(8, 2)
    };
    write_synthetic_as(&data, &config, SyntheticFormat::Coco).expect("synthetic data");
    let results = dir.join("results");
    let train = |extra: &[&str]| {
        let mut c = tiny_train(&data, &results);
        c.args(extra);
        c
    };
    let ids = |checkpoint: &Path| {
        let text = std::fs::read_to_string(checkpoint.join("train.json")).expect("train.json");
        let state: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        state["category_ids"].clone()
    };
    let expected = serde_json::json!(SYNTHETIC_COCO_IDS);
    succeed(&mut train(&["--iterations", "2", "--save-every", "2"]));
    let first = results.join("weights/tiny_2");
    assert_eq!(ids(&first), expected);
    let resume = first.display().to_string();
    succeed(&mut train(&["--resume", &resume, "--iterations", "4"]));
    let second = results.join("weights/tiny_4");
    assert_eq!(
        ids(&second),
        expected,
        "the resumed run's checkpoint keeps them"
    );

    // The same names under other ids.
    let file = data.join("annotations/instances_trainval.json");
    let text = std::fs::read_to_string(&file).expect("annotations");
    let renumbered = text
        .replace("\"category_id\": 42", "\"category_id\": 43")
        .replace("{\"id\": 42, \"name\"", "{\"id\": 43, \"name\"");
    assert_ne!(renumbered, text);
    std::fs::write(&file, renumbered).expect("write");
    let resume = second.display().to_string();
    let out = train(&["--resume", &resume, "--iterations", "6"])
        .output()
        .expect("runs");
    assert_one_line_error(
        &out,
        1,
        "category id 43 (named \"cross\" here) is not one of the model's category ids [3, 7, 11, 19, 42]",
    );

    // No annotations at all: the file is named and says so.
    let mut emptied: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("annotations")).expect("JSON");
    emptied["annotations"] = serde_json::json!([]);
    let emptied = emptied.to_string();
    std::fs::write(&file, emptied).expect("write");
    let fresh = dir.join("fresh");
    let mut c = train(&["--iterations", "2"]);
    let out = c.arg("--results").arg(&fresh).output().expect("runs");
    assert_one_line_error(
        &out,
        1,
        "instances_trainval.json: no image of `trainval` has a training target: 8 images, 0 annotations",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_then_detect_and_eval_with_the_binary() {
    let (dir, data, results) = scene("detect");
    let config = dir.join("train.toml");
    // The config file sets the iterations; the flag overrides its batch size.
    std::fs::write(&config, "iterations = 4\nbatch-size = 16\nlog-every = 2\n").expect("write");
    let out = succeed(train_command(&data, &results, &["--config"]).arg(&config));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("iter 4/4"), "{stdout}");
    assert!(
        stdout.contains("batch 4"),
        "the flag wins over the file: {stdout}"
    );
    let model = results.join("weights/tiny.bpk");
    assert!(model.exists());
    assert!(results.join("loss/tiny.png").exists());
    let csv = std::fs::read_to_string(results.join("loss/tiny.csv")).expect("loss csv");
    assert_eq!(csv.lines().count(), 5, "header and 4 rows: {csv}");
    for row in csv.lines() {
        assert_eq!(row.split(',').count(), 6, "{row}");
    }

    let image = data.join("JPEGImages/000017.jpg");
    let images = dir.join("images");
    let out = succeed(
        ssd()
            .args(["detect", "--trained-model"])
            .arg(&model)
            .arg("--test-image")
            .arg(&image)
            .args(["--min-score", "0.0", "--top-k", "5", "--output"])
            .arg(&images),
    );
    let line: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON line");
    let detections = line["detections"].as_array().expect("detections");
    assert_eq!(detections.len(), 5, "--top-k caps the detections: {line}");
    let names = std::fs::read_to_string(data.join("classes.txt")).expect("classes");
    for d in detections {
        let class = d["class"].as_str().expect("class name");
        assert!(
            names.lines().any(|n| n == class),
            "{class} is one of {names}"
        );
    }
    let written = image::open(images.join("p_000017.jpg")).expect("annotated image");
    let original = image::open(&image).expect("original");
    assert_eq!(
        (written.width(), written.height()),
        (original.width(), original.height())
    );
    // A checkpoint folder works as --trained-model too, and a folder of images.
    let checkpoint = results.join("weights/tiny_4");
    let out = succeed(
        ssd()
            .args(["detect", "--trained-model"])
            .arg(&checkpoint)
            .arg("--test-image")
            .arg(data.join("JPEGImages"))
            .arg("--output")
            .arg(&images),
    );
    assert_eq!(text(&out.stdout).lines().count(), 22, "one line per image");
    // In a folder, a bad image is named and skipped (its OS cause said once), the others done,
    // and the exit code says so; `a.jpg` and `a.png` get distinct outputs, and so do two names
    // that are not UTF-8 (Latin-1 `café.jpg` and `naïve.jpg`).
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).expect("mkdir");
    std::fs::copy(&image, mixed.join("a.jpg")).expect("copy");
    original.save(mixed.join("a.png")).expect("png");
    std::fs::write(mixed.join("b.jpg"), b"not a jpeg").expect("bad image");
    std::fs::create_dir_all(mixed.join("d.jpg")).expect("a folder named like an image");
    let latin1 = |name: &[u8]| {
        use std::os::unix::ffi::OsStringExt;
        std::ffi::OsString::from_vec(name.to_vec())
    };
    for name in [&b"caf\xe9.jpg"[..], b"na\xefve.jpg"] {
        std::fs::copy(&image, mixed.join(latin1(name))).expect("copy");
    }
    let mixed_out = dir.join("mixed-out");
    let out = ssd()
        .args(["detect", "--trained-model"])
        .arg(&model)
        .arg("--test-image")
        .arg(&mixed)
        .arg("--output")
        .arg(&mixed_out)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).lines().count(), 4, "the four good images");
    let err = text(&out.stderr);
    assert!(err.contains("b.jpg") && err.contains("2 of 6"), "{err}");
    let skipped = err
        .lines()
        .find(|l| l.starts_with("skipped:") && l.contains("d.jpg"))
        .unwrap_or_else(|| panic!("d.jpg skipped: {err}"));
    assert_eq!(skipped.matches("os error").count(), 1, "{skipped}");
    assert!(mixed_out.join("p_a_jpg.jpg").exists() && mixed_out.join("p_a_png.jpg").exists());
    for name in [&b"p_caf\xe9.jpg"[..], b"p_na\xefve.jpg"] {
        assert!(mixed_out.join(latin1(name)).exists(), "{name:?}");
    }
    let outputs = std::fs::read_dir(&mixed_out).expect("outputs").count();
    assert_eq!(outputs, 4, "one annotated copy per good image");

    let det = dir.join("det");
    let out = succeed(
        ssd()
            .args(["eval", "--trained-model"])
            .arg(&model)
            .arg("--dataroot")
            .arg(&data)
            .arg("--detections")
            .arg(&det)
            .arg("--json"),
    );
    let json: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    assert!(json["map"].is_number(), "{json}");
    assert!(det.join("comp4_det_test_circle.txt").exists());
    // The result files it wrote give the same mAP in result-file mode.
    let out = succeed(
        ssd()
            .args(["eval", "--dataroot"])
            .arg(&data)
            .arg("--classes")
            .arg(data.join("classes.txt"))
            .arg("--detections")
            .arg(&det)
            .arg("--json"),
    );
    let again: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    assert_eq!(json["map"], again["map"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// `ssd detect` on the full-size PyTorch files of the parity fixtures (amdegroot and torchvision
/// layouts, generated by `tools/make_model_fixtures.py --full`; CI's full-size step sets
/// `SSD_FULL_PARITY_DIR`).
#[test]
#[ignore = "needs SSD_FULL_PARITY_DIR (tools/make_model_fixtures.py --full)"]
fn detect_runs_pytorch_weights_unchanged() {
    let full = PathBuf::from(std::env::var("SSD_FULL_PARITY_DIR").expect("SSD_FULL_PARITY_DIR"));
    let (dir, data, _) = scene("pth");
    let image = data.join("JPEGImages/000001.jpg");
    for file in ["model.pth", "torchvision.pth"] {
        let out = ssd()
            .args(["detect", "--trained-model"])
            .arg(full.join(file))
            .arg("--test-image")
            .arg(&image)
            .args(["--min-score", "0.0", "--top-k", "3", "--output"])
            .arg(dir.join(file))
            .output()
            .expect("runs");
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        let line: serde_json::Value =
            serde_json::from_str(text(&out.stdout).trim()).expect("JSON line");
        assert_eq!(
            line["detections"].as_array().map(Vec::len),
            Some(3),
            "{file}: {line}"
        );
        assert!(dir.join(file).join("p_000001.jpg").exists());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A PyTorch state dict of a network its keys do not name (the reduced SSD300 of the parity
/// fixtures, in amdegroot's layout) runs with `--model`; without it the load names what does not
/// fit, and `--model` with a file that carries its own network is refused.
#[test]
fn model_names_the_network_of_a_pth() {
    let (dir, data, _) = scene("pth-model");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pth = fixtures.join("crates/ssd-model/tests/fixtures/amdegroot_reduced/model.pth");
    let model = fixtures.join("tests/fixtures/reduced_ssd300.json");
    let image = data.join("JPEGImages/000001.jpg");
    let detect = |extra: &[&std::ffi::OsStr]| {
        ssd()
            .args(["detect", "--trained-model"])
            .arg(&pth)
            .arg("--test-image")
            .arg(&image)
            .args(["--min-score", "0.0", "--top-k", "3", "--classes"])
            .arg(data.join("classes.txt"))
            .arg("--output")
            .arg(dir.join("out"))
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = detect(&[]);
    assert_one_line_error(&out, 1, "model.pth");
    let out = detect(&["--model".as_ref(), model.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    assert_eq!(
        line["detections"].as_array().map(Vec::len),
        Some(3),
        "{line}"
    );
    let bpk = dir.join("model.bpk");
    std::fs::write(&bpk, b"not read").expect("write");
    let out = ssd()
        .args(["detect", "--trained-model"])
        .arg(&bpk)
        .arg("--test-image")
        .arg(&image)
        .arg("--model")
        .arg(&model)
        .output()
        .expect("runs");
    assert_one_line_error(&out, 1, "--model names the network of a PyTorch .pth");
    let _ = std::fs::remove_dir_all(dir);
}

/// `ssd synthetic` writes the quickstart's dataset at the size asked for, replaces an earlier
/// one, and leaves a folder holding anything else alone.
#[test]
fn synthetic_writes_a_dataset_and_refuses_a_foreign_folder() {
    let dir = scratch("synthetic");
    let root = dir.join("voc");
    for seed in ["1", "2"] {
        let out = succeed(ssd().arg("synthetic").arg(&root).args([
            "--train-images",
            "5",
            "--test-images",
            "3",
            "--seed",
            seed,
        ]));
        assert!(text(&out.stdout).contains("8 images (5 trainval, 3 test)"));
    }
    let lines = |set: &str| {
        std::fs::read_to_string(root.join(format!("ImageSets/Main/{set}.txt")))
            .expect("image set")
            .lines()
            .count()
    };
    assert_eq!((lines("trainval"), lines("test")), (5, 3));
    assert!(root.join("classes.txt").exists());
    // Sparse scenes (1 to 4 objects) against the quickstart's (2 to 6), on the same images.
    let objects = |extra: &[&str]| {
        let out = succeed(
            ssd()
                .arg("synthetic")
                .arg(dir.join("count"))
                .args(["--train-images", "30", "--test-images", "0"])
                .args(extra),
        );
        let said = text(&out.stdout);
        let count = said
            .split(", ")
            .find_map(|part| part.split_once(" objects ("))
            .and_then(|(n, _)| n.trim().parse::<usize>().ok());
        count.unwrap_or_else(|| panic!("no object count in {said}"))
    };
    let (sparse, busy) = (objects(&["--sparse"]), objects(&[]));
    assert!(
        (30..=120).contains(&sparse) && busy > sparse,
        "{sparse} vs {busy}"
    );
    let out = ssd()
        .arg("synthetic")
        .arg(dir.join("both"))
        .args(["--sparse", "--video"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let coco = dir.join("coco");
    succeed(ssd().arg("synthetic").arg(&coco).args([
        "--format",
        "coco",
        "--train-images",
        "2",
        "--test-images",
        "1",
    ]));
    assert!(coco.join("annotations/instances_trainval.json").exists());
    let foreign = dir.join("mine");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "keep me").expect("write");
    let out = ssd().arg("synthetic").arg(&foreign).output().expect("runs");
    assert_one_line_error(&out, 1, "notes.txt");
    assert!(foreign.join("notes.txt").exists());
    let _ = std::fs::remove_dir_all(dir);
}
