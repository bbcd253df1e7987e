//! The dashboard's panels, each rendered to an HTML fragment: the page
//! embeds them on first load and the page script re-fetches each one from
//! `/ui/panel/{name}` every few seconds.
//!
//! Data comes from the dashboard's own [`super::recorder::Recorder`]
//! (traffic, errors, latency, route decisions), live cloud state (breaker,
//! drain), the config (prices, jurisdictions, budgets) and the ledger's
//! report code (spend, commitments, revenue share) — the same figures as
//! `anycloud report`.

use super::chart::{self, Line};
use super::html::{esc, meter, usd};
use super::recorder::{CloudSeries, BUCKET_SECS};
use crate::state::AppState;
use anycloud_config::BudgetPeriod;
use anycloud_ledger::report::{self, GroupBy, Report, ReportRequest};
use chrono::{Datelike, Days, NaiveDate, Utc};
use std::fmt::Write;

/// Every panel, in page order: (name, title, wide).
pub const PANELS: [(&str, &str, bool); 8] = [
    (
        "traffic",
        "Traffic per cloud (attempts/s, up to 15 min)",
        false,
    ),
    (
        "errors",
        "Errors per cloud (failed attempts per 15 s)",
        false,
    ),
    (
        "latency",
        "Latency per cloud (ms per 15 s; p50 solid, p99 dashed)",
        false,
    ),
    ("clouds", "Breakers and drain", false),
    ("mcp", "MCP servers and tool calls", true),
    ("scorecard", "Cloud scorecard (last 15 min)", true),
    ("decisions", "Recent route decisions", true),
    (
        "spend",
        "Spend, budgets, commitments and revenue share",
        true,
    ),
];

/// Renders panel `name`; `None` for an unknown name.
pub async fn render(state: &AppState, name: &str, csrf: &str) -> Option<String> {
    Some(match name {
        "traffic" => traffic(state),
        "errors" => errors(state),
        "latency" => latency(state),
        "clouds" => clouds(state, csrf),
        "mcp" => crate::mcp::ui::panel(state, csrf),
        "scorecard" => scorecard(state).await,
        "decisions" => decisions(state),
        "spend" => spend(state).await,
        _ => return None,
    })
}

/// Buckets merged per point: every 15 s (a percentile of the handful of
/// requests in one 5-second bucket says little).
const RATE_GROUP: usize = 3;
const LATENCY_GROUP: usize = 3;

/// Time labels for a chart of `span` buckets drawn `group` to a point.
fn x_labels(span: usize, group: usize) -> Vec<(usize, String)> {
    let points = span / group;
    let ago = |point: usize| {
        let secs = (points - 1 - point) * group * BUCKET_SECS as usize;
        if secs.is_multiple_of(60) {
            format!("-{} min", secs / 60)
        } else {
            format!("-{}:{:02}", secs / 60, secs % 60)
        }
    };
    let mut labels: Vec<(usize, String)> = [0, points / 3, 2 * points / 3]
        .into_iter()
        .map(|p| (p, ago(p)))
        .collect();
    labels.push((points - 1, "now".into()));
    labels
}

fn span(state: &AppState) -> usize {
    state.ui.recorder.span(Utc::now())
}

fn series(state: &AppState, group: usize) -> Vec<CloudSeries> {
    state.ui.recorder.series(Utc::now(), group)
}

/// Clouds that saw traffic in the window (an idle cloud would only add an
/// empty legend entry); all of them when none did.
fn active(all: Vec<CloudSeries>) -> Vec<(usize, CloudSeries)> {
    let any: Vec<(usize, CloudSeries)> = all
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, s)| s.attempts.iter().any(|a| *a > 0))
        .collect();
    if any.is_empty() {
        all.into_iter().enumerate().collect()
    } else {
        any
    }
}

fn traffic(state: &AppState) -> String {
    let secs = (BUCKET_SECS as usize * RATE_GROUP) as f64;
    let lines: Vec<Line> = active(series(state, RATE_GROUP))
        .into_iter()
        .map(|(i, s)| Line {
            name: s.cloud,
            colour: i,
            dashed: false,
            values: s
                .attempts
                .iter()
                .map(|a| Some(f64::from(*a) / secs))
                .collect(),
        })
        .collect();
    chart::lines(
        "Attempts per second per cloud",
        "attempts/s",
        &lines,
        &x_labels(span(state), RATE_GROUP),
    )
}

