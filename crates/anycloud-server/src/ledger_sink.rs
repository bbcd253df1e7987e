//! [`LedgerSink`]: the [`OutcomeSink`] that turns every attempt that reached a cloud into
//! one usage record for the batched ledger writer (`anycloud-ledger`).
//!
//! Connect failures never reached the cloud and are not recorded; failed attempts that did
//! (an upstream 503, a timeout after sending) are, with their status and no tokens.

use crate::outcome::{AttemptRecord, OutcomeSink, RequestOutcome};
use anycloud_ledger::money::{cache_saved_nanos, cost_nanos, recorded_price};
use anycloud_ledger::LedgerWriter;
use anycloud_store::UsageRecord;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct LedgerSink {
    writer: Arc<LedgerWriter>,
}

impl LedgerSink {
    pub fn new(writer: Arc<LedgerWriter>) -> LedgerSink {
        LedgerSink { writer }
    }
}

/// The usage record for one attempt of `outcome`.
pub fn usage_record(outcome: &RequestOutcome, a: &AttemptRecord) -> UsageRecord {
    let usage = a.usage.unwrap_or_default();
    UsageRecord {
        at: a.at,
        request_id: outcome.request_id.clone(),
        tenant: outcome.tenant.clone(),
        key_id: outcome.key_id.clone(),
        model: outcome.model.clone(),
        cloud: a.cloud.clone(),
        deployment: a.deployment.clone(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_tokens: usage.cached_input_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        cache_write_1h_tokens: usage.cache_write_1h_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        cache_saved_nanos: cache_saved_nanos(&a.price, &usage),
        usage_estimated: a.usage_estimated,
        price: recorded_price(&a.price),
        cost_nanos: cost_nanos(&a.price, &usage),
        outcome: a.outcome.clone(),
        upstream_status: a.upstream_status,
        latency_ms: a.latency_ms,
        ttft_ms: a.ttft_ms,
        needs: outcome.needs.as_ref().map(|n| {
            n.capabilities
                .iter()
                .map(|c| c.as_str().to_string())
                .collect()
        }),
        estimated_tokens: outcome.needs.as_ref().map(|n| n.estimated_tokens),
    }
}

impl OutcomeSink for LedgerSink {
    fn record(&self, outcome: &RequestOutcome) {
        for a in outcome.attempts.iter().filter(|a| a.reached_cloud) {
            self.writer.record(usage_record(outcome, a));
        }
    }
}
