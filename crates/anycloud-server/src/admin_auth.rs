//! Who may open the operator surfaces — the admin API (`/admin/v1`), the dashboard
//! (`/ui`) and `/metrics`: the one admin-token compare they all use, and a small
//! per-address limiter on failed attempts (README "Security").
//!
//! Neighbours: `admin::require_admin` and `ui::login` call [`token_matches`];
//! `health::metrics` also accepts `server.metrics_token`; [`layer`] wraps the router in
//! `app` and turns the 11th failure a minute from one address into a 429.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// True when `presented` is `token`. An empty token never matches, whatever the config
/// says (`config check` refuses short ones; this is the second lock). Both sides are
/// hashed first so the compare takes the same time whatever the lengths: `ct_eq` on
/// slices of different lengths returns at once, which would leak the token's length.
pub fn token_matches(presented: &str, token: &SecretString) -> bool {
    let secret = token.expose_secret();
    if presented.is_empty() || secret.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(secret.as_bytes());
    a.ct_eq(&b).into()
}

/// Failed attempts allowed per address per [`WINDOW`] before a 429, by default
/// (`server.admin_auth_failures_per_minute`).
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond it expired windows are dropped, then the oldest
/// half, so a flood of addresses cannot grow the map without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// Failed admin-token attempts per client address, in fixed one-minute windows.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    // std Mutex: held for one map lookup or insert, never across an await.
    by_addr: Mutex<HashMap<IpAddr, Failures>>,
    /// Failures allowed per window; 0: never blocks.
    max: u32,
}

impl Default for FailedAuthLimiter {
    fn default() -> Self {
        FailedAuthLimiter::new(MAX_FAILURES)
    }
}

impl FailedAuthLimiter {
    pub fn new(max: u32) -> FailedAuthLimiter {
        FailedAuthLimiter {
            by_addr: Mutex::default(),
            max,
        }
    }

    /// Seconds until `addr` may try again, when it has used up its failures.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        if self.max == 0 {
            return None;
        }
        let map = self.by_addr.lock().ok()?;
        let f = map.get(&addr)?;
        let elapsed = now.saturating_duration_since(f.since);
        (f.count >= self.max && elapsed < WINDOW)
            .then(|| WINDOW.saturating_sub(elapsed).as_secs().max(1))
    }

    pub fn failed(&self, addr: IpAddr, now: Instant) {
        if self.max == 0 {
            return;
        }
        let Ok(mut map) = self.by_addr.lock() else {
            return;
        };
        if map.len() >= MAX_TRACKED && !map.contains_key(&addr) {
            map.retain(|_, f| now.saturating_duration_since(f.since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                let mut ages: Vec<Instant> = map.values().map(|f| f.since).collect();
                ages.sort_unstable();
                if let Some(&cut) = ages.get(ages.len() / 2) {
                    map.retain(|_, f| f.since > cut);
                }
            }
        }
        let f = map.entry(addr).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.saturating_duration_since(f.since) >= WINDOW {
            *f = Failures {
                since: now,
                count: 0,
            };
        }
        f.count = f.count.saturating_add(1);
    }
}

fn guarded(path: &str) -> bool {
    path.starts_with("/admin/") || path == "/ui/login" || path == "/metrics"
}

/// Refuses an address that failed [`MAX_FAILURES`] times within a minute on the admin
/// API, the dashboard login or `/metrics` (429 with `retry-after`), and counts each new
/// 401 there as a failure. Without the peer address (a router served without connect
/// info) it does nothing.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (Some(addr), true) = (addr, guarded(req.uri().path())) else {
        return next.run(req).await;
    };
    if let Some(retry_after) = state.auth_failures.blocked(addr, Instant::now()) {
        tracing::warn!(%addr, "admin auth: too many failed attempts");
        return ApiError::TooManyRequests {
            message: "Too many failed attempts with the admin token from this address; \
                      try again later."
                .into(),
            code: "too_many_failed_attempts",
            retry_after: Some(retry_after),
            headers: vec![],
        }
        .into_response();
    }
    let response = next.run(req).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        state.auth_failures.failed(addr, Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tokens_never_match_and_lengths_do_not_matter() {
        let token = SecretString::from("0123456789abcdef");
        assert!(token_matches("0123456789abcdef", &token));
        assert!(!token_matches("", &token));
        assert!(!token_matches("0123456789abcde", &token));
        assert!(!token_matches("0123456789abcdef0", &token));
        assert!(!token_matches("", &SecretString::from("")));
    }

    #[test]
    fn an_address_is_blocked_after_ten_failures_for_the_rest_of_the_minute() {
        let l = FailedAuthLimiter::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(l.blocked(a, t0), None);
            l.failed(a, t0);
        }
        assert_eq!(l.blocked(a, t0), Some(60));
        assert_eq!(l.blocked(b, t0), None, "other addresses are not affected");
        assert_eq!(l.blocked(a, t0 + Duration::from_secs(45)), Some(15));
        assert_eq!(l.blocked(a, t0 + WINDOW), None);
        l.failed(a, t0 + WINDOW);
        assert_eq!(l.blocked(a, t0 + WINDOW), None, "a new window starts at 1");
    }
}
