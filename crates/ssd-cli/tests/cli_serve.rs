//! `ssd serve` as a process: it prints where it listens, answers, and exits 0 on SIGTERM once
//! what is in flight is answered; bad flags are one-line errors. The page in headless Chromium
//! (`#[ignore]`: needs scripts/install-browser.sh; CI runs it) uploads an image and shows what the
//! API answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use burn::tensor::Device;
use ssd_data::ClassList;
use ssd_model::{CheckpointInfo, SsdConfig};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-cli-serve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A small-preset model with random weights and a test image, in `dir`.
fn model_and_image(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("small.bpk");
    let config = SsdConfig::small(4);
    let info = CheckpointInfo {
        classes: ClassList::new(vec!["cat".into(), "dog".into(), "bird".into()]).expect("names"),
        config: config.clone(),
        iteration: None,
    };
    config
        .init(&Device::default())
        .expect("small preset")
        .save_trained(&model, &info)
        .expect("checkpoint");
    let image = dir.join("scene.png");
    image::RgbImage::from_fn(320, 240, |x, y| {
        let inside = (80..200).contains(&x) && (60..180).contains(&y);
        if inside {
            image::Rgb([200, (x % 64) as u8 * 3, 40])
        } else {
            image::Rgb([(y / 2) as u8, 120, (x / 2) as u8])
        }
    })
    .save(&image)
    .expect("image");
    (model, image)
}

/// A running `ssd serve` on a free port, and its address.
struct Serve {
    child: Child,
    stderr: BufReader<ChildStderr>,
    address: String,
}

impl Serve {
    fn start(model: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssd"))
            .args(["serve", "--port", "0", "--trained-model"])
            .arg(model)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssd serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("first line");
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Self {
            child,
            stderr,
            address,
        }
    }

    /// A raw HTTP/1.1 exchange: the status code and the body.
    fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        )
        .expect("write");
        stream.write_all(body).expect("write body");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    /// SIGTERM, then the exit status's success and the rest of stderr.
    fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait");
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).expect("stderr");
        (status.success(), rest)
    }
}

#[cfg(unix)]
#[test]
fn serves_then_exits_0_on_sigterm() {
    let dir = temp_dir("sigterm");
    let (model, image) = model_and_image(&dir);
    let server = Serve::start(&model, &["--min-score", "0.3", "--max-batch", "4"]);
    let (status, body) = server.request("GET", "/health", "text/plain", b"");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = server.request("GET", "/v1/model", "text/plain", b"");
    assert_eq!(status, 200);
    let model_info: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        model_info["classes"],
        serde_json::json!(["cat", "dog", "bird"])
    );
    assert_eq!(model_info["backend"], "flex");
    let bytes = std::fs::read(&image).expect("image");
    let (status, body) = server.request("POST", "/v1/detect", "image/png", &bytes);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let detections = answer[0]["detections"].as_array().expect("detections");
    assert!(
        detections
            .iter()
            .all(|d| d["score"].as_f64().is_some_and(|s| s > 0.3)),
        "--min-score is the default threshold"
    );
    assert_eq!(answer[0]["width"], 320);
    let (ok, stderr) = server.terminate();
    assert!(ok, "exit status after SIGTERM: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

/// Both engines behind `ssd serve` answer the same detections (count, boxes within 1e-3 px,
/// scores within 1e-5), each with the request's own thresholds.
#[cfg(unix)]
#[test]
#[ignore = "needs ONNX Runtime's library (scripts/install-onnx-tools.sh)"]
fn onnxruntime_engine_serves_burns_detections() {
    let dir = temp_dir("onnxruntime");
    let (model, image) = model_and_image(&dir);
    let bytes = std::fs::read(&image).expect("image");
    let mut answers = Vec::new();
    for engine in ["burn", "onnxruntime"] {
        let server = Serve::start(&model, &["--engine", engine, "--max-batch", "4"]);
        let (status, body) = server.request("GET", "/v1/model", "text/plain", b"");
        assert_eq!(status, 200);
        let info: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let backend = info["backend"].as_str().expect("backend").to_owned();
        assert_eq!(
            backend.starts_with("onnxruntime cpu fp32"),
            engine == "onnxruntime",
            "{backend}"
        );
        let mut answer = Vec::new();
        for min_score in ["0.05", "0.3"] {
            let path = format!("/v1/detect?min_score={min_score}");
            let (status, body) = server.request("POST", &path, "image/png", &bytes);
            assert_eq!(status, 200, "{body}");
            let mut found: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
            found[0]["image"] = serde_json::json!(min_score);
            answer.extend(found);
        }
        let (ok, stderr) = server.terminate();
        assert!(ok, "{stderr}");
        answers.push(answer);
    }
    let compared = common::assert_same_detections(&answers[0], &answers[1], 1e-3, 1e-5);
    assert!(compared > 0, "random weights still detect something");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_flags_are_one_line_errors() {
    let dir = temp_dir("flags");
    let (model, _) = model_and_image(&dir);
    for (args, needle) in [
        (vec!["--max-batch", "0"], "--max-batch"),
        (vec!["--queue", "0"], "--queue"),
        (vec!["--max-megapixels", "0"], "--max-megapixels"),
        (vec!["--min-score", "1.5"], "--min-score"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ssd"))
            .args(["serve", "--port", "0", "--trained-model"])
            .arg(&model)
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{stderr}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ssd"))
        .args(["serve", "--port", "0", "--trained-model"])
        .arg(dir.join("missing.bpk"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("missing.bpk"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// The page in Debian's headless Chromium, driven by `tools/serve_page.py` (selenium): upload,
/// boxes listed equal the API's answer, the slider filters without a request, a screenshot.
/// `SSD_PAGE_MODEL` / `SSD_PAGE_IMAGE` use a trained model and a real image instead of the
/// random one; `SSD_PAGE_SCREENSHOT` says where the screenshot goes.
#[cfg(unix)]
#[test]
#[ignore = "needs Chromium, ChromeDriver and selenium (scripts/install-browser.sh)"]
fn the_page_shows_what_the_api_answers() {
    let dir = temp_dir("page");
    let (model, image) = match (
        std::env::var_os("SSD_PAGE_MODEL"),
        std::env::var_os("SSD_PAGE_IMAGE"),
    ) {
        (Some(m), Some(i)) => (PathBuf::from(m), PathBuf::from(i)),
        _ => model_and_image(&dir),
    };
    let screenshot =
        std::env::var_os("SSD_PAGE_SCREENSHOT").map_or_else(|| dir.join("page.png"), PathBuf::from);
    let python = std::env::var_os("SSD_BROWSER_PYTHON").map_or_else(
        || {
            let cache = std::env::var_os("SSD_CACHE").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ssd"),
                PathBuf::from,
            );
            cache.join("browser-venv/bin/python")
        },
        PathBuf::from,
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/serve_page.py");
    let server = Serve::start(&model, &[]);
    let out = Command::new(&python)
        .arg(&script)
        .arg("--url")
        .arg(format!("http://{}", server.address))
        .arg("--image")
        .arg(std::fs::canonicalize(&image).expect("image path"))
        .arg("--screenshot")
        .arg(&screenshot)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let (ok, stderr) = server.terminate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON summary");
    assert!(summary["boxes"].as_u64() > Some(0), "the page shows boxes");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000),
        "screenshot"
    );
    assert!(ok, "ssd serve after SIGTERM: {stderr}");
}
