//! The server's side of data residency at rest (README "Data residency at rest"): the
//! routing itself lives in the store (`anycloud_store::residency`), so every path that
//! writes or reads content through `AppState::store` honours it. Here: the evidence —
//! each content write counted by jurisdiction and audited with the jurisdiction it went
//! to — and where a tenant's content lives, for the admin API.

use crate::metrics::ContentLabels;
use anycloud_config::TenantConfig;
use anycloud_governance::audit::AuditLog;
use anycloud_store::{AuditEntry, ContentWrite, Residency, Store};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use std::sync::Arc;

/// Counts and audits every content write. The audit entry (`content.write`, actor
/// `gateway`) names the tenant, what was written, its id and the jurisdiction — metadata
/// only, in the main store's chain like every entry; content refused for want of a store
/// is `content.refused` (counted under `jurisdiction="none"`).
pub fn observe(
    residency: &Residency,
    writes: Family<ContentLabels, Counter>,
    audit: Arc<AuditLog>,
) {
    residency.on_write(Arc::new(move |w: &ContentWrite| {
        writes
            .get_or_create(&ContentLabels {
                jurisdiction: w.jurisdiction.clone().unwrap_or_else(|| "none".into()),
                kind: w.kind.as_str(),
            })
            .inc();
        let (action, detail) = match &w.jurisdiction {
            Some(j) => (
                "content.write",
                serde_json::json!({"kind": w.kind.as_str(), "id": w.id, "jurisdiction": j}),
            ),
            None => {
                tracing::error!(tenant = %w.tenant, kind = w.kind.as_str(),
                    "content not stored: the tenant's data jurisdiction has no content store");
                (
                    "content.refused",
                    serde_json::json!({"kind": w.kind.as_str(), "id": w.id,
                        "reason": "the tenant's data jurisdiction has no content store"}),
                )
            }
        };
        audit.push(AuditEntry {
            at: chrono::Utc::now(),
            actor: "gateway".into(),
            tenant: Some(w.tenant.clone()),
            action: action.into(),
            request_id: (w.kind == anycloud_store::ContentKind::Capture).then(|| w.id.clone()),
            detail: Some(detail),
            ..Default::default()
        });
    }));
}

/// Where a tenant's stored responses and captured payloads are kept.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ContentPlacement {
    /// The tenant's data jurisdiction (`data_jurisdiction`, or its one jurisdiction).
    pub data_jurisdiction: Option<String>,
    /// `main` (no `[store.content]`), the jurisdiction of its content store, or `null`
    /// when content stores are configured but none is the tenant's: its content is then
    /// refused rather than stored elsewhere.
    pub store: Option<String>,
    /// `sqlite` or `postgres`, when there is a store.
    pub backend: Option<&'static str>,
}

/// Where `t`'s content lives in this gateway.
pub fn placement(store: &dyn Store, t: &TenantConfig) -> ContentPlacement {
    let data_jurisdiction = t.data_jurisdiction().map(str::to_owned);
    let Some(residency) = store.residency() else {
        return ContentPlacement {
            data_jurisdiction,
            store: Some("main".into()),
            backend: Some(store.backend()),
        };
    };
    // The tenant as configured or changed through the admin API (the store learns it from
    // the same records); a name the store has not seen yet falls back to the config rule.
    let home = residency.placement(&t.name).or_else(|| {
        data_jurisdiction
            .clone()
            .filter(|j| residency.store(j).is_some())
    });
    ContentPlacement {
        data_jurisdiction,
        backend: home
            .as_deref()
            .and_then(|j| residency.store(j))
            .map(|s| s.backend()),
        store: home,
    }
}
