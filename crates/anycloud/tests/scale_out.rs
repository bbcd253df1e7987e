//! Scale-out, black-box: two real `anycloud serve` processes on one machine sharing one
//! PostgreSQL schema and one Redis prefix, over two emulated clouds. Shows that (a) a
//! tenant budget holds across both under 64 concurrent requests split between them, (b) a
//! rate limit is shared, (c) a drain on one stops traffic through the other within a
//! second, (d) a key revoked on one is refused by the other, (e) a Responses conversation
//! started on one continues on the other, and (f) `anycloud audit verify` passes over the
//! chain both wrote, interleaved.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/serve.rs"]
mod serve;
#[path = "../../anycloud-server/tests/common/redis.rs"]
mod test_redis;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_store::testing::PgSchema;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");
const ADMIN: &str = "scale-out-admin-token-0123456789";
/// $0.001 per token in and out; the budget fits a handful of requests.
const BUDGET_USD: f64 = 0.2;

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

fn config(pg: &str, redis: &str, prefix: &str, primary: &str, spare: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"
[store]
url = "{pg}"
redis_url = "{redis}"
redis_prefix = "{prefix}"
[[clouds]]
name = "primary"
provider = "openai_compatible"
base_url = "{primary}"
api_key = "emu-key"
[[clouds]]
name = "spare"
provider = "openai_compatible"
base_url = "{spare}"
api_key = "emu-key"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "primary"
target = "gpt-4o"
capabilities = ["chat", "stream"]
price = {{ input_per_mtok = 1000.0, output_per_mtok = 1000.0 }}
[[models.deployments]]
cloud = "spare"
target = "gpt-4o"
capabilities = ["chat", "stream"]
price = {{ input_per_mtok = 1000.0, output_per_mtok = 1000.0 }}
[[tenants]]
name = "team"
[[tenants]]
name = "budgeted"
budget = {{ usd = {BUDGET_USD}, period = "total" }}
[[tenants]]
name = "limited"
rate_limit = {{ requests_per_minute = 6 }}
"#
    )
}

