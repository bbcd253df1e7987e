//! Governance on the request path: rate limits and budgets at admission, the audit
//! trail and payload capture after it. [`Governance`] is built once in `AppState`.
//!
//! Admission ([`admit`]), after authentication and routing and before any cloud is
//! called:
//! 1. rate limits (`ratelimit`): requests and tokens per minute for the tenant and the
//!    key → 429 `rate_limit_exceeded`;
//! 2. budgets (`budget`): the request's worst-case cost — prompt estimate plus
//!    `max_tokens` (or `server.default_max_output_tokens`) at the most expensive candidate
//!    deployment's price — reserved against the tenant's and the key's budget → 429
//!    `budget_exceeded`. The [`BudgetSettler`] sink settles it to the real cost.
//!
//! Key policies (budget and limits set on a key through the admin API) are read from the
//! store and cached for one second, like keys themselves.

pub mod audit;
pub mod capture;

// Budgets and rate limits live in the `anycloud-governance` crate (no HTTP, no AppState).
pub use anycloud_governance::{budget, limits, ratelimit, redis_budget, redis_ratelimit};

use crate::auth::Principal;
use crate::cluster::link::RedisLink;
use crate::error::ApiError;
use crate::outcome::{OutcomeSink, RequestOutcome};
use crate::state::AppState;
use anycloud_config::{Budget, RateLimit};
use anycloud_router::RoutePlan;
use anycloud_store::Store;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use ratelimit::{format_reset, LimitState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A key's own policy, set through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    /// Narrows the tenant's MCP policy for this key (README "MCP gateway").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<crate::mcp::policy::McpPolicySpec>,
}

/// `{ usd, period }`, as in the config's tenant budgets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    #[schema(minimum = 0.0)]
    pub usd: f64,
    pub period: PeriodSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodSpec {
    Day,
    Month,
    Total,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[schema(minimum = 1, maximum = 1_000_000_000_000i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub requests_per_minute: Option<u64>,
    #[schema(minimum = 1, maximum = 1_000_000_000_000i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub tokens_per_minute: Option<u64>,
}

/// Upper bound of a per-minute limit (the document's `maximum`).
pub const MAX_PER_MINUTE: u64 = 1_000_000_000_000;

/// JSON Schema's `integer` includes `210.0`; accept whole floats as serde's `u64` won't.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_PER_MINUTE as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(serde::de::Error::custom(format!(
                    "expected a whole number between 1 and {MAX_PER_MINUTE}, got {n}"
                ))),
            }
        }
    }
}

impl RateLimitSpec {
    /// A message when a limit is 0 or above [`MAX_PER_MINUTE`].
    pub fn problem(&self) -> Option<String> {
        [self.requests_per_minute, self.tokens_per_minute]
            .into_iter()
            .flatten()
            .any(|n| n == 0 || n > MAX_PER_MINUTE)
            .then(|| format!("Rate limits must be between 1 and {MAX_PER_MINUTE} per minute."))
    }
}

impl From<BudgetSpec> for Budget {
    fn from(b: BudgetSpec) -> Budget {
        Budget {
            usd: b.usd,
            period: match b.period {
                PeriodSpec::Day => anycloud_config::BudgetPeriod::Day,
                PeriodSpec::Month => anycloud_config::BudgetPeriod::Month,
                PeriodSpec::Total => anycloud_config::BudgetPeriod::Total,
            },
        }
    }
}

impl From<Budget> for BudgetSpec {
    fn from(b: Budget) -> BudgetSpec {
        BudgetSpec {
            usd: b.usd,
            period: match b.period {
                anycloud_config::BudgetPeriod::Day => PeriodSpec::Day,
                anycloud_config::BudgetPeriod::Month => PeriodSpec::Month,
                anycloud_config::BudgetPeriod::Total => PeriodSpec::Total,
            },
        }
    }
}

impl From<RateLimitSpec> for RateLimit {
    fn from(r: RateLimitSpec) -> RateLimit {
        RateLimit {
            requests_per_minute: r.requests_per_minute,
            tokens_per_minute: r.tokens_per_minute,
        }
    }
}

impl From<RateLimit> for RateLimitSpec {
    fn from(r: RateLimit) -> RateLimitSpec {
        RateLimitSpec {
            requests_per_minute: r.requests_per_minute,
            tokens_per_minute: r.tokens_per_minute,
        }
    }
}

