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
use ssd_data::{Augment, DataError, decode_rgb};
use ssd_model::{ImageDetections, PostProcessConfig};
use tokio::sync::oneshot;

use crate::metrics::{self, Metrics};
use crate::worker::{Job, Queue, SubmitError};
use crate::{ModelInfo, ServeConfig};

/// The page of `GET /`.
const PAGE: &str = include_str!("page.html");

/// What every handler shares.
pub(crate) struct App {
    pub queue: Queue,
    pub info: ModelInfo,
    pub preprocessor: Augment,
    pub defaults: PostProcessConfig,
    pub config: ServeConfig,
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
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
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

/// `POST /v1/detect`: one JSON object per image, in the order sent.
async fn detect(
    State(app): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Vec<ImageDetections>>, ApiError> {
    let start = Instant::now();
    let post = thresholds(query.as_deref(), app.defaults)?;
    let kind = body_kind(&headers)?;
    let limit = app.config.max_body_bytes;
    if let Some(length) = content_length(&headers)
        && length > limit as u64
    {
        return Err(too_large_body(limit));
    }
    let timeout = app.config.request_timeout;
    let bytes = tokio::time::timeout(timeout, read_body(body, limit))
        .await
        .map_err(|_| {
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
    let decoder = app.clone();
    let images = tokio::task::spawn_blocking(move || {
        uploads
            .into_iter()
            .map(|(name, bytes)| decode(&decoder, name, &bytes))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoding failed"))??;
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
                return Err(ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the queue is full ({} images waiting); retry shortly",
                            app.config.queue_capacity
                        ),
                    )
                });
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
        .collect::<Result<Vec<_>, _>>()
        .map(axum::Json)
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The request's thresholds: `defaults` with the query's `min_score`, `top_k` and `nms`.
fn thresholds(
    query: Option<&str>,
    defaults: PostProcessConfig,
) -> Result<PostProcessConfig, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let mut post = defaults;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "min_score" => {
                post.score_threshold = value
                    .parse()
                    .map_err(|_| bad(format!("min_score={value:?} is not a number")))?;
            }
            "nms" => {
                post.nms_iou = value
                    .parse()
                    .map_err(|_| bad(format!("nms={value:?} is not a number")))?;
            }
            "top_k" => {
                post.max_detections = value
                    .parse()
                    .map_err(|_| bad(format!("top_k={value:?} is not a whole number")))?;
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter {other:?} (min_score, top_k and nms are)"
                )));
            }
        }
    }
    post.validate().map_err(|e| {
        let name = match e.name {
            "score_threshold" => "min_score",
            "max_detections" => "top_k",
            "nms_iou" => "nms",
            other => other,
        };
        bad(e.named(name).to_string())
    })?;
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
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the limit of {limit} bytes"),
    )
}

/// The whole body, refused as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large_body(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.into())
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

/// Decodes and resizes one upload, checking its pixel count from the header first.
fn decode(app: &App, name: String, bytes: &[u8]) -> Result<(String, [u32; 2], Vec<f32>), ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("image {name:?} is empty"),
        ));
    }
    let image =
        decode_rgb(bytes, Path::new(&name), app.config.max_pixels).map_err(|e| match e {
            DataError::ImageTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
        })?;
    let size = [image.width(), image.height()];
    let pixels = app.preprocessor.resize(&image);
    Ok((name, size, pixels))
}
