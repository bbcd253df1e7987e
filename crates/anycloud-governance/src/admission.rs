//! Admission (ARCHITECTURE.md "The request path", step 7), after authentication and
//! routing and before any cloud is called:
//! 1. back-pressure: a bookkeeping queue that stays full refuses the request
//!    ([`Refusal::Backlog`]): traffic the gateway could not record is never served;
//! 2. rate limits ([`crate::limits`]): requests and tokens per minute for the tenant and
//!    the key ([`Refusal::RateLimited`]);
//! 3. budgets ([`crate::budget`]): the request's worst-case cost — prompt estimate plus
//!    `max_tokens` (or `server.default_max_output_tokens`) at the most expensive candidate
//!    deployment's price — reserved against the tenant's and the key's budget
//!    ([`Refusal::BudgetExceeded`]). [`Settler`] settles it to the real cost when the
//!    request ends, and corrects tokens-per-minute to the tokens really used.
//!
//! Every refusal is a [`Refusal`]; the server turns each into the API's error (status,
//! body, `retry-after` and `x-ratelimit-*` headers) in one place, its `error.rs`.

use crate::budget::{self, Budgets};
use crate::limits::{self, RateLimiter};
use crate::ratelimit::LimitState;
use crate::Governance;
use anycloud_config::{RateLimit, TenantConfig};
use anycloud_router::{Deployment, RoutePlan};
use std::sync::Arc;
use std::time::Duration;

/// Who is asking: the tenant (from config or the admin API) and the key id.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Arc<TenantConfig>,
    pub key_id: String,
}

/// What the request asks for, for admission.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub request_id: &'a str,
    pub plan: &'a RoutePlan,
    /// The planned model's deployments (`plan.candidates` index into them), for prices.
    pub deployments: &'a [Deployment],
    pub input_tokens: u64,
    /// The request's `max_tokens`, if any.
    pub max_output_tokens: Option<u64>,
    /// How many times a stream of this request may be continued on another cloud
    /// (`routing.resume_max` when its streams are resumed, else 0).
    pub continuations: u32,
}

/// What admission decided about the rate limits: the tightest requests and tokens limit
/// the request fell under (the server's `x-ratelimit-*` headers).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub requests: Option<LimitState>,
    pub tokens: Option<LimitState>,
}

impl Admission {
    /// Keeps the tighter state (fewer remaining) of `kind` (`requests` or `tokens`).
    fn keep(&mut self, kind: &str, st: LimitState) {
        let slot = if kind == "requests" {
            &mut self.requests
        } else {
            &mut self.tokens
        };
        match slot {
            Some(a) if a.remaining <= st.remaining => {}
            _ => *slot = Some(st),
        }
    }
}

/// Why governance refused a request.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A bookkeeping queue stayed full for `bookkeeping::ADMISSION_WAIT`
    /// (503 `bookkeeping_backlog`).
    Backlog { queue: &'static str },
    /// The key store could not say what the key's policy is, and none was cached
    /// (503 `key_store_unavailable`).
    KeyStoreUnavailable,
    /// A requests- or tokens-per-minute limit (429 `rate_limit_exceeded`).
    RateLimited(Limited),
    /// A budget (429 `budget_exceeded`); `limits` are the rate limits it passed.
    BudgetExceeded {
        exceeded: budget::Exceeded,
        limits: Admission,
    },
    /// Spend cannot be checked right now (503 `budget_unavailable`).
    BudgetUnavailable { message: String },
}

/// The rate limit that refused a request.
#[derive(Debug, Clone)]
pub struct Limited {
    /// Whose limit, for messages: ``tenant `team` `` or ``key `abc123` ``.
    pub label: String,
    /// `tenant` or `key` (the metric label).
    pub scope: &'static str,
    /// `requests` or `tokens`.
    pub kind: &'static str,
    /// Per minute.
    pub limit: u64,
    /// What this request would have spent (1 request, or its token estimate).
    pub cost: u64,
    pub state: LimitState,
    pub retry_after: Duration,
    /// The refusing limit's state, for the headers.
    pub limits: Admission,
}

impl Governance {
    /// Back-pressure, rate limits, then budget reservation; see the module docs.
    pub async fn admit(&self, p: &Principal, ask: Ask<'_>) -> Result<Admission, Refusal> {
        // Back-pressure first: a request the gateway could not record is never served.
        self.bookkeeping.admit().await?;
        let policy = self.key_policy(&p.key_id).await?;
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
        let adm = check_limits(&self.limits, ask.request_id, &limits, tokens).await?;

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
            let worst = worst_case_cost(&ask, self.default_max_output_tokens);
            match self.budgets.reserve(ask.request_id, &scopes, worst).await {
                Ok(()) => {}
                Err(budget::Refusal::Exceeded(exceeded)) => {
                    return Err(Refusal::BudgetExceeded {
                        exceeded,
                        limits: adm,
                    })
                }
                Err(budget::Refusal::Unavailable { message }) => {
                    return Err(Refusal::BudgetUnavailable { message })
                }
            }
        }
        Ok(adm)
    }
}

