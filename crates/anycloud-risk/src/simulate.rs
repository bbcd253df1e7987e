//! What-if replay (README "Vendor risk"): every request the ledger served in a period — its
//! time, tenant, model, token counts and the capabilities the router checked — replayed
//! through the router and prices of a candidate config with every cloud healthy, reported
//! side by side with what actually happened.
//!
//! Pure and streaming: rows arrive in pages of [`PAGE`] from
//! [`anycloud_store::Store::served_usage`], each is routed with `route()` (no cloud is
//! called) and folded into running sums; memory holds the sums, one page and the per-day
//! spend per cloud (for commitments and revenue share), never the period.
//!
//! Rows written before the ledger recorded needs replay as plain chat (`needs = [chat]`,
//! estimate = the row's input + output tokens) and are counted in `replayed_as_plain_chat`.
//! Agreements accounting on both sides covers the replayed period only (spend before
//! `from` is not seen by either), so the two columns compare like with like.

use crate::concentration::{CloudFacts, Tally};
use crate::{Period, RiskError};
use anycloud_config::{Config, TenantConfig};
use anycloud_ledger::accounting::{
    commitment_from_daily, revenue_share_from_daily, start_of, CommitmentStatus, RevenueShareStatus,
};
use anycloud_ledger::money::{cost_nanos, usd};
use anycloud_router::{
    route, NoState, Outcome, Reason, RouteError, RouteInput, RoutingTable, SpendSource,
};
use anycloud_store::{DailyCost, Store, UsageRecord};
use anycloud_types::{Capability, Usage};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Rows per page read from the store.
pub const PAGE: u32 = 5_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudLine {
    pub name: String,
    pub requests: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    pub reason: String,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hhi {
    pub cloud: f64,
    pub provider: f64,
    pub jurisdiction: f64,
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub by_cloud: Vec<CloudLine>,
    pub refused: Vec<Refused>,
    pub hhi: Hhi,
    pub commitments: Vec<CommitmentStatus>,
    pub revenue_share: Vec<RevenueShareStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub period: Period,
    pub replayed: u64,
    pub replayed_as_plain_chat: u64,
    pub actual: Side,
    pub candidate: Side,
}

/// Spend per cloud per day, in nano-dollars: the candidate's running spend feeds its
/// `commitment` strategy during the replay, and both sides' accounting at the end.
#[derive(Debug, Default)]
struct Spend {
    daily: HashMap<String, BTreeMap<NaiveDate, i64>>,
}

impl Spend {
    fn add(&mut self, cloud: &str, day: NaiveDate, nanos: i64) {
        let days = match self.daily.get_mut(cloud) {
            Some(d) => d,
            None => self.daily.entry(cloud.to_string()).or_default(),
        };
        *days.entry(day).or_insert(0) += nanos;
    }

    fn days(&self, cloud: &str) -> Vec<DailyCost> {
        self.daily
            .get(cloud)
            .map(|m| {
                m.iter()
                    .map(|(&day, &cost_nanos)| DailyCost { day, cost_nanos })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl SpendSource for Spend {
    fn spent_usd(&self, cloud: &str, from: NaiveDate, to: NaiveDate) -> f64 {
        let nanos: i64 = self
            .daily
            .get(cloud)
            .map(|m| m.range(from..to).map(|(_, c)| *c).sum())
            .unwrap_or(0);
        usd(nanos)
    }
}

/// Running sums of one side.
#[derive(Debug, Default)]
struct Acc {
    tally: Tally,
    refused: BTreeMap<String, u64>,
    spend: Spend,
}

impl Acc {
    fn finish(self, config: &Config, period: Period, today: NaiveDate) -> Side {
        let c = self.tally.concentration();
        let by_cloud = self
            .tally
            .cloud
            .iter()
            .map(|(name, s)| CloudLine {
                name: name.clone(),
                requests: s.requests,
                cost_usd: usd(s.cost_nanos),
            })
            .collect();
        let a = &config.agreements;
        Side {
            by_cloud,
            refused: self
                .refused
                .into_iter()
                .map(|(reason, requests)| Refused { reason, requests })
                .collect(),
            hhi: Hhi {
                cloud: c.cloud.hhi,
                provider: c.provider.hhi,
                jurisdiction: c.jurisdiction.hhi,
            },
            commitments: a
                .commitment
                .iter()
                .map(|x| commitment_from_daily(x, &self.spend.days(&x.cloud), period.to, today))
                .collect(),
            revenue_share: a
                .revenue_share
                .iter()
                .map(|x| {
                    revenue_share_from_daily(
                        x,
                        &self.spend.days(&x.party),
                        period.from,
                        period.to,
                        today,
                    )
                })
                .collect(),
        }
    }
}

/// How far down the checks of README "Routing" a reason sits: the deployment that got
/// furthest says what finally stopped the request.
fn depth(r: Reason) -> u8 {
    match r {
        Reason::NotDeployed => 0,
        Reason::TenantCloud => 1,
        Reason::Jurisdiction => 2,
        Reason::DeclinedByPrimary => 3,
        Reason::ExclusiveElsewhere => 4,
        Reason::OutsideWindow => 5,
        Reason::ShipFirst => 6,
        Reason::Capability(_) | Reason::ContextLength => 7,
        Reason::Drained | Reason::BreakerOpen => 8,
    }
}

/// The refusal reason as reported: capabilities grouped as `capability`, exclusivity as
/// `exclusivity`, the rest by their reason code.
fn refusal(e: &RouteError) -> String {
    match e {
        RouteError::UnknownModel { .. } => "unknown_model".into(),
        RouteError::ModelNotAllowed { .. } => "model_not_allowed".into(),
        RouteError::NoCandidate { declined, .. } => {
            let deepest = declined
                .iter()
                .filter_map(|d| match d.outcome {
                    Outcome::Declined(r) => Some(r),
                    _ => None,
                })
                .max_by_key(|r| depth(*r));
            match deepest {
                Some(Reason::Capability(_) | Reason::ContextLength) => "capability".into(),
                Some(Reason::ExclusiveElsewhere) => "exclusivity".into(),
                Some(r) => r.as_label().into(),
                None => "not_deployed".into(),
            }
        }
    }
}

/// FNV-1a of the request id: the `weighted` strategy's seed, so a replay is reproducible.
fn seed(request_id: &str) -> u64 {
    request_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The candidate side's routing, compiled once.
struct Candidate<'a> {
    config: &'a Config,
    table: RoutingTable,
    tenants: HashMap<&'a str, &'a TenantConfig>,
    facts: CloudFacts,
}

/// Replays `period` of the ledger under `candidate`; `actual` gives the actual side's
/// agreements and cloud facts. `progress` is called with the rows replayed so far.
pub async fn simulate(
    store: &dyn Store,
    actual: &Config,
    candidate: &Config,
    period: Period,
    today: NaiveDate,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Simulation, RiskError> {
    let cand = Candidate {
        config: candidate,
        table: RoutingTable::new(candidate),
        tenants: candidate
            .tenants
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
        facts: CloudFacts::new(candidate),
    };
    let actual_facts = CloudFacts::new(actual);
    let (mut a, mut c) = (Acc::default(), Acc::default());
    let (mut replayed, mut plain) = (0u64, 0u64);
    let mut after = None;
    loop {
        let page = store
            .served_usage(start_of(period.from), start_of(period.to), after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        for (_, r) in &page {
            replayed += 1;
            let tokens = r.input_tokens + r.output_tokens;
            let day = r.at.date_naive();
            a.tally
                .add(&actual_facts, &r.cloud, 1, tokens, r.cost_nanos);
            a.spend.add(&r.cloud, day, r.cost_nanos);
            if r.needs.is_none() {
                plain += 1;
            }
            replay_one(&cand, r, &mut c);
        }
        progress(replayed);
    }
    Ok(Simulation {
        period,
        replayed,
        replayed_as_plain_chat: plain,
        actual: a.finish(actual, period, today),
        candidate: c.finish(cand.config, period, today),
    })
}

fn replay_one(cand: &Candidate<'_>, r: &UsageRecord, acc: &mut Acc) {
    let needs: Vec<Capability> = match &r.needs {
        Some(n) => n.iter().filter_map(|s| Capability::parse(s)).collect(),
        None => vec![Capability::Chat],
    };
    let Some(tenant) = cand.tenants.get(r.tenant.as_str()) else {
        *acc.refused.entry("unknown_tenant".into()).or_insert(0) += 1;
        return;
    };
    let day = r.at.date_naive();
    let input = RouteInput {
        model: &r.model,
        tenant,
        needs: &needs,
        date: day,
        estimated_tokens: r
            .estimated_tokens
            .unwrap_or(r.input_tokens + r.output_tokens),
        seed: seed(&r.request_id),
        spend: &acc.spend,
    };
    let chosen = match route(&cand.table, &input, &NoState) {
        Ok(plan) => plan
            .candidates
            .first()
            .and_then(|&i| cand.table.deployments(plan.model_index).get(i))
            .map(|d| (d.cloud.clone(), d.price)),
        Err(e) => {
            *acc.refused.entry(refusal(&e)).or_insert(0) += 1;
            return;
        }
    };
    if let Some((cloud, price)) = chosen {
        let usage = Usage {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_input_tokens: r.cached_tokens,
            ..Usage::default()
        };
        let cost = cost_nanos(&price, &usage);
        acc.tally.add(
            &cand.facts,
            &cloud,
            1,
            r.input_tokens + r.output_tokens,
            cost,
        );
        acc.spend.add(&cloud, day, cost);
    }
}

fn money(x: f64) -> String {
    format!("{x:.6}")
}

impl Simulation {
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "Simulation {} to {} (to exclusive): {} served requests replayed ({} as plain chat)\n\n",
            self.period.from, self.period.to, self.replayed, self.replayed_as_plain_chat
        );
        let mut names: Vec<&str> = self
            .actual
            .by_cloud
            .iter()
            .chain(&self.candidate.by_cloud)
            .map(|l| l.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let line = |s: &Side, n: &str| {
            s.by_cloud
                .iter()
                .find(|l| l.name == n)
                .map_or((0, 0.0), |l| (l.requests, l.cost_usd))
        };
        let mut rows = vec![vec![
            "CLOUD".to_string(),
            "ACTUAL_REQ".into(),
            "ACTUAL_USD".into(),
            "CANDIDATE_REQ".into(),
            "CANDIDATE_USD".into(),
        ]];
        for n in names {
            let (ar, ac) = line(&self.actual, n);
            let (cr, cc) = line(&self.candidate, n);
            rows.push(vec![
                n.into(),
                ar.to_string(),
                money(ac),
                cr.to_string(),
                money(cc),
            ]);
        }
        out.push_str(&crate::report::columns(&rows));
        out.push_str("\nRefused by the candidate\n");
        if self.candidate.refused.is_empty() {
            out.push_str("none\n");
        }
        for r in &self.candidate.refused {
            let _ = writeln!(out, "  {:<20} {}", r.reason, r.requests);
        }
        let (a, c) = (&self.actual.hhi, &self.candidate.hhi);
        let _ = write!(
            out,
            "\nHHI          ACTUAL  CANDIDATE\ncloud        {:>6.0}  {:>9.0}\nprovider     {:>6.0}  {:>9.0}\njurisdiction {:>6.0}  {:>9.0}\n",
            a.cloud, c.cloud, a.provider, c.provider, a.jurisdiction, c.jurisdiction
        );
        for (title, side) in [("actual", &self.actual), ("candidate", &self.candidate)] {
            for x in &side.commitments {
                let _ = writeln!(
                    out,
                    "commitment {} ({title}): spent {} of {} USD, on track: {}",
                    x.cloud,
                    money(x.spent_usd),
                    x.amount_usd,
                    x.on_track
                );
            }
            for x in &side.revenue_share {
                let _ = writeln!(
                    out,
                    "revenue share {} ({title}): billed {} accrued {} USD",
                    x.party,
                    money(x.billed_usd),
                    money(x.accrued_usd)
                );
            }
        }
        out
    }
}
