//! The OpenAI Responses API with stored state: `POST /v1/responses`,
//! `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.
//!
//! The conversation lives in the gateway, not in one cloud: each stored
//! response keeps the whole canonical conversation so far, and
//! `previous_response_id` replays it to whichever cloud the router picks
//! now. Stored state is per tenant (another tenant's key gets 404) and
//! expires after `responses.retention_days`.

pub mod create;
pub mod stream;
pub mod wire;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::request_id::RouteInfo;
use crate::state::AppState;
use anycloud_store::StoredResponse;
use anycloud_types::Message;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What a stored response keeps.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredDoc {
    pub(crate) response: Value,
    pub(crate) input_items: Vec<Value>,
    /// The whole conversation through this response (instructions excluded:
    /// they are not carried over by `previous_response_id`).
    pub(crate) conversation: Vec<Message>,
}

fn not_found(id: &str, param: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("No response found with id '{id}'."),
        param: Some(param.into()),
        code: if param == "previous_response_id" {
            "previous_response_not_found"
        } else {
            "response_not_found"
        },
    }
}

fn store_error(e: anycloud_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "responses store failed");
    ApiError::Internal {
        message: "The gateway's store is unavailable.".into(),
    }
}

pub(crate) async fn load(
    state: &AppState,
    tenant: &str,
    id: &str,
    param: &str,
) -> Result<StoredDoc, ApiError> {
    let stored = state
        .store
        .get_response(tenant, id, chrono::Utc::now())
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(id, param))?;
    let unreadable = || ApiError::Internal {
        message: "A stored response could not be read.".into(),
    };
    let plain = state
        .governance
        .sealer
        .open_stored(
            &stored.id,
            &stored.tenant,
            stored.created_at,
            stored.key_id.as_deref(),
            &stored.body,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "a stored response could not be unsealed");
            unreadable()
        })?;
    serde_json::from_value(plain).map_err(|_| unreadable())
}

pub(crate) async fn save(
    state: &AppState,
    tenant: &str,
    id: &str,
    doc: &StoredDoc,
) -> Result<(), ApiError> {
    let unstorable = || ApiError::Internal {
        message: "A response could not be stored.".into(),
    };
    // Encrypted at rest with the capture key when one is configured.
    let value = serde_json::to_value(doc).map_err(|_| unstorable())?;
    let (key_id, body) = state
        .governance
        .sealer
        .seal_stored(id, tenant, value)
        .map_err(|e| {
            tracing::error!(error = %e, "a response could not be sealed");
            unstorable()
        })?;
    let now = chrono::Utc::now();
    let days = i64::from(state.config.responses.retention_days);
    state
        .store
        .put_response(&StoredResponse {
            id: id.to_string(),
            tenant: tenant.to_string(),
            created_at: now,
            expires_at: now + chrono::Duration::days(days),
            key_id,
            body,
        })
        .await
        .map_err(store_error)
}

fn with_info(mut resp: Response, info: RouteInfo) -> Response {
    resp.extensions_mut().insert(info);
    resp
}

async fn principal_tenant(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(authenticate(&state.directory, headers)
        .await?
        .tenant
        .name
        .clone())
}

fn info() -> RouteInfo {
    RouteInfo {
        api: "responses",
        model: "none".into(),
        cloud: "none".into(),
    }
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        Ok::<_, ApiError>(load(&state, &tenant, &id, "response_id").await?.response)
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        if state
            .store
            .delete_response(&tenant, &id)
            .await
            .map_err(store_error)?
        {
            Ok(json!({"id": id, "object": "response", "deleted": true}))
        } else {
            Err(not_found(&id, "response_id"))
        }
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    before: Option<String>,
    order: Option<String>,
}

pub async fn input_items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        let mut items = load(&state, &tenant, &id, "response_id").await?.input_items;
        let limit = q.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid(
                "limit must be between 1 and 100.",
                Some("limit"),
            ));
        }
        match q.order.as_deref() {
            None | Some("desc") => items.reverse(),
            Some("asc") => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "order must be 'asc' or 'desc'.",
                    Some("order"),
                ))
            }
        }
        let position = |cursor: &str| items.iter().position(|i| i["id"] == cursor);
        let start = match &q.after {
            Some(a) => position(a)
                .map(|p| p + 1)
                .ok_or_else(|| ApiError::invalid("Unknown 'after' cursor.", Some("after")))?,
            None => 0,
        };
        let end = match &q.before {
            Some(b) => position(b)
                .ok_or_else(|| ApiError::invalid("Unknown 'before' cursor.", Some("before")))?,
            None => items.len(),
        };
        let window: Vec<Value> = items
            .get(start..end.max(start))
            .unwrap_or(&[])
            .iter()
            .take(limit)
            .cloned()
            .collect();
        let has_more = start + window.len() < end;
        Ok(json!({
            "object": "list",
            "data": window,
            "first_id": window.first().map(|i| i["id"].clone()),
            "last_id": window.last().map(|i| i["id"].clone()),
            "has_more": has_more,
        }))
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

/// Deletes expired responses every hour (and once at start).
pub fn spawn_purger(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match state.store.purge_responses(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired stored responses purged"),
                Err(e) => tracing::warn!(error = %e, "purging stored responses failed"),
            }
        }
    })
}
