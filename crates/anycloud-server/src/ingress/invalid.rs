//! A client request the API's own service would reject with 400: the message and
//! the offending field, named the way that API names it (`messages[1].tool_call_id`
//! for Chat Completions, `messages.1.content.0` for Messages). The wire
//! translations (`chat/convert.rs`, `messages/convert.rs`, `embeddings/convert.rs`)
//! return it; the pipeline renders it in the API's error shape.

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<String>,
}

impl InvalidRequest {
    pub fn new(message: impl Into<String>, param: impl Into<String>) -> InvalidRequest {
        InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

/// Each item through `parse` with its position (for the error's field name).
pub fn each<T, U>(
    items: impl IntoIterator<Item = T>,
    parse: impl Fn(usize, T) -> Result<U, InvalidRequest>,
) -> Result<Vec<U>, InvalidRequest> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, t)| parse(i, t))
        .collect()
}

impl std::fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidRequest {}

impl From<InvalidRequest> for ApiError {
    fn from(e: InvalidRequest) -> ApiError {
        ApiError::invalid(e.message, e.param.as_deref())
    }
}
