//! Data residency at rest, black-box: real `anycloud serve` processes with a main store and
//! two content stores (`eu`, `us`), over two emulated clouds, one per jurisdiction. An EU
//! and a US tenant send prompts through `/v1/chat/completions`, `/v1/messages` and
//! `/v1/responses` (JSON and streams); then the databases themselves are read — the SQLite
//! files as bytes and with SQL, PostgreSQL schemas with SQL over every row — to prove where
//! each tenant's content is, and where it is not.
//!
//! Sealed payloads (AES-GCM) cannot be grepped, so the proof has two halves: with the
//! capture key, each tenant's sealed rows (by request and response id) exist only in its own
//! content store and decrypt — through the admin API — to that tenant's prompt; without the
//! key, stored Responses are kept in clear and the prompt's bytes are found in the tenant's
//! store file and in no other. Reads, `previous_response_id`, deletes and the retention
//! purge work across stores; on PostgreSQL two instances share them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/serve.rs"]
mod serve;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_store::testing::{postgres_url, PgSchema};
use base64::Engine;
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");
const ADMIN: &str = "residency-admin-token-0123456789";
const STORES: [&str; 3] = ["main", "eu", "us"];

struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the three stores are and how to read them behind the gateway's back.
enum Backend {
    Sqlite {
        dir: PathBuf,
    },
    Postgres {
        main: PgSchema,
        eu: PgSchema,
        us: PgSchema,
    },
}

impl Backend {
    fn url(&self, store: &str) -> String {
        match self {
            Backend::Sqlite { dir } => format!("sqlite://{}", self.file(dir, store).display()),
            Backend::Postgres { .. } => self.schema(store).url(),
        }
    }

    fn file(&self, dir: &Path, store: &str) -> PathBuf {
        dir.join(format!("{store}.db"))
    }

    fn schema(&self, store: &str) -> &PgSchema {
        match (self, store) {
            (Backend::Postgres { main, .. }, "main") => main,
            (Backend::Postgres { eu, .. }, "eu") => eu,
            (Backend::Postgres { us, .. }, "us") => us,
            _ => unreachable!("{store}"),
        }
    }

