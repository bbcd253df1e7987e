//! Governance through the HTTP API: admin auth, tenants and keys, rate limits, budgets
//! (including 64 concurrent requests against a nearly spent budget), the audit trail and
//! payload capture. One OpenAI-compatible emulator behind a gateway on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_server::AppState;
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const ADMIN: &str = "admin-token-for-tests-0123456789";

struct Gw {
    url: String,
    state: Arc<AppState>,
    http: reqwest::Client,
    _emu: EmulatorHandle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn config_text(db: &Path, emu: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[store]
url = "sqlite://{db}"

[capture]
key = "{key}"
key_id = "test-1"
redact = true

[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "{emu}"
api_key = "local-key"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"
# $0.001 per token in and out: easy to compute by hand.
price = {{ input_per_mtok = 1000.0, output_per_mtok = 1000.0 }}

[[models]]
name = "other-model"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"

[[tenants]]
name = "team"

[[tenants]]
name = "limited"
rate_limit = {{ requests_per_minute = 3 }}

[[tenants]]
name = "budgeted"
budget = {{ usd = 1.0, period = "total" }}

[[tenants]]
name = "captured"
capture = true
"#,
        db = db.display()
    )
}

async fn start_on(db: &Path) -> Gw {
    let emu = spawn_on_port(
        EmulatorConfig::openai_compatible("local", "local-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let text = config_text(db, &emu.base_url());
    let config = anycloud_config::parse_str(&text, &db.with_extension("toml"), &|_| None).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let state = AppState::build(config, store).await.unwrap();
    let (url, tx) = common::listen(state.clone()).await;
    Gw {
        url,
        state,
        http: reqwest::Client::new(),
        _emu: emu,
        _stop: tx,
    }
}

impl Gw {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        common::admin_call(&self.http, &self.url, ADMIN, method, path, body).await
    }

    async fn key_for(&self, tenant: &str, extra: Value) -> String {
        common::create_key(&self.http, &self.url, ADMIN, tenant, extra).await
    }

    async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn hi() -> Value {
    json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

fn h<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn start() -> (tempfile::TempDir, Gw) {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_on(&dir.path().join("gw.db")).await;
    (dir, gw)
}

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let (_d, gw) = start().await;
    let client_key = gw.key_for("team", json!({})).await;
    let url = format!("{}/admin/v1/tenants", gw.url);
    let none = gw.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = gw.http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let client = gw
        .http
        .get(&url)
        .bearer_auth(&client_key)
        .send()
        .await
        .unwrap();
    assert_eq!(client.status(), 403);
    let body: Value = client.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_token_required");
    // The document needs no token and is OpenAPI 3.1 with every admin path.
    let doc: Value = gw
        .http
        .get(format!("{}/admin/v1/openapi.json", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for p in [
        "/admin/v1/tenants",
        "/admin/v1/tenants/{name}",
        "/admin/v1/keys",
        "/admin/v1/keys/{id}/revoke",
        "/admin/v1/audit",
        "/admin/v1/audit/verify",
        "/admin/v1/captures/{request_id}",
        "/admin/v1/risk",
        "/admin/v1/simulate",
        "/admin/v1/mcp/servers",
        "/admin/v1/mcp/servers/{name}/drain",
        "/admin/v1/mcp/servers/{name}/restore",
        "/admin/v1/clouds",
        "/admin/v1/clouds/{name}/drain",
        "/admin/v1/clouds/{name}/restore",
        "/admin/v1/route/explain",
        "/admin/v1/ledger/report",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the document"
        );
    }
}

#[tokio::test]
async fn tenants_created_and_updated_through_the_api_are_live() {
    let (_d, gw) = start().await;
    let (s, v) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "newco", "models": ["gpt-4o"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["models"], json!(["gpt-4o"]));
    let (s, _) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "newco"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, v) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "x", "models": ["nope"]})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));

    let key = gw.key_for("newco", json!({})).await;
    assert_eq!(gw.chat(&key, hi()).await.status(), 200);

    let (s, v) = gw
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/tenants/newco",
            Some(json!({"models": ["other-model"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The very next request sees the new policy.
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 403);
    let (s, v) = gw
        .admin(reqwest::Method::GET, "/admin/v1/tenants/newco", None)
        .await;
    assert_eq!((s, v["models"].clone()), (200, json!(["other-model"])));
    let (s, v) = gw
        .admin(reqwest::Method::GET, "/admin/v1/tenants", None)
        .await;
    assert_eq!(s, 200);
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "newco"));
    let (s, _) = gw
        .admin(reqwest::Method::GET, "/admin/v1/tenants/ghost", None)
        .await;
    assert_eq!(s, 404);

    // Persisted: a restarted gateway on the same store knows the tenant and its policy.
    let path = gw
        .state
        .config
        .store
        .url
        .trim_start_matches("sqlite://")
        .to_string();
    let again = start_on(Path::new(&path)).await;
    let (s, v) = again
        .admin(reqwest::Method::GET, "/admin/v1/tenants/newco", None)
        .await;
    assert_eq!((s, v["models"].clone()), (200, json!(["other-model"])));
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let (_d, gw) = start().await;
    let (s, created) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/keys",
            Some(json!({"tenant": "team", "name": "ci"})),
        )
        .await;
    assert_eq!(s, 201);
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("sk-ac-{id}-")));
    assert_eq!(gw.chat(&key, hi()).await.status(), 200);

    let (_, list) = gw
        .admin(reqwest::Method::GET, "/admin/v1/keys?tenant=team", None)
        .await;
    let text = list.to_string();
    assert!(text.contains(&id) && !text.contains(&key), "{text}");
    let (s, one) = gw
        .admin(reqwest::Method::GET, &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert_eq!((s, one["name"].clone()), (200, json!("ci")));
    assert!(!one.to_string().contains(&key));
    let (s, _) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/keys",
            Some(json!({"tenant": "ghost"})),
        )
        .await;
    assert_eq!(s, 400);

    let (s, revoked) = gw
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/keys/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(revoked["revoked_at"].is_string());
    // Revocation bites within two seconds (on this instance, at once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if gw.chat(&key, hi()).await.status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked key still works after 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, _) = gw
        .admin(reqwest::Method::GET, "/admin/v1/keys/zzzzzzzzzzzz", None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn tenant_request_limit_answers_429_with_openai_headers() {
    let (_d, gw) = start().await;
    let key = gw.key_for("limited", json!({})).await;
    for remaining in ["2", "1", "0"] {
        let r = gw.chat(&key, hi()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(h(&r, "x-ratelimit-limit-requests"), "3");
        assert_eq!(h(&r, "x-ratelimit-remaining-requests"), remaining);
        assert!(!h(&r, "x-ratelimit-reset-requests").is_empty());
    }
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = h(&r, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(h(&r, "x-ratelimit-remaining-requests"), "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant `limited`"));
    // Other tenants are not affected.
    let other = gw.key_for("team", json!({})).await;
    assert_eq!(gw.chat(&other, hi()).await.status(), 200);
}

#[tokio::test]
async fn key_token_limit_counts_prompt_and_max_tokens() {
    let (_d, gw) = start().await;
    // "hi" is estimated at 5 prompt tokens, plus max_tokens 10: 15 tokens a request.
    let key = gw
        .key_for("team", json!({"rate_limit": {"tokens_per_minute": 40}}))
        .await;
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "x-ratelimit-limit-tokens"), "40");
    assert_eq!(h(&r, "x-ratelimit-remaining-tokens"), "25");
    // When the request ends, the estimate is corrected to what the cloud counted.
    let v: Value = r.json().await.unwrap();
    let real = v["usage"]["total_tokens"].as_u64().unwrap();
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 200);
    let remaining: u64 = h(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
    let expected = 40 - real - 15;
    assert!(
        remaining.abs_diff(expected) <= 1,
        "{remaining} left, expected {expected} (40 - {real} used - 15 estimated)"
    );
    // A request whose estimate alone is over the limit is refused.
    let r = gw
        .chat(
            &key,
            json!({"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains("tokens"));
}

#[tokio::test]
async fn sixty_four_concurrent_requests_cannot_overspend_a_nearly_spent_budget() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    // Tenant `budgeted` has $1.00 total; $0.96 is already spent (as if before a restart).
    {
        let store = anycloud_store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store
            .add_spend(&[("tenant:budgeted".into(), "total".into(), 0.96)])
            .await
            .unwrap();
    }
    let gw = start_on(&db).await;
    let key = gw.key_for("budgeted", json!({})).await;
    // Hand computation. Price: $0.001 per token in and out. Each request: "hi" is
    // estimated at ceil((16 + 2) / 4) = 5 prompt tokens, max_tokens = 10, so its
    // worst case W = 15 × $0.001 = $0.015 is reserved. Remaining: $0.04, so at most
    // floor(0.04 / 0.015) = 2 requests can hold a reservation at once. The emulator
    // bills 5 prompt + 7 completion tokens: real cost c = $0.012 ≤ W, so no settled
    // request costs more than it reserved and overspend ≤ Σ over in-flight requests of
    // max(0, real − reserved) = 0. A request is admitted only while
    // spent + reserved + W ≤ $1.00, so the n-th served one needs
    // 0.96 + 0.012·(n−1) + 0.015 ≤ 1.00 → n ≤ 3; two always fit (0.96 + 2·0.015 ≤ 1).
    // Final spend = 0.96 + 0.012·n ≤ $0.996 ≤ $1.00.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (http, url, key) = (gw.http.clone(), gw.url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&hi())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = h(&r, "retry-after").to_string();
            let v: Value = r.json().await.unwrap();
            (status, retry, v)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, retry, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                refused += 1;
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
                assert_eq!(v["error"]["type"], "rate_limit_error");
                let m = v["error"]["message"].as_str().unwrap();
                assert!(m.contains("tenant `budgeted`") && m.contains("left"), "{m}");
                assert!(retry.is_empty(), "a total budget never resets: {retry}");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!((2..=3).contains(&ok), "{ok} served");
    assert_eq!(ok + refused, 64);
    gw.state.governance.flush().await;
    let (spent, reserved) = gw
        .state
        .governance
        .budgets
        .usage("tenant:budgeted", anycloud_config::BudgetPeriod::Total);
    assert!(reserved.abs() < 1e-9, "reservations released: {reserved}");
    assert!(spent <= 1.0 + 1e-9, "overspent: ${spent}");
    assert!(
        (spent - (0.96 + 0.012 * ok as f64)).abs() < 1e-9,
        "charged: ${spent}"
    );
    let stored = gw
        .state
        .store
        .spend("tenant:budgeted", "total")
        .await
        .unwrap();
    assert!(
        (stored - spent).abs() < 1e-9,
        "store {stored} vs memory {spent}"
    );

    // After a restart the spend is read back before the first admission.
    let again = start_on(&db).await;
    let r = again.chat(&key, hi()).await;
    assert!([200, 429].contains(&r.status().as_u16()));
    let (after, _) = again
        .state
        .governance
        .budgets
        .usage("tenant:budgeted", anycloud_config::BudgetPeriod::Total);
    assert!(
        after >= spent - 1e-9,
        "restart lost spend: {after} < {spent}"
    );
    if spent + 0.015 > 1.0 {
        assert_eq!(r.status(), 429);
    }
}

#[tokio::test]
async fn day_budget_429_carries_retry_after_until_midnight() {
    let (_d, gw) = start().await;
    let key = gw
        .key_for("team", json!({"budget": {"usd": 0.01, "period": "day"}}))
        .await;
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 429, "W = $0.015 > $0.01");
    let retry: u64 = h(&r, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("daily budget of key"));
    // Raising the key's budget through the API takes effect.
    let id = &key[6..18];
    let (s, _) = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/keys/{id}/policy"),
            Some(json!({"budget": {"usd": 5.0, "period": "day"}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(gw.chat(&key, hi()).await.status(), 200);
}

#[tokio::test]
async fn every_ai_and_admin_action_is_audited_and_the_chain_verifies() {
    let (_d, gw) = start().await;
    let key = gw.key_for("team", json!({})).await;
    let r = gw.chat(&key, hi()).await;
    assert_eq!(r.status(), 200);
    let rid = h(&r, "x-request-id").to_string();
    assert_eq!(
        gw.chat(&key, json!({"model": "nope", "messages": []}))
            .await
            .status(),
        400
    );
    gw.state.governance.flush().await;

    let (s, v) = gw
        .admin(reqwest::Method::GET, "/admin/v1/audit/verify", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "intact", "{v}");
    assert!(v["count"].as_i64().unwrap() >= 3);

    let (_, ai) = gw
        .admin(
            reqwest::Method::GET,
            "/admin/v1/audit?action=ai.chat_completions&tenant=team",
            None,
        )
        .await;
    let entries = ai["data"].as_array().unwrap();
    let served = entries
        .iter()
        .find(|e| e["request_id"] == rid.as_str())
        .unwrap();
    assert_eq!(served["cloud"], "local");
    assert_eq!(served["status"], 200);
    assert_eq!(served["model"], "gpt-4o");
    assert!(served["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(served["input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(served["route"][0]["cloud"], "local");
    assert!(served["actor"].as_str().unwrap().starts_with("key:"));
    assert!(entries.iter().any(|e| e["status"] == 400));

    let (_, by_cloud) = gw
        .admin(reqwest::Method::GET, "/admin/v1/audit?cloud=local", None)
        .await;
    assert!(by_cloud["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["cloud"] == "local"));
    let (_, admin) = gw
        .admin(
            reqwest::Method::GET,
            "/admin/v1/audit?action=admin.key.create",
            None,
        )
        .await;
    let created = &admin["data"][0];
    assert_eq!(created["actor"], "admin");
    assert!(created["detail"]["after"]["id"].is_string());
    assert!(
        !admin.to_string().contains(&key),
        "the key itself is never audited"
    );

    let (_, page) = gw
        .admin(reqwest::Method::GET, "/admin/v1/audit?limit=1", None)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let next = page["next_after"].as_i64().unwrap();
    let (_, page2) = gw
        .admin(
            reqwest::Method::GET,
            &format!("/admin/v1/audit?limit=1&after={next}"),
            None,
        )
        .await;
    assert_eq!(page2["data"][0]["seq"].as_i64().unwrap(), next + 1);
    let (s, _) = gw
        .admin(reqwest::Method::GET, "/admin/v1/audit?limit=0", None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = gw
        .admin(reqwest::Method::GET, "/admin/v1/audit?from=yesterday", None)
        .await;
    assert_eq!(s, 400);
    let (_, future) = gw
        .admin(
            reqwest::Method::GET,
            "/admin/v1/audit?from=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(future["data"], json!([]));
}

#[tokio::test]
async fn captured_payloads_are_encrypted_redacted_and_readable_by_admin() {
    let (dir, gw) = start().await;
    let key = gw.key_for("captured", json!({})).await;
    let secret_mail = "jane.doe@example.com";
    let r = gw
        .chat(
            &key,
            json!({"model": "gpt-4o", "messages": [{"role": "user",
                "content": format!("mail {secret_mail} card 4111 1111 1111 1111")}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let rid = h(&r, "x-request-id").to_string();
    let mut got = (0, Value::Null);
    for _ in 0..50 {
        got = gw
            .admin(
                reqwest::Method::GET,
                &format!("/admin/v1/captures/{rid}"),
                None,
            )
            .await;
        if got.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (s, cap) = got;
    assert_eq!(s, 200, "{cap}");
    assert_eq!(cap["key_id"], "test-1");
    let content = cap["request"]["messages"][0]["content"].as_str().unwrap();
    assert_eq!(content, "mail [EMAIL] card [CARD]");
    assert!(cap["response"]["choices"].is_array());
    // At rest nothing is readable: the database file holds neither the prompt nor the reply.
    let bytes = std::fs::read(dir.path().join("gw.db")).unwrap();
    let wal = std::fs::read(dir.path().join("gw.db-wal")).unwrap_or_default();
    for hay in [&bytes, &wal] {
        assert!(!contains(hay, b"[EMAIL]") && !contains(hay, b"4111 1111"));
    }
    // Tenants without capture store nothing.
    let plain = gw.key_for("team", json!({})).await;
    let r = gw.chat(&plain, hi()).await;
    let rid = h(&r, "x-request-id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (s, _) = gw
        .admin(
            reqwest::Method::GET,
            &format!("/admin/v1/captures/{rid}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
