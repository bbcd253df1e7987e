//! Agreements accounting (README "Ledger and reports"): revenue share accrued per party and
//! commitment burn-down per cloud, from the ledger's daily spend per cloud.
//!
//! The arithmetic is pure (functions of daily costs and dates, in nano-dollars) so tests
//! check hand-computed figures; [`revenue_share`] and [`commitment`] then read the store.
//! [`spent_usd`] / [`spent_nanos`] are what the routing engine's `commitment` strategy
//! reads, so routing and reports agree on the same figures.
//!
//! Date conventions: agreement dates are inclusive days (`until = 2030-12-31` covers that
//! whole day; a commitment `from`/`to` covers both days), UTC. Report ranges are
//! `[from, to)`. Figures are "as of" `min(report to, tomorrow)`: data after now does not
//! exist yet, and the days still to come are what "days left" counts.

use anycloud_config::{Commitment, RevenueShare};
use anycloud_store::{DailyCost, Store};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::money::{nanos, percent_of, usd};
use crate::LedgerError;

/// One revenue-share agreement's position for a report period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevenueShareStatus {
    pub party: String,
    pub percent: f64,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub cap_usd: Option<f64>,
    /// Spend on the party's cloud in the period, inside the agreement's window.
    pub billed_usd: f64,
    /// Revenue share owed for the period: `percent` of `billed_usd`, stopped at the cap.
    pub accrued_usd: f64,
    /// What the party may still accrue over the agreement's life, as of the period's end.
    pub remaining_to_cap_usd: Option<f64>,
    /// The day the lifetime accrual reached the cap, if it has.
    pub cap_reached_on: Option<NaiveDate>,
    /// Not reached yet: the day it will be at the period's daily rate (none if the rate is
    /// zero, there is no cap, or the agreement ends first).
    pub cap_projected_on: Option<NaiveDate>,
    /// Lifetime accrual through the period's end.
    pub accrued_to_date_usd: f64,
}

/// One commitment's burn-down as of a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitmentStatus {
    pub cloud: String,
    pub amount_usd: f64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub spent_usd: f64,
    pub remaining_usd: f64,
    /// Days of the term from the as-of date to its last day, inclusive.
    pub days_left: u64,
    /// `remaining / days_left`; none when the term is over with money still unspent.
    pub daily_rate_needed_usd: Option<f64>,
    /// Whether the average daily spend so far, kept up, meets the amount.
    pub on_track: bool,
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.checked_add_days(Days::new(1)).unwrap_or(d)
}

fn add_days(d: NaiveDate, n: u64) -> Option<NaiveDate> {
    d.checked_add_days(Days::new(n))
}

fn days_between(from: NaiveDate, to: NaiveDate) -> u64 {
    u64::try_from((to - from).num_days()).unwrap_or(0)
}

