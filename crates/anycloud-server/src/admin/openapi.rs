//! The admin API's OpenAPI 3.1 document, generated from the handlers' annotations with
//! `utoipa` and served without auth at `/admin/v1/openapi.json`.

use super::{
    audit, captures, clouds, explain, keys, ledger, risk, tenants, ErrorBody, ErrorObject,
};
use crate::state::AppState;
use anycloud_governance::policy::{BudgetSpec, KeyPolicy, PeriodSpec, RateLimitSpec};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "anycloud admin API",
        description = "Tenants, keys, audit, captures, clouds and their kill switch, routing explanations, \
                       the ledger report, vendor risk and MCP servers. Every route requires the admin token \
                       (`Authorization: Bearer <server.admin_token>`) except this document."
    ),
    paths(
        tenants::list, tenants::create, tenants::get_one, tenants::update,
        keys::list, keys::create, keys::get_one, keys::set_policy, keys::revoke,
        audit::query_handler, audit::verify,
        captures::get_one,
        risk::risk, risk::simulate,
        crate::mcp::admin::list, crate::mcp::admin::drain, crate::mcp::admin::restore,
        clouds::list, clouds::drain, clouds::restore,
        explain::handle,
        ledger::report,
    ),
    components(schemas(
        ErrorBody, ErrorObject, BudgetSpec, PeriodSpec, RateLimitSpec, KeyPolicy,
        tenants::Tenant, tenants::NewTenant, tenants::TenantPolicy,
        keys::Key, keys::CreatedKey, keys::NewKey,
        audit::AuditItem, audit::AuditPage, audit::VerifyResult,
        captures::Capture, crate::residency::ContentPlacement,
        risk::RiskDocument, risk::SimulationDocument,
        crate::mcp::policy::McpPolicySpec,
        crate::mcp::admin::ServerView, crate::mcp::admin::ServerList,
        clouds::CloudList, clouds::CloudView, clouds::Changed,
        crate::cloud_state::CloudSnapshot, crate::cloud_state::BreakerState,
        crate::cluster::events::Reach,
        explain::ExplanationDocument, explain::ExplainedCandidate, explain::ExplainedDecline,
        explain::ExplainedError,
        ledger::LedgerReportDocument,
    )),
    modifiers(&AdminToken),
    tags(
        (name = "tenants", description = "Tenants and their policies"),
        (name = "keys", description = "Virtual API keys"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "captures", description = "Encrypted request/response captures"),
        (name = "risk", description = "Vendor risk: concentration, outage drill, what-if replay"),
        (name = "mcp", description = "Upstream MCP servers and their kill switch"),
        (name = "clouds", description = "Configured clouds, their live state and their kill switch"),
        (name = "routing", description = "Why the router would choose what it chooses"),
        (name = "ledger", description = "The usage ledger's report"),
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

/// The document as JSON, as generated from the code.
pub fn json() -> serde_json::Value {
    let mut doc = serde_json::to_value(AdminApi::openapi()).unwrap_or_default();
    document_throttling(&mut doc);
    doc
}

/// Every admin operation may answer 429: failed admin-token attempts are throttled per
/// client address (README "Security"), and that answer comes before any handler runs, so
/// it is added to each operation here rather than repeated in every annotation.
fn document_throttling(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                responses.entry("429").or_insert_with(|| {
                    serde_json::json!({
                        "description": "Too many failed admin-token attempts from this address",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    })
                });
            }
        }
    }
}

/// The document with this gateway's names filled in: the models, clouds and tenants a
/// request may name are listed as `enum`s, so clients and fuzzers know which values
/// are valid here (others get a 400).
pub fn json_for(state: &AppState) -> serde_json::Value {
    let mut doc = json();
    let models: Vec<Value> = state
        .routes
        .model_names()
        .iter()
        .map(|m| Value::String(m.clone()))
        .collect();
    let clouds: Vec<Value> = state
        .config
        .clouds
        .iter()
        .map(|c| Value::String(c.name.clone()))
        .collect();
    let tenants: Vec<Value> = state
        .tenants()
        .iter()
        .map(|t| Value::String(t.name.clone()))
        .collect();
    let schemas = doc.pointer_mut("/components/schemas");
    if let Some(Value::Object(schemas)) = schemas {
        for name in ["NewTenant", "TenantPolicy"] {
            for (prop, values) in [("models", &models), ("clouds", &clouds)] {
                if let Some(items) = schemas
                    .get_mut(name)
                    .and_then(|s| s.pointer_mut(&format!("/properties/{prop}/items")))
                {
                    items["enum"] = Value::Array(values.clone());
                }
            }
        }
        if let Some(t) = schemas
            .get_mut("NewKey")
            .and_then(|s| s.pointer_mut("/properties/tenant"))
        {
            t["enum"] = Value::Array(tenants.clone());
        }
    }
    let set_enum = |doc: &mut Value, pointer: &str, values: &[Value]| {
        if let Some(schema) = doc.pointer_mut(pointer) {
            schema["enum"] = Value::Array(values.to_vec());
        }
    };
    for action in ["drain", "restore"] {
        set_enum(
            &mut doc,
            &format!("/paths/~1admin~1v1~1clouds~1{{name}}~1{action}/post/parameters/0/schema"),
            &clouds,
        );
    }
    set_enum(
        &mut doc,
        "/paths/~1admin~1v1~1route~1explain/get/parameters/0/schema",
        &models,
    );
    let servers: Vec<Value> = state
        .mcp
        .upstreams()
        .iter()
        .map(|u| Value::String(u.name().to_string()))
        .collect();
    set_enum(
        &mut doc,
        "/paths/~1admin~1v1~1route~1explain/get/parameters/1/schema",
        &tenants,
    );
    if !servers.is_empty() {
        for action in ["drain", "restore"] {
            let pointer = format!(
                "/paths/~1admin~1v1~1mcp~1servers~1{{name}}~1{action}/post/parameters/0/schema"
            );
            if let Some(schema) = doc.pointer_mut(&pointer) {
                schema["enum"] = Value::Array(servers.clone());
            }
        }
    }
    doc
}

pub async fn document(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json_for(&state)).into_response()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    /// Every admin route the routers serve is in the document: a route added without its
    /// annotation fails here instead of going undocumented (schemathesis only tests what
    /// the document names).
    #[test]
    fn every_admin_route_is_documented() {
        let doc = super::json();
        let paths = doc["paths"].as_object().expect("paths");
        let sources = [
            include_str!("mod.rs"),
            include_str!("../app.rs"),
            include_str!("../mcp/admin.rs"),
        ];
        let mut routes = Vec::new();
        for src in sources {
            for (at, _) in src.match_indices("\"/admin/v1/") {
                let rest = &src[at + 1..];
                let route = &rest[..rest.find('"').unwrap_or(rest.len())];
                if route != "/admin/v1/openapi.json" && !routes.iter().any(|r| r == route) {
                    routes.push(route.to_string());
                }
            }
        }
        assert!(routes.len() >= 19, "found only {routes:?}");
        let missing: Vec<&String> = routes.iter().filter(|r| !paths.contains_key(*r)).collect();
        assert!(missing.is_empty(), "undocumented admin routes: {missing:?}");
    }
}
