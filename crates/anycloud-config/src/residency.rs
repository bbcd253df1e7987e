//! Checks for data residency at rest (`[store.content]` and each tenant's
//! `data_jurisdiction`, README "Data residency at rest").
//!
//! Problems: a content store URL the store cannot open, and — once `[store.content]`
//! exists — a tenant whose content would have nowhere to go. Warnings (the config still
//! loads): a tenant whose requests may be processed by clouds outside the jurisdiction
//! its content is kept in.

use crate::{Config, Problem, TenantConfig};

pub(crate) fn validate(c: &Config, problems: &mut Vec<Problem>) {
    for (j, url) in &c.store.content {
        if j.is_empty() {
            problems.push(problem(
                "store.content".into(),
                "a jurisdiction name must not be empty",
            ));
        }
        if !is_store_url(url) {
            // Never echo the URL: a postgres:// URL may hold a password.
            problems.push(problem(
                format!("store.content.{j}"),
                "must start with sqlite:// or postgres://",
            ));
        }
    }
    if c.store.content.is_empty() {
        return;
    }
    for (i, t) in c.tenants.iter().enumerate() {
        if let Some(message) = placement_problem(c, t) {
            let key = if t.data_jurisdiction.is_some() {
                format!("tenants[{i}].data_jurisdiction")
            } else {
                format!("tenants[{i}]")
            };
            problems.push(problem(key, message));
        }
    }
}

/// Why `t`'s content has nowhere to go under `[store.content]`, if it has not. Shared
/// with the admin API, which checks tenants it creates the same way.
pub fn placement_problem(c: &Config, t: &TenantConfig) -> Option<String> {
    if c.store.content.is_empty() {
        return None;
    }
    match t.data_jurisdiction() {
        None => Some(format!(
            "tenant `{}` has no data jurisdiction: set `data_jurisdiction` (one of {}) or \
             give it exactly one jurisdiction",
            t.name,
            known(c)
        )),
        Some(j) if !c.store.content.contains_key(j) => Some(format!(
            "tenant `{}` keeps its content in `{j}`, which has no content store: add `{j}` \
             to [store.content] (configured: {})",
            t.name,
            known(c)
        )),
        Some(_) => None,
    }
}

/// Tenants whose requests may be processed outside the jurisdiction their content is kept
/// in: their allowed jurisdictions (or clouds, when jurisdictions are unrestricted) reach
/// beyond it. Not an error — processing and storage are separate choices — but an auditor
/// will ask.
pub fn warnings(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, t) in c.tenants.iter().enumerate() {
        let Some(home) = t.data_jurisdiction() else {
            continue;
        };
        let allowed = c.clouds.iter().filter(|cl| {
            t.clouds.as_ref().is_none_or(|cs| cs.contains(&cl.name))
                && match (&t.jurisdictions, &cl.jurisdiction) {
                    (None, _) => true,
                    (Some(js), Some(j)) => js.contains(j),
                    (Some(_), None) => false,
                }
        });
        let outside: Vec<String> = allowed
            .filter(|cl| cl.jurisdiction.as_deref() != Some(home))
            .map(|cl| {
                format!(
                    "{} ({})",
                    cl.name,
                    cl.jurisdiction.as_deref().unwrap_or("no jurisdiction")
                )
            })
            .collect();
        if !outside.is_empty() {
            out.push(problem(
                format!("tenants[{i}].jurisdictions"),
                format!(
                    "tenant `{}` keeps its content in `{home}` but may be served by clouds \
                     outside it: {}",
                    t.name,
                    outside.join(", ")
                ),
            ));
        }
    }
    out
}

fn is_store_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn known(c: &Config) -> String {
    c.store
        .content
        .keys()
        .map(|j| format!("`{j}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn problem(key: String, message: impl Into<String>) -> Problem {
    Problem {
        key,
        line: None,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const BASE: &str = r#"
[store]
url = "sqlite://main.db"

[[clouds]]
name = "azure-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
jurisdiction = "eu"

[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
jurisdiction = "us"
"#;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigError> {
        crate::parse_str(&format!("{BASE}{extra}"), Path::new("a.toml"), &|_| None)
    }

    fn messages(r: Result<crate::Config, crate::ConfigError>) -> String {
        match r {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn without_content_stores_every_tenant_loads() {
        let c = parse("[[tenants]]\nname = \"a\"\n").map_err(|e| e.to_string());
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn the_one_jurisdiction_is_the_data_jurisdiction() {
        let c = parse(
            "[store.content]\neu = \"sqlite://eu.db\"\n[[tenants]]\nname = \"a\"\njurisdictions = [\"eu\"]\n",
        );
        let c = c.map_err(|e| e.to_string());
        assert_eq!(
            c.as_ref()
                .ok()
                .and_then(|c| c.tenants[0].data_jurisdiction()),
            Some("eu"),
            "{c:?}"
        );
    }

    #[test]
    fn a_tenant_without_a_content_store_is_refused_with_its_line() {
        let e = messages(parse(
            "[store.content]\neu = \"sqlite://eu.db\"\n[[tenants]]\nname = \"a\"\njurisdictions = [\"eu\"]\ndata_jurisdiction = \"us\"\n[[tenants]]\nname = \"b\"\njurisdictions = [\"eu\", \"us\"]\n",
        ));
        assert!(
            e.contains("tenants[0].data_jurisdiction")
                && e.contains("`us`, which has no content store"),
            "{e}"
        );
        assert!(e.contains("tenant `b` has no data jurisdiction"), "{e}");
    }

    #[test]
    fn a_bad_content_url_is_refused_without_echoing_it() {
        let e = messages(parse("[store.content]\neu = \"mysql://u:hunter2@h/db\"\n"));
        assert!(e.contains("store.content.eu"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_tenant_that_may_be_served_outside_its_data_jurisdiction_is_warned() {
        let c = parse(
            "[store.content]\neu = \"sqlite://eu.db\"\nus = \"sqlite://us.db\"\n[[tenants]]\nname = \"wide\"\njurisdictions = [\"eu\", \"us\"]\ndata_jurisdiction = \"eu\"\n[[tenants]]\nname = \"tight\"\njurisdictions = [\"eu\"]\n",
        );
        let Ok(c) = c else {
            unreachable!("{}", messages(c))
        };
        let w = super::warnings(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].message.contains("`wide`") && w[0].message.contains("azure-us (us)"),
            "{w:?}"
        );
    }
}
