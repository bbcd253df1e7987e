//! Reason codes (README "Routing") and per-cloud decisions, rendered into the
//! `x-anycloud-route` header.

use anycloud_types::Capability;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NotDeployed,
    TenantCloud,
    Jurisdiction,
    ExclusiveElsewhere,
    /// The primary declined the model (`agreements.primary.declined_models`):
    /// it chose not to support it, so it is not asked even when it has a
    /// deployment.
    DeclinedByPrimary,
    OutsideWindow,
    ShipFirst,
    Capability(Capability),
    ContextLength,
    Drained,
    BreakerOpen,
}

impl Reason {
    /// Excluded by policy or agreement (→ 403 when it excludes every cloud),
    /// as opposed to capability or health (→ 503).
    pub fn is_policy(self) -> bool {
        matches!(
            self,
            Reason::NotDeployed
                | Reason::TenantCloud
                | Reason::Jurisdiction
                | Reason::ExclusiveElsewhere
                | Reason::DeclinedByPrimary
                | Reason::OutsideWindow
                | Reason::ShipFirst
        )
    }

    /// The deployment cannot do what the request needs (→ 400 when it
    /// excludes every deployment).
    pub fn is_capability(self) -> bool {
        matches!(self, Reason::Capability(_) | Reason::ContextLength)
    }

    /// Low-cardinality metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            Reason::NotDeployed => "not_deployed",
            Reason::TenantCloud => "tenant_cloud",
            Reason::Jurisdiction => "jurisdiction",
            Reason::ExclusiveElsewhere => "exclusive_elsewhere",
            Reason::DeclinedByPrimary => "declined_by_primary",
            Reason::OutsideWindow => "outside_window",
            Reason::ShipFirst => "ship_first",
            Reason::Capability(Capability::Chat) => "capability:chat",
            Reason::Capability(Capability::Stream) => "capability:stream",
            Reason::Capability(Capability::Tools) => "capability:tools",
            Reason::Capability(Capability::Vision) => "capability:vision",
            Reason::Capability(Capability::JsonSchema) => "capability:json_schema",
            Reason::Capability(Capability::Embeddings) => "capability:embeddings",
            Reason::Capability(Capability::Prefill) => "capability:prefill",
            Reason::ContextLength => "capability:context_length",
            Reason::Drained => "drained",
            Reason::BreakerOpen => "breaker_open",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_label())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    Declined(Reason),
    /// An attempt failed; the text is a reason code like `upstream_503`.
    Failed(String),
    /// A stream failed after the client got text; the text is why (`closed`,
    /// `idle_timeout`, `upstream_529`, …).
    Interrupted(String),
    /// The attempt that continued an interrupted stream and ended it.
    Resumed,
    /// Served by the candidate cache affinity put ahead (README "Prompt caching").
    OkAffine,
}

impl Outcome {
    /// Whether the attempt served the request (plainly or by cache affinity).
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::OkAffine)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub cloud: String,
    pub outcome: Outcome,
}

impl Decision {
    pub fn is_policy(&self) -> bool {
        matches!(self.outcome, Outcome::Declined(r) if r.is_policy())
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok => write!(f, "{}:ok", self.cloud),
            Outcome::Declined(r) => write!(f, "{}:declined({r})", self.cloud),
            Outcome::Failed(r) => write!(f, "{}:failed({r})", self.cloud),
            Outcome::Interrupted(r) => write!(f, "{}:interrupted({r})", self.cloud),
            Outcome::Resumed => write!(f, "{}:resumed", self.cloud),
            Outcome::OkAffine => write!(f, "{}:ok(cache_affinity)", self.cloud),
        }
    }
}

/// Renders decisions as the `x-anycloud-route` header value.
pub fn header_value(decisions: &[Decision]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32 * decisions.len());
    for (i, d) in decisions.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        // Written in place: no String per decision.
        let _ = write!(s, "{d}");
    }
    s
}
