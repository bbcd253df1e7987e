//! The admin API's OpenAPI 3.1 document, generated from the handlers' annotations with
//! `utoipa` and served without auth at `/admin/v1/openapi.json`.

use super::{audit, captures, keys, tenants, ErrorBody, ErrorObject};
use crate::governance::{BudgetSpec, KeyPolicy, PeriodSpec, RateLimitSpec};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "anycloud admin API",
        description = "Tenants, keys, audit and captures. Every route requires the admin token \
                       (`Authorization: Bearer <server.admin_token>`) except this document."
    ),
    paths(
        tenants::list, tenants::create, tenants::get_one, tenants::update,
        keys::list, keys::create, keys::get_one, keys::set_policy, keys::revoke,
        audit::query_handler, audit::verify,
        captures::get_one,
    ),
    components(schemas(
        ErrorBody, ErrorObject, BudgetSpec, PeriodSpec, RateLimitSpec, KeyPolicy,
        tenants::Tenant, tenants::NewTenant, tenants::TenantPolicy,
        keys::Key, keys::CreatedKey, keys::NewKey,
        audit::AuditItem, audit::AuditPage, audit::VerifyResult,
        captures::Capture,
    )),
    modifiers(&AdminToken),
    tags(
        (name = "tenants", description = "Tenants and their policies"),
        (name = "keys", description = "Virtual API keys"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "captures", description = "Encrypted request/response captures"),
    )
)]
pub struct AdminApi;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = api.components.as_mut() {
            c.add_security_scheme(
                "admin_token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The document as JSON.
pub fn json() -> serde_json::Value {
    serde_json::to_value(AdminApi::openapi()).unwrap_or_default()
}

pub async fn document() -> Response {
    axum::Json(json()).into_response()
}
