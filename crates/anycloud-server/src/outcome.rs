//! What happened to one client request, handed to the ledger, the audit log
//! and anything else that must see every request — off the hot path.
//!
//! A handler creates a [`Tracker`] once it knows the principal, the
//! dispatcher reports every upstream attempt into it, and the request ends
//! with exactly one [`Tracker::finish`] — for streams when the stream ends,
//! fails, or the client goes away (the tracker's `Drop` finishes it with
//! status 499). Finishing builds a [`RequestOutcome`] and hands it to every
//! [`OutcomeSink`]; sinks must not block (they enqueue to a batched writer).

use anycloud_config::Price;
use anycloud_router::Decision;
use anycloud_types::Usage;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One attempt that reached (or tried to reach) a cloud.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub cloud: String,
    /// The deployment's cloud-side id.
    pub deployment: String,
    pub price: Price,
    /// `ok` or a reason code (`upstream_503`, `timeout`, `connect`, …).
    pub outcome: String,
    /// Upstream HTTP status when there was one.
    pub upstream_status: Option<u16>,
    pub latency_ms: u64,
    /// Time to the first token (first stream event), streams only.
    pub ttft_ms: Option<u64>,
    /// Usage as billed: the cloud's report, clamped to the request's bounds.
    pub usage: Option<Usage>,
    /// The cloud's report as it came, when it was beyond the bounds and `usage` is
    /// the clamped figure (README "Security").
    pub reported_usage: Option<Usage>,
    /// The deployment's context window, one of the bounds on reported input.
    pub context_window: Option<u64>,
    /// True when `usage` is the gateway's estimate, not the cloud's count.
    pub usage_estimated: bool,
    /// Whether the attempt reached the cloud (connect errors did not).
    pub reached_cloud: bool,
}

impl AttemptRecord {
    /// Cost in USD at the deployment's price (0 without usage).
    pub fn cost_usd(&self) -> f64 {
        self.usage.map(|u| self.price.cost(&u)).unwrap_or(0.0)
    }
}

/// The whole request, as sinks see it.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    pub request_id: String,
    pub at: DateTime<Utc>,
    pub api: &'static str,
    pub tenant: String,
    pub key_id: String,
    /// The public model name (as configured; `unknown` otherwise).
    pub model: String,
    /// Every decline and attempt, in the order considered.
    pub route: Vec<Decision>,
    /// What the router checked: the capabilities and the token estimate (`None`
    /// when the request never reached routing). The ledger keeps them so
    /// `anycloud simulate` can replay the request exactly.
    pub needs: Option<RouteNeeds>,
    pub attempts: Vec<AttemptRecord>,
    /// The status the client got (499 if it went away mid-stream).
    pub status: u16,
    pub latency_ms: u64,
    /// The request's trace span (`Span::none()` without tracing); it ends when
    /// the sinks have seen the outcome.
    pub span: tracing::Span,
}

impl RequestOutcome {
    /// The serving cloud, if any attempt succeeded.
    pub fn cloud(&self) -> Option<&str> {
        self.attempts
            .iter()
            .find(|a| a.outcome == "ok")
            .map(|a| a.cloud.as_str())
    }

    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for u in self.attempts.iter().filter_map(|a| a.usage) {
            total.input_tokens = total.input_tokens.saturating_add(u.input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(u.output_tokens);
            total.cached_input_tokens = total
                .cached_input_tokens
                .saturating_add(u.cached_input_tokens);
            total.cache_write_tokens = total
                .cache_write_tokens
                .saturating_add(u.cache_write_tokens);
            total.reasoning_tokens = total.reasoning_tokens.saturating_add(u.reasoning_tokens);
        }
        total
    }

    pub fn cost_usd(&self) -> f64 {
        self.attempts.iter().map(AttemptRecord::cost_usd).sum()
    }
}

