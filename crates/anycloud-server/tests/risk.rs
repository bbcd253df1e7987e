//! `GET /admin/v1/risk` and `POST /admin/v1/simulate` over a ledger built by real traffic
//! through the emulators (each finished request's attempts turned into ledger rows by the
//! gateway's own `ledger_sink::usage_record`), with every figure worked out by hand from
//! the token counts the clients saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{Days, Utc};
use common::*;
use serde_json::{json, Value};

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive()
}

fn day(offset: i64) -> String {
    let t = today();
    if offset >= 0 {
        t.checked_add_days(Days::new(offset as u64)).unwrap()
    } else {
        t.checked_sub_days(Days::new((-offset) as u64)).unwrap()
    }
    .to_string()
}

/// The actual contract: azure-us is the primary (first look, no ship-first); a commitment
/// of 1 USD on local-openai around today.
fn agreements() -> String {
    format!(
        r#"
[agreements.primary]
cloud = "azure-us"

[[agreements.commitment]]
cloud = "local-openai"
amount_usd = 1.0
from = "{}"
to = "{}"
"#,
        day(-10),
        day(20)
    )
}

/// The candidate: the primary declines gpt-4o, local-openai's gpt-4o costs 1/2 USD per
/// Mtok, and `narrow` may use only EU clouds (there are none).
fn candidate(gw: &Gateway) -> String {
    format!(
        r#"
[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure}"
api_key = "${{AZURE_KEY}}"
api_version = "2024-10-21"
jurisdiction = "us"

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local}"
api_key = "local-key"
jurisdiction = "us"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}

[[models]]
name = "text-embedding-3-small"
[[models.deployments]]
cloud = "azure-us"
target = "embed-small"
capabilities = ["embeddings"]
[[models.deployments]]
cloud = "local-openai"
target = "text-embedding-3-small"
capabilities = ["embeddings"]

[[models]]
name = "other-model"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"

[agreements.primary]
cloud = "azure-us"
declined_models = ["gpt-4o"]

[[agreements.commitment]]
cloud = "local-openai"
amount_usd = 1.0
from = "{from}"
to = "{to}"

[[tenants]]
name = "team"

[[tenants]]
name = "narrow"
models = ["other-model"]
jurisdictions = ["eu"]

[[tenants]]
name = "eu-only"
jurisdictions = ["eu"]
"#,
        azure = gw.azure.base_url(),
        local = gw.local.base_url(),
        from = day(-10),
        to = day(20),
    )
}

/// (prompt, completion) tokens of a successful chat answer.
async fn chat_tokens(r: reqwest::Response) -> (u64, u64) {
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
    )
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

struct Traffic {
    /// Tokens of the three chats azure-us served, then the one local-openai served.
    azure_chats: Vec<(u64, u64)>,
    local_chat: (u64, u64),
    embedding_tokens: u64,
    other: (u64, u64),
}

/// Real traffic: three gpt-4o chats (azure-us, the primary), one while azure-us is
/// drained (local-openai), one embedding (azure-us), one `other-model` chat by `narrow`
/// (local-openai); then the ledger rows the gateway's ledger sink makes of them, plus one
/// row from before the ledger recorded needs (local-openai, 10 + 5 tokens, free).
async fn traffic(gw: &Gateway) -> Traffic {
    let mut azure_chats = Vec::new();
    for _ in 0..3 {
        azure_chats.push(chat_tokens(gw.chat(hello("gpt-4o")).await).await);
    }
    gw.state.clouds.set_drained("azure-us", true);
    let local_chat = chat_tokens(gw.chat(hello("gpt-4o")).await).await;
    gw.state.clouds.set_drained("azure-us", false);
    let r = gw
        .post(
            "/v1/embeddings",
            Some(&gw.key.clone()),
            json!({"model": "text-embedding-3-small", "input": "risk and reward"}),
        )
        .await;
    assert_eq!(header(&r, "x-anycloud-cloud"), "azure-us");
    let v: Value = r.json().await.unwrap();
    let embedding_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let narrow = gw.narrow_key.clone();
    let other = chat_tokens(
        gw.post("/v1/chat/completions", Some(&narrow), hello("other-model"))
            .await,
    )
    .await;
    let outcomes = gw.outcomes(6).await;
    let mut rows = Vec::new();
    for o in &outcomes {
        for a in o.attempts.iter().filter(|a| a.reached_cloud) {
            rows.push(anycloud_server::ledger_sink::usage_record(o, a));
        }
    }
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.needs.is_some()), "needs recorded");
    rows.push(usage_record(
        Utc::now(),
        "local-openai",
        "team",
        (10, 5),
        0.0,
    ));
    gw.state.store.insert_usage(&rows).await.unwrap();
    Traffic {
        azure_chats,
        local_chat,
        embedding_tokens,
        other,
    }
}