    /// `(tenant, id)` of every row of `responses` (id) or `captured_payloads`
    /// (request_id), read with SQL straight from the database.
    async fn rows(&self, store: &str, table: &str) -> Vec<(String, String)> {
        let id = if table == "responses" {
            "id"
        } else {
            "request_id"
        };
        match self {
            Backend::Sqlite { dir } => {
                let url = format!("sqlite://{}", self.file(dir, store).display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows = sqlx::query(&format!("SELECT tenant, {id} FROM {table}"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
            Backend::Postgres { .. } => {
                let schema = self.schema(store).name().to_owned();
                let mut c = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
                let rows = sqlx::query(&format!("SELECT tenant, {id} FROM {schema}.{table}"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    /// Whether `needle` is anywhere in the store: in the SQLite file or its write-ahead
    /// log, byte for byte; in PostgreSQL, in the text of any row of any table of the
    /// schema (bytea as hex too).
    async fn contains(&self, store: &str, needle: &str) -> bool {
        match self {
            Backend::Sqlite { dir } => {
                let file = self.file(dir, store);
                let wal = PathBuf::from(format!("{}-wal", file.display()));
                [file, wal].iter().any(|f| {
                    std::fs::read(f).is_ok_and(|bytes| {
                        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                    })
                })
            }
            Backend::Postgres { .. } => {
                let schema = self.schema(store).name().to_owned();
                let mut c = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(&schema)
                .fetch_all(&mut c)
                .await
                .unwrap();
                assert!(tables.len() >= 9, "{schema}: {tables:?}");
                for t in tables {
                    let n: i64 = sqlx::query_scalar(&format!(
                        "SELECT count(*) FROM {schema}.{t} r \
                         WHERE strpos(r::text, $1) > 0 OR strpos(r::text, $2) > 0"
                    ))
                    .bind(needle)
                    .bind(hex::encode(needle))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                    if n > 0 {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// Every stored response of every content store expires now (as if its retention
    /// had passed).
    async fn expire_responses(&self) {
        for store in ["eu", "us"] {
            match self {
                Backend::Sqlite { dir } => {
                    let url = format!("sqlite://{}", self.file(dir, store).display());
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query("UPDATE responses SET expires_at = '2000-01-01T00:00:00.000Z'")
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                Backend::Postgres { .. } => {
                    let schema = self.schema(store).name().to_owned();
                    let mut c = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
                    sqlx::query(&format!(
                        "UPDATE {schema}.responses SET expires_at = now() - interval '1 day'"
                    ))
                    .execute(&mut c)
                    .await
                    .unwrap();
                }
            }
        }
    }
}

fn config(b: &Backend, eu_cloud: &str, us_cloud: &str, sealed: bool) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let capture = if sealed {
        format!("[capture]\nkey = \"{key}\"\nkey_id = \"k1\"\n")
    } else {
        String::new()
    };
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"
[store]
url = "{main}"
[store.content]
eu = "{eu}"
us = "{us}"
{capture}
[[clouds]]
name = "eu-cloud"
provider = "openai_compatible"
base_url = "{eu_cloud}"
api_key = "emu-key"
jurisdiction = "eu"
[[clouds]]
name = "us-cloud"
provider = "openai_compatible"
base_url = "{us_cloud}"
api_key = "emu-key"
jurisdiction = "us"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "eu-cloud"
target = "gpt-4o"
capabilities = ["chat", "stream"]
[[models.deployments]]
cloud = "us-cloud"
target = "gpt-4o"
capabilities = ["chat", "stream"]
[[tenants]]
name = "emea"
jurisdictions = ["eu"]
capture = {sealed}
[[tenants]]
name = "amer"
jurisdictions = ["us"]
capture = {sealed}
"#,
        main = b.url("main"),
        eu = b.url("eu"),
        us = b.url("us"),
    )
}

fn cli(args: &[&str], config: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn key(config: &Path, tenant: &str) -> String {
    cli(&["keys", "create", "--tenant", tenant], config)
        .lines()
        .last()
        .unwrap()
        .to_string()
}

async fn emulator(name: &str) -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::openai_compatible(name, "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap()
}

/// What one tenant sent: the request ids of its chat and messages calls, its response ids.
#[derive(Default, Debug)]
struct Sent {
    chat: Vec<String>,
    messages: Vec<String>,
    responses: Vec<String>,
}

/// POSTs `body` and reads the whole reply (streams to their end); returns the status,
/// the request id and the body (JSON, or the event stream's text).
async fn post(http: &reqwest::Client, url: &str, key: &str, body: Value) -> (u16, String, Value) {
    let r = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, rid, v)
}

/// The id of a streamed response, from its `response.created` event.
fn streamed_id(events: &Value) -> String {
    let text = events.as_str().unwrap();
    let at = text.find("\"id\":\"resp_").unwrap() + 6;
    text[at..].split('"').next().unwrap().to_string()
}

/// Every API, JSON and streamed, with `marker` in each prompt.
async fn send_all(http: &reqwest::Client, url: &str, key: &str, marker: &str) -> Sent {
    let mut sent = Sent::default();
    for stream in [false, true] {
        let (s, rid, v) = post(
            http,
            &format!("{url}/v1/chat/completions"),
            key,
            json!({"model": "gpt-4o", "max_tokens": 16, "stream": stream,
                   "messages": [{"role": "user", "content": format!("chat {marker}")}]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        sent.chat.push(rid);
        let (s, rid, v) = post(
            http,
            &format!("{url}/v1/messages"),
            key,
            json!({"model": "gpt-4o", "max_tokens": 16, "stream": stream,
                   "messages": [{"role": "user", "content": format!("messages {marker}")}]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        sent.messages.push(rid);
        let (s, _, v) = post(
            http,
            &format!("{url}/v1/responses"),
            key,
            json!({"model": "gpt-4o", "max_output_tokens": 16, "stream": stream,
                   "input": format!("responses {marker}")}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        sent.responses.push(if stream {
            streamed_id(&v)
        } else {
            v["id"].as_str().unwrap().to_string()
        });
    }
    // A second turn continues the first from the tenant's store.
    let (s, _, v) = post(
        http,
        &format!("{url}/v1/responses"),
        key,
        json!({"model": "gpt-4o", "max_output_tokens": 16, "input": "and again",
               "previous_response_id": sent.responses[0]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    sent.responses.push(v["id"].as_str().unwrap().to_string());
    sent
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The stores holding rows with these ids in `table`.
async fn holders(b: &Backend, table: &str, ids: &[String]) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for store in STORES {
        if b.rows(store, table)
            .await
            .iter()
            .any(|(_, id)| ids.contains(id))
        {
            out.insert(store);
        }
    }
    out
}

/// Captures are written off the request path: wait until every id has its row.
async fn await_captures(b: &Backend, ids: &[String]) {
    let t = Instant::now();
    loop {
        let mut found = 0;
        for store in STORES {
            found += b
                .rows(store, "captured_payloads")
                .await
                .iter()
                .filter(|(_, id)| ids.contains(id))
                .count();
        }
        if found >= ids.len() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "captures of {ids:?} not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the whole scenario over `b`; `two_instances` adds a second gateway on the same
/// stores (PostgreSQL).
async fn scenario(b: Backend, two_instances: bool) {
    let (eu_cloud, us_cloud) = (emulator("eu-cloud").await, emulator("us-cloud").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.toml");
    std::fs::write(
        &path,
        config(&b, &eu_cloud.base_url(), &us_cloud.base_url(), true),
    )
    .unwrap();

    // Every store is migrated, the content stores like the main one.
    let migrated = cli(&["migrate"], &path);
    for store in ["store.content.eu", "store.content.us"] {
        assert!(migrated.contains(store), "{migrated}");
    }
    let (emea, amer) = (key(&path, "emea"), key(&path, "amer"));
    let a = {
        let (child, url) = serve::serve(BIN, &path);
        Instance { child, url }
    };
    let http = reqwest::Client::new();
    let tag: u64 = rand::random();
    let (eu_marker, us_marker) = (format!("EU-PROMPT-{tag:x}"), format!("US-PROMPT-{tag:x}"));
    let eu_sent = send_all(&http, &a.url, &emea, &eu_marker).await;
    let us_sent = send_all(&http, &a.url, &amer, &us_marker).await;
    await_captures(&b, &eu_sent.chat).await;
    await_captures(&b, &us_sent.chat).await;
    await_captures(&b, &eu_sent.messages).await;
    await_captures(&b, &us_sent.messages).await;

    // Where each tenant's rows are: its own content store, never main or the other one.
    for (tenant, sent, home) in [("emea", &eu_sent, "eu"), ("amer", &us_sent, "us")] {
        assert_eq!(
            holders(&b, "responses", &sent.responses).await,
            BTreeSet::from([home]),
            "{tenant}'s stored responses"
        );
        assert_eq!(
            holders(&b, "captured_payloads", &sent.chat).await,
            BTreeSet::from([home]),
            "{tenant}'s chat captures"
        );
        assert_eq!(
            holders(&b, "captured_payloads", &sent.messages).await,
            BTreeSet::from([home]),
            "{tenant}'s /v1/messages captures (JSON and streamed)"
        );
        for other in STORES.iter().filter(|s| **s != home) {
            for table in ["responses", "captured_payloads"] {
                let rows = b.rows(other, table).await;
                assert!(
                    rows.iter().all(|(t, _)| t != tenant),
                    "{tenant} has rows in {other}.{table}: {rows:?}"
                );
            }
        }
    }
    for table in ["responses", "captured_payloads"] {
        assert_eq!(
            b.rows("main", table).await,
            vec![],
            "main.{table} holds content"
        );
    }
    // Sealed: no prompt is readable in any store, its own included.
    for store in STORES {
        for marker in [&eu_marker, &us_marker] {
            assert!(
                !b.contains(store, marker).await,
                "{marker} in clear in {store}"
            );
        }
    }
    // ...and the EU store's sealed rows are the EU prompts: the admin API opens them.
    for rid in &eu_sent.chat {
        let (s, v) = get(&http, &format!("{}/admin/v1/captures/{rid}", a.url), ADMIN).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["tenant"], "emea");
        assert!(v["request"].to_string().contains(&eu_marker), "{v}");
    }

    // Reads come from the tenant's store; another tenant's id is not found.
    let first = &eu_sent.responses[0];
    let (s, v) = get(
        &http,
        &format!("{}/v1/responses/{first}/input_items", a.url),
        &emea,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains(&eu_marker), "{v}");
    let (s, _) = get(&http, &format!("{}/v1/responses/{first}", a.url), &amer).await;
    assert_eq!(s, 404, "amer reads emea's response");
    let (s, v) = get(
        &http,
        &format!("{}/v1/responses/{}", a.url, us_sent.responses[1]),
        &amer,
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // Evidence: the tenant view, the audit trail and the metric name the jurisdiction.
    let (s, v) = get(&http, &format!("{}/admin/v1/tenants/emea", a.url), ADMIN).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["content"]["store"], "eu", "{v}");
    assert_eq!(v["content"]["data_jurisdiction"], "eu", "{v}");
    // The audit trail is written in batches off the request path.
    let t = Instant::now();
    loop {
        let (_, v) = get(
            &http,
            &format!(
                "{}/admin/v1/audit?action=content.write&tenant=emea&limit=1000",
                a.url
            ),
            ADMIN,
        )
        .await;
        let entries = v["data"].as_array().unwrap();
        assert!(
            entries.iter().all(|e| e["detail"]["jurisdiction"] == "eu"),
            "{v}"
        );
        if entries.len() >= eu_sent.responses.len() + eu_sent.chat.len() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "content writes not audited: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = get(&http, &format!("{}/metrics", a.url), ADMIN).await;
    let metrics = metrics.as_str().unwrap().to_string();
    for line in [
        "anycloud_content_writes_total{jurisdiction=\"eu\",kind=\"response\"} 3",
        "anycloud_content_writes_total{jurisdiction=\"us\",kind=\"response\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }

    // Deletes reach the tenant's store.
    let last = eu_sent.responses.last().unwrap();
    let r = http
        .delete(format!("{}/v1/responses/{last}", a.url))
        .bearer_auth(&emea)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!b
        .rows("eu", "responses")
        .await
        .iter()
        .any(|(_, id)| id == last));

    // A tenant created through the admin API is routed as soon as it exists.
    let r = http
        .post(format!("{}/admin/v1/tenants", a.url))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "apac", "jurisdictions": ["eu", "us"], "data_jurisdiction": "us"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"]["store"], "us", "{v}");
    let r = http
        .post(format!("{}/admin/v1/tenants", a.url))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "lost", "jurisdictions": ["eu", "us"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a tenant whose content has no store");
    let r = http
        .post(format!("{}/admin/v1/keys", a.url))
        .bearer_auth(ADMIN)
        .json(&json!({"tenant": "apac"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let apac = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, v) = post(
        &http,
        &format!("{}/v1/responses", a.url),
        &apac,
        json!({"model": "gpt-4o", "input": "apac prompt"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let apac_id = vec![v["id"].as_str().unwrap().to_string()];
    assert_eq!(
        holders(&b, "responses", &apac_id).await,
        BTreeSet::from(["us"])
    );

    if two_instances {
        // B shares the stores: it continues, reads and deletes what A stored.
        let b2 = {
            let (child, url) = serve::serve(BIN, &path);
            Instance { child, url }
        };
        let (s, _, v) = post(
            &http,
            &format!("{}/v1/responses", b2.url),
            &emea,
            json!({"model": "gpt-4o", "input": "once more",
                   "previous_response_id": eu_sent.responses[1]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let id = vec![v["id"].as_str().unwrap().to_string()];
        assert_eq!(holders(&b, "responses", &id).await, BTreeSet::from(["eu"]));
        let (s, v) = get(
            &http,
            &format!("{}/v1/responses/{}", b2.url, eu_sent.responses[1]),
            &emea,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let r = http
            .delete(format!("{}/v1/responses/{}", b2.url, id[0]))
            .bearer_auth(&emea)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(holders(&b, "responses", &id).await.is_empty());
    }
    drop(a);

    // The report lists where content lives, and finds nothing out of place.
    let report: Value =
        serde_json::from_str(&cli(&["store", "residency", "--format", "json"], &path)).unwrap();
    let main = &report["stores"][0];
    assert_eq!(main["store"], "main");
    assert_eq!(main["tenants"], json!({}), "{report}");
    assert_eq!(report["stores"][1]["store"], "eu", "{report}");
    assert!(
        report["stores"][1]["tenants"]["emea"]["captures"].as_u64() >= Some(2),
        "{report}"
    );
    assert_eq!(
        report["stores"][1]["tenants"]["amer"],
        Value::Null,
        "{report}"
    );

    // One content store is copied on its own: the EU content, and nothing else.
    let copy = Backend::Sqlite {
        dir: dir.path().to_path_buf(),
    };
    let copied = cli(
        &[
            "store",
            "copy",
            "--content",
            "eu",
            "--to",
            &copy.url("eu-copy"),
        ],
        &path,
    );
    assert!(copied.contains("copy verified"), "{copied}");
    let rows = copy.rows("eu-copy", "responses").await;
    assert!(
        !rows.is_empty() && rows.iter().all(|(t, _)| t == "emea"),
        "{rows:?}"
    );

    // Retention: every response has expired; the purge at start empties both stores.
    b.expire_responses().await;
    let clear = dir.path().join("clear.toml");
    std::fs::write(
        &clear,
        config(&b, &eu_cloud.base_url(), &us_cloud.base_url(), false),
    )
    .unwrap();
    let c = {
        let (child, url) = serve::serve(BIN, &clear);
        Instance { child, url }
    };
    let t = Instant::now();
    while !(b.rows("eu", "responses").await.is_empty()
        && b.rows("us", "responses").await.is_empty())
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "expired responses not purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without the capture key responses are stored in clear: the prompt's bytes are in its
    // tenant's store and nowhere else (this is what fails if content goes astray).
    let (eu_clear, us_clear) = (format!("EU-CLEAR-{tag:x}"), format!("US-CLEAR-{tag:x}"));
    for (k, marker) in [(&emea, &eu_clear), (&amer, &us_clear)] {
        let (s, _, v) = post(
            &http,
            &format!("{}/v1/responses", c.url),
            k,
            json!({"model": "gpt-4o", "input": marker.as_str()}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    drop(c);
    for (marker, home) in [(&eu_clear, "eu"), (&us_clear, "us")] {
        for store in STORES {
            assert_eq!(
                b.contains(store, marker).await,
                store == home,
                "{marker} in {store}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_content_stays_in_its_jurisdiction() {
    let dir = tempfile::tempdir().unwrap();
    scenario(
        Backend::Sqlite {
            dir: dir.path().to_path_buf(),
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_content_stays_in_its_jurisdiction_across_two_instances() {
    let (Some(main), Some(eu), Some(us)) = (
        PgSchema::create().await,
        PgSchema::create().await,
        PgSchema::create().await,
    ) else {
        return;
    };
    scenario(Backend::Postgres { main, eu, us }, true).await;
}
