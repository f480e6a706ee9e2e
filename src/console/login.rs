//! The login form, logging out, and the language switch.
//!
//! A login is checked against the users file (`access::users`) and slowed,
//! then locked, after repeated failures by the same throttle as the
//! PostgreSQL endpoint (`access::logins`): an admin lifts a lock with
//! `DELETE /api/v1/logins/locks/{key}`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::page::{self, Lang};
use super::session::{self, Session};
use super::{Attempt, Console};
use crate::access::logins::Gate;

/// Where to go after logging in: a console path only, so the login form
/// cannot be used to send someone to another site.
fn next_or_home(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/warnings".to_string(),
    }
}

/// The login page's query: where to go after logging in.
#[derive(Debug, Deserialize)]
pub struct FormQuery {
    next: Option<String>,
}

fn login_page(
    lang: Lang,
    status: StatusCode,
    csrf: &str,
    next: &str,
    user: &str,
    message: Option<&str>,
) -> Response {
    let body = html! {
        section class="login" {
            h1 { (lang.t("登录", "Log in")) }
            @if let Some(m) = message {
                p class="error" role="alert" { (m) }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="_csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="user" { (lang.t("用户名", "User name")) }
                input id="user" name="user" type="text" autocomplete="username" required value=(user) autofocus;
                label for="password" { (lang.t("密码", "Password")) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" id="login" { (lang.t("登录", "Log in")) }
            }
            p class="hint" {
                (lang.t(
                    "账号与 SQL 接口相同，由管理员用 safetynet user add 添加。",
                    "Accounts are the SQL endpoint's, added by an admin with safetynet user add.",
                ))
            }
        }
    };
    let mut response = page::respond(
        status,
        page::page(lang, lang.t("登录", "Log in"), "/ui/login", None, body),
    );
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        session::LOGIN_COOKIE,
        csrf,
        Some(Duration::from_secs(3600)),
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// GET /ui/login
pub async fn form(
    Extension(lang): Extension<Lang>,
    session: Option<Extension<Session>>,
    Query(q): Query<FormQuery>,
) -> Response {
    let next = next_or_home(q.next.as_deref());
    if session.is_some() {
        return Redirect::to(&next).into_response();
    }
    login_page(
        lang,
        StatusCode::OK,
        &session::random_token(),
        &next,
        "",
        None,
    )
}

/// The login form as posted.
#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// POST /ui/login
pub async fn submit(
    State(console): State<Console>,
    Extension(lang): Extension<Lang>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let user = form.user.trim().to_string();
    let next = next_or_home(form.next.as_deref());
    let again = |status: StatusCode, message: &str| {
        let mut r = login_page(
            lang,
            status,
            &session::random_token(),
            &next,
            &user,
            Some(message),
        );
        r.extensions_mut().insert(Attempt(user.clone()));
        r.extensions_mut()
            .insert(crate::api::error::ErrorText(message.to_string()));
        r
    };
    let Some(users) = console.users.clone() else {
        return again(
            StatusCode::SERVICE_UNAVAILABLE,
            lang.t(
                "未配置用户文件：请在流水线文件的 [sql] 中设置 users。",
                "No users file: set users in the pipeline file's [sql] section.",
            ),
        );
    };
    let logins = console.app.access.logins();
    match logins.check(&user, address.ip()) {
        Gate::Locked(left) => {
            let minutes = left.as_secs().div_ceil(60);
            let message = match lang {
                Lang::Zh => {
                    format!("登录失败次数过多，已锁定，{minutes} 分钟后再试，或请管理员解锁。")
                }
                Lang::En => format!(
                    "Too many failed logins: locked for {minutes} more minutes, or until an admin lifts the lock."
                ),
            };
            return again(StatusCode::TOO_MANY_REQUESTS, &message);
        }
        Gate::Delay(wait) => tokio::time::sleep(wait).await,
        Gate::Open => {}
    }
    let (name, password) = (user.clone(), form.password);
    let principal = tokio::task::spawn_blocking(move || users.check_password(&name, &password))
        .await
        .ok()
        .flatten();
    let Some(principal) = principal else {
        logins.failed(&user, address.ip());
        return again(
            StatusCode::UNAUTHORIZED,
            lang.t("用户名或密码错误。", "Wrong user name or password."),
        );
    };
    logins.succeeded(&user, address.ip());
    tracing::info!(user = %principal.name, "console login");
    let token = console.sessions.start(principal);
    let mut response = Redirect::to(&next).into_response();
    for cookie in [
        session::set_cookie(session::COOKIE, &token, None),
        session::clear_cookie(session::LOGIN_COOKIE),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response.extensions_mut().insert(Attempt(user));
    response
}

/// POST /ui/logout
pub async fn logout(State(console): State<Console>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = session::cookie(&headers, session::COOKIE) {
        console.sessions.end(&token);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(session::COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The language switch's query: the page to go back to.
#[derive(Debug, Deserialize)]
pub struct Back {
    back: Option<String>,
}

/// GET /ui/lang/{zh|en}?back=/ui/…: remember the language, go back.
pub async fn language(Path(code): Path<String>, Query(q): Query<Back>) -> Response {
    let lang = Lang::parse(&code);
    let code = lang.t("zh", "en");
    let mut response = Redirect::to(&next_or_home(q.back.as_deref())).into_response();
    let cookie = format!(
        "{}={code}; Path=/ui; SameSite=Lax; Max-Age=31536000",
        Lang::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_console_paths_are_followed() {
        assert_eq!(next_or_home(Some("/ui/warnings/W1")), "/ui/warnings/W1");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/api/v1/warnings",
            "/ui\\..\\x",
        ] {
            assert_eq!(next_or_home(Some(bad)), "/ui/warnings", "{bad}");
        }
        assert_eq!(next_or_home(None), "/ui/warnings");
    }
}