/// What one request allowed a cloud to use: more than this in a usage report is a
/// broken or hostile cloud, and billing it would let one absurd number exhaust a
/// tenant's budget. The report is clamped for billing and kept beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageBounds {
    /// The request's `max_tokens` (or equivalent), if it set one.
    pub max_output_tokens: Option<u64>,
    /// The gateway's own estimate of the prompt.
    pub input_estimate: u64,
}

/// Reported input beyond this many times the gateway's estimate is clamped.
pub const INPUT_ESTIMATE_FACTOR: u64 = 10;
/// Floor of the input bound: chat templates and images add tokens the estimate of a
/// tiny prompt does not see.
pub const MIN_INPUT_BOUND: u64 = 1_024;

impl UsageBounds {
    /// The bounds of a canonical chat request (chat, messages and responses all are one).
    pub fn of(chat: &anycloud_types::ChatRequest) -> UsageBounds {
        UsageBounds {
            max_output_tokens: chat.params.max_tokens.map(u64::from),
            input_estimate: chat.estimate_input_tokens(),
        }
    }

    /// `usage` within the bounds (and `context_window`), and whether it had to change.
    pub fn clamp(&self, usage: Usage, context_window: Option<u64>) -> (Usage, bool) {
        let by_estimate = self
            .input_estimate
            .saturating_mul(INPUT_ESTIMATE_FACTOR)
            .max(MIN_INPUT_BOUND);
        let max_input = context_window.map_or(by_estimate, |w| w.min(by_estimate));
        let max_output = self
            .max_output_tokens
            .or(context_window)
            .unwrap_or(u64::MAX);
        let mut u = usage;
        u.input_tokens = u.input_tokens.min(max_input);
        u.output_tokens = u.output_tokens.min(max_output);
        // Subsets stay subsets of what is billed.
        u.cached_input_tokens = u.cached_input_tokens.min(u.input_tokens);
        u.cache_write_tokens = u.cache_write_tokens.min(u.input_tokens);
        u.reasoning_tokens = u.reasoning_tokens.min(u.output_tokens);
        (u, u != usage)
    }
}

/// The router's input a replay needs (see [`RequestOutcome::needs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteNeeds {
    pub capabilities: Vec<anycloud_types::Capability>,
    pub estimated_tokens: u64,
}

/// Receives finished requests. Must return quickly: enqueue, don't write.
pub trait OutcomeSink: Send + Sync + std::fmt::Debug {
    fn record(&self, outcome: &RequestOutcome);
}

#[derive(Debug)]
struct Inner {
    route: Vec<Decision>,
    needs: Option<RouteNeeds>,
    attempts: Vec<AttemptRecord>,
    model: String,
    finished: bool,
    span: tracing::Span,
    bounds: Option<UsageBounds>,
}

/// Collects one request's attempts and finishes it exactly once.
#[derive(Debug)]
pub struct Tracker {
    sinks: Arc<[Arc<dyn OutcomeSink>]>,
    request_id: String,
    api: &'static str,
    tenant: String,
    key_id: String,
    at: DateTime<Utc>,
    started: Instant,
    // std Mutex: held for a push or a take, never across an await.
    inner: Mutex<Inner>,
}

