//! `/ui/ledger`: the ledger report for a date range — the same
//! `anycloud_ledger::report` as `anycloud report` and
//! `GET /admin/v1/ledger/report` — as tables and a chart, with the CSV
//! download at `/ui/ledger.csv`.

use super::chart;
use super::html::{esc, usd};
use crate::state::AppState;
use anycloud_ledger::money;
use anycloud_ledger::report::{self, GroupBy, Report, ReportFormat, ReportRequest, Totals};
use chrono::{Datelike, Days, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Default, Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Range {
    /// `[from, to)`, defaulting to this month through today; a clear message
    /// for a bad date.
    pub fn dates(&self) -> Result<(NaiveDate, NaiveDate), String> {
        let today = Utc::now().date_naive();
        let parse = |v: &Option<String>, name: &str, default: NaiveDate| match v
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => Ok(default),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("`{name}` must be a date (YYYY-MM-DD), got `{s}`.")),
        };
        let from = parse(&self.from, "from", today.with_day(1).unwrap_or(today))?;
        let to = parse(
            &self.to,
            "to",
            today.checked_add_days(Days::new(1)).unwrap_or(today),
        )?;
        if from >= to {
            return Err(format!(
                "`from` ({from}) must be before `to` ({to}); `to` is exclusive."
            ));
        }
        Ok((from, to))
    }
}

pub async fn build(state: &AppState, from: NaiveDate, to: NaiveDate) -> Result<Report, String> {
    let req = ReportRequest {
        from,
        to,
        group_by: GroupBy::default(),
        today: Utc::now().date_naive(),
    };
    report::build(
        state.store.as_ref(),
        &state.config.agreements,
        &req,
        &|_, _| {},
    )
    .await
    .map_err(|e| match e {
        anycloud_ledger::LedgerError::Invalid(m) => m,
        other => {
            tracing::error!(error = %other, "dashboard: ledger report failed");
            "The ledger could not be read.".into()
        }
    })
}

/// The report as CSV (the same bytes as `anycloud report --format csv`).
pub fn csv(report: &Report) -> Result<String, String> {
    report
        .render(ReportFormat::Csv)
        .map_err(|_| "The report could not be rendered.".to_string())
}

fn group(title: &str, key: &str, m: &BTreeMap<String, Totals>, total: &Totals) -> String {
    let mut s = format!(
        r#"<h3>{}</h3><table><thead><tr><th>{key}</th><th class="num">requests</th><th class="num">input tokens</th><th class="num">output tokens</th><th class="num">cache reads</th><th class="num">cache writes</th><th class="num">reasoning</th><th class="num">cache hit ratio</th><th class="num">cost (USD)</th><th class="num">saved by caching (USD)</th></tr></thead><tbody>"#,
        esc(title)
    );
    let line = |name: &str, t: &Totals, bold: bool| {
        let (a, b) = if bold { ("<b>", "</b>") } else { ("", "") };
        format!(
            r#"<tr><td>{a}{}{b}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.1}%</td><td class="num">{a}{:.6}{b}</td><td class="num">{:.6}</td></tr>"#,
            esc(name),
            t.requests,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cache_write_tokens,
            t.reasoning_tokens,
            t.cache_hit_ratio() * 100.0,
            money::usd(t.cost_nanos),
            money::usd(t.cache_saved_nanos)
        )
    };
    for (name, t) in m {
        s.push_str(&line(name, t, false));
    }
    s.push_str(&line("total", total, true));
    s.push_str("</tbody></table>");
    s
}

/// The page body for `range` (the form, then the report or the error).
pub async fn render(state: &AppState, range: &Range) -> String {
    let mut s = String::from(r#"<section class="panel wide" id="ledger"><h2>Ledger report</h2>"#);
    let dates = range.dates();
    let (f, t) = match &dates {
        Ok((f, t)) => (f.to_string(), t.to_string()),
        Err(_) => (
            range.from.clone().unwrap_or_default(),
            range.to.clone().unwrap_or_default(),
        ),
    };
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="/ui/ledger"><label>from (inclusive)<input type="date" name="from" value="{f}"></label><label>to (exclusive)<input type="date" name="to" value="{t}"></label><button type="submit">Show</button> <a id="csv-download" href="/ui/ledger.csv?from={f}&amp;to={t}" download>Download CSV</a></form>"#,
        f = esc(&f),
        t = esc(&t)
    );
    let report = match dates {
        Ok((from, to)) => build(state, from, to).await,
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(
                s,
                r#"<p class="error" role="alert">{}</p></section>"#,
                esc(&e)
            );
            return s;
        }
    };
    let bars: Vec<(String, f64, usize)> = report
        .clouds
        .iter()
        .map(|(name, t)| {
            let i = state
                .config
                .clouds
                .iter()
                .position(|c| &c.name == name)
                .unwrap_or(7);
            (name.clone(), money::usd(t.cost_nanos), i)
        })
        .collect();
    let _ = write!(
        s,
        r#"<div class="cols"><div>{}</div><div>{}</div><div>{}</div></div>"#,
        group("Per cloud", "cloud", &report.clouds, &report.total),
        group("Per model", "model", &report.models, &report.total),
        group("Per tenant", "tenant", &report.tenants, &report.total),
    );
    let _ = write!(
        s,
        r#"<h3>Cost per cloud</h3>{}"#,
        chart::bars("Cost per cloud in the range", &bars, usd)
    );
    if !report.revenue_share.is_empty() {
        s.push_str(r#"<h3>Revenue share</h3><table><thead><tr><th>party</th><th class="num">%</th><th class="num">billed</th><th class="num">accrued</th><th class="num">remaining to cap</th><th>cap reached / projected</th></tr></thead><tbody>"#);
        for r in &report.revenue_share {
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                esc(&r.party),
                r.percent,
                usd(r.billed_usd),
                usd(r.accrued_usd),
                r.remaining_to_cap_usd
                    .map(usd)
                    .unwrap_or_else(|| "–".into()),
                r.cap_reached_on
                    .map(|d| format!("reached {d}"))
                    .or_else(|| r.cap_projected_on.map(|d| format!("projected {d}")))
                    .unwrap_or_else(|| "–".into())
            );
        }
        s.push_str("</tbody></table>");
    }
    if !report.commitments.is_empty() {
        s.push_str(r#"<h3>Commitments</h3><table><thead><tr><th>cloud</th><th class="num">amount</th><th class="num">spent</th><th class="num">remaining</th><th class="num">days left</th><th class="num">needed/day</th><th>on track</th></tr></thead><tbody>"#);
        for c in &report.commitments {
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                esc(&c.cloud),
                usd(c.amount_usd),
                usd(c.spent_usd),
                usd(c.remaining_usd),
                c.days_left,
                c.daily_rate_needed_usd
                    .map(usd)
                    .unwrap_or_else(|| "–".into()),
                if c.on_track {
                    "yes"
                } else {
                    "<span class=\"error\">no</span>"
                }
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_and_empty_ranges_are_explained() {
        let r = Range {
            from: Some("2026-13-01".into()),
            to: None,
        };
        assert!(r.dates().unwrap_err().contains("`from` must be a date"));
        let r = Range {
            from: Some("2026-11-02".into()),
            to: Some("2026-11-01".into()),
        };
        assert!(r.dates().unwrap_err().contains("must be before"));
        let r = Range {
            from: Some("2026-11-01".into()),
            to: Some("2026-11-02".into()),
        };
        assert!(r.dates().is_ok());
    }
}
