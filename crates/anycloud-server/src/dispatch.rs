//! Tries a route plan's candidates until one serves the request
//! (README "Routing").
//!
//! - A connect error, a timeout before the first byte, or a retryable status
//!   (408/429/5xx/529, and 401/403/404 which mean that cloud is
//!   misconfigured) moves on to the next candidate at once; a 400-class
//!   rejection is the client's error and is returned as is.
//! - Every retryable failure is reported to the cloud's breaker
//!   (`cloud_state`); a 429/503 with `retry-after` opens it for that long.
//!   Right before each attempt the breaker and drain flag are checked again
//!   (`CloudStates::admit`), since the plan may be a few ms old.
//! - The retry budget: at most `routing.retry.max_attempts` attempts per
//!   request, and with `budget_ratio` every attempt after the first spends
//!   a token from a gateway-wide bucket. The overall deadline
//!   (`server.request_timeout_ms`) bounds every attempt.
//! - Backoff (exponential, full jitter) only before retrying the *same*
//!   cloud, which happens only when no other candidate is left: failover to
//!   a healthy cloud is never delayed.
//! - Hedging ([`failover_hedged`], non-streaming only): after
//!   `routing.hedge_after_ms` without an answer the next candidate starts in
//!   parallel; the first success wins and the other attempt is dropped
//!   (cancelled), recorded as `failed(hedge_lost)`.
//!
//! For streams, "served" means the first upstream event arrived: until then
//! nothing has gone to the client, so a failure can still fail over
//! invisibly.

use crate::error::ApiError;
use crate::metrics::AttemptLabels;
use crate::outcome::{AttemptRecord, Tracker};
use crate::state::AppState;
use anycloud_providers::{EventStream, Provider, ProviderError, ProviderErrorKind};
use anycloud_router::{Decision, Deployment, Outcome, Reason, RoutePlan};
use anycloud_types::StreamEvent;
use axum::http::StatusCode;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::Rng;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
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

/// Runs `attempt` on each candidate in turn (no hedging: streams and any
/// request whose side effects must not be doubled).
pub async fn failover<T, F, Fut>(
    state: &AppState,
    plan: &RoutePlan,
    model: &str,
    deadline: Instant,
    tracker: &Tracker,
    attempt: F,
) -> Result<Served<T>, ApiError>
where
    F: FnMut(Arc<dyn Provider>, Deployment) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    run(state, plan, model, deadline, None, tracker, attempt).await
}

/// Like [`failover`], hedging after `routing.hedge_after_ms` when set.
pub async fn failover_hedged<T, F, Fut>(
    state: &AppState,
    plan: &RoutePlan,
    model: &str,
    deadline: Instant,
    tracker: &Tracker,
    attempt: F,
) -> Result<Served<T>, ApiError>
where
    F: FnMut(Arc<dyn Provider>, Deployment) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let hedge = state
        .config
        .routing
        .hedge_after_ms
        .map(Duration::from_millis);
    run(state, plan, model, deadline, hedge, tracker, attempt).await
}

/// One attempt in flight: which deployment, when it started, its result,
/// and its trace span (the attempt runs inside it, so the provider sends that
/// span's context upstream).
async fn timed<T, Fut>(
    i: usize,
    deadline: Instant,
    span: tracing::Span,
    fut: Fut,
) -> (usize, Duration, Result<T, ProviderError>, tracing::Span)
where
    Fut: Future<Output = Result<T, ProviderError>>,
{
    use tracing::Instrument;
    let start = Instant::now();
    let r = match tokio::time::timeout_at(deadline, fut.instrument(span.clone())).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::new(
            ProviderErrorKind::Timeout,
            "the request's overall deadline passed",
        )),
    };
    (i, start.elapsed(), r, span)
}

/// The attempts in flight, by deployment index. Dropping it releases their clouds'
/// half-open probe slots, however the attempt loop ends: returned, failed, or dropped
/// mid-flight because the client went away (a probe that never reports back would
/// otherwise keep its cloud's breaker from ever closing).
struct Flying<'a> {
    state: &'a AppState,
    deployments: &'a [Deployment],
    attempts: Vec<usize>,
}

