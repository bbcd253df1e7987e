//! The routing table compiled once from config, so the request path does no
//! config lookups by string beyond one model-name hash.

use anycloud_config::{Config, Price};
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
}

#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    names: Vec<String>,
    index: HashMap<String, usize>,
    deployments: Vec<Vec<Deployment>>,
}

impl RoutingTable {
    pub fn new(config: &Config) -> RoutingTable {
        let mut t = RoutingTable::default();
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
                    })
                })
                .collect();
            t.index.insert(m.name.clone(), t.names.len());
            t.names.push(m.name.clone());
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
    pub fn suggest(&self, model: &str) -> Vec<String> {
        let mut scored: Vec<(f64, &String)> = self
            .names
            .iter()
            .map(|n| (strsim::jaro_winkler(model, n), n))
            .filter(|(s, _)| *s > 0.6)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }
}
