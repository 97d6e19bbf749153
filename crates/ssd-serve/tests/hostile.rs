//! The server against careless and malicious clients, over raw TCP where a well-behaved HTTP
//! client would not do it: uploads that cost more memory to decode than they weigh, connections
//! that send their head slowly or never, more connections than allowed, a half-sent request at
//! shutdown, a body over the limit sent whole before the answer is read, and settings that would
//! allocate or wait without bound.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Running, image, json, png, post_raw};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgba};
use ssd_serve::ServeConfig;
use tokio::net::TcpStream;

fn config() -> ServeConfig {
    ServeConfig {
        backend: "flex".into(),
        ..ServeConfig::default()
    }
}

/// A PNG of `w` x `h` 16-bit RGBA zeros: a few KB that decode into 8 bytes a pixel.
fn rgba16_zeros(w: u32, h: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgba16(ImageBuffer::<Rgba<u16>, _>::new(w, h));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("encode");
    out.into_inner()
}

/// Writes all of `bytes` (tokio's `net` feature alone: no `AsyncWriteExt`).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `body` with chunked transfer encoding, in 64 KiB chunks.
async fn send_chunked(stream: &TcpStream, body: &[u8]) -> std::io::Result<()> {
    for chunk in body.chunks(64 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        write_all(stream, &framed).await?;
    }
    write_all(stream, b"0\r\n\r\n").await
}

/// Reads what is there (0 at the end of the stream).
async fn read(stream: &TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => return other,
        }
    }
}

/// Reads until the server closes the connection or `within` passes; what was read, and whether
/// it closed.
async fn read_until_closed(stream: &TcpStream, within: Duration) -> (String, bool) {
    let mut text = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, read(stream, &mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&text).into(), true),
            Ok(Ok(n)) => text.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&text).into(), false),
        }
    }
}

async fn health(address: SocketAddr, within: Duration) -> Option<String> {
    let stream = TcpStream::connect(address).await.ok()?;
    write_all(
        &stream,
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .ok()?;
    let (text, closed) = read_until_closed(&stream, within).await;
    (closed && text.starts_with("HTTP/1.1 200")).then_some(text)
}

/// The upload: a legal PNG (31 MP, under the 50 MP limit) that costs ~330 MiB to decode.
/// One that needs more than the whole budget is 413 from its header; one that fits while the
/// budget is held by another request is 503 with Retry-After, and 200 once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_is_bounded_by_the_memory_budget() {
    let server = Running::start(ServeConfig {
        max_body_bytes: 40 << 20,
        memory_budget_bytes: 64 << 20,
        ..config()
    })
    .await;
    let (status, body) =
        json(post_raw(&server, "", "image/png", rgba16_zeros(5600, 5600)).await).await;
    assert_eq!(status, 413, "{body}");
    let message = body["error"].as_str().expect("message");
    assert!(
        message.contains("5600 x 5600") && message.contains("over the server's budget of 64.0 MiB"),
        "{message}"
    );

    // Another request holds 40 MiB of the budget: it declared a 40 MiB body, sent 33 MiB of it
    // (its buffer holds the 40) and waits. A body only declared would hold nothing.
    let holder = TcpStream::connect(server.address).await.expect("connect");
    write_all(
        &holder,
        format!(
            "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
             content-length: {}\r\n\r\n",
            40 << 20
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.metric("ssd_memory_reserved_bytes").await,
        Some(0.0),
        "a declared length reserves nothing"
    );
    write_all(&holder, &vec![0u8; 33 << 20])
        .await
        .expect("most of the body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.metric("ssd_memory_reserved_bytes").await,
        Some(f64::from(40 << 20)),
        "the body's buffer is reserved"
    );
    // 1500 x 1500 16-bit RGBA needs ~30 MiB to decode: not free now.
    let fits = rgba16_zeros(1500, 1500);
    let response = post_raw(&server, "", "image/png", fits.clone()).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = json(response).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().expect("message").contains("memory"),
        "{body}"
    );
    assert_eq!(server.metric("ssd_memory_busy_total").await, Some(1.0));
    drop(holder);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = json(post_raw(&server, "", "image/png", fits).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.metric("ssd_memory_reserved_bytes").await, Some(0.0));
    server.stop().await.expect("clean stop");
}

