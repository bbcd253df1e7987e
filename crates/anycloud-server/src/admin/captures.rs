//! `/admin/v1/captures/{request_id}`: one captured payload, decrypted. Reading a capture
//! is itself audited (`admin.capture.read`).

use super::{require_admin, store_error, ErrorBody};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// A captured request and response, as the tenant sent and received them (redacted when
/// `[capture] redact = true`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Capture {
    pub request_id: String,
    pub at: DateTime<Utc>,
    pub tenant: String,
    /// The id of the key that sealed it.
    pub key_id: String,
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// The answer as the client received it; a stream's reassembled into the API's
    /// non-streaming shape (`null` only when the request failed before an answer).
    #[schema(value_type = Option<Object>)]
    pub response: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/admin/v1/captures/{request_id}", tag = "captures",
    security(("admin_token" = [])),
    params(("request_id" = String, Path, description = "The request's `x-request-id`")),
    responses(
        (status = 200, description = "The decrypted capture", body = Capture),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "Nothing captured for this request", body = ErrorBody),
        (status = 500, description = "The record cannot be decrypted with the configured keys", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let rec = state
            .store
            .capture(&request_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::NotFound {
                message: format!("Nothing was captured for request `{request_id}`."),
                param: Some("request_id".into()),
                code: "capture_not_found",
            })?;
        let body = state.governance.sealer.open(&rec).map_err(|e| {
            tracing::error!(error = %e, "capture could not be opened");
            ApiError::Internal {
                message: e.to_string(),
            }
        })?;
        state.governance.audit.admin(
            "admin.capture.read",
            Some(&rec.tenant),
            serde_json::Value::Null,
            serde_json::json!({"request_id": rec.request_id}),
        );
        Ok(Capture {
            request_id: rec.request_id,
            at: rec.at,
            tenant: rec.tenant,
            // The configured key's id (the stored one also marks tenant binding).
            key_id: anycloud_governance::capture::key_id_of(&rec.key_id).to_string(),
            request: body.get("request").cloned().unwrap_or_default(),
            response: body.get("response").cloned().filter(|v| !v.is_null()),
        })
    }
    .await;
    let r: Result<Capture, ApiError> = r;
    match r {
        Ok(c) => Json(c).into_response(),
        Err(e) => e.into_response(),
    }
}
