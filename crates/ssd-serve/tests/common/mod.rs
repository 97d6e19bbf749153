//! What the server tests share: a small-preset model on disk, test images, a running server.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use image::{ImageFormat, RgbImage};
use ssd_data::ClassList;
use ssd_model::{CheckpointInfo, Detector, ImageDetections, PostProcessConfig, SsdConfig};
use ssd_serve::{ServeConfig, Server};
use tokio::sync::oneshot;

/// The thresholds the test server is started with: low enough that a randomly initialised
/// model reports many boxes.
pub fn defaults() -> PostProcessConfig {
    PostProcessConfig {
        min_score: 0.05,
        ..PostProcessConfig::default()
    }
}

/// A small-preset model with random weights (5 classes), written once per test binary.
pub fn model_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ssd-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("small.bpk");
        let config = SsdConfig::small(6);
        let model = config.init(&Device::default()).expect("small preset");
        let classes =
            ClassList::new((1..6).map(|i| format!("class{i}")).collect()).expect("class names");
        let info = CheckpointInfo {
            config,
            classes,
            iteration: None,
        };
        model.save_trained(&path, &info).expect("checkpoint");
        path
    })
}

/// The model as a detector with [`defaults`].
pub fn detector() -> Detector {
    Detector::load(model_file(), &Device::default())
        .expect("detector")
        .with_post_process(defaults())
}

/// An RGB test image of `w` x `h` with a pattern seeded by `seed`.
pub fn image(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = |k: u32| ((x * (3 + k + seed) + y * (5 + 2 * k) + seed * 17) % 251) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

/// `image` encoded as PNG.
pub fn png(image: &RgbImage) -> Vec<u8> {
    encode(image, ImageFormat::Png)
}

/// `image` encoded as JPEG.
pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    encode(image, ImageFormat::Jpeg)
}

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// What the one-image path (`Detector::detect`, the code of `ssd detect`) answers for `bytes`
/// named `name`, with thresholds `post`.
pub fn expected(
    detector: &mut Detector,
    name: &str,
    bytes: &[u8],
    post: PostProcessConfig,
) -> ImageDetections {
    let image = image::load_from_memory(bytes).expect("decode").to_rgb8();
    let size = [image.width(), image.height()];
    let saved = *detector.post_process();
    detector.set_post_process(post);
    let found = detector.detect(&[image]).expect("detect").remove(0);
    detector.set_post_process(saved);
    detector.describe(name, size, &found)
}

/// A server on an ephemeral 127.0.0.1 port, stopped when dropped (or by [`Running::stop`]).
pub struct Running {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<ssd_serve::Stopped, ssd_serve::ServeError>>>,
}

impl Running {
    pub async fn start(config: ServeConfig) -> Self {
        let server = Server::new(detector(), config).expect("server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Asks the server to stop and waits for it; what `run` returned.
    pub async fn stop(mut self) -> Result<ssd_serve::Stopped, ssd_serve::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("task").await.expect("server task")
    }

    /// The value of the metric line starting with `prefix` (name and labels).
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Sends `bytes` as the raw body of `POST /v1/detect{query}`.
pub async fn post_raw(
    server: &Running,
    query: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    server
        .client
        .post(server.url(&format!("/v1/detect{query}")))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("request")
}

/// The answer's status and its JSON body.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

/// `ImageDetections` as the JSON the server sends (through text: an `f32` is written in its
/// shortest form, as the server writes it).
pub fn to_json(d: &ImageDetections) -> serde_json::Value {
    serde_json::from_str(&serde_json::to_string(d).expect("json")).expect("json")
}
