//! Google Vertex AI (`vertex`) behind [`Provider`]: Gemini `generateContent` and
//! `streamGenerateContent?alt=sse` (provider-wire-formats §4).
//!
//! Two endpoints, picked by the cloud's config:
//!
//! - **Vertex AI** (`project_id` + `region` + a service-account `credentials_file`, or
//!   `GOOGLE_APPLICATION_CREDENTIALS`):
//!   `https://{region}-aiplatform.googleapis.com/v1/projects/{p}/locations/{region}/publishers/google/models/{target}:{method}`
//!   (`aiplatform.googleapis.com` for `global`), OAuth2 bearer tokens from `auth.rs`;
//! - **Gemini Developer API** (`api_key` and no credentials file):
//!   `https://generativelanguage.googleapis.com/v1beta/models/{target}:{method}` with the
//!   key in `x-goog-api-key` (never in the URL, where error paths could leak it).
//!
//! `base_url` replaces scheme and host (the emulator). Embeddings use Vertex `:predict`
//! (text-embedding models) or the Developer API's `:batchEmbedContents`.
//!
//! **Claude on Vertex** (`claude.rs`): a deployment whose target names an Anthropic model
//! (`claude-…@…`, or `anthropic/<model>` for any other name) is sent in the Anthropic
//! Messages format to `publishers/anthropic/models/{model}:rawPredict` /
//! `:streamRawPredict`, with the same OAuth tokens.

pub mod auth;
mod claude;
pub mod convert;
pub mod errors;
pub mod stream;
pub mod wire;

#[cfg(test)]
mod convert_tests;
#[cfg(test)]
mod stream_tests;

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use crate::openai::with_ctx_headers;
use crate::{CallCtx, EventStream, Provider};
use anycloud_config::CloudConfig;
use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderKind,
};
use async_trait::async_trait;
use auth::{ServiceAccount, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use wire::{BatchEmbedResponse, GenerateContentResponse, PredictResponse};

pub const GEMINI_API_BASE: &str = "https://generativelanguage.googleapis.com";

/// Where a model's methods live.
#[derive(Debug, Clone)]
pub enum VertexEndpoint {
    /// `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/...`
    Vertex {
        base: reqwest::Url,
        project: String,
        location: String,
    },
    /// `{base}/v1beta/models/...` (Gemini Developer API).
    Gemini { base: reqwest::Url },
}

fn parse_base(base: &str, cloud: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(base.trim_end_matches('/'))
        .ok()
        .filter(|u| !u.cannot_be_a_base())
        .ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::Unsupported,
                format!("cloud {cloud}: base_url is not a URL"),
            )
        })
}

impl VertexEndpoint {
    /// The regional Vertex host for `location` (`global` has no region prefix), or
    /// `base_url` when given.
    pub fn vertex(
        base_url: Option<&str>,
        project: &str,
        location: &str,
        cloud: &str,
    ) -> Result<VertexEndpoint, ProviderError> {
        let default = if location == "global" {
            "https://aiplatform.googleapis.com".to_string()
        } else {
            format!("https://{location}-aiplatform.googleapis.com")
        };
        Ok(VertexEndpoint::Vertex {
            base: parse_base(base_url.unwrap_or(&default), cloud)?,
            project: project.to_string(),
            location: location.to_string(),
        })
    }

    /// `{model}:{method}` under `publisher` (`google`, `anthropic`); the Gemini API has
    /// only Google's models and ignores `publisher`.
    pub fn model_url(&self, publisher: &str, model: &str, method: &str) -> reqwest::Url {
        let (mut url, prefix): (reqwest::Url, Vec<&str>) = match self {
            VertexEndpoint::Vertex {
                base,
                project,
                location,
            } => (
                base.clone(),
                vec![
                    "v1",
                    "projects",
                    project,
                    "locations",
                    location,
                    "publishers",
                    publisher,
                    "models",
                ],
            ),
            VertexEndpoint::Gemini { base } => (base.clone(), vec!["v1beta", "models"]),
        };
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty()
                .extend(prefix)
                .push(&format!("{model}:{method}"));
        }
        url
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum VertexAuth {
    /// `x-goog-api-key` (Gemini Developer API).
    ApiKey(SecretString),
    /// `Authorization: Bearer` from a service account.
    OAuth(Arc<TokenSource>),
}

#[derive(Debug)]
pub struct VertexProvider {
    endpoint: VertexEndpoint,
    auth: VertexAuth,
    http: HttpClient,
}

impl VertexProvider {
    pub fn new(cloud: &CloudConfig) -> Result<VertexProvider, ProviderError> {
        let unsupported = |m: String| ProviderError::new(ProviderErrorKind::Unsupported, m);
        if cloud.provider != ProviderKind::Vertex {
            return Err(unsupported(format!(
                "cloud {}: VertexProvider cannot serve provider {}",
                cloud.name, cloud.provider
            )));
        }
        let http = HttpClient::new(cloud)?;
        let credentials = cloud
            .credentials_file
            .clone()
            .or_else(|| std::env::var("GOOGLE_APPLICATION_CREDENTIALS").ok())
            .filter(|p| !p.is_empty());
        if let (Some(key), None) = (&cloud.api_key, &cloud.credentials_file) {
            let base = parse_base(
                cloud.base_url.as_deref().unwrap_or(GEMINI_API_BASE),
                &cloud.name,
            )?;
            return Ok(VertexProvider {
                endpoint: VertexEndpoint::Gemini { base },
                auth: VertexAuth::ApiKey(key.clone()),
                http,
            });
        }
        let (Some(project), Some(region)) = (&cloud.project_id, &cloud.region) else {
            return Err(unsupported(format!(
                "cloud {}: vertex needs project_id and region (or api_key for the Gemini API)",
                cloud.name
            )));
        };
        let Some(path) = credentials else {
            return Err(unsupported(format!(
                "cloud {}: vertex needs credentials_file (a service-account JSON key) or GOOGLE_APPLICATION_CREDENTIALS",
                cloud.name
            )));
        };
        let account = ServiceAccount::from_file(&path)
            .map_err(|e| unsupported(format!("cloud {}: {}", cloud.name, e.message)))?;
        Ok(VertexProvider {
            endpoint: VertexEndpoint::vertex(
                cloud.base_url.as_deref(),
                project,
                region,
                &cloud.name,
            )?,
            auth: VertexAuth::OAuth(Arc::new(TokenSource::new(account, http.clone()))),
            http,
        })
    }

