//! `ssd serve` under load on loopback: images/s and p50/p99 request latency at 1, 8 and 64
//! concurrent clients, with dynamic batching (batches of up to 8, 5 ms to fill) and without
//! (batches of 1), beside a batch-1 loop over `Detector` (decode, resize, detect) on the same
//! image. Random weights (the cost of a forward does not depend on them; post-processing sees
//! the many boxes of an untrained model, its worst case).
//!
//! `cargo bench --bench serve -- [small] [ssd300] [--requests N] [--clients 1,8,64]
//! [--engine onnxruntime] [--precision bf16]` (ONNX Runtime: the network exported in memory, the library found as
//! `ssd detect --engine onnxruntime` finds it); a latency distribution over concurrent clients is
//! not criterion's model, so this prints its own table.

use std::time::{Duration, Instant};

use burn::tensor::Device;
use ssd_data::ClassList;
use ssd_model::{Detector, Engine, OrtOptions, Precision, SsdConfig};
use ssd_serve::{ServeConfig, Server};

/// Per-request latencies (s) and the wall time of the whole run.
struct Run {
    latencies: Vec<f64>,
    wall: f64,
}

impl Run {
    fn row(&self, what: &str) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] * 1e3;
        format!(
            "| {what} | {:.1} | {:.0} | {:.0} |",
            sorted.len() as f64 / self.wall,
            pick(0.5),
            pick(0.99)
        )
    }
}

fn detector(preset: &str, engine: &Engine) -> Detector {
    let classes = ClassList::voc();
    let config = SsdConfig::named(preset, 21).expect("preset");
    let model = config.init(&Device::default()).expect("model");
    Detector::new(model, config, classes)
        .and_then(|d| d.into_engine(engine))
        .expect("detector")
}

fn test_image() -> Vec<u8> {
    let image = image::RgbImage::from_fn(500, 375, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode");
    out.into_inner()
}

fn detector_loop(detector: &Detector, bytes: &[u8], requests: usize) -> Run {
    let mut latencies = Vec::with_capacity(requests);
    let start = Instant::now();
    for _ in 0..requests {
        let t = Instant::now();
        let image = ssd_data::decode_rgb(bytes, "bench.jpg".as_ref(), u64::MAX).expect("decode");
        detector.detect(&[image]).expect("detect");
        latencies.push(t.elapsed().as_secs_f64());
    }
    Run {
        latencies,
        wall: start.elapsed().as_secs_f64(),
    }
}

async fn load(
    preset: &str,
    engine: &Engine,
    config: ServeConfig,
    clients: usize,
    requests: usize,
    bytes: &[u8],
) -> Run {
    let server = Server::new(detector(preset, engine), config).expect("server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/detect",
        listener.local_addr().expect("address")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let send = |client: reqwest::Client, url: String, bytes: Vec<u8>| async move {
        let t = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "image/jpeg")
            .body(bytes)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
        t.elapsed().as_secs_f64()
    };
    // Warm-up: one request per client.
    for _ in 0..clients.min(8) {
        send(client.clone(), url.clone(), bytes.to_vec()).await;
    }
    let per_client = requests.div_ceil(clients);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, bytes) = (client.clone(), url.clone(), bytes.to_vec());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    latencies.push(send(client.clone(), url.clone(), bytes.clone()).await);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let wall = start.elapsed().as_secs_f64();
    let _ = stop.send(());
    serving.await.expect("server task").expect("server");
    Run { latencies, wall }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests_arg = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok());
    let mut presets: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| matches!(*a, "small" | "ssd300"))
        .collect();
    if presets.is_empty() {
        presets = vec!["small", "ssd300"];
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let client_counts: Vec<usize> = flag("--clients").map_or_else(
        || vec![1, 8, 64],
        |list| list.split(',').filter_map(|c| c.parse().ok()).collect(),
    );
    let engine = match flag("--engine") {
        Some("onnxruntime") => Engine::OnnxRuntime(OrtOptions {
            precision: if flag("--precision") == Some("bf16") {
                Precision::Bf16
            } else {
                Precision::Fp32
            },
            ..OrtOptions::default()
        }),
        _ => Engine::Burn,
    };
    let bytes = test_image();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for preset in presets {
        let requests = requests_arg.unwrap_or(if preset == "small" { 256 } else { 64 });
        let d = detector(preset, &engine);
        println!(
            "\n{preset} on {}, 500x375 JPEG, {requests} requests per row\n",
            d.engine()
        );
        println!("| configuration | images/s | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|");
        detector_loop(&d, &bytes, 2);
        println!(
            "{}",
            detector_loop(&d, &bytes, requests).row("`Detector::detect` loop, batch 1")
        );
        drop(d);
        for &clients in &client_counts {
            for (batching, max_batch) in [("off", 1), ("on", 8)] {
                let config = ServeConfig {
                    max_batch,
                    max_wait: Duration::from_millis(5),
                    queue_capacity: 256,
                    // 64 clients queue for a minute or more on 2 cores (SSD300 on Flex).
                    request_timeout: Duration::from_secs(600),
                    ..ServeConfig::default()
                };
                let run =
                    runtime.block_on(load(preset, &engine, config, clients, requests, &bytes));
                let what = format!("serve, {clients} client(s), batching {batching}");
                println!("{}", run.row(&what));
            }
        }
    }
}
