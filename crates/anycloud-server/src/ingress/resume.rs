//! Continuing a stream whose cloud failed after the client got text (README "Streams that
//! survive a cloud failing"): the relay asks [`Resume::continue_after`] for a new upstream
//! stream and the client sees one uninterrupted answer.
//!
//! The continuation is planned like any request (tenant policy, jurisdiction, agreements,
//! breakers, drain) through [`anycloud_router::continuation`]: only deployments that declare
//! `prefill`, never a cloud that already failed this request. It sends the original
//! request plus, as a final assistant message, the text already delivered, with trailing
//! whitespace left off (Anthropic and Bedrock refuse a prefill ending in whitespace); the
//! relay drops that whitespace from the start of the continuation.

use crate::auth::Principal;
use crate::dispatch::{failover, open_stream};
use crate::metrics::ResumeLabels;
use crate::outcome::Tracker;
use crate::state::AppState;
use anycloud_providers::{CallCtx, EventStream, ProviderError, ProviderErrorKind};
use anycloud_router::{Decision, Outcome, RouteInput};
use anycloud_types::{Capability, ChatRequest, ContentBlock, Message, Role, StreamEvent};
use std::sync::Arc;
use tokio::time::Instant;

/// What a resumable stream keeps to continue elsewhere.
#[derive(Debug)]
pub struct Resume {
    state: Arc<AppState>,
    principal: Principal,
    chat: ChatRequest,
    needs: Vec<Capability>,
    estimate: u64,
    call: CallCtx,
    deadline: Instant,
    /// Continuations still allowed (`routing.resume_max`).
    left: u32,
    /// The cloud serving the stream now.
    cloud: String,
    /// Clouds that failed this request mid-stream.
    interrupted: Vec<String>,
    /// The request's whole route so far.
    route: Vec<Decision>,
}

/// A new upstream stream that continues the answer.
pub struct Continuation {
    pub first: StreamEvent,
    pub rest: EventStream,
    /// Delivered text left out of the prefill, which the continuation repeats.
    pub skip: String,
    /// The continuation's prompt estimate (the request plus the prefill).
    pub input_estimate: u64,
}

/// Why a stream was interrupted, as the route and ledger show it.
pub fn interruption_reason(e: &ProviderError) -> String {
    match e.kind {
        ProviderErrorKind::Timeout => "idle_timeout".into(),
        ProviderErrorKind::Protocol | ProviderErrorKind::Connect => "closed".into(),
        _ => e.reason_code(),
    }
}

/// The parts of a request that [`Resume::new`] keeps.
pub struct ResumeRequest<'a> {
    pub principal: &'a Principal,
    pub chat: &'a ChatRequest,
    pub needs: &'a [Capability],
    pub estimate: u64,
    pub call: &'a CallCtx,
    pub deadline: Instant,
}

impl Resume {
    /// `None` when the model's streams are not resumed.
    pub fn new(
        state: &Arc<AppState>,
        req: ResumeRequest<'_>,
        cloud: &str,
        route: &[Decision],
    ) -> Option<Resume> {
        let left = state
            .config
            .routing
            .continuations(&state.config.models, &req.chat.model);
        if left == 0 {
            return None;
        }
        Some(Resume {
            state: state.clone(),
            principal: req.principal.clone(),
            chat: req.chat.clone(),
            needs: req.needs.to_vec(),
            estimate: req.estimate,
            call: req.call.clone(),
            deadline: req.deadline,
            left,
            cloud: cloud.to_string(),
            interrupted: Vec::new(),
            route: route.to_vec(),
        })
    }

    fn count(&self, from: &str, to: &str, outcome: &'static str) {
        self.state
            .metrics
            .stream_resumes
            .get_or_create(&ResumeLabels {
                from_cloud: from.to_string(),
                to_cloud: to.to_string(),
                outcome,
            })
            .inc();
    }

    /// The stream on the current cloud failed with `e` after `delivered` reached the
    /// client: records the interruption, and opens the continuation when one is allowed
    /// and some cloud can take it.
    pub async fn continue_after(
        &mut self,
        e: &ProviderError,
        delivered: &str,
        tracker: &Tracker,
    ) -> Option<Continuation> {
        let from = std::mem::take(&mut self.cloud);
        let reason = interruption_reason(e);
        tracker.interrupt_ok_attempt(&reason);
        if let Some(d) = self
            .route
            .iter_mut()
            .rev()
            .find(|d| d.cloud == from && (d.outcome.is_ok() || d.outcome == Outcome::Resumed))
        {
            d.outcome = Outcome::Interrupted(reason.clone());
        }
        tracker.set_route(&self.route);
        self.state.clouds.record_failure(&from, None);
        self.interrupted.push(from.clone());
        tracing::warn!(cloud = %from, %reason, error = %e, "stream interrupted after its first byte");
        if self.left == 0 || Instant::now() >= self.deadline {
            self.count(&from, "none", "exhausted");
            return None;
        }
        self.left -= 1;

        let prefill = delivered.trim_end();
        let skip = delivered[prefill.len()..].to_string();
        let mut chat = self.chat.clone();
        // The output cap is the whole answer's: the continuation gets what is left of it.
        if let Some(max) = &mut chat.params.max_tokens {
            let spent = u32::try_from(delivered.len().div_ceil(4)).unwrap_or(u32::MAX);
            *max = max.saturating_sub(spent).max(1);
        }
        if !prefill.is_empty() {
            chat.messages.push(Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text(prefill.to_string())],
                name: None,
            });
        }
        let input_estimate = chat.estimate_input_tokens();
        let input = RouteInput {
            model: &self.chat.model,
            tenant: &self.principal.tenant,
            needs: &self.needs,
            date: chrono::Utc::now().date_naive(),
            estimated_tokens: self.estimate,
            seed: rand::random(),
            spend: &*self.state.clouds,
        };
        let plan = match anycloud_router::continuation(
            &self.state.routes,
            &input,
            &*self.state.clouds,
            &self.interrupted,
        ) {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(cloud = %from, "no cloud can continue the interrupted stream");
                self.count(&from, "none", "no_cloud");
                return None;
            }
        };
        let (chat_ref, call) = (&chat, &self.call);
        let served = failover(
            &self.state,
            &plan,
            &self.chat.model,
            self.deadline,
            tracker,
            move |p, d| async move { open_stream(p, &d, chat_ref, call).await },
        )
        .await;
        match served {
            Ok(s) => {
                let mut decisions = s.decisions;
                // The interrupted clouds are on the route already.
                decisions.retain(|d| {
                    !(matches!(d.outcome, Outcome::Declined(_))
                        && self.interrupted.contains(&d.cloud))
                });
                if let Some(last) = decisions.last_mut() {
                    last.outcome = Outcome::Resumed;
                }
                self.route.extend(decisions);
                tracker.set_route(&self.route);
                self.count(&from, &s.cloud, "resumed");
                self.cloud = s.cloud;
                let (first, rest) = s.value;
                Some(Continuation {
                    first,
                    rest,
                    skip,
                    input_estimate,
                })
            }
            Err(err) => {
                self.route.extend(err.route().iter().cloned());
                tracker.set_route(&self.route);
                self.count(&from, "none", "failed");
                None
            }
        }
    }
}
