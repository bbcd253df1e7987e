//! Data residency at rest: a tenant's content — stored Responses API documents and
//! captured payloads — goes to the content store of its data jurisdiction
//! (`[store.content]`, README "Data residency at rest"); everything else (tenants, keys,
//! the ledger, the audit chain, budgets) stays in the main store.
//!
//! [`ResidentStore`] is a [`Store`] that wraps the main store and routes the content calls
//! (`put_response`, `get_response`, `delete_response`, `purge_responses`,
//! `insert_capture`, `capture`) by tenant. Routing at this layer means every caller that
//! holds the gateway's `Arc<dyn Store>` honours residency without knowing about it.
//!
//! The tenant → jurisdiction map is learnt from the tenant records that pass through
//! `sync_tenants` and `list_tenants` (their policy's `data_jurisdiction`, or their one
//! jurisdiction), so tenants created or changed through the admin API, on this instance or
//! another, are routed as soon as the gateway persists or reloads them.
//!
//! A tenant with no placement (only possible for one stored before `[store.content]` was
//! configured: the config check and the admin API refuse new ones) has its content written
//! nowhere rather than into a store of the wrong jurisdiction: storing a response fails
//! with [`StoreError::NoContentStore`], and a capture is dropped (an error would make the
//! capture queue retry it forever, holding back every capture behind it). Both are
//! reported to the observer with no jurisdiction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::governance::{
    AuditEntry, AuditQuery, AuditRecord, CaptureRecord, ChainKeys, ChainStatus,
};
use crate::migrate::MigrationInfo;
use crate::transfer::{Cursor, LedgerTotals, Page, Table};
use crate::{
    DailyCost, GovernanceStore, KeyRecord, NewKey, Store, StoreError, StoredResponse, TenantRecord,
    TransferStore, UsageRecord, UsageSummaryRow,
};

/// What kind of content was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Response,
    Capture,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Response => "response",
            ContentKind::Capture => "capture",
        }
    }
}

/// One content write: for the metric and the audit entry that names the jurisdiction.
#[derive(Debug, Clone)]
pub struct ContentWrite {
    pub tenant: String,
    /// The jurisdiction of the store it went to; `None`: refused, the tenant's content has
    /// no store (see the module docs).
    pub jurisdiction: Option<String>,
    pub kind: ContentKind,
    /// The response id or the captured request's id.
    pub id: String,
}

type Observer = Arc<dyn Fn(&ContentWrite) + Send + Sync>;

/// The content stores by jurisdiction and where each tenant's content goes.
pub struct Residency {
    stores: BTreeMap<String, Arc<dyn Store>>,
    tenants: RwLock<HashMap<String, Option<String>>>,
    observer: OnceLock<Observer>,
}

