//! Anthropic (`provider = "anthropic"`): the Messages API behind [`Provider`].
//!
//! `POST {base_url}/v1/messages` (`base_url` is scheme and host, default
//! `https://api.anthropic.com`) with `x-api-key`, `anthropic-version:
//! 2023-06-01` and a JSON body whose `model` is the deployment's target.
//! Errors come back in Anthropic's shape, which `http::error_from_response`
//! reads (its `error.message` matches the OpenAI envelope): 429 and 529 are
//! retryable with `retry-after`, 400/413 are the client's. Anthropic has no
//! embeddings endpoint.
//!
//! `wire`, `convert` and `stream` are public so Claude on Vertex
//! (`rawPredict`) and on Bedrock (`InvokeModel`) can reuse them with
//! `convert::request_to_wire(req, None, Some("vertex-2023-10-16"))`.

pub mod convert;
pub mod stream;
pub mod wire;

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use crate::openai::with_ctx_headers;
use crate::{CallCtx, EventStream, Provider};
use anycloud_config::CloudConfig;
use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderKind,
};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

#[derive(Debug)]
pub struct AnthropicProvider {
    base_url: String,
    api_key: SecretString,
    http: HttpClient,
}

impl AnthropicProvider {
    pub fn new(cloud: &CloudConfig) -> Result<AnthropicProvider, ProviderError> {
        let Some(api_key) = cloud.api_key.clone() else {
            return Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                format!("cloud {}: anthropic needs api_key", cloud.name),
            ));
        };
        let base = cloud.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(AnthropicProvider {
            base_url: base.trim_end_matches('/').to_string(),
            api_key,
            http: HttpClient::new(cloud)?,
        })
    }

    fn post(&self, ctx: &CallCtx) -> reqwest::RequestBuilder {
        let rb = self
            .http
            .client()
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.api_key.expose_secret())
            .header("anthropic-version", convert::API_VERSION);
        with_ctx_headers(rb, ctx)
    }

    fn body(
        &self,
        target: &str,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<wire::MessagesRequest, ProviderError> {
        let mut body = convert::request_to_wire(req, Some(target), None)?;
        body.stream = stream.then_some(true);
        Ok(body)
    }
}

/// Sends a non-streaming Messages body and decodes the answer (shared with
/// the Vertex / Bedrock Claude variants, which differ in URL and auth).
pub async fn messages_call(
    http: &HttpClient,
    rb: reqwest::RequestBuilder,
    body: &wire::MessagesRequest,
) -> Result<ChatResponse, ProviderError> {
    let resp = http.send(rb.json(body)).await?;
    let wire: wire::MessagesResponse = http.read_json(resp).await?;
    convert::response_from_wire(wire)
}

/// Sends a streaming Messages body; returns once the cloud answered 200.
pub async fn messages_stream_call(
    http: &HttpClient,
    rb: reqwest::RequestBuilder,
    body: &wire::MessagesRequest,
) -> Result<EventStream, ProviderError> {
    let resp = http
        .send(
            rb.json(body)
                .header(reqwest::header::ACCEPT, "text/event-stream"),
        )
        .await?;
    Ok(stream::events(http.sse(resp)))
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.body(target, req, false)?;
        messages_call(&self.http, self.post(ctx), &body).await
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        let body = self.body(target, req, true)?;
        messages_stream_call(&self.http, self.post(ctx), &body).await
    }

    async fn embed(
        &self,
        _target: &str,
        _req: &EmbeddingsRequest,
        _ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::new(
            ProviderErrorKind::Unsupported,
            "Anthropic has no embeddings endpoint",
        ))
    }
}
