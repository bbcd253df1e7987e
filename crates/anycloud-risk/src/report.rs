//! The risk document: `anycloud risk` and `GET /admin/v1/risk` (README "Vendor risk").
//!
//! Concentration is over the ledger's records in the period (the same rows, and so the same
//! `requests` as `anycloud report`); single points of failure and the outage drill are over
//! the config as it stands, on `today`, through the real router.

use crate::concentration::{CloudFacts, Concentration, Tally};
use crate::eligibility::{self, Pair, Stranded};
use crate::{Period, RiskError};
use anycloud_config::Config;
use anycloud_ledger::accounting::start_of;
use anycloud_router::RoutingTable;
use anycloud_store::Store;
use chrono::NaiveDate;
use serde::Serialize;
use std::fmt::Write as _;

/// "If it went away today", for one cloud.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub cloud: String,
    /// The period's traffic and cost it carried (fractions from 0 to 1).
    pub share_requests: f64,
    pub share_cost: f64,
    /// Tenant × model pairs that would have no other eligible cloud.
    pub stranded: Vec<Stranded>,
}

/// One tenant × model the drained cloud serves today, before and after (`--without`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shift {
    pub tenant: String,
    pub model: String,
    pub clouds_before: Vec<String>,
    pub clouds_after: Vec<String>,
}

/// `anycloud risk --without CLOUD`: the drill for one cloud in detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    pub period: Period,
    pub cloud: String,
    pub requests: u64,
    pub cost_usd: f64,
    pub share_requests: f64,
    pub share_cost: f64,
    pub affected: Vec<Shift>,
    pub stranded: Vec<Stranded>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReport {
    pub period: Period,
    pub concentration: Concentration,
    pub single_points_of_failure: Vec<Pair>,
    pub outage: Vec<Outage>,
    /// Where each tenant's content lives, per jurisdiction. Reserved for the per-jurisdiction
    /// content stores (data residency): that work fills it; until then it is absent from
    /// the JSON and the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_residency: Option<serde_json::Value>,
}

/// Sums the period's ledger records per cloud, provider and jurisdiction.
pub async fn tally(store: &dyn Store, config: &Config, period: Period) -> Result<Tally, RiskError> {
    let facts = CloudFacts::new(config);
    let mut tally = Tally::default();
    for row in store
        .usage_summary(start_of(period.from), start_of(period.to))
        .await?
    {
        tally.add(
            &facts,
            &row.cloud,
            row.requests,
            row.input_tokens + row.output_tokens,
            row.cost_nanos,
        );
    }
    Ok(tally)
}

pub async fn build(
    store: &dyn Store,
    config: &Config,
    period: Period,
    today: NaiveDate,
) -> Result<RiskReport, RiskError> {
    let concentration = tally(store, config, period).await?.concentration();
    let table = RoutingTable::new(config);
    let pairs = eligibility::pairs(config, &table, today);
    let outage = config
        .clouds
        .iter()
        .map(|c| {
            let share = concentration
                .cloud
                .entries
                .iter()
                .find(|e| e.name == c.name);
            Outage {
                cloud: c.name.clone(),
                share_requests: share.map_or(0.0, |e| e.share_requests),
                share_cost: share.map_or(0.0, |e| e.share_cost),
                stranded: eligibility::stranded_by(config, &table, &pairs, &c.name, today),
            }
        })
        .collect();
    Ok(RiskReport {
        period,
        single_points_of_failure: eligibility::single_points_of_failure(&pairs),
        concentration,
        outage,
        content_residency: None,
    })
}

