//! A route decision made readable: `anycloud route explain` (table or JSON)
//! and `GET /admin/v1/route/explain` (JSON). Both go through [`explain`],
//! which calls the same [`route`] as live traffic, so what is explained is
//! what would happen.

use crate::reason::{header_value, Decision, Outcome};
use crate::{route, CloudState, RouteError, RouteInput, RoutingTable};
use serde::Serialize;

/// One candidate, in the order it would be tried.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub rank: usize,
    pub cloud: String,
    pub target: String,
    pub why: String,
}

/// One deployment that would not be tried, and the reason code.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub cloud: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub model: String,
    pub tenant: String,
    pub date: String,
    pub needs: Vec<String>,
    pub strategy: String,
    pub candidates: Vec<Candidate>,
    pub declined: Vec<Skipped>,
    /// `x-anycloud-route` as a live request would carry it when the first
    /// candidate answers (declines in config order, then `cloud:ok`).
    pub route_header: String,
    /// Set when no cloud may serve: the error a live request would get.
    pub error: Option<ExplainError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub fn explain(
    table: &RoutingTable,
    input: &RouteInput<'_>,
    state: &dyn CloudState,
) -> Explanation {
    let mut out = Explanation {
        model: input.model.to_string(),
        tenant: input.tenant.name.clone(),
        date: input.date.to_string(),
        needs: input.needs.iter().map(|c| c.as_str().to_string()).collect(),
        strategy: format!("{:?}", table.strategy).to_lowercase(),
        candidates: vec![],
        declined: vec![],
        route_header: String::new(),
        error: None,
    };
    let declined: Vec<Decision> = match route(table, input, state) {
        Ok(plan) => {
            let deps = table.deployments(plan.model_index);
            for (rank, (&i, why)) in plan.candidates.iter().zip(&plan.notes).enumerate() {
                if let Some(d) = deps.get(i) {
                    out.candidates.push(Candidate {
                        rank: rank + 1,
                        cloud: d.cloud.clone(),
                        target: d.target.clone(),
                        why: why.clone(),
                    });
                }
            }
            let mut header = plan.declined.clone();
            if let Some(first) = out.candidates.first() {
                header.push(Decision {
                    cloud: first.cloud.clone(),
                    outcome: Outcome::Ok,
                });
            }
            out.route_header = header_value(&header);
            plan.declined
        }
        Err(RouteError::UnknownModel { model, suggestions }) => {
            out.error = Some(ExplainError {
                status: 404,
                code: "model_not_found".into(),
                message: format!(
                    "unknown model `{model}`; closest: {}",
                    suggestions.join(", ")
                ),
            });
            vec![]
        }
        Err(RouteError::ModelNotAllowed { model, tenant }) => {
            out.error = Some(ExplainError {
                status: 403,
                code: "model_not_allowed".into(),
                message: format!("tenant `{tenant}` may not use model `{model}`"),
            });
            vec![]
        }
        Err(RouteError::NoCandidate {
            declined,
            forbidden,
        }) => {
            out.error = Some(if forbidden {
                ExplainError {
                    status: 403,
                    code: "policy_forbidden".into(),
                    message: "policy forbids every cloud".into(),
                }
            } else {
                ExplainError {
                    status: 503,
                    code: "no_cloud_available".into(),
                    message: "no cloud can serve this request now".into(),
                }
            });
            out.route_header = header_value(&declined);
            declined
        }
    };
    out.declined = declined
        .iter()
        .map(|d| Skipped {
            cloud: d.cloud.clone(),
            reason: match &d.outcome {
                Outcome::Declined(r) => r.as_label().to_string(),
                Outcome::Failed(r) | Outcome::Interrupted(r) => r.clone(),
                Outcome::Ok => "ok".into(),
                Outcome::OkAffine => "ok(cache_affinity)".into(),
                Outcome::Resumed => "resumed".into(),
            },
        })
        .collect();
    out
}

impl Explanation {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A plain-text table for humans.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "model {}  tenant {}  date {}  needs [{}]  strategy {}\n\n",
            self.model,
            self.tenant,
            self.date,
            self.needs.join(","),
            self.strategy
        );
        let cw = self
            .candidates
            .iter()
            .map(|c| c.cloud.len())
            .chain(self.declined.iter().map(|d| d.cloud.len()))
            .chain([5])
            .max()
            .unwrap_or(5);
        s.push_str(&format!(
            "{:<4} {:<cw$} {:<9} DETAIL\n",
            "#", "CLOUD", "DECISION"
        ));
        for c in &self.candidates {
            s.push_str(&format!(
                "{:<4} {:<cw$} {:<9} target {} — {}\n",
                c.rank, c.cloud, "try", c.target, c.why
            ));
        }
        for d in &self.declined {
            s.push_str(&format!(
                "{:<4} {:<cw$} {:<9} {}\n",
                "-", d.cloud, "declined", d.reason
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("\n=> {} {}: {}\n", e.status, e.code, e.message));
        }
        s.push_str(&format!("\nx-anycloud-route: {}\n", self.route_header));
        s
    }
}
