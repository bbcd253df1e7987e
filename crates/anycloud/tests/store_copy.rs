//! Black-box tests of `anycloud migrate` and `anycloud store copy` with the real binary:
//! a populated SQLite store copied into a fresh PostgreSQL schema gives the same
//! `anycloud report` and an intact `anycloud audit verify` with the same count; migrations
//! run once, report what they did, and `store.auto_migrate = false` stops commands while
//! any are pending. PostgreSQL tests skip loudly when no server is reachable (fail in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anycloud_store::governance::{AuditEntry, CaptureRecord};
use anycloud_store::testing::PgSchema;
use anycloud_store::{ChainKeys, RecordedPrice, Store, StoredResponse, TenantRecord, UsageRecord};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");

/// A config for `store_url`, with two clouds, a model and two tenants.
fn write_config(dir: &Path, name: &str, store_url: &str, auto_migrate: bool) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
auto_migrate = {auto_migrate}
[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
[[clouds]]
name = "aws-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o"
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}
[[models.deployments]]
cloud = "aws-eu"
target = "gpt-4o"
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}
[[tenants]]
name = "acme"
[[tenants]]
name = "globex"
"#
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ANYCLOUD_LOG", "warn")
        .output()
        .expect("run anycloud")
}

/// Runs `serve`, which must exit by itself (it refuses to start); killed after 30 s.
fn serve_exits(config: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config])
        .env("ANYCLOUD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started although migrations are pending");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Ledger rows across two clouds, two tenants and five days of November 2026, audit
/// entries, keys, a policy, spend, a capture and stored responses.
async fn populate(store: &dyn Store) {
    store
        .sync_tenants(&[
            TenantRecord {
                name: "acme".into(),
                policy: json!({}),
            },
            TenantRecord {
                name: "globex".into(),
                policy: json!({}),
            },
        ])
        .await
        .unwrap();
    let (key, _) = anycloud_store::create_key(store, "acme", Some("ci"))
        .await
        .unwrap();
    let (old, _) = anycloud_store::create_key(store, "globex", None)
        .await
        .unwrap();
    store.revoke_key(&old.id).await.unwrap();
    store
        .set_key_policy(&key.id, &json!({"budget": {"usd": 3.0}}))
        .await
        .unwrap();
    let nov1 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let records: Vec<UsageRecord> = (0..60)
        .map(|i| UsageRecord {
            at: nov1 + Duration::minutes(i * 113) + Duration::microseconds(i * 7),
            request_id: format!("req_{i}"),
            tenant: if i % 3 == 0 { "globex" } else { "acme" }.into(),
            key_id: key.id.clone(),
            model: "gpt-4o".into(),
            cloud: if i % 2 == 0 { "azure-us" } else { "aws-eu" }.into(),
            deployment: "gpt-4o".into(),
            input_tokens: 1_000 + i as u64,
            output_tokens: 200,
            cached_tokens: (i % 4) as u64 * 10,
            cache_write_tokens: (i % 3) as u64 * 5,
            cache_write_1h_tokens: (i % 2) as u64,
            reasoning_tokens: (i % 5) as u64,
            cache_saved_nanos: i % 7 - 3,
            usage_estimated: i % 7 == 0,
            price: RecordedPrice {
                input_per_mtok: 2.5,
                output_per_mtok: 10.0,
                cached_input_per_mtok: 1.25,
                cache_write_per_mtok: 3.0,
                cache_write_1h_per_mtok: 4.0,
            },
            cost_nanos: 4_500_000 + i * 2_500,
            outcome: if i % 11 == 0 { "upstream_503" } else { "ok" }.into(),
            upstream_status: Some(if i % 11 == 0 { 503 } else { 200 }),
            latency_ms: 100 + i as u64,
            ttft_ms: (i % 2 == 0).then_some(40),
            needs: (i % 3 == 0).then(|| vec!["chat".to_string(), "tools".to_string()]),
            estimated_tokens: (i % 3 == 0).then(|| i.unsigned_abs()),
        })
        .collect();
    store.insert_usage(&records).await.unwrap();
    let entries: Vec<AuditEntry> = (0..23)
        .map(|i| AuditEntry {
            at: nov1 + Duration::seconds(i * 61) + Duration::microseconds(321),
            actor: format!("key:{}", key.id),
            tenant: Some("acme".into()),
            action: "ai.chat_completions".into(),
            model: Some("gpt-4o".into()),
            cloud: Some("azure-us".into()),
            request_id: Some(format!("req_{i}")),
            status: Some(200),
            latency_ms: Some(100),
            input_tokens: Some(1_000),
            output_tokens: Some(200),
            cost_usd: Some(0.0045 + i as f64 * 1e-7),
            route: Some(json!([{"cloud": "azure-us", "outcome": "ok"}])),
            detail: (i % 5 == 0).then(|| json!({"before": null, "after": {"n": i}})),
        })
        .collect();
    for chunk in entries.chunks(5) {
        store
            .append_audit(chunk, &ChainKeys::unkeyed())
            .await
            .unwrap();
    }
    store
        .add_spend(&[("tenant:acme".into(), "2026-11-01".into(), 0.27)])
        .await
        .unwrap();
    store
        .insert_capture(&CaptureRecord {
            request_id: "req_1".into(),
            at: nov1,
            tenant: "acme".into(),
            key_id: "2026-11".into(),
            nonce: vec![7; 12],
            ciphertext: vec![1, 2, 3],
        })
        .await
        .unwrap();
    store
        .put_response(&StoredResponse {
            id: "resp_1".into(),
            tenant: "acme".into(),
            created_at: Utc::now(),
            expires_at: Utc::now() + Duration::days(30),
            key_id: Some("2026-11".into()),
            body: b"sealed".to_vec(),
        })
        .await
        .unwrap();
}