#[derive(Debug)]
pub struct Governance {
    pub budgets: Arc<budget::Budgets>,
    pub limits: Arc<limits::RateLimiter>,
    pub audit: Arc<audit::AuditLog>,
    pub sealer: capture::Sealer,
    /// Sealed captures on their way to the store (bounded, spilling like the audit log).
    pub captures: anycloud_store::spool::Spool<anycloud_store::CaptureRecord>,
    store: Arc<dyn Store>,
    // std RwLock: map reads and inserts only, never across an await.
    key_policies: RwLock<HashMap<String, (KeyPolicy, Instant)>>,
}

const POLICY_TTL: Duration = Duration::from_secs(1);

impl Governance {
    /// `link`: the shared Redis, when `store.redis_url` is set; budgets and rate limits
    /// then hold across every instance.
    /// `queues`: `[store]`, for the bookkeeping queues' bounds and spill directory.
    pub fn new(
        store: Arc<dyn Store>,
        capture: &anycloud_config::CaptureConfig,
        queues: &anycloud_config::StoreConfig,
        audit_config: &anycloud_config::AuditConfig,
        link: Option<Arc<RedisLink>>,
        request_timeout: Duration,
    ) -> Result<Governance, capture::CaptureError> {
        use crate::bookkeeping::spool_config;
        let shared_budgets = link.clone().map(|l| {
            let lease = queues
                .reservation_lease_ms
                .map(Duration::from_millis)
                .unwrap_or(request_timeout + redis_budget::LEASE_MARGIN);
            Arc::new(redis_budget::SharedBudgets::new(l, lease))
        });
        Ok(Governance {
            budgets: Arc::new(budget::Budgets::new(
                store.clone(),
                shared_budgets,
                spool_config(queues, "budget_spend"),
                // Settles go to Redis, not the store: no spill file.
                anycloud_store::spool::SpoolConfig {
                    spill: None,
                    ..spool_config(queues, "budget_settle")
                },
            )),
            limits: Arc::new(limits::RateLimiter::new(
                link.map(redis_ratelimit::SharedGcra::new),
            )),
            audit: Arc::new(audit::AuditLog::new(
                store.clone(),
                spool_config(queues, "audit"),
                audit::chain_keys(audit_config)?,
            )),
            sealer: capture::Sealer::from_config(capture)?,
            captures: capture::writer(store.clone(), spool_config(queues, "capture")),
            store,
            key_policies: RwLock::default(),
        })
    }

    /// A key's policy (cached for one second).
    /// While the store is unreachable the last policy read is used, however old (see
    /// README "Reliability").
    pub async fn key_policy(&self, key_id: &str) -> Result<KeyPolicy, ApiError> {
        let cached = self
            .key_policies
            .read()
            .ok()
            .and_then(|m| m.get(key_id).cloned());
        if let Some((p, at)) = &cached {
            if at.elapsed() < POLICY_TTL {
                return Ok(p.clone());
            }
        }
        let read = crate::auth::store_read("key policy lookup", self.store.key_policy(key_id));
        let policy = match read.await {
            Some(Some(v)) => serde_json::from_value(v).unwrap_or_default(),
            Some(None) => KeyPolicy::default(),
            None => {
                if let Some((p, _)) = cached {
                    return Ok(p);
                }
                // The same answer as a key lookup the store cannot serve: the client
                // may retry; nothing is wrong with the request.
                return Err(ApiError::Unavailable {
                    message: "The gateway's key store is unavailable; try again shortly.".into(),
                    code: "key_store_unavailable",
                    retry_after: 1,
                });
            }
        };
        if let Ok(mut m) = self.key_policies.write() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(key_id.to_string(), (policy.clone(), Instant::now()));
        }
        Ok(policy)
    }

    pub fn forget_key_policy(&self, key_id: &str) {
        if let Ok(mut m) = self.key_policies.write() {
            m.remove(key_id);
        }
    }

    /// Drains every queued audit entry, spend record and capture (shutdown, tests).
    pub async fn flush(&self) {
        self.audit.flush().await;
        self.budgets.flush().await;
        self.captures.flush().await;
    }

    /// Every bookkeeping queue governance owns.
    pub fn gauges(&self) -> Vec<anycloud_store::spool::SpoolGauge> {
        let mut out = vec![self.audit.gauge(), self.captures.gauge()];
        out.extend(self.budgets.gauges());
        out
    }
}

/// Settles budget reservations from finished requests.
#[derive(Debug)]
pub struct BudgetSettler(pub Arc<budget::Budgets>);

impl OutcomeSink for BudgetSettler {
    fn record(&self, o: &RequestOutcome) {
        self.0.settle(&o.request_id, o.cost_usd());
    }
}

/// Corrects tokens-per-minute limits, charged at the request's estimate on admission,
/// to the tokens it really used (streams included: they finish when they end).
#[derive(Debug)]
pub struct LimitSettler(pub Arc<limits::RateLimiter>);

