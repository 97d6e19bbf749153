//! The server over real HTTP on an ephemeral 127.0.0.1 port: every route, every refusal (status
//! and JSON), and answers equal to `Detector::detect`'s for the same images.

mod common;

use std::time::Duration;

use common::{Running, defaults, detector, expected, image, jpeg, json, png, post_raw, to_json};
use ssd_model::PostProcessConfig;
use ssd_serve::ServeConfig;

fn config() -> ServeConfig {
    ServeConfig {
        backend: "flex".into(),
        ..ServeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_model_page_and_metrics() {
    let server = Running::start(config()).await;
    let (status, body) = json(
        server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));

    let (status, model) = json(
        server
            .client
            .get(server.url("/v1/model"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(model["name"], "small.bpk");
    assert_eq!(model["preset"], "small");
    assert_eq!(model["input_size"], 128);
    assert_eq!(model["backend"], "flex");
    assert_eq!(
        model["classes"],
        serde_json::json!(["class1", "class2", "class3", "class4", "class5"])
    );
    assert_eq!(model["defaults"]["top_k"], 200);
    assert!((model["defaults"]["nms_overlap"].as_f64().expect("number") - 0.45).abs() < 1e-6);
    assert!((model["defaults"]["min_score"].as_f64().expect("number") - 0.05).abs() < 1e-6);

    let page = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("text");
    assert!(html.contains("<canvas") || html.contains("createElement(\"canvas\")"));
    assert!(html.contains("/v1/detect") && html.contains("/v1/model"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.expect("text");
    for name in [
        "ssd_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "# TYPE ssd_http_request_duration_seconds histogram",
        "# TYPE ssd_batch_size histogram",
        "ssd_queue_depth 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_equal_the_one_image_path() {
    let server = Running::start(config()).await;
    let mut reference = detector();
    let a = png(&image(96, 64, 1));
    let b = jpeg(&image(50, 120, 2));
    let c = png(&image(300, 200, 3));

    // A raw body: one object in an array, named "image".
    let (status, body) = json(post_raw(&server, "", "image/png", a.clone()).await).await;
    assert_eq!(status, 200, "{body}");
    let want = expected(&mut reference, "image", &a, defaults());
    assert!(!want.detections.is_empty(), "the test model reports boxes");
    assert_eq!(body, serde_json::json!([to_json(&want)]));

    // No content type: sniffed from the bytes.
    let response = server
        .client
        .post(server.url("/v1/detect"))
        .body(b.clone())
        .send()
        .await
        .expect("request");
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!([to_json(&expected(&mut reference, "image", &b, defaults()))])
    );

    // Multipart with three files and a text field, thresholds from the query: batched together,
    // each equal to its own one-image answer, in the order sent.
    let post = PostProcessConfig {
        min_score: 0.1,
        top_k: 7,
        nms_overlap: 0.3,
        ..PostProcessConfig::default()
    };
    let part = |bytes: &Vec<u8>, name: &str, mime: &str| {
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name(name.to_owned())
            .mime_str(mime)
            .expect("mime")
    };
    let form = reqwest::multipart::Form::new()
        .text("note", "not an image")
        .part("image", part(&c, "c.png", "image/png"))
        .part("image", part(&a, "a.png", "image/png"))
        .part("image", part(&b, "b.jpg", "image/jpeg"));
    let response = server
        .client
        .post(server.url("/v1/detect?min_score=0.1&top_k=7&nms_overlap=0.3"))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    let want: Vec<serde_json::Value> = [("c.png", &c), ("a.png", &a), ("b.jpg", &b)]
        .into_iter()
        .map(|(name, bytes)| to_json(&expected(&mut reference, name, bytes, post)))
        .collect();
    assert_eq!(body, serde_json::Value::Array(want.clone()));
    assert!(
        want.iter()
            .all(|w| w["detections"].as_array().is_some_and(|d| d.len() == 7)),
        "top_k caps each image"
    );
    // Several images of one request ran as one batch.
    assert!(server.metric("ssd_batch_size_sum").await.expect("sum") >= 5.0);
    assert!(
        server
            .metric("ssd_batch_size_bucket{le=\"1\"}")
            .await
            .expect("bucket")
            < server.metric("ssd_batch_size_count").await.expect("count")
    );
    server.stop().await.expect("clean stop");
}

/// Every refusal: its status and a JSON `{"error": ...}` that says what was wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json() {
    let server = Running::start(ServeConfig {
        max_body_bytes: 64 * 1024,
        max_pixels: 100_000,
        max_images_per_request: 2,
        ..config()
    })
    .await;
    let ok = png(&image(64, 64, 4));
    let check = |status: u16, needle: &'static str| {
        move |(got, body): (u16, serde_json::Value)| {
            assert_eq!(got, status, "{body}");
            let error = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("no error: {body}"));
            assert!(
                error.contains(needle),
                "{error:?} should mention {needle:?}"
            );
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
        }
    };

    // Paths and methods.
    check(404, "/nowhere")(
        json(
            server
                .client
                .get(server.url("/nowhere"))
                .send()
                .await
                .expect("get"),
        )
        .await,
    );
    check(405, "GET")(
        json(
            server
                .client
                .get(server.url("/v1/detect"))
                .send()
                .await
                .expect("get"),
        )
        .await,
    );
    check(405, "DELETE")(
        json(
            server
                .client
                .delete(server.url("/v1/model"))
                .send()
                .await
                .expect("delete"),
        )
        .await,
    );
    check(404, "etc")(
        json(
            server
                .client
                .get(server.url("/v1/detect/..%2F..%2Fetc/passwd"))
                .send()
                .await
                .expect("get"),
        )
        .await,
    );

    // Query parameters.
    check(400, "min_score")(
        json(post_raw(&server, "?min_score=abc", "image/png", ok.clone()).await).await,
    );
    check(400, "min_score")(
        json(post_raw(&server, "?min_score=2", "image/png", ok.clone()).await).await,
    );
    check(400, "top_k")(json(post_raw(&server, "?top_k=0", "image/png", ok.clone()).await).await);
    check(400, "nms_overlap must be in (0, 1], got 2")(
        json(post_raw(&server, "?nms_overlap=2", "image/png", ok.clone()).await).await,
    );
    // `nms`, the earlier name, is still taken.
    check(400, "nms_overlap must be in (0, 1], got -1")(
        json(post_raw(&server, "?nms=-1", "image/png", ok.clone()).await).await,
    );
    check(400, "colour")(
        json(post_raw(&server, "?colour=red", "image/png", ok.clone()).await).await,
    );

    // Content: type, bytes, truncation, sizes, counts.
    check(415, "text/plain")(json(post_raw(&server, "", "text/plain", ok.clone()).await).await);
    check(400, "format")(
        json(post_raw(&server, "", "image/png", b"GIF89a not really".to_vec()).await).await,
    );
    let whole = jpeg(&image(64, 64, 5));
    check(400, "truncated")(
        json(post_raw(&server, "", "image/jpeg", whole[..whole.len() / 2].to_vec()).await).await,
    );
    let png_bytes = png(&image(64, 64, 6));
    check(400, "image")(
        json(
            post_raw(
                &server,
                "",
                "image/png",
                png_bytes[..png_bytes.len() - 30].to_vec(),
            )
            .await,
        )
        .await,
    );
    check(400, "empty")(json(post_raw(&server, "", "image/png", Vec::new()).await).await);
    check(413, "65536 bytes")(
        json(post_raw(&server, "", "image/png", vec![0; 70 * 1024]).await).await,
    );
    // A header claiming 100,000 x 100,000 pixels (a few dozen bytes): refused from the header.
    check(413, "100000")(
        json(
            post_raw(
                &server,
                "",
                "image/png",
                ssd_data::png_claiming(100_000, 100_000),
            )
            .await,
        )
        .await,
    );
    // Under the decoder's side limit but over this server's pixel limit (100,000).
    check(413, "over the limit of 100000")(
        json(post_raw(&server, "", "image/png", png(&flat(400, 300))).await).await,
    );
    let files = |n: usize| {
        (0..n).fold(reqwest::multipart::Form::new(), |form, i| {
            form.part(
                "image",
                reqwest::multipart::Part::bytes(ok.clone()).file_name(format!("{i}.png")),
            )
        })
    };
    let send = |form| {
        server
            .client
            .post(server.url("/v1/detect"))
            .multipart(form)
            .send()
    };
    check(413, "more than 2 images")(json(send(files(3)).await.expect("request")).await);
    check(400, "no image")(
        json(
            send(reqwest::multipart::Form::new().text("a", "b"))
                .await
                .expect("request"),
        )
        .await,
    );
    check(400, "boundary")(
        json(post_raw(&server, "", "multipart/form-data", ok.clone()).await).await,
    );
    check(400, "multipart")(
        json(
            post_raw(
                &server,
                "",
                "multipart/form-data; boundary=xyz",
                b"--xyz\r\nbroken".to_vec(),
            )
            .await,
        )
        .await,
    );

    // None of it hurt the server.
    let (status, body) = json(post_raw(&server, "", "image/png", ok).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        server
            .metric("ssd_http_requests_total{method=\"POST\",route=\"/v1/detect\",status=\"413\"}")
            .await
            == Some(4.0)
    );
    assert!(
        server
            .metric("ssd_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}")
            .await
            == Some(2.0)
    );
    server.stop().await.expect("clean stop");
}

/// A one-colour image (a few hundred bytes as PNG).
fn flat(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_pixel(w, h, image::Rgb([90, 120, 30]))
}

/// A request that does not get its detections in time is answered 504, and a body that does
/// not arrive in time 408; the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_and_the_server_goes_on() {
    let server = Running::start(ServeConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    // A body that never finishes: the first bytes, then silence.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender.send(Ok(vec![0x89, b'P'])).await.expect("send");
    let stream = futures_util_stream(receiver);
    let response = server
        .client
        .post(server.url("/v1/detect"))
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    let (status, body) = json(response).await;
    assert_eq!(status, 408, "{body}");
    drop(sender);
    let (status, body) =
        json(post_raw(&server, "", "image/png", png(&image(64, 64, 8))).await).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await.expect("clean stop");
}

fn futures_util_stream(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Ctrl-C / SIGTERM in `ssd serve` is `run`'s shutdown future: requests in flight are answered,
/// then `run` returns and new connections are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_what_is_in_flight() {
    let server = Running::start(ServeConfig {
        max_batch: 1,
        ..config()
    })
    .await;
    let address = server.address;
    let client = server.client.clone();
    let url = server.url("/v1/detect");
    let bytes = png(&image(200, 150, 9));
    let in_flight: Vec<_> = (0..6)
        .map(|_| {
            let request = client
                .post(&url)
                .header("content-type", "image/png")
                .body(bytes.clone())
                .send();
            tokio::spawn(request)
        })
        .collect();
    // Let the requests reach the server, then stop it while they wait for the worker.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::spawn(server.stop());
    for request in in_flight {
        let response = request.await.expect("task").expect("answered");
        assert_eq!(response.status(), 200);
    }
    stopped.await.expect("task").expect("run returns Ok");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}
