//! Which tools a caller may use: the tenant's `mcp` policy, narrowed by the key's (set
//! through the admin API), the tenant's `jurisdictions` (applied to MCP servers as to
//! clouds) and the per-server drain switch. Pure functions over compiled policies, so
//! `tools/list` and `tools/call` decide alike and a refused call never reaches a server.

use anycloud_config::mcp::TOOL_SEPARATOR;
use anycloud_config::{McpPolicy, McpServerConfig, TenantConfig};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashSet;

/// A policy with its globs compiled once.
#[derive(Debug)]
pub struct Compiled {
    servers: Option<HashSet<String>>,
    tools: Option<GlobSet>,
    deny: GlobSet,
    pub calls_per_minute: Option<u64>,
}

fn globs(list: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in list {
        // Validated at config load and by the admin API; a glob that still fails to
        // compile matches nothing rather than everything.
        if let Ok(g) = Glob::new(g) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

impl Compiled {
    pub fn new(p: &McpPolicy) -> Compiled {
        Compiled {
            servers: p.servers.as_ref().map(|s| s.iter().cloned().collect()),
            tools: p.tools.as_deref().map(globs),
            deny: globs(&p.deny),
            calls_per_minute: p.calls_per_minute,
        }
    }

    fn allows_server(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.contains(server))
    }
}

/// Why a tool is out of reach; `code` is the audit and metrics outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoPolicy {
        tenant: String,
    },
    Server {
        server: String,
        by: &'static str,
    },
    Jurisdiction {
        server: String,
        jurisdiction: Option<String>,
    },
    NotAllowed {
        tool: String,
        by: &'static str,
    },
    Denied {
        tool: String,
        by: &'static str,
    },
    Drained {
        server: String,
    },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoPolicy { .. } => "no_mcp_policy",
            Refusal::Server { .. } => "server_not_allowed",
            Refusal::Jurisdiction { .. } => "jurisdiction",
            Refusal::NotAllowed { .. } => "tool_not_allowed",
            Refusal::Denied { .. } => "tool_denied",
            Refusal::Drained { .. } => "server_drained",
        }
    }

    /// The message the client reads: which rule refused (never another tenant's data).
    pub fn message(&self) -> String {
        match self {
            Refusal::NoPolicy { tenant } => format!(
                "Tenant `{tenant}` has no MCP policy, so it may use no MCP tools (tenant `mcp = {{ servers, tools, deny }}`)."
            ),
            Refusal::Server { server, by } => {
                format!("The {by}'s MCP policy does not allow server `{server}` (rule: servers).")
            }
            Refusal::Jurisdiction { server, jurisdiction } => format!(
                "MCP server `{server}` runs in jurisdiction `{}`, outside the tenant's jurisdictions (rule: jurisdiction).",
                jurisdiction.as_deref().unwrap_or("unknown")
            ),
            Refusal::NotAllowed { tool, by } => {
                format!("The {by}'s MCP policy does not allow tool `{tool}` (rule: tools).")
            }
            Refusal::Denied { tool, by } => {
                format!("Tool `{tool}` is denied by the {by}'s MCP policy (rule: deny).")
            }
            Refusal::Drained { server } => format!(
                "MCP server `{server}` is drained by an operator; its tools are unavailable until it is restored."
            ),
        }
    }
}

/// The policies that apply to one caller.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub tenant: &'a TenantConfig,
    pub tenant_policy: Option<&'a Compiled>,
    pub key_policy: Option<&'a Compiled>,
}

/// May the caller reach `server` at all (policy and jurisdiction, not drain)?
pub fn server_allowed(c: Caller<'_>, server: &McpServerConfig) -> Result<(), Refusal> {
    let Some(tp) = c.tenant_policy else {
        return Err(Refusal::NoPolicy {
            tenant: c.tenant.name.clone(),
        });
    };
    for (p, by) in [(Some(tp), "tenant"), (c.key_policy, "key")] {
        if let Some(p) = p {
            if !p.allows_server(&server.name) {
                return Err(Refusal::Server {
                    server: server.name.clone(),
                    by,
                });
            }
        }
    }
    if let Some(allowed) = &c.tenant.jurisdictions {
        let ok = server
            .jurisdiction
            .as_deref()
            .is_some_and(|j| allowed.iter().any(|a| a == j));
        if !ok {
            return Err(Refusal::Jurisdiction {
                server: server.name.clone(),
                jurisdiction: server.jurisdiction.clone(),
            });
        }
    }
    Ok(())
}