impl OutcomeSink for LimitSettler {
    fn record(&self, o: &RequestOutcome) {
        let u = o.usage();
        self.0
            .settle(&o.request_id, u.input_tokens + u.output_tokens);
    }
}

/// What admission decided; stamps the `x-ratelimit-*` headers on the response.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    requests: Option<LimitState>,
    tokens: Option<LimitState>,
}

impl Admission {
    pub fn stamp(&self, resp: &mut Response) {
        for (h, v) in limit_headers(self.requests, self.tokens) {
            resp.headers_mut().insert(h, v);
        }
    }
}

fn limit_headers(
    requests: Option<LimitState>,
    tokens: Option<LimitState>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (kind, st) in [("requests", requests), ("tokens", tokens)] {
        let Some(st) = st else { continue };
        for (name, value) in [
            (format!("x-ratelimit-limit-{kind}"), st.limit.to_string()),
            (
                format!("x-ratelimit-remaining-{kind}"),
                st.remaining.to_string(),
            ),
            (format!("x-ratelimit-reset-{kind}"), format_reset(st.reset)),
        ] {
            if let (Ok(h), Ok(v)) = (
                HeaderName::try_from(name),
                HeaderValue::try_from(value.as_str()),
            ) {
                out.push((h, v));
            }
        }
    }
    out
}

/// The tighter of two states (fewer remaining).
fn tighter(a: Option<LimitState>, b: LimitState) -> Option<LimitState> {
    match a {
        Some(a) if a.remaining <= b.remaining => Some(a),
        _ => Some(b),
    }
}

/// What the request asks for, for admission.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub request_id: &'a str,
    pub plan: &'a RoutePlan,
    pub input_tokens: u64,
    /// The request's `max_tokens`, if any.
    pub max_output_tokens: Option<u64>,
    /// How many times a stream of this request may be continued on another cloud
    /// (`routing.resume_max` when its streams are resumed, else 0).
    pub continuations: u32,
}

