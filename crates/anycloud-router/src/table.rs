//! The routing table compiled once from config, so the request path does no
//! config lookups by string beyond one model-name hash. It holds the
//! deployments per model and the agreements that bind routing (primary,
//! ship-first, exclusivity, commitments) plus the ordering strategy.

use anycloud_config::{Config, Price, Strategy};
use anycloud_types::{Capability, ProviderKind};
use chrono::NaiveDate;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Deployment {
    pub cloud: String,
    pub provider: ProviderKind,
    pub target: String,
    pub jurisdiction: Option<String>,
    pub capabilities: Vec<Capability>,
    pub price: Price,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub weight: u32,
    pub context_window: Option<u64>,
    /// `prompt_cache = "auto"`: the gateway marks cacheable prefixes (README "Prompt
    /// caching").
    pub prompt_cache: anycloud_config::PromptCacheMode,
}

impl Deployment {
    /// Whether the deployment's validity window contains `date` (bounds
    /// inclusive; a missing bound is open).
    pub fn valid_on(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| date >= f) && self.valid_until.is_none_or(|u| date <= u)
    }

    /// Whether the deployment had started on `date` (`valid_from` on or
    /// before it, or no `valid_from`), whether or not it has since ended.
    pub fn started_on(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| date >= f)
    }
}

/// `[agreements.primary]`: first look, and optionally ship-first.
#[derive(Debug, Clone, Default)]
pub struct Primary {
    pub cloud: String,
    pub ship_first: bool,
    pub declined_models: Vec<String>,
}

/// `[[agreements.exclusive]]`: `model` runs only on `cloud` while active.
#[derive(Debug, Clone)]
pub struct Exclusive {
    pub model: String,
    pub cloud: String,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl Exclusive {
    pub fn active_on(&self, date: NaiveDate) -> bool {
        self.from.is_none_or(|f| date >= f) && self.until.is_none_or(|u| date <= u)
    }
}

/// `[[agreements.commitment]]`: spend `amount_usd` on `cloud` in
/// `[from, to)`.
#[derive(Debug, Clone)]
pub struct Commitment {
    pub cloud: String,
    pub amount_usd: f64,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    names: Vec<String>,
    index: HashMap<String, usize>,
    deployments: Vec<Vec<Deployment>>,
    pub strategy: Strategy,
    pub primary: Option<Primary>,
    pub exclusive: Vec<Exclusive>,
    pub commitments: Vec<Commitment>,
}

impl RoutingTable {
    pub fn new(config: &Config) -> RoutingTable {
        let mut t = RoutingTable {
            strategy: config.routing.strategy,
            ..RoutingTable::default()
        };
        for m in &config.models {
            let deps = m
                .deployments
                .iter()
                .filter_map(|d| {
                    let cloud = config.clouds.iter().find(|c| c.name == d.cloud)?;
                    Some(Deployment {
                        cloud: d.cloud.clone(),
                        provider: cloud.provider,
                        target: d.target.clone(),
                        jurisdiction: cloud.jurisdiction.clone(),
                        capabilities: d.capabilities.clone(),
                        price: d.price,
                        valid_from: d.valid_from,
                        valid_until: d.valid_until,
                        weight: d.weight,
                        context_window: d.context_window,
                        prompt_cache: d.prompt_cache,
                    })
                })
                .collect();
            t.index.insert(m.name.clone(), t.names.len());
            t.names.push(m.name.clone());
            t.deployments.push(deps);
        }
        let a = &config.agreements;
        t.primary = a.primary.as_ref().map(|p| Primary {
            cloud: p.cloud.clone(),
            ship_first: p.ship_first,
            declined_models: p.declined_models.clone(),
        });
        t.exclusive = a
            .exclusive
            .iter()
            .map(|e| Exclusive {
                model: e.model.clone(),
                cloud: e.cloud.clone(),
                from: e.from,
                until: e.until,
            })
            .collect();
        t.commitments = a
            .commitment
            .iter()
            .map(|c| Commitment {
                cloud: c.cloud.clone(),
                amount_usd: c.amount_usd,
                from: c.from,
                to: c.to,
            })
            .collect();
        t
    }

    /// A table built directly from parts (property tests, tools).
    pub fn from_parts(models: Vec<(String, Vec<Deployment>)>) -> RoutingTable {
        let mut t = RoutingTable::default();
        for (name, deps) in models {
            t.index.insert(name.clone(), t.names.len());
            t.names.push(name);
            t.deployments.push(deps);
        }
        t
    }

    pub fn model_index(&self, model: &str) -> Option<usize> {
        self.index.get(model).copied()
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    pub fn deployments(&self, model_index: usize) -> &[Deployment] {
        self.deployments
            .get(model_index)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Up to three configured names closest to `model`.
    /// Close names for an unknown `model`, only among those the tenant may use
    /// (`allowed`, when it has an allow-list): a 404 must not name other tenants' models.
    pub fn suggest(&self, model: &str, allowed: Option<&[String]>) -> Vec<String> {
        let mut scored: Vec<(f64, &String)> = self
            .names
            .iter()
            .filter(|n| allowed.is_none_or(|a| a.contains(n)))
            .map(|n| (strsim::jaro_winkler(model, n), n))
            .filter(|(s, _)| *s > 0.6)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }

    /// The cloud holding an exclusive on `model` on `date`, if any.
    pub fn exclusive_holder(&self, model: &str, date: NaiveDate) -> Option<&str> {
        self.exclusive
            .iter()
            .find(|e| e.model == model && e.active_on(date))
            .map(|e| e.cloud.as_str())
    }

    /// Whether the primary declined `model` (`declined_models`).
    pub fn primary_declined(&self, model: &str) -> bool {
        self.primary
            .as_ref()
            .is_some_and(|p| p.declined_models.iter().any(|m| m == model))
    }

    /// Ship-first (README "Routing"): when the primary has
    /// `ship_first`, a model may run on another cloud only once the primary
    /// has *shipped* it — it has a deployment of the model whose `valid_from`
    /// is on or before the request's date (or has none) — or has *declined*
    /// it (`declined_models`). The end of the primary's window does not hold
    /// the others back again: once shipped, the model stays released (the
    /// expired primary deployment is skipped as `outside_window`). Tenant
    /// policy, capabilities and health of the primary's deployment do not
    /// matter here either: if the primary cannot take this particular
    /// request, that is its right of first refusal being used. Returns true
    /// when other clouds are held back for `model` on `date`.
    pub fn ship_first_blocks(&self, model_index: usize, model: &str, date: NaiveDate) -> bool {
        let Some(p) = &self.primary else {
            return false;
        };
        if !p.ship_first || self.primary_declined(model) {
            return false;
        }
        !self
            .deployments(model_index)
            .iter()
            .any(|d| d.cloud == p.cloud && d.started_on(date))
    }
}
