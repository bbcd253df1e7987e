//! `anycloud store residency --config F [--format table|json]`: where each tenant's
//! content (stored responses, captured payloads) lives, and — as evidence rather than
//! intent — how many rows of each tenant every store actually holds: the main store and
//! each content store of `[store.content]` (README "Data residency at rest").
//!
//! [`collect`] is the report as data, for other reports (e.g. a risk report) to embed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anycloud_config::Config;
use anycloud_store::residency::{policy_jurisdiction, tenant_rows};
use serde::Serialize;

/// One store and the content rows it holds per tenant.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRows {
    /// `main` or the jurisdiction of a content store.
    pub store: String,
    pub backend: &'static str,
    /// tenant → rows.
    pub tenants: BTreeMap<String, Rows>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Rows {
    pub responses: u64,
    pub captures: u64,
}

/// Where one tenant's content is meant to live.
#[derive(Debug, Clone, Serialize)]
pub struct TenantPlacement {
    pub tenant: String,
    pub data_jurisdiction: Option<String>,
    /// `main`, a content store's jurisdiction, or `null`: content refused (no store).
    pub store: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tenants: Vec<TenantPlacement>,
    pub stores: Vec<StoreRows>,
}

impl Report {
    /// Rows of `tenant` found in a store other than its own: residency broken.
    pub fn misplaced(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tenants {
            for s in &self.stores {
                let rows = s.tenants.get(&t.tenant).copied().unwrap_or_default();
                let own = t.store.as_deref() == Some(s.store.as_str());
                // Rows in the main store from before content stores were configured are
                // reported too: they are outside the tenant's jurisdiction.
                if !own && rows != Rows::default() {
                    out.push(format!(
                        "tenant `{}`: {} responses and {} captures in store `{}`, outside its content store ({})",
                        t.tenant,
                        rows.responses,
                        rows.captures,
                        s.store,
                        t.store.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
        out
    }
}

/// Builds the report: every tenant of the config and of the main store, and the rows of
/// each in every store.
pub async fn collect(config: &Config) -> anyhow::Result<Report> {
    let store = super::open_store(config).await?;
    let mut placements: BTreeMap<String, Option<String>> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|r| {
            let j = policy_jurisdiction(&r.policy);
            (r.name, j)
        })
        .collect();
    for t in &config.tenants {
        placements.insert(t.name.clone(), t.data_jurisdiction().map(str::to_owned));
    }
    // The main store: through the wrapper, whole-table reads see the main store only.
    let mut stores = vec![StoreRows {
        store: "main".into(),
        backend: store.backend(),
        tenants: rows(store.as_ref()).await?,
    }];
    if let Some(residency) = store.residency() {
        for j in residency.jurisdictions() {
            if let Some(s) = residency.store(j) {
                stores.push(StoreRows {
                    store: j.to_owned(),
                    backend: s.backend(),
                    tenants: rows(s.as_ref()).await?,
                });
            }
        }
    }
    // Tenants only found in a store (e.g. deleted from the config) are listed too.
    let seen: BTreeSet<String> = stores
        .iter()
        .flat_map(|s| s.tenants.keys().cloned())
        .collect();
    for t in seen {
        placements.entry(t).or_insert(None);
    }
    let tenants = placements
        .into_iter()
        .map(|(tenant, data_jurisdiction)| {
            let store = if config.store.content.is_empty() {
                Some("main".to_owned())
            } else {
                data_jurisdiction
                    .clone()
                    .filter(|j| config.store.content.contains_key(j))
            };
            TenantPlacement {
                tenant,
                data_jurisdiction,
                store,
            }
        })
        .collect();
    Ok(Report { tenants, stores })
}

async fn rows(store: &dyn anycloud_store::Store) -> anyhow::Result<BTreeMap<String, Rows>> {
    Ok(tenant_rows(store)
        .await?
        .into_iter()
        .map(|(t, (responses, captures))| {
            (
                t,
                Rows {
                    responses,
                    captures,
                },
            )
        })
        .collect())
}

pub async fn run(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let report = collect(&config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    let misplaced = report.misplaced();
    for m in &misplaced {
        eprintln!("outside its jurisdiction: {m}");
    }
    Ok(if misplaced.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per tenant: where its content belongs, then `responses/captures` found in
/// each store.
fn print_table(r: &Report) {
    let mut header = format!(
        "{:<20} {:<18} {:<10}",
        "TENANT", "DATA JURISDICTION", "STORE"
    );
    for s in &r.stores {
        header.push_str(&format!(" {:>16}", format!("{} ({})", s.store, s.backend)));
    }
    println!("{header}");
    for t in &r.tenants {
        let mut line = format!(
            "{:<20} {:<18} {:<10}",
            t.tenant,
            t.data_jurisdiction.as_deref().unwrap_or("-"),
            t.store.as_deref().unwrap_or("none")
        );
        for s in &r.stores {
            let rows = s.tenants.get(&t.tenant).copied().unwrap_or_default();
            line.push_str(&format!(
                " {:>16}",
                format!("{}/{}", rows.responses, rows.captures)
            ));
        }
        println!("{line}");
    }
    println!("(cells: stored responses/captures of the tenant in that store)");
}