/// The drill for `cloud` alone (`--without CLOUD`); an unknown cloud is invalid.
pub async fn drill(
    store: &dyn Store,
    config: &Config,
    period: Period,
    today: NaiveDate,
    cloud: &str,
) -> Result<Drill, RiskError> {
    if !config.clouds.iter().any(|c| c.name == cloud) {
        let names: Vec<&str> = config.clouds.iter().map(|c| c.name.as_str()).collect();
        return Err(RiskError::Invalid(format!(
            "unknown cloud `{cloud}` (configured: {})",
            names.join(", ")
        )));
    }
    let concentration = tally(store, config, period).await?.concentration();
    let e = concentration.cloud.entries.iter().find(|e| e.name == cloud);
    let table = RoutingTable::new(config);
    let pairs = eligibility::pairs(config, &table, today);
    let without = drained_pairs(config, &table, today, cloud);
    let affected = pairs
        .iter()
        .filter(|p| p.clouds.iter().any(|c| c == cloud))
        .map(|p| Shift {
            tenant: p.tenant.clone(),
            model: p.model.clone(),
            clouds_before: p.clouds.clone(),
            clouds_after: without
                .iter()
                .find(|w| w.tenant == p.tenant && w.model == p.model)
                .map(|w| w.clouds.clone())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Drill {
        period,
        cloud: cloud.to_string(),
        requests: e.map_or(0, |e| e.requests),
        cost_usd: e.map_or(0.0, |e| e.cost_usd),
        share_requests: e.map_or(0.0, |e| e.share_requests),
        share_cost: e.map_or(0.0, |e| e.share_cost),
        stranded: eligibility::stranded_by(config, &table, &pairs, cloud, today),
        affected,
    })
}

fn drained_pairs(
    config: &Config,
    table: &RoutingTable,
    today: NaiveDate,
    cloud: &str,
) -> Vec<Pair> {
    eligibility::pairs_with_drained(config, table, today, Some(cloud))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                let _ = write!(line, "{c:<w$}  ", w = widths[i]);
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

impl RiskReport {
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Vendor risk {} to {} (to exclusive, UTC)\n",
            self.period.from, self.period.to
        );
        for (title, b) in [
            ("CLOUD", &self.concentration.cloud),
            ("PROVIDER", &self.concentration.provider),
            ("JURISDICTION", &self.concentration.jurisdiction),
        ] {
            let _ = write!(
                out,
                "\n{title} concentration: HHI {:.0} ({})\n",
                b.hhi, b.band
            );
            let mut rows = vec![vec![
                title.to_string(),
                "REQUESTS".into(),
                "TOKENS".into(),
                "COST_USD".into(),
                "SHARE_REQ".into(),
                "SHARE_COST".into(),
            ]];
            for e in &b.entries {
                rows.push(vec![
                    e.name.clone(),
                    e.requests.to_string(),
                    e.tokens.to_string(),
                    format!("{:.6}", e.cost_usd),
                    pct(e.share_requests),
                    pct(e.share_cost),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        out.push_str("\nSingle points of failure (one eligible cloud today)\n");
        if self.single_points_of_failure.is_empty() {
            out.push_str("none\n");
        } else {
            let mut rows = vec![vec!["TENANT".into(), "MODEL".into(), "ONLY_CLOUD".into()]];
            for p in &self.single_points_of_failure {
                rows.push(vec![p.tenant.clone(), p.model.clone(), list(&p.clouds)]);
            }
            out.push_str(&columns(&rows));
        }
        out.push_str("\nOutage drill (if the cloud went away today)\n");
        let mut rows = vec![vec![
            "CLOUD".into(),
            "SHARE_REQ".into(),
            "SHARE_COST".into(),
            "STRANDED (tenant/model)".into(),
        ]];
        for o in &self.outage {
            let stranded: Vec<String> = o
                .stranded
                .iter()
                .map(|s| format!("{}/{}", s.tenant, s.model))
                .collect();
            rows.push(vec![
                o.cloud.clone(),
                pct(o.share_requests),
                pct(o.share_cost),
                list(&stranded),
            ]);
        }
        out.push_str(&columns(&rows));
        out
    }
}

impl Drill {
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Outage drill: without {} ({} to {}, to exclusive)\n\
             It carried {} requests ({}) and {:.6} USD ({}) of the period.\n\n",
            self.cloud,
            self.period.from,
            self.period.to,
            self.requests,
            pct(self.share_requests),
            self.cost_usd,
            pct(self.share_cost),
        );
        let mut rows = vec![vec![
            "TENANT".into(),
            "MODEL".into(),
            "CLOUDS_NOW".into(),
            "CLOUDS_WITHOUT".into(),
        ]];
        for s in &self.affected {
            rows.push(vec![
                s.tenant.clone(),
                s.model.clone(),
                list(&s.clouds_before),
                if s.clouds_after.is_empty() {
                    "STRANDED".into()
                } else {
                    list(&s.clouds_after)
                },
            ]);
        }
        out.push_str(&columns(&rows));
        let _ = write!(
            out,
            "\n{} tenant/model pairs stranded\n",
            self.stranded.len()
        );
        out
    }
}
