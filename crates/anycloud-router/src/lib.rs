//! The routing engine (README "Routing"): which clouds may serve a request, in
//! which order, and why every other cloud was skipped.
//!
//! [`route`] is a pure function — no I/O, no clock, no locks — from the
//! compiled [`RoutingTable`], the request's [`RouteInput`] and a snapshot of
//! live cloud state ([`CloudState`], [`SpendSource`]) to a [`RoutePlan`].
//! Live routing, `GET /admin/v1/route/explain` and `anycloud route explain`
//! all call it ([`explain`] wraps it for display).
//!
//! Checks per deployment, in the order README "Routing" lists them (the first that fails is
//! the reason recorded): tenant clouds, tenant jurisdictions; declined by
//! the primary, exclusivity held by another cloud, validity window,
//! ship-first; capabilities and
//! context length; drained, breaker open. Ordering is in [`order`].

pub mod explain;
pub mod order;
pub mod reason;
pub mod table;

pub use reason::{Decision, Outcome, Reason};
pub use table::{Deployment, RoutingTable};

use anycloud_config::TenantConfig;
use anycloud_types::Capability;
use chrono::NaiveDate;

/// Spend per cloud, for the `commitment` strategy. The ledger will
/// implement this; until then the server feeds an in-memory one.
pub trait SpendSource: Send + Sync {
    /// USD spent on `cloud` on days in `[from, to)`.
    fn spent_usd(&self, cloud: &str, from: NaiveDate, to: NaiveDate) -> f64;
}

/// No spend recorded anywhere (`route explain` without a ledger).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpend;
impl SpendSource for NoSpend {
    fn spent_usd(&self, _: &str, _: NaiveDate, _: NaiveDate) -> f64 {
        0.0
    }
}

/// What the request needs and who sends it.
#[derive(Clone)]
pub struct RouteInput<'a> {
    pub model: &'a str,
    pub tenant: &'a TenantConfig,
    pub needs: &'a [Capability],
    /// The request's date (UTC), for windows and agreements.
    pub date: NaiveDate,
    /// Prompt-size estimate plus requested output, for context-length checks
    /// and the `cost` strategy.
    pub estimated_tokens: u64,
    /// Seed for the `weighted` strategy's draw: random per live request,
    /// fixed in tests so a plan is reproducible.
    pub seed: u64,
    pub spend: &'a dyn SpendSource,
}

impl std::fmt::Debug for RouteInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteInput")
            .field("model", &self.model)
            .field("tenant", &self.tenant.name)
            .field("needs", &self.needs)
            .field("date", &self.date)
            .field("estimated_tokens", &self.estimated_tokens)
            .field("seed", &self.seed)
            .finish()
    }
}

/// A snapshot view of live cloud state (drain flags, breakers, latency).
pub trait CloudState {
    fn is_drained(&self, cloud: &str) -> bool;
    fn is_breaker_open(&self, cloud: &str) -> bool;
    /// EWMA of time to first byte in milliseconds; `None` when unmeasured.
    fn latency_ms(&self, _cloud: &str) -> Option<f64> {
        None
    }
}

/// No live state: nothing drained, every breaker closed (`route explain`).
pub struct NoState;
impl CloudState for NoState {
    fn is_drained(&self, _: &str) -> bool {
        false
    }
    fn is_breaker_open(&self, _: &str) -> bool {
        false
    }
}

/// The ordered candidates and the decision for every deployment considered.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// Indices into the model's deployments, in the order to try them.
    pub candidates: Vec<usize>,
    /// Why each candidate sits where it does (parallel to `candidates`),
    /// e.g. `primary (first look)` or `ewma 120 ms`.
    pub notes: Vec<String>,
    /// Every deployment that was skipped, with why, in config order.
    pub declined: Vec<Decision>,
    pub model_index: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteError {
    /// The model is not configured; `suggestions` are the closest names.
    UnknownModel {
        model: String,
        suggestions: Vec<String>,
    },
    /// The tenant may not use this model at all.
    ModelNotAllowed { model: String, tenant: String },
    /// Every deployment was excluded. `forbidden` is true when policy or
    /// agreements (not capacity or health) excluded them all.
    NoCandidate {
        declined: Vec<Decision>,
        forbidden: bool,
    },
}

pub fn route(
    table: &RoutingTable,
    input: &RouteInput<'_>,
    state: &dyn CloudState,
) -> Result<RoutePlan, RouteError> {
    route_preferring(table, input, state, None)
}

/// The deployment that served the previous turn of a conversation, whose prompt cache
/// lives there (README "Prompt caching"). The server looks it up; routing stays pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheAffinity<'a> {
    pub cloud: &'a str,
    pub target: &'a str,
}

