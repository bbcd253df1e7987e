//! Unit tests for `vertex::convert`: canonical → Gemini and back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::convert::*;
use super::wire::*;
use crate::error::ProviderErrorKind;
use anycloud_types::*;
use serde_json::json;

fn msg(role: Role, content: Vec<ContentBlock>) -> Message {
    Message {
        role,
        content,
        name: None,
    }
}

fn req(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "public-name".into(),
        messages,
        tools: vec![],
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        params: SamplingParams::default(),
        user: None,
        stream: false,
        cache: Default::default(),
    }
}

#[test]
fn system_roles_params_and_images_map_to_gemini_fields() {
    let mut r = req(vec![
        msg(Role::System, vec![ContentBlock::text("Be brief.")]),
        msg(Role::Developer, vec![ContentBlock::text("Use metric.")]),
        msg(
            Role::User,
            vec![
                ContentBlock::text("What is this?"),
                ContentBlock::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0=".into(),
                    },
                    detail: None,
                },
                ContentBlock::Image {
                    source: ImageSource::Url {
                        url: "gs://bucket/cat.webp".into(),
                    },
                    detail: None,
                },
            ],
        ),
        msg(Role::Assistant, vec![ContentBlock::text("A cat.")]),
    ]);
    r.params = SamplingParams {
        temperature: Some(0.2),
        top_p: Some(0.9),
        top_k: Some(40),
        max_tokens: Some(512),
        stop: vec!["END".into()],
        seed: Some(7),
        presence_penalty: Some(0.1),
        frequency_penalty: Some(0.3),
    };
    let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
    assert_eq!(
        w["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Use metric."}]})
    );
    assert_eq!(w["contents"][0]["role"], "user");
    assert_eq!(
        w["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0="}})
    );
    assert_eq!(
        w["contents"][0]["parts"][2],
        json!({"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/cat.webp"}})
    );
    assert_eq!(w["contents"][1]["role"], "model");
    assert_eq!(
        w["generationConfig"],
        json!({"temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 512,
               "stopSequences": ["END"], "seed": 7, "presencePenalty": 0.1,
               "frequencyPenalty": 0.3})
    );
    assert!(w.get("tools").is_none());
    assert!(w.get("model").is_none(), "the model is in the URL");
}

#[test]
fn schemas_lose_keywords_vertex_rejects() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "city": {"type": "string", "description": "City"},
            "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
            "kind": {"const": "weather"},
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                     "properties": {"k": {"type": "string"}}}},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        },
        "required": ["city"]
    });
    let c = clean_schema(&schema);
    assert_eq!(
        c,
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City"},
                "unit": {"type": "string", "nullable": true, "enum": ["c", "f"]},
                "kind": {"enum": ["weather"]},
                "additionalProperties": {"type": "object"},
                "tags": {"type": "array", "items": {"type": "object",
                         "properties": {"k": {"type": "string"}}}},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
            },
            "required": ["city"]
        })
    );
    assert!(!c.to_string().contains("$schema"));
}

fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Weather by city".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": false}),
        strict: Some(true),
    }
}

#[test]
fn tools_choice_and_a_tool_round_trip_by_name_without_ids() {
    let mut r = req(vec![
        msg(Role::User, vec![ContentBlock::text("Weather in Oslo?")]),
        msg(
            Role::Assistant,
            vec![
                ContentBlock::ToolUse {
                    id: "call_a".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into(),
                },
                ContentBlock::ToolUse {
                    id: "call_b".into(),
                    name: "get_time".into(),
                    arguments: String::new(),
                },
            ],
        ),
        msg(
            Role::Tool,
            vec![ContentBlock::ToolResult {
                tool_use_id: "call_a".into(),
                content: vec![ContentBlock::text(r#"{"temp_c": 12}"#)],
                is_error: false,
            }],
        ),
        msg(
            Role::Tool,
            vec![ContentBlock::ToolResult {
                tool_use_id: "call_b".into(),
                content: vec![ContentBlock::text("noon")],
                is_error: false,
            }],
        ),
    ]);
    r.tools = vec![
        weather_tool(),
        Tool {
            name: "get_time".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}}),
            strict: None,
        },
    ];
    r.tool_choice = Some(ToolChoice::Tool("get_weather".into()));
    let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
    let decls = &w["tools"][0]["functionDeclarations"];
    assert_eq!(
        decls[0]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    );
    assert!(
        decls[1].get("parameters").is_none(),
        "no empty OBJECT schema"
    );
    assert_eq!(
        w["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        w["contents"][1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time", "args": {}}}]})
    );
    // Both results in one user turn, named through the calls, with no ids anywhere.
    assert_eq!(
        w["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 12}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}}]})
    );
    assert_eq!(w["contents"].as_array().unwrap().len(), 3);
    assert!(!w.to_string().contains("call_a"));

    for (choice, mode) in [
        (ToolChoice::Auto, "AUTO"),
        (ToolChoice::None, "NONE"),
        (ToolChoice::Required, "ANY"),
    ] {
        r.tool_choice = Some(choice);
        let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
        assert_eq!(w["toolConfig"]["functionCallingConfig"]["mode"], mode);
    }
}

