//! `anycloud keys create|list|revoke`.

use secrecy::ExposeSecret;
use std::path::Path;
use std::process::ExitCode;

async fn store_for(
    path: &Path,
) -> anyhow::Result<(
    anycloud_config::Config,
    std::sync::Arc<dyn anycloud_store::Store>,
)> {
    let config = super::load_config(path)?;
    let store = super::open_store(&config).await?;
    let records: Vec<anycloud_store::TenantRecord> = config
        .tenants
        .iter()
        .map(|t| anycloud_store::TenantRecord {
            name: t.name.clone(),
            policy: anycloud_server::state::tenant_policy_json(t),
        })
        .collect();
    store.sync_tenants(&records).await?;
    Ok((config, store))
}

pub async fn create(path: &Path, tenant: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, store) = store_for(path).await?;
    if !config.tenants.iter().any(|t| t.name == tenant) {
        let known: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
        anyhow::bail!(
            "unknown tenant `{tenant}` (configured: {})",
            known.join(", ")
        );
    }
    let (record, key) = anycloud_store::create_key(store.as_ref(), tenant, name).await?;
    println!(
        "created key {} for tenant {}{}",
        record.id,
        record.tenant,
        name.map(|n| format!(" ({n})")).unwrap_or_default()
    );
    println!("store it now: it is shown only once");
    println!("{}", key.expose_secret());
    Ok(ExitCode::SUCCESS)
}

pub async fn list(path: &Path, tenant: Option<&str>) -> anyhow::Result<ExitCode> {
    let (_, store) = store_for(path).await?;
    let keys = store.list_keys(tenant).await?;
    println!(
        "{:<14} {:<16} {:<20} {:<25} REVOKED",
        "ID", "TENANT", "NAME", "CREATED"
    );
    for k in keys {
        println!(
            "{:<14} {:<16} {:<20} {:<25} {}",
            k.id,
            k.tenant,
            k.name.as_deref().unwrap_or("-"),
            k.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            k.revoked_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(path: &Path, key_or_id: &str) -> anyhow::Result<ExitCode> {
    let (config, store) = store_for(path).await?;
    let Some(id) = anycloud_store::keys::id_from_key_or_id(key_or_id) else {
        anyhow::bail!("`{}` is neither a key nor a key id", redact(key_or_id));
    };
    match store.revoke_key(id).await? {
        Some(k) => {
            println!("revoked key {} (tenant {})", k.id, k.tenant);
            tell_instances(&config, &k.id).await;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no key with id {id}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// With Redis, running gateways drop the key from their caches at once; without it they
/// refuse it within two seconds anyway (one-second key cache, then the store).
async fn tell_instances(config: &anycloud_config::Config, key_id: &str) {
    let Some(url) = &config.store.redis_url else {
        return;
    };
    let event = anycloud_server::cluster::events::Event::Revoke {
        key_id: key_id.to_string(),
    };
    match anycloud_server::cluster::events::publish_once(url, &config.store.redis_prefix, &event)
        .await
    {
        Ok(()) => println!("every running instance was told through redis"),
        Err(e) => eprintln!(
            "warning: redis unreachable ({e}); running instances refuse the key within 2 s anyway"
        ),
    }
}

/// Shows at most a key's public prefix.
fn redact(s: &str) -> String {
    s.chars().take(18).collect::<String>() + if s.len() > 18 { "…" } else { "" }
}
