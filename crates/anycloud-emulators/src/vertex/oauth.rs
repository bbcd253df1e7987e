//! The emulated Google OAuth2 token endpoint (`POST /token`, provider-wire-formats §4.2).
//!
//! It accepts only the JWT bearer grant, signed RS256 with the emulated service account's
//! key: the signature is verified with the `rsa` crate against the account's public key,
//! and `iss` (the account), `aud` (this endpoint's own URL, as the key file's `token_uri`
//! says), `scope` (cloud-platform), `iat`/`exp` (at most an hour, not in the future) are
//! checked like Google does. Issued tokens are opaque (`ya29.` + random) and valid for
//! the configured lifetime; model endpoints accept nothing else.

use axum::http::Method;
use axum::response::Response;
use base64::Engine as _;
use rand::RngCore;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::{Duration, Instant};

use crate::http::{self, Incoming};
use crate::Shared;

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Clock skew tolerated on `iat`.
const SKEW_SECS: u64 = 60;

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    http::json(
        status,
        &json!({"error": error, "error_description": description}),
        &[],
    )
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(400, "invalid_grant", description)
}

/// If `req` is for `/token`, answer it.
pub(crate) fn token_endpoint(shared: &Shared, req: &Incoming) -> Option<Response> {
    if req.path != "/token" {
        return None;
    }
    let v = shared.config.vertex.as_ref()?;
    if req.method != Method::POST {
        return Some(oauth_error(405, "invalid_request", "Method not allowed."));
    }
    let form_ct = req
        .header("content-type")
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_ct {
        return Some(oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded.",
        ));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some(JWT_BEARER_GRANT) => {}
        Some(g) => {
            return Some(oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {g}"),
            ))
        }
        None => {
            return Some(oauth_error(
                400,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ))
        }
    }
    let Some(assertion) = get("assertion") else {
        return Some(invalid_grant("Missing required parameter: assertion"));
    };
    let host = req.header("host").unwrap_or_default();
    let token_uri = format!("http://{host}/token");
    if let Err(description) = verify_assertion(v, assertion, &token_uri) {
        return Some(invalid_grant(&description));
    }
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let token = format!(
        "ya29.emu-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    shared.store_token(
        &token,
        Instant::now() + Duration::from_secs(v.token_lifetime_secs),
    );
    Some(http::json(
        200,
        &json!({"access_token": token, "expires_in": v.token_lifetime_secs, "token_type": "Bearer"}),
        &[],
    ))
}

/// Checks signature and claims; the error is Google's `error_description`.
fn verify_assertion(
    v: &super::VertexSettings,
    assertion: &str,
    token_uri: &str,
) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: wrong number of segments.".into());
    };
    let decode_json = |seg: &str| -> Option<Value> {
        let bytes = b64.decode(seg.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode_json(h).ok_or("Invalid JWT: header is not base64url JSON.")?;
    let claims = decode_json(c).ok_or("Invalid JWT: claims are not base64url JSON.")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: only RS256 is supported.".into());
    }
    let sig = b64
        .decode(s.trim_end_matches('='))
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let public = RsaPublicKey::from_public_key_pem(&v.public_key_pem)
        .map_err(|e| format!("emulator key is broken: {e}"))?;
    let signature = Signature::try_from(sig.as_slice()).map_err(|_| "Invalid JWT Signature.")?;
    VerifyingKey::<Sha256>::new(public)
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;

    if claims.get("iss").and_then(Value::as_str) != Some(v.client_email.as_str()) {
        return Err("Invalid JWT: iss is not a known service account.".into());
    }
    if claims.get("aud").and_then(Value::as_str) != Some(token_uri) {
        return Err(format!("Invalid JWT: aud must be {token_uri}."));
    }
    let scopes = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE) {
        return Err(
            "Invalid JWT: scope must include https://www.googleapis.com/auth/cloud-platform."
                .into(),
        );
    }
    let now = http::unix_now();
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return Err("Invalid JWT: iat and exp are required.".into());
    };
    if iat > now + SKEW_SECS || exp <= now || exp <= iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    Ok(())
}