/// Rate limits, then budget reservation; see the module docs.
pub async fn admit(state: &AppState, p: &Principal, ask: Ask<'_>) -> Result<Admission, ApiError> {
    // Back-pressure first: a request the gateway could not record is never served.
    state.bookkeeping.admit().await?;
    let g = &state.governance;
    let policy = g.key_policy(&p.key_id).await?;
    let tenant_scope = format!("tenant:{}", p.tenant.name);
    let key_scope = format!("key:{}", p.key_id);
    let tenant_label = format!("tenant `{}`", p.tenant.name);
    let key_label = format!("key `{}`", p.key_id);
    let limits: Vec<(&str, &str, RateLimit)> = [
        p.tenant
            .rate_limit
            .map(|r| (tenant_scope.as_str(), tenant_label.as_str(), r)),
        policy
            .rate_limit
            .map(|r| (key_scope.as_str(), key_label.as_str(), r.into())),
    ]
    .into_iter()
    .flatten()
    .collect();

    let tokens = ask
        .input_tokens
        .saturating_add(ask.max_output_tokens.unwrap_or(0));
    let mut checks: Vec<limits::Check> = Vec::new();
    let mut about: Vec<(&str, &'static str)> = Vec::new();
    for (scope, label, rl) in &limits {
        if let Some(n) = rl.requests_per_minute {
            checks.push(limits::Check {
                scope: format!("{scope}:rpm"),
                limit: n,
                cost: 1,
            });
            about.push((label, "requests"));
        }
        if let Some(n) = rl.tokens_per_minute {
            checks.push(limits::Check {
                scope: format!("{scope}:tpm"),
                limit: n,
                cost: tokens,
            });
            about.push((label, "tokens"));
        }
    }
    let mut adm = Admission::default();
    match g.limits.check(&checks).await {
        limits::Verdict::Allowed(states) => {
            // Token limits were spent at the estimate; held to be settled to real usage.
            let held = checks
                .iter()
                .zip(&about)
                .zip(&states)
                .filter(|((_, (_, kind)), st)| *kind == "tokens" && st.is_some())
                .map(|((c, _), _)| c.clone())
                .collect();
            g.limits.hold(ask.request_id, held);
            for ((_, kind), st) in about.iter().zip(states) {
                let Some(st) = st else { continue };
                if *kind == "requests" {
                    adm.requests = tighter(adm.requests, st);
                } else {
                    adm.tokens = tighter(adm.tokens, st);
                }
            }
        }
        limits::Verdict::Limited {
            index,
            state: st,
            retry_after,
        } => {
            let (label, kind) = about
                .get(index)
                .copied()
                .unwrap_or(("this key", "requests"));
            let (limit, cost) = checks.get(index).map_or((0, 0), |c| (c.limit, c.cost));
            let scope = checks.get(index).map_or("tenant", |c| scope_kind(&c.scope));
            state.metrics.rate_limited(scope, kind);
            return Err(limited(label, kind, limit, cost, st, retry_after, &adm));
        }
    }

    let scopes: Vec<budget::Scope> = [
        p.tenant.budget.map(|b| budget::Scope {
            id: tenant_scope.clone(),
            label: tenant_label.clone(),
            budget: b,
        }),
        policy.budget.map(|b| budget::Scope {
            id: key_scope.clone(),
            label: key_label.clone(),
            budget: b.into(),
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !scopes.is_empty() {
        let worst = worst_case_cost(state, &ask);
        match g.budgets.reserve(ask.request_id, &scopes, worst).await {
            Ok(()) => {}
            Err(budget::Refusal::Exceeded(e)) => {
                return Err(ApiError::TooManyRequests {
                    message: e.message,
                    code: "budget_exceeded",
                    retry_after: e.retry_after,
                    headers: limit_headers(adm.requests, adm.tokens),
                })
            }
            Err(budget::Refusal::Unavailable { message }) => {
                return Err(ApiError::Unavailable {
                    message,
                    code: "budget_unavailable",
                    retry_after: 1,
                })
            }
        }
    }
    Ok(adm)
}

/// The metric label for a limit's scope id (`tenant:…` or `key:…`).
fn scope_kind(scope: &str) -> &'static str {
    if scope.starts_with("key:") {
        "key"
    } else {
        "tenant"
    }
}

fn limited(
    label: &str,
    kind: &str,
    limit: u64,
    cost: u64,
    st: LimitState,
    retry_after: Duration,
    adm: &Admission,
) -> ApiError {
    let (mut req, mut tok) = (adm.requests, adm.tokens);
    if kind == "requests" {
        req = Some(st);
    } else {
        tok = Some(st);
    }
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let message = if kind == "tokens" && cost > limit {
        format!(
            "This request needs about {cost} tokens, more than the {label} limit of {limit} tokens per minute allows at once; lower max_tokens or the prompt."
        )
    } else {
        format!(
            "Rate limit reached for {label}: {limit} {kind} per minute (this request: {cost}, remaining: {}). Please try again in {}.",
            st.remaining,
            format_reset(retry_after)
        )
    };
    ApiError::TooManyRequests {
        message,
        code: "rate_limit_exceeded",
        retry_after: Some(secs),
        headers: limit_headers(req, tok),
    }
}

/// The most a request can be billed for: the prompt and the output cap, and for each
/// continuation of a resumed stream (README "Streams that survive a cloud failing") the
/// prompt again plus what was delivered before it — at most the cap — as input, and at
/// most the cap again as output. So the reservation covers every continuation allowed.
pub fn worst_usage(input: u64, out: u64, continuations: u32) -> anycloud_types::Usage {
    let more = u64::from(continuations);
    anycloud_types::Usage {
        input_tokens: input
            .saturating_mul(1 + more)
            .saturating_add(out.saturating_mul(more)),
        output_tokens: out.saturating_mul(1 + more),
        ..Default::default()
    }
}

/// Prompt estimate plus output cap at the most expensive candidate deployment's price,
/// for every attempt a resumed stream may make ([`worst_usage`]).
pub fn worst_case_cost(state: &AppState, ask: &Ask<'_>) -> f64 {
    let out = ask
        .max_output_tokens
        .unwrap_or(state.config.server.default_max_output_tokens);
    let usage = worst_usage(ask.input_tokens, out, ask.continuations);
    let deployments = state.routes.deployments(ask.plan.model_index);
    ask.plan
        .candidates
        .iter()
        .filter_map(|&i| deployments.get(i))
        .map(|d| d.price.cost(&usage))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod worst_case_tests {
    use super::worst_usage;

    #[test]
    fn a_resumed_stream_reserves_for_each_continuation() {
        let once = worst_usage(1_000, 200, 0);
        assert_eq!((once.input_tokens, once.output_tokens), (1_000, 200));
        // One continuation: the prompt again plus up to 200 delivered tokens as input.
        let resumed = worst_usage(1_000, 200, 1);
        assert_eq!((resumed.input_tokens, resumed.output_tokens), (2_200, 400));
        let absurd = worst_usage(u64::MAX, u64::MAX, 5);
        assert_eq!(absurd.input_tokens, u64::MAX);
    }
}
