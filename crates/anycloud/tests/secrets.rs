//! Secrets hygiene, end to end: the real `anycloud serve` binary with debug logging runs
//! traffic (served, streamed, refused, upstream-rejected) and admin actions against
//! emulated clouds; then every byte it produced — stdout, stderr, `/metrics`, the audit
//! log, every HTTP response body, and the SQLite files — is searched for the admin token,
//! every cloud secret, the capture key and the clear client keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anycloud_emulators::{spawn_on_port, EmulatorConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "adm1n-T0KEN-never-in-output-7f3a9c";
const CLOUD: &str = "cl0ud-SECRET-never-in-output-4b2e8d";
const WRONG_CLOUD: &str = "wr0ng-cloud-SECRET-never-in-output-91c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_of_a_full_run() {
    use base64::Engine as _;
    let capture_key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let good = spawn_on_port(
        EmulatorConfig::openai_compatible("good", CLOUD, vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    // This cloud expects a different key than the gateway sends: upstream 401s.
    let bad = spawn_on_port(
        EmulatorConfig::openai_compatible("bad", "the-right-one", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let cfg = dir.path().join("anycloud.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_token = "${{T_ADMIN}}"

[store]
url = "sqlite://{db}"

[capture]
key = "${{T_CAPTURE}}"
redact = true

[[clouds]]
name = "good"
provider = "openai_compatible"
base_url = "{good}"
api_key = "${{T_CLOUD}}"

[[clouds]]
name = "bad"
provider = "openai_compatible"
base_url = "{bad}"
api_key = "${{T_WRONG}}"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "good"
target = "gpt-4o"
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}

[[models]]
name = "broken"
[[models.deployments]]
cloud = "bad"
target = "gpt-4o"

[[tenants]]
name = "team"
capture = true
budget = {{ usd = 100.0, period = "month" }}
rate_limit = {{ requests_per_minute = 1000 }}
"#,
            db = db.display(),
            good = good.base_url(),
            bad = bad.base_url(),
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_anycloud"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("ANYCLOUD_LOG", "debug")
        .env("T_ADMIN", ADMIN)
        .env("T_CLOUD", CLOUD)
        .env("T_WRONG", WRONG_CLOUD)
        .env("T_CAPTURE", &capture_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let err_pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });

    // The listening address from the log line.
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let text = stderr.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.contains("anycloud listening")) {
            let at = line.find("127.0.0.1:").unwrap();
            let port: String = line[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            break format!("http://127.0.0.1:{port}");
        }
        assert!(Instant::now() < deadline, "gateway did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let http = reqwest::Client::new();
    let mut bodies = String::new();
    let admin =
        |m: reqwest::Method, p: &str| http.request(m, format!("{url}{p}")).bearer_auth(ADMIN);
    let created: Value = admin(reqwest::Method::POST, "/admin/v1/keys")
        .json(&json!({"tenant": "team", "name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let other: Value = admin(reqwest::Method::POST, "/admin/v1/keys")
        .json(&json!({"tenant": "team"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_key = other["key"].as_str().unwrap().to_string();

    let chat = |k: &str, body: Value| {
        http.post(format!("{url}/v1/chat/completions"))
            .bearer_auth(k)
            .json(&body)
            .send()
    };
    let hello = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]});
    let mut statuses = Vec::new();
    for (k, body) in [
        (key.as_str(), hello.clone()),
        (
            key.as_str(),
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            key.as_str(),
            json!({"model": "broken", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (key.as_str(), json!({"model": "nope", "messages": []})),
        (
            "sk-ac-aaaaaaaaaaaa-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            hello.clone(),
        ),
        (ADMIN, hello.clone()),
    ] {
        let r = chat(k, body).await.unwrap();
        statuses.push(r.status().as_u16());
        bodies.push_str(&r.text().await.unwrap());
    }
    assert_eq!(statuses[0], 200);
    assert!(
        statuses[2] >= 400,
        "the upstream rejection is an error: {statuses:?}"
    );
    assert_eq!(statuses[4], 401);
    assert_eq!(statuses[5], 401);
    for (m, p, body) in [
        (
            reqwest::Method::POST,
            "/admin/v1/tenants".to_string(),
            Some(json!({"name": "newco"})),
        ),
        (
            reqwest::Method::PUT,
            "/admin/v1/tenants/newco".to_string(),
            Some(json!({"models": ["gpt-4o"]})),
        ),
        (
            reqwest::Method::POST,
            format!("/admin/v1/keys/{id}/revoke"),
            None,
        ),
        (reqwest::Method::GET, "/admin/v1/keys".to_string(), None),
        (
            reqwest::Method::GET,
            "/admin/v1/audit?limit=1000".to_string(),
            None,
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/audit/verify".to_string(),
            None,
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/openapi.json".to_string(),
            None,
        ),
    ] {
        let mut rb = admin(m, &p);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        assert!(r.status().is_success(), "{p}: {}", r.status());
        bodies.push_str(&r.text().await.unwrap());
    }
    // A wrong admin token and a client key on the admin API.
    for t in ["not-the-token", other_key.as_str()] {
        let r = http
            .get(format!("{url}/admin/v1/tenants"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert!(r.status() == 401 || r.status() == 403);
        bodies.push_str(&r.text().await.unwrap());
    }
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("anycloud"), "metrics served");

    // SIGTERM: drains the audit writer and exits.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}");
    reader.join().unwrap();
    let stdout = out_reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert!(stderr.contains("DEBUG"), "debug logging was on");

    // The audit log written by the run is intact (CLI verify over the same store).
    let verify = Command::new(env!("CARGO_BIN_EXE_anycloud"))
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .env("T_ADMIN", ADMIN)
        .env("T_CLOUD", CLOUD)
        .env("T_WRONG", WRONG_CLOUD)
        .env("T_CAPTURE", &capture_key)
        .output()
        .unwrap();
    let verify_out = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verify.status.success(), "{verify_out}");
    assert!(verify_out.contains("intact"), "{verify_out}");

    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gw.db")
        {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    assert!(!files.is_empty());
    let key_secret = &key[19..];
    let other_secret = &other_key[19..];
    let secrets = [
        ("admin token", ADMIN),
        ("cloud api key", CLOUD),
        ("rejected cloud api key", WRONG_CLOUD),
        ("capture key", capture_key.as_str()),
        ("client key", key_secret),
        ("second client key", other_secret),
    ];
    let texts = [
        ("stdout", stdout.as_bytes()),
        ("stderr", stderr.as_bytes()),
        ("/metrics", metrics.as_bytes()),
        ("response bodies (audit log included)", bodies.as_bytes()),
        ("audit verify output", verify_out.as_bytes()),
    ];
    for (what, secret) in secrets {
        for (place, hay) in texts
            .iter()
            .map(|(n, b)| (*n, *b))
            .chain(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
        {
            // The client keys are legitimately in the admin API's create responses.
            if place.starts_with("response bodies") && what.contains("client key") {
                continue;
            }
            assert!(
                !hay.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the {what} appears in {place}"
            );
        }
    }
    // The audit trail holds the admin actions and the AI traffic.
    assert!(bodies.contains("admin.key.revoke") && bodies.contains("ai.chat_completions"));
}
