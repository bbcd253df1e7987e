//! Concentration: shares per cloud, per provider (the company that owns the cloud) and per
//! jurisdiction, and the Herfindahl–Hirschman index of the cost shares,
//! `Σ (100 × share_cost)²` (0–10,000), banded as competition authorities do: below 1,500
//! unconcentrated, 1,500–2,500 moderate, above 2,500 high.
//!
//! Pure: [`Tally`] sums rows as they stream past, [`Breakdown::from_tally`] turns the sums
//! into the JSON shape.

use anycloud_config::Config;
use anycloud_ledger::money::usd;
use anycloud_types::ProviderKind;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The company behind a provider kind. OpenAI-compatible endpoints can be anyone's
/// (vLLM on premises, a hosting company): `other`.
pub fn owner(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::AzureOpenai => "Azure",
        ProviderKind::Bedrock => "AWS",
        ProviderKind::Vertex => "Google",
        ProviderKind::Oci => "Oracle",
        ProviderKind::Anthropic => "Anthropic",
        ProviderKind::Openai => "OpenAI",
        ProviderKind::OpenaiCompatible => "other",
    }
}

/// Provider owner and jurisdiction per cloud name, from one config. A cloud the ledger
/// names but the config no longer has is `unknown` on both.
#[derive(Debug, Clone, Default)]
pub struct CloudFacts {
    by_cloud: HashMap<String, (&'static str, String)>,
}

impl CloudFacts {
    pub fn new(config: &Config) -> CloudFacts {
        let by_cloud = config
            .clouds
            .iter()
            .map(|c| {
                let j = c.jurisdiction.clone().unwrap_or_else(|| "unknown".into());
                (c.name.clone(), (owner(c.provider), j))
            })
            .collect();
        CloudFacts { by_cloud }
    }

    pub fn provider(&self, cloud: &str) -> &str {
        self.by_cloud.get(cloud).map_or("unknown", |f| f.0)
    }

    pub fn jurisdiction(&self, cloud: &str) -> &str {
        self.by_cloud.get(cloud).map_or("unknown", |f| f.1.as_str())
    }
}

/// Sums for one name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub tokens: u64,
    pub cost_nanos: i64,
}

impl Sums {
    pub fn add(&mut self, requests: u64, tokens: u64, cost_nanos: i64) {
        self.requests += requests;
        self.tokens += tokens;
        self.cost_nanos += cost_nanos;
    }
}

/// Running sums per cloud, provider and jurisdiction.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub cloud: BTreeMap<String, Sums>,
    pub provider: BTreeMap<String, Sums>,
    pub jurisdiction: BTreeMap<String, Sums>,
}

impl Tally {
    pub fn add(&mut self, facts: &CloudFacts, cloud: &str, requests: u64, tokens: u64, cost: i64) {
        let bump = |m: &mut BTreeMap<String, Sums>, k: &str| match m.get_mut(k) {
            Some(s) => s.add(requests, tokens, cost),
            None => {
                let mut s = Sums::default();
                s.add(requests, tokens, cost);
                m.insert(k.to_string(), s);
            }
        };
        bump(&mut self.cloud, cloud);
        bump(&mut self.provider, facts.provider(cloud));
        bump(&mut self.jurisdiction, facts.jurisdiction(cloud));
    }

    pub fn concentration(&self) -> Concentration {
        Concentration {
            cloud: Breakdown::from_sums(&self.cloud),
            provider: Breakdown::from_sums(&self.provider),
            jurisdiction: Breakdown::from_sums(&self.jurisdiction),
        }
    }
}

/// One name's share of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Fractions from 0 to 1.
    pub share_requests: f64,
    pub share_cost: f64,
}

/// `{hhi, band, entries}` for one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub hhi: f64,
    pub band: &'static str,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concentration {
    pub cloud: Breakdown,
    pub provider: Breakdown,
    pub jurisdiction: Breakdown,
}

/// The band of an HHI value.
pub fn band(hhi: f64) -> &'static str {
    if hhi < 1_500.0 {
        "unconcentrated"
    } else if hhi <= 2_500.0 {
        "moderate"
    } else {
        "high"
    }
}

fn fraction(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

/// Rounded to 1e-6 (fractions) or 0.01 (HHI) so JSON shows stable figures.
fn round_to(x: f64, step: f64) -> f64 {
    (x / step).round() * step
}

impl Breakdown {
    /// Entries sorted by cost, then requests, descending, then name. With no cost at all
    /// in the period (free deployments only) the index is taken over request shares, so a
    /// free-but-concentrated setup still shows as concentrated.
    pub fn from_sums(m: &BTreeMap<String, Sums>) -> Breakdown {
        let total_req: u64 = m.values().map(|s| s.requests).sum();
        let total_cost: i64 = m.values().map(|s| s.cost_nanos).sum();
        let mut entries: Vec<Entry> = m
            .iter()
            .map(|(name, s)| Entry {
                name: name.clone(),
                requests: s.requests,
                tokens: s.tokens,
                cost_usd: usd(s.cost_nanos),
                share_requests: fraction(s.requests as f64, total_req as f64),
                share_cost: fraction(s.cost_nanos as f64, total_cost as f64),
            })
            .collect();
        let hhi: f64 = entries
            .iter()
            .map(|e| {
                let share = if total_cost > 0 {
                    e.share_cost
                } else {
                    e.share_requests
                };
                (100.0 * share).powi(2)
            })
            .sum();
        let hhi = round_to(hhi, 0.01);
        for e in &mut entries {
            e.share_requests = round_to(e.share_requests, 1e-6);
            e.share_cost = round_to(e.share_cost, 1e-6);
        }
        entries.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then(b.requests.cmp(&a.requests))
                .then(a.name.cmp(&b.name))
        });
        Breakdown {
            hhi,
            band: band(hhi),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hhi_and_bands_by_hand() {
        let mut m = BTreeMap::new();
        m.insert(
            "a".to_string(),
            Sums {
                requests: 3,
                tokens: 30,
                cost_nanos: 750,
            },
        );
        m.insert(
            "b".to_string(),
            Sums {
                requests: 1,
                tokens: 10,
                cost_nanos: 250,
            },
        );
        let b = Breakdown::from_sums(&m);
        // 75² + 25² = 5625 + 625
        assert_eq!(b.hhi, 6250.0);
        assert_eq!(b.band, "high");
        assert_eq!(b.entries[0].name, "a");
        assert_eq!(b.entries[0].share_cost, 0.75);
        let even: BTreeMap<String, Sums> = (0..10)
            .map(|i| {
                (
                    format!("c{i}"),
                    Sums {
                        requests: 1,
                        tokens: 1,
                        cost_nanos: 1,
                    },
                )
            })
            .collect();
        let b = Breakdown::from_sums(&even);
        assert_eq!(b.hhi, 1000.0);
        assert_eq!(b.band, "unconcentrated");
        assert_eq!(band(1500.0), "moderate");
        assert_eq!(band(2500.0), "moderate");
        assert_eq!(band(2500.01), "high");
        assert_eq!(Breakdown::from_sums(&BTreeMap::new()).hhi, 0.0);
    }
}
