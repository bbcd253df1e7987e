//! Keeps the server's modules layered (ARCHITECTURE.md "Crates"): `AppState` is built
//! from the parts below it (auth, cluster coordination, metrics, outcome sinks, …) and
//! read by the HTTP layer above it (pipeline, handlers, middleware). A part that reached
//! back up into `AppState` made one import cycle of 17 files once; these tests read the
//! crate's own sources so that it cannot come back unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The HTTP layer: modules that may read `AppState` (its fields are what they serve).
/// `state` is the composition root. Everything else is a part `AppState` is built from
/// and must get what it needs passed in.
const MAY_READ_STATE: &[&str] = &[
    "admin",
    "admin_auth",
    "app",
    "dispatch",
    "fuzzing",
    "health",
    "ingress",
    "mcp",
    "request_id",
    "state",
    "ui",
];

/// Top-level module → its sources with comments removed.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let Ok(rel) = path.strip_prefix(&src) else {
                continue;
            };
            let Some(first) = rel.components().next() else {
                continue;
            };
            let top = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            // The crate root and this file (which names what it looks for).
            if top == "lib" || top == "layering" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            out.entry(top).or_default().push_str(&code);
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` names through `crate::` (grouped imports included).
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the names at the group's own depth.
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        out.insert(ident(&group[j..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest).to_string());
        }
    }
    out
}

#[test]
fn only_the_http_layer_reads_app_state() {
    let mods = modules();
    assert!(
        mods.contains_key("state") && mods.contains_key("auth"),
        "sources not found"
    );
    let offenders: Vec<&String> = mods
        .iter()
        .filter(|(m, _)| !MAY_READ_STATE.contains(&m.as_str()))
        .filter(|(_, code)| code.contains("AppState") || code.contains("crate::state"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        offenders.is_empty(),
        "{offenders:?} reach up into AppState: pass them what they need instead \
         (or, for an HTTP handler, add its module to MAY_READ_STATE)"
    );
}

#[test]
fn no_import_cycle_outside_the_http_layer() {
    let mods = modules();
    let graph: BTreeMap<&str, BTreeSet<String>> = mods
        .iter()
        .map(|(m, code)| {
            let deps = uses(code)
                .into_iter()
                .filter(|d| d != m && mods.contains_key(d))
                .collect();
            (m.as_str(), deps)
        })
        .collect();
    // Whatever `m` reaches; `m` is in a cycle when it reaches itself.
    for (&m, _) in graph.iter().filter(|(m, _)| !MAY_READ_STATE.contains(m)) {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = graph[m].iter().map(String::as_str).collect();
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                todo.extend(graph.get(n).into_iter().flatten().map(String::as_str));
            }
        }
        assert!(
            !seen.contains(m),
            "`{m}` is in an import cycle (it reaches {seen:?}); a part below AppState must \
             not import what imports it"
        );
    }
}

#[test]
fn grouped_imports_are_seen() {
    let found = uses("use crate::{auth::{A, B}, error::E};\nlet x = crate::metrics::M;");
    let want: BTreeSet<String> = ["auth", "error", "metrics"].map(String::from).into();
    assert_eq!(found, want);
}
