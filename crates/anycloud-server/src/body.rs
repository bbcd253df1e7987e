//! Reads a request body up to the configured limit and parses it as JSON,
//! so over-long and malformed bodies come back as OpenAI-shaped 413/400
//! rather than axum's plain-text rejections.

use crate::error::ApiError;
use axum::body::Body;
use serde::de::DeserializeOwned;

pub async fn read_json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    parse_json(&read_bytes(body, limit).await?)
}

/// The whole body, or a 413 past `limit`.
pub async fn read_bytes(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes reports an over-limit body as a length-limit error in its
        // source chain; anything else is a broken client connection.
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = src {
            if s.to_string().contains("length limit") {
                return ApiError::PayloadTooLarge { limit };
            }
            src = s.source();
        }
        ApiError::invalid(format!("could not read the request body: {e}"), None)
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "The request body is empty; expected a JSON object.",
            None,
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let param = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(str::to_string);
        let message = if e.is_syntax() || e.is_eof() {
            format!("We could not parse the JSON body of your request: {msg}")
        } else {
            format!("Invalid request body: {msg}")
        };
        ApiError::InvalidRequest {
            message,
            param,
            code: None,
        }
    })
}
