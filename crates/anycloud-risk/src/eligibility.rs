//! Which clouds the real router lets serve each tenant × model on a date, from the config
//! alone (no live state): the basis of single points of failure and of the outage drill.
//!
//! "Eligible" means `route()` lists the cloud as a candidate for a request with no special
//! needs (capabilities are a property of the request, not of the contract). The drill
//! drains one cloud through [`CloudState`], exactly as the kill switch does: the agreements
//! still see its deployments, so a primary's outage does not undo what it has shipped.

use anycloud_config::{Config, TenantConfig};
use anycloud_router::{route, CloudState, NoSpend, RouteInput, RoutingTable};
use chrono::NaiveDate;
use serde::Serialize;

/// One cloud drained, every other healthy.
struct Drained<'a>(Option<&'a str>);

impl CloudState for Drained<'_> {
    fn is_drained(&self, cloud: &str) -> bool {
        self.0 == Some(cloud)
    }
    fn is_breaker_open(&self, _: &str) -> bool {
        false
    }
}

/// A tenant × model pair and the clouds eligible for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub tenant: String,
    pub model: String,
    pub clouds: Vec<String>,
}

/// `{tenant, model}` without clouds: a pair an outage strands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stranded {
    pub tenant: String,
    pub model: String,
}

fn eligible(
    table: &RoutingTable,
    tenant: &TenantConfig,
    model: &str,
    date: NaiveDate,
    drained: Option<&str>,
) -> Vec<String> {
    let input = RouteInput {
        model,
        tenant,
        needs: &[],
        date,
        estimated_tokens: 0,
        seed: 0,
        spend: &NoSpend,
    };
    let Ok(plan) = route(table, &input, &Drained(drained)) else {
        return Vec::new();
    };
    let deps = table.deployments(plan.model_index);
    let mut clouds: Vec<String> = Vec::new();
    for &i in &plan.candidates {
        if let Some(d) = deps.get(i) {
            if !clouds.contains(&d.cloud) {
                clouds.push(d.cloud.clone());
            }
        }
    }
    clouds
}

/// Every tenant × model the tenant may use, with the clouds eligible on `date`
/// (config order of tenants, then models).
pub fn pairs(config: &Config, table: &RoutingTable, date: NaiveDate) -> Vec<Pair> {
    pairs_with_drained(config, table, date, None)
}

/// [`pairs`] with `drained` unavailable (as if drained).
pub fn pairs_with_drained(
    config: &Config,
    table: &RoutingTable,
    date: NaiveDate,
    drained: Option<&str>,
) -> Vec<Pair> {
    let mut out = Vec::new();
    for t in &config.tenants {
        for m in &config.models {
            if t.models.as_ref().is_some_and(|ms| !ms.contains(&m.name)) {
                continue;
            }
            out.push(Pair {
                tenant: t.name.clone(),
                model: m.name.clone(),
                clouds: eligible(table, t, &m.name, date, drained),
            });
        }
    }
    out
}

/// Pairs left with exactly one eligible cloud.
pub fn single_points_of_failure(pairs: &[Pair]) -> Vec<Pair> {
    pairs
        .iter()
        .filter(|p| p.clouds.len() == 1)
        .cloned()
        .collect()
}

/// Pairs servable today that have no eligible cloud with `cloud` drained.
pub fn stranded_by(
    config: &Config,
    table: &RoutingTable,
    pairs: &[Pair],
    cloud: &str,
    date: NaiveDate,
) -> Vec<Stranded> {
    pairs
        .iter()
        .filter(|p| p.clouds.iter().any(|c| c == cloud))
        .filter(|p| {
            config
                .tenants
                .iter()
                .find(|t| t.name == p.tenant)
                .is_some_and(|t| eligible(table, t, &p.model, date, Some(cloud)).is_empty())
        })
        .map(|p| Stranded {
            tenant: p.tenant.clone(),
            model: p.model.clone(),
        })
        .collect()
}