impl Drop for Flying<'_> {
    fn drop(&mut self) {
        for &i in &self.attempts {
            if let Some(d) = self.deployments.get(i) {
                self.state.clouds.release_probe(&d.cloud);
            }
        }
    }
}

/// The attempt loop's bookkeeping.
struct Attempts<'a> {
    state: &'a AppState,
    deployments: &'a [Deployment],
    queue: VecDeque<usize>,
    made: u32,
    max: u32,
    decisions: Vec<Decision>,
    failures: Vec<(String, ProviderError)>,
}

impl Attempts<'_> {
    /// May one more attempt start (count and token budget)?
    fn budget_allows(&mut self) -> bool {
        if self.made >= self.max {
            return false;
        }
        if self.made > 0 && self.state.config.routing.retry.budget_ratio.is_some() {
            return self.state.clouds.take_retry_token();
        }
        true
    }

    /// The next queued candidate its breaker admits; the others are
    /// recorded as declined.
    fn next_candidate(&mut self) -> Option<usize> {
        while let Some(i) = self.queue.pop_front() {
            let Some(d) = self.deployments.get(i) else {
                continue;
            };
            if self.state.clouds.admit(&d.cloud) {
                return Some(i);
            }
            let reason = if anycloud_router::CloudState::is_drained(&*self.state.clouds, &d.cloud) {
                Reason::Drained
            } else {
                Reason::BreakerOpen
            };
            self.decisions.push(Decision {
                cloud: d.cloud.clone(),
                outcome: Outcome::Declined(reason),
            });
        }
        None
    }
}

