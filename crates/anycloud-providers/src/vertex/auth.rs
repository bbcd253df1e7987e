//! Google credentials: a service-account key exchanged for OAuth2 access tokens by the JWT
//! bearer grant (provider-wire-formats §4.2), or a Gemini Developer API key.
//!
//! The JWT is built and RS256-signed here with `ring` (already in the tree through rustls;
//! constant-time RSA signing) rather than with `gcp_auth`/`yup-oauth2`: those bring their
//! own HTTP stacks and credential discovery, while the gateway needs exactly one grant,
//! its own timeouts, and the key file's `token_uri` honoured (the emulator's token
//! endpoint lives there).
//!
//! Tokens are cached and refreshed five minutes before expiry (halfway for short-lived
//! ones). A tokio mutex makes concurrent callers wait for one refresh; it is held only
//! while reading the cache or fetching a token, never across the model call.

use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::HttpClient;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Refresh this long before a token runs out (less for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Google's tokens live an hour; a longer `expires_in` is believed up to a day.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The fields of a service-account key file the grant needs.
#[derive(Deserialize)]
struct ServiceAccountFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A parsed service-account key. Its `Debug` shows only the account.
pub struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn config_error(message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Unsupported, message)
}

impl ServiceAccount {
    /// Parses a key file's JSON. Errors name the problem, never the key.
    pub fn from_json(json: &str) -> Result<ServiceAccount, ProviderError> {
        let file: ServiceAccountFile = serde_json::from_str(json).map_err(|e| {
            config_error(format!(
                "service-account JSON lacks client_email/private_key or does not parse (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(config_error(format!(
                "credentials file has type {kind:?}; only service_account keys are supported"
            )));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(file.private_key.as_bytes())
            .map_err(|_| config_error("private_key is not a PKCS#8 PEM key".to_string()))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| config_error(format!("private_key is not a usable RSA key: {e}")))?;
        Ok(ServiceAccount {
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
            key,
        })
    }

    /// Reads and parses a key file.
    pub fn from_file(path: &str) -> Result<ServiceAccount, ProviderError> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| config_error(format!("cannot read credentials_file {path}: {e}")))?;
        ServiceAccount::from_json(&json)
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The signed JWT bearer assertion for `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, ProviderError> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| config_error("signing the token assertion failed".to_string()))?;
        Ok(format!("{signing_input}.{}", b64.encode(sig)))
    }
}

#[derive(Debug)]
struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

/// Fetches and caches access tokens for one service account. Shared by the Gemini
/// provider and (later) Claude on Vertex.
#[derive(Debug)]
pub struct TokenSource {
    account: ServiceAccount,
    http: HttpClient,
    cache: Mutex<Option<CachedToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenSource {
    pub fn new(account: ServiceAccount, http: HttpClient) -> TokenSource {
        TokenSource {
            account,
            http,
            cache: Mutex::new(None),
        }
    }

    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// A valid access token, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<String, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.expose_secret().to_string());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.expose_secret().to_string();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token if it is still `token` (after the cloud answered 401 for it),
    /// so the next [`TokenSource::token`] fetches a new one.
    pub async fn invalidate(&self, token: &str) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token)
        {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, ProviderError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.account.assertion(now)?;
        let form = [
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", assertion.as_str()),
        ];
        let fetched_at = Instant::now();
        let rb = self.http.client().post(&self.account.token_uri).form(&form);
        // Any failure here is the gateway's credentials, not the client's request: an
        // upstream error with no status, so the dispatcher fails over.
        let resp = match self.http.send(rb).await {
            Ok(resp) => resp,
            Err(e) if e.status.is_some() => {
                let status = e
                    .status
                    .map_or_else(String::new, |s| format!(" (HTTP {s})"));
                return Err(ProviderError::new(
                    ProviderErrorKind::Upstream,
                    format!("Google token request failed{status}: {}", e.message),
                ));
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
            .map_or(Duration::from_secs(3600), Duration::from_secs)
            // A token "valid for 1e19 s" must not overflow the refresh instant.
            .min(MAX_TOKEN_LIFETIME);
        Ok(CachedToken {
            token: SecretString::from(body.access_token),
            refresh_at: fetched_at + refresh_after(lifetime),
        })
    }
}

/// How long after fetching a token of `lifetime` to fetch the next one: five minutes
/// early, or halfway for tokens shorter than ten minutes.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - REFRESH_MARGIN.min(lifetime / 2)
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
            refresh_after(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn bad_key_files_are_config_errors_without_the_key() {
        let e = ServiceAccount::from_json("{}").unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Unsupported);
        let e = ServiceAccount::from_json(
            r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n"}"#,
        )
        .unwrap_err();
        assert!(!e.message.contains("SECRETSTUFF"), "{}", e.message);
        let e = ServiceAccount::from_json(
            r#"{"type":"authorized_user","client_email":"a@b","private_key":"x"}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("authorized_user"));
    }
}
