//! Azure OpenAI (`azure_openai`) behind [`Provider`].
//!
//! Bodies, responses and streams are OpenAI's, so this reuses `openai::wire`,
//! `openai::convert` and `openai::stream` and changes only the URL and auth
//! (provider-wire-formats §2):
//!
//! - classic URLs: `{base_url}/openai/deployments/{target}/chat/completions?api-version={v}`
//!   and `.../embeddings?...`; the deployment decides the model;
//! - auth: `api-key`, a static Entra ID token, or client credentials
//!   (`auth.rs`).
//!
//! Azure quirks handled elsewhere: its prompt-filter 400 (`code:
//! content_filter`) becomes an `InvalidRequest` carrying the whole error as
//! `client_body` (`http::error_from_response`); its filter-only stream chunks
//! are skipped by `openai::stream`. A completion blocked by the output filter
//! is a normal 200 with `finish_reason: content_filter`.

pub mod auth;

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use crate::openai::convert::MaxTokensField;
use crate::openai::{chat_body, chat_call, embed_call, stream_call, with_ctx_headers};
use crate::{CallCtx, EventStream, Provider};
use anycloud_config::CloudConfig;
use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderKind,
};
use async_trait::async_trait;
use auth::AzureAuth;

/// Used when the cloud's config names no `api_version` (the current GA one).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug)]
pub struct AzureOpenAiProvider {
    base_url: reqwest::Url,
    api_version: String,
    auth: AzureAuth,
    http: HttpClient,
}

impl AzureOpenAiProvider {
    pub fn new(cloud: &CloudConfig) -> Result<AzureOpenAiProvider, ProviderError> {
        let unsupported = |m: String| ProviderError::new(ProviderErrorKind::Unsupported, m);
        if cloud.provider != ProviderKind::AzureOpenai {
            return Err(unsupported(format!(
                "cloud {}: AzureOpenAiProvider cannot serve provider {}",
                cloud.name, cloud.provider
            )));
        }
        let Some(base) = cloud.base_url.as_deref() else {
            return Err(unsupported(format!(
                "cloud {}: azure_openai needs base_url (https://{{resource}}.openai.azure.com)",
                cloud.name
            )));
        };
        let base_url = reqwest::Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|u| !u.cannot_be_a_base())
            .ok_or_else(|| unsupported(format!("cloud {}: base_url is not a URL", cloud.name)))?;
        let http = HttpClient::new(cloud)?;
        Ok(AzureOpenAiProvider {
            base_url,
            api_version: cloud
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            auth: AzureAuth::from_config(cloud, &http)?,
            http,
        })
    }

    /// `{base}/openai/deployments/{target}/{op}?api-version={v}`, with the
    /// deployment name percent-encoded as one path segment.
    pub fn url(&self, target: &str, op: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty()
                .extend(["openai", "deployments", target]);
            segs.extend(op.split('/'));
        }
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        url
    }

    async fn post(
        &self,
        target: &str,
        op: &str,
        ctx: &CallCtx,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let rb = self.http.client().post(self.url(target, op));
        let rb = self.auth.apply(rb).await?;
        Ok(with_ctx_headers(rb, ctx))
    }
}

#[async_trait]
impl Provider for AzureOpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureOpenai
    }

    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError> {
        let body = chat_body(req, target, MaxTokensField::MaxCompletionTokens, false);
        let rb = self.post(target, "chat/completions", ctx).await?;
        chat_call(&self.http, rb, &body).await
    }

    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError> {
        let body = chat_body(req, target, MaxTokensField::MaxCompletionTokens, true);
        let rb = self.post(target, "chat/completions", ctx).await?;
        stream_call(&self.http, rb, &body).await
    }

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let rb = self.post(target, "embeddings", ctx).await?;
        embed_call(&self.http, rb, target, req).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cloud(base: &str) -> CloudConfig {
        let toml = format!(
            "name = \"az\"\nprovider = \"azure_openai\"\nbase_url = \"{base}\"\napi_key = \"k\"\napi_version = \"2024-06-01\"\n"
        );
        crate::registry::tests::cloud_from_toml(&toml)
    }

    #[test]
    fn classic_urls() {
        let p = AzureOpenAiProvider::new(&cloud("https://res.openai.azure.com/")).unwrap();
        assert_eq!(
            p.url("gpt-4o", "chat/completions").as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(
            p.url("a/b c", "embeddings").as_str(),
            "https://res.openai.azure.com/openai/deployments/a%2Fb%20c/embeddings?api-version=2024-06-01"
        );
        let p = AzureOpenAiProvider::new(&cloud("https://proxy.example/prefix")).unwrap();
        assert_eq!(
            p.url("d", "embeddings").as_str(),
            "https://proxy.example/prefix/openai/deployments/d/embeddings?api-version=2024-06-01"
        );
    }
}
