//! `/ui/audit`: the audit-trail viewer — the hash-chained log filtered by
//! tenant, cloud and action, paged by sequence number, with the chain's
//! status from the same walk as `GET /admin/v1/audit/verify`.
//!
//! Without filters the first page is the newest one (sequence numbers are
//! contiguous from 1, so the last page starts at `count - limit`); with
//! filters pages run forward from the oldest match.

use super::html::{esc, usd};
use crate::state::AppState;
use anycloud_store::{AuditQuery, AuditRecord, ChainStatus};
use serde::Deserialize;
use std::fmt::Write;

const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub cloud: String,
    #[serde(default)]
    pub action: String,
    pub after: Option<i64>,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl Filters {
    fn any(&self) -> bool {
        [&self.tenant, &self.cloud, &self.action]
            .iter()
            .any(|s| !s.trim().is_empty())
    }

    fn link(&self, after: i64) -> String {
        format!(
            "/ui/audit?tenant={}&cloud={}&action={}&after={after}",
            enc(&self.tenant),
            enc(&self.cloud),
            enc(&self.action)
        )
    }
}

/// Percent-encodes a query value (unreserved characters kept).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.trim().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn chain_banner(status: &Result<ChainStatus, String>) -> (String, i64) {
    match status {
        Ok(ChainStatus::Intact { count }) => (
            format!(
                r#"<div class="chain intact" id="chain-status">Chain status: <b class="ok">intact</b> — {count} entries verified from the first.</div>"#
            ),
            *count,
        ),
        Ok(ChainStatus::Broken {
            seq,
            verified,
            problem,
        }) => (
            format!(
                r#"<div class="chain broken" id="chain-status">Chain status: <b class="error">broken</b> at entry {seq} ({}); {verified} entries verified before it.</div>"#,
                esc(problem)
            ),
            *verified,
        ),
        Err(e) => (
            format!(
                r#"<div class="chain broken" id="chain-status">{}</div>"#,
                esc(e)
            ),
            0,
        ),
    }
}

fn row(r: &AuditRecord) -> String {
    let e = &r.entry;
    let route = e
        .route
        .as_ref()
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|d| {
                    let g = |k: &str| d.get(k).and_then(|x| x.as_str()).unwrap_or("");
                    match g("reason") {
                        "" => format!("{}:{}", g("cloud"), g("outcome")),
                        reason => format!("{}:{}({reason})", g("cloud"), g("outcome")),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let detail = e.detail.as_ref().map(|d| d.to_string()).unwrap_or_default();
    format!(
        r#"<tr><td class="num">{seq}</td><td>{at}</td><td>{actor}</td><td>{tenant}</td><td><b>{action}</b></td><td>{model}</td><td>{cloud}</td><td class="num">{status}</td><td class="num">{cost}</td><td class="route">{route}</td><td class="detail" title="{detail}"><code>{detail}</code></td><td title="{hash}"><code>{short}…</code></td></tr>"#,
        seq = r.seq,
        at = e.at.format("%Y-%m-%d %H:%M:%S"),
        actor = esc(&e.actor),
        tenant = esc(e.tenant.as_deref().unwrap_or("")),
        action = esc(&e.action),
        model = esc(e.model.as_deref().unwrap_or("")),
        cloud = esc(e.cloud.as_deref().unwrap_or("")),
        status = e.status.map(|s| s.to_string()).unwrap_or_default(),
        cost = e.cost_usd.map(usd).unwrap_or_default(),
        route = esc(&route),
        detail = esc(&detail),
        hash = esc(&r.hash),
        short = esc(r.hash.get(..12).unwrap_or(&r.hash)),
    )
}

/// The viewer's page body.
pub async fn render(state: &AppState, f: &Filters) -> String {
    // Read-your-writes: queued entries (≤ 50 ms old) belong on the page and in the check.
    state.governance.audit.flush().await;
    let status = state.store.verify_audit().await.map_err(|e| {
        tracing::error!(error = %e, "dashboard: audit verify failed");
        "The audit log could not be read.".to_string()
    });
    let (banner, count) = chain_banner(&status);
    let after = f
        .after
        .unwrap_or(if f.any() {
            0
        } else {
            (count - i64::from(PAGE)).max(0)
        })
        .max(0);
    let q = AuditQuery {
        from: None,
        to: None,
        tenant: opt(&f.tenant),
        cloud: opt(&f.cloud),
        action: opt(&f.action),
        after: Some(after),
        limit: PAGE,
    };
    let mut s = String::from(r#"<section class="panel wide" id="audit"><h2>Audit trail</h2>"#);
    s.push_str(&banner);
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="/ui/audit"><label>tenant<input name="tenant" value="{}"></label><label>cloud<input name="cloud" value="{}"></label><label>action<input name="action" list="actions" value="{}" placeholder="e.g. admin.cloud.drain"></label><datalist id="actions"><option value="admin.cloud.drain"><option value="admin.cloud.restore"><option value="ai.chat_completions"><option value="ai.messages"><option value="ai.embeddings"><option value="admin.key.create"><option value="mcp.tools_call"><option value="admin.mcp.drain"></datalist><button type="submit">Filter</button> <a href="/ui/audit">clear</a></form>"#,
        esc(&f.tenant),
        esc(&f.cloud),
        esc(&f.action)
    );
    let rows = match state.store.query_audit(&q).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "dashboard: audit query failed");
            s.push_str(r#"<p class="error">The audit log could not be read.</p></section>"#);
            return s;
        }
    };
    if rows.is_empty() {
        s.push_str(r#"<p class="muted">No entries match.</p>"#);
    } else {
        s.push_str(r#"<div class="scroll"><table id="audit-table"><thead><tr><th class="num">seq</th><th>time (UTC)</th><th>actor</th><th>tenant</th><th>action</th><th>model</th><th>cloud</th><th class="num">status</th><th class="num">cost</th><th>route</th><th>detail</th><th>hash</th></tr></thead><tbody>"#);
        // Newest first within the page.
        for r in rows.iter().rev() {
            s.push_str(&row(r));
        }
        s.push_str("</tbody></table></div>");
    }
    s.push_str(r#"<div class="pager">"#);
    if after > 0 && !f.any() {
        let _ = write!(
            s,
            r#"<a href="{}">← older</a>"#,
            esc(&f.link((after - i64::from(PAGE)).max(0)))
        );
    } else if after > 0 {
        let _ = write!(s, r#"<a href="{}">← first matches</a>"#, esc(&f.link(0)));
    }
    if rows.len() as u32 == PAGE {
        if let Some(last) = rows.last() {
            let _ = write!(s, r#"<a href="{}">newer →</a>"#, esc(&f.link(last.seq)));
        }
    }
    let _ = write!(
        s,
        r#"<span class="muted">entries {}–{} shown</span></div></section>"#,
        rows.first().map(|r| r.seq).unwrap_or(0),
        rows.last().map(|r| r.seq).unwrap_or(0)
    );
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc(" a b&c=d "), "a%20b%26c%3Dd");
        let f = Filters {
            action: "admin.cloud.drain".into(),
            ..Filters::default()
        };
        assert_eq!(
            f.link(7),
            "/ui/audit?tenant=&cloud=&action=admin.cloud.drain&after=7"
        );
    }
}