impl std::fmt::Debug for Residency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Residency")
            .field("jurisdictions", &self.stores.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The data jurisdiction a stored tenant policy names: its `data_jurisdiction`, else its
/// one jurisdiction (the rule `TenantConfig::data_jurisdiction` applies to the config).
pub fn policy_jurisdiction(policy: &Value) -> Option<String> {
    if let Some(j) = policy.get("data_jurisdiction").and_then(Value::as_str) {
        return Some(j.to_owned());
    }
    match policy.get("jurisdictions").and_then(Value::as_array) {
        Some(js) if js.len() == 1 => js[0].as_str().map(str::to_owned),
        _ => None,
    }
}

impl Residency {
    /// The jurisdictions that have a content store, in name order.
    pub fn jurisdictions(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// The content store of a jurisdiction.
    pub fn store(&self, jurisdiction: &str) -> Option<&Arc<dyn Store>> {
        self.stores.get(jurisdiction)
    }

    /// The jurisdiction whose store keeps `tenant`'s content, if it has one.
    pub fn placement(&self, tenant: &str) -> Option<String> {
        let map = self.tenants.read().ok()?;
        let j = map.get(tenant)?.as_ref()?;
        self.stores.contains_key(j).then(|| j.clone())
    }

    /// Called after every content write that succeeded (set once, by the server).
    pub fn on_write(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    fn learn(&self, records: &[TenantRecord]) {
        if let Ok(mut map) = self.tenants.write() {
            for r in records {
                map.insert(r.name.clone(), policy_jurisdiction(&r.policy));
            }
        }
    }

    fn route(&self, tenant: &str) -> Result<(String, &Arc<dyn Store>), StoreError> {
        self.placement(tenant)
            .and_then(|j| self.stores.get(&j).map(|s| (j, s)))
            .ok_or_else(|| StoreError::NoContentStore {
                tenant: tenant.to_owned(),
            })
    }

    fn wrote(&self, tenant: &str, jurisdiction: Option<String>, kind: ContentKind, id: &str) {
        if let Some(o) = self.observer.get() {
            o(&ContentWrite {
                tenant: tenant.to_owned(),
                jurisdiction,
                kind,
                id: id.to_owned(),
            });
        }
    }
}

/// The main store with content routed to the content stores; see the module docs.
#[derive(Debug)]
pub struct ResidentStore {
    main: Arc<dyn Store>,
    residency: Residency,
}

impl ResidentStore {
    /// Wraps `main` with content stores by jurisdiction (already migrated).
    pub fn new(main: Arc<dyn Store>, stores: BTreeMap<String, Arc<dyn Store>>) -> ResidentStore {
        ResidentStore {
            main,
            residency: Residency {
                stores,
                tenants: RwLock::new(HashMap::new()),
                observer: OnceLock::new(),
            },
        }
    }

    /// The main store and every content store, named (`main`, then each jurisdiction).
    fn all(&self) -> impl Iterator<Item = (&str, &Arc<dyn Store>)> {
        std::iter::once(("main", &self.main))
            .chain(self.residency.stores.iter().map(|(j, s)| (j.as_str(), s)))
    }
}

/// Opens the main store and, when `content` names any, each content store (migrated by
/// [`crate::open`]'s rules), and returns the main store alone or wrapped in a
/// [`ResidentStore`]. Errors name the jurisdiction, never the URL.
pub async fn open(
    main_url: &str,
    content: &BTreeMap<String, String>,
) -> Result<Arc<dyn Store>, (String, StoreError)> {
    let main = crate::open(main_url)
        .await
        .map_err(|e| ("store.url".to_owned(), e))?;
    if content.is_empty() {
        return Ok(main);
    }
    let mut stores = BTreeMap::new();
    for (j, url) in content {
        let s = crate::open(url)
            .await
            .map_err(|e| (format!("store.content.{j}"), e))?;
        stores.insert(j.clone(), s);
    }
    Ok(Arc::new(ResidentStore::new(main, stores)))
}

#[async_trait]
impl Store for ResidentStore {
    fn backend(&self) -> &'static str {
        self.main.backend()
    }

    fn residency(&self) -> Option<&Residency> {
        Some(&self.residency)
    }

    /// Ready when the main store and every content store answer.
    async fn ping(&self) -> Result<(), StoreError> {
        for (_, s) in self.all() {
            s.ping().await?;
        }
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<Vec<MigrationInfo>, StoreError> {
        let mut out = Vec::new();
        for (_, s) in self.all() {
            out.extend(s.pending_migrations().await?);
        }
        Ok(out)
    }

    async fn migrate(
        &self,
        applied: &(dyn for<'m> Fn(&'m MigrationInfo) + Send + Sync),
    ) -> Result<Vec<MigrationInfo>, StoreError> {
        let mut out = Vec::new();
        for (_, s) in self.all() {
            out.extend(s.migrate(applied).await?);
        }
        Ok(out)
    }

    async fn sync_tenants(&self, tenants: &[TenantRecord]) -> Result<(), StoreError> {
        self.main.sync_tenants(tenants).await?;
        self.residency.learn(tenants);
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let all = self.main.list_tenants().await?;
        self.residency.learn(&all);
        Ok(all)
    }

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        self.main.insert_key(key).await
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.main.key_by_id(id).await
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.main.list_keys(tenant).await
    }

    async fn revoke_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.main.revoke_key(id).await
    }

    async fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let routed = self.residency.route(&r.tenant);
        let (j, store) = match routed {
            Ok(found) => found,
            Err(e) => {
                self.residency
                    .wrote(&r.tenant, None, ContentKind::Response, &r.id);
                return Err(e);
            }
        };
        store.put_response(r).await?;
        self.residency
            .wrote(&r.tenant, Some(j), ContentKind::Response, &r.id);
        Ok(())
    }

    async fn get_response(
        &self,
        tenant: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        match self.residency.route(tenant) {
            Ok((_, store)) => store.get_response(tenant, id, now).await,
            // Nothing of this tenant's can have been stored anywhere.
            Err(_) => Ok(None),
        }
    }

    async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        match self.residency.route(tenant) {
            Ok((_, store)) => store.delete_response(tenant, id).await,
            Err(_) => Ok(false),
        }
    }

    /// Purges every store: the content stores, and the main store for what it held before
    /// content stores were configured.
    async fn purge_responses(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut n = 0;
        for (_, s) in self.all() {
            n += s.purge_responses(now).await?;
        }
        Ok(n)
    }

    async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        self.main.insert_usage(records).await
    }

    async fn insert_usage_once(
        &self,
        batch: &crate::spool::Batch<UsageRecord>,
    ) -> Result<(), StoreError> {
        self.main.insert_usage_once(batch).await
    }

    async fn forget_spool_marks(&self, spool: &str, origins: &[i64]) -> Result<(), StoreError> {
        self.main.forget_spool_marks(spool, origins).await
    }

    async fn usage_summary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError> {
        self.main.usage_summary(from, to).await
    }

    async fn daily_cost(
        &self,
        cloud: &str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DailyCost>, StoreError> {
        self.main.daily_cost(cloud, from, to).await
    }

    async fn usage_records(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        self.main.usage_records(from, to, limit).await
    }

    async fn usage_count(&self) -> Result<u64, StoreError> {
        self.main.usage_count().await
    }

    async fn served_usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<crate::UsageCursor>,
        limit: u32,
    ) -> Result<Vec<(crate::UsageCursor, UsageRecord)>, StoreError> {
        self.main.served_usage(from, to, after, limit).await
    }
}