async fn admin_get(gw: &Gateway, path: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}{path}", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn risk_and_simulate_over_real_traffic() {
    let gw = start_with(Options {
        routing: agreements(),
        ..Options::default()
    })
    .await;
    let t = traffic(&gw).await;
    let period = format!("from={}&to={}", day(0), day(1));

    // --- risk ---
    let r = admin_get(&gw, &format!("/admin/v1/risk?{period}")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["period"], json!({"from": day(0), "to": day(1)}));
    // azure-us: 3 chats at 2.5/10 USD per Mtok and a free embedding; local-openai: free.
    let azure_nanos: u64 = t
        .azure_chats
        .iter()
        .map(|(p, c)| p * 2_500 + c * 10_000)
        .sum();
    let azure_usd = azure_nanos as f64 / 1e9;
    let cloud = &v["concentration"]["cloud"];
    let az = entry(&cloud["entries"], "azure-us");
    assert_eq!(az["requests"], 4);
    let azure_tokens: u64 =
        t.azure_chats.iter().map(|(p, c)| p + c).sum::<u64>() + t.embedding_tokens;
    assert_eq!(az["tokens"], azure_tokens);
    close(&az["cost_usd"], azure_usd);
    close(&az["share_requests"], (4.0f64 / 7.0 * 1e6).round() / 1e6);
    close(&az["share_cost"], 1.0);
    let local = entry(&cloud["entries"], "local-openai");
    assert_eq!(local["requests"], 3);
    assert_eq!(
        local["tokens"],
        t.local_chat.0 + t.local_chat.1 + t.other.0 + t.other.1 + 15
    );
    close(&local["share_cost"], 0.0);
    // All cost on one cloud: 100² = 10,000.
    assert_eq!(cloud["hhi"], 10_000.0);
    assert_eq!(cloud["band"], "high");
    let provider = &v["concentration"]["provider"];
    assert_eq!(entry(&provider["entries"], "Azure")["requests"], 4);
    assert_eq!(entry(&provider["entries"], "other")["requests"], 3);
    assert_eq!(
        v["concentration"]["jurisdiction"]["entries"][0]["name"],
        "us"
    );
    assert_eq!(v["concentration"]["jurisdiction"]["hhi"], 10_000.0);
    // other-model runs only on local-openai; eu-only has no cloud at all (not a SPOF).
    assert_eq!(
        v["single_points_of_failure"],
        json!([
            {"tenant": "team", "model": "other-model", "clouds": ["local-openai"]},
            {"tenant": "narrow", "model": "other-model", "clouds": ["local-openai"]},
        ])
    );
    let outage = v["outage"].as_array().unwrap();
    assert_eq!(outage[0]["cloud"], "azure-us");
    close(&outage[0]["share_cost"], 1.0);
    assert_eq!(outage[0]["stranded"], json!([]));
    assert_eq!(outage[1]["cloud"], "local-openai");
    close(
        &outage[1]["share_requests"],
        (3.0f64 / 7.0 * 1e6).round() / 1e6,
    );
    assert_eq!(
        outage[1]["stranded"],
        json!([
            {"tenant": "team", "model": "other-model"},
            {"tenant": "narrow", "model": "other-model"},
        ])
    );

    // --- simulate ---
    let r = gw
        .http
        .post(format!("{}/admin/v1/simulate?{period}", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/toml")
        .body(candidate(&gw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["replayed"], 7);
    assert_eq!(s["replayed_as_plain_chat"], 1);
    let actual = &s["actual"];
    assert_eq!(actual["refused"], json!([]));
    let a_az = entry(&actual["by_cloud"], "azure-us");
    assert_eq!(a_az["requests"], 4);
    close(&a_az["cost_usd"], azure_usd);
    assert_eq!(entry(&actual["by_cloud"], "local-openai")["requests"], 3);
    assert_eq!(actual["hhi"]["cloud"], 10_000.0);
    close(&actual["commitments"][0]["spent_usd"], 0.0);
    // Candidate: the four gpt-4o chats and the old plain-chat row go to local-openai at
    // 1/2 USD per Mtok (the primary declined gpt-4o); the embedding stays on azure-us
    // (free); narrow's other-model has no EU cloud: refused by jurisdiction.
    let cand = &s["candidate"];
    let local_nanos: u64 = t
        .azure_chats
        .iter()
        .chain(std::iter::once(&t.local_chat))
        .map(|(p, c)| p * 1_000 + c * 2_000)
        .sum::<u64>()
        + 10 * 1_000
        + 5 * 2_000;
    let local_usd = local_nanos as f64 / 1e9;
    let c_local = entry(&cand["by_cloud"], "local-openai");
    assert_eq!(c_local["requests"], 5);
    close(&c_local["cost_usd"], local_usd);
    let c_az = entry(&cand["by_cloud"], "azure-us");
    assert_eq!(c_az["requests"], 1);
    close(&c_az["cost_usd"], 0.0);
    assert_eq!(
        cand["refused"],
        json!([{"reason": "jurisdiction", "requests": 1}])
    );
    assert_eq!(cand["hhi"]["cloud"], 10_000.0);
    assert_eq!(cand["commitments"][0]["cloud"], "local-openai");
    close(&cand["commitments"][0]["spent_usd"], local_usd);
    close(&cand["commitments"][0]["amount_usd"], 1.0);
}

#[tokio::test]
async fn bad_periods_and_candidates_are_400s_and_both_need_the_admin_token() {
    let gw = start().await;
    let r = admin_get(&gw, "/admin/v1/risk?from=2026-13-01").await;
    let e = error_of(r, 400).await;
    assert!(e["message"].as_str().unwrap().contains("from"), "{e}");
    let r = admin_get(&gw, "/admin/v1/risk?from=2026-11-02&to=2026-11-01").await;
    error_of(r, 400).await;
    let r = gw
        .http
        .get(format!("{}/admin/v1/risk", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .http
        .post(format!("{}/admin/v1/simulate", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .body("[[clouds]]\nname = \"x\"\nprovider = \"nope\"\n")
        .send()
        .await
        .unwrap();
    let e = error_of(r, 400).await;
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("candidate.toml:3"), "{m}");
    let r = gw
        .http
        .post(format!("{}/admin/v1/simulate", gw.url))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let doc: Value = gw
        .http
        .get(format!("{}/admin/v1/openapi.json", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/admin/v1/risk"]["get"].is_object());
    assert!(doc["paths"]["/admin/v1/simulate"]["post"].is_object());
}
