//! Hand-computed accruals and burn-downs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use chrono::NaiveDate;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

fn day(s: &str, usd: f64) -> DailyCost {
    DailyCost {
        day: d(s),
        cost_nanos: nanos(usd),
    }
}

fn share(
    party: &str,
    percent: f64,
    from: Option<&str>,
    until: Option<&str>,
    cap: Option<f64>,
) -> RevenueShare {
    RevenueShare {
        party: party.into(),
        percent,
        from: from.map(d),
        until: until.map(d),
        cap_usd: cap,
    }
}

#[test]
fn cap_reached_mid_period_stops_the_accrual() {
    // 20 % with a $100 cap. Nov 1 is before the period: $200 billed, $40 accrued.
    // Period Nov 2..4: $500 billed; lifetime $700 × 20 % = $140, capped at $100, of which
    // $60 in the period. The cap is crossed on Nov 3 (cumulative $600 → $120).
    let rs = share("azure-us", 20.0, None, None, Some(100.0));
    let daily = [
        day("2026-11-01", 200.0),
        day("2026-11-02", 200.0),
        day("2026-11-03", 200.0),
        day("2026-11-04", 100.0),
    ];
    let s = revenue_share_from_daily(
        &rs,
        &daily,
        d("2026-11-02"),
        d("2026-11-05"),
        d("2026-12-01"),
    );
    assert_eq!(s.billed_usd, 500.0);
    assert_eq!(s.accrued_usd, 60.0);
    assert_eq!(s.accrued_to_date_usd, 100.0);
    assert_eq!(s.remaining_to_cap_usd, Some(0.0));
    assert_eq!(s.cap_reached_on, Some(d("2026-11-03")));
    assert_eq!(s.cap_projected_on, None);
}

#[test]
fn agreement_that_ended_mid_period_covers_only_its_days() {
    // 10 % until Nov 15: of $50/day on Nov 10..20, only Nov 10..15 count: $300 → $30.
    // At $30 per 15 covered days the $1000 cap would take 485 more days, well after the
    // agreement ended: no projection.
    let rs = share("aws-eu", 10.0, None, Some("2026-11-15"), Some(1000.0));
    let daily: Vec<DailyCost> = (10..=20)
        .map(|n| day(&format!("2026-11-{n}"), 50.0))
        .collect();
    let s = revenue_share_from_daily(
        &rs,
        &daily,
        d("2026-11-01"),
        d("2026-12-01"),
        d("2026-12-05"),
    );
    assert_eq!(s.billed_usd, 300.0);
    assert_eq!(s.accrued_usd, 30.0);
    assert_eq!(s.remaining_to_cap_usd, Some(970.0));
    assert_eq!(s.cap_reached_on, None);
    assert_eq!(s.cap_projected_on, None);
}

#[test]
fn cap_date_is_projected_at_the_current_rate() {
    // From Nov 1 (Oct 31's $1000 does not count), $10/day for 10 days at 20 %: $20 accrued,
    // $2/day, $80 to go → 40 more days from Nov 11: hit on Dec 20.
    let rs = share("gcp-eu", 20.0, Some("2026-11-01"), None, Some(100.0));
    let mut daily = vec![day("2026-10-31", 1000.0)];
    daily.extend((1..=10).map(|n| day(&format!("2026-11-{n:02}"), 10.0)));
    let s = revenue_share_from_daily(
        &rs,
        &daily,
        d("2026-11-01"),
        d("2026-11-11"),
        d("2026-11-10"),
    );
    assert_eq!(s.billed_usd, 100.0);
    assert_eq!(s.accrued_usd, 20.0);
    assert_eq!(s.remaining_to_cap_usd, Some(80.0));
    assert_eq!(s.cap_projected_on, Some(d("2026-12-20")));
}

fn commit(amount: f64, from: &str, to: &str) -> Commitment {
    Commitment {
        cloud: "aws-eu".into(),
        amount_usd: amount,
        from: d(from),
        to: d(to),
    }
}

fn january() -> Vec<DailyCost> {
    let mut v = vec![day("2025-12-31", 500.0)];
    v.extend((1..=10).map(|n| day(&format!("2026-01-{n:02}"), 80.0)));
    v.push(day("2026-01-15", 999.0));
    v
}

#[test]
fn burn_down_behind_schedule() {
    // $3000 over Jan 1..30. As of Jan 11: $800 spent in 10 days ($80/day); $2200 left over
    // 20 days needs $110/day: not on track.
    let s = commitment_from_daily(
        &commit(3000.0, "2026-01-01", "2026-01-30"),
        &january(),
        d("2026-01-11"),
        d("2026-02-01"),
    );
    assert_eq!(s.spent_usd, 800.0);
    assert_eq!(s.remaining_usd, 2200.0);
    assert_eq!(s.days_left, 20);
    assert_eq!(s.daily_rate_needed_usd, Some(110.0));
    assert!(!s.on_track);
}

#[test]
fn burn_down_met_and_missed() {
    let met = commitment_from_daily(
        &commit(500.0, "2026-01-01", "2026-01-30"),
        &january(),
        d("2026-01-11"),
        d("2026-02-01"),
    );
    assert_eq!((met.spent_usd, met.remaining_usd), (800.0, 0.0));
    assert_eq!(met.daily_rate_needed_usd, Some(0.0));
    assert!(met.on_track);
    // The term ended Jan 5 with $400 of $3000 spent.
    let missed = commitment_from_daily(
        &commit(3000.0, "2026-01-01", "2026-01-05"),
        &january(),
        d("2026-02-01"),
        d("2026-02-01"),
    );
    assert_eq!(
        (missed.spent_usd, missed.remaining_usd, missed.days_left),
        (400.0, 2600.0, 0)
    );
    assert_eq!(missed.daily_rate_needed_usd, None);
    assert!(!missed.on_track);
    // 160 % of schedule: on track.
    let ahead = commitment_from_daily(
        &commit(1500.0, "2026-01-01", "2026-01-30"),
        &january(),
        d("2026-01-11"),
        d("2026-02-01"),
    );
    assert!(ahead.on_track, "{ahead:?}");
}
