//! The routes: requests in, limits checked, images decoded and queued, JSON out.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Serialize;
use ssd_data::{Augment, DataError, decode_rgb, probe_image};
use ssd_model::{ImageDetections, PostProcessConfig};
use tokio::sync::oneshot;

use crate::budget::{Budget, Refusal, Reservation};
use crate::metrics::{self, Metrics};
use crate::worker::{Job, Queue, SubmitError};
use crate::{ModelInfo, ServeConfig};

/// Most bytes of a refused body read and thrown away before the answer, so that a client that
/// sends its whole body before reading (Python's `requests` and `urllib` do) gets the answer,
/// not a connection reset.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The page of `GET /`.
const PAGE: &str = include_str!("page.html");

/// What every handler shares.
pub(crate) struct App {
    pub queue: Queue,
    pub info: ModelInfo,
    pub preprocessor: Augment,
    pub defaults: PostProcessConfig,
    pub config: ServeConfig,
    pub budget: Budget,
    pub metrics: Metrics,
}

type Shared = Arc<App>;

pub(crate) fn router(app: App) -> Router {
    let app = Arc::new(app);
    Router::new()
        .route("/", get(page))
        .route("/v1/detect", post(detect))
        .route("/v1/model", get(model))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), record))
        .with_state(app)
}

/// An error answer: a status and `{"error": message}`, plus headers for some.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            close: false,
        }
    }

    /// `503` with `Retry-After: 1`.
    fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Counts every answer by route, method and status, and times it.
async fn record(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| match p.as_str() {
            "/" => "/",
            "/v1/detect" => "/v1/detect",
            "/v1/model" => "/v1/model",
            "/health" => "/health",
            "/metrics" => "/metrics",
            _ => "unmatched",
        });
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let start = Instant::now();
    let response = next.run(request).await;
    app.metrics
        .requests
        .with_label_values(&[route, method, response.status().as_str()])
        .inc();
    app.metrics
        .latency
        .with_label_values(&[route])
        .observe(start.elapsed().as_secs_f64());
    response
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

async fn model(State(app): State<Shared>) -> impl IntoResponse {
    axum::Json(app.info.clone())
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(app): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        app.metrics.render(),
    )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}", request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A request body not yet read to its end.
enum Unread {
    /// Not read at all: a client waiting for `100 Continue` has not sent it.
    Untouched(Body),
    /// Read in part (the client was told to continue, if it asked).
    Rest(Body),
}

/// `POST /v1/detect`: one JSON object per image, in the order sent. A refusal that comes before
/// the whole body was read reads and throws away what is left of it first (up to
/// [`DRAIN_LIMIT`], within the request's time), unless the client waits for `100 Continue` and
/// was not told to: it then gets the answer without sending its body.
async fn detect(
    State(app): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Vec<ImageDetections>>, ApiError> {
    let start = Instant::now();
    let mut body = Some(Unread::Untouched(body));
    let result = detect_images(&app, query.as_deref(), &headers, &mut body, start).await;
    let rest = match body.take() {
        Some(Unread::Rest(rest)) => Some(rest),
        Some(Unread::Untouched(body)) if !expects_continue(&headers) => Some(body),
        _ => None,
    };
    if let (Err(_), Some(rest)) = (&result, rest) {
        let left = app.config.request_timeout.saturating_sub(start.elapsed());
        let _ = tokio::time::timeout(left, drain(rest)).await;
    }
    result.map(axum::Json)
}

async fn detect_images(
    app: &Shared,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &mut Option<Unread>,
    start: Instant,
) -> Result<Vec<ImageDetections>, ApiError> {
    let post = thresholds(query, app.defaults)?;
    let kind = body_kind(headers)?;
    let limit = app.config.max_body_bytes;
    let declared = content_length(headers);
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large_body(limit));
    }
    // A multipart body is held twice while its parts are split out.
    let copies = match kind {
        BodyKind::Raw => 1,
        BodyKind::Multipart(_) => 2,
    };
    // Reserved as it arrives (a body that is only declared holds nothing); one that could never
    // fit is refused at once.
    let mut held = Reservation::none(&app.budget);
    if let Some(length) = declared
        && length * copies > app.budget.total()
    {
        return Err(ApiError {
            close: true,
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request's body needs {} of memory, over the server's budget of {}",
                    mib(length * copies),
                    mib(app.budget.total())
                ),
            )
        });
    }
    let timeout = app.config.request_timeout;
    let reading = read_body(body, limit, declared, copies, app, &mut held);
    let bytes = tokio::time::timeout(timeout, reading).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body took longer than {} to arrive", seconds(timeout)),
        )
    })??;
    let uploads = match kind {
        BodyKind::Raw => vec![("image".to_owned(), bytes)],
        BodyKind::Multipart(boundary) => {
            multipart(bytes, boundary, app.config.max_images_per_request).await?
        }
    };
    if uploads.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the multipart body holds no image",
        ));
    }
    if uploads.len() > app.config.max_images_per_request {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "more than {} images in one request",
                app.config.max_images_per_request
            ),
        ));
    }
    let decoder = Arc::clone(app);
    let images = tokio::task::spawn_blocking(move || {
        let mut inputs = Reservation::none(&decoder.budget);
        let images = uploads
            .into_iter()
            .map(|(name, bytes)| decode(&decoder, name, &bytes, &mut inputs))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, ApiError>((images, inputs))
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoding failed"))??;
    // The body is gone; the network inputs stay reserved until they are queued.
    drop(held);
    let (images, _inputs) = images;
    let mut answers = Vec::with_capacity(images.len());
    for (name, size, pixels) in images {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            name,
            pixels,
            size,
            post,
            reply,
        };
        match app.queue.submit(job) {
            Ok(()) => answers.push(answer),
            Err(SubmitError::Full) => {
                app.metrics.rejected.inc();
                return Err(ApiError::busy(format!(
                    "the queue is full ({} images waiting); retry shortly",
                    app.config.queue_capacity
                )));
            }
            Err(SubmitError::Stopped) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is shutting down",
                ));
            }
        }
    }
    let left = timeout.saturating_sub(start.elapsed());
    let results = tokio::time::timeout(left, futures_util::future::join_all(answers))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no detections within {}", seconds(timeout)),
            )
        })?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(message)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)),
            Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inference thread stopped",
            )),
        })
        .collect()
}