/// [`route`], preferring the deployment of `affinity` among the candidates (see
/// [`order::prefer_affine`] for what it never overrides).
pub fn route_preferring(
    table: &RoutingTable,
    input: &RouteInput<'_>,
    state: &dyn CloudState,
    affinity: Option<CacheAffinity<'_>>,
) -> Result<RoutePlan, RouteError> {
    let Some(model_index) = table.model_index(input.model) else {
        return Err(RouteError::UnknownModel {
            model: input.model.to_string(),
            suggestions: table.suggest(input.model, input.tenant.models.as_deref()),
        });
    };
    let tenant = input.tenant;
    if let Some(allowed) = &tenant.models {
        if !allowed.iter().any(|m| m == input.model) {
            return Err(RouteError::ModelNotAllowed {
                model: input.model.to_string(),
                tenant: tenant.name.clone(),
            });
        }
    }
    let facts = Facts {
        exclusive_holder: table.exclusive_holder(input.model, input.date),
        ship_first_blocks: table.ship_first_blocks(model_index, input.model, input.date),
        primary: table.primary.as_ref().map(|p| p.cloud.as_str()),
        primary_declined: table.primary_declined(input.model),
    };
    let deployments = table.deployments(model_index);
    let mut eligible = Vec::with_capacity(deployments.len());
    let mut declined = Vec::new();
    for (i, d) in deployments.iter().enumerate() {
        match check(d, input, &facts, state) {
            None => eligible.push(i),
            Some(reason) => declined.push(Decision {
                cloud: d.cloud.clone(),
                outcome: Outcome::Declined(reason),
            }),
        }
    }
    if eligible.is_empty() {
        let forbidden = !declined.is_empty() && declined.iter().all(|d| d.is_policy());
        return Err(RouteError::NoCandidate {
            declined,
            forbidden,
        });
    }
    let (mut candidates, mut notes) = order::order(table, deployments, eligible, input, state);
    if let Some(a) = affinity {
        order::prefer_affine(table, deployments, &mut candidates, &mut notes, a);
    }
    Ok(RoutePlan {
        candidates,
        notes,
        declined,
        model_index,
    })
}

/// The plan for continuing an interrupted stream (README "Streams that survive a cloud
/// failing"): routed like any request with `input`, needing [`Capability::Prefill`]
/// besides, and never on a cloud in `interrupted` (those already failed this request).
pub fn continuation(
    table: &RoutingTable,
    input: &RouteInput<'_>,
    state: &dyn CloudState,
    interrupted: &[String],
) -> Result<RoutePlan, RouteError> {
    let mut needs = input.needs.to_vec();
    if !needs.contains(&Capability::Prefill) {
        needs.push(Capability::Prefill);
    }
    let with_prefill = RouteInput {
        needs: &needs,
        ..input.clone()
    };
    let mut plan = route(table, &with_prefill, state)?;
    let deployments = table.deployments(plan.model_index);
    let keep: Vec<(usize, String)> = plan
        .candidates
        .iter()
        .zip(plan.notes.iter())
        .filter(|(i, _)| {
            deployments
                .get(**i)
                .is_some_and(|d| !interrupted.contains(&d.cloud))
        })
        .map(|(i, n)| (*i, n.clone()))
        .collect();
    if keep.is_empty() {
        return Err(RouteError::NoCandidate {
            declined: plan.declined,
            forbidden: false,
        });
    }
    (plan.candidates, plan.notes) = keep.into_iter().unzip();
    Ok(plan)
}

/// Per-request facts from the agreements, computed once per route.
struct Facts<'a> {
    exclusive_holder: Option<&'a str>,
    ship_first_blocks: bool,
    primary: Option<&'a str>,
    /// The primary declined this model: its own deployment is skipped.
    primary_declined: bool,
}

/// Why `d` may not serve this request, or `None` if it may.
fn check(
    d: &Deployment,
    input: &RouteInput<'_>,
    facts: &Facts<'_>,
    state: &dyn CloudState,
) -> Option<Reason> {
    let tenant = input.tenant;
    if let Some(clouds) = &tenant.clouds {
        if !clouds.contains(&d.cloud) {
            return Some(Reason::TenantCloud);
        }
    }
    if let Some(allowed) = &tenant.jurisdictions {
        let ok = d
            .jurisdiction
            .as_deref()
            .is_some_and(|j| allowed.iter().any(|a| a == j));
        if !ok {
            return Some(Reason::Jurisdiction);
        }
    }
    if facts.primary_declined && facts.primary == Some(d.cloud.as_str()) {
        return Some(Reason::DeclinedByPrimary);
    }
    if facts.exclusive_holder.is_some_and(|c| c != d.cloud) {
        return Some(Reason::ExclusiveElsewhere);
    }
    if !d.valid_on(input.date) {
        return Some(Reason::OutsideWindow);
    }
    if facts.ship_first_blocks && facts.primary != Some(d.cloud.as_str()) {
        return Some(Reason::ShipFirst);
    }
    for need in input.needs {
        if !d.capabilities.contains(need) {
            return Some(Reason::Capability(*need));
        }
    }
    if d.context_window.is_some_and(|w| input.estimated_tokens > w) {
        return Some(Reason::ContextLength);
    }
    if state.is_drained(&d.cloud) {
        return Some(Reason::Drained);
    }
    if state.is_breaker_open(&d.cloud) {
        return Some(Reason::BreakerOpen);
    }
    None
}

#[cfg(test)]
mod affinity_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
