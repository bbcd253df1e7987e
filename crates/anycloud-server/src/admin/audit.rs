//! `/admin/v1/audit`: query the hash-chained audit log by time, tenant, cloud and action
//! (paged by `after`), and `/admin/v1/audit/verify`: walk the whole chain.

use super::{query, require_admin, store_error, ErrorBody};
use crate::error::ApiError;
use crate::state::AppState;
use anycloud_store::{AuditQuery, AuditRecord, ChainStatus};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339, exclusive).
    pub to: Option<DateTime<Utc>>,
    pub tenant: Option<String>,
    pub cloud: Option<String>,
    /// e.g. `ai.chat_completions`, `admin.key.create`.
    pub action: Option<String>,
    /// At most this many entries (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries after this sequence number (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// One audit entry with its place in the chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `key:<id>` or `admin`.
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    pub model: Option<String>,
    pub cloud: Option<String>,
    pub request_id: Option<String>,
    pub status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Every route decision, in order: `{cloud, outcome, reason}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub route: Option<serde_json::Value>,
    /// Before/after for admin actions; attempts for AI actions.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditItem>,
    /// Pass as `after` for the next page; `null` when this page is the last.
    pub next_after: Option<i64>,
}

/// The chain's state: `intact` with the entry count, or `broken` naming the first bad
/// entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyResult {
    /// `intact` or `broken`.
    #[schema(pattern = "^(intact|broken)$")]
    pub status: String,
    /// Entries that verified.
    pub count: i64,
    /// The first altered, missing or misplaced entry (when broken).
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

impl From<AuditRecord> for AuditItem {
    fn from(r: AuditRecord) -> AuditItem {
        let e = r.entry;
        AuditItem {
            seq: r.seq,
            at: e.at,
            actor: e.actor,
            tenant: e.tenant,
            action: e.action,
            model: e.model,
            cloud: e.cloud,
            request_id: e.request_id,
            status: e.status,
            latency_ms: e.latency_ms,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            cost_usd: e.cost_usd,
            route: e.route,
            detail: e.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<ChainStatus> for VerifyResult {
    fn from(s: ChainStatus) -> VerifyResult {
        match s {
            ChainStatus::Intact { count } => VerifyResult {
                status: "intact".into(),
                count,
                first_bad_seq: None,
                problem: None,
            },
            ChainStatus::Broken {
                seq,
                verified,
                problem,
            } => VerifyResult {
                status: "broken".into(),
                count: verified,
                first_bad_seq: Some(seq),
                problem: Some(problem),
            },
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit",
    security(("admin_token" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "Matching entries in chain order", body = AuditPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn query_handler(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let p: AuditParams = query(&uri)?;
        let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                format!("limit must be between 1 and {MAX_LIMIT}."),
                Some("limit"),
            ));
        }
        if p.after.is_some_and(|a| a < 0) {
            return Err(ApiError::invalid(
                "after must not be negative.",
                Some("after"),
            ));
        }
        let q = AuditQuery {
            from: p.from,
            to: p.to,
            tenant: p.tenant,
            cloud: p.cloud,
            action: p.action,
            after: p.after,
            limit,
        };
        // Read-your-writes: entries still queued (≤ 50 ms) are written first.
        state.governance.audit.flush().await;
        let rows = state.store.query_audit(&q).await.map_err(store_error)?;
        let next_after = (rows.len() as u32 == limit)
            .then(|| rows.last().map(|r| r.seq))
            .flatten();
        Ok(AuditPage {
            data: rows.into_iter().map(AuditItem::from).collect(),
            next_after,
        })
    }
    .await;
    let r: Result<AuditPage, ApiError> = r;
    match r {
        Ok(page) => Json(page).into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/admin/v1/audit/verify", tag = "audit",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The chain walked from its first entry", body = VerifyResult),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    // Entries still queued belong in the chain being checked (`verify` flushes).
    match state.governance.audit.verify().await {
        Ok(s) => Json(VerifyResult::from(s)).into_response(),
        Err(e) => store_error(e).into_response(),
    }
}