/// Midnight UTC at the start of `d`.
pub fn start_of(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The exclusive end of the data a report over `[_, to)` can see on `today`.
pub fn as_of(to: NaiveDate, today: NaiveDate) -> NaiveDate {
    to.min(next_day(today))
}

/// Revenue share for the period `[from, to)`, given the party's daily spend from the
/// agreement's start (or the ledger's beginning) up to at least `to`.
pub fn revenue_share_from_daily(
    rs: &RevenueShare,
    daily: &[DailyCost],
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> RevenueShareStatus {
    let eligible = |d: NaiveDate| rs.from.is_none_or(|f| d >= f) && rs.until.is_none_or(|u| d <= u);
    let cap = rs.cap_usd.map(nanos);
    let accrue = |billed: i64| {
        let a = percent_of(billed, rs.percent);
        cap.map_or(a, |c| a.min(c))
    };
    let (mut before, mut period) = (0i64, 0i64);
    let mut cumulative = 0i64;
    let mut cap_reached_on = None;
    for d in daily.iter().filter(|d| eligible(d.day) && d.day < to) {
        cumulative += d.cost_nanos;
        if d.day < from {
            before += d.cost_nanos;
        } else {
            period += d.cost_nanos;
        }
        if cap_reached_on.is_none() && cap.is_some_and(|c| percent_of(cumulative, rs.percent) >= c)
        {
            cap_reached_on = Some(d.day);
        }
    }
    let accrued_before = accrue(before);
    let accrued_through = accrue(before + period);
    let accrued = accrued_through - accrued_before;
    let remaining = cap.map(|c| (c - accrued_through).max(0));

    // Projection at the period's daily rate, over the days of the period the agreement
    // covered and that have happened.
    let end = as_of(to, today);
    let rate_start = rs.from.map_or(from, |f| from.max(f));
    let rate_end = rs.until.map_or(end, |u| end.min(next_day(u)));
    let rate_days = days_between(rate_start, rate_end);
    let cap_projected_on = match remaining {
        Some(left) if cap_reached_on.is_none() && accrued > 0 && rate_days > 0 => {
            // Accrual per day, in nano-dollars, as a rational accrued / rate_days.
            let need = u64::try_from(left).unwrap_or(0);
            let days = (u128::from(need) * u128::from(rate_days))
                .div_ceil(u128::from(u64::try_from(accrued).unwrap_or(1)));
            u64::try_from(days)
                .ok()
                .and_then(|k| add_days(end, k.saturating_sub(1)))
                .filter(|d| rs.until.is_none_or(|u| *d <= u))
        }
        _ => None,
    };
    RevenueShareStatus {
        party: rs.party.clone(),
        percent: rs.percent,
        from: rs.from,
        until: rs.until,
        cap_usd: rs.cap_usd,
        billed_usd: usd(period),
        accrued_usd: usd(accrued),
        remaining_to_cap_usd: remaining.map(usd),
        cap_reached_on,
        cap_projected_on,
        accrued_to_date_usd: usd(accrued_through),
    }
}

/// Commitment burn-down, given the cloud's daily spend over the term (at least up to the
/// as-of date).
pub fn commitment_from_daily(
    c: &Commitment,
    daily: &[DailyCost],
    to: NaiveDate,
    today: NaiveDate,
) -> CommitmentStatus {
    let term_end = next_day(c.to);
    let end = as_of(to, today).min(term_end);
    let spent: i64 = daily
        .iter()
        .filter(|d| d.day >= c.from && d.day < end)
        .map(|d| d.cost_nanos)
        .sum();
    let amount = nanos(c.amount_usd);
    let remaining = (amount - spent).max(0);
    let days_left = days_between(end.max(c.from), term_end);
    let elapsed = days_between(c.from, end);
    let needed = match (remaining, days_left) {
        (0, _) => Some(0),
        (r, d) if d > 0 => Some(r / i64::try_from(d).unwrap_or(i64::MAX)),
        _ => None,
    };
    let on_track = remaining == 0
        || (days_left > 0
            && (elapsed == 0
                // spent / elapsed >= remaining / days_left, without division.
                || i128::from(spent) * i128::from(days_left)
                    >= i128::from(remaining) * i128::from(elapsed)));
    CommitmentStatus {
        cloud: c.cloud.clone(),
        amount_usd: c.amount_usd,
        from: c.from,
        to: c.to,
        spent_usd: usd(spent),
        remaining_usd: usd(remaining),
        days_left,
        daily_rate_needed_usd: needed.map(usd),
        on_track,
    }
}

/// A cloud's spend in nano-dollars over `[from, to)` (no lower bound without `from`).
pub async fn spent_nanos(
    store: &dyn Store,
    cloud: &str,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<i64, LedgerError> {
    let daily = store.daily_cost(cloud, from, to).await?;
    Ok(daily.iter().map(|d| d.cost_nanos).sum())
}

/// A cloud's spend in USD over `[from, to)`: what the `commitment` routing strategy reads.
pub async fn spent_usd(
    store: &dyn Store,
    cloud: &str,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<f64, LedgerError> {
    Ok(usd(spent_nanos(store, cloud, from, to).await?))
}

/// [`revenue_share_from_daily`] over the store.
pub async fn revenue_share(
    store: &dyn Store,
    rs: &RevenueShare,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<RevenueShareStatus, LedgerError> {
    let daily = store
        .daily_cost(&rs.party, rs.from.map(start_of), start_of(to))
        .await?;
    Ok(revenue_share_from_daily(rs, &daily, from, to, today))
}

/// [`commitment_from_daily`] over the store.
pub async fn commitment(
    store: &dyn Store,
    c: &Commitment,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<CommitmentStatus, LedgerError> {
    let end = as_of(to, today).min(next_day(c.to));
    let daily = store
        .daily_cost(&c.cloud, Some(start_of(c.from)), start_of(end))
        .await?;
    Ok(commitment_from_daily(c, &daily, to, today))
}

#[cfg(test)]
#[path = "accounting_tests.rs"]
mod tests;
