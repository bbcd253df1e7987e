//! SigV4 verification for the Bedrock emulator (provider-wire-formats §3.6).
//!
//! The signature is recomputed with the official `aws-sigv4` crate from the request as
//! received — the raw (still percent-encoded) path, the headers the client listed in
//! `SignedHeaders`, the body, the `x-amz-date` time — and the emulator's known secret,
//! then compared. The crate double-encodes the canonical path exactly as Bedrock does,
//! so a client that signs a model id's `%3A` only once is rejected here as it would be
//! by AWS. Failures answer with AWS's names and messages.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_types::date_time::{DateTime, Format};

use crate::http::Incoming;
use crate::AwsEmulatorConfig;

/// Allowed clock skew between the signer and the emulator.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// Why a request was refused: exception name, HTTP status, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthError {
    pub name: &'static str,
    pub status: u16,
    pub message: String,
}

fn err(name: &'static str, status: u16, message: impl Into<String>) -> AuthError {
    AuthError {
        name,
        status,
        message: message.into(),
    }
}

fn invalid_token() -> AuthError {
    err(
        "UnrecognizedClientException",
        403,
        "The security token included in the request is invalid.",
    )
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, AuthError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        err(
            "IncompleteSignatureException",
            403,
            format!("Authorization header requires the AWS4-HMAC-SHA256 algorithm. Authorization={value}"),
        )
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let missing = |what: &str| {
        err(
            "IncompleteSignatureException",
            403,
            format!("Authorization header requires '{what}' parameter."),
        )
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(err(
            "IncompleteSignatureException",
            403,
            format!("Credential should have 5 parts separated by '/': {credential}"),
        ));
    };
    if *terminator != "aws4_request" {
        return Err(err(
            "InvalidSignatureException",
            403,
            "Credential should be scoped with a valid terminator: 'aws4_request'.",
        ));
    }
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// `20250101T000000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    let dt = DateTime::from_str(&rfc3339, Format::DateTime).ok()?;
    SystemTime::try_from(dt).ok()
}

/// Checks the request's SigV4 signature against `aws`'s keys.
pub(crate) fn verify(aws: &AwsEmulatorConfig, req: &Incoming) -> Result<(), AuthError> {
    let Some(value) = req.header("authorization") else {
        return Err(err(
            "MissingAuthenticationTokenException",
            403,
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(value)?;
    if auth.access_key_id != aws.access_key_id {
        return Err(invalid_token());
    }
    match (
        req.header("x-amz-security-token"),
        aws.session_token.as_deref(),
    ) {
        (None, None) => {}
        (Some(got), Some(want)) if got == want => {}
        _ => return Err(invalid_token()),
    }
    let amz_date = req.header("x-amz-date").ok_or_else(|| {
        err(
            "IncompleteSignatureException",
            403,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let time = parse_amz_date(amz_date).ok_or_else(|| {
        err(
            "IncompleteSignatureException",
            403,
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        )
    })?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(time)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(err(
            "InvalidSignatureException",
            403,
            format!("Signature expired: {amz_date} is now earlier or later than the allowed 5 minute window."),
        ));
    }
    if auth.date != &amz_date[..8] {
        return Err(err(
            "InvalidSignatureException",
            403,
            format!("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'", auth.date, &amz_date[..8]),
        ));
    }
    if auth.service != "bedrock" {
        return Err(err(
            "InvalidSignatureException",
            403,
            format!(
                "Credential should be scoped to correct service: 'bedrock'. (got '{}')",
                auth.service
            ),
        ));
    }
    if auth.region != aws.region {
        return Err(err(
            "InvalidSignatureException",
            403,
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(err(
                "InvalidSignatureException",
                403,
                format!("'{required}' must be a 'SignedHeader' in the AWS Authorization."),
            ));
        }
    }
    let expected = recompute(aws, req, &auth, time).ok_or_else(mismatch)?;
    if expected != auth.signature {
        return Err(mismatch());
    }
    Ok(())
}

fn mismatch() -> AuthError {
    err(
        "InvalidSignatureException",
        403,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

/// The signature the emulator computes for `req` (None when a signed header is absent).
fn recompute(
    aws: &AwsEmulatorConfig,
    req: &Incoming,
    auth: &AuthHeader<'_>,
    time: SystemTime,
) -> Option<String> {
    // x-amz-date and the token are added by the signer itself, from `time` and the
    // credentials; every other signed header is taken as received.
    let mut headers: Vec<(&str, String)> = Vec::new();
    for name in &auth.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let values: Vec<&str> = req
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.push((name, values.join(",")));
    }
    let host = req.header("host")?;
    let uri = match &req.query {
        Some(q) => format!("http://{host}{}?{q}", req.path),
        None => format!("http://{host}{}", req.path),
    };
    let creds = Credentials::new(
        aws.access_key_id.clone(),
        aws.secret_access_key.clone(),
        req.header("x-amz-security-token").map(str::to_string),
        None,
        "emulator",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let signable = SignableRequest::new(
        req.method.as_str(),
        uri,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(&req.body),
    )
    .ok()?;
    let (_, signature) = sign(signable, &params).ok()?.into_parts();
    Some(signature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20250101T000000Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_735_689_600
        );
        assert!(parse_amz_date("2025-01-01").is_none());
    }

    #[test]
    fn authorization_header_parses() {
        let a = parse_authorization("AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=abc").unwrap();
        assert_eq!(
            (a.access_key_id, a.date, a.region, a.service, a.signature),
            ("AK", "20250101", "us-east-1", "bedrock", "abc")
        );
        assert_eq!(a.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        assert!(parse_authorization("Bearer x").is_err());
    }
}