fn errors(state: &AppState) -> String {
    let lines: Vec<Line> = active(series(state, RATE_GROUP))
        .into_iter()
        .map(|(i, s)| Line {
            name: s.cloud,
            colour: i,
            dashed: false,
            values: s.errors.iter().map(|e| Some(f64::from(*e))).collect(),
        })
        .collect();
    chart::lines(
        "Failed attempts per 15 s per cloud",
        "errors",
        &lines,
        &x_labels(span(state), RATE_GROUP),
    )
}

fn latency(state: &AppState) -> String {
    let mut lines = Vec::new();
    for (i, s) in active(series(state, LATENCY_GROUP)) {
        let ms = |v: &Vec<Option<u64>>| v.iter().map(|x| x.map(|m| m as f64)).collect();
        lines.push(Line {
            name: s.cloud.clone(),
            colour: i,
            dashed: false,
            values: ms(&s.p50_ms),
        });
        lines.push(Line {
            name: format!("{} p99", s.cloud),
            colour: i,
            dashed: true,
            values: ms(&s.p99_ms),
        });
    }
    chart::lines(
        "Latency p50 and p99 per cloud",
        "ms",
        &lines,
        &x_labels(span(state), LATENCY_GROUP),
    )
}

fn breaker_badge(b: crate::cloud_state::BreakerState) -> String {
    let class = match b {
        crate::cloud_state::BreakerState::Closed => "",
        crate::cloud_state::BreakerState::HalfOpen => " warn",
        crate::cloud_state::BreakerState::Open => " bad",
    };
    format!(r#"<span class="badge{class}">{}</span>"#, b.as_str())
}

fn clouds(state: &AppState, csrf: &str) -> String {
    let mut s = String::from(
        r#"<table><thead><tr><th>cloud</th><th>provider</th><th>breaker</th><th>traffic</th><th class="num">error rate</th><th class="num">EWMA TTFB</th><th></th></tr></thead><tbody>"#,
    );
    for c in &state.config.clouds {
        let Some(snap) = state.clouds.snapshot(&c.name) else {
            continue;
        };
        let (action, label, class) = if snap.drained {
            ("restore", "Restore", "")
        } else {
            ("drain", "Drain", " class=\"danger\"")
        };
        let _ = write!(
            s,
            r#"<tr data-cloud="{n}"><td><b>{n}</b></td><td>{p}</td><td>{b}</td><td>{d}</td><td class="num">{er:.0}%</td><td class="num">{ew}</td><td><form class="inline" method="post" action="/ui/clouds/{n}/{action}"><input type="hidden" name="csrf" value="{csrf}"><button type="submit"{class}>{label}</button></form></td></tr>"#,
            n = esc(&c.name),
            p = esc(&c.provider.to_string()),
            b = breaker_badge(snap.breaker),
            d = if snap.drained {
                r#"<span class="badge bad">drained</span>"#
            } else {
                r#"<span class="badge">serving</span>"#
            },
            er = snap.error_rate * 100.0,
            ew = snap
                .ewma_latency_ms
                .map(|m| format!("{m:.0} ms"))
                .unwrap_or_else(|| "–".into()),
            csrf = esc(csrf),
        );
    }
    s.push_str("</tbody></table><p class=\"muted\">Drain and Restore are audited like <code>POST /admin/v1/clouds/{name}/drain|restore</code>.</p>");
    s
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn tomorrow() -> NaiveDate {
    today().checked_add_days(Days::new(1)).unwrap_or_else(today)
}

/// Month to date, through today: the spend panel's and scorecard's period.
async fn month_report(state: &AppState) -> Result<Report, String> {
    let t = today();
    let req = ReportRequest {
        from: t.with_day(1).unwrap_or(t),
        to: tomorrow(),
        group_by: GroupBy::default(),
        today: t,
    };
    report::build(
        state.store.as_ref(),
        &state.config.agreements,
        &req,
        &|_, _| {},
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "dashboard: ledger report failed");
        "The ledger could not be read.".to_string()
    })
}