async fn run<T, F, Fut>(
    state: &AppState,
    plan: &RoutePlan,
    model: &str,
    deadline: Instant,
    hedge: Option<Duration>,
    tracker: &Tracker,
    mut attempt: F,
) -> Result<Served<T>, ApiError>
where
    F: FnMut(Arc<dyn Provider>, Deployment) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let retry = state.config.routing.retry;
    if let Some(ratio) = retry.budget_ratio {
        state.clouds.deposit_retry_tokens(ratio);
    }
    let mut a = Attempts {
        state,
        deployments: state.routes.deployments(plan.model_index),
        queue: plan.candidates.iter().copied().collect(),
        made: 0,
        max: retry.max_attempts.max(1),
        decisions: plan.declined.clone(),
        failures: Vec::new(),
    };
    // The candidate cache affinity put ahead: when it serves, the route says so.
    let affine = plan
        .candidates
        .iter()
        .zip(&plan.notes)
        .find(|(_, n)| n.as_str() == anycloud_router::order::CACHE_AFFINITY)
        .map(|(i, _)| *i);
    let mut in_flight = FuturesUnordered::new();
    let mut flying = Flying {
        state,
        deployments: a.deployments,
        attempts: Vec::new(),
    };
    let hedge_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(hedge_timer);
    let mut hedge_armed = false;
    // The last cloud that failed retryably, and how often it was retried.
    let mut last_failed: Option<usize> = None;
    let mut same_retries: u32 = 0;

    let mut launch = |i: usize,
                      flying: &mut Flying<'_>,
                      in_flight: &mut FuturesUnordered<_>,
                      a: &mut Attempts<'_>|
     -> bool {
        let Some(d) = a.deployments.get(i) else {
            return false;
        };
        let Some(provider) = state.providers.get(&d.cloud) else {
            return false;
        };
        a.made += 1;
        flying.attempts.push(i);
        let span = state
            .tracing
            .attempt_span(tracker.api(), &d.cloud, &d.target);
        in_flight.push(timed(
            i,
            deadline,
            span,
            attempt(provider.clone(), d.clone()),
        ));
        true
    };

    loop {
        if in_flight.is_empty() {
            let mut launched = false;
            if a.budget_allows() {
                if let Some(i) = a.next_candidate() {
                    launched = launch(i, &mut flying, &mut in_flight, &mut a);
                } else if let Some(i) = last_failed.take() {
                    // No other candidate: retry the same cloud after backoff.
                    let cloud = a.deployments.get(i).map(|d| d.cloud.clone());
                    let wait = backoff(retry.backoff_base_ms, retry.backoff_max_ms, same_retries);
                    if Instant::now() + wait < deadline {
                        tokio::time::sleep(wait).await;
                        if cloud.is_some_and(|c| state.clouds.admit(&c)) {
                            same_retries += 1;
                            launched = launch(i, &mut flying, &mut in_flight, &mut a);
                        }
                    }
                }
            }
            if !launched {
                break;
            }
            if let Some(h) = hedge {
                hedge_timer
                    .as_mut()
                    .reset((Instant::now() + h).min(deadline));
                hedge_armed = true;
            }
        }
        tokio::select! {
            Some((i, elapsed, result, span)) = in_flight.next() => {
                flying.attempts.retain(|&f| f != i);
                let Some(d) = a.deployments.get(i) else { continue };
                match result {
                    Ok(value) => {
                        state.clouds.record_success(&d.cloud, elapsed);
                        count_attempt(state, &d.cloud, "ok");
                        state.tracing.attempt_result(&span, Some(200), "ok");
                        tracker.attempt(attempt_record(d, "ok", Some(200), elapsed, true));
                        // The losers' probe slots are released when `flying` drops.
                        for &loser in &flying.attempts {
                            if let Some(l) = a.deployments.get(loser) {
                                count_attempt(state, &l.cloud, "hedge_lost");
                                // It reached the cloud and may be billed;
                                // its usage is unknown.
                                tracker.attempt(attempt_record(l, "hedge_lost", None, elapsed, true));
                                a.decisions.push(Decision {
                                    cloud: l.cloud.clone(),
                                    outcome: Outcome::Failed("hedge_lost".into()),
                                });
                            }
                        }
                        let outcome = if affine == Some(i) { Outcome::OkAffine } else { Outcome::Ok };
                        a.decisions.push(Decision { cloud: d.cloud.clone(), outcome });
                        return Ok(Served {
                            value,
                            cloud: d.cloud.clone(),
                            deployment: d.clone(),
                            decisions: a.decisions,
                        });
                    }
                    Err(e) => {
                        let reason = e.reason_code();
                        count_attempt(state, &d.cloud, &reason);
                        state.tracing.attempt_result(&span, e.status, &reason);
                        tracker.attempt(attempt_record(
                            d,
                            &reason,
                            e.status,
                            elapsed,
                            e.kind != ProviderErrorKind::Connect,
                        ));
                        a.decisions.push(Decision {
                            cloud: d.cloud.clone(),
                            outcome: Outcome::Failed(reason),
                        });
                        if !e.is_retryable() {
                            state.clouds.release_probe(&d.cloud);
                            return Err(ApiError::Upstream { error: e, route: a.decisions, cloud: d.cloud.clone() });
                        }
                        let retry_after = e.retry_after.filter(|_| matches!(e.status, Some(429 | 503)));
                        state.clouds.record_failure(&d.cloud, retry_after);
                        tracing::warn!(cloud = %d.cloud, reason = %e.reason_code(), error = %e, "attempt failed, trying next candidate");
                        a.failures.push((d.cloud.clone(), e));
                        last_failed = Some(i);
                        if Instant::now() >= deadline {
                            break;
                        }
                        // A hedge still in flight: start the next candidate
                        // beside it rather than wait.
                        if !in_flight.is_empty() && a.budget_allows() {
                            if let Some(n) = a.next_candidate() {
                                launch(n, &mut flying, &mut in_flight, &mut a);
                            }
                        }
                    }
                }
            }
            _ = &mut hedge_timer, if hedge_armed => {
                hedge_armed = false;
                if in_flight.len() == 1 && a.budget_allows() {
                    if let Some(n) = a.next_candidate() {
                        tracing::info!(cloud = ?a.deployments.get(n).map(|d| &d.cloud), "hedging: starting the next candidate in parallel");
                        launch(n, &mut flying, &mut in_flight, &mut a);
                    }
                }
            }
        }
    }
    Err(no_cloud(model, a.failures, a.decisions))
}

/// `base · 2^n`, capped, with full jitter (uniform in `[0, that)`), so
/// retries from many requests do not arrive in lockstep.
fn backoff(base_ms: u64, max_ms: u64, n: u32) -> Duration {
    let ceiling = base_ms.saturating_mul(1u64 << n.min(20)).min(max_ms).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(0..ceiling))
}

