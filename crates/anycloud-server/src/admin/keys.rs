//! `/admin/v1/keys`: create (the key is returned once, never again), list, get, set a
//! key's own budget and rate limits, revoke. Revocation drops this instance's cached
//! entry at once and, with Redis, is published so every other instance drops its own
//! within milliseconds; without Redis (or while it is unreachable) they refuse the key
//! within two seconds (their one-second key cache). Every change is audited with the
//! key's id — never the key.

use super::{
    audit_change, body, check_limits, check_mcp, query, require_admin, respond, store_error,
    ErrorBody, List,
};
use crate::cluster::events::Event;
use crate::error::ApiError;
use crate::state::AppState;
use anycloud_governance::policy::{BudgetSpec, KeyPolicy, RateLimitSpec};
use anycloud_store::{keys as keygen, KeyRecord, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Key {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    /// `sk-ac-<id>`, safe to display.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    /// The key's MCP policy (narrows its tenant's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

/// A new key: shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The key. It is not stored and cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub record: Key,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub tenant: String,
    pub name: Option<String>,
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only this tenant's keys.
    pub tenant: Option<String>,
}

fn key_of(r: &KeyRecord, p: &KeyPolicy) -> Key {
    Key {
        id: r.id.clone(),
        tenant: r.tenant.clone(),
        name: r.name.clone(),
        prefix: r.key_prefix.clone(),
        created_at: r.created_at,
        revoked_at: r.revoked_at,
        budget: p.budget,
        rate_limit: p.rate_limit,
        mcp: p.mcp.clone(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("No key with id `{id}`."),
        param: Some("id".into()),
        code: "key_not_found",
    }
}

fn check_policy(state: &AppState, p: &KeyPolicy) -> Result<(), ApiError> {
    check_mcp(state, p.mcp.as_ref())?;
    check_limits(p.budget, p.rate_limit)
}

async fn record(state: &AppState, id: &str) -> Result<KeyRecord, ApiError> {
    if !keygen::is_valid_id(id) {
        return Err(not_found(id));
    }
    state
        .store
        .key_by_id(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(id))
}

#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    security(("admin_token" = [])),
    params(KeyFilter),
    responses(
        (status = 200, description = "Keys by creation time, revoked included", body = List<Key>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let f: KeyFilter = query(&uri)?;
        let records = state
            .store
            .list_keys(f.tenant.as_deref())
            .await
            .map_err(store_error)?;
        let mut data = Vec::with_capacity(records.len());
        for r in &records {
            let p = state.governance.key_policy(&r.id).await?;
            data.push(key_of(r, &p));
        }
        Ok(List { data })
    }
    .await;
    respond(r, StatusCode::OK)
}

#[utoipa::path(post, path = "/admin/v1/keys", tag = "keys",
    security(("admin_token" = [])),
    request_body = NewKey,
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedKey),
        (status = 400, description = "Invalid request or unknown tenant", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let input: NewKey = body(&bytes)?;
        let policy = KeyPolicy {
            budget: input.budget,
            rate_limit: input.rate_limit,
            mcp: input.mcp,
        };
        check_policy(&state, &policy)?;
        if state.tenant(&input.tenant).is_none() {
            return Err(ApiError::invalid(
                format!("Unknown tenant `{}`.", input.tenant),
                Some("tenant"),
            ));
        }
        let (rec, secret) =
            anycloud_store::create_key(state.store.as_ref(), &input.tenant, input.name.as_deref())
                .await
                .map_err(|e| match e {
                    StoreError::UnknownTenant { tenant } => {
                        ApiError::invalid(format!("Unknown tenant `{tenant}`."), Some("tenant"))
                    }
                    other => store_error(other),
                })?;
        if policy != KeyPolicy::default() {
            let v = serde_json::to_value(&policy).unwrap_or_default();
            state
                .store
                .set_key_policy(&rec.id, &v)
                .await
                .map_err(store_error)?;
        }
        let key = key_of(&rec, &policy);
        audit_change(
            &state,
            "admin.key.create",
            Some(&rec.tenant),
            None::<&Key>,
            &key,
        );
        Ok(CreatedKey {
            key: secret.expose_secret().to_string(),
            record: key,
        })
    }
    .await;
    respond(r, StatusCode::CREATED)
}

#[utoipa::path(get, path = "/admin/v1/keys/{id}", tag = "keys",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Key id (12 characters)")),
    responses(
        (status = 200, description = "The key (never the key itself)", body = Key),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let rec = record(&state, &id).await?;
        let p = state.governance.key_policy(&rec.id).await?;
        Ok(key_of(&rec, &p))
    }
    .await;
    respond(r, StatusCode::OK)
}

#[utoipa::path(put, path = "/admin/v1/keys/{id}/policy", tag = "keys",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Key id (12 characters)")),
    request_body = KeyPolicy,
    responses(
        (status = 200, description = "The key with its new policy", body = Key),
        (status = 400, description = "Invalid policy", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn set_policy(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let rec = record(&state, &id).await?;
        let policy: KeyPolicy = body(&bytes)?;
        check_policy(&state, &policy)?;
        let before = state.governance.key_policy(&rec.id).await?;
        let v = serde_json::to_value(&policy).unwrap_or_default();
        state
            .store
            .set_key_policy(&rec.id, &v)
            .await
            .map_err(store_error)?;
        state.governance.forget_key_policy(&rec.id);
        if let Some(b) = &state.broadcast {
            b.publish(&Event::KeyPolicy {
                key_id: rec.id.clone(),
            })
            .await;
        }
        let key = key_of(&rec, &policy);
        let before = key_of(&rec, &before);
        audit_change(
            &state,
            "admin.key.policy",
            Some(&rec.tenant),
            Some(&before),
            &key,
        );
        Ok(key)
    }
    .await;
    respond(r, StatusCode::OK)
}

#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "keys",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "Key id (12 characters)")),
    responses(
        (status = 200, description = "Revoked (idempotent: keeps the first revocation time)", body = Key),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        require_admin(&state, &headers)?;
        let before = record(&state, &id).await?;
        let rec = state
            .store
            .revoke_key(&before.id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(&id))?;
        state.directory.forget_key(&rec.id);
        if let Some(b) = &state.broadcast {
            b.publish(&Event::Revoke {
                key_id: rec.id.clone(),
            })
            .await;
        }
        let p = state.governance.key_policy(&rec.id).await?;
        let key = key_of(&rec, &p);
        let before = key_of(&before, &p);
        audit_change(
            &state,
            "admin.key.revoke",
            Some(&rec.tenant),
            Some(&before),
            &key,
        );
        Ok(key)
    }
    .await;
    respond(r, StatusCode::OK)
}
