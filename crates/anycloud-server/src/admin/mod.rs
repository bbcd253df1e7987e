//! The admin API under `/admin/v1` (README "Governance: tenants, keys, budgets, limits, audit, capture"): every route requires the admin
//! token (`server.admin_token`) as `Authorization: Bearer` — 401 without it or with a
//! wrong one, 403 with a client key — except the OpenAPI document.
//!
//! One file per resource: `tenants`, `keys`, `audit`, `captures`; `openapi` assembles
//! the document from the handlers' `#[utoipa::path]` annotations. Bodies and queries are
//! parsed here (not by axum's extractors) so that every rejection is a documented JSON
//! error rather than axum's plain-text one.

pub mod audit;
pub mod captures;
pub mod clouds;
pub mod explain;
pub mod keys;
pub mod ledger;
pub mod openapi;
pub mod risk;
pub mod tenants;

use crate::error::ApiError;
use crate::mcp::policy::McpPolicySpec;
use crate::state::AppState;
use anycloud_governance::policy::{BudgetSpec, RateLimitSpec};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/openapi.json", get(openapi::document))
        .route("/admin/v1/risk", get(risk::risk))
        .route("/admin/v1/simulate", post(risk::simulate))
        .route(
            "/admin/v1/tenants",
            get(tenants::list).post(tenants::create),
        )
        .route(
            "/admin/v1/tenants/{name}",
            get(tenants::get_one).put(tenants::update),
        )
        .route("/admin/v1/keys", get(keys::list).post(keys::create))
        .route("/admin/v1/keys/{id}", get(keys::get_one))
        .route(
            "/admin/v1/keys/{id}/policy",
            axum::routing::put(keys::set_policy),
        )
        .route("/admin/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/v1/audit", get(audit::query_handler))
        .route("/admin/v1/audit/verify", get(audit::verify))
        .route("/admin/v1/captures/{request_id}", get(captures::get_one))
}

/// Checks the admin token in constant time. 401 without a token or with a wrong one,
/// 403 with a client key, 403 when no admin token is configured.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(presented) = crate::auth::presented_key(headers, false) else {
        return Err(ApiError::Unauthorized {
            message: "The admin API needs the admin token as `Authorization: Bearer <token>`."
                .into(),
        });
    };
    let Some(token) = &state.config.server.admin_token else {
        return Err(ApiError::Forbidden {
            message: "The admin API is disabled: set `server.admin_token`.".into(),
            code: "admin_disabled",
            route: vec![],
        });
    };
    if crate::admin_auth::token_matches(presented, token) {
        return Ok(());
    }
    if anycloud_store::keys::parse_id(presented).is_some() {
        return Err(ApiError::Forbidden {
            message: "Client API keys cannot use the admin API; use the admin token.".into(),
            code: "admin_token_required",
            route: vec![],
        });
    }
    Err(ApiError::Unauthorized {
        message: "Incorrect admin token.".into(),
    })
}

/// Parses the query string into `T`, as a documented 400 on failure.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| ApiError::invalid(format!("Invalid query: {}", e.body_text()), None))
}

/// Parses a JSON body into `T`, as a documented 400 on failure.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde also reads a struct from a JSON array (`[usd, period]`); the document says
    // objects, so arrays are refused before typed parsing.
    let v: serde_json::Value = crate::body::parse_json(bytes)?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    };
    for field in ["budget", "rate_limit"] {
        if obj
            .get(field)
            .is_some_and(|f| !(f.is_object() || f.is_null()))
        {
            return Err(ApiError::invalid(
                format!("`{field}` must be an object or null."),
                Some(field),
            ));
        }
    }
    serde_json::from_value(v)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}"), None))
}

/// `{"data": [...]}`, the list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
}

/// The error envelope every admin failure uses (the OpenAI shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// The budget and rate-limit checks a tenant's and a key's policy share (with no
/// config needed: also the fuzz target's).
pub(crate) fn check_limits(
    budget: Option<BudgetSpec>,
    rate_limit: Option<RateLimitSpec>,
) -> Result<(), ApiError> {
    if let Some(b) = budget {
        if !(b.usd.is_finite() && b.usd >= 0.0) {
            return Err(ApiError::invalid(
                "budget.usd must be a non-negative number.",
                Some("budget"),
            ));
        }
    }
    if let Some(r) = rate_limit {
        if let Some(m) = r.problem() {
            return Err(ApiError::invalid(m, Some("rate_limit")));
        }
    }
    Ok(())
}

/// An MCP policy may name only the configured servers and their tools.
pub(crate) fn check_mcp(state: &AppState, mcp: Option<&McpPolicySpec>) -> Result<(), ApiError> {
    match mcp.and_then(|m| crate::mcp::policy::problem(m, &state.config.mcp_servers)) {
        Some(msg) => Err(ApiError::invalid(msg, Some("mcp"))),
        None => Ok(()),
    }
}

/// Audits one admin change: the resource before (`null` when it is new) and after.
pub(crate) fn audit_change<B: Serialize, A: Serialize>(
    state: &AppState,
    action: &str,
    tenant: Option<&str>,
    before: Option<&B>,
    after: &A,
) {
    let before = before.map_or(serde_json::Value::Null, |b| {
        serde_json::to_value(b).unwrap_or_default()
    });
    let after = serde_json::to_value(after).unwrap_or_default();
    state.governance.audit.admin(action, tenant, before, after);
}

/// The handler's answer: `ok` with the JSON, or the error in its documented shape.
pub(crate) fn respond<T: Serialize>(r: Result<T, ApiError>, ok: StatusCode) -> Response {
    match r {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Maps store failures to a generic 500 (details go to the log, not the client).
pub fn store_error(e: anycloud_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "admin store operation failed");
    ApiError::Internal {
        message: "The gateway's store is unavailable.".into(),
    }
}
