//! The HTTP side every provider shares.
//!
//! [`HttpClient`] wraps one pooled `reqwest::Client` per cloud (rustls, HTTP/1.1
//! and HTTP/2 chosen by ALPN, the cloud's connect timeout) together with the
//! cloud's first-byte and idle timeouts, and turns every way a call can go
//! wrong into a [`ProviderError`]: transport failures, a slow first byte, a
//! non-2xx status (with the cloud's own message and `retry-after`), a body
//! that does not decode.
//!
//! Error messages are built from the status and the cloud's error text only —
//! never from request headers or URLs, which can carry credentials.
//!
//! Neighbours: `sse` decodes the streaming bodies this returns; the provider
//! modules (`openai`, `azure`) build the requests.

use crate::error::{retry_after, ProviderError, ProviderErrorKind};
use crate::openai::wire::ErrorEnvelope;
use crate::sse::{self, SseStream};
use anycloud_config::CloudConfig;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest cloud error text kept in a [`ProviderError`] message.
const MAX_MESSAGE_CHARS: usize = 1000;
/// Cap on a non-streaming response body (embeddings of large batches are the
/// biggest legitimate ones).
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// One cloud's pooled client and timeouts. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
}

impl HttpClient {
    /// Builds the client for `cloud`.
    pub fn new(cloud: &CloudConfig) -> Result<HttpClient, ProviderError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_millis(cloud.connect_timeout_ms))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            // A redirect would resend credentials to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("anycloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::Unsupported,
                    format!("cloud {}: cannot build HTTP client: {e}", cloud.name),
                )
            })?;
        Ok(HttpClient {
            client,
            first_byte_timeout: Duration::from_millis(cloud.first_byte_timeout_ms),
            idle_timeout: Duration::from_millis(cloud.idle_timeout_ms),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Sends `req` and waits for the response headers within the first-byte
    /// timeout. A non-2xx status becomes an error built from the body, read in
    /// the OpenAI error shape (which Azure, Anthropic and OpenAI-compatible
    /// servers share).
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        self.send_with(req, error_from_response).await
    }

    /// [`HttpClient::send`] for a cloud with its own error shape: `decode` turns a
    /// non-2xx status, its headers and its body into the error.
    pub async fn send_with(
        &self,
        req: reqwest::RequestBuilder,
        decode: ErrorDecoder,
    ) -> Result<reqwest::Response, ProviderError> {
        let resp = match tokio::time::timeout(self.first_byte_timeout, req.send()).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(ProviderError::from_transport(&e)),
            Err(_) => {
                return Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    format!(
                        "no response within the first-byte timeout of {} ms",
                        self.first_byte_timeout.as_millis()
                    ),
                ))
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // The error body is best effort: a cloud that fails to send it still
        // failed with this status.
        let body = self.read_body(resp).await.unwrap_or_default();
        Err(decode(status, &headers, &body))
    }

    /// Reads a whole body, the idle timeout applying to each read.
    pub async fn read_body(&self, resp: reqwest::Response) -> Result<Bytes, ProviderError> {
        let mut reads = Box::pin(sse::with_idle_timeout(
            resp.bytes_stream(),
            self.idle_timeout,
            |e: reqwest::Error| ProviderError::from_transport(&e),
        ));
        let mut buf = BytesMut::new();
        while let Some(chunk) = reads.next().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ProviderError::new(
                    ProviderErrorKind::Protocol,
                    "upstream response body too large",
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Reads and parses a JSON body.
    pub async fn read_json<T: DeserializeOwned>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T, ProviderError> {
        let body = self.read_body(resp).await?;
        serde_json::from_slice(&body).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Protocol,
                format!("upstream response did not decode: {e}"),
            )
        })
    }

    /// The response body as SSE events: the first-byte timeout until the first whole
    /// event, the idle timeout between two (events, not reads: see [`sse::decode_events`]).
    pub fn sse(&self, resp: reqwest::Response) -> SseStream {
        sse::decode_events(
            resp.bytes_stream(),
            self.first_byte_timeout,
            self.idle_timeout,
            |e: reqwest::Error| ProviderError::from_transport(&e),
        )
    }
}

/// Builds the error for a non-2xx upstream answer: the cloud's own message
/// (OpenAI error shape when it parses, else a short prefix of the body),
/// `retry-after` from the headers (or from Azure's "retry after N seconds"
/// wording), and for Azure's prompt `content_filter` the whole error envelope
/// as `client_body` so the client sees `innererror`.
/// How one cloud's non-2xx answer (status, headers, body) becomes a [`ProviderError`].
pub type ErrorDecoder = fn(u16, &HeaderMap, &[u8]) -> ProviderError;