impl Tracker {
    pub fn new(
        sinks: Arc<[Arc<dyn OutcomeSink>]>,
        request_id: String,
        api: &'static str,
        tenant: String,
        key_id: String,
    ) -> Tracker {
        // From here the tracker, not the middleware, reports this request's
        // metrics and access-log line, and it carries the request's span.
        let span = crate::request_scope::claim();
        Tracker {
            sinks,
            request_id,
            api,
            tenant,
            key_id,
            at: Utc::now(),
            started: Instant::now(),
            inner: Mutex::new(Inner {
                route: Vec::new(),
                needs: None,
                attempts: Vec::new(),
                model: "unknown".into(),
                finished: false,
                span,
                bounds: None,
            }),
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The ingress API (`chat_completions`, `messages`, …).
    pub fn api(&self) -> &'static str {
        self.api
    }

    pub fn set_model(&self, model: &str) {
        if let Ok(mut i) = self.inner.lock() {
            i.model = model.to_string();
        }
    }

    pub fn set_route(&self, route: &[Decision]) {
        if let Ok(mut i) = self.inner.lock() {
            i.route = route.to_vec();
        }
    }

    /// The bounds a cloud's usage report is held to (set once the request is parsed).
    pub fn set_usage_bounds(&self, bounds: UsageBounds) {
        if let Ok(mut i) = self.inner.lock() {
            i.bounds = Some(bounds);
        }
    }

    /// Records what the router is about to check (called just before routing).
    pub fn set_needs(&self, capabilities: &[anycloud_types::Capability], estimated_tokens: u64) {
        if let Ok(mut i) = self.inner.lock() {
            i.needs = Some(RouteNeeds {
                capabilities: capabilities.to_vec(),
                estimated_tokens,
            });
        }
    }

    pub fn attempt(&self, a: AttemptRecord) {
        if let Ok(mut i) = self.inner.lock() {
            i.attempts.push(a);
        }
    }

    /// Updates the successful attempt once a stream has ended: its usage
    /// (or an estimate) and time to first token.
    pub fn complete_ok_attempt(&self, usage: Option<Usage>, estimated: bool, ttft_ms: Option<u64>) {
        if let Ok(mut guard) = self.inner.lock() {
            let i = &mut *guard;
            if let Some(a) = i.attempts.iter_mut().rev().find(|a| a.outcome == "ok") {
                let (billed, reported) = match (usage, i.bounds) {
                    (Some(u), Some(b)) if !estimated => match b.clamp(u, a.context_window) {
                        (clamped, true) => {
                            tracing::warn!(
                                cloud = %a.cloud,
                                reported = ?u,
                                billed = ?clamped,
                                "usage report beyond the request's bounds: clamped for billing"
                            );
                            (Some(clamped), Some(u))
                        }
                        (_, false) => (Some(u), None),
                    },
                    _ => (usage, None),
                };
                a.usage = billed;
                a.reported_usage = reported;
                a.usage_estimated = estimated;
                if ttft_ms.is_some() {
                    a.ttft_ms = ttft_ms;
                }
                a.latency_ms = a.latency_ms.max(ttft_ms.unwrap_or(0));
            }
        }
    }

    /// Renames the serving attempt once its stream was interrupted (README "Streams that
    /// survive a cloud failing"): it stays on the ledger as `interrupted(<reason>)`, and a
    /// continuation's attempt becomes the serving one.
    pub fn interrupt_ok_attempt(&self, reason: &str) {
        if let Ok(mut i) = self.inner.lock() {
            if let Some(a) = i.attempts.iter_mut().rev().find(|a| a.outcome == "ok") {
                a.outcome = format!("interrupted({reason})");
            }
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Ends the request with the status the client saw. Later calls (and the
    /// drop guard) do nothing.
    pub fn finish(&self, status: u16) {
        let outcome = {
            let Ok(mut i) = self.inner.lock() else { return };
            if i.finished {
                return;
            }
            i.finished = true;
            RequestOutcome {
                request_id: self.request_id.clone(),
                at: self.at,
                api: self.api,
                tenant: self.tenant.clone(),
                key_id: self.key_id.clone(),
                model: std::mem::take(&mut i.model),
                route: std::mem::take(&mut i.route),
                needs: i.needs.take(),
                attempts: std::mem::take(&mut i.attempts),
                status,
                latency_ms: self.started.elapsed().as_millis() as u64,
                span: std::mem::replace(&mut i.span, tracing::Span::none()),
            }
        };
        for sink in self.sinks.iter() {
            sink.record(&outcome);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // A stream whose client went away never reached `finish`.
        self.finish(499);
    }
}

/// A sink that keeps outcomes in memory (tests, and the demo's recent view).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub outcomes: Mutex<Vec<RequestOutcome>>,
}

impl OutcomeSink for MemorySink {
    fn record(&self, outcome: &RequestOutcome) {
        if let Ok(mut v) = self.outcomes.lock() {
            v.push(outcome.clone());
        }
    }
}
