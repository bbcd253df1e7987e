//! Azure OpenAI credentials: an `api-key`, a ready Entra ID token, or Entra ID
//! client credentials the gateway exchanges for tokens itself.
//!
//! Client-credential tokens are cached and refreshed about five minutes before
//! they expire. A tokio mutex makes concurrent callers wait for one refresh
//! instead of each fetching a token; it is held only while reading the cache
//! or fetching a token, never across the model call (the caller gets a clone).

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use anycloud_config::CloudConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// Refresh this long before a token runs out (less for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub enum AzureAuth {
    /// `api-key: {key}`.
    ApiKey(SecretString),
    /// `Authorization: Bearer {token}` with a token someone else refreshes.
    StaticToken(SecretString),
    /// Entra ID client credentials.
    ClientCredentials(TokenSource),
}

impl AzureAuth {
    /// Picks the credential from the cloud's config: `api_key`, else
    /// `azure_ad_token`, else `tenant_id` + `client_id` + `client_secret`.
    pub fn from_config(cloud: &CloudConfig, http: &HttpClient) -> Result<AzureAuth, ProviderError> {
        if let Some(key) = &cloud.api_key {
            return Ok(AzureAuth::ApiKey(key.clone()));
        }
        if let Some(token) = &cloud.azure_ad_token {
            return Ok(AzureAuth::StaticToken(token.clone()));
        }
        match (&cloud.tenant_id, &cloud.client_id, &cloud.client_secret) {
            (Some(tenant), Some(client_id), Some(secret)) => {
                let authority = cloud
                    .authority_host
                    .as_deref()
                    .unwrap_or(DEFAULT_AUTHORITY)
                    .trim_end_matches('/');
                Ok(AzureAuth::ClientCredentials(TokenSource {
                    token_url: format!("{authority}/{tenant}/oauth2/v2.0/token"),
                    client_id: client_id.clone(),
                    client_secret: secret.clone(),
                    http: http.clone(),
                    cache: Mutex::new(None),
                }))
            }
            _ => Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                format!(
                    "cloud {}: azure_openai needs api_key, azure_ad_token, or tenant_id + client_id + client_secret",
                    cloud.name
                ),
            )),
        }
    }

    /// Adds the credential header to a request.
    pub async fn apply(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(match self {
            AzureAuth::ApiKey(key) => rb.header("api-key", key.expose_secret()),
            AzureAuth::StaticToken(t) => rb.bearer_auth(t.expose_secret()),
            AzureAuth::ClientCredentials(src) => {
                let token = src.token().await?;
                rb.bearer_auth(token.expose_secret())
            }
        })
    }
}

#[derive(Debug)]
struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

/// Fetches and caches Entra ID tokens by client credentials.
#[derive(Debug)]
pub struct TokenSource {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    http: HttpClient,
    cache: Mutex<Option<CachedToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    /// A valid token, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<SecretString, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self) -> Result<CachedToken, ProviderError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("scope", SCOPE),
        ];
        let fetched_at = Instant::now();
        let rb = self.http.client().post(&self.token_url).form(&form);
        // Any failure here is the gateway's credentials, not the client's
        // request: report it as an upstream error with no status so the
        // dispatcher fails over (a 400 from the token endpoint is not a 400
        // for the client).
        let resp = match self.http.send(rb).await {
            Ok(resp) => resp,
            Err(e) if e.status.is_some() => {
                return Err(token_error(e.status, &e.message));
            }
            Err(e) => return Err(e),
        };
        let body: TokenResponse = self.http.read_json(resp).await?;
        let lifetime = body
            .expires_in
            .as_ref()
            .and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .map_or(Duration::from_secs(3600), Duration::from_secs);
        Ok(CachedToken {
            token: SecretString::from(body.access_token),
            refresh_at: fetched_at + refresh_after(lifetime),
        })
    }
}

/// How long after fetching a token of `lifetime` to fetch the next one:
/// five minutes early, or halfway for tokens shorter than ten minutes.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - REFRESH_MARGIN.min(lifetime / 2)
}

fn token_error(status: Option<u16>, message: &str) -> ProviderError {
    // `message` came from `error_from_response`, which only understands the
    // OpenAI shape; AAD's `{"error": "...", "error_description": "..."}`
    // arrives as the raw (truncated) body text, so pick it apart again.
    let raw = message.split_once(": ").map_or(message, |(_, rest)| rest);
    let detail = serde_json::from_str::<TokenError>(raw)
        .ok()
        .map(|t| format!("{}: {}", t.error, t.error_description))
        .unwrap_or_else(|| message.to_string());
    let status = status.map_or_else(String::new, |s| format!(" (HTTP {s})"));
    ProviderError::new(
        ProviderErrorKind::Upstream,
        format!("Entra ID token request failed{status}: {detail}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn refresh_five_minutes_early_or_halfway() {
        assert_eq!(
            refresh_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(400)),
            Duration::from_secs(200)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_errors_are_upstream_without_a_status() {
        let e = token_error(
            Some(401),
            r#"upstream returned HTTP 401: {"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Upstream);
        assert_eq!(e.status, None);
        assert!(e.is_retryable());
        assert!(
            e.message.contains("invalid_client: AADSTS7000215"),
            "{}",
            e.message
        );
        assert!(e.message.contains("HTTP 401"));
    }
}
