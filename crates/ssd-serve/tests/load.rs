//! The server under load on loopback: 64 concurrent clients x 20 requests, every answer checked
//! against the detections of its own image; then a queue held full, 503s, and recovery.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Running, defaults, detector, expected, image, png, to_json};
use ssd_serve::ServeConfig;

const CLIENTS: usize = 64;
const REQUESTS: usize = 20;

/// Resident and peak memory of this process (server and clients), in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_get_their_own_answers_in_batches() {
    let server = Arc::new(
        Running::start(ServeConfig {
            max_batch: 8,
            max_wait: Duration::from_millis(5),
            queue_capacity: 2 * CLIENTS,
            backend: "flex".into(),
            ..ServeConfig::default()
        })
        .await,
    );
    // Four images of different sizes and contents, and what the one-image path finds in each.
    let mut reference = detector();
    let images: Vec<Vec<u8>> = [(120, 90), (64, 64), (200, 100), (75, 140)]
        .into_iter()
        .enumerate()
        .map(|(i, (w, h))| png(&image(w, h, 10 + i as u32)))
        .collect();
    let answers: Vec<serde_json::Value> = images
        .iter()
        .map(|bytes| to_json(&expected(&mut reference, "image", bytes, defaults())))
        .collect();
    let distinct: std::collections::HashSet<String> = answers
        .iter()
        .map(|a| a["detections"].to_string())
        .collect();
    assert_eq!(distinct.len(), images.len(), "the images' answers differ");
    let images = Arc::new(images);
    let answers = Arc::new(answers);

    // One request of each image first (the model's first runs allocate), then measure.
    for bytes in images.iter() {
        let r = common::post_raw(&server, "", "image/png", bytes.clone()).await;
        assert_eq!(r.status(), 200);
    }
    let (rss_before, _) = memory_kib();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (server, images, answers) = (server.clone(), images.clone(), answers.clone());
            tokio::spawn(async move {
                let mut statuses = HashMap::new();
                for r in 0..REQUESTS {
                    let which = (c + r) % images.len();
                    let response =
                        common::post_raw(&server, "", "image/png", images[which].clone()).await;
                    let status = response.status().as_u16();
                    *statuses.entry(status).or_insert(0) += 1;
                    let body: serde_json::Value = response.json().await.expect("JSON");
                    assert_eq!(status, 200, "client {c} request {r}: {body}");
                    assert_eq!(
                        body,
                        serde_json::Value::Array(vec![answers[which].clone()]),
                        "client {c} request {r} got another image's detections"
                    );
                }
                statuses
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("client").values().sum::<usize>();
    }
    assert_eq!(answered, CLIENTS * REQUESTS, "every request answered");

    let count = server.metric("ssd_batch_size_count").await.expect("count");
    let ones = server
        .metric("ssd_batch_size_bucket{le=\"1\"}")
        .await
        .expect("bucket");
    let images_run = server.metric("ssd_images_total").await.expect("images");
    assert_eq!(
        images_run as usize,
        CLIENTS * REQUESTS + 4,
        "each image run once"
    );
    assert!(
        ones < count,
        "batches larger than 1: {ones} of {count} batches had one image"
    );
    let mean = images_run / count;
    eprintln!("{count} batches, mean {mean:.2} images, {ones} of one image");
    assert_eq!(server.metric("ssd_queue_depth").await, Some(0.0));

    let (rss_after, peak) = memory_kib();
    eprintln!("memory: {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB");
    // 1,280 requests may not leave their buffers behind: at most 256 MiB more than before.
    assert!(
        rss_after < rss_before + 256 * 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_then_recovers() {
    let server = Arc::new(
        Running::start(ServeConfig {
            max_batch: 1,
            max_wait: Duration::ZERO,
            queue_capacity: 2,
            backend: "flex".into(),
            ..ServeConfig::default()
        })
        .await,
    );
    let mut reference = detector();
    let bytes = png(&image(320, 240, 20));
    let want = serde_json::Value::Array(vec![to_json(&expected(
        &mut reference,
        "image",
        &bytes,
        defaults(),
    ))]);
    let burst: Vec<_> = (0..48)
        .map(|_| {
            let (server, bytes) = (server.clone(), bytes.clone());
            tokio::spawn(async move {
                let response = common::post_raw(&server, "", "image/png", bytes).await;
                let status = response.status().as_u16();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().expect("ascii").to_owned());
                let body: serde_json::Value = response.json().await.expect("JSON");
                (status, retry, body)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for request in burst {
        let (status, retry, body) = request.await.expect("request");
        match status {
            200 => {
                assert_eq!(body, want);
                ok += 1;
            }
            503 => {
                assert_eq!(retry.as_deref(), Some("1"), "{body}");
                let error = body["error"].as_str().expect("error");
                assert!(error.contains("queue is full"), "{error}");
                refused += 1;
            }
            other => panic!("status {other}: {body}"),
        }
    }
    eprintln!("{ok} answered, {refused} refused");
    assert!(
        refused > 0,
        "a queue of 2 refuses some of 48 simultaneous requests"
    );
    assert!(ok >= 2, "the queued ones were answered");
    assert_eq!(
        server.metric("ssd_queue_full_total").await,
        Some(refused as f64)
    );
    // Recovery: the queue drained, the next request is answered.
    let response = common::post_raw(&server, "", "image/png", bytes.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("JSON"),
        want
    );
}