fn attempt_record(
    d: &Deployment,
    outcome: &str,
    upstream_status: Option<u16>,
    elapsed: Duration,
    reached_cloud: bool,
) -> AttemptRecord {
    let now = chrono::Utc::now();
    AttemptRecord {
        at: chrono::Duration::from_std(elapsed).map_or(now, |e| now - e),
        cloud: d.cloud.clone(),
        deployment: d.target.clone(),
        price: d.price,
        outcome: outcome.to_string(),
        upstream_status,
        latency_ms: elapsed.as_millis() as u64,
        ttft_ms: None,
        usage: None,
        reported_usage: None,
        context_window: d.context_window,
        usage_estimated: false,
        reached_cloud,
    }
}

fn count_attempt(state: &AppState, cloud: &str, outcome: &str) {
    state
        .metrics
        .attempts
        .get_or_create(&AttemptLabels {
            cloud: state.metrics.labels.cloud(Some(cloud)),
            outcome: outcome.to_string(),
        })
        .inc();
}

fn no_cloud(model: &str, failures: Vec<(String, ProviderError)>, route: Vec<Decision>) -> ApiError {
    let all_timeouts = !failures.is_empty()
        && failures
            .iter()
            .all(|(_, e)| e.kind == ProviderErrorKind::Timeout);
    let all_rate_limited =
        !failures.is_empty() && failures.iter().all(|(_, e)| e.status == Some(429));
    let status = if all_timeouts {
        StatusCode::GATEWAY_TIMEOUT
    } else if all_rate_limited {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // The soonest any rate-limited cloud said it would take requests again, rounded up.
    let retry_after = failures
        .iter()
        .filter_map(|(_, e)| e.retry_after)
        .min()
        .filter(|_| all_rate_limited)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    let mut message = format!("No cloud could serve model `{model}`.");
    for (cloud, e) in &failures {
        message.push_str(&format!(" {cloud}: {} ({});", e.reason_code(), e.message));
    }
    for d in &route {
        if let Outcome::Declined(r) = d.outcome {
            message.push_str(&format!(" {}: {r};", d.cloud));
        }
    }
    if failures.is_empty() {
        message.push_str(" No candidate was available.");
    }
    ApiError::NoCloud {
        status,
        message: message.trim_end_matches(';').to_string(),
        route,
        retry_after,
    }
}

/// The chat request as deployment `d` is sent it: with the deployment's automatic cache
/// breakpoints (README "Prompt caching"). Every chat attempt — JSON, stream, resumed
/// stream, Responses replay — reaches a cloud through [`call_chat`] or [`open_stream`],
/// which both go through here.
fn as_sent<'a>(
    req: &'a anycloud_types::ChatRequest,
    d: &Deployment,
) -> std::borrow::Cow<'a, anycloud_types::ChatRequest> {
    anycloud_providers::auto_cache::for_deployment(req, d.prompt_cache, d.provider, &d.target)
}

/// One non-streaming chat attempt on deployment `d`.
pub async fn call_chat(
    provider: Arc<dyn Provider>,
    d: &Deployment,
    req: &anycloud_types::ChatRequest,
    ctx: &anycloud_providers::CallCtx,
) -> Result<anycloud_types::ChatResponse, ProviderError> {
    provider.chat(&d.target, &as_sent(req, d), ctx).await
}

/// Opens a stream on deployment `d` and waits for its first event, so a cloud that fails
/// before sending anything is treated like any failed attempt.
pub async fn open_stream(
    provider: Arc<dyn Provider>,
    d: &Deployment,
    req: &anycloud_types::ChatRequest,
    ctx: &anycloud_providers::CallCtx,
) -> Result<(StreamEvent, EventStream), ProviderError> {
    let mut stream = provider
        .chat_stream(&d.target, &as_sent(req, d), ctx)
        .await?;
    match stream.next().await {
        Some(Ok(first)) => Ok((first, stream)),
        Some(Err(e)) => Err(e),
        None => Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "the stream ended before its first event",
        )),
    }
}
