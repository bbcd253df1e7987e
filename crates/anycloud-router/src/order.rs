//! Step 6 of the routing checks (README "Routing"): the order in which eligible deployments are
//! tried. The primary goes first whenever it is eligible (first look); the
//! rest follow the configured [`Strategy`]:
//!
//! - `priority`: config order.
//! - `weighted`: a weighted random draw without replacement
//!   (Efraimidis–Spirakis: key `u^(1/w)`, highest first), seeded from the
//!   input so a plan is reproducible; weight 0 sorts last.
//! - `latency`: lowest EWMA of time to first byte first. An unmeasured cloud
//!   counts as 0 ms and so is tried first: that is how a new or recovered
//!   cloud gets measured at all (otherwise it would never be picked).
//! - `cost`: cheapest first, by `input_per_mtok + output_per_mtok` (the
//!   request's input/output split is not known before the answer, so both
//!   prices weigh the same).
//! - `commitment`: the cloud furthest behind its committed-spend schedule
//!   first. Behind = `amount × elapsed days / total days − spent so far`,
//!   for commitments active on the request's date; clouds without an active
//!   commitment come after every committed one, in config order.
//!
//! Ties keep config order (every sort is stable).

use crate::table::{Deployment, RoutingTable};
use crate::{CloudState, RouteInput};
use anycloud_config::Strategy;
use chrono::Days;
use rand::{Rng, SeedableRng};

/// Orders `eligible` (indices into `deployments`); returns the order and a
/// note per candidate saying why it sits there.
pub fn order(
    table: &RoutingTable,
    deployments: &[Deployment],
    eligible: Vec<usize>,
    input: &RouteInput<'_>,
    state: &dyn CloudState,
) -> (Vec<usize>, Vec<String>) {
    let primary = table.primary.as_ref().map(|p| p.cloud.as_str());
    let cloud = |i: usize| deployments.get(i).map(|d| d.cloud.as_str()).unwrap_or("");
    let (first, rest): (Vec<usize>, Vec<usize>) = eligible
        .into_iter()
        .partition(|&i| primary == Some(cloud(i)));
    let mut scored: Vec<(usize, f64, String)> = match table.strategy {
        Strategy::Priority => rest
            .into_iter()
            .enumerate()
            .map(|(n, i)| (i, n as f64, format!("priority {}", n + 1)))
            .collect(),
        Strategy::Weighted => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(input.seed);
            rest.into_iter()
                .map(|i| {
                    let w = deployments.get(i).map_or(0, |d| d.weight);
                    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    let key = if w == 0 {
                        0.0
                    } else {
                        u.powf(1.0 / f64::from(w))
                    };
                    // Sort ascending below, so negate.
                    (i, -key, format!("weight {w}"))
                })
                .collect()
        }
        Strategy::Latency => rest
            .into_iter()
            .map(|i| match state.latency_ms(cloud(i)) {
                Some(ms) => (i, ms, format!("ewma {ms:.0} ms")),
                None => (i, 0.0, "ewma unmeasured (tried first)".to_string()),
            })
            .collect(),
        Strategy::Cost => rest
            .into_iter()
            .map(|i| {
                let p = deployments.get(i).map(|d| d.price).unwrap_or_default();
                let per_mtok = p.input_per_mtok + p.output_per_mtok;
                let est = per_mtok * input.estimated_tokens as f64 / 1_000_000.0;
                (
                    i,
                    per_mtok,
                    format!("${per_mtok:.2}/mtok in+out (~${est:.6} this request)"),
                )
            })
            .collect(),
        Strategy::Commitment => rest
            .into_iter()
            .map(|i| match shortfall(table, cloud(i), input) {
                Some(s) => (i, -s, format!("${s:.2} behind commitment")),
                None => (i, f64::INFINITY, "no active commitment".to_string()),
            })
            .collect(),
    };
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut order = Vec::with_capacity(first.len() + scored.len());
    let mut notes = Vec::with_capacity(order.capacity());
    for i in first {
        order.push(i);
        notes.push("primary (first look)".to_string());
    }
    for (i, _, note) in scored {
        order.push(i);
        notes.push(note);
    }
    (order, notes)
}

/// The note of a candidate that cache affinity moved ahead; the request's route shows
/// `cloud:ok(cache_affinity)` when that candidate served it.
pub const CACHE_AFFINITY: &str = "cache_affinity";

/// Moves the deployment `affinity` names to the front of the candidates the strategy
/// ordered (README "Prompt caching"), noting it [`CACHE_AFFINITY`] — but only among the
/// candidates the checks already allowed (a drained cloud, an open breaker, an agreement
/// or a tenant's policy has removed it before this), behind the primary's first look, and
/// never under the `commitment` strategy, whose order is what the agreement demands.
/// Nothing changes when the strategy already put it first.
pub fn prefer_affine(
    table: &RoutingTable,
    deployments: &[Deployment],
    candidates: &mut Vec<usize>,
    notes: &mut Vec<String>,
    affinity: crate::CacheAffinity<'_>,
) {
    if table.strategy == Strategy::Commitment {
        return;
    }
    let primary = table.primary.as_ref().map(|p| p.cloud.as_str());
    let cloud = |i: usize| deployments.get(i).map(|d| d.cloud.as_str());
    let first_look = candidates
        .iter()
        .take_while(|&&i| primary.is_some() && cloud(i) == primary)
        .count();
    let Some(at) = candidates.iter().position(|&i| {
        deployments
            .get(i)
            .is_some_and(|d| d.cloud == affinity.cloud && d.target == affinity.target)
    }) else {
        return;
    };
    if at <= first_look {
        return;
    }
    let i = candidates.remove(at);
    notes.remove(at);
    candidates.insert(first_look, i);
    notes.insert(first_look, CACHE_AFFINITY.to_string());
}

/// How far `cloud` is behind its commitment schedule on the request's date
/// (negative = ahead), or `None` without an active commitment.
fn shortfall(table: &RoutingTable, cloud: &str, input: &RouteInput<'_>) -> Option<f64> {
    let date = input.date;
    let mut total = None;
    for c in &table.commitments {
        if c.cloud != cloud || date < c.from || date >= c.to {
            continue;
        }
        let days = (c.to - c.from).num_days().max(1) as f64;
        let elapsed = ((date - c.from).num_days() + 1) as f64;
        let expected = c.amount_usd * (elapsed / days).min(1.0);
        let until = date.checked_add_days(Days::new(1)).unwrap_or(date);
        let spent = input.spend.spent_usd(cloud, c.from, until);
        *total.get_or_insert(0.0) += expected - spent;
    }
    total
}