/// Reserves `bytes` of the memory budget for `what`: `503` while others hold it, `413` beyond
/// the whole budget.
fn reserve(app: &App, bytes: u64, what: &str) -> Result<Reservation, ApiError> {
    app.budget.reserve(bytes).map_err(|refusal| match refusal {
        Refusal::TooLarge { bytes, total } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} needs {} of memory, over the server's budget of {}",
                mib(bytes),
                mib(total)
            ),
        ),
        Refusal::Busy => {
            app.metrics.memory_busy.inc();
            ApiError::busy(format!(
                "the server's memory for uploads ({}) is held by other requests; retry shortly",
                mib(app.budget.total())
            ))
        }
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Whether the client sent `Expect: 100-continue` (it sends the body only when asked).
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// Reads and throws away what is left of a refused body, up to [`DRAIN_LIMIT`] bytes.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > DRAIN_LIMIT {
            break;
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The request's thresholds: `defaults` with the query's `min_score`, `top_k` and `nms_overlap`
/// (the names of `ssd detect`'s flags and of [`PostProcessConfig`]'s fields; `nms` is accepted
/// for `nms_overlap`, its name in earlier versions).
fn thresholds(
    query: Option<&str>,
    defaults: PostProcessConfig,
) -> Result<PostProcessConfig, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let number = |key: &str, value: &str| {
        value
            .parse::<f32>()
            .map_err(|_| bad(format!("{key}={value:?} is not a number")))
    };
    let mut post = defaults;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "min_score" => post.min_score = number(key, value)?,
            "nms_overlap" | "nms" => post.nms_overlap = number(key, value)?,
            "top_k" => {
                post.top_k = value
                    .parse()
                    .map_err(|_| bad(format!("top_k={value:?} is not a whole number")))?;
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter {other:?} (min_score, top_k and nms_overlap are)"
                )));
            }
        }
    }
    post.validate().map_err(|e| bad(e.to_string()))?;
    Ok(post)
}

/// How the body carries its images.
enum BodyKind {
    /// The body is one image (`image/*`, `application/octet-stream` or no content type).
    Raw,
    /// `multipart/form-data` with this boundary: every file part is an image.
    Multipart(String),
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Raw);
    };
    let unsupported = |what: &str| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {what} is not an image: send image/jpeg, image/png, \
                 application/octet-stream or multipart/form-data"
            ),
        )
    };
    let text = value.to_str().map_err(|_| unsupported("(not ASCII)"))?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "multipart/form-data" {
        let boundary = multer::parse_boundary(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("multipart/form-data without a valid boundary: {e}"),
            )
        })?;
        Ok(BodyKind::Multipart(boundary))
    } else if essence.starts_with("image/") || essence == "application/octet-stream" {
        Ok(BodyKind::Raw)
    } else {
        Err(unsupported(&format!("{essence:?}")))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large_body(limit: usize) -> ApiError {
    ApiError {
        close: true,
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {limit} bytes"),
        )
    }
}

