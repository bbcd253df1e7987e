//! `/ui/risk`: the vendor-risk document — the same `anycloud_risk::report` as
//! `anycloud risk` and `GET /admin/v1/risk` — as tables: concentration per cloud, provider
//! and jurisdiction with the HHI band, single points of failure, the outage drill.

use super::html::esc;
use super::ledger_page::Range;
use crate::state::AppState;
use anycloud_risk::concentration::Breakdown;
use anycloud_risk::report::RiskReport;
use anycloud_risk::Period;
use chrono::Utc;
use std::fmt::Write;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn breakdown(title: &str, b: &Breakdown) -> String {
    let mut s = format!(
        r#"<h3>{} — HHI {:.0} <span class="band band-{}">{}</span></h3><table><thead><tr><th>name</th><th class="num">requests</th><th class="num">tokens</th><th class="num">cost (USD)</th><th class="num">share of requests</th><th class="num">share of cost</th></tr></thead><tbody>"#,
        esc(title),
        b.hhi,
        b.band,
        b.band
    );
    for e in &b.entries {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.6}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(&e.name),
            e.requests,
            e.tokens,
            e.cost_usd,
            pct(e.share_requests),
            pct(e.share_cost)
        );
    }
    s.push_str("</tbody></table>");
    s
}

fn body(r: &RiskReport) -> String {
    let mut s = String::new();
    s.push_str(&breakdown("Per cloud", &r.concentration.cloud));
    s.push_str(&breakdown("Per provider", &r.concentration.provider));
    s.push_str(&breakdown(
        "Per jurisdiction",
        &r.concentration.jurisdiction,
    ));
    s.push_str(r#"<h3>Single points of failure</h3><table id="spof"><thead><tr><th>tenant</th><th>model</th><th>only cloud</th></tr></thead><tbody>"#);
    for p in &r.single_points_of_failure {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.tenant),
            esc(&p.model),
            esc(&p.clouds.join(", "))
        );
    }
    s.push_str(r#"</tbody></table><h3>Outage drill</h3><table id="outage"><thead><tr><th>if this cloud went away today</th><th class="num">share of requests</th><th class="num">share of cost</th><th>stranded (tenant / model)</th></tr></thead><tbody>"#);
    for o in &r.outage {
        let stranded: Vec<String> = o
            .stranded
            .iter()
            .map(|x| format!("{} / {}", x.tenant, x.model))
            .collect();
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&o.cloud),
            pct(o.share_requests),
            pct(o.share_cost),
            if stranded.is_empty() {
                "none".to_string()
            } else {
                esc(&stranded.join(", "))
            }
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// The page body for `range` (the form, then the document or the error).
pub async fn render(state: &AppState, range: &Range) -> String {
    let mut s = String::from(r#"<section class="panel wide" id="risk"><h2>Vendor risk</h2>"#);
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
        r#"<form class="filters" method="get" action="/ui/risk"><label>from (inclusive)<input type="date" name="from" value="{f}"></label><label>to (exclusive)<input type="date" name="to" value="{t}"></label><button type="submit">Show</button></form>"#,
        f = esc(&f),
        t = esc(&t)
    );
    let today = Utc::now().date_naive();
    let doc = match dates {
        Ok((from, to)) => {
            let period = Period { from, to };
            anycloud_risk::report::build(state.store.as_ref(), &state.config, period, today)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "dashboard: risk document failed");
                    "The ledger could not be read.".to_string()
                })
        }
        Err(e) => Err(e),
    };
    match doc {
        Ok(r) => s.push_str(&body(&r)),
        Err(e) => {
            let _ = write!(s, r#"<p class="error" role="alert">{}</p>"#, esc(&e));
        }
    }
    s.push_str("</section>");
    s
}
