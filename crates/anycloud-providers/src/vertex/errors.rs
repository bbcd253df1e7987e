//! Google RPC errors (`{"error":{"code","message","status","details"}}`, §4.5 and §7.2)
//! classified for the dispatcher.
//!
//! - `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED`, `ABORTED`:
//!   retryable, with `retry_after` from a `google.rpc.RetryInfo` detail (Google sends no
//!   rate-limit headers);
//! - `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`: the client's request;
//! - `PERMISSION_DENIED`, `UNAUTHENTICATED`, `NOT_FOUND`: this cloud's credentials or
//!   deployment are wrong: fail over (`Upstream` with 403/401/404).

use super::wire::GoogleError;
use crate::error::{ProviderError, ProviderErrorKind};
use std::time::Duration;

const MAX_MESSAGE_CHARS: usize = 1000;

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The HTTP status a Google RPC status stands for (used for in-stream errors, which come
/// with a 200).
fn rpc_http_status(status: &str) -> Option<u16> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

/// `"37s"` / `"1.5s"` (protobuf Duration JSON) as a duration.
pub fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    crate::error::upstream_seconds(secs)
}

fn retry_delay(details: &[serde_json::Value]) -> Option<Duration> {
    details.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        if !ty.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        parse_proto_duration(d.get("retryDelay")?.as_str()?)
    })
}

/// Classifies one Google error object. `http_status` is the response's status (None for
/// an error inside a 200 stream, where the RPC status decides).
pub fn google_error_from_json(http_status: Option<u16>, err: &serde_json::Value) -> ProviderError {
    let e: GoogleError = serde_json::from_value(err.clone()).unwrap_or_default();
    let rpc = e.status.as_deref().unwrap_or_default();
    let status = http_status
        .or_else(|| rpc_http_status(rpc))
        .or(e.code)
        .unwrap_or(500);
    let message = if e.message.is_empty() {
        format!("upstream returned HTTP {status}")
    } else if rpc.is_empty() {
        truncate(&e.message)
    } else {
        format!("{rpc}: {}", truncate(&e.message))
    };
    let mut out =
        ProviderError::upstream(status, message).with_retry_after(retry_delay(&e.details));
    out.kind = match rpc {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            ProviderErrorKind::InvalidRequest
        }
        "" => out.kind,
        _ => ProviderErrorKind::Upstream,
    };
    // The Gemini API answers a wrong key with 400 INVALID_ARGUMENT; it is this cloud's
    // credential that is bad, not the client's request, so treat it like a 401.
    if reason(&e.details) == Some("API_KEY_INVALID") {
        out.kind = ProviderErrorKind::Upstream;
        out.status = Some(401);
    }
    out
}

fn reason(details: &[serde_json::Value]) -> Option<&str> {
    details
        .iter()
        .find_map(|d| d.get("reason").and_then(serde_json::Value::as_str))
}

/// The error for a non-2xx answer: the Google shape when the body has it, else the status
/// and a prefix of the body text.
pub fn google_error(status: u16, body: &[u8]) -> ProviderError {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.get("error").is_some_and(serde_json::Value::is_object) => {
            google_error_from_json(Some(status), &v["error"])
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("upstream returned HTTP {status}")
            } else {
                format!("upstream returned HTTP {status}: {}", truncate(text))
            };
            ProviderError::upstream(status, message)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn resource_exhausted_is_retryable_with_retry_info() {
        let body = br#"{"error":{"code":429,"message":"Resource exhausted.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let e = google_error(429, body);
        assert_eq!(e.kind, ProviderErrorKind::Upstream);
        assert_eq!(e.status, Some(429));
        assert_eq!(e.retry_after, Some(Duration::from_secs(37)));
        assert!(e.is_retryable());
        assert_eq!(e.message, "RESOURCE_EXHAUSTED: Resource exhausted.");
    }

    #[test]
    fn invalid_argument_and_failed_precondition_are_the_clients() {
        for rpc in ["INVALID_ARGUMENT", "FAILED_PRECONDITION"] {
            let body = format!(r#"{{"error":{{"code":400,"message":"bad","status":"{rpc}"}}}}"#);
            let e = google_error(400, body.as_bytes());
            assert_eq!(e.kind, ProviderErrorKind::InvalidRequest, "{rpc}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn auth_and_not_found_fail_over() {
        for (status, rpc) in [
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
        ] {
            let body = format!(r#"{{"error":{{"code":{status},"message":"x","status":"{rpc}"}}}}"#);
            let e = google_error(status, body.as_bytes());
            assert_eq!(e.kind, ProviderErrorKind::Upstream);
            assert!(e.is_retryable(), "{rpc}");
        }
    }

    #[test]
    fn in_stream_errors_take_their_status_from_the_rpc_status() {
        let v = serde_json::json!({"code": 503, "message": "busy", "status": "UNAVAILABLE"});
        let e = google_error_from_json(None, &v);
        assert_eq!(e.status, Some(503));
        assert!(e.is_retryable());
        assert_eq!(
            parse_proto_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_proto_duration("-1s"), None);
        let e = google_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.status, Some(502));
        assert!(e.message.contains("bad gateway"));
    }

    #[test]
    fn a_retry_delay_of_1e20s_or_inf_is_clamped_to_an_hour_not_a_panic() {
        for d in ["1e20s", "infs", "1e400s", "18446744073709551616s"] {
            assert_eq!(
                parse_proto_duration(d),
                Some(crate::error::MAX_RETRY_AFTER),
                "{d}"
            );
        }
        assert_eq!(parse_proto_duration("NaNs"), None);
        let body = br#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e20s"}]}}"#;
        assert_eq!(
            google_error(429, body).retry_after,
            Some(Duration::from_secs(3600))
        );
    }
}
