//! Console sessions (登录会话): who is logged in, behind a random token in
//! a Secure, HttpOnly, SameSite=Strict cookie, with a CSRF token of its
//! own that every form and every script call must send back.
//!
//! Sessions live in the service's memory: a restart logs everyone out,
//! which is the safe direction. The store holds at most [`MAX_SESSIONS`];
//! past that the least recently used one is dropped, so a flood of logins
//! cannot grow it without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::Principal;

/// The session cookie.
pub const COOKIE: &str = "sn_session";
/// The cookie that carries the login form's CSRF token before there is a
/// session (double submit: form field and cookie must agree).
pub const LOGIN_COOKIE: &str = "sn_login";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(2 * 3600);
/// And after this long whatever happens.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who logged in.
    pub principal: Principal,
    /// What forms and script calls must send back.
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// Sessions by the hash of their token (the token itself is only in the
/// browser).
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Start a session for `principal`; returns the token for the cookie.
    pub fn start(&self, principal: Principal) -> String {
        let token = random_token();
        let now = Instant::now();
        let session = Session {
            principal,
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        if let Ok(mut map) = self.by_hash.lock() {
            map.retain(|_, s| alive(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(hash(&token), session);
        }
        token
    }

    /// The live session of `token`, touched.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.by_hash.lock().ok()?;
        let key = hash(token);
        let session = map.get_mut(&key)?;
        if !alive(session, now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// End the session of `token`.
    pub fn end(&self, token: &str) {
        if let Ok(mut map) = self.by_hash.lock() {
            map.remove(&hash(token));
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.started) < LIFETIME
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for the console's paths: Secure and HttpOnly, and
/// SameSite=Strict so no other site's page can send it along.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={}", a.as_secs()));
    format!("{name}={value}; Path=/ui; HttpOnly; Secure; SameSite=Strict{age}")
}

/// A `Set-Cookie` value that removes a cookie.
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn clerk() -> Principal {
        Principal {
            name: "clerk".into(),
            role: Role::Verifier,
            region: Some("522322".into()),
        }
    }

    #[test]
    fn a_session_is_found_by_its_token_only_and_ends_at_logout() {
        let sessions = Sessions::default();
        let token = sessions.start(clerk());
        let s = sessions.get(&token).expect("live session");
        assert_eq!(s.principal.name, "clerk");
        assert_eq!(s.csrf.len(), 64);
        assert!(sessions.get(&random_token()).is_none());
        assert!(sessions.get(&token[..63]).is_none());
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn cookies_are_read_from_every_header_and_written_locked_down() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; sn_session=abc".parse().unwrap());
        headers.append("cookie", "sn_lang=en".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "sn_lang").as_deref(), Some("en"));
        assert_eq!(cookie(&headers, "missing"), None);
        let set = set_cookie(COOKIE, "abc", None);
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(clear_cookie(COOKIE).contains("Max-Age=0"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
