//! The report and evidence commands as an operator runs them — `anycloud risk`,
//! `anycloud simulate`, `anycloud audit checkpoint` and `anycloud audit verify
//! --checkpoint` — against a store filled by the real `anycloud serve` binary over emulated
//! clouds. Figures are worked out by hand from the token counts the clients saw, and the
//! CLI's JSON is the admin API's document for the same period.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/serve.rs"]
mod serve;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");
const ADMIN: &str = "admin-token-for-cli-report-tests";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
    _emulators: (EmulatorHandle, EmulatorHandle),
}

/// What one cloud served, as the clients saw it.
#[derive(Default, Debug)]
struct Served {
    requests: u64,
    input: u64,
    output: u64,
}

impl Served {
    fn cost(&self, input_per_mtok: f64, output_per_mtok: f64) -> f64 {
        (self.input as f64 * input_per_mtok + self.output as f64 * output_per_mtok) / 1e6
    }
}

/// azure-us (US, primary, 2.5/10 per Mtok, no tools) and local-openai (EU, 1/2 per Mtok,
/// tools); `gpt-4o` on both, `only-local` on local-openai alone; tenant `team`.
fn config_text(
    azure: &str,
    local: &str,
    db: &Path,
    tenant_extra: &str,
    azure_price: &str,
) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[store]
url = "sqlite://{db}"

[audit]
key = "{audit_key}"

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure}"
api_key = "az-key"
api_version = "2024-10-21"
jurisdiction = "us"

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local}"
api_key = "local-key"
jurisdiction = "eu"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream"]
price = {azure_price}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}

[[models]]
name = "only-local"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream"]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}

[agreements.primary]
cloud = "azure-us"

[[tenants]]
name = "team"
{tenant_extra}
"#,
        db = db.display(),
        audit_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
}

const AZURE_PRICE: &str = "{ input_per_mtok = 2.5, output_per_mtok = 10.0 }";