/// Spends the request against every limit it falls under (`limits`: scope id, label,
/// limit), or refuses it with the first limit that would not allow it.
async fn check_limits(
    limiter: &RateLimiter,
    request_id: &str,
    limits: &[(&str, &str, RateLimit)],
    tokens: u64,
) -> Result<Admission, Refusal> {
    let mut checks: Vec<limits::Check> = Vec::new();
    let mut about: Vec<(&str, &'static str)> = Vec::new();
    for (scope, label, rl) in limits {
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
    match limiter.check(&checks).await {
        limits::Verdict::Allowed(states) => {
            // Token limits were spent at the estimate; held to be settled to real usage.
            let held = checks
                .iter()
                .zip(&about)
                .zip(&states)
                .filter(|((_, (_, kind)), st)| *kind == "tokens" && st.is_some())
                .map(|((c, _), _)| c.clone())
                .collect();
            limiter.hold(request_id, held);
            for ((_, kind), st) in about.iter().zip(states) {
                if let Some(st) = st {
                    adm.keep(kind, st);
                }
            }
            Ok(adm)
        }
        limits::Verdict::Limited {
            index,
            state,
            retry_after,
        } => {
            let (label, kind) = about
                .get(index)
                .copied()
                .unwrap_or(("this key", "requests"));
            let (limit, cost) = checks.get(index).map_or((0, 0), |c| (c.limit, c.cost));
            let scope = checks.get(index).map_or("tenant", |c| scope_kind(&c.scope));
            adm.keep(kind, state);
            Err(Refusal::RateLimited(Limited {
                label: label.to_string(),
                scope,
                kind,
                limit,
                cost,
                state,
                retry_after,
                limits: adm,
            }))
        }
    }
}

/// The metric label for a limit's scope id (`tenant:…` or `key:…`).
fn scope_kind(scope: &str) -> &'static str {
    if scope.starts_with("key:") {
        "key"
    } else {
        "tenant"
    }
}

/// Settles what admission reserved when a request ends: the budget reservation to the
/// real cost, and tokens-per-minute limits, charged at the request's estimate, to the
/// tokens it really used (streams included: they finish when they end). The server hands
/// it every finished request (an outcome sink).
#[derive(Debug, Clone)]
pub struct Settler {
    budgets: Arc<Budgets>,
    limits: Arc<RateLimiter>,
}

impl Settler {
    pub fn new(budgets: Arc<Budgets>, limits: Arc<RateLimiter>) -> Settler {
        Settler { budgets, limits }
    }

    /// `cost_usd`: what the request was billed; `tokens`: input plus output tokens.
    pub fn settle(&self, request_id: &str, cost_usd: f64, tokens: u64) {
        self.budgets.settle(request_id, cost_usd);
        self.limits.settle(request_id, tokens);
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

/// Prompt estimate plus output cap (`default_out` without `max_tokens`) at the most
/// expensive candidate deployment's price, for every attempt a resumed stream may make
/// ([`worst_usage`]).
pub fn worst_case_cost(ask: &Ask<'_>, default_out: u64) -> f64 {
    let out = ask.max_output_tokens.unwrap_or(default_out);
    let usage = worst_usage(ask.input_tokens, out, ask.continuations);
    ask.plan
        .candidates
        .iter()
        .filter_map(|&i| ask.deployments.get(i))
        .map(|d| d.price.cost(&usage))
        .fold(0.0, f64::max)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

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

    fn st(remaining: u64) -> LimitState {
        LimitState {
            limit: 10,
            remaining,
            reset: Duration::from_secs(1),
        }
    }

    #[test]
    fn admission_keeps_the_tighter_limit_of_each_kind() {
        let mut a = Admission::default();
        a.keep("requests", st(5));
        a.keep("requests", st(7));
        a.keep("tokens", st(9));
        a.keep("tokens", st(2));
        assert_eq!(a.requests.map(|s| s.remaining), Some(5));
        assert_eq!(a.tokens.map(|s| s.remaining), Some(2));
    }

    #[tokio::test]
    async fn a_refused_limit_names_its_scope_and_spends_nothing() {
        let limiter = RateLimiter::new(None);
        let rl = RateLimit {
            requests_per_minute: Some(1),
            tokens_per_minute: Some(100),
        };
        let limits = [("key:k1", "key `k1`", rl)];
        let first = check_limits(&limiter, "r1", &limits, 10).await;
        assert!(first.is_ok_and(|a| a.requests.is_some() && a.tokens.is_some()));
        match check_limits(&limiter, "r2", &limits, 10).await {
            Err(Refusal::RateLimited(l)) => {
                assert_eq!(
                    (l.scope, l.kind, l.limit, l.cost),
                    ("key", "requests", 1, 1)
                );
                assert_eq!(l.label, "key `k1`");
                assert_eq!(l.limits.requests, Some(l.state));
                assert_eq!(l.limits.tokens, None);
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }
}
