//! `GET /admin/v1/route/explain?model=&tenant=&needs=&at=&tokens=`: the
//! routing engine's answer for these inputs with this instance's live state
//! (drains, breakers, latency, spend), as JSON. Same `route()` and table as
//! live traffic, through `anycloud_router::explain`.

use super::require_admin;
use crate::error::ApiError;
use crate::state::AppState;
use anycloud_router::explain::explain;
use anycloud_router::RouteInput;
use anycloud_types::Capability;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    pub model: Option<String>,
    pub tenant: Option<String>,
    pub needs: Option<String>,
    pub at: Option<String>,
    pub tokens: Option<u64>,
    pub seed: Option<u64>,
}

/// Parses `tools,vision,…` into the capabilities a chat request would
/// need: `chat` is implied unless `embeddings` is asked for.
pub fn parse_needs(s: Option<&str>) -> Result<Vec<Capability>, String> {
    let mut out = Vec::new();
    for part in s
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let c = Capability::parse(part).ok_or_else(|| {
            format!(
                "unknown capability `{part}` (expected one of chat, stream, tools, vision, json_schema, embeddings)"
            )
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if !out.contains(&Capability::Embeddings) && !out.contains(&Capability::Chat) {
        out.insert(0, Capability::Chat);
    }
    Ok(out)
}

/// The routing engine's explanation (`anycloud_router::explain::Explanation`, serialised
/// there; this type only documents it).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a document serialised by anycloud-router
pub struct ExplanationDocument {
    model: String,
    tenant: String,
    /// The date routed for (`at`, or today), `YYYY-MM-DD`.
    date: String,
    /// The capabilities asked for (`chat` implied).
    needs: Vec<String>,
    /// The model's routing strategy.
    strategy: String,
    /// The clouds that would be tried, in order, each with why it is there.
    candidates: Vec<ExplainedCandidate>,
    /// The clouds left out, each with its reason code.
    declined: Vec<ExplainedDecline>,
    /// What `x-anycloud-route` would say.
    route_header: String,
    /// Set when the request would be refused: the status, code and message it would get.
    error: Option<ExplainedError>,
}

#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExplainedCandidate {
    rank: usize,
    cloud: String,
    target: String,
    why: String,
}

#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExplainedDecline {
    cloud: String,
    reason: String,
}

#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExplainedError {
    status: u16,
    code: String,
    message: String,
}

#[utoipa::path(get, path = "/admin/v1/route/explain", tag = "routing",
    security(("admin_token" = [])),
    params(
        ("model" = String, Query, description = "The model a request would name"),
        ("tenant" = String, Query, description = "The tenant it would come from"),
        ("needs" = Option<String>, Query, description = "Capabilities, comma-separated: chat, stream, tools, vision, json_schema, embeddings"),
        ("at" = Option<String>, Query, format = Date, description = "Route as on this date (agreement windows); today by default"),
        ("tokens" = Option<u64>, Query, description = "Estimated tokens (commitment and budget rules)"),
        ("seed" = Option<u64>, Query, description = "Seed for weighted strategies"),
    ),
    responses(
        (status = 200, description = "The plan (or the refusal) with every reason", body = ExplanationDocument),
        (status = 400, description = "A missing or malformed parameter", body = super::ErrorBody),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
        (status = 404, description = "No tenant of that name is configured", body = super::ErrorBody),
    ))]
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    match run(&state, query) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn run(
    state: &AppState,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<serde_json::Value, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text(), None))?;
    let model = q
        .model
        .ok_or_else(|| ApiError::invalid("`model` is required.", Some("model")))?;
    let tenant_name = q
        .tenant
        .ok_or_else(|| ApiError::invalid("`tenant` is required.", Some("tenant")))?;
    let tenant = state
        .tenant(&tenant_name)
        .ok_or_else(|| ApiError::NotFound {
            message: format!("No tenant named `{tenant_name}` is configured."),
            param: Some("tenant".into()),
            code: "tenant_not_found",
        })?;
    let needs = parse_needs(q.needs.as_deref()).map_err(|m| ApiError::invalid(m, Some("needs")))?;
    let date = match q.at.as_deref() {
        None => chrono::Utc::now().date_naive(),
        Some(s) => s.parse().map_err(|_| {
            ApiError::invalid(
                format!("`at` must be a date like 2031-01-01, not `{s}`."),
                Some("at"),
            )
        })?,
    };
    let input = RouteInput {
        model: &model,
        tenant: &tenant,
        needs: &needs,
        date,
        estimated_tokens: q.tokens.unwrap_or(0),
        seed: q.seed.unwrap_or(0),
        spend: &*state.clouds,
    };
    Ok(explain(&state.routes, &input, &*state.clouds).to_json())
}