/// The whole body, refused as soon as it passes `limit` bytes. Its buffer's memory, `copies`
/// times over (a multipart body is copied once more when split), is reserved from the budget into
/// `held` before the buffer grows; the buffer doubles, but never past the `declared` length. The
/// body is taken from `body` once it has been read to its end; a refusal leaves what is left of
/// it there.
async fn read_body(
    body: &mut Option<Unread>,
    limit: usize,
    declared: Option<u64>,
    copies: u64,
    app: &App,
    held: &mut Reservation,
) -> Result<Bytes, ApiError> {
    let whole = match body.take() {
        Some(Unread::Untouched(whole) | Unread::Rest(whole)) => whole,
        None => return Ok(Bytes::new()),
    };
    let mut stream = whole.into_data_stream();
    let mut bytes: Vec<u8> = Vec::new();
    let outcome = loop {
        let Some(chunk) = stream.next().await else {
            break Ok(());
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                break Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                ));
            }
        };
        let needed = bytes.len() + chunk.len();
        if needed > limit {
            break Err(too_large_body(limit));
        }
        if needed > bytes.capacity() {
            let doubled = (2 * bytes.capacity()).max(64 * 1024);
            let capacity = declared
                .map_or(doubled, |d| doubled.min(d as usize))
                .max(needed);
            let more = (capacity - bytes.capacity()) as u64 * copies;
            match reserve(app, more, "the request's body") {
                Ok(reservation) => held.add(reservation),
                Err(e) => break Err(e),
            }
            bytes.reserve_exact(capacity - bytes.len());
        }
        bytes.extend_from_slice(&chunk);
    };
    match outcome {
        Ok(()) => Ok(bytes.into()),
        Err(e) => {
            // What is left is the caller's to throw away.
            *body = Some(Unread::Rest(Body::from_stream(stream)));
            Err(e)
        }
    }
}

/// The file parts of a multipart body, with their file names (else field names); stops at one
/// past `max_images` so that the count can be refused.
async fn multipart(
    body: Bytes,
    boundary: String,
    max_images: usize,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let bad = |e: multer::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed multipart body: {e}"),
        )
    };
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut images = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(bad)? {
        // Text fields (no file name, no content type or a text one) are not images.
        let is_file = field.file_name().is_some()
            || field
                .content_type()
                .is_some_and(|m| m.type_().as_str() != "text");
        if !is_file {
            continue;
        }
        let name = field
            .file_name()
            .or(field.name())
            .unwrap_or("image")
            .to_owned();
        images.push((name, field.bytes().await.map_err(bad)?));
        if images.len() > max_images {
            break;
        }
    }
    Ok(images)
}

/// Decodes and resizes one upload: its pixel count and decoding memory read from the header
/// first, that memory reserved from the budget while it decodes, the network input's into
/// `inputs`.
fn decode(
    app: &App,
    name: String,
    bytes: &[u8],
    inputs: &mut Reservation,
) -> Result<(String, [u32; 2], Vec<f32>), ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("image {name:?} is empty"),
        ));
    }
    let path = Path::new(&name);
    let refused = |e: DataError| match e {
        DataError::ImageTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
    };
    let probe = probe_image(bytes, path).map_err(refused)?;
    if probe.pixels() > app.config.max_pixels {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{name}: image too large: {} x {} = {} pixels, over the limit of {}",
                probe.width,
                probe.height,
                probe.pixels(),
                app.config.max_pixels
            ),
        ));
    }
    let side = u64::from(app.preprocessor.size);
    let input = reserve(app, side * side * 3 * 4, "a network input")?;
    let decoding = reserve(
        app,
        probe.decode_bytes,
        &format!(
            "decoding image {name:?} ({} x {})",
            probe.width, probe.height
        ),
    )?;
    let image = decode_rgb(bytes, path, app.config.max_pixels).map_err(refused)?;
    let size = [image.width(), image.height()];
    let pixels = app.preprocessor.resize(&image);
    drop(image);
    drop(decoding);
    inputs.add(input);
    Ok((name, size, pixels))
}