    pub fn endpoint(&self) -> &VertexEndpoint {
        &self.endpoint
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The token source, for a provider that shares this cloud's credentials.
    pub fn token_source(&self) -> Option<Arc<TokenSource>> {
        match &self.auth {
            VertexAuth::OAuth(src) => Some(Arc::clone(src)),
            VertexAuth::ApiKey(_) => None,
        }
    }

    /// POSTs `body` as JSON and returns the 2xx response. A 401 on an OAuth token drops
    /// that token and tries once more with a fresh one (§4.5: "refresh token once").
    pub(crate) async fn post<B: Serialize + ?Sized>(
        &self,
        url: reqwest::Url,
        body: &B,
        ctx: &CallCtx,
        sse: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut retried = false;
        loop {
            let mut rb = self.http.client().post(url.clone()).json(body);
            if sse {
                rb = rb.header(reqwest::header::ACCEPT, "text/event-stream");
            }
            let token = match &self.auth {
                VertexAuth::ApiKey(key) => {
                    rb = rb.header("x-goog-api-key", key.expose_secret());
                    None
                }
                VertexAuth::OAuth(src) => {
                    let t = src.token().await?;
                    rb = rb.bearer_auth(&t);
                    Some(t)
                }
            };
            match self.send(with_ctx_headers(rb, ctx)).await {
                Err(e) if e.status == Some(401) && !retried => {
                    let (VertexAuth::OAuth(src), Some(t)) = (&self.auth, token) else {
                        return Err(e);
                    };
                    src.invalidate(&t).await;
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// Sends within the first-byte timeout; a non-2xx answer becomes a Google-shape error
    /// (the OpenAI shape has no `RetryInfo`). Claude's body errors come in Anthropic's
    /// shape, whose `error.message` the Google reader takes as well.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        self.http
            .send_with(rb, |status, _, body| errors::google_error(status, body))
            .await
    }

    pub(crate) async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        url: reqwest::Url,
        body: &B,
        ctx: &CallCtx,
    ) -> Result<R, ProviderError> {
        let resp = self.post(url, body, ctx, false).await?;
        self.http.read_json(resp).await
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[async_trait]
impl Provider for VertexProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vertex
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        if let Some(model) = claude::anthropic_model(target) {
            return claude::chat(self, model, req, ctx).await;
        }
        let body = convert::request_to_wire(req)?;
        let url = self.endpoint.model_url("google", target, "generateContent");
        let wire: GenerateContentResponse = self.call(url, &body, ctx).await?;
        convert::response_from_wire(wire, target, unix_now())
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        if let Some(model) = claude::anthropic_model(target) {
            return claude::chat_stream(self, model, req, ctx).await;
        }
        let body = convert::request_to_wire(req)?;
        let mut url = self
            .endpoint
            .model_url("google", target, "streamGenerateContent");
        // Without alt=sse the answer is one incrementally written JSON array (§4.1).
        url.query_pairs_mut().append_pair("alt", "sse");
        let resp = self.post(url, &body, ctx, true).await?;
        Ok(stream::events(self.http.sse(resp), target.to_string()))
    }

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let (vectors, usage) = match &self.endpoint {
            VertexEndpoint::Vertex { .. } => {
                let body = convert::predict_request(req)?;
                let url = self.endpoint.model_url("google", target, "predict");
                let wire: PredictResponse = self.call(url, &body, ctx).await?;
                convert::predict_response(wire)
            }
            VertexEndpoint::Gemini { .. } => {
                let body = convert::batch_embed_request(req, target)?;
                let url = self
                    .endpoint
                    .model_url("google", target, "batchEmbedContents");
                let wire: BatchEmbedResponse = self.call(url, &body, ctx).await?;
                let vectors = wire.embeddings.into_iter().map(|e| e.values).collect();
                (vectors, anycloud_types::Usage::default())
            }
        };
        if vectors.len() != req.inputs.len() {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                format!(
                    "upstream returned {} embeddings for {} inputs",
                    vectors.len(),
                    req.inputs.len()
                ),
            ));
        }
        Ok(EmbeddingsResponse {
            model: target.to_string(),
            vectors,
            usage,
        })
    }
}