/// May the caller use `full` (`server__tool`) on `server`?
pub fn tool_allowed(c: Caller<'_>, server: &McpServerConfig, full: &str) -> Result<(), Refusal> {
    server_allowed(c, server)?;
    for (p, by) in [(c.tenant_policy, "tenant"), (c.key_policy, "key")] {
        let Some(p) = p else { continue };
        if p.deny.is_match(full) {
            return Err(Refusal::Denied {
                tool: full.to_string(),
                by,
            });
        }
        if p.tools.as_ref().is_some_and(|t| !t.is_match(full)) {
            return Err(Refusal::NotAllowed {
                tool: full.to_string(),
                by,
            });
        }
    }
    Ok(())
}

/// `server__tool` → (`server`, `tool`), split at the first separator (server names
/// cannot contain it; tool names may).
pub fn split(full: &str) -> Option<(&str, &str)> {
    let (s, t) = full.split_once(TOOL_SEPARATOR)?;
    (!s.is_empty() && !t.is_empty()).then_some((s, t))
}

pub fn namespaced(server: &str, tool: &str) -> String {
    format!("{server}{TOOL_SEPARATOR}{tool}")
}

/// The MCP policy as the admin API reads and writes it (tenants and keys); it lives
/// with the key policies it is part of.
pub use anycloud_governance::policy::McpPolicySpec;

/// The first problem with a policy from the admin API, as `config check` would word it.
pub fn problem(spec: &McpPolicySpec, servers: &[McpServerConfig]) -> Option<String> {
    let names: HashSet<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    McpPolicy::from(spec.clone())
        .problems("mcp", &names)
        .into_iter()
        .next()
        .map(|p| format!("`{}`: {}", p.key, p.message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tenant(j: Option<Vec<&str>>) -> TenantConfig {
        let mut t: TenantConfig = serde_json::from_value(serde_json::json!({"name": "t"})).unwrap();
        t.jurisdictions = j.map(|v| v.into_iter().map(str::to_string).collect());
        t
    }

    fn server(name: &str, j: Option<&str>) -> McpServerConfig {
        serde_json::from_value(
            serde_json::json!({"name": name, "url": "http://x", "jurisdiction": j}),
        )
        .unwrap()
    }

    fn policy(servers: Option<&[&str]>, tools: Option<&[&str]>, deny: &[&str]) -> Compiled {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Compiled::new(&McpPolicy {
            servers: servers.map(v),
            tools: tools.map(v),
            deny: v(deny),
            calls_per_minute: None,
        })
    }

    #[test]
    fn tools_globs_deny_and_key_narrowing() {
        let t = tenant(None);
        let gh = server("github", None);
        let tp = policy(
            None,
            Some(&["github__create_issue", "github__list_*"]),
            &["github__list_secrets"],
        );
        let c = Caller {
            tenant: &t,
            tenant_policy: Some(&tp),
            key_policy: None,
        };
        assert_eq!(tool_allowed(c, &gh, "github__create_issue"), Ok(()));
        assert_eq!(tool_allowed(c, &gh, "github__list_repos"), Ok(()));
        assert_eq!(
            tool_allowed(c, &gh, "github__delete_repo")
                .unwrap_err()
                .code(),
            "tool_not_allowed"
        );
        assert_eq!(
            tool_allowed(c, &gh, "github__list_secrets")
                .unwrap_err()
                .code(),
            "tool_denied"
        );
        let kp = policy(Some(&["search"]), None, &[]);
        let c = Caller {
            key_policy: Some(&kp),
            ..c
        };
        let e = tool_allowed(c, &gh, "github__create_issue").unwrap_err();
        assert_eq!(
            e,
            Refusal::Server {
                server: "github".into(),
                by: "key"
            }
        );
    }

    #[test]
    fn no_policy_and_jurisdiction() {
        let t = tenant(Some(vec!["eu"]));
        let c = Caller {
            tenant: &t,
            tenant_policy: None,
            key_policy: None,
        };
        assert_eq!(
            server_allowed(c, &server("a", Some("eu")))
                .unwrap_err()
                .code(),
            "no_mcp_policy"
        );
        let tp = policy(None, None, &[]);
        let c = Caller {
            tenant_policy: Some(&tp),
            ..c
        };
        assert_eq!(server_allowed(c, &server("a", Some("eu"))), Ok(()));
        assert_eq!(
            server_allowed(c, &server("b", Some("us")))
                .unwrap_err()
                .code(),
            "jurisdiction"
        );
        assert_eq!(
            server_allowed(c, &server("c", None)).unwrap_err().code(),
            "jurisdiction"
        );
    }

    #[test]
    fn split_at_first_separator() {
        assert_eq!(
            split("github__create__issue"),
            Some(("github", "create__issue"))
        );
        assert_eq!(split("nounderscore"), None);
        assert_eq!(split("__x"), None);
    }
}
