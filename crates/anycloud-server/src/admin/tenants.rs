//! `/admin/v1/tenants`: list, create, get, update policy. Changes are persisted in the
//! store and live for the next request; each one is audited with before/after.
//! Tenants named in the config are re-synced from it at start (the config wins).

use super::{
    audit_change, body, check_limits, check_mcp, require_admin, respond, store_error, ErrorBody,
    List,
};
use crate::error::ApiError;
use crate::state::AppState;
use anycloud_config::TenantConfig;
use anycloud_governance::policy::{BudgetSpec, RateLimitSpec};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A tenant and its policy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub name: String,
    /// Jurisdictions its data may go to; `null` = any.
    pub jurisdictions: Option<Vec<String>>,
    /// Models it may use; `null` = all.
    pub models: Option<Vec<String>>,
    /// Clouds it may use; `null` = all.
    pub clouds: Option<Vec<String>>,
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub capture: bool,
    /// The data jurisdiction set for it (`null`: its one jurisdiction, if it has one).
    pub data_jurisdiction: Option<String>,
    /// Where its stored responses and captured payloads are kept (README "Data residency
    /// at rest"). Shown by the read endpoints; not part of the audited policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<crate::residency::ContentPlacement>,
    /// MCP tools the tenant may call; `null` = none.
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

/// The policy part of a tenant, for create and update.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    pub jurisdictions: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub clouds: Option<Vec<String>>,
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default)]
    pub capture: bool,
    /// Whose content store keeps its stored responses and captures; default: its one
    /// jurisdiction.
    pub data_jurisdiction: Option<String>,
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    pub jurisdictions: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub clouds: Option<Vec<String>>,
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default)]
    pub capture: bool,
    pub data_jurisdiction: Option<String>,
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

impl From<&TenantConfig> for Tenant {
    fn from(t: &TenantConfig) -> Tenant {
        Tenant {
            name: t.name.clone(),
            jurisdictions: t.jurisdictions.clone(),
            models: t.models.clone(),
            clouds: t.clouds.clone(),
            budget: t.budget.map(Into::into),
            rate_limit: t.rate_limit.map(Into::into),
            capture: t.capture,
            data_jurisdiction: t.data_jurisdiction.clone(),
            content: None,
            mcp: t.mcp.clone().map(Into::into),
        }
    }
}

/// The tenant with where its content lives, for the read endpoints.
fn view(state: &AppState, t: &TenantConfig) -> Tenant {
    Tenant {
        content: Some(crate::residency::placement(state.store.as_ref(), t)),
        ..Tenant::from(t)
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks names against the config; the same rules as `anycloud config check`.
fn to_config(state: &AppState, name: &str, p: TenantPolicy) -> Result<TenantConfig, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::invalid(
            "Tenant names are 1–64 characters: letters, digits, `.`, `_`, `-`.",
            Some("name"),
        ));
    }
    for m in p.models.iter().flatten() {
        if state.routes.model_index(m).is_none() {
            return Err(ApiError::invalid(
                format!("Unknown model `{m}`."),
                Some("models"),
            ));
        }
    }
    for c in p.clouds.iter().flatten() {
        if !state.config.clouds.iter().any(|cl| &cl.name == c) {
            return Err(ApiError::invalid(
                format!("Unknown cloud `{c}`."),
                Some("clouds"),
            ));
        }
    }
    check_limits(p.budget, p.rate_limit)?;
    check_mcp(state, p.mcp.as_ref())?;
    if p.capture && !state.governance.sealer.enabled() {
        return Err(ApiError::invalid(
            "Capture needs `[capture] key` in the gateway's config.",
            Some("capture"),
        ));
    }
    let t = TenantConfig {
        name: name.to_string(),
        jurisdictions: p.jurisdictions,
        models: p.models,
        clouds: p.clouds,
        budget: p.budget.map(Into::into),
        rate_limit: p.rate_limit.map(Into::into),
        capture: p.capture,
        data_jurisdiction: p.data_jurisdiction,
        mcp: p.mcp.map(Into::into),
    };
    if let Some(m) = anycloud_config::residency::placement_problem(&state.config, &t) {
        return Err(ApiError::invalid(m, Some("data_jurisdiction")));
    }
    Ok(t)
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every tenant, by name", body = List<Tenant>),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    let data = state.tenants().iter().map(|t| view(&state, t)).collect();
    Json(List { data }).into_response()
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants",
    security(("admin_token" = [])),
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 400, description = "Invalid tenant", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 409, description = "A tenant with this name exists", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    respond(
        create_inner(&state, &headers, &bytes).await,
        StatusCode::CREATED,
    )
}

async fn create_inner(
    state: &AppState,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Tenant, ApiError> {
    require_admin(state, headers)?;
    let input: NewTenant = body(bytes)?;
    let policy = TenantPolicy {
        jurisdictions: input.jurisdictions,
        models: input.models,
        clouds: input.clouds,
        budget: input.budget,
        rate_limit: input.rate_limit,
        capture: input.capture,
        data_jurisdiction: input.data_jurisdiction,
        mcp: input.mcp,
    };
    let cfg = to_config(state, &input.name, policy)?;
    if state.tenant(&cfg.name).is_some() {
        return Err(conflict(&cfg.name));
    }
    let out = Tenant::from(&cfg);
    state.put_tenant(cfg.clone()).await.map_err(store_error)?;
    audit_change(
        state,
        "admin.tenant.create",
        Some(&out.name),
        None::<&Tenant>,
        &out,
    );
    Ok(view(state, &cfg))
}

fn conflict(name: &str) -> ApiError {
    ApiError::Conflict {
        message: format!("Tenant `{name}` already exists; use PUT /admin/v1/tenants/{name} to change its policy."),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("No tenant named `{name}`."),
        param: Some("name".into()),
        code: "tenant_not_found",
    }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{name}", tag = "tenants",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    match state.tenant(&name) {
        Some(t) => Json(view(&state, &t)).into_response(),
        None => not_found(&name).into_response(),
    }
}

#[utoipa::path(put, path = "/admin/v1/tenants/{name}", tag = "tenants",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "Tenant name")),
    request_body = TenantPolicy,
    responses(
        (status = 200, description = "The tenant with its new policy", body = Tenant),
        (status = 400, description = "Invalid policy", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    respond(
        update_inner(&state, &headers, &name, &bytes).await,
        StatusCode::OK,
    )
}

async fn update_inner(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    bytes: &[u8],
) -> Result<Tenant, ApiError> {
    require_admin(state, headers)?;
    let Some(before) = state.tenant(name) else {
        return Err(not_found(name));
    };
    let policy: TenantPolicy = body(bytes)?;
    let cfg = to_config(state, name, policy)?;
    let out = Tenant::from(&cfg);
    state.put_tenant(cfg.clone()).await.map_err(store_error)?;
    let before = Tenant::from(before.as_ref());
    audit_change(
        state,
        "admin.tenant.update",
        Some(name),
        Some(&before),
        &out,
    );
    Ok(view(state, &cfg))
}