async fn setup() -> Setup {
    let azure = spawn_on_port(
        EmulatorConfig::azure("azure-us", "az-key", vec!["gpt-4o-prod".into()]),
        0,
    )
    .await
    .unwrap();
    let local = spawn_on_port(
        EmulatorConfig::openai_compatible("local-openai", "local-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let config = dir.path().join("anycloud.toml");
    std::fs::write(
        &config,
        config_text(&azure.base_url(), &local.base_url(), &db, "", AZURE_PRICE),
    )
    .unwrap();
    Setup {
        dir,
        config,
        db,
        _emulators: (azure, local),
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// Serves real traffic through the binary, returns what each cloud served (as the clients
/// saw it) and the admin API's risk document, then stops the gateway with SIGTERM (every
/// record flushed).
async fn traffic(s: &Setup) -> (Served, Served, Value) {
    let c = s.config.to_str().unwrap();
    let out = run(&["keys", "create", "--config", c, "--tenant", "team"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (mut child, url) = serve::serve(BIN, &s.config);
    let http = reqwest::Client::new();
    let (mut azure, mut local) = (Served::default(), Served::default());
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {}}}}]);
    // Three plain gpt-4o chats (the primary's first look), two needing tools (only
    // local-openai has them) and one only-local.
    let bodies = (0..3)
        .map(|i| json!({"model": "gpt-4o", "messages": [{"role": "user", "content": format!("plain question number {i}")}]}))
        .chain((0..2).map(|i| json!({"model": "gpt-4o", "tools": tools, "messages": [{"role": "user", "content": format!("look it up {i}")}]})))
        .chain([json!({"model": "only-local", "messages": [{"role": "user", "content": "only here"}]})]);
    for body in bodies {
        let r = http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cloud = r.headers()["x-anycloud-cloud"]
            .to_str()
            .unwrap()
            .to_string();
        let v: Value = r.json().await.unwrap();
        let served = if cloud == "azure-us" {
            &mut azure
        } else {
            &mut local
        };
        served.requests += 1;
        served.input += v["usage"]["prompt_tokens"].as_u64().unwrap();
        served.output += v["usage"]["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!((azure.requests, local.requests), (3, 3));
    // The ledger writer batches: wait until the API's report counts all six.
    let deadline = Instant::now() + Duration::from_secs(10);
    let api = loop {
        let v: Value = http
            .get(format!("{url}/admin/v1/risk"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total: u64 = v["concentration"]["cloud"]["entries"]
            .as_array()
            .map(|e| e.iter().map(|e| e["requests"].as_u64().unwrap()).sum())
            .unwrap_or(0);
        if total == 6 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "ledger never reached 6 rows: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    serve::signal(&child, "-TERM");
    serve::wait_exit(&mut child, Duration::from_secs(20));
    (azure, local, api)
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name || e["cloud"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {list}"))
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_and_simulate_from_the_cli_over_real_traffic() {
    let s = setup().await;
    let (azure, local, api) = traffic(&s).await;
    let c = s.config.to_str().unwrap();

    // `anycloud risk` prints the admin API's document.
    let risk = stdout_json(&run(&["risk", "--config", c, "--format", "json"]));
    assert_eq!(risk, api, "CLI and admin API disagree");

    // Figures by hand: cost shares and the HHI over them.
    let (ca, cl) = (azure.cost(2.5, 10.0), local.cost(1.0, 2.0));
    let clouds = &risk["concentration"]["cloud"];
    close(&entry(&clouds["entries"], "azure-us")["cost_usd"], ca);
    close(&entry(&clouds["entries"], "local-openai")["cost_usd"], cl);
    close(
        &entry(&clouds["entries"], "azure-us")["share_requests"],
        0.5,
    );
    let (sa, sl) = (ca / (ca + cl), cl / (ca + cl));
    // The index is printed to one decimal.
    let hhi = (100.0 * sa).powi(2) + (100.0 * sl).powi(2);
    let got = clouds["hhi"].as_f64().unwrap();
    assert!((got - hhi).abs() <= 0.05, "hhi {got}, by hand {hhi}");
    assert_eq!(clouds["band"], "high", "two clouds: HHI at least 5,000");
    // Each cloud is alone in its jurisdiction: the same split.
    let juris = &risk["concentration"]["jurisdiction"];
    close(&entry(&juris["entries"], "eu")["cost_usd"], cl);
    // only-local has one cloud: a single point of failure, stranded when it goes.
    assert_eq!(
        risk["single_points_of_failure"],
        json!([{"tenant": "team", "model": "only-local", "clouds": ["local-openai"]}])
    );
    let gone = entry(&risk["outage"], "local-openai");
    assert_eq!(
        gone["stranded"],
        json!([{"tenant": "team", "model": "only-local"}])
    );
    assert_eq!(entry(&risk["outage"], "azure-us")["stranded"], json!([]));

    // The drill for one cloud in detail, and the table an operator reads.
    let drill = stdout_json(&run(&[
        "risk",
        "--config",
        c,
        "--format",
        "json",
        "--without",
        "local-openai",
    ]));
    assert_eq!(drill["cloud"], "local-openai");
    assert_eq!(drill["requests"], 3);
    close(&drill["cost_usd"], cl);
    let table = run(&["risk", "--config", c]);
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    for word in ["azure-us", "local-openai", "only-local", "high"] {
        assert!(
            table.contains(word),
            "`{word}` missing from the table:\n{table}"
        );
    }

    // Bad input: a clear message and a non-zero exit, nothing printed as a report.
    let bad = run(&["risk", "--config", c, "--from", "2026-02-30"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--from must be an ISO 8601 date"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(bad.stdout.is_empty());
    let bad = run(&["risk", "--config", c, "--format", "xml"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown format `xml`"));

    // What if azure-us doubled its prices: the same routes, azure's cost exactly doubled.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let dearer = s.dir.path().join("dearer.toml");
    std::fs::write(
        &dearer,
        text.replace(
            AZURE_PRICE,
            "{ input_per_mtok = 5.0, output_per_mtok = 20.0 }",
        ),
    )
    .unwrap();
    let sim = stdout_json(&run(&[
        "simulate",
        "--config",
        c,
        "--candidate",
        dearer.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(sim["replayed"], 6);
    assert_eq!(sim["replayed_as_plain_chat"], 0, "needs were recorded");
    close(
        &entry(&sim["actual"]["by_cloud"], "azure-us")["cost_usd"],
        ca,
    );
    close(
        &entry(&sim["candidate"]["by_cloud"], "azure-us")["cost_usd"],
        2.0 * ca,
    );
    close(
        &entry(&sim["candidate"]["by_cloud"], "local-openai")["cost_usd"],
        cl,
    );
    assert_eq!(sim["candidate"]["refused"], json!([]));

    // What if `team` may no longer use EU clouds: the tools and only-local requests
    // (three) have nowhere to go, the plain chats stay on azure-us.
    let us_only = s.dir.path().join("us-only.toml");
    std::fs::write(
        &us_only,
        text.replace(
            "name = \"team\"\n",
            "name = \"team\"\njurisdictions = [\"us\"]\n",
        ),
    )
    .unwrap();
    let sim = stdout_json(&run(&[
        "simulate",
        "--config",
        c,
        "--candidate",
        us_only.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let refused: u64 = sim["candidate"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(refused, 3, "{}", sim["candidate"]);
    assert_eq!(
        entry(&sim["candidate"]["by_cloud"], "azure-us")["requests"],
        3
    );
    let missing = run(&[
        "simulate",
        "--config",
        c,
        "--candidate",
        "/nonexistent/candidate.toml",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/candidate.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_checkpoint_catches_a_truncation_that_plain_verify_cannot() {
    let s = setup().await;
    traffic(&s).await;
    let c = s.config.to_str().unwrap();
    let cp = s.dir.path().join("checkpoint.json");
    let cps = cp.to_str().unwrap();

    let out = run(&["audit", "checkpoint", "--config", c, "--out", cps]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    let head = written["seq"].as_i64().unwrap();
    assert_eq!(head, 6, "one entry per request: {written}");
    let ok = run(&["audit", "verify", "--config", c, "--checkpoint", cps]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("matches"));

    // An edited checkpoint proves nothing and is refused.
    let forged = s.dir.path().join("forged.json");
    let mut f = written.clone();
    f["seq"] = json!(head - 1);
    std::fs::write(&forged, f.to_string()).unwrap();
    let out = run(&[
        "audit",
        "verify",
        "--config",
        c,
        "--checkpoint",
        forged.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("edited or forged"));

    // Someone with write access drops the two newest entries and moves the head back: the
    // shorter chain is internally consistent, so plain verify passes...
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&s.db))
        .await
        .unwrap();
    let keep = head - 2;
    sqlx::query("DELETE FROM audit_log WHERE seq > ?")
        .bind(keep)
        .execute(&pool)
        .await
        .unwrap();
    let hash: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = ?")
        .bind(keep)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(keep)
        .bind(&hash)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let plain = run(&["audit", "verify", "--config", c]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
    // ...and the checkpoint kept elsewhere catches it, naming the missing entry.
    let out = run(&["audit", "verify", "--config", c, "--checkpoint", cps]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("entry {head} of the checkpoint is gone")),
        "{said}"
    );
}
