//! The web console of `safetynet serve` (工作台), at `/ui`: pages rendered
//! on the server for the data office's clerks and township staff.
//!
//! - `session`: logins from the users file (the PostgreSQL endpoint's
//!   users, roles and regions), cookies, CSRF tokens;
//! - `login`: the login and logout forms and the language switch;
//! - `warnings`: warnings by place, one warning with its evidence, the
//!   household's assessment and history, and recording a visit;
//! - `review`: the review queue, decided with the keyboard;
//! - `linkage`: linkage quality per source, the model's parameters, trends;
//! - `runs`: the run history, stage by stage;
//! - `page`: the frame every page shares, the two languages, error pages.
//!
//! Every page is answered through [`guard`]: it finds the session (or
//! sends the browser to the login form), refuses a form or script call
//! without the session's CSRF token or from another origin, and puts the
//! request in `audit_log` (interface `console`) before answering. What a
//! page shows comes from [`crate::access::Access::session`], masked and
//! scoped as in the SQL endpoint and the API, and a visit is recorded by
//! the API's own function: the console has no access rules of its own.

pub mod linkage;
pub mod login;
pub mod page;
pub mod review;
pub mod runs;
pub mod session;
pub mod warnings;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::access::users::Users;
use crate::api::AppState;
use crate::api::error::ErrorText;
use page::{Lang, Viewer};
use session::{Session, Sessions};

/// The largest form the console takes.
const MAX_FORM: usize = 64 * 1024;

/// What every console handler shares.
#[derive(Clone)]
pub struct Console {
    /// The API's state: the same access, audit log and runtime.
    pub app: AppState,
    /// Who may log in; None when the pipeline file names no users file.
    pub users: Option<Arc<Users>>,
    /// Logged-in sessions.
    pub sessions: Arc<Sessions>,
    /// The linkage settings and schemas the review queue reads.
    pub review: Option<Arc<review::ReviewSetup>>,
}

impl Console {
    /// A console over the API's state, with `users` (None: nobody can log in).
    pub fn new(app: AppState, users: Option<Users>) -> Console {
        Console {
            app,
            users: users.map(Arc::new),
            sessions: Arc::default(),
            review: None,
        }
    }

    /// The same console with a review queue over these settings.
    pub fn with_review(mut self, setup: review::ReviewSetup) -> Console {
        self.review = Some(Arc::new(setup));
        self
    }
}

/// `app` with the console at `/ui` (and `/ui/`, which people type).
pub fn mount(app: Router, console: Console) -> Router {
    app.route("/ui/", get(|| async { Redirect::to("/ui/warnings") }))
        .nest("/ui", router(console))
}

/// The console's routes, to be nested at `/ui`.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/warnings") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/lang/{code}", get(login::language))
        .route("/assets/{file}", get(asset))
        .route("/warnings", get(warnings::places))
        .route("/warnings/{warning_id}", get(warnings::one))
        .route(
            "/warnings/{warning_id}/verification",
            post(warnings::verify),
        )
        .route("/review", get(review::queue))
        .route("/review/decision", post(review::decide))
        .route("/linkage", get(linkage::quality))
        .route("/runs", get(runs::history))
        .fallback(|| async {
            crate::api::error::ApiError::not_found("no such page (页面不存在)")
        })
        // Pages run on the query runtime, within the API's limit of
        // requests at once; the guard wraps that, so a refusal is a page too.
        .layer(axum::middleware::from_fn_with_state(
            console.app.clone(),
            crate::api::capacity::within_capacity,
        ))
        .layer(axum::middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// Stylesheet and script, compiled into the binary: the console works with
/// no internet.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Paths anyone may open: the login form, assets, the language switch.
fn public(path: &str) -> bool {
    path == "/ui/login" || path.starts_with("/ui/assets/") || path.starts_with("/ui/lang/")
}

/// Whether a request that changes something came from a page of this
/// service: an `Origin` header, when the browser sends one, must name the
/// host the request was sent to.
fn same_origin(request: &Request) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// The CSRF token a form or script call sent: the `X-CSRF-Token` header,
/// or the `_csrf` field of a form.
fn presented_csrf(headers: &axum::http::HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(v) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.into_owned())
}

