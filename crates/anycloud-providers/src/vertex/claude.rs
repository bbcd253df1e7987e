//! Claude on Vertex AI: Anthropic's Messages format on Vertex URLs and Vertex OAuth.
//!
//! `POST …/publishers/anthropic/models/{model}:rawPredict` (JSON) or
//! `:streamRawPredict` (Anthropic's named SSE events). The body is the Messages body
//! with `anthropic_version: "vertex-2023-10-16"` and without `model`, which the URL
//! carries (provider-wire-formats §5.6). Answers and stream events are Anthropic's, so
//! the Anthropic provider's decoders read them.

use super::{VertexEndpoint, VertexProvider};
use crate::anthropic::{convert, stream, wire};
use crate::error::{ProviderError, ProviderErrorKind};
use crate::{CallCtx, EventStream};
use anycloud_types::{ChatRequest, ChatResponse};

/// The `anthropic_version` Vertex requires in the body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The Anthropic model a deployment target names, if it names one: `anthropic/<model>`
/// explicitly, or a target that starts with `claude` (Vertex's own ids, e.g.
/// `claude-sonnet-4@20250514`). Every other target is one of Google's models.
pub fn anthropic_model(target: &str) -> Option<&str> {
    if let Some(model) = target.strip_prefix("anthropic/") {
        return Some(model);
    }
    target.starts_with("claude").then_some(target)
}

fn body(req: &ChatRequest, stream: bool) -> Result<wire::MessagesRequest, ProviderError> {
    let mut body = convert::request_to_wire(req, None, Some(VERTEX_ANTHROPIC_VERSION))?;
    body.stream = stream.then_some(true);
    Ok(body)
}

/// Claude is served by Vertex AI only, not by the Gemini Developer API.
fn require_vertex(p: &VertexProvider) -> Result<(), ProviderError> {
    match p.endpoint() {
        VertexEndpoint::Vertex { .. } => Ok(()),
        VertexEndpoint::Gemini { .. } => Err(ProviderError::new(
            ProviderErrorKind::Unsupported,
            "Claude models need Vertex AI (project_id, region, credentials_file); the Gemini API key serves only Gemini",
        )),
    }
}

pub async fn chat(
    p: &VertexProvider,
    model: &str,
    req: &ChatRequest,
    ctx: &CallCtx,
) -> Result<ChatResponse, ProviderError> {
    require_vertex(p)?;
    let url = p.endpoint().model_url("anthropic", model, "rawPredict");
    let answer: wire::MessagesResponse = p.call(url, &body(req, false)?, ctx).await?;
    convert::response_from_wire(answer)
}

pub async fn chat_stream(
    p: &VertexProvider,
    model: &str,
    req: &ChatRequest,
    ctx: &CallCtx,
) -> Result<EventStream, ProviderError> {
    require_vertex(p)?;
    let url = p
        .endpoint()
        .model_url("anthropic", model, "streamRawPredict");
    let resp = p.post(url, &body(req, true)?, ctx, true).await?;
    Ok(stream::events(p.http().sse(resp)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use anycloud_types::{ContentBlock, Message, Role};

    #[test]
    fn claude_targets_are_anthropic_models_and_the_rest_google() {
        assert_eq!(
            anthropic_model("claude-sonnet-4@20250514"),
            Some("claude-sonnet-4@20250514")
        );
        assert_eq!(
            anthropic_model("anthropic/my-tuned-model"),
            Some("my-tuned-model")
        );
        assert_eq!(anthropic_model("gemini-2.0-flash"), None);
        assert_eq!(anthropic_model("text-embedding-005"), None);
    }

    #[test]
    fn body_names_the_vertex_version_and_no_model() {
        let req = ChatRequest {
            model: "claude-vertex".into(),
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentBlock::text("hi")],
                name: None,
            }],
            tools: vec![],
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            params: Default::default(),
            user: None,
            stream: true,
            cache: Default::default(),
        };
        let v = serde_json::to_value(body(&req, true).unwrap()).unwrap();
        assert_eq!(v["anthropic_version"], VERTEX_ANTHROPIC_VERSION);
        assert!(v.get("model").is_none(), "{v}");
        assert_eq!(v["stream"], true);
        assert!(v["max_tokens"].as_u64().unwrap() > 0);
    }
}
