//! Dashboard sessions: after a login with the admin token the browser holds
//! only a random session id (HttpOnly, SameSite=Strict cookie); the id maps
//! server-side to an expiry and a per-session CSRF token that every form
//! POST must echo. The admin token itself never reaches the cookie or a page.
//!
//! Sessions live in memory (a restart logs everyone out) behind a std
//! `Mutex` held for a map operation only.

use axum::http::HeaderMap;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "anycloud_ui";
/// A session lasts this long after login, then the user logs in again.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session; returns its id (for the cookie).
    pub fn create(&self) -> String {
        let id = random_hex(32);
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_hex(32),
                expires: now + LIFETIME,
            },
        );
        id
    }

    /// The live session named by the request's cookie, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie_value(headers, COOKIE)?;
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some((id.to_string(), s.clone())),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.csrf.as_bytes()).into()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a new session.
/// `secure` (`server.secure_cookies`) adds `Secure`: the browser then sends the cookie
/// over HTTPS only.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_gone_after_logout() {
        let s = Sessions::default();
        let id = s.create();
        assert_eq!(id.len(), 64);
        let h = with_cookie(&format!("other=1; {COOKIE}={id}"));
        let (found, session) = s.get(&h).unwrap();
        assert_eq!(found, id);
        assert!(session.csrf_ok(&session.csrf.clone()));
        assert!(!session.csrf_ok("nope"));
        s.remove(&id);
        assert!(s.get(&h).is_none());
        assert!(s.get(&with_cookie(&format!("{COOKIE}=forged"))).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        for _ in 0..(MAX_SESSIONS + 10) {
            s.create();
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookie_is_httponly_strict_and_scoped_to_ui() {
        let c = set_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/ui"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(true).ends_with("; Secure"));
    }
}
