//! Entry points for the `fuzz/` crate (cargo-fuzz) and the regression tests that replay
//! what it found, for the parsers this crate owns: every client API's request (chat,
//! messages, embeddings, responses) and the admin API bodies. A cloud's replies are
//! decoded in `anycloud-providers` (see `anycloud_providers::fuzzing`). Each must refuse
//! bad bytes with an error, never panic.
//!
//! Not an API: hidden from the docs and free to change with the parsers.

use crate::admin::{body, keys, tenants};
use crate::ingress::responses::wire;
use crate::ingress::{chat, embeddings, messages};
use anycloud_governance::policy::KeyPolicy;
use anycloud_providers::fuzzing::encode_everywhere;
use anycloud_providers::{anthropic, openai};

/// A client's `POST /v1/chat/completions` body, then every cloud's request encoder.
pub fn chat_request(data: &[u8]) {
    let Ok(w) = serde_json::from_slice::<openai::wire::ChatCompletionRequest>(data) else {
        return;
    };
    if let Ok(req) = chat::convert::request_from_wire(w) {
        encode_everywhere(&req);
    }
}

/// A client's `POST /v1/messages` body, then every cloud's request encoder.
pub fn messages_request(data: &[u8]) {
    let Ok(w) = serde_json::from_slice::<anthropic::wire::MessagesRequest>(data) else {
        return;
    };
    if let Ok(req) = messages::convert::request_from_wire(w) {
        encode_everywhere(&req);
    }
}

/// A client's `POST /v1/embeddings` body, then the OpenAI-shaped upstream request.
pub fn embeddings_request(data: &[u8]) {
    let Ok(w) = serde_json::from_slice::<openai::wire::EmbeddingsRequestWire>(data) else {
        return;
    };
    if let Ok((req, _)) = embeddings::convert::embeddings_request_from_wire(w) {
        let _ = openai::convert::embeddings_request_to_wire(&req, "t");
    }
}

/// A `POST /v1/responses` body through every step of its parse that needs no store
/// (the input items, tools, tool choice and text format), then every cloud's encoder.
pub fn responses_request(data: &[u8]) {
    let Ok(w) = crate::body::parse_json::<wire::CreateResponse>(data) else {
        return;
    };
    let Ok(items) = wire::normalise_input(w.input, "seed") else {
        return;
    };
    let Ok(messages) = wire::items_to_messages(&items) else {
        return;
    };
    let Ok(tools) = wire::tools(w.tools.as_deref().unwrap_or(&[])) else {
        return;
    };
    if let Some(c) = &w.tool_choice {
        let _ = wire::tool_choice(c, &tools);
    }
    if let Some(t) = &w.text {
        let _ = wire::text_format(t);
    }
    let Ok(mut req) = chat::convert::request_from_wire(
        serde_json::from_value(serde_json::json!({
            "model": w.model, "messages": [{"role": "user", "content": "x"}]
        }))
        .unwrap_or_default(),
    ) else {
        return;
    };
    req.messages = messages;
    req.tools = tools;
    encode_everywhere(&req);
}

/// The admin API's JSON bodies: a new tenant, a tenant's policy, a new key, a key's
/// policy (each as `POST`/`PUT` would read it, with the checks that need no state).
pub fn admin_bodies(data: &[u8]) {
    let _ = body::<tenants::NewTenant>(data);
    let _ = body::<tenants::TenantPolicy>(data);
    let _ = body::<keys::NewKey>(data);
    if let Ok(p) = body::<KeyPolicy>(data) {
        let _ = crate::admin::check_limits(p.budget, p.rate_limit);
    }
}
