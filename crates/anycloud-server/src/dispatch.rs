//! Tries a route plan's candidates in order until one serves the request.
//!
//! A connect error, a timeout before the first byte, or a retryable status
//! (408/429/5xx/529, and 401/403/404 which mean that cloud is misconfigured)
//! moves on to the next candidate; a 400-class rejection is the client's
//! error and is returned as is. For streams, "served" means the first
//! upstream event arrived: until then nothing has gone to the client, so a
//! failure can still fail over invisibly.

use crate::error::ApiError;
use crate::metrics::AttemptLabels;
use crate::outcome::{AttemptRecord, Tracker};
use crate::state::AppState;
use anycloud_providers::{EventStream, Provider, ProviderError, ProviderErrorKind};
use anycloud_router::{Decision, Deployment, Outcome, RoutePlan};
use anycloud_types::StreamEvent;
use axum::http::StatusCode;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

/// A successful attempt and the route that led to it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub cloud: String,
    pub deployment: Deployment,
    /// Declines and failed attempts before this one, then `cloud:ok`.
    pub decisions: Vec<Decision>,
}

/// Runs `attempt` on each candidate in turn.
pub async fn failover<T, F, Fut>(
    state: &AppState,
    plan: &RoutePlan,
    model: &str,
    deadline: Instant,
    tracker: &Tracker,
    mut attempt: F,
) -> Result<Served<T>, ApiError>
where
    F: FnMut(Arc<dyn Provider>, Deployment) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let deployments = state.routes.deployments(plan.model_index);
    let mut decisions = plan.declined.clone();
    let mut failures: Vec<(String, ProviderError)> = Vec::new();
    for &i in &plan.candidates {
        let Some(d) = deployments.get(i) else {
            continue;
        };
        let Some(provider) = state.providers.get(&d.cloud) else {
            continue;
        };
        let started = std::time::Instant::now();
        let at = chrono::Utc::now();
        let result =
            match tokio::time::timeout_at(deadline, attempt(provider.clone(), d.clone())).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    "the request's overall deadline passed",
                )),
            };
        match result {
            Ok(value) => {
                count_attempt(state, &d.cloud, "ok");
                tracker.attempt(AttemptRecord {
                    at,
                    cloud: d.cloud.clone(),
                    deployment: d.target.clone(),
                    price: d.price,
                    outcome: "ok".into(),
                    upstream_status: Some(200),
                    latency_ms: started.elapsed().as_millis() as u64,
                    ttft_ms: None,
                    usage: None,
                    usage_estimated: false,
                    reached_cloud: true,
                });
                decisions.push(Decision {
                    cloud: d.cloud.clone(),
                    outcome: Outcome::Ok,
                });
                return Ok(Served {
                    value,
                    cloud: d.cloud.clone(),
                    deployment: d.clone(),
                    decisions,
                });
            }
            Err(e) => {
                let reason = e.reason_code();
                count_attempt(state, &d.cloud, &reason);
                tracker.attempt(AttemptRecord {
                    at,
                    cloud: d.cloud.clone(),
                    deployment: d.target.clone(),
                    price: d.price,
                    outcome: reason.clone(),
                    upstream_status: e.status,
                    latency_ms: started.elapsed().as_millis() as u64,
                    ttft_ms: None,
                    usage: None,
                    usage_estimated: false,
                    reached_cloud: e.kind != ProviderErrorKind::Connect,
                });
                decisions.push(Decision {
                    cloud: d.cloud.clone(),
                    outcome: Outcome::Failed(reason),
                });
                if !e.is_retryable() {
                    return Err(ApiError::Upstream {
                        error: e,
                        route: decisions,
                        cloud: d.cloud.clone(),
                    });
                }
                tracing::warn!(cloud = %d.cloud, reason = %e.reason_code(), error = %e, "attempt failed, trying next candidate");
                failures.push((d.cloud.clone(), e));
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    Err(no_cloud(model, failures, decisions))
}

fn count_attempt(state: &AppState, cloud: &str, outcome: &str) {
    state
        .metrics
        .attempts
        .get_or_create(&AttemptLabels {
            cloud: cloud.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
}

fn no_cloud(model: &str, failures: Vec<(String, ProviderError)>, route: Vec<Decision>) -> ApiError {
    let all_timeouts = !failures.is_empty()
        && failures
            .iter()
            .all(|(_, e)| e.kind == ProviderErrorKind::Timeout);
    let status = if all_timeouts {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut message = format!("No cloud could serve model `{model}`.");
    for (cloud, e) in &failures {
        message.push_str(&format!(" {cloud}: {} ({});", e.reason_code(), e.message));
    }
    if failures.is_empty() {
        message.push_str(" No candidate was available.");
    }
    ApiError::NoCloud {
        status,
        message: message.trim_end_matches(';').to_string(),
        route,
    }
}

/// Opens a stream and waits for its first event, so a cloud that fails
/// before sending anything is treated like any failed attempt.
pub async fn open_stream(
    provider: Arc<dyn Provider>,
    target: String,
    req: Arc<anycloud_types::ChatRequest>,
    ctx: Arc<anycloud_providers::CallCtx>,
) -> Result<(StreamEvent, EventStream), ProviderError> {
    let mut stream = provider.chat_stream(&target, &req, &ctx).await?;
    match stream.next().await {
        Some(Ok(first)) => Ok((first, stream)),
        Some(Err(e)) => Err(e),
        None => Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "the stream ended before its first event",
        )),
    }
}
