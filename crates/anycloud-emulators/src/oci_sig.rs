//! Verification of OCI API-key request signatures (draft-cavage HTTP Signatures "version 1",
//! `rsa-sha256`; provider-wire-formats §6.2) for the OCI emulator.
//!
//! Checks, in order: the `Authorization: Signature ...` header parses; `version` is `1` and
//! `algorithm` is `rsa-sha256`; `keyId` is this emulator's `{tenancy}/{user}/{fingerprint}`;
//! the signed-header list covers `(request-target)`, `date` (or `x-date`) and `host`, plus
//! `content-length`, `content-type` and `x-content-sha256` for requests with a body; the body
//! matches `x-content-sha256` and `content-length`; the date is within five minutes; and the
//! RSA PKCS#1 v1.5 / SHA-256 signature over the rebuilt signing string verifies against the
//! configured public key. Any failure is a reason string; the caller answers 401
//! `NotAuthenticated`.

use base64::Engine as _;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

use crate::http::Incoming;
use crate::OciConfig;

/// Largest accepted clock skew between the request's `date` and now.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The `key="value"` parameters of a `Signature` authorization header.
fn parse_params(header: &str) -> Result<Vec<(String, String)>, String> {
    let rest = header
        .strip_prefix("Signature ")
        .ok_or("authorization scheme is not Signature")?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=').ok_or("malformed Signature parameter")?;
        let after = after
            .strip_prefix('"')
            .ok_or("Signature parameter values must be quoted")?;
        let (value, tail) = after
            .split_once('"')
            .ok_or("unterminated Signature parameter")?;
        out.push((key.trim().to_string(), value.to_string()));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// Verify `req` against `cfg`; `Err` carries the reason.
pub(crate) fn verify(cfg: &OciConfig, req: &Incoming) -> Result<(), String> {
    let header = req
        .header("authorization")
        .ok_or("missing Authorization header")?;
    let params = parse_params(header)?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("version").is_some_and(|v| v != "1") {
        return Err("unsupported signature version".into());
    }
    if get("algorithm") != Some("rsa-sha256") {
        return Err("algorithm must be rsa-sha256".into());
    }
    let key_id = get("keyId").ok_or("missing keyId")?;
    if key_id != cfg.key_id() {
        return Err("unknown keyId".into());
    }
    let signed: Vec<String> = get("headers")
        .unwrap_or("date")
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |h: &str| signed.iter().any(|s| s == h);
    let mut required = vec!["(request-target)", "host"];
    let has_body = !req.body.is_empty() || req.method != axum::http::Method::GET;
    if has_body {
        required.extend(["content-length", "content-type", "x-content-sha256"]);
    }
    if let Some(missing) = required.iter().find(|h| !has(h)) {
        return Err(format!("header {missing} is not signed"));
    }
    if !has("date") && !has("x-date") {
        return Err("neither date nor x-date is signed".into());
    }
    if has_body {
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&req.body));
        if req.header("x-content-sha256") != Some(sha.as_str()) {
            return Err("x-content-sha256 does not match the body".into());
        }
        if req.header("content-length") != Some(req.body.len().to_string().as_str()) {
            return Err("content-length does not match the body".into());
        }
    }
    let date = req
        .header("x-date")
        .filter(|_| has("x-date"))
        .or_else(|| req.header("date"))
        .ok_or("missing date header")?;
    let when = httpdate::parse_http_date(date).map_err(|_| "date is not an RFC 1123 date")?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(when)
        .or_else(|_| when.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > MAX_SKEW {
        return Err("date is more than 5 minutes from the server's clock".into());
    }
    let mut lines = Vec::with_capacity(signed.len());
    for h in &signed {
        let value = if h == "(request-target)" {
            let target = match &req.query {
                Some(q) => format!("{}?{q}", req.path),
                None => req.path.clone(),
            };
            format!("{} {target}", req.method.as_str().to_ascii_lowercase())
        } else {
            req.header(h)
                .ok_or_else(|| format!("signed header {h} is missing"))?
                .to_string()
        };
        lines.push(format!("{h}: {value}"));
    }
    let string = lines.join("\n");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(get("signature").ok_or("missing signature")?)
        .map_err(|_| "signature is not base64")?;
    let sig = Signature::try_from(sig.as_slice()).map_err(|_| "malformed signature")?;
    let key = RsaPublicKey::from_public_key_pem(&cfg.public_key_pem)
        .map_err(|_| "the emulator's configured public key does not parse")?;
    VerifyingKey::<Sha256>::new(key)
        .verify(string.as_bytes(), &sig)
        .map_err(|_| "signature does not verify".to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn params_parse() {
        let p = parse_params(
            r#"Signature version="1",keyId="t/u/f",algorithm="rsa-sha256",headers="date host",signature="AB+/=""#,
        )
        .unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p[1], ("keyId".into(), "t/u/f".into()));
        assert_eq!(p[4], ("signature".into(), "AB+/=".into()));
        assert!(parse_params("Bearer x").is_err());
        assert!(parse_params(r#"Signature keyId=unquoted"#).is_err());
        assert!(parse_params(r#"Signature keyId="open"#).is_err());
    }
}
