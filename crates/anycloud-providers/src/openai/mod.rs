//! OpenAI (`openai`) and OpenAI-compatible servers (`openai_compatible`:
//! vLLM, Ollama, LM Studio, gateways) behind [`Provider`].
//!
//! `base_url` includes the `/v1` prefix; chat goes to `{base}/chat/completions`,
//! embeddings to `{base}/embeddings`. The `model` sent upstream is always the
//! deployment's `target`. Streams always ask for usage
//! (`stream_options.include_usage`); the server strips the usage chunk again
//! for clients that did not ask for it.
//!
//! The request/response plumbing (`chat_call`, `stream_call`, `embed_call`)
//! is shared with `azure`, which differs only in URL and auth.

pub mod convert;
pub mod stream;
pub mod wire;

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use crate::{CallCtx, EventStream, Provider};
use anycloud_config::CloudConfig;
use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderKind,
};
use async_trait::async_trait;
use convert::MaxTokensField;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use secrecy::ExposeSecret;
use wire::{ChatCompletionRequest, ChatCompletionResponse, EmbeddingsResponseWire, StreamOptions};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug)]
pub struct OpenAiProvider {
    kind: ProviderKind,
    /// `{base}/chat/completions` and `{base}/embeddings`, parsed once here rather than
    /// formatted and parsed on every call (bench/README.md "Where the time goes").
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    /// `Bearer {api_key}`, marked sensitive so it never shows in debug output.
    authorization: Option<HeaderValue>,
    organization: Option<String>,
    project: Option<String>,
    tokens_field: MaxTokensField,
    http: HttpClient,
}

impl OpenAiProvider {
    /// For a cloud whose `provider` is `openai` or `openai_compatible`.
    pub fn new(cloud: &CloudConfig) -> Result<OpenAiProvider, ProviderError> {
        let (base_url, tokens_field) = match cloud.provider {
            ProviderKind::Openai => (
                cloud.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
                MaxTokensField::MaxCompletionTokens,
            ),
            ProviderKind::OpenaiCompatible => {
                let Some(base) = cloud.base_url.as_deref() else {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Unsupported,
                        format!("cloud {}: openai_compatible needs base_url", cloud.name),
                    ));
                };
                (base, MaxTokensField::MaxTokens)
            }
            other => {
                return Err(ProviderError::new(
                    ProviderErrorKind::Unsupported,
                    format!(
                        "cloud {}: OpenAiProvider cannot serve provider {other}",
                        cloud.name
                    ),
                ))
            }
        };
        let base = base_url.trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}/{path}")).map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::Unsupported,
                    format!("cloud {}: base_url `{base}` is not a URL: {e}", cloud.name),
                )
            })
        };
        let authorization = match &cloud.api_key {
            None => None,
            Some(key) => {
                let mut v = HeaderValue::try_from(format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                        ProviderError::new(
                            ProviderErrorKind::Unsupported,
                            format!(
                                "cloud {}: api_key has characters a header cannot carry",
                                cloud.name
                            ),
                        )
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(OpenAiProvider {
            kind: cloud.provider,
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            authorization,
            organization: cloud.organization.clone(),
            project: cloud.project.clone(),
            tokens_field,
            http: HttpClient::new(cloud)?,
        })
    }

    fn post(&self, url: &reqwest::Url, ctx: &CallCtx) -> reqwest::RequestBuilder {
        let mut rb = self.http.client().post(url.clone());
        if let Some(auth) = &self.authorization {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        if let Some(org) = &self.organization {
            rb = rb.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.project {
            rb = rb.header("OpenAI-Project", project);
        }
        with_ctx_headers(rb, ctx)
    }
}

/// `x-client-request-id` and `traceparent`, when there are any.
pub(crate) fn with_ctx_headers(
    mut rb: reqwest::RequestBuilder,
    ctx: &CallCtx,
) -> reqwest::RequestBuilder {
    if !ctx.request_id.is_empty() {
        rb = rb.header("x-client-request-id", &ctx.request_id);
    }
    if let Some(tp) = ctx.traceparent_header() {
        rb = rb.header("traceparent", tp);
    }
    rb
}

/// The upstream body for a chat call: `stream` decides the streaming fields
/// whatever `req.stream` says, and a stream always asks for usage.
pub(crate) fn chat_body(
    req: &ChatRequest,
    target: &str,
    tokens_field: MaxTokensField,
    stream: bool,
) -> ChatCompletionRequest {
    let mut body = convert::request_to_wire(req, target, tokens_field);
    body.stream = stream.then_some(true);
    body.stream_options = stream.then_some(StreamOptions {
        include_usage: Some(true),
    });
    body
}

pub(crate) async fn chat_call(
    http: &HttpClient,
    rb: reqwest::RequestBuilder,
    body: &ChatCompletionRequest,
) -> Result<ChatResponse, ProviderError> {
    let resp = http.send(rb.json(body)).await?;
    let wire: ChatCompletionResponse = http.read_json(resp).await?;
    convert::response_from_wire(wire)
}

pub(crate) async fn stream_call(
    http: &HttpClient,
    rb: reqwest::RequestBuilder,
    body: &ChatCompletionRequest,
) -> Result<EventStream, ProviderError> {
    let resp = http
        .send(
            rb.json(body)
                .header(reqwest::header::ACCEPT, "text/event-stream"),
        )
        .await?;
    Ok(stream::events(http.sse(resp)))
}

pub(crate) async fn embed_call(
    http: &HttpClient,
    rb: reqwest::RequestBuilder,
    target: &str,
    req: &EmbeddingsRequest,
) -> Result<EmbeddingsResponse, ProviderError> {
    let body = convert::embeddings_request_to_wire(req, target)?;
    let resp = http.send(rb.json(&body)).await?;
    let wire: EmbeddingsResponseWire = http.read_json(resp).await?;
    let out = convert::embeddings_response_from_wire(wire)?;
    if out.vectors.len() != req.inputs.len() {
        return Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            format!(
                "upstream returned {} embeddings for {} inputs",
                out.vectors.len(),
                req.inputs.len()
            ),
        ));
    }
    Ok(out)
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        let body = chat_body(req, target, self.tokens_field, false);
        chat_call(&self.http, self.post(&self.chat_url, ctx), &body).await
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        let body = chat_body(req, target, self.tokens_field, true);
        stream_call(&self.http, self.post(&self.chat_url, ctx), &body).await
    }

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        embed_call(
            &self.http,
            self.post(&self.embeddings_url, ctx),
            target,
            req,
        )
        .await
    }
}