pub fn error_from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let envelope = parsed
        .as_ref()
        .and_then(|v| serde_json::from_value::<ErrorEnvelope>(v.clone()).ok());
    let Some(envelope) = envelope else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            format!("upstream returned HTTP {status}")
        } else {
            format!("upstream returned HTTP {status}: {}", truncate(text))
        };
        return ProviderError::upstream(status, message).with_retry_after(retry_after(headers));
    };
    let code = envelope.error.code.as_ref().and_then(code_str);
    let message = if envelope.error.message.is_empty() {
        format!("upstream returned HTTP {status}")
    } else {
        truncate(&envelope.error.message)
    };
    let retry = retry_after(headers).or_else(|| retry_after_in_message(&message));
    let mut err = ProviderError::upstream(status, message).with_retry_after(retry);
    if code.as_deref() == Some("content_filter") {
        err.kind = ProviderErrorKind::InvalidRequest;
        err.client_body = parsed;
    }
    err
}

/// An in-stream `{"error": {...}}` classified like the HTTP error it stands
/// for: an explicit `status`, else the `code`/`type` mapped to one.
pub fn error_from_stream_object(error: &crate::openai::wire::ErrorObject) -> ProviderError {
    let code = error.code.as_ref().and_then(code_str);
    let kind = error.kind.as_deref().unwrap_or_default();
    let status = code
        .as_deref()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|s| (400..600).contains(s))
        .unwrap_or_else(|| match (code.as_deref().unwrap_or_default(), kind) {
            ("rate_limit_exceeded" | "insufficient_quota", _) | (_, "tokens" | "requests") => 429,
            ("invalid_api_key", _) | (_, "authentication_error") => 401,
            ("model_not_found", _) => 404,
            ("context_length_exceeded" | "content_filter", _) | (_, "invalid_request_error") => 400,
            ("server_is_overloaded" | "service_unavailable", _)
            | (_, "service_unavailable_error") => 503,
            _ => 500,
        });
    let message = if error.message.is_empty() {
        "upstream stream reported an error".to_string()
    } else {
        truncate(&error.message)
    };
    let retry = retry_after_in_message(&message);
    ProviderError::upstream(status, message).with_retry_after(retry)
}

fn code_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Azure's throttling text says "Please retry after 6 seconds" when its
/// headers do not (provider-wire-formats §7.1).
fn retry_after_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("retry after ")? + "retry after ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    rest[digits.len()..]
        .trim_start()
        .starts_with("second")
        .then(|| Duration::from_secs(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn openai_error_shape_gives_message_status_and_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let body = br#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let e = error_from_response(429, &h, body);
        assert_eq!(e.kind, ProviderErrorKind::Upstream);
        assert_eq!(e.status, Some(429));
        assert_eq!(e.message, "Rate limit reached");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        assert!(e.client_body.is_none());
    }

    #[test]
    fn azure_throttle_text_supplies_retry_after() {
        let body = br#"{"error":{"code":"429","message":"Requests ... Please retry after 6 seconds. Please go here"}}"#;
        let e = error_from_response(429, &HeaderMap::new(), body);
        assert_eq!(e.retry_after, Some(Duration::from_secs(6)));
    }

    #[test]
    fn content_filter_keeps_the_whole_error_for_the_client() {
        let body = br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        let e = error_from_response(400, &HeaderMap::new(), body);
        assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
        assert!(!e.is_retryable());
        let cb = e.client_body.unwrap();
        assert_eq!(
            cb["error"]["innererror"]["code"],
            "ResponsibleAIPolicyViolation"
        );
    }

    #[test]
    fn non_json_bodies_are_truncated_text() {
        let body = "x".repeat(5000);
        let e = error_from_response(502, &HeaderMap::new(), body.as_bytes());
        assert_eq!(e.status, Some(502));
        assert!(e.message.starts_with("upstream returned HTTP 502: xxx"));
        assert!(e.message.chars().count() < 1100);
        let e = error_from_response(500, &HeaderMap::new(), b"");
        assert_eq!(e.message, "upstream returned HTTP 500");
    }

    #[test]
    fn stream_errors_map_to_statuses() {
        use crate::openai::wire::ErrorObject;
        let obj = |code: &str, kind: &str| ErrorObject {
            message: "m".into(),
            kind: Some(kind.into()),
            param: None,
            code: Some(serde_json::Value::String(code.into())),
        };
        assert_eq!(
            error_from_stream_object(&obj("rate_limit_exceeded", "")).status,
            Some(429)
        );
        assert_eq!(
            error_from_stream_object(&obj("", "invalid_request_error")).kind,
            ProviderErrorKind::InvalidRequest
        );
        assert_eq!(
            error_from_stream_object(&obj("", "server_error")).status,
            Some(500)
        );
        assert_eq!(error_from_stream_object(&obj("503", "")).status, Some(503));
        assert!(error_from_stream_object(&obj("server_is_overloaded", "")).is_retryable());
    }
}