#[async_trait]
impl GovernanceStore for ResidentStore {
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.main.append_audit(entries, keys).await
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.main.query_audit(q).await
    }

    async fn verify_audit(&self, keys: &ChainKeys) -> Result<ChainStatus, StoreError> {
        self.main.verify_audit(keys).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.main.audit_head().await
    }

    async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        self.main.audit_entry(seq).await
    }

    async fn add_spend(&self, deltas: &[(String, String, f64)]) -> Result<(), StoreError> {
        self.main.add_spend(deltas).await
    }

    async fn add_spend_once(
        &self,
        batch: &crate::spool::Batch<(String, String, f64)>,
    ) -> Result<(), StoreError> {
        self.main.add_spend_once(batch).await
    }

    async fn append_audit_once(
        &self,
        batch: &crate::spool::Batch<AuditEntry>,
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.main.append_audit_once(batch, keys).await
    }

    async fn spend(&self, scope: &str, period_start: &str) -> Result<f64, StoreError> {
        self.main.spend(scope, period_start).await
    }

    async fn set_key_policy(&self, key_id: &str, policy: &Value) -> Result<(), StoreError> {
        self.main.set_key_policy(key_id, policy).await
    }

    async fn key_policy(&self, key_id: &str) -> Result<Option<Value>, StoreError> {
        self.main.key_policy(key_id).await
    }

    /// A capture whose tenant has no content store is dropped (see the module docs).
    async fn insert_capture(&self, capture: &CaptureRecord) -> Result<(), StoreError> {
        let (tenant, id) = (&capture.tenant, &capture.request_id);
        let Ok((j, store)) = self.residency.route(tenant) else {
            self.residency.wrote(tenant, None, ContentKind::Capture, id);
            return Ok(());
        };
        store.insert_capture(capture).await?;
        self.residency
            .wrote(tenant, Some(j), ContentKind::Capture, id);
        Ok(())
    }

    /// A request id does not say whose it is: each content store is asked in turn, then
    /// the main store (captures from before content stores were configured).
    async fn capture(&self, request_id: &str) -> Result<Option<CaptureRecord>, StoreError> {
        for s in self
            .residency
            .stores
            .values()
            .chain(std::iter::once(&self.main))
        {
            if let Some(c) = s.capture(request_id).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// `store copy` copies one store at a time (the main store, or one content store opened
/// by its own URL); through the wrapper it sees the main store.
#[async_trait]
impl TransferStore for ResidentStore {
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        self.main.count(table).await
    }

    async fn export_page(
        &self,
        table: Table,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        self.main.export_page(table, after, limit).await
    }

    async fn import_page(&self, page: &Page) -> Result<(), StoreError> {
        self.main.import_page(page).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.main.clear().await
    }

    async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        self.main.ledger_totals().await
    }

    async fn location(&self) -> Result<String, StoreError> {
        self.main.location().await
    }
}

/// Rows of content per tenant in one store: `(stored responses, captures)`, read page by
/// page — the evidence `anycloud residency` prints for each store.
pub async fn tenant_rows(
    store: &dyn TransferStore,
) -> Result<BTreeMap<String, (u64, u64)>, StoreError> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for table in [Table::Responses, Table::Captures] {
        let mut after = None;
        loop {
            let page = store.export_page(table, after.as_ref(), 1_000).await?;
            match &page {
                Page::Responses(rows) => {
                    for r in rows {
                        out.entry(r.tenant.clone()).or_default().0 += 1;
                    }
                }
                Page::Captures(rows) => {
                    for r in rows {
                        out.entry(r.tenant.clone()).or_default().1 += 1;
                    }
                }
                _ => {}
            }
            if page.len() < 1_000 {
                break;
            }
            after = page.cursor();
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "residency_tests.rs"]
mod tests;
