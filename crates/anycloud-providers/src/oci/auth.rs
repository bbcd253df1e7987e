//! OCI API-key request signing (provider-wire-formats §6.2): draft-cavage HTTP
//! Signatures "version 1" with `rsa-sha256`.
//!
//! For a POST the signed headers are, in this order,
//! `date (request-target) host content-length content-type x-content-sha256`
//! (the order the OCI SDKs use); the signing string is one `name: value` line
//! per header joined by `\n`, and the signature is RSA PKCS#1 v1.5 over
//! SHA-256 of it, base64. `x-content-sha256` is base64 of SHA-256 of the body.
//!
//! The key is read from `key_file` once, when the provider is built, so a bad
//! key fails start-up rather than the first request. PKCS#1
//! (`BEGIN RSA PRIVATE KEY`) and unencrypted PKCS#8 (`BEGIN PRIVATE KEY`) PEMs
//! are accepted; encrypted keys (OCI's optional pass phrase) are refused with
//! a message saying so. Neither the key nor the signature ever reaches a log
//! or an error: `Debug` shows the key id only.
//!
//! Neighbours: `mod.rs` calls [`OciSigner::sign`] for every request; the
//! emulator (`anycloud-emulators/src/oci.rs`) verifies the same construction.

use crate::error::{ProviderError, ProviderErrorKind};
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};

/// The headers signed on a request with a body, in signing order.
pub const POST_SIGNED_HEADERS: [&str; 6] = [
    "date",
    "(request-target)",
    "host",
    "content-length",
    "content-type",
    "x-content-sha256",
];

/// Keys shorter than this are refused (OCI requires 2048-bit API keys).
const MIN_KEY_BITS: usize = 2048;

/// Signs requests for one OCI user.
pub struct OciSigner {
    key_id: String,
    key: SigningKey<Sha256>,
}

impl std::fmt::Debug for OciSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciSigner")
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The headers to add to a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub date: String,
    pub x_content_sha256: String,
    pub authorization: String,
}

impl OciSigner {
    /// A signer from a PEM private key. `key_id` is
    /// `{tenancy}/{user}/{fingerprint}`.
    pub fn from_pem(key_id: String, pem: &str) -> Result<OciSigner, String> {
        if pem.contains("ENCRYPTED") {
            return Err(
                "the private key is encrypted; pass-phrase keys are not supported, \
                        export it unencrypted (openssl rsa -in key.pem -out key-plain.pem)"
                    .into(),
            );
        }
        let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| format!("not a PKCS#1 RSA key: {e}"))?
        } else if pem.contains("BEGIN PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| format!("not a PKCS#8 RSA key: {e}"))?
        } else {
            return Err(
                "not a PEM RSA private key (expected BEGIN RSA PRIVATE KEY or \
                        BEGIN PRIVATE KEY)"
                    .into(),
            );
        };
        let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
        if bits < MIN_KEY_BITS {
            return Err(format!(
                "the RSA key has {bits} bits; OCI needs at least {MIN_KEY_BITS}"
            ));
        }
        Ok(OciSigner {
            key_id,
            key: SigningKey::<Sha256>::new(key),
        })
    }

    /// Reads `key_file` and builds the signer; errors name the cloud and the
    /// file, never the key's contents.
    pub fn from_config(cloud: &anycloud_config::CloudConfig) -> Result<OciSigner, ProviderError> {
        let unsupported = |m: String| ProviderError::new(ProviderErrorKind::Unsupported, m);
        let field = |v: &Option<String>, name: &str| {
            v.clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| unsupported(format!("cloud {}: oci needs {name}", cloud.name)))
        };
        let tenancy = field(&cloud.tenancy, "tenancy")?;
        let user = field(&cloud.user, "user")?;
        let fingerprint = field(&cloud.fingerprint, "fingerprint")?;
        let path = field(&cloud.key_file, "key_file")?;
        let pem = std::fs::read_to_string(&path).map_err(|e| {
            unsupported(format!(
                "cloud {}: cannot read key_file {path}: {e}",
                cloud.name
            ))
        })?;
        OciSigner::from_pem(format!("{tenancy}/{user}/{fingerprint}"), &pem)
            .map_err(|e| unsupported(format!("cloud {}: key_file {path}: {e}", cloud.name)))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs a POST of `body` (sent with `content_type`) to `path_and_query`
    /// on `host` (`name[:port]`, exactly as the `Host` header will carry it),
    /// dated `date` (RFC 1123).
    pub fn sign_post(
        &self,
        host: &str,
        path_and_query: &str,
        content_type: &str,
        body: &[u8],
        date: &str,
    ) -> SignedHeaders {
        let sha = body_sha256(body);
        let string = signing_string(&[
            ("date", date),
            ("(request-target)", &format!("post {path_and_query}")),
            ("host", host),
            ("content-length", &body.len().to_string()),
            ("content-type", content_type),
            ("x-content-sha256", &sha),
        ]);
        let signature = self.key.sign(string.as_bytes()).to_bytes();
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        let authorization = format!(
            "Signature version=\"1\",keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{signature}\"",
            self.key_id,
            POST_SIGNED_HEADERS.join(" ")
        );
        SignedHeaders {
            date: date.to_string(),
            x_content_sha256: sha,
            authorization,
        }
    }
}

