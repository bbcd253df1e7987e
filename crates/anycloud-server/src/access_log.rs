//! The access log: exactly one line per request, target `anycloud::access`.
//!
//! Requests with a [`crate::outcome::Tracker`] (every AI request, streams
//! included) are logged by [`AccessLog`], an [`OutcomeSink`], when they
//! finish — so a stream's line carries its tokens and time to first token.
//! Every other request (health, metrics, admin, and AI requests refused
//! before a tracker existed, such as a bad key) is logged by the
//! `request_id` middleware through [`untracked`].
//!
//! Lines carry ids, names, counts and timings only — never a key, a secret or
//! prompt text, whatever `capture` says. The model is the configured name or
//! `unknown`, so a client cannot write arbitrary text into the log either.

use crate::outcome::{OutcomeSink, RequestOutcome};

pub const TARGET: &str = "anycloud::access";

#[derive(Debug, Default)]
pub struct AccessLog;

impl OutcomeSink for AccessLog {
    fn record(&self, o: &RequestOutcome) {
        // The route header and the sums are built only for a line that will be written
        // (`ANYCLOUD_LOG=warn` turns the access log off).
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let usage = o.usage();
        let ok = o.attempts.iter().rev().find(|a| a.outcome == "ok");
        let route = anycloud_router::reason::header_value(&o.route);
        tracing::info!(
            target: TARGET,
            request_id = %o.request_id,
            api = o.api,
            tenant = %o.tenant,
            key_id = %o.key_id,
            model = %o.model,
            cloud = o.cloud().unwrap_or("none"),
            route = %route,
            status = o.status,
            attempts = o.attempts.len(),
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cached_tokens = usage.cached_input_tokens,
            cost_usd = o.cost_usd(),
            latency_ms = o.latency_ms,
            ttft_ms = ok.and_then(|a| a.ttft_ms),
            "access"
        );
    }
}

/// The line for a request no tracker saw (no principal yet, or not an AI
/// request): the same fields, `none` where unknown. `path` is the matched
/// route template (or `unmatched`), never the raw URL.
pub fn untracked(
    request_id: &str,
    method: &str,
    path: &str,
    api: Option<&str>,
    status: u16,
    latency_ms: u64,
) {
    tracing::info!(
        target: TARGET,
        request_id = %request_id,
        method = %method,
        path = %path,
        api = api.unwrap_or("none"),
        tenant = "none",
        key_id = "none",
        model = "none",
        cloud = "none",
        route = "none",
        status = status,
        attempts = 0u64,
        input_tokens = 0u64,
        output_tokens = 0u64,
        latency_ms = latency_ms,
        "access"
    );
}
