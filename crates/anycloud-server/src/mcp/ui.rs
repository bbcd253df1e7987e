//! The dashboard's MCP panel: each upstream server (transport, jurisdiction,
//! connection, calls by result, the drain switch) and the most recent tool calls. Fed by
//! [`Recent`], which [`super::record::record`] updates for every call.

use crate::state::AppState;
use crate::ui::html::esc;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;

/// Tool calls kept for the panel.
const KEEP: usize = 30;

#[derive(Debug, Clone)]
struct RecentCall {
    at: chrono::DateTime<chrono::Utc>,
    tenant: String,
    tool: String,
    outcome: String,
    latency_ms: u64,
}

/// Per server: ok, failed, refused.
type Counts = [u64; 3];

#[derive(Debug, Default)]
pub struct Recent {
    // std Mutex: a push or a copy for rendering, never across an await.
    inner: Mutex<(VecDeque<RecentCall>, HashMap<String, Counts>)>,
}

impl Recent {
    pub fn push(&self, tenant: &str, server: &str, tool: &str, outcome: &str, latency_ms: u64) {
        let Ok(mut g) = self.inner.lock() else { return };
        let (calls, counts) = &mut *g;
        if calls.len() == KEEP {
            calls.pop_back();
        }
        calls.push_front(RecentCall {
            at: chrono::Utc::now(),
            tenant: tenant.to_string(),
            tool: tool.to_string(),
            outcome: outcome.to_string(),
            latency_ms,
        });
        // Only configured servers get a row (bounded).
        let i = match super::record::outcome_label(outcome) {
            "ok" | "tool_error" => 0,
            "denied" | "rate_limited" | "drained" | "unknown_tool" => 2,
            _ => 1,
        };
        if let Some(c) = counts.get_mut(server) {
            c[i] += 1;
        } else if counts.len() < 1000 {
            let mut c = Counts::default();
            c[i] += 1;
            counts.insert(server.to_string(), c);
        }
    }

    fn snapshot(&self) -> (Vec<RecentCall>, HashMap<String, Counts>) {
        match self.inner.lock() {
            Ok(g) => (g.0.iter().cloned().collect(), g.1.clone()),
            Err(_) => (Vec::new(), HashMap::new()),
        }
    }
}

pub fn panel(state: &AppState, csrf: &str) -> String {
    let views = super::admin::views(state);
    if views.is_empty() {
        return "<p class=\"muted\">No MCP servers are configured (<code>[[mcp_servers]]</code>).</p>".into();
    }
    let (calls, counts) = state.mcp.recent.snapshot();
    let mut s = String::from(
        r#"<table><thead><tr><th>MCP server</th><th>transport</th><th>jurisdiction</th><th>connection</th><th>state</th><th class="num">served</th><th class="num">failed</th><th class="num">refused</th><th></th></tr></thead><tbody>"#,
    );
    for v in &views {
        let c = counts.get(&v.name).copied().unwrap_or_default();
        let (action, label, class) = if v.drained {
            ("restore", "Restore", "")
        } else {
            ("drain", "Drain", " class=\"danger\"")
        };
        let _ = write!(
            s,
            r#"<tr data-mcp-server="{n}"><td><b>{n}</b></td><td>{t}</td><td>{j}</td><td>{conn}</td><td>{d}</td><td class="num">{ok}</td><td class="num">{failed}</td><td class="num">{refused}</td><td><form class="inline" method="post" action="/ui/mcp/{n}/{action}"><input type="hidden" name="csrf" value="{csrf}"><button type="submit"{class}>{label}</button></form></td></tr>"#,
            n = esc(&v.name),
            t = v.transport,
            j = esc(v.jurisdiction.as_deref().unwrap_or("–")),
            conn = v.connection,
            d = if v.drained {
                r#"<span class="badge bad">drained</span>"#
            } else {
                r#"<span class="badge">serving</span>"#
            },
            ok = c[0],
            failed = c[1],
            refused = c[2],
            csrf = esc(csrf),
        );
    }
    s.push_str("</tbody></table><p class=\"muted\">Drain and Restore are audited like <code>POST /admin/v1/mcp/servers/{name}/drain|restore</code>; every call is an audit entry <a href=\"/ui/audit?action=mcp.tools_call\">mcp.tools_call</a>.</p>");
    s.push_str(r#"<table id="mcp-calls"><thead><tr><th>time (UTC)</th><th>tenant</th><th>tool</th><th>result</th><th class="num">latency</th></tr></thead><tbody>"#);
    if calls.is_empty() {
        s.push_str(r#"<tr><td colspan="5" class="muted">No tool calls yet.</td></tr>"#);
    }
    for c in &calls {
        let badge = match super::record::outcome_label(&c.outcome) {
            "ok" => "",
            "denied" | "rate_limited" | "drained" | "unknown_tool" => " warn",
            _ => " bad",
        };
        let _ = write!(
            s,
            r#"<tr><td>{at}</td><td>{tenant}</td><td><code>{tool}</code></td><td><span class="badge{badge}">{outcome}</span></td><td class="num">{ms} ms</td></tr>"#,
            at = c.at.format("%H:%M:%S"),
            tenant = esc(&c.tenant),
            tool = esc(&c.tool),
            outcome = esc(&c.outcome),
            ms = c.latency_ms,
        );
    }
    s.push_str("</tbody></table>");
    s
}