fn report(config: &Path) -> String {
    let c = config.to_str().unwrap();
    let out = run(&[
        "report",
        "--config",
        c,
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "report: {}", stderr(&out));
    stdout(&out)
}

fn audit_verify(config: &Path) -> String {
    let out = run(&["audit", "verify", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[tokio::test]
async fn sqlite_copied_into_postgres_reports_the_same_and_its_chain_verifies() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("anycloud.db").display());
    let source = anycloud_store::open(&sqlite_url).await.unwrap();
    populate(source.as_ref()).await;
    drop(source);
    let from = write_config(dir.path(), "sqlite.toml", &sqlite_url, true);
    let to = write_config(dir.path(), "postgres.toml", &schema.url(), true);

    let out = run(&[
        "store",
        "copy",
        "--config",
        from.to_str().unwrap(),
        "--to",
        &schema.url(),
    ]);
    assert!(
        out.status.success(),
        "copy: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let printed = stdout(&out);
    assert!(printed.contains("copy verified"), "{printed}");
    assert!(
        printed.contains("usage_ledger                       60             60"),
        "{printed}"
    );
    assert!(!printed.contains(schema.name()) && !stderr(&out).contains(schema.name()));

    let (a, b) = (report(&from), report(&to));
    assert_eq!(a, b, "the same report from both stores");
    let parsed: serde_json::Value = serde_json::from_str(&a).unwrap();
    let clouds = parsed["clouds"].as_array().unwrap();
    assert_eq!(clouds.len(), 2, "{a}");
    let requests: u64 = clouds.iter().map(|c| c["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, 60, "{a}");

    let verified = audit_verify(&to);
    assert!(verified.contains("23 entries verified"), "{verified}");
    assert_eq!(verified, audit_verify(&from));

    // The target is no longer empty: a second copy is refused, and goes through with
    // --replace.
    let again = run(&[
        "store",
        "copy",
        "--from",
        &sqlite_url,
        "--to",
        &schema.url(),
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    assert!(stderr(&again).contains("--replace"), "{}", stderr(&again));
    let replaced = run(&[
        "store",
        "copy",
        "--from",
        &sqlite_url,
        "--to",
        &schema.url(),
        "--replace",
        "--batch-size",
        "7",
    ]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_eq!(report(&to), a);

    // A stored response and the keys made it across.
    let target = anycloud_store::open(&schema.url()).await.unwrap();
    assert_eq!(target.list_keys(None).await.unwrap().len(), 2);
    assert!(target
        .get_response("acme", "resp_1", Utc::now())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_tampered_source_is_copied_but_the_copy_fails() {
    let dir = tempfile::tempdir().unwrap();
    let from_url = format!("sqlite://{}", dir.path().join("a.db").display());
    let to_url = format!("sqlite://{}", dir.path().join("b.db").display());
    let source = anycloud_store::open(&from_url).await.unwrap();
    populate(source.as_ref()).await;
    drop(source);
    let raw = sqlx::SqlitePool::connect(&from_url).await.unwrap();
    sqlx::query("UPDATE audit_log SET tenant = 'other' WHERE seq = 4")
        .execute(&raw)
        .await
        .unwrap();
    let out = run(&["store", "copy", "--from", &from_url, "--to", &to_url]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("not intact"), "{}", stderr(&out));
    assert!(stdout(&out).contains("broken at 4"), "{}", stdout(&out));
}

/// `store copy --replace` from `url` onto `same` (the same store, spelled differently) is
/// refused before anything is deleted.
async fn self_copy_is_refused(url: &str, same: &str) {
    let store = anycloud_store::open(url).await.unwrap();
    populate(store.as_ref()).await;
    let out = run(&["store", "copy", "--from", url, "--to", same, "--replace"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("same store"), "{}", stderr(&out));
    assert_eq!(
        store.usage_count().await.unwrap(),
        60,
        "nothing was deleted"
    );
}

#[tokio::test]
async fn copying_an_sqlite_file_onto_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    self_copy_is_refused(&url, &format!("sqlite://{}/./a.db", dir.path().display())).await;
}

#[tokio::test]
async fn copying_a_postgres_schema_onto_itself_is_refused() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let same = format!("{}&application_name=other", schema.url());
    self_copy_is_refused(&schema.url(), &same).await;
}

/// `migrate` on a fresh store applies everything once; with `auto_migrate = false`,
/// commands refuse to run until it has.
async fn migrate_and_auto_migrate(dir: &Path, url: &str) {
    let manual = write_config(dir, "manual.toml", url, false);
    let manual = manual.to_str().unwrap();
    let refused = run(&["audit", "verify", "--config", manual]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("8 pending migrations"), "{err}");
    assert!(err.contains("anycloud migrate"), "{err}");
    assert!(err.contains("0001 tenants and keys"), "{err}");
    let serve = serve_exits(manual);
    assert!(!serve.status.success());
    assert!(
        stderr(&serve).contains("anycloud migrate"),
        "{}",
        stderr(&serve)
    );

    let out = run(&["migrate", "--config", manual]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    for name in [
        "0001 tenants and keys",
        "0002 usage ledger",
        "0003 governance",
        "0005 responses",
        "0015 usage route needs",
        "0017 usage cache tokens",
        "0018 spool marks",
        "0020 usage daily",
    ] {
        assert!(printed.contains(&format!("applied {name}")), "{printed}");
    }
    assert!(printed.contains("8 migrations applied"), "{printed}");
    let again = run(&["migrate", "--config", manual]);
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));
    assert!(audit_verify(Path::new(manual)).contains("0 entries verified"));
}

#[tokio::test]
async fn migrate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    migrate_and_auto_migrate(dir.path(), &url).await;
}

#[tokio::test]
async fn migrate_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    migrate_and_auto_migrate(dir.path(), &schema.url()).await;
}
