//! Azure OpenAI emulator: URL styles, api-version, auth incl. Entra, filter annotations.

use serde_json::{json, Value};

use crate::{azure_emu, client, parse_events, sse_data, user_chat, AZ_KEY};

fn classic(emu: &anycloud_emulators::EmulatorHandle, dep: &str, version: Option<&str>) -> String {
    let base = format!(
        "{}/openai/deployments/{dep}/chat/completions",
        emu.base_url()
    );
    match version {
        Some(v) => format!("{base}?api-version={v}"),
        None => base,
    }
}

async fn send(
    rb: reqwest::RequestBuilder,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = rb.json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test]
async fn api_version_and_deployment_checks() {
    let emu = azure_emu().await;
    assert!(!emu.base_url().ends_with("/v1"));
    let body = user_chat("ignored", "hi");
    let (s, e, _) = send(
        client()
            .post(classic(&emu, "gpt-4o", None))
            .header("api-key", AZ_KEY),
        &body,
    )
    .await;
    assert_eq!(
        (s, e),
        (
            404,
            json!({"error": {"code": "404", "message": "Resource not found"}})
        )
    );
    let (s, e, _) = send(
        client()
            .post(classic(&emu, "gpt-4o", Some("2023-01-01")))
            .header("api-key", AZ_KEY),
        &body,
    )
    .await;
    assert_eq!(
        (s, e),
        (
            400,
            json!({"error": {"code": "BadRequest", "message": "API version not supported"}})
        )
    );
    let (s, e, _) = send(
        client()
            .post(classic(&emu, "nope", Some("2024-10-21")))
            .header("api-key", AZ_KEY),
        &body,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "DeploymentNotFound");
    // v1 style: deployment in `model`.
    let v1 = format!("{}/openai/v1/chat/completions", emu.base_url());
    let (s, e, _) = send(
        client().post(&v1).header("api-key", AZ_KEY),
        &user_chat("nope", "hi"),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].clone()),
        (404, json!("DeploymentNotFound"))
    );
    let (s, r, _) = send(
        client().post(&v1).header("api-key", AZ_KEY),
        &user_chat("gpt-4o", "hi"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "Hello from azure-us (gpt-4o). You said: hi"
    );
    let (s, _, _) = send(
        client()
            .post(format!("{v1}?api-version=preview"))
            .header("api-key", AZ_KEY),
        &user_chat("gpt-4o", "hi"),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn auth_variants() {
    let emu = azure_emu().await;
    let url = classic(&emu, "gpt-4o", Some("2024-10-21"));
    let body = user_chat("x", "hi");
    let (s, e, _) = send(client().post(&url).header("api-key", "wrong"), &body).await;
    assert_eq!(s, 401);
    assert_eq!(e["error"]["code"], "401");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Access denied due to invalid subscription key"));
    assert_eq!(send(client().post(&url), &body).await.0, 401);
    // Bearer <api key> is not accepted on the classic style, but is on v1.
    assert_eq!(
        send(client().post(&url).bearer_auth(AZ_KEY), &body).await.0,
        401
    );
    let v1 = format!("{}/openai/v1/chat/completions", emu.base_url());
    assert_eq!(
        send(
            client().post(&v1).bearer_auth(AZ_KEY),
            &user_chat("gpt-4o", "hi")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(client().post(&url).header("api-key", AZ_KEY), &body)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn non_stream_has_filter_annotations() {
    let emu = azure_emu().await;
    let (s, r, h) = send(
        client()
            .post(classic(&emu, "gpt-4o", Some("2024-06-01")))
            .header("api-key", AZ_KEY),
        &user_chat("body-model-is-ignored", "hello azure"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h.contains_key("apim-request-id"));
    assert_eq!(r["model"], "gpt-4o-2024-08-06");
    assert_eq!(r["object"], "chat.completion");
    assert_eq!(
        r["choices"][0]["message"]["content"],
        "Hello from azure-us (gpt-4o). You said: hello azure"
    );
    assert_eq!(r["prompt_filter_results"][0]["prompt_index"], 0);
    assert_eq!(
        r["prompt_filter_results"][0]["content_filter_results"]["hate"]["severity"],
        "safe"
    );
    assert_eq!(
        r["choices"][0]["content_filter_results"]["violence"]["filtered"],
        false
    );
}

#[tokio::test]
async fn stream_begins_with_filter_chunk() {
    let emu = azure_emu().await;
    let mut body = user_chat("x", "hi there");
    body["stream"] = json!(true);
    let resp = client()
        .post(classic(&emu, "gpt-4o", Some("2024-10-21")))
        .header("api-key", AZ_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = parse_events(&events);
    let f = &chunks[0];
    assert_eq!(f["choices"], json!([]));
    assert_eq!(f["id"], "");
    assert_eq!(f["created"], 0);
    assert_eq!(f["model"], "");
    assert_eq!(f["object"], "");
    assert_eq!(
        f["prompt_filter_results"][0]["content_filter_results"]["sexual"]["filtered"],
        false
    );
    assert_eq!(chunks[1]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["content_filter_results"], json!({}));
    assert_eq!(chunks[1]["model"], "gpt-4o-2024-08-06");
    assert_eq!(
        chunks[2]["choices"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
    let text: String = chunks[2..chunks.len() - 1]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Hello from azure-us (gpt-4o). You said: hi there");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn content_filter_blocks_prompt() {
    let emu = azure_emu().await;
    let (s, e, _) = send(
        client()
            .post(classic(&emu, "gpt-4o", Some("2024-10-21")))
            .header("api-key", AZ_KEY),
        &user_chat("x", "please trigger-content-filter now"),
    )
    .await;
    assert_eq!(s, 400);
    let err = &e["error"];
    assert_eq!(err["code"], "content_filter");
    assert_eq!(err["param"], "prompt");
    assert_eq!(err["status"], 400);
    assert!(err["type"].is_null());
    assert_eq!(err["innererror"]["code"], "ResponsibleAIPolicyViolation");
    assert_eq!(
        err["innererror"]["content_filter_result"]["jailbreak"],
        json!({"filtered": true, "detected": true})
    );
    assert_eq!(
        err["innererror"]["content_filter_result"]["hate"]["filtered"],
        false
    );
}

async fn token(
    emu: &anycloud_emulators::EmulatorHandle,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/tenant-1/oauth2/v2.0/token", emu.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id=client-1&client_secret={secret}&scope={}",
            scope.replace(':', "%3A").replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn entra_token_flow() {
    let emu = azure_emu().await;
    let scope = "https://cognitiveservices.azure.com/.default";
    let (s, t) = token(&emu, "secret-1", scope).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    assert_eq!(t["ext_expires_in"], 3599);
    let access = t["access_token"].as_str().unwrap();
    let url = classic(&emu, "gpt-4o", Some("2024-10-21"));
    let body = user_chat("x", "hi");
    assert_eq!(
        send(client().post(&url).bearer_auth(access), &body).await.0,
        200
    );
    assert_eq!(
        send(client().post(&url).bearer_auth("eyJmade.up.token"), &body)
            .await
            .0,
        401
    );
    // Token requests are not model requests.
    assert_eq!(emu.request_count(), 2);

    let (s, e) = token(&emu, "wrong", scope).await;
    assert_eq!(s, 401);
    assert_eq!(e["error"], "invalid_client");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: Invalid client secret provided."));
    let (s, e) = token(&emu, "secret-1", "https://graph.microsoft.com/User.Read").await;
    assert_eq!(s, 400);
    assert_eq!(e["error"], "invalid_scope");
}
