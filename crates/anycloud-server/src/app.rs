//! The axum application.
//!
//! The request path, in order (each step names the module that owns it; steps 2–8
//! run once for every model API in `ingress::pipeline`, numbered in full in
//! ARCHITECTURE.md "The request path"):
//!
//! 1. `request_id`  — a fresh `x-request-id` and the request's trace span
//!    (`telemetry`, child of a client `traceparent`) inside a
//!    `request_scope`; on the way out it stamps `x-anycloud-cloud` /
//!    `x-anycloud-route` defaults, counts errors by kind, and for requests
//!    no tracker took over records metrics and the access-log line.
//! 2. `auth`        — bearer key (or `x-api-key` on `/v1/messages`) →
//!    `Principal` (tenant + key id), cached for one second so a revocation
//!    bites within two (at once with Redis: `cluster::events`).
//! 3. `body`        — the body read up to `server.max_body_bytes` (413) and
//!    parsed as JSON into the ingress API's wire type (400).
//! 4. `ingress::*`  — wire request → canonical `ChatRequest` (400 on bad
//!    fields): nothing has touched a cloud yet.
//! 5. `anycloud_router::route` — pure: candidates and reasons (404, 403).
//! 6. `dispatch`    — try candidates in order (each attempt in its own
//!    child span, whose context goes upstream as `traceparent`), failing over on connect
//!    errors, timeouts and retryable statuses; a stream is committed to the
//!    client only after its first upstream event.
//! 7. `ingress::*`  — canonical response → the client's format: `Api::encode` for
//!    JSON, the one SSE relay (`ingress::relay`) for streams.
//! 8. `outcome`     — every attempt and the final status, once per request
//!    (at stream end or client drop for streams), handed to the sinks
//!    (ledger, audit, budgets, `metrics`, `access_log`, the request span)
//!    which write off the request path.
//!
//! Admin and health routes skip steps 2–7; `admin` checks the admin token
//! itself (`admin_auth::token_matches`, constant time, never an empty token), and
//! `admin_auth::layer` (inside step 1) answers 429 to an address after ten failed
//! admin-token attempts in a minute. The dashboard under `/ui` (`ui`) logs in
//! with the admin token and then uses a session cookie; its traffic charts
//! come from an outcome sink registered in step 8.
//!
//! `/mcp` (`mcp`) takes steps 1 and 2 (the same keys), then rmcp's Streamable HTTP
//! service: per `tools/call`, `mcp::policy` (tenant, key, jurisdiction, drain) →
//! calls-per-minute limit → the upstream server (`mcp::upstream`) → `mcp::record`
//! (audit chain, metrics, access log, span, capture). `/admin/v1/mcp/servers` is its
//! kill switch.

use crate::state::AppState;
use crate::{admin, health, ingress, request_id};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(ingress::pipeline::handle::<ingress::chat::Chat>),
        )
        .route(
            "/v1/embeddings",
            post(ingress::pipeline::handle::<ingress::embeddings::Embeddings>),
        )
        .route(
            "/v1/responses",
            post(ingress::pipeline::handle::<ingress::responses::create::Responses>),
        )
        .route(
            "/v1/responses/{id}",
            get(ingress::responses::retrieve).delete(ingress::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(ingress::responses::input_items),
        )
        .route(
            "/v1/messages",
            post(ingress::pipeline::handle::<ingress::messages::Messages>),
        )
        .route("/v1/models", get(ingress::models::list))
        .route("/v1/models/{*id}", get(ingress::models::retrieve))
        .route("/admin/v1/clouds", get(admin::clouds::list))
        .route("/admin/v1/clouds/{name}/drain", post(admin::clouds::drain))
        .route(
            "/admin/v1/clouds/{name}/restore",
            post(admin::clouds::restore),
        )
        .route("/admin/v1/route/explain", get(admin::explain::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/admin/v1/ledger/report", get(admin::ledger::report))
        .merge(crate::admin::routes())
        .merge(crate::mcp::admin::routes())
        .merge(crate::mcp::routes(state.clone()))
        .merge(crate::ui::routes())
        .fallback(ingress::not_found)
        .method_not_allowed_fallback(ingress::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::admin_auth::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_id::layer,
        ))
        .with_state(state)
}