fn run(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() || args[0] == "audit",
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn key(config: &Path, tenant: &str) -> String {
    let (_, out) = run(&["keys", "create", "--tenant", tenant], config);
    out.lines().last().unwrap().to_string()
}

fn serve(config: &Path) -> Instance {
    let (child, url) = serve::serve(BIN, config);
    Instance { child, url }
}

/// SIGTERM: in-flight requests finish, spend and audit entries are written.
fn stop(mut i: Instance) {
    let ok = Command::new("kill")
        .args(["-TERM", &i.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let t = Instant::now();
    while i.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn chat(http: &reqwest::Client, url: &str, key: &str) -> (u16, String, Value) {
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cloud = r
        .headers()
        .get("x-anycloud-cloud")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, cloud, r.json().await.unwrap_or(Value::Null))
}

async fn admin(http: &reqwest::Client, url: &str, path: &str) -> Value {
    let r = http
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn emulator(name: &str) -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::openai_compatible(name, "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_postgres_and_redis() {
    let Some(redis) = test_redis::test_redis("scale_out") else {
        return;
    };
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (primary, spare) = (emulator("primary").await, emulator("spare").await);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("anycloud.toml");
    std::fs::write(
        &path,
        config(
            &schema.url(),
            &redis.url,
            &redis.prefix,
            &primary.base_url(),
            &spare.base_url(),
        ),
    )
    .unwrap();
    let (team, budgeted, limited) = (
        key(&path, "team"),
        key(&path, "budgeted"),
        key(&path, "limited"),
    );
    let a = serve(&path);
    let b = serve(&path);
    let http = reqwest::Client::new();
    let ab = |i: usize| if i.is_multiple_of(2) { &a.url } else { &b.url };

    // (a) 64 concurrent requests under one $0.20 budget, half through each instance.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (http, url, key) = (http.clone(), ab(i).clone(), budgeted.clone());
        tasks.push(tokio::spawn(async move { chat(&http, &url, &key).await }));
    }
    let (mut ok, mut worst) = (0usize, None::<f64>);
    for t in tasks {
        let (status, _, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
                // "… this request may cost up to $0.018000; a total budget …"
                let msg = v["error"]["message"].as_str().unwrap();
                let up_to = msg.split("may cost up to $").nth(1).unwrap();
                let n: f64 = up_to.split(';').next().unwrap().parse().unwrap();
                worst = Some(n);
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    let worst = worst.expect("some requests were refused");
    let fits = (BUDGET_USD / worst + 1e-9).floor() as usize;
    println!(
        "budget: {ok} of 64 admitted across both instances; {fits} reservations of ${worst} fit"
    );
    assert!(ok >= 1, "the budget admits some requests");
    // Two separate counters would have admitted up to twice this.
    assert!(
        ok <= fits,
        "{ok} admitted across both instances; only {fits} reservations of ${worst} fit ${BUDGET_USD}"
    );

    // (b) One rate limit of 6 per minute across both instances.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(chat(&http, ab(i), &limited).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "{statuses:?}"
    );
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");

    // (c) Drain `primary` through A: B stops sending it traffic within a second.
    assert_eq!(chat(&http, &b.url, &team).await.1, "primary");
    let v = admin(&http, &a.url, "/admin/v1/clouds/primary/drain").await;
    assert_eq!(v["applies_to"], "all_instances", "{v}");
    let drained_at = Instant::now();
    let mut moved = None;
    while drained_at.elapsed() < Duration::from_secs(1) {
        let (s, cloud, _) = chat(&http, &b.url, &team).await;
        assert_eq!(s, 200);
        if cloud == "spare" {
            moved = Some(drained_at.elapsed());
            break;
        }
    }
    let moved = moved.expect("B still used the drained cloud after 1 s");
    println!("drain on A took effect on B after {moved:?}");
    let before = primary.request_count();
    for i in 0..6 {
        assert_eq!(chat(&http, ab(i), &team).await.1, "spare");
    }
    assert_eq!(
        primary.request_count(),
        before,
        "no traffic reaches a drained cloud"
    );
    admin(&http, &b.url, "/admin/v1/clouds/primary/restore").await;

    // (e) A conversation started on A continues on B with the whole history.
    let first: Value = http
        .post(format!("{}/v1/responses", a.url))
        .bearer_auth(&team)
        .json(&json!({"model": "gpt-4o", "input": "My name is Ada."}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spare_before = spare.requests().len();
    admin(&http, &b.url, "/admin/v1/clouds/primary/drain").await;
    let r = http
        .post(format!("{}/v1/responses", b.url))
        .bearer_auth(&team)
        .json(&json!({"model": "gpt-4o", "input": "What is my name?",
                      "previous_response_id": first["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["previous_response_id"], first["id"]);
    let sent = &spare.requests()[spare_before].body["messages"];
    let texts: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts.first(), Some(&"My name is Ada."), "{sent}");
    assert_eq!(texts.last(), Some(&"What is my name?"), "{sent}");
    assert_eq!(texts.len(), 3, "turn one, its answer, turn two: {sent}");

    // (d) Revoked through A; B refuses it (it had it cached a moment ago).
    assert_eq!(chat(&http, &b.url, &team).await.0, 200);
    let id = anycloud_store::keys::parse_id(&team).unwrap().to_string();
    admin(&http, &a.url, &format!("/admin/v1/keys/{id}/revoke")).await;
    let revoked_at = Instant::now();
    loop {
        let (s, _, _) = chat(&http, &b.url, &team).await;
        if s == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still serves a key revoked on A"
        );
    }

    // (f) Both instances wrote one audit chain; it verifies whole.
    stop(a);
    stop(b);
    let (intact, out) = run(&["audit", "verify"], &path);
    assert!(intact, "{out}");
    let count: u64 = out
        .split("intact: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(count >= 64 + 12, "{out}");

    // Spend is the durable record: what both settled, never more than the budget.
    let store = anycloud_store::open(&schema.url()).await.unwrap();
    let spent = store.spend("tenant:budgeted", "total").await.unwrap();
    println!("{out}settled spend ${spent} of ${BUDGET_USD}");
    assert!(spent > 0.0 && spent <= BUDGET_USD + 1e-9, "spent ${spent}");
}