/// Slowloris: a connection that sends nothing, one that trickles its head a byte at a time and
/// an idle keep-alive one are all closed after the header timeout; honest clients get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = Running::start(ServeConfig {
        header_timeout: Duration::from_millis(600),
        max_connections: 8,
        ..config()
    })
    .await;
    let address = server.address;
    let silent = TcpStream::connect(address).await.expect("connect");
    let trickling = TcpStream::connect(address).await.expect("connect");
    let trickle = tokio::spawn(async move {
        let head = b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ".to_vec();
        for byte in head.iter().chain(b"abcdefghijklmnopqrstuvwxyz".iter()) {
            if write_all(&trickling, &[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        read_until_closed(&trickling, Duration::from_secs(5)).await
    });
    let idle = TcpStream::connect(address).await.expect("connect");
    write_all(&idle, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    let start = Instant::now();
    let (_, closed) = read_until_closed(&silent, Duration::from_secs(5)).await;
    assert!(closed, "a connection that sends nothing is closed");
    let (answer, closed) = read_until_closed(&idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection is closed");
    let (text, closed) = trickle.await.expect("task");
    assert!(closed, "a trickled head is cut off: {text}");
    assert!(
        !text.starts_with("HTTP/1.1 200"),
        "the trickled request is never answered: {text}"
    );
    assert!(start.elapsed() < Duration::from_secs(4));

    // Eight silent connections take every slot; an honest client is answered once the header
    // timeout frees them.
    let mut attackers = Vec::new();
    for _ in 0..8 {
        attackers.push(TcpStream::connect(address).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answered = health(address, Duration::from_secs(5)).await;
    assert!(answered.is_some(), "an honest client is served");
    server.stop().await.expect("clean stop");
}

/// At most `max_connections` are open: one more waits (in the listener's backlog) until a slot
/// frees, and is then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_slot() {
    let server = Running::start(ServeConfig {
        max_connections: 3,
        header_timeout: Duration::from_secs(30),
        ..config()
    })
    .await;
    let address = server.address;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(address).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        health(address, Duration::from_millis(500)).await.is_none(),
        "a fourth connection is not served while three are open"
    );
    let waiting = tokio::spawn(health(address, Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held.pop());
    assert!(
        waiting.await.expect("task").is_some(),
        "served once a slot is free"
    );
    drop(held);
    server.stop().await.expect("clean stop");
}

/// SIGTERM while a client holds a half-sent request: the server stops accepting at once, gives
/// the request the shutdown timeout, then closes the connection and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_what_is_left_at_the_deadline() {
    let server = Running::start(ServeConfig {
        shutdown_timeout: Duration::from_millis(500),
        ..config()
    })
    .await;
    let address = server.address;
    let half = TcpStream::connect(address).await.expect("connect");
    write_all(
        &half,
        b"POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
          content-length: 100000\r\n\r\n\x89PNG",
    )
    .await
    .expect("half a request");
    let half_head = TcpStream::connect(address).await.expect("connect");
    write_all(&half_head, b"POST /v1/detect HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("half a head");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let stopped = server.stop().await.expect("clean stop");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
    assert_eq!(
        stopped.closed_at_deadline, 2,
        "the half-sent request's and the half-sent head's"
    );
    let (_, closed) = read_until_closed(&half, Duration::from_secs(2)).await;
    assert!(closed);
    let (_, closed) = read_until_closed(&half_head, Duration::from_secs(2)).await;
    assert!(closed);
    assert!(TcpStream::connect(address).await.is_err(), "not accepting");
}

/// A client that sends its whole body before reading (Python's `requests`) gets the 413, not a
/// connection reset: the server reads and throws away the rest first. One that asks for
/// `100 Continue` gets the 413 without sending its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_answered_413_to_any_client() {
    let server = Running::start(ServeConfig {
        max_body_bytes: 1 << 20,
        ..config()
    })
    .await;
    let body = vec![7u8; 6 << 20];
    for (kind, head) in [
        (
            "declared",
            format!(
                "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            ),
        ),
        (
            "chunked",
            "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
             transfer-encoding: chunked\r\n\r\n"
                .to_owned(),
        ),
    ] {
        let stream = TcpStream::connect(server.address).await.expect("connect");
        write_all(&stream, head.as_bytes()).await.expect("head");
        let sent = if kind == "chunked" {
            send_chunked(&stream, &body).await
        } else {
            write_all(&stream, &body).await
        };
        assert!(sent.is_ok(), "{kind}: the whole body is taken: {sent:?}");
        let (answer, _) = read_until_closed(&stream, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{kind}: {}",
            answer.lines().next().unwrap_or("")
        );
        assert!(answer.contains("over the limit of 1048576 bytes"), "{kind}");
    }
    let stream = TcpStream::connect(server.address).await.expect("connect");
    write_all(
        &stream,
        b"POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
              content-length: 6291456\r\nexpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("head");
    let (answer, _) = read_until_closed(&stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Told to continue (a chunked body has no length to refuse up front), it sends its body and
    // gets the 413 after it.
    let stream = TcpStream::connect(server.address).await.expect("connect");
    write_all(
        &stream,
        b"POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
              transfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("head");
    let mut buffer = [0u8; 64];
    let n = read(&stream, &mut buffer).await.expect("100 Continue");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 100 Continue"));
    let sent = send_chunked(&stream, &body).await;
    assert!(sent.is_ok(), "after 100 Continue: {sent:?}");
    let (answer, _) = read_until_closed(&stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // And the server goes on.
    let (status, _) = json(post_raw(&server, "", "image/png", png(&image(64, 48, 1))).await).await;
    assert_eq!(status, 200);
    server.stop().await.expect("clean stop");
}

/// Settings that would allocate or wait without bound are refused by name; the largest queue
/// allowed starts without allocating for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_out_of_range_are_refused_and_the_queue_grows_as_it_fills() {
    let cases: Vec<(ServeConfig, &str)> = vec![
        (
            ServeConfig {
                queue_capacity: usize::MAX,
                ..config()
            },
            "queue_capacity must be in 1..=100000",
        ),
        (
            ServeConfig {
                queue_capacity: 1_000_000_000,
                ..config()
            },
            "queue_capacity must be in 1..=100000",
        ),
        (
            ServeConfig {
                max_wait: Duration::from_millis(u64::MAX),
                ..config()
            },
            "max_wait must be at most 1000 ms",
        ),
        (
            ServeConfig {
                memory_budget_bytes: 1 << 20,
                ..config()
            },
            "memory_budget_bytes must be at least max_body_bytes",
        ),
        (
            ServeConfig {
                max_connections: 0,
                ..config()
            },
            "max_connections must be in 1..=65536",
        ),
        (
            ServeConfig {
                header_timeout: Duration::ZERO,
                ..config()
            },
            "header_timeout must be in (0, 3600] s",
        ),
        (
            ServeConfig {
                max_pixels: u64::MAX,
                ..config()
            },
            "max_pixels must be in 1..=268435456",
        ),
    ];
    for (config, expected) in cases {
        let err = config.validate().expect_err(expected);
        assert!(err.to_string().starts_with(expected), "{err}");
    }
    let server = Running::start(ServeConfig {
        queue_capacity: 100_000,
        ..config()
    })
    .await;
    let (status, _) = json(post_raw(&server, "", "image/png", png(&image(64, 48, 2))).await).await;
    assert_eq!(status, 200);
    server.stop().await.expect("clean stop");
}
