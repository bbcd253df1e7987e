//! Oracle OCI Generative AI (`oci`) behind [`Provider`]
//! (provider-wire-formats §6).
//!
//! - URLs: `{base_url}/20231130/actions/chat` and `.../embedText`, the base
//!   defaulting to `https://inference.generativeai.{region}.oci.oraclecloud.com`;
//! - auth: every request is signed with the user's API key (`auth.rs`);
//! - body: `compartmentId`, `servingMode` (on-demand by model name, or
//!   dedicated when the target is a `ocid1.generativeaiendpoint…` OCID) and a
//!   GENERIC-format `chatRequest` (`convert.rs`);
//! - streams: SSE with `isStream: true` (`stream.rs`; shapes unconfirmed);
//! - errors: OCI's `{"code","message"}` (`convert::error_from_response`).
//!
//! The COHERE and COHEREV2 formats are not produced: GENERIC serves Llama,
//! Grok, OpenAI-family and other hosted models, and Cohere models would need
//! a second translation.

pub mod auth;
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
use auth::OciSigner;

/// The inference API version in every path.
pub const API_VERSION: &str = "20231130";
const CONTENT_TYPE: &str = "application/json";

#[derive(Debug)]
pub struct OciProvider {
    base_url: reqwest::Url,
    compartment_id: String,
    signer: OciSigner,
    http: HttpClient,
}

impl OciProvider {
    /// Builds the provider, reading and parsing `key_file` now.
    pub fn new(cloud: &CloudConfig) -> Result<OciProvider, ProviderError> {
        let unsupported = |m: String| ProviderError::new(ProviderErrorKind::Unsupported, m);
        if cloud.provider != ProviderKind::Oci {
            return Err(unsupported(format!(
                "cloud {}: OciProvider cannot serve provider {}",
                cloud.name, cloud.provider
            )));
        }
        let base = match (&cloud.base_url, &cloud.region) {
            (Some(b), _) => b.trim_end_matches('/').to_string(),
            (None, Some(r)) => {
                format!("https://inference.generativeai.{r}.oci.oraclecloud.com")
            }
            (None, None) => {
                return Err(unsupported(format!(
                    "cloud {}: oci needs region (or base_url)",
                    cloud.name
                )))
            }
        };
        let base_url = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && u.host_str().is_some())
            .ok_or_else(|| unsupported(format!("cloud {}: base_url is not a URL", cloud.name)))?;
        let compartment_id = cloud
            .compartment_id
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                unsupported(format!("cloud {}: oci needs compartment_id", cloud.name))
            })?;
        Ok(OciProvider {
            base_url,
            compartment_id,
            signer: OciSigner::from_config(cloud)?,
            http: HttpClient::new(cloud)?,
        })
    }

    /// `{base}/20231130/actions/{action}`.
    pub fn url(&self, action: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty().extend([API_VERSION, "actions", action]);
        }
        url
    }

    /// Signs and sends a POST; a non-2xx answer becomes an error built from
    /// OCI's error shape. (`HttpClient::send` maps errors from the OpenAI
    /// shape, so the first-byte timeout is applied here instead.)
    async fn post(
        &self,
        action: &str,
        body: Vec<u8>,
        ctx: &CallCtx,
        sse: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = self.url(action);
        // Exactly what reqwest puts in `Host`: the port only when not the default.
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let signed =
            self.signer
                .sign_post(&host, &path, CONTENT_TYPE, &body, &auth::now_http_date());
        let mut rb = self
            .http
            .client()
            .post(url)
            .header("date", signed.date)
            .header("x-content-sha256", signed.x_content_sha256)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::AUTHORIZATION, signed.authorization);
        if sse {
            rb = rb.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        if !ctx.request_id.is_empty() {
            rb = rb.header("opc-request-id", &ctx.request_id);
        }
        if let Some(tp) = &ctx.traceparent {
            rb = rb.header("traceparent", tp);
        }
        self.http
            .send_with(rb.body(body), convert::error_from_response)
            .await
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(v).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Unsupported,
            format!("oci request did not encode: {e}"),
        )
    })
}

fn response_id(resp: &reqwest::Response, ctx: &CallCtx) -> String {
    resp.headers()
        .get("opc-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("oci-{}", ctx.request_id))
}

#[async_trait]
impl Provider for OciProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Oci
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        let body = convert::chat_to_wire(req, target, &self.compartment_id, false)?;
        let resp = self.post("chat", to_json(&body)?, ctx, false).await?;
        let id = response_id(&resp, ctx);
        let wire: wire::ChatResult = self.http.read_json(resp).await?;
        convert::response_from_wire(wire, id, target, req)
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        let body = convert::chat_to_wire(req, target, &self.compartment_id, true)?;
        let resp = self.post("chat", to_json(&body)?, ctx, true).await?;
        let decoder = stream::OciDecoder::new(
            response_id(&resp, ctx),
            target.to_string(),
            req.estimate_input_tokens(),
        );
        Ok(stream::events(self.http.sse(resp), decoder))
    }

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = convert::embed_to_wire(req, target, &self.compartment_id)?;
        let resp = self.post("embedText", to_json(&body)?, ctx, false).await?;
        let wire: wire::EmbedTextResult = self.http.read_json(resp).await?;
        convert::embed_from_wire(wire, target, req)
    }
}
