//! Helpers shared by the emulator-backed provider tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anycloud_config::CloudConfig;
use anycloud_providers::{EventStream, ProviderError};
use anycloud_types::{ChatRequest, ContentBlock, Message, Role, SamplingParams, StreamEvent, Tool};
use futures::StreamExt;
use serde_json::{json, Value};

/// A `CloudConfig` from a JSON object (the config crate's serde shape).
pub fn cloud(v: Value) -> CloudConfig {
    serde_json::from_value(v).unwrap()
}

pub fn user(text: &str) -> Message {
    Message {
        role: Role::User,
        content: vec![ContentBlock::text(text)],
        name: None,
    }
}

pub fn chat(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "public-model".into(),
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

pub fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Weather for a city".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        strict: None,
    }
}

/// Drains a stream: the events before the first error, and that error.
pub async fn drain(mut s: EventStream) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(ev) => events.push(ev),
            Err(e) => {
                assert!(s.next().await.is_none(), "nothing may follow an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

pub fn streamed_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}
