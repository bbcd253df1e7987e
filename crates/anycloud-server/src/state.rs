//! Everything a request needs, built once at start: the validated config,
//! the compiled routing table, one provider per cloud, the store, caches and
//! metrics. Nothing here is parsed per request.

use crate::auth::Directory;
use crate::cloud_state::CloudStates;
use crate::cluster::events::{Broadcast, Event};
use crate::metrics::Metrics;
use crate::outcome::OutcomeSink;
use anycloud_config::{Config, TenantConfig};
use anycloud_governance::Governance;
use anycloud_providers::Providers;
use anycloud_router::RoutingTable;
use anycloud_store::{Store, TenantRecord};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub routes: RoutingTable,
    pub providers: Providers,
    pub store: Arc<dyn Store>,
    /// Keys and the live tenants they belong to (authentication).
    pub directory: Directory,
    /// Shared with the spend sink, which records every served attempt's cost.
    pub clouds: Arc<CloudStates>,
    pub metrics: Arc<Metrics>,
    /// Request and attempt spans (OpenTelemetry, when `[telemetry]` is on).
    pub tracing: Arc<crate::telemetry::Tracing>,
    /// Where finished requests go (ledger, audit, …).
    pub sinks: Arc<[Arc<dyn OutcomeSink>]>,
    /// Admission (back-pressure, budgets, rate limits), key policies, the audit trail,
    /// payload capture and every bookkeeping queue (for `/readyz` and metrics too).
    pub governance: Governance,
    /// Broadcasts to the other instances through Redis (`store.redis_url`).
    pub broadcast: Option<Arc<Broadcast>>,
    /// The dashboard: sessions and its in-memory traffic recorder (a sink).
    pub ui: crate::ui::UiState,
    /// `/mcp` and the upstream MCP servers.
    pub mcp: crate::mcp::McpGateway,
    /// Failed admin-token attempts per client address (`admin_auth`).
    pub auth_failures: crate::admin_auth::FailedAuthLimiter,
    /// Which deployment served each conversation's last turn (cache affinity).
    pub affinity: crate::affinity::Affinity,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cloud setup failed: {0}")]
    Provider(#[from] anycloud_providers::ProviderError),
    #[error("store: {0}")]
    Store(#[from] anycloud_store::StoreError),
    #[error("capture: {0}")]
    Capture(#[from] anycloud_governance::capture::CaptureError),
    #[error("redis: {0}")]
    Redis(#[from] crate::cluster::link::LinkError),
}

/// Loads each committed cloud's daily spend within its commitment window from the
/// ledger into `clouds`. Spend settled by other instances after this start is not seen
/// until their next restart (the strategy steers; it does not meter).
async fn seed_commitment_spend(
    clouds: &CloudStates,
    store: &dyn Store,
    config: &Config,
) -> Result<(), StartError> {
    let midnight = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let mut seen = std::collections::HashSet::new();
    for c in &config.agreements.commitment {
        if !seen.insert(c.cloud.as_str()) {
            continue; // two windows for one cloud: the store's days are loaded once
        }
        let windows = config
            .agreements
            .commitment
            .iter()
            .filter(|o| o.cloud == c.cloud);
        let from = windows.clone().map(|o| o.from).min().unwrap_or(c.from);
        let to = windows.map(|o| o.to).max().unwrap_or(c.to);
        for day in store
            .daily_cost(
                &c.cloud,
                Some(midnight(from)),
                midnight(to + chrono::Days::new(1)),
            )
            .await?
        {
            clouds.record_spend(&c.cloud, day.day, day.cost_nanos as f64 / 1e9);
        }
    }
    Ok(())
}

impl AppState {
    /// Builds the state and syncs the configured tenants into the store.
    pub async fn build(config: Config, store: Arc<dyn Store>) -> Result<Arc<AppState>, StartError> {
        Self::build_with_sinks(config, store, Vec::new()).await
    }

    /// Like [`AppState::build`], with sinks that see every finished request.
    pub async fn build_with_sinks(
        config: Config,
        store: Arc<dyn Store>,
        sinks: Vec<Arc<dyn OutcomeSink>>,
    ) -> Result<Arc<AppState>, StartError> {
        let providers = Providers::from_config(&config.clouds)?;
        let records: Vec<TenantRecord> = config
            .tenants
            .iter()
            .map(|t| TenantRecord {
                name: t.name.clone(),
                policy: tenant_policy_json(t),
            })
            .collect();
        store.sync_tenants(&records).await?;
        let mut metrics = Metrics::new(&config);
        let link = match &config.store.redis_url {
            Some(url) => Some(Arc::new(
                crate::cluster::link::RedisLink::connect(
                    url,
                    &config.store.redis_prefix,
                    config.store.redis_down,
                    metrics.register_redis(),
                )
                .await?,
            )),
            None => None,
        };
        let governance = Governance::new(store.clone(), &config, link.clone())?;
        if let Some(residency) = store.residency() {
            crate::residency::observe(
                residency,
                metrics.register_content(),
                governance.audit.clone(),
            );
        }
        let mcp = crate::mcp::McpGateway::new(
            &config,
            crate::mcp::McpMetrics::register(&mut metrics.registry, !config.mcp_servers.is_empty()),
        );
        let metrics = Arc::new(metrics);
        governance.audit.on_flush(metrics.flush_observer("audit"));
        governance
            .budgets
            .on_flush(metrics.flush_observer("budget_spend"));
        let mut sinks = sinks;
        sinks.push(metrics.clone());
        sinks.push(Arc::new(crate::access_log::AccessLog));
        let tracing = Arc::new(crate::telemetry::Tracing::new(&config));
        sinks.push(tracing.clone());
        sinks.push(governance.audit.clone());
        sinks.push(Arc::new(governance.settler()));
        let routes = RoutingTable::new(&config);
        let clouds = Arc::new(CloudStates::with_config(
            config.clouds.iter().map(|c| c.name.as_str()),
            config.routing.breaker,
        ));
        // Spend per cloud for the `commitment` strategy: what the ledger already holds
        // for each commitment's window (so a restart does not forget it), then every
        // finished request (streams and every ingress API included).
        seed_commitment_spend(&clouds, store.as_ref(), &config).await?;
        let mut sinks = sinks;
        sinks.push(Arc::new(crate::cloud_state::SpendSink(clouds.clone())));
        // The dashboard's last 15 minutes per cloud and recent route decisions.
        let ui = crate::ui::UiState::new(config.clouds.iter().map(|c| c.name.as_str()));
        sinks.push(ui.recorder.clone());
        // Config tenants as configured; tenants created through the admin API from the store.
        let mut tenants: HashMap<String, Arc<TenantConfig>> = HashMap::new();
        for rec in store.list_tenants().await? {
            match tenant_from_policy(&rec.name, &rec.policy) {
                Some(t) => {
                    tenants.insert(rec.name.clone(), Arc::new(t));
                }
                None => {
                    tracing::warn!(tenant = %rec.name, "stored tenant policy is unreadable; tenant skipped")
                }
            }
        }
        for t in &config.tenants {
            tenants.insert(t.name.clone(), Arc::new(t.clone()));
        }
        let auth_failures =
            crate::admin_auth::FailedAuthLimiter::new(config.server.admin_auth_failures_per_minute);
        let state = Arc::new(AppState {
            config: Arc::new(config),
            routes,
            providers,
            directory: Directory::new(store.clone(), tenants),
            store,
            auth_failures,
            clouds,
            metrics,
            tracing,
            sinks: sinks.into(),
            governance,
            affinity: match &link {
                Some(l) => crate::affinity::Affinity::shared(l.clone()),
                None => crate::affinity::Affinity::local(),
            },
            broadcast: link.map(|l| Arc::new(Broadcast::new(l))),
            ui,
            mcp,
        });
        state.mcp.start();
        if let Some(b) = &state.broadcast {
            // Drains made on other instances before this one started.
            b.resync_drains(&state.clouds).await;
            crate::cluster::spawn(Arc::downgrade(&state), b.clone());
        }
        Ok(state)
    }

    /// Re-reads a tenant from the store (another instance changed it through the admin API).
    pub async fn reload_tenant(&self, name: &str) {
        let stored = match self.store.list_tenants().await {
            Ok(all) => all.into_iter().find(|r| r.name == name),
            Err(e) => {
                tracing::error!(error = %e, tenant = %name, "tenant reload failed");
                return;
            }
        };
        if let Some(t) = stored.and_then(|r| tenant_from_policy(&r.name, &r.policy)) {
            self.directory.set_tenant(t);
        }
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<TenantConfig>> {
        self.directory.tenant(name)
    }

    /// Every tenant, ordered by name.
    pub fn tenants(&self) -> Vec<Arc<TenantConfig>> {
        self.directory.tenants()
    }

    /// Persists a tenant (created or updated) and makes it live for the next request.
    pub async fn put_tenant(&self, t: TenantConfig) -> Result<(), anycloud_store::StoreError> {
        self.store
            .sync_tenants(&[TenantRecord {
                name: t.name.clone(),
                policy: tenant_policy_json(&t),
            }])
            .await?;
        let name = t.name.clone();
        self.directory.set_tenant(t);
        if let Some(b) = &self.broadcast {
            b.publish(&Event::Tenant { name }).await;
        }
        Ok(())
    }

    /// The metric label for a model name: itself if configured, else
    /// `unknown` (keeps label cardinality bounded).
    pub fn model_label(&self, model: &str) -> String {
        if self.routes.model_index(model).is_some() {
            model.to_string()
        } else {
            "unknown".to_string()
        }
    }
}

/// What the cluster's tasks (`cluster`) do on this instance.
impl crate::cluster::Instance for AppState {
    fn clouds(&self) -> &CloudStates {
        &self.clouds
    }

    async fn apply(&self, event: Event) {
        match event {
            Event::Drain { cloud, drained } => {
                crate::cluster::events::apply_drain(&self.clouds, &cloud, drained)
            }
            Event::Revoke { key_id } => {
                self.directory.forget_key(&key_id);
                self.governance.forget_key_policy(&key_id);
            }
            Event::KeyPolicy { key_id } => self.governance.forget_key_policy(&key_id),
            Event::Tenant { name } => self.reload_tenant(&name).await,
        }
    }

    fn redis_back(&self) -> impl std::future::Future<Output = ()> + Send {
        self.governance.budgets.replay()
    }

    fn redis_up(&self) -> impl std::future::Future<Output = ()> + Send {
        self.governance.budgets.note_server()
    }
}

/// A tenant from its stored policy (the shape [`tenant_policy_json`] writes).
pub fn tenant_from_policy(name: &str, policy: &serde_json::Value) -> Option<TenantConfig> {
    let mut v = policy.clone();
    v.as_object_mut()?
        .insert("name".into(), serde_json::Value::String(name.to_string()));
    serde_json::from_value(v).ok()
}

/// The tenant's policy as stored (for the admin API and audit later).
pub fn tenant_policy_json(t: &TenantConfig) -> serde_json::Value {
    serde_json::json!({
        "jurisdictions": t.jurisdictions,
        "models": t.models,
        "clouds": t.clouds,
        "budget": t.budget.map(|b| serde_json::json!({"usd": b.usd, "period": format!("{:?}", b.period).to_lowercase()})),
        "rate_limit": t.rate_limit.map(|r| serde_json::json!({"requests_per_minute": r.requests_per_minute, "tokens_per_minute": r.tokens_per_minute})),
        "capture": t.capture,
        "data_jurisdiction": t.data_jurisdiction(),
        "mcp": t.mcp,
    })
}
