//! The routing engine (product.md §4): which clouds may serve a request, in
//! which order, and why every other cloud was skipped.
//!
//! [`route`] is a pure function — no I/O, no clock, no locks — from the
//! compiled [`RoutingTable`], the request's [`RouteInput`] and a snapshot of
//! cloud state ([`CloudState`]) to a [`RoutePlan`]. Live routing and
//! `anycloud route explain` call the same function.
//!
//! Steps implemented here: model → deployments; tenant policy (models,
//! clouds, jurisdictions); deployment validity window on the request's date;
//! capabilities; drained clouds and open breakers. Candidates keep config
//! order (the `priority` strategy). Agreements (primary first look,
//! ship-first, exclusivity) and the other strategies build on this seam.

pub mod reason;
pub mod table;

pub use reason::{Decision, Outcome, Reason};
pub use table::{Deployment, RoutingTable};

use anycloud_config::TenantConfig;
use anycloud_types::Capability;
use chrono::NaiveDate;

/// What the request needs and who sends it.
#[derive(Debug, Clone)]
pub struct RouteInput<'a> {
    pub model: &'a str,
    pub tenant: &'a TenantConfig,
    pub needs: &'a [Capability],
    /// The request's date (UTC), for windows and agreements.
    pub date: NaiveDate,
    /// Prompt-size estimate plus requested output, for context-length checks.
    pub estimated_tokens: u64,
}

/// A snapshot view of live cloud state (drain flags, breakers).
pub trait CloudState {
    fn is_drained(&self, cloud: &str) -> bool;
    fn is_breaker_open(&self, cloud: &str) -> bool;
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
    let Some(model_index) = table.model_index(input.model) else {
        return Err(RouteError::UnknownModel {
            model: input.model.to_string(),
            suggestions: table.suggest(input.model),
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
    let deployments = table.deployments(model_index);
    let mut candidates = Vec::with_capacity(deployments.len());
    let mut declined = Vec::new();
    for (i, d) in deployments.iter().enumerate() {
        match check(d, input, state) {
            None => candidates.push(i),
            Some(reason) => declined.push(Decision {
                cloud: d.cloud.clone(),
                outcome: Outcome::Declined(reason),
            }),
        }
    }
    if candidates.is_empty() {
        let forbidden = !declined.is_empty() && declined.iter().all(|d| d.is_policy());
        return Err(RouteError::NoCandidate {
            declined,
            forbidden,
        });
    }
    Ok(RoutePlan {
        candidates,
        declined,
        model_index,
    })
}

/// Why `d` may not serve this request, or `None` if it may.
fn check(d: &Deployment, input: &RouteInput<'_>, state: &dyn CloudState) -> Option<Reason> {
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
    if d.valid_from.is_some_and(|f| input.date < f) || d.valid_until.is_some_and(|u| input.date > u)
    {
        return Some(Reason::OutsideWindow);
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
mod tests;
