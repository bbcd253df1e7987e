//! `[[mcp_servers]]` (upstream MCP servers the gateway fronts at `/mcp`) and the tenant's
//! `mcp = { servers, tools, deny, calls_per_minute }` policy; README "MCP gateway".
//!
//! A server is reached over Streamable HTTP (`url`) or started as a child process speaking
//! stdio (`command` + `args`). Header and environment values are `SecretString`s (they
//! usually carry tokens interpolated from `${ENV}`), so `Debug` and errors never show them.

use crate::Problem;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// One upstream MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Tools are listed to clients as `<name>__<tool>`.
    pub name: String,
    /// Streamable HTTP endpoint, e.g. `https://mcp.example.com/mcp`.
    pub url: Option<String>,
    /// Executable for a stdio server (started and restarted by the gateway).
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment for a stdio server's process (on top of the gateway's own).
    #[serde(default)]
    pub env: BTreeMap<String, SecretString>,
    /// Working directory for a stdio server's process.
    pub cwd: Option<String>,
    /// Extra HTTP headers sent to an HTTP server (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// Where the server runs; tenants' `jurisdictions` apply as they do to clouds.
    pub jurisdiction: Option<String>,
    /// Time allowed to connect and complete the MCP handshake.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed for one `tools/call` (progress does not extend it).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    10_000
}
fn default_call_timeout() -> u64 {
    60_000
}

/// A tenant's MCP policy. Without one, a tenant reaches no MCP tool.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpPolicy {
    /// Servers the tenant may use; absent = every server.
    pub servers: Option<Vec<String>>,
    /// Namespaced tool names or globs (`github__create_issue`, `search__*`); absent = every
    /// tool of the allowed servers.
    pub tools: Option<Vec<String>>,
    /// Globs refused even when `tools` allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// `tools/call` requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_minute: Option<u64>,
}

/// The separator between a server's name and its tool's name.
pub const TOOL_SEPARATOR: &str = "__";

impl McpPolicy {
    /// Problems in a policy (config tenants and admin API alike), keyed under `at`.
    pub fn problems(&self, at: &str, servers: &HashSet<&str>) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |key: String, message: String| {
            out.push(Problem {
                key,
                line: None,
                message,
            })
        };
        for (j, s) in self.servers.iter().flatten().enumerate() {
            if !servers.contains(s.as_str()) {
                push(
                    format!("{at}.servers[{j}]"),
                    format!("unknown MCP server `{s}`"),
                );
            }
        }
        for (field, list) in [
            ("tools", self.tools.as_deref().unwrap_or(&[])),
            ("deny", &self.deny),
        ] {
            for (j, g) in list.iter().enumerate() {
                if let Err(e) = globset::Glob::new(g) {
                    push(
                        format!("{at}.{field}[{j}]"),
                        format!("bad glob `{g}`: {}", e.kind()),
                    );
                } else if !g.contains(TOOL_SEPARATOR) && g != "*" {
                    push(
                        format!("{at}.{field}[{j}]"),
                        format!("`{g}` must name a namespaced tool like `server{TOOL_SEPARATOR}tool` or `server{TOOL_SEPARATOR}*`"),
                    );
                }
            }
        }
        if self.calls_per_minute == Some(0) {
            push(
                format!("{at}.calls_per_minute"),
                "must be at least 1".into(),
            );
        }
        out
    }
}

/// Checks `[[mcp_servers]]`: unique names usable as a tool prefix, exactly one of `url`
/// and `command`, a URL the HTTP client can use, header names HTTP accepts.
pub fn validate_servers(servers: &[McpServerConfig], problems: &mut Vec<Problem>) {
    let mut push = |key: String, message: String| {
        problems.push(Problem {
            key,
            line: None,
            message,
        })
    };
    let mut seen = HashSet::new();
    for (i, s) in servers.iter().enumerate() {
        let at = |k: &str| format!("mcp_servers[{i}].{k}");
        let name_ok = !s.name.is_empty()
            && !s.name.contains(TOOL_SEPARATOR)
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            push(
                at("name"),
                format!("`{}` must be letters, digits, `-` or `_`, without `{TOOL_SEPARATOR}` (tools are listed as `<name>{TOOL_SEPARATOR}<tool>`)", s.name),
            );
        }
        if !seen.insert(s.name.as_str()) {
            push(
                at("name"),
                format!("MCP server `{}` is defined twice", s.name),
            );
        }
        match (&s.url, &s.command) {
            (Some(_), Some(_)) => push(
                at("url"),
                "set either `url` (Streamable HTTP) or `command` (stdio), not both".into(),
            ),
            (None, None) => push(
                at("url"),
                "set `url` (Streamable HTTP) or `command` (stdio)".into(),
            ),
            (Some(u), None) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    push(at("url"), "must start with http:// or https://".into());
                }
                if !s.args.is_empty() || !s.env.is_empty() || s.cwd.is_some() {
                    push(
                        at("args"),
                        "`args`, `env` and `cwd` apply to stdio servers (`command`) only".into(),
                    );
                }
            }
            (None, Some(c)) => {
                if c.trim().is_empty() {
                    push(at("command"), "must not be empty".into());
                }
                if !s.headers.is_empty() {
                    push(
                        at("headers"),
                        "`headers` apply to HTTP servers (`url`) only".into(),
                    );
                }
            }
        }
        for name in s.headers.keys() {
            // Only the name is echoed: values are secrets.
            if http_header_name_invalid(name) {
                push(
                    at("headers"),
                    format!("`{name}` is not a valid HTTP header name"),
                );
            }
        }
        for (k, v) in [
            ("connect_timeout_ms", s.connect_timeout_ms),
            ("call_timeout_ms", s.call_timeout_ms),
        ] {
            if v == 0 {
                push(at(k), "must be greater than 0".into());
            }
        }
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
