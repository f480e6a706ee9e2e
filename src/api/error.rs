//! API errors: always a JSON body `{"error": {"code", "message"}}` with the
//! right status, so a client never has to parse an HTML, plain-text or
//! empty page. The failures callers act on (`crate::error`) map to their
//! status here, once; anything else is a 500 whose body names a request
//! id, while the internal error chain goes to the service's log only.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the caller reads.
    pub message: String,
    /// Seconds to wait before trying again (sent as `Retry-After`).
    pub retry_after: Option<u32>,
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(30),
        }
    }
    /// 400: the request is malformed; `message` says which part.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401: no token, or not a valid one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403: the token may not do this, or not in this region.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404: no such thing (or not one the caller may know of).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 503 with Retry-After: busy or the lake is unavailable; try again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    /// An internal error the caller can only quote: its details are in the
    /// log under a request id.
    pub fn internal() -> Self {
        Self::internal_with_id(&request_id())
    }
    fn internal_with_id(id: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (request {id}); the service log has the details"),
        )
    }
    /// The same error, telling the caller to retry after `seconds`.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// A short id tying a 500 answer to its log line.
fn request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A failure a caller can act on gets its status and message; anything
/// else is a 500, logged with its whole chain under a request id.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if let Some(typed) = Error::find(&e) {
            let status = StatusCode::from_u16(typed.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status != StatusCode::INTERNAL_SERVER_ERROR {
                let message = match typed {
                    Error::LockHeld { .. } => {
                        "a pipeline run is writing the lake; try again in a minute (正在运行流水线，请稍后重试)"
                            .to_string()
                    }
                    other => other.to_string(),
                };
                return ApiError::new(status, message);
            }
        }
        let id = request_id();
        tracing::error!(request_id = %id, "API internal error: {e:#}");
        ApiError::internal_with_id(&id)
    }
}

impl From<datafusion::error::DataFusionError> for ApiError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        anyhow::Error::from(e).into()
    }
}

fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        503 => "unavailable",
        s if s < 500 => "bad_request",
        _ => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = ErrorText(self.message.clone());
        let mut response = (
            self.status,
            axum::Json(json!({"error": {"code": code(self.status), "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(message);
        response
    }
}

/// The error message, kept on the response for the audit log.
#[derive(Debug, Clone)]
pub struct ErrorText(pub String);

/// Error answers made by the framework rather than a handler (a body too
/// large, a bad content type) come as plain text: rewrite them as JSON,
/// keeping the status and the other headers.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 8 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = json!({"error": {"code": code(status), "message": message}}).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