/// Who a response says logged in or tried to (the login form), for the
/// audit log when there was no session before the request.
#[derive(Debug, Clone)]
pub struct Attempt(pub String);

/// Every console request passes here: language, session, CSRF and origin
/// checks, security headers, and the audit record.
pub async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = crate::api::auth::client_address(&request);
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_string(),
        |u| u.0.path().to_string(),
    );
    let what = format!("{} {path}", request.method());
    let lang = session::cookie(request.headers(), Lang::COOKIE)
        .map(|c| Lang::parse(&c))
        .unwrap_or_default();
    let token = session::cookie(request.headers(), session::COOKIE);
    let found: Option<Session> = token.as_deref().and_then(|t| console.sessions.get(t));

    let response = match checked(request, &path, lang, found.clone()).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    };
    let response = finish(response, lang, found.as_ref());
    if path.starts_with("/ui/assets/") {
        return response;
    }
    // A login names the user it tried, with no role yet.
    let who = match (&found, response.extensions().get::<Attempt>()) {
        (Some(s), _) => Some((s.principal.name.as_str(), s.principal.role.name())),
        (None, Some(a)) => Some((a.0.as_str(), "-")),
        (None, None) => None,
    };
    let entry = crate::api::auth::audit_entry(&response, "console", who, client, what, started);
    match console.app.audit.record(entry).await {
        Ok(()) => response,
        Err(e) => page::error(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{e:#}; the request was not answered (审计日志写入失败)"),
            None,
        ),
    }
}

/// The request with the session and language attached, or the answer that
/// refuses it.
async fn checked(
    request: Request,
    path: &str,
    lang: Lang,
    found: Option<Session>,
) -> Result<Request, Response> {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !public(path) && found.is_none() {
        if changes {
            return Err(page::error(
                lang,
                StatusCode::UNAUTHORIZED,
                lang.t(
                    "会话已结束，请重新登录。",
                    "Your session has ended; please log in again.",
                ),
                None,
            ));
        }
        let back = request
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| path.to_string(), |u| u.0.to_string());
        let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        return Err(Redirect::to(&format!("/ui/login?next={next}")).into_response());
    }
    let mut request = if changes {
        if !same_origin(&request) {
            return Err(page::error(
                lang,
                StatusCode::FORBIDDEN,
                lang.t(
                    "请求来自其他网站，已拒绝。",
                    "The request came from another site and was refused.",
                ),
                None,
            ));
        }
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
            page::error(
                lang,
                StatusCode::PAYLOAD_TOO_LARGE,
                lang.t("提交的内容过大。", "The form is too large."),
                None,
            )
        })?;
        let expected = match &found {
            Some(s) => Some(s.csrf.clone()),
            None if path == "/ui/login" => session::cookie(&parts.headers, session::LOGIN_COOKIE),
            None => None,
        };
        let presented = presented_csrf(&parts.headers, &bytes);
        let good =
            matches!((&expected, &presented), (Some(e), Some(p)) if session::same_secret(e, p));
        if !good {
            return Err(page::error(
                lang,
                StatusCode::FORBIDDEN,
                lang.t(
                    "表单已过期或缺少校验码（CSRF），请刷新页面后重试。",
                    "The form has expired or lacks its CSRF token; reload the page and try again.",
                ),
                None,
            ));
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    request.extensions_mut().insert(lang);
    if let Some(s) = found {
        request.extensions_mut().insert(s);
    }
    Ok(request)
}

/// Errors as pages in the user's language, and the headers every answer
/// carries: no framing, no sniffing, scripts and styles from this service
/// only, no referrer to other sites.
fn finish(response: Response, lang: Lang, found: Option<&Session>) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let mut response = if response.status().as_u16() >= 400 && !is_html {
        let status = response.status();
        let message = response.extensions().get::<ErrorText>().map_or_else(
            || status.canonical_reason().unwrap_or("error").to_string(),
            |e| e.0.clone(),
        );
        let viewer = found.map(|s| Viewer {
            principal: &s.principal,
            csrf: &s.csrf,
        });
        page::error(lang, status, &message, viewer.as_ref())
    } else {
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Not no-referrer: under it the browser sends `Origin: null` with
        // forms, and the origin check needs the real one.
        HeaderValue::from_static("same-origin"),
    );
    response
}
