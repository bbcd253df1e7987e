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

    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
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

    /// The route reason code (product.md §4.8) for this failure.
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

/// Parses `retry-after-ms` or `retry-after` (seconds; an HTTP date is not
/// worth the parse for LLM clouds, which send seconds).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        if ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}
