//! The ledger report (README "Ledger and reports": `anycloud report` and its JSON shape): spend per cloud,
//! model and tenant over `[from, to)`, revenue share accrued and remaining to cap, and
//! commitment burn-down. The CLI and `GET /admin/v1/ledger/report` build the same
//! [`Report`] and render it with [`Report::render`].
//!
//! Aggregation happens in SQL: the period is read one chunk of days at a time as rows
//! already summed per (day, cloud, model, tenant), so even ten million records leave
//! SQLite as a few hundred rows; the chunks drive the CLI's progress bar.

use std::collections::BTreeMap;

use anycloud_config::AgreementsConfig;
use anycloud_store::{Store, UsageSummaryRow};
use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

use crate::accounting::{self, start_of, CommitmentStatus, RevenueShareStatus};
use crate::money::usd;
use crate::LedgerError;

/// Which breakdowns a report shows (`--group-by cloud,model,tenant`; all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub cloud: bool,
    pub model: bool,
    pub tenant: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            cloud: true,
            model: true,
            tenant: true,
        }
    }
}

impl GroupBy {
    /// Parses `cloud,model,tenant` (any subset, any order).
    pub fn parse(s: &str) -> Result<GroupBy, LedgerError> {
        let mut g = GroupBy {
            cloud: false,
            model: false,
            tenant: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "cloud" => g.cloud = true,
                "model" => g.model = true,
                "tenant" => g.tenant = true,
                other => {
                    return Err(LedgerError::Invalid(format!(
                        "unknown group `{other}` (expected cloud, model, tenant)"
                    )))
                }
            }
        }
        if !(g.cloud || g.model || g.tenant) {
            return Err(LedgerError::Invalid(
                "group_by names no group (expected cloud, model, tenant)".into(),
            ));
        }
        Ok(g)
    }
}

/// `--format table|csv|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Table,
    Csv,
    Json,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Result<ReportFormat, LedgerError> {
        match s {
            "table" => Ok(ReportFormat::Table),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            other => Err(LedgerError::Invalid(format!(
                "unknown format `{other}` (expected table, csv, json)"
            ))),
        }
    }
}

/// What to report on: `[from, to)` in UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    /// "Now", for as-of figures (days left, projections); tests pin it.
    pub today: NaiveDate,
}

/// Sums for one cloud, model or tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: i64,
    /// What caching saved (README "Prompt caching"): the same tokens uncached, less the cost.
    pub cache_saved_nanos: i64,
}

impl Totals {
    fn add(&mut self, r: &UsageSummaryRow) {
        self.requests += r.requests;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cached_tokens += r.cached_tokens;
        self.cache_write_tokens += r.cache_write_tokens;
        self.reasoning_tokens += r.reasoning_tokens;
        self.cost_nanos += r.cost_nanos;
        self.cache_saved_nanos += r.cache_saved_nanos;
    }

    /// The share of prompt tokens read from a cache (0 with no input).
    pub fn cache_hit_ratio(&self) -> f64 {
        if self.input_tokens == 0 {
            0.0
        } else {
            self.cached_tokens as f64 / self.input_tokens as f64
        }
    }

    fn json(&self, key: &str, name: &str) -> Value {
        json!({
            key: name,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_hit_ratio": self.cache_hit_ratio(),
            "cost_usd": usd(self.cost_nanos),
            "saved_by_caching_usd": usd(self.cache_saved_nanos),
        })
    }
}

/// The report. Group maps are ordered by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub total: Totals,
    pub clouds: BTreeMap<String, Totals>,
    pub models: BTreeMap<String, Totals>,
    pub tenants: BTreeMap<String, Totals>,
    pub revenue_share: Vec<RevenueShareStatus>,
    pub commitments: Vec<CommitmentStatus>,
}

/// Days per summary query: one day keeps each query a short index range and gives the
/// progress bar steps; very long ranges use longer chunks so there are at most ~400.
fn chunk_days(from: NaiveDate, to: NaiveDate) -> u64 {
    let days = u64::try_from((to - from).num_days()).unwrap_or(1);
    days.div_ceil(400).max(1)
}

/// The number of progress steps [`build`] reports for `req`.
pub fn progress_steps(req: &ReportRequest, agreements: &AgreementsConfig) -> u64 {
    let days = u64::try_from((req.to - req.from).num_days()).unwrap_or(0);
    days.div_ceil(chunk_days(req.from, req.to))
        + (agreements.revenue_share.len() + agreements.commitment.len()) as u64
}

/// Builds the report; `progress` is called after each step with (done, total).
pub async fn build(
    store: &dyn Store,
    agreements: &AgreementsConfig,
    req: &ReportRequest,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Report, LedgerError> {
    if req.from >= req.to {
        return Err(LedgerError::Invalid(format!(
            "empty range: from {} must be before to {} (to is exclusive)",
            req.from, req.to
        )));
    }
    let steps = progress_steps(req, agreements);
    let mut done = 0;
    let mut report = Report {
        from: req.from,
        to: req.to,
        group_by: req.group_by,
        total: Totals::default(),
        clouds: BTreeMap::new(),
        models: BTreeMap::new(),
        tenants: BTreeMap::new(),
        revenue_share: Vec::new(),
        commitments: Vec::new(),
    };
    let step = chunk_days(req.from, req.to);
    let mut day = req.from;
    while day < req.to {
        let next = day
            .checked_add_days(Days::new(step))
            .unwrap_or(req.to)
            .min(req.to);
        for row in store.usage_summary(start_of(day), start_of(next)).await? {
            report.total.add(&row);
            if req.group_by.cloud {
                report
                    .clouds
                    .entry(row.cloud.clone())
                    .or_default()
                    .add(&row);
            }
            if req.group_by.model {
                report
                    .models
                    .entry(row.model.clone())
                    .or_default()
                    .add(&row);
            }
            if req.group_by.tenant {
                report
                    .tenants
                    .entry(row.tenant.clone())
                    .or_default()
                    .add(&row);
            }
        }
        done += 1;
        progress(done, steps);
        day = next;
    }
    for rs in &agreements.revenue_share {
        let s = accounting::revenue_share(store, rs, req.from, req.to, req.today).await?;
        report.revenue_share.push(s);
        done += 1;
        progress(done, steps);
    }
    for c in &agreements.commitment {
        let s = accounting::commitment(store, c, req.to, req.today).await?;
        report.commitments.push(s);
        done += 1;
        progress(done, steps);
    }
    Ok(report)
}

impl Report {
    /// The report's JSON document (README "Ledger and reports") (plus `total`, and `cap_projected_on` /
    /// `accrued_to_date_usd` on revenue share, and `from`/`to` on commitments).
    pub fn to_json(&self) -> Value {
        let group = |m: &BTreeMap<String, Totals>, key: &str| -> Vec<Value> {
            m.iter().map(|(name, t)| t.json(key, name)).collect()
        };
        json!({
            "from": self.from,
            "to": self.to,
            "total": self.total.json("scope", "all"),
            "clouds": group(&self.clouds, "cloud"),
            "models": group(&self.models, "model"),
            "tenants": group(&self.tenants, "tenant"),
            "revenue_share": self.revenue_share,
            "commitments": self.commitments,
        })
    }

    /// Renders in `format`. JSON is one document on one line with a trailing newline.
    pub fn render(&self, format: ReportFormat) -> Result<String, LedgerError> {
        match format {
            ReportFormat::Json => Ok(format!("{}\n", self.to_json())),
            ReportFormat::Csv => crate::render::csv(self),
            ReportFormat::Table => Ok(crate::render::table(self)),
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
