//! AWS credentials and SigV4 signing for Bedrock.
//!
//! Signing goes through the official `aws-sigv4` crate over our own `reqwest` request
//! (one HTTP stack for every cloud; the Bedrock runtime SDK would bring its own client,
//! retry loop and timeouts, which fight the gateway's failover and first-byte timeouts).
//! The crate's default settings are what Bedrock needs: the canonical URI is the wire
//! path percent-encoded once more, so a model id's `%3A` is signed as `%253A`
//! (provider-wire-formats §0 item 1), and the payload hash is not sent as a header.
//!
//! Credentials: static keys from the config (with an optional session token), else the
//! standard chain's environment and shared-profile sources from `aws-config`, built
//! without the SDK's HTTP client (so profiles that need STS/SSO calls are not served).
//! Chain credentials are cached and refreshed five minutes before they expire; the lock
//! is held only while loading them, never across a model call.

use crate::error::{ProviderError, ProviderErrorKind};
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, SystemTime};

/// The SigV4 service name for Bedrock Runtime (not `bedrock-runtime`).
pub const SERVICE: &str = "bedrock";
/// Chain credentials are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Where credentials come from.
pub enum CredentialSource {
    Static(Credentials),
    Chain {
        chain: CredentialsProviderChain,
        /// The last credentials loaded; taken for each call, replaced on refresh.
        cached: std::sync::RwLock<Option<Credentials>>,
        /// Serialises refreshes so a burst of calls loads the chain once.
        refresh: tokio::sync::Mutex<()>,
    },
}

impl std::fmt::Debug for CredentialSource {
    // Credentials' own Debug redacts the secret; this prints only the source kind.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Static(_) => f.write_str("CredentialSource::Static"),
            CredentialSource::Chain { .. } => f.write_str("CredentialSource::Chain"),
        }
    }
}

impl CredentialSource {
    /// Static keys when both are configured, else the env/profile chain.
    pub fn new(
        access_key_id: Option<&SecretString>,
        secret_access_key: Option<&SecretString>,
        session_token: Option<&SecretString>,
    ) -> CredentialSource {
        match (access_key_id, secret_access_key) {
            (Some(id), Some(secret)) => CredentialSource::Static(Credentials::new(
                id.expose_secret(),
                secret.expose_secret(),
                session_token.map(|t| t.expose_secret().to_string()),
                None,
                "anycloud-config",
            )),
            _ => CredentialSource::Chain {
                chain: CredentialsProviderChain::first_try(
                    "Environment",
                    EnvironmentVariableCredentialsProvider::new(),
                )
                .or_else("Profile", ProfileFileCredentialsProvider::builder().build()),
                cached: std::sync::RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            },
        }
    }

    /// Credentials for one call.
    pub async fn credentials(&self) -> Result<Credentials, ProviderError> {
        let (chain, cached, refresh) = match self {
            CredentialSource::Static(c) => return Ok(c.clone()),
            CredentialSource::Chain {
                chain,
                cached,
                refresh,
            } => (chain, cached, refresh),
        };
        if let Some(c) = fresh(cached) {
            return Ok(c);
        }
        let _guard = refresh.lock().await;
        // Another call may have refreshed while this one waited.
        if let Some(c) = fresh(cached) {
            return Ok(c);
        }
        let loaded = chain.provide_credentials().await.map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Connect,
                format!("no AWS credentials: configure access_key_id/secret_access_key, AWS_* environment variables or a shared profile ({e})"),
            )
        })?;
        *cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(loaded.clone());
        Ok(loaded)
    }
}

fn fresh(cached: &std::sync::RwLock<Option<Credentials>>) -> Option<Credentials> {
    let guard = cached
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = guard.as_ref()?;
    match c.expiry() {
        Some(exp) if SystemTime::now() + REFRESH_MARGIN >= exp => None,
        _ => Some(c.clone()),
    }
}

/// Signs a POST of `body` to `url` with the given extra headers, returning the headers
/// to add (`authorization`, `x-amz-date`, and `x-amz-security-token` when there is one).
pub fn sign_request(
    creds: &Credentials,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, ProviderError> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing_error(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn signing_error(e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unsupported,
        format!("cannot sign the Bedrock request: {e}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The vector of provider-wire-formats §3.6, re-checked with `aws-sigv4`: a model id
    /// with `:` signs the double-encoded path.
    #[test]
    fn doc_test_vector_signature() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01
        let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":16}}"#;
        let headers = sign_request(
            &creds,
            "us-east-1",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            &[("content-type", "application/json")],
            body,
            time,
        )
        .unwrap();
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .unwrap();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=e55d2d3d43d559030b5ac40103458a8192f8d9e8b6757fc279f66699ded79d6f"
        );
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amz-date" && v == "20250101T000000Z"));
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let creds = Credentials::new("AKID", "secret", Some("tok".into()), None, "t");
        let headers = sign_request(
            &creds,
            "eu-west-1",
            "https://h/model/m/converse",
            &[("content-type", "application/json")],
            b"{}",
            SystemTime::now(),
        )
        .unwrap();
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-amz-security-token" && v == "tok"));
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(auth.contains("x-amz-security-token"), "{auth}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = CredentialSource::new(
            Some(&SecretString::from("AKIDX".to_string())),
            Some(&SecretString::from("supersecret".to_string())),
            None,
        );
        let d = format!("{s:?}");
        assert!(!d.contains("supersecret") && !d.contains("AKIDX"), "{d}");
    }
}
