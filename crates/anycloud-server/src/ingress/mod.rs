//! Client-facing APIs. Each API module is a wire translation only (an
//! [`pipeline::Api`]): its wire format to the canonical model and back. The request
//! path they share is [`pipeline`], streams go through [`relay`], and the routing
//! steps (plan, stamp) live here.

pub mod chat;
pub mod embeddings;
pub mod invalid;
pub mod messages;
pub mod models;
pub mod pipeline;
pub mod relay;
pub mod responses;
pub mod resume;

use crate::error::ApiError;
use crate::metrics::DeclineLabels;
use crate::state::AppState;
use anycloud_governance::Admission;
use anycloud_router::{route_preferring, Decision, Outcome, RouteError, RouteInput, RoutePlan};
use anycloud_types::Capability;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};

/// Unknown paths get an OpenAI-shaped 404 rather than an empty body.
pub async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::NotFound {
        message: format!("Unknown request URL: {method} {}.", uri.path()),
        param: None,
        code: "unknown_url",
    }
    .into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Routes a request for `principal`'s tenant with live cloud state (drain,
/// breakers, latency EWMA, spend) and counts every decline in
/// `anycloud_route_declines`.
pub fn plan(
    state: &AppState,
    tenant: &anycloud_config::TenantConfig,
    model: &str,
    needs: &[Capability],
    estimated_tokens: u64,
    affinity: Option<anycloud_router::CacheAffinity<'_>>,
) -> Result<RoutePlan, ApiError> {
    let input = RouteInput {
        model,
        tenant,
        needs,
        date: chrono::Utc::now().date_naive(),
        estimated_tokens,
        seed: rand::random(),
        spend: &*state.clouds,
    };
    let result = route_preferring(&state.routes, &input, &*state.clouds, affinity);
    let declined: &[Decision] = match &result {
        Ok(p) => &p.declined,
        Err(RouteError::NoCandidate { declined, .. }) => declined,
        Err(_) => &[],
    };
    for d in declined {
        if let Outcome::Declined(r) = d.outcome {
            state
                .metrics
                .declines
                .get_or_create(&DeclineLabels {
                    cloud: d.cloud.clone(),
                    reason: r.as_label(),
                })
                .inc();
        }
    }
    result.map_err(|e| route_error(e, &tenant.name))
}

fn route_error(e: RouteError, tenant: &str) -> ApiError {
    match e {
        RouteError::UnknownModel { model, suggestions } => {
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!(
                    " Did you mean {}?",
                    suggestions
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            };
            ApiError::NotFound {
                message: format!(
                    "The model `{model}` does not exist or you do not have access to it.{hint}"
                ),
                param: Some("model".into()),
                code: "model_not_found",
            }
        }
        RouteError::ModelNotAllowed { model, tenant } => ApiError::Forbidden {
            message: format!(
                "Tenant `{tenant}` is not allowed to use model `{model}` (model not allowed)."
            ),
            code: "model_not_allowed",
            route: vec![],
        },
        RouteError::NoCandidate {
            declined,
            forbidden,
        } => {
            let why = declined
                .iter()
                .map(|d| match &d.outcome {
                    Outcome::Declined(r) => format!("{} excluded by {r}", d.cloud),
                    other => format!("{} {other:?}", d.cloud),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let capability_only = !declined.is_empty()
                && declined
                    .iter()
                    .all(|d| matches!(d.outcome, Outcome::Declined(r) if r.is_capability()));
            if capability_only {
                // No deployment of this model can do what the request asks
                // (embeddings from a chat model, vision on a text model): the
                // client's error, not an outage to retry.
                return ApiError::Unservable {
                    message: format!("This model cannot serve this request: {why}."),
                    route: declined,
                };
            }
            if forbidden {
                ApiError::Forbidden {
                    message: format!("Policy forbids every cloud for tenant `{tenant}`: {why}."),
                    code: "policy_forbidden",
                    route: declined,
                }
            } else {
                ApiError::NoCloud {
                    status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("No cloud can serve this request now: {why}."),
                    route: declined,
                    retry_after: None,
                }
            }
        }
    }
}

/// Sets `x-anycloud-cloud`, `x-anycloud-route` and the `x-ratelimit-*` headers of the
/// limits admission applied on a served response.
pub fn stamp(resp: &mut Response, cloud: &str, decisions: &[Decision], admission: &Admission) {
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(cloud) {
        headers.insert("x-anycloud-cloud", v);
    }
    let route = anycloud_router::reason::header_value(decisions);
    // The formatted String becomes the header's bytes without a copy.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(route)) {
        headers.insert("x-anycloud-route", v);
    }
    for (h, v) in crate::error::ratelimit_headers(admission) {
        headers.insert(h, v);
    }
}

/// The W3C trace context to pass upstream, if the client sent one.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_string)
}
