//! `anycloud route explain`: a dry run of the routing engine for one model,
//! tenant, set of needs and date. It compiles the same `RoutingTable` and
//! calls the same `route()` (via `anycloud_router::explain`) as the live
//! gateway, with no live state: nothing drained, every breaker closed, no
//! latency measured, no spend recorded.

use anycloud_router::explain::explain;
use anycloud_router::{NoSpend, NoState, RouteInput, RoutingTable};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

pub struct ExplainArgs<'a> {
    pub config: &'a Path,
    pub model: &'a str,
    pub tenant: &'a str,
    pub needs: Option<&'a str>,
    pub at: Option<&'a str>,
    pub tokens: u64,
    pub json: bool,
}

/// Exit 0 when some cloud may serve, 1 when none may (the plan is printed
/// either way).
pub fn explain_cmd(args: &ExplainArgs<'_>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(args.config)?;
    let tenant = config
        .tenants
        .iter()
        .find(|t| t.name == args.tenant)
        .with_context(|| format!("no tenant named `{}` in the config", args.tenant))?;
    let needs = anycloud_server::admin::explain::parse_needs(args.needs)
        .map_err(|m| anyhow::anyhow!("--needs: {m}"))?;
    let date = match args.at {
        None => chrono::Utc::now().date_naive(),
        Some(s) => s
            .parse()
            .with_context(|| format!("--at: `{s}` is not a date like 2031-01-01"))?,
    };
    let table = RoutingTable::new(&config);
    let input = RouteInput {
        model: args.model,
        tenant,
        needs: &needs,
        date,
        estimated_tokens: args.tokens,
        seed: 0,
        spend: &NoSpend,
    };
    let e = explain(&table, &input, &NoState);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e.to_json())?);
    } else {
        print!("{}", e.to_table());
    }
    Ok(if e.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
