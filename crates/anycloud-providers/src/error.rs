//! Provider errors, classified by what the dispatcher should do with them.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// Could not connect (refused, DNS, TLS). Fail over.
    Connect,
    /// No response byte within the first-byte timeout, or a stream went
    /// silent longer than the idle timeout. Fail over if nothing was sent.
    Timeout,
    /// The cloud answered with an HTTP error status (or an in-stream error
    /// standing for one). Retryable statuses fail over.
    Upstream,
    /// The cloud rejected the request as invalid (400, 413, 422, content
    /// filter on the prompt): the client's error, returned as such.
    InvalidRequest,
    /// The response did not decode, or a stream ended without finishing.
    Protocol,
    /// The gateway cannot express this request for this cloud.
    Unsupported,
}

/// What went wrong on one attempt. Never holds a credential: messages are
/// built from statuses and the cloud's own error text, not from requests.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// Upstream HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
    /// From `retry-after` / `retry-after-ms` (or the cloud's equivalent).
    pub retry_after: Option<Duration>,
    /// The cloud's own error object in OpenAI shape, when it is worth passing
    /// to the client verbatim (Azure's `content_filter` with `innererror`).
    pub client_body: Option<serde_json::Value>,
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
            client_body: None,
        }
    }

    pub fn upstream(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            400 | 413 | 422 => ProviderErrorKind::InvalidRequest,
            _ => ProviderErrorKind::Upstream,
        };
        ProviderError {
            kind,
            status: Some(status),
            message: message.into(),
            retry_after: None,
            client_body: None,
        }
    }

    /// Sets the cloud's retry delay, clamped to [`MAX_RETRY_AFTER`]: a cloud's number
    /// must not park a deployment for years (or overflow an `Instant`).
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d.map(|d| d.min(MAX_RETRY_AFTER));
        self
    }

    /// May another candidate (or a later retry) be tried? Product.md §4.7:
    /// connect errors, timeouts, 408/429/500/502/503/504/529 move on; so do
    /// 401/403/404 from a cloud (its credentials or deployment are wrong, not
    /// the client's request; provider-wire-formats §7.2). A 400 does not.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ProviderErrorKind::Connect
            | ProviderErrorKind::Timeout
            | ProviderErrorKind::Protocol => true,
            ProviderErrorKind::Upstream => matches!(
                self.status,
                Some(401 | 403 | 404 | 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529) | None
            ),
            ProviderErrorKind::InvalidRequest | ProviderErrorKind::Unsupported => false,
        }
    }

    /// The route reason code (README "Routing") for this failure.
    pub fn reason_code(&self) -> String {
        match (self.kind, self.status) {
            (ProviderErrorKind::Connect, _) => "connect".into(),
            (ProviderErrorKind::Timeout, _) => "timeout".into(),
            (ProviderErrorKind::Protocol, _) => "protocol".into(),
            (ProviderErrorKind::Unsupported, _) => "unsupported".into(),
            (_, Some(s)) => format!("upstream_{s}"),
            (_, None) => "upstream_error".into(),
        }
    }

    /// Classifies a transport error from reqwest. The URL is dropped: some
    /// clouds carry credentials in the query string.
    pub fn from_transport(e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            ProviderErrorKind::Timeout
        } else if e.is_connect() {
            ProviderErrorKind::Connect
        } else if e.is_decode() || e.is_body() {
            ProviderErrorKind::Protocol
        } else {
            ProviderErrorKind::Connect
        };
        let what = match kind {
            ProviderErrorKind::Timeout => "timed out",
            ProviderErrorKind::Connect => "connection failed",
            _ => "response body failed",
        };
        let source = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        ProviderError::new(kind, format!("{what}{source}"))
    }
}

/// The longest retry delay taken from a cloud; longer ones (`1e20`, `inf`) are clamped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Seconds from a cloud (a header, a `retryDelay`) as a duration: `None` when negative
/// or not a number, at most [`MAX_RETRY_AFTER`]. Never panics, unlike
/// `Duration::from_secs_f64` on a huge or infinite value.
pub fn upstream_seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_RETRY_AFTER)
            .min(MAX_RETRY_AFTER),
    )
}

/// Parses `retry-after-ms` or `retry-after` (seconds; an HTTP date is not
/// worth the parse for LLM clouds, which send seconds).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(d) = number("retry-after-ms").and_then(|ms| upstream_seconds(ms / 1000.0)) {
        return Some(d);
    }
    number(reqwest::header::RETRY_AFTER.as_str()).and_then(upstream_seconds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod retry_after_tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn huge_infinite_or_negative_retry_after_is_clamped_or_ignored_never_a_panic() {
        for v in ["1e20", "inf", "1e400", "18446744073709551616"] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", v)])),
                Some(MAX_RETRY_AFTER),
                "{v}"
            );
            assert_eq!(
                retry_after(&headers(&[("retry-after-ms", v)])),
                Some(MAX_RETRY_AFTER),
                "ms {v}"
            );
        }
        for v in ["-1", "NaN", "-inf", "soon"] {
            assert_eq!(retry_after(&headers(&[("retry-after", v)])), None, "{v}");
        }
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1500")])),
            Some(Duration::from_millis(1500))
        );
        let e =
            ProviderError::upstream(429, "x").with_retry_after(Some(Duration::from_secs(u64::MAX)));
        assert_eq!(e.retry_after, Some(MAX_RETRY_AFTER));
    }
}
