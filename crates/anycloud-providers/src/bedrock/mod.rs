//! AWS Bedrock Runtime (`bedrock`) behind [`Provider`]: Converse for chat,
//! ConverseStream for streaming chat, InvokeModel with Titan Text Embeddings for
//! embeddings (provider-wire-formats §3).
//!
//! URLs: `{base}/model/{modelId}/converse|converse-stream|invoke`, where `base` is
//! `https://bedrock-runtime.{region}.amazonaws.com` unless the cloud sets `base_url`
//! (scheme and host, plus an optional path prefix), and the model id is percent-encoded
//! as one path segment (`:` → `%3A`). Every request is SigV4-signed (`auth`); the body
//! is JSON in all three operations, the streaming answer is binary event-stream
//! (`stream`).
//!
//! Requests go through our own `reqwest` client rather than the Bedrock SDK's (see
//! `auth` for why); non-2xx answers are read here because Bedrock names its errors in
//! the `x-amzn-ErrorType` header, which the shared OpenAI-shaped error mapping in
//! `http` does not look at.

pub mod auth;
pub mod convert;
pub mod stream;
pub mod wire;

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use crate::{CallCtx, EventStream, Provider};
use anycloud_config::CloudConfig;
use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, ProviderKind,
    Usage,
};
use async_trait::async_trait;
use auth::CredentialSource;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::SystemTime;

/// Everything but SigV4's unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Embedding calls in flight at once for one request (Titan takes one input a call).
const EMBED_CONCURRENCY: usize = 4;

#[derive(Debug)]
pub struct BedrockProvider {
    base_url: String,
    region: String,
    credentials: CredentialSource,
    http: HttpClient,
}

impl BedrockProvider {
    pub fn new(cloud: &CloudConfig) -> Result<BedrockProvider, ProviderError> {
        let Some(region) = cloud.region.clone().filter(|r| !r.is_empty()) else {
            return Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                format!("cloud {}: bedrock needs region", cloud.name),
            ));
        };
        let base_url = match cloud.base_url.as_deref() {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        };
        Ok(BedrockProvider {
            base_url,
            region,
            credentials: CredentialSource::new(
                cloud.access_key_id.as_ref(),
                cloud.secret_access_key.as_ref(),
                cloud.session_token.as_ref(),
            ),
            http: HttpClient::new(cloud)?,
        })
    }

    /// `{base}/model/{encoded id}/{op}`.
    pub fn model_url(&self, model_id: &str, op: &str) -> String {
        format!(
            "{}/model/{}/{op}",
            self.base_url,
            utf8_percent_encode(model_id, SEGMENT)
        )
    }

    /// Signs and sends a JSON POST; waits for the response headers within the first-byte
    /// timeout and turns a non-2xx answer into a classified error.
    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        accept: &str,
        ctx: &CallCtx,
    ) -> Result<reqwest::Response, ProviderError> {
        let creds = self.credentials.credentials().await?;
        let signed = auth::sign_request(
            &creds,
            &self.region,
            url,
            &[("content-type", "application/json")],
            &body,
            SystemTime::now(),
        )?;
        let mut rb = self
            .http
            .client()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, accept)
            .body(body);
        for (k, v) in signed {
            rb = rb.header(k, v);
        }
        // Unsigned on purpose: tracing headers may be rewritten by proxies on the way.
        if let Some(tp) = ctx.traceparent_header() {
            rb = rb.header("traceparent", tp);
        }
        self.http
            .send_with(rb, |status, headers, body| {
                let error_type = headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok());
                convert::error_from_response(status, error_type, body)
            })
            .await
    }

    fn json_body<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ProviderError> {
        serde_json::to_vec(value).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                format!("request cannot be encoded: {e}"),
            )
        })
    }

    async fn embed_one(
        &self,
        target: &str,
        text: String,
        dimensions: Option<u32>,
        ctx: &CallCtx,
    ) -> Result<wire::TitanEmbedResponse, ProviderError> {
        let body = Self::json_body(&wire::TitanEmbedRequest {
            input_text: text,
            dimensions,
            normalize: Some(true),
        })?;
        let resp = self
            .post(
                &self.model_url(target, "invoke"),
                body,
                "application/json",
                ctx,
            )
            .await?;
        self.http.read_json(resp).await
    }
}

/// Bedrock sends no response id in the body; its request id stands in for one.
fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(|s| format!("bedrock-{s}"))
        .unwrap_or_else(|| "bedrock-response".to_string())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Provider for BedrockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        let body = Self::json_body(&convert::request_to_wire(&convert::for_target(
            req, target,
        ))?)?;
        let url = self.model_url(target, "converse");
        let resp = self.post(&url, body, "application/json", ctx).await?;
        let id = request_id(&resp);
        let wire: wire::ConverseResponse = self.http.read_json(resp).await?;
        convert::response_from_wire(wire, id, target, unix_now())
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        let body = Self::json_body(&convert::request_to_wire(&convert::for_target(
            req, target,
        ))?)?;
        let url = self.model_url(target, "converse-stream");
        let resp = self
            .post(&url, body, "application/vnd.amazon.eventstream", ctx)
            .await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("application/vnd.amazon.eventstream") {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                format!("ConverseStream answered with content-type {content_type:?}, not application/vnd.amazon.eventstream"),
            ));
        }
        let dec = stream::ConverseDecoder::new(request_id(&resp), target);
        Ok(stream::from_response(resp, self.http.idle_timeout(), dec))
    }

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        if !target.contains("titan-embed") {
            return Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                format!("Bedrock embeddings support Amazon Titan text embedding models only, not {target}"),
            ));
        }
        let mut texts = Vec::with_capacity(req.inputs.len());
        for input in &req.inputs {
            match input {
                EmbeddingInput::Text(t) => texts.push(t.clone()),
                EmbeddingInput::Tokens(_) => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Unsupported,
                        "Bedrock Titan embeddings take text, not token arrays",
                    ))
                }
            }
        }
        let answers: Vec<wire::TitanEmbedResponse> = futures::stream::iter(texts)
            .map(|t| self.embed_one(target, t, req.dimensions, ctx))
            .buffered(EMBED_CONCURRENCY)
            .try_collect()
            .await?;
        let input_tokens = answers.iter().map(|a| a.input_text_token_count).sum();
        Ok(EmbeddingsResponse {
            model: target.to_string(),
            vectors: answers.into_iter().map(|a| a.embedding).collect(),
            usage: Usage {
                input_tokens,
                ..Usage::default()
            },
        })
    }
}