/// Base64 of SHA-256 of `body` (the `x-content-sha256` header).
pub fn body_sha256(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

/// `name: value` lines joined by `\n` (no trailing newline).
pub fn signing_string(lines: &[(&str, &str)]) -> String {
    lines
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The current time as an RFC 1123 `date` header value.
pub fn now_http_date() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";
    const HOST: &str = "inference.generativeai.us-chicago-1.oci.oraclecloud.com";
    const BODY: &[u8] = br#"{"hello":"world"}"#;
    /// Computed independently of this crate with
    /// `openssl dgst -sha256 -sign test_key_pkcs1.pem signing-string.txt | base64`
    /// over the signing string spelled out in `signing_string_is_the_documented_one`.
    const OPENSSL_SIGNATURE: &str = "r21++OuxMayWkPbetL7UqQKjiElmtIu2IsNIGdU3xPbzou/214/x0ZHoMKMEorzAayQFFtYs+W7mHAeksrHOmVeaz1b+0K94cw8UDyrB8cZ+SHZwzil00Xs6S2fu1+Jdm1h0Cpv+nvSTt6OHeNcACSR9A+6OzF2sIUwrR0G2LBsflcaT0oPflcjAF1r+LMinBZOD53qkf49ol3H1XVSy4v9NuGGeFu4nZ4TCzKrcuHqd2zcmeDX4sCXk7rCj+7HCbAcNGlKeNtB4WFoi+n/WctH0G3SQznae9o/Tqc1DLVtjReKxCMgSp2X5g2RC4dSCWaBWb+Biz2EqGOC523L9Cw==";

    fn signer() -> OciSigner {
        OciSigner::from_pem(
            "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/65:16".into(),
            anycloud_emulators::OCI_TEST_PRIVATE_KEY_PEM,
        )
        .unwrap()
    }

    #[test]
    fn signing_string_is_the_documented_one() {
        let sha = body_sha256(BODY);
        // `printf '{"hello":"world"}' | openssl dgst -sha256 -binary | base64`
        assert_eq!(sha, "k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg=");
        let s = signing_string(&[
            ("date", DATE),
            ("(request-target)", "post /20231130/actions/chat"),
            ("host", HOST),
            ("content-length", "17"),
            ("content-type", "application/json"),
            ("x-content-sha256", &sha),
        ]);
        assert_eq!(
            s,
            "date: Thu, 05 Jan 2014 21:31:40 GMT\n(request-target): post /20231130/actions/chat\nhost: inference.generativeai.us-chicago-1.oci.oraclecloud.com\ncontent-length: 17\ncontent-type: application/json\nx-content-sha256: k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg="
        );
    }

    #[test]
    fn signature_matches_an_openssl_vector() {
        let h = signer().sign_post(
            HOST,
            "/20231130/actions/chat",
            "application/json",
            BODY,
            DATE,
        );
        assert_eq!(h.date, DATE);
        assert_eq!(
            h.x_content_sha256,
            "k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg="
        );
        assert_eq!(
            h.authorization,
            format!(
                "Signature version=\"1\",keyId=\"ocid1.tenancy.oc1..t/ocid1.user.oc1..u/65:16\",algorithm=\"rsa-sha256\",headers=\"date (request-target) host content-length content-type x-content-sha256\",signature=\"{OPENSSL_SIGNATURE}\""
            )
        );
        // A different body gives a different signature.
        let other = signer().sign_post(
            HOST,
            "/20231130/actions/chat",
            "application/json",
            b"{}",
            DATE,
        );
        assert!(!other.authorization.contains(OPENSSL_SIGNATURE));
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason_and_debug_hides_the_key() {
        let e = OciSigner::from_pem("k".into(), "hello").unwrap_err();
        assert!(e.contains("not a PEM RSA private key"), "{e}");
        let e = OciSigner::from_pem(
            "k".into(),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("encrypted"), "{e}");
        let e = OciSigner::from_pem(
            "k".into(),
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("PKCS#1"), "{e}");
        let dbg = format!("{:?}", signer());
        assert!(
            dbg.contains("[redacted]") && !dbg.contains("BEGIN"),
            "{dbg}"
        );
    }
}
