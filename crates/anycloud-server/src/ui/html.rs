//! HTML building blocks shared by the dashboard's pages: escaping, the page
//! frame (header, navigation, logout) and the static CSS and JS, which are
//! compiled into the binary (no build step, nothing fetched at run time).

use std::fmt::Write;

pub const CSS: &str = include_str!("assets/app.css");
pub const JS: &str = include_str!("assets/app.js");

/// Escapes text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Audit,
    Ledger,
    Risk,
}

/// A full page for a logged-in user: header with navigation and a logout
/// form carrying the session's CSRF token.
pub fn page(title: &str, nav: Nav, csrf: &str, body: &str) -> String {
    let link = |n: Nav, href: &str, text: &str| {
        format!(
            r#"<a href="{href}"{}>{text}</a>"#,
            if n == nav {
                r#" aria-current="page""#
            } else {
                ""
            }
        )
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · anycloud</title><link rel="stylesheet" href="/ui/static/app.css">
<script src="/ui/static/app.js" defer></script></head><body>
<header><span class="brand">anycloud</span><nav>{d}{a}{l}{r}</nav>
<span id="updated" class="muted"></span>
<form method="post" action="/ui/logout"><input type="hidden" name="csrf" value="{c}"><button type="submit">Log out</button></form></header>
<main>{body}</main></body></html>"#,
        t = esc(title),
        d = link(Nav::Dashboard, "/ui", "Dashboard"),
        a = link(Nav::Audit, "/ui/audit", "Audit trail"),
        l = link(Nav::Ledger, "/ui/ledger", "Ledger report"),
        r = link(Nav::Risk, "/ui/risk", "Risk"),
        c = esc(csrf),
    );
    s
}

/// The login page, with an optional error.
pub fn login(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · anycloud</title><link rel="stylesheet" href="/ui/static/app.css"></head>
<body class="login"><main><form method="post" action="/ui/login" class="panel">
<h1>anycloud dashboard</h1>{err}
<label for="token">Admin token (<code>server.admin_token</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button></form></main></body></html>"#
    )
}

/// A panel the page script refreshes from `/ui/panel/{name}`.
pub fn panel(name: &str, title: &str, class: &str, body: &str) -> String {
    format!(
        r#"<section class="panel {class}" id="panel-{name}" data-panel="{name}"><h2>{t}</h2><div class="body">{body}</div></section>"#,
        t = esc(title)
    )
}

/// USD with enough decimals for demo-sized amounts.
pub fn usd(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("${v:.2}")
    } else if v.abs() >= 1.0 {
        format!("${v:.3}")
    } else {
        format!("${v:.6}")
    }
}

/// A progress bar: `fraction` of 1.0, an optional marker (e.g. "expected by now").
pub fn meter(fraction: f64, marker: Option<f64>, label: &str, warn: bool) -> String {
    let pct = (fraction.clamp(0.0, 1.0) * 100.0).round();
    let mark = marker
        .map(|m| {
            format!(
                r#"<span class="mark" style="left:{:.0}%"></span>"#,
                m.clamp(0.0, 1.0) * 100.0
            )
        })
        .unwrap_or_default();
    format!(
        r#"<div class="meter{}" title="{l}"><span class="fill" style="width:{pct}%"></span>{mark}<span class="text">{l}</span></div>"#,
        if warn { " warn" } else { "" },
        l = esc(label)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn login_page_shows_the_error_escaped() {
        let p = login(Some("<bad>"));
        assert!(p.contains("&lt;bad&gt;") && p.contains(r#"role="alert""#));
        assert!(!login(None).contains("role=\"alert\""));
    }
}