#[test]
fn a_result_for_an_unknown_call_or_bad_arguments_is_the_clients_error() {
    let r = req(vec![msg(
        Role::Tool,
        vec![ContentBlock::ToolResult {
            tool_use_id: "call_zzz".into(),
            content: vec![ContentBlock::text("x")],
            is_error: false,
        }],
    )]);
    let e = request_to_wire(&r).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(e.message.contains("call_zzz"));
    let r = req(vec![msg(
        Role::Assistant,
        vec![ContentBlock::ToolUse {
            id: "c".into(),
            name: "f".into(),
            arguments: "[1]".into(),
        }],
    )]);
    assert_eq!(
        request_to_wire(&r).unwrap_err().kind,
        ProviderErrorKind::InvalidRequest
    );
    assert!(request_to_wire(&req(vec![])).is_err());
}

#[test]
fn json_schema_becomes_response_schema() {
    let mut r = req(vec![msg(Role::User, vec![ContentBlock::text("hi")])]);
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "answer".into(),
        schema: json!({"type": "object", "additionalProperties": false,
                       "properties": {"a": {"type": "string"}}}),
        strict: Some(true),
        description: None,
    });
    let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
    assert_eq!(
        w["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        w["generationConfig"]["responseSchema"],
        json!({"type": "object", "properties": {"a": {"type": "string"}}})
    );
    r.response_format = Some(ResponseFormat::JsonObject);
    let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
    assert_eq!(
        w["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert!(w["generationConfig"].get("responseSchema").is_none());
}

#[test]
fn responses_map_text_calls_finish_and_usage() {
    let wire: GenerateContentResponse = serde_json::from_value(json!({
        "candidates": [{"index": 0, "content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true},
            {"text": "Let me check. "},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
            "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 7,
                          "thoughtsTokenCount": 3, "cachedContentTokenCount": 10,
                          "totalTokenCount": 35},
        "modelVersion": "gemini-2.0-flash-001", "responseId": "resp1"
    }))
    .unwrap();
    let r = response_from_wire(wire, "gemini-2.0-flash", 1).unwrap();
    assert_eq!(r.id, "resp1");
    assert_eq!(r.model, "gemini-2.0-flash-001");
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.text().as_deref(), Some("Let me check. "));
    let ContentBlock::ToolUse {
        id,
        name,
        arguments,
    } = &r.content[1]
    else {
        panic!("{:?}", r.content)
    };
    assert!(id.starts_with("call_") && id.len() > 20, "{id}");
    assert_eq!(name, "get_weather");
    assert_eq!(arguments, r#"{"city":"Oslo"}"#);
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 25,
            output_tokens: 10,
            cached_input_tokens: 10,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 3
        }
    );
    assert_ne!(synth_call_id(), synth_call_id());
}

#[test]
fn finish_reasons_and_blocked_prompts() {
    assert_eq!(finish_reason("STOP"), FinishReason::Stop);
    assert_eq!(finish_reason("MAX_TOKENS"), FinishReason::Length);
    for r in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT"] {
        assert_eq!(finish_reason(r), FinishReason::ContentFilter, "{r}");
    }
    assert_eq!(
        finish_reason("MALFORMED_FUNCTION_CALL"),
        FinishReason::Other
    );
    let wire: GenerateContentResponse =
        serde_json::from_value(json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap();
    let e = response_from_wire(wire, "m", 0).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    let e = response_from_wire(GenerateContentResponse::default(), "m", 0).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Protocol);
}

#[test]
fn embeddings_bodies() {
    let r = EmbeddingsRequest {
        model: "e".into(),
        inputs: vec![
            EmbeddingInput::Text("a".into()),
            EmbeddingInput::Text("b".into()),
        ],
        dimensions: Some(8),
        user: None,
    };
    assert_eq!(
        serde_json::to_value(predict_request(&r).unwrap()).unwrap(),
        json!({"instances": [{"content": "a"}, {"content": "b"}],
               "parameters": {"outputDimensionality": 8}})
    );
    let (v, u) = predict_response(
        serde_json::from_value(json!({"predictions": [
            {"embeddings": {"values": [0.5], "statistics": {"token_count": 3, "truncated": false}}},
            {"embeddings": {"values": [0.25], "statistics": {"token_count": 2}}}]}))
        .unwrap(),
    );
    assert_eq!(v, vec![vec![0.5], vec![0.25]]);
    assert_eq!(u.input_tokens, 5);
    let b = serde_json::to_value(batch_embed_request(&r, "text-embedding-004").unwrap()).unwrap();
    assert_eq!(b["requests"][1]["model"], "models/text-embedding-004");
    assert_eq!(b["requests"][1]["content"]["parts"][0]["text"], "b");
    let tokens = EmbeddingsRequest {
        inputs: vec![EmbeddingInput::Tokens(vec![1])],
        ..r
    };
    assert_eq!(
        predict_request(&tokens).unwrap_err().kind,
        ProviderErrorKind::Unsupported
    );
}
