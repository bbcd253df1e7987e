//! Recording of the requests that reached an emulator's model endpoints.
//!
//! Control-plane (`/_emulator/...`) and token-endpoint requests are not recorded.

use std::sync::Mutex;

use axum::http::HeaderMap;
use serde_json::Value;

/// One request as the emulator received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path including the query string, e.g. `/openai/deployments/d/chat/completions?api-version=2024-10-21`.
    pub path: String,
    /// Header names (lower-case) and values, in arrival order. Values that are not UTF-8
    /// are recorded lossily.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it was empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Append-only log of [`RecordedRequest`]s.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    log: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record(&self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.lock().push(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body,
        });
    }

    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