async fn scorecard(state: &AppState) -> String {
    let totals = state.ui.recorder.totals(Utc::now());
    let report = month_report(state).await;
    let clouds = &state.config.clouds;
    let mut s =
        String::from(r#"<div class="scroll"><table class="scorecard"><thead><tr><th></th>"#);
    for c in clouds {
        let _ = write!(s, "<th>{}</th>", esc(&c.name));
    }
    s.push_str("</tr></thead><tbody>");
    let mut row = |label: &str, cell: &dyn Fn(usize) -> String| {
        let _ = write!(s, "<tr><th>{}</th>", esc(label));
        for i in 0..clouds.len() {
            let _ = write!(s, "<td>{}</td>", cell(i));
        }
        s.push_str("</tr>");
    };
    row("provider", &|i| esc(&clouds[i].provider.to_string()));
    row("jurisdiction · region", &|i| {
        let c = &clouds[i];
        esc(&format!(
            "{} · {}",
            c.jurisdiction.as_deref().unwrap_or("–"),
            c.region.as_deref().unwrap_or("–")
        ))
    });
    row("price (in/out $ per Mtok)", &|i| {
        let mut p = String::new();
        for m in &state.config.models {
            for d in m.deployments.iter().filter(|d| d.cloud == clouds[i].name) {
                let _ = write!(
                    p,
                    "<div>{}: {:.2} / {:.2}</div>",
                    esc(&m.name),
                    d.price.input_per_mtok,
                    d.price.output_per_mtok
                );
            }
        }
        if p.is_empty() {
            "–".into()
        } else {
            p
        }
    });
    let window = |i: usize| {
        totals
            .iter()
            .find(|(n, _)| *n == clouds[i].name)
            .map(|(_, w)| w.clone())
    };
    row("attempts", &|i| {
        window(i)
            .map(|w| w.attempts.to_string())
            .unwrap_or_default()
    });
    row(
        "error rate",
        &|i| match window(i).and_then(|w| w.error_rate()) {
            Some(r) if r > 0.05 => format!(r#"<span class="error">{:.1}%</span>"#, r * 100.0),
            Some(r) => format!("{:.1}%", r * 100.0),
            None => "–".into(),
        },
    );
    let ms = |v: Option<u64>| v.map(|m| format!("≤ {m} ms")).unwrap_or_else(|| "–".into());
    row("latency p50", &|i| ms(window(i).and_then(|w| w.p50_ms)));
    row("latency p99", &|i| ms(window(i).and_then(|w| w.p99_ms)));
    row("spend this month", &|i| match &report {
        Ok(r) => r
            .clouds
            .get(&clouds[i].name)
            .map(|t| usd(anycloud_ledger::money::usd(t.cost_nanos)))
            .unwrap_or_else(|| usd(0.0)),
        Err(e) => esc(e),
    });
    row("commitment", &|i| {
        let Ok(r) = &report else { return "–".into() };
        match r.commitments.iter().find(|c| c.cloud == clouds[i].name) {
            Some(c) => commitment_meter(c),
            None => r#"<span class="muted">none</span>"#.into(),
        }
    });
    s.push_str("</tbody></table></div>");
    s
}

fn commitment_meter(c: &anycloud_ledger::accounting::CommitmentStatus) -> String {
    let total_days = (c.to - c.from).num_days().max(0) as f64 + 1.0;
    let elapsed = (total_days - c.days_left as f64).max(0.0);
    let fraction = if c.amount_usd > 0.0 {
        c.spent_usd / c.amount_usd
    } else {
        0.0
    };
    meter(
        fraction,
        Some(elapsed / total_days),
        &format!(
            "{:.1}% of {}{}",
            fraction * 100.0,
            usd(c.amount_usd),
            if c.on_track { "" } else { " · behind" }
        ),
        !c.on_track,
    )
}

fn decisions(state: &AppState) -> String {
    let rows = state.ui.recorder.decisions();
    if rows.is_empty() {
        return r#"<p class="muted">No requests yet.</p>"#.into();
    }
    let mut s = String::from(
        r#"<div class="scroll"><table><thead><tr><th>time (UTC)</th><th>api</th><th>tenant</th><th>model</th><th>x-anycloud-route</th><th>cloud</th><th class="num">status</th><th class="num">latency</th></tr></thead><tbody>"#,
    );
    for d in rows.iter().take(20) {
        let status = if d.status >= 400 {
            format!(r#"<span class="error">{}</span>"#, d.status)
        } else {
            d.status.to_string()
        };
        let _ = write!(
            s,
            r#"<tr><td title="{rid}">{at}</td><td>{api}</td><td>{t}</td><td>{m}</td><td class="route">{r}</td><td>{c}</td><td class="num">{status}</td><td class="num">{l} ms</td></tr>"#,
            rid = esc(&d.request_id),
            at = d.at.format("%H:%M:%S"),
            api = esc(d.api),
            t = esc(&d.tenant),
            m = esc(&d.model),
            r = esc(&d.route),
            c = esc(d.cloud.as_deref().unwrap_or("none")),
            l = d.latency_ms,
        );
    }
    s.push_str("</tbody></table></div>");
    s
}

fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
        BudgetPeriod::Total => "total",
    }
}

async fn spend(state: &AppState) -> String {
    let report = match month_report(state).await {
        Ok(r) => r,
        Err(e) => return format!(r#"<p class="error">{}</p>"#, esc(&e)),
    };
    let mut s = String::from(r#"<div class="cols">"#);
    // Tenants: month-to-date spend, and the budget in its own period.
    s.push_str(r#"<div><h3>Tenants (month to date)</h3><table><thead><tr><th>tenant</th><th class="num">spend</th><th>budget</th></tr></thead><tbody>"#);
    for t in state.tenants() {
        let spent = report
            .tenants
            .get(&t.name)
            .map(|x| anycloud_ledger::money::usd(x.cost_nanos))
            .unwrap_or(0.0);
        let budget = match t.budget {
            Some(b) => {
                let (used, reserved) = state
                    .governance
                    .budgets
                    .usage(&format!("tenant:{}", t.name), b.period);
                let f = if b.usd > 0.0 { used / b.usd } else { 1.0 };
                meter(
                    f,
                    None,
                    &format!(
                        "{} of {} per {}{}",
                        usd(used),
                        usd(b.usd),
                        period_name(b.period),
                        if reserved > 0.0 {
                            format!(" (+{} reserved)", usd(reserved))
                        } else {
                            String::new()
                        }
                    ),
                    f >= 0.8,
                )
            }
            None => r#"<span class="muted">no budget</span>"#.into(),
        };
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td>{budget}</td></tr>"#,
            esc(&t.name),
            usd(spent)
        );
    }
    s.push_str("</tbody></table></div>");
    // Commitments: burn-down with the "expected by now" marker.
    s.push_str(r#"<div><h3>Commitments</h3>"#);
    if report.commitments.is_empty() {
        s.push_str(r#"<p class="muted">No <code>[[agreements.commitment]]</code> configured.</p>"#);
    } else {
        s.push_str(r#"<table><thead><tr><th>cloud</th><th>spent of amount (| = expected by now)</th><th class="num">days left</th><th class="num">needed/day</th></tr></thead><tbody>"#);
        for c in &report.commitments {
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&c.cloud),
                commitment_meter(c),
                c.days_left,
                c.daily_rate_needed_usd
                    .map(usd)
                    .unwrap_or_else(|| "–".into())
            );
        }
        s.push_str("</tbody></table>");
    }
    // Revenue share: lifetime accrual against the cap.
    s.push_str(r#"<h3>Revenue share</h3>"#);
    if report.revenue_share.is_empty() {
        s.push_str(
            r#"<p class="muted">No <code>[[agreements.revenue_share]]</code> configured.</p>"#,
        );
    } else {
        s.push_str(r#"<table><thead><tr><th>party</th><th class="num">%</th><th class="num">billed (month)</th><th>accrued to date of cap</th></tr></thead><tbody>"#);
        for r in &report.revenue_share {
            let cap = match r.cap_usd {
                Some(cap) if cap > 0.0 => meter(
                    r.accrued_to_date_usd / cap,
                    None,
                    &format!(
                        "{} of {}{}",
                        usd(r.accrued_to_date_usd),
                        usd(cap),
                        match (r.cap_reached_on, r.cap_projected_on) {
                            (Some(d), _) => format!(" · cap reached {d}"),
                            (None, Some(d)) => format!(" · cap on {d} at this rate"),
                            _ => String::new(),
                        }
                    ),
                    r.cap_reached_on.is_some(),
                ),
                _ => format!("{} (no cap)", usd(r.accrued_to_date_usd)),
            };
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{cap}</td></tr>"#,
                esc(&r.party),
                r.percent,
                usd(r.billed_usd)
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</div>");
    // Spend per cloud this month, as bars.
    let rows: Vec<(String, f64, usize)> = state
        .config
        .clouds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = report
                .clouds
                .get(&c.name)
                .map(|t| anycloud_ledger::money::usd(t.cost_nanos))
                .unwrap_or(0.0);
            (c.name.clone(), v, i)
        })
        .collect();
    let _ = write!(
        s,
        r#"<div><h3>Spend per cloud (month to date)</h3>{}</div>"#,
        chart::bars("Spend per cloud this month", &rows, usd)
    );
    s.push_str("</div>");
    s
}
