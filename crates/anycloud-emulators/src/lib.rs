//! Strict, deterministic emulators of cloud LLM APIs for the gateway's tests and for
//! `anycloud demo`.
//!
//! One emulated cloud runs per TCP listener: [`spawn`] (or [`spawn_on_port`]) starts it and
//! returns an [`EmulatorHandle`] for its address, its fault knobs ([`Faults`]) and the log of
//! requests it received ([`RecordedRequest`]). The emulators check what the real services
//! check (auth, model / deployment, api-version, body validation) and answer in the real
//! services' shapes, so a client that passes against them has a fair chance against the
//! real thing. Replies are deterministic (see [`reply`]).
//!
//! Clouds: [`EmulatedCloud::OpenaiCompatible`] (`/v1/...`) and
//! [`EmulatedCloud::AzureOpenai`] (classic deployment URLs, v1 URLs, Entra ID tokens).
//!
//! Every listener also serves a control plane that is neither recorded nor subject to faults:
//!
//! - `POST /_emulator/faults` with any of
//!   `{"fail_next":{"count":N,"status":503,"retry_after":2},
//!     "fail_rate":{"probability":0.3,"status":503}, "latency_ms":M, "chunk_delay_ms":M,
//!     "trickle_ms":M (streams one byte per write, M ms apart; 0 turns it off),
//!     "cut_stream_after":K (null turns it off), "stall_stream_after":K (K events, then the
//!     connection hangs open; null turns it off),
//!     "stream_error_after":{"chunks":K,"type":"overloaded_error"} (K events, then the
//!     cloud's in-band error: OpenAI/Azure and Gemini error chunks, Anthropic `event: error`,
//!     a Bedrock exception frame; null turns it off), "refuse_connections":bool, "seed":S}`;
//!   answers `{"ok":true}` or 400 `{"error":"..."}` (nothing is applied on error).
//! - `POST /_emulator/reset`: all faults off and the request log cleared.
//! - `GET /_emulator/stats`: `{"requests":N}`.
//! - `GET /_emulator/usage`: `{"usage":[…]}`, the usage object each answer reported since
//!   the last reset, in the cloud's own fields (Anthropic, Claude on Vertex and Bedrock
//!   Converse, whose caches the gateway bills by kind).

mod anthropic;
mod azure;
mod bedrock;
mod chat;
mod embeddings;
pub mod faults;
mod http;
pub mod mcp;
mod oci;
mod oci_sig;
mod openai;
mod prompt_cache;
pub mod record;
pub mod reply;
mod server;
mod vertex;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use faults::{Faults, InjectedFailure};
pub use mcp::{spawn_mcp, McpEmulatorHandle};
pub use record::RecordedRequest;
pub use vertex::VertexSettings;

/// Accepted Azure `api-version` values unless configured otherwise.
pub const DEFAULT_AZURE_API_VERSIONS: [&str; 3] =
    ["2024-10-21", "2024-06-01", "2025-04-01-preview"];

/// Which cloud API a listener emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatedCloud {
    /// OpenAI's API (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).
    OpenaiCompatible,
    /// Azure OpenAI (classic and v1 URL styles, optional Entra ID token endpoint).
    AzureOpenai,
    /// Oracle OCI Generative AI inference (`/20231130/actions/chat`, `.../embedText`) with
    /// request-signature verification.
    Oci,
    /// AWS Bedrock Runtime (Converse, ConverseStream, Titan embeddings; SigV4 verified).
    Bedrock,
    /// Google Vertex AI (Gemini, Claude `rawPredict`, OAuth JWT-grant token endpoint) and
    /// the Gemini Developer API (`x-goog-api-key`).
    Vertex,
    /// Anthropic's Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
}

/// AWS keys and region the Bedrock emulator verifies SigV4 signatures against.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsEmulatorConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry it as `x-amz-security-token` (temporary credentials).
    pub session_token: Option<String>,
    pub region: String,
}

impl std::fmt::Debug for AwsEmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEmulatorConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("region", &self.region)
            .finish()
    }
}

/// A test-only RSA key pair (2048-bit, PKCS#1 PEM) that [`EmulatorConfig::oci`] trusts by
/// default, so tests and `anycloud demo` can sign requests. Never use it for anything real.
pub const OCI_TEST_PRIVATE_KEY_PEM: &str = include_str!("oci_keys/test_key_pkcs1.pem");
/// The public half of [`OCI_TEST_PRIVATE_KEY_PEM`] (SPKI PEM).
pub const OCI_TEST_PUBLIC_KEY_PEM: &str = include_str!("oci_keys/test_key_public.pem");
/// The OCI fingerprint (MD5 of the DER public key) of [`OCI_TEST_PUBLIC_KEY_PEM`].
pub const OCI_TEST_KEY_FINGERPRINT: &str = "65:16:84:fb:20:9d:c1:21:17:33:51:c3:46:ee:93:fb";

/// What the OCI emulator accepts: the API-key identity whose signatures it verifies and
/// the one compartment it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciConfig {
    pub tenancy: String,
    pub user: String,
    pub fingerprint: String,
    /// The public key signatures must verify against (SPKI PEM).
    pub public_key_pem: String,
    pub compartment_id: String,
}

impl OciConfig {
    /// `{tenancy}/{user}/{fingerprint}`, the `keyId` requests must carry.
    pub fn key_id(&self) -> String {
        format!("{}/{}/{}", self.tenancy, self.user, self.fingerprint)
    }
}

/// Entra ID (Azure AD) client-credentials settings for the Azure emulator's token endpoint
/// `POST /{tenant_id}/oauth2/v2.0/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// What one emulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    pub cloud: EmulatedCloud,
    /// Cloud name; appears in every reply text, e.g. `azure-us`.
    pub name: String,
    /// The key the emulator demands.
    pub api_key: String,
    /// OpenAI-compatible: accepted `model` ids. Azure: deployment names.
    pub models: Vec<String>,
    /// Azure: accepted `api-version` values on classic URLs.
    pub api_versions: Vec<String>,
    /// Azure: enable the Entra ID token endpoint.
    pub entra: Option<EntraConfig>,
    /// OCI: identity, public key and compartment.
    pub oci: Option<OciConfig>,
    /// Bedrock: the keys and region signatures are checked against.
    pub aws: Option<AwsEmulatorConfig>,
    /// Vertex: project, region and the service account's key pair.
    pub vertex: Option<VertexSettings>,
}

impl EmulatorConfig {
    /// An OpenAI-compatible emulator accepting `models`.
    pub fn openai_compatible(
        name: impl Into<String>,
        api_key: impl Into<String>,
        models: Vec<String>,
    ) -> Self {
        Self {
            cloud: EmulatedCloud::OpenaiCompatible,
            name: name.into(),
            api_key: api_key.into(),
            models,
            api_versions: Vec::new(),
            entra: None,
            oci: None,
            aws: None,
            vertex: None,
        }
    }

    /// An Azure OpenAI emulator with `deployments`, the default api-versions and no Entra.
    pub fn azure(
        name: impl Into<String>,
        api_key: impl Into<String>,
        deployments: Vec<String>,
    ) -> Self {
        Self {
            cloud: EmulatedCloud::AzureOpenai,
            name: name.into(),
            api_key: api_key.into(),
            models: deployments,
            api_versions: DEFAULT_AZURE_API_VERSIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            entra: None,
            oci: None,
            aws: None,
            vertex: None,
        }
    }

    /// An OCI Generative AI emulator trusting [`OCI_TEST_PUBLIC_KEY_PEM`] for the API key
    /// `{tenancy}/{user}/{fingerprint}`, serving `compartment_id`. `models` are on-demand
    /// model ids (`meta.llama-3.3-70b-instruct`) and dedicated endpoint OCIDs
    /// (`ocid1.generativeaiendpoint...`) alike.
    pub fn oci(
        name: impl Into<String>,
        tenancy: impl Into<String>,
        user: impl Into<String>,
        fingerprint: impl Into<String>,
        compartment_id: impl Into<String>,
        models: Vec<String>,
    ) -> Self {
        Self {
            cloud: EmulatedCloud::Oci,
            name: name.into(),
            api_key: String::new(),
            models,
            api_versions: Vec::new(),
            entra: None,
            aws: None,
            vertex: None,
            oci: Some(OciConfig {
                tenancy: tenancy.into(),
                user: user.into(),
                fingerprint: fingerprint.into(),
                public_key_pem: OCI_TEST_PUBLIC_KEY_PEM.to_string(),
                compartment_id: compartment_id.into(),
            }),
        }
    }

    /// Builder-style: make the OCI emulator trust this public key (SPKI PEM) instead.
    pub fn with_oci_public_key(mut self, pem: impl Into<String>) -> Self {
        if let Some(o) = self.oci.as_mut() {
            o.public_key_pem = pem.into();
        }
        self
    }

    /// A Bedrock emulator in `us-east-1` accepting SigV4 requests signed with these keys,
    /// serving model ids `models` (`anthropic.claude-3-haiku-20240307-v1:0`, …).
    pub fn bedrock(
        name: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        models: Vec<String>,
    ) -> Self {
        Self {
            cloud: EmulatedCloud::Bedrock,
            name: name.into(),
            api_key: String::new(),
            models,
            api_versions: Vec::new(),
            entra: None,
            oci: None,
            vertex: None,
            aws: Some(AwsEmulatorConfig {
                access_key_id: access_key_id.into(),
                secret_access_key: secret_access_key.into(),
                session_token: None,
                region: "us-east-1".into(),
            }),
        }
    }

    /// Builder-style (Bedrock): the region signatures must be scoped to.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        if let Some(aws) = self.aws.as_mut() {
            aws.region = region.into();
        }
        self
    }

    /// Builder-style (Bedrock): demand this session token (temporary credentials).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        if let Some(aws) = self.aws.as_mut() {
            aws.session_token = Some(token.into());
        }
        self
    }

    /// An Anthropic Messages API emulator accepting `models`.
    pub fn anthropic(
        name: impl Into<String>,
        api_key: impl Into<String>,
        models: Vec<String>,
    ) -> Self {
        Self {
            cloud: EmulatedCloud::Anthropic,
            name: name.into(),
            api_key: api_key.into(),
            models,
            api_versions: Vec::new(),
            entra: None,
            oci: None,
            aws: None,
            vertex: None,
        }
    }

    /// Builder-style: enable the Entra ID token endpoint.
    pub fn with_entra(mut self, entra: EntraConfig) -> Self {
        self.entra = Some(entra);
        self
    }
}

/// Reported usages an emulator keeps for `GET /_emulator/usage`.
const REPORTED_USAGE: usize = 1_000;

/// State shared by the server tasks and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub faults: Faults,
    pub recorder: record::Recorder,
    /// The deployment's prompt cache (clouds with explicit caching).
    pub prompt_cache: prompt_cache::PromptCache,
    /// The usage each answer reported, in the cloud's own fields (`GET /_emulator/usage`),
    /// so a test can check a bill against what the cloud said.
    reported: Mutex<Vec<serde_json::Value>>,
    tokens: Mutex<HashMap<String, Instant>>,
    seq: AtomicU64,
}

impl Shared {
    /// Logs the usage one answer reported (the last [`REPORTED_USAGE`] are kept).
    pub(crate) fn report_usage(&self, usage: &serde_json::Value) {
        let mut r = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if r.len() >= REPORTED_USAGE {
            r.remove(0);
        }
        r.push(usage.clone());
    }

    /// The usage reported since the last reset, oldest first; `clear` empties the log.
    pub(crate) fn reported_usage(&self, clear: bool) -> Vec<serde_json::Value> {
        let mut r = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if clear {
            std::mem::take(&mut *r)
        } else {
            r.clone()
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn store_token(&self, token: &str, expires: Instant) {
        let mut t = self.tokens();
        let now = Instant::now();
        t.retain(|_, exp| *exp > now);
        t.insert(token.to_string(), expires);
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.tokens()
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A running emulator. Cheap to clone; every clone controls the same emulator.
#[derive(Debug, Clone)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Arc<tokio::task::AbortHandle>,
}

impl EmulatorHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What a client should be configured with: `http://127.0.0.1:PORT/v1` for
    /// OpenAI-compatible, `http://127.0.0.1:PORT` for Azure (the "endpoint") and OCI (the
    /// provider appends `/20231130/actions/...`).
    pub fn base_url(&self) -> String {
        match self.shared.config.cloud {
            EmulatedCloud::OpenaiCompatible => format!("http://{}/v1", self.addr),
            EmulatedCloud::AzureOpenai
            | EmulatedCloud::Oci
            | EmulatedCloud::Bedrock
            | EmulatedCloud::Vertex
            | EmulatedCloud::Anthropic => {
                format!("http://{}", self.addr)
            }
        }
    }

    /// Vertex: a service-account key file (JSON) for this emulator, its `token_uri` pointing
    /// at the emulator's own `/token`. `None` for other clouds.
    pub fn service_account_json(&self) -> Option<String> {
        let v = self.shared.config.vertex.as_ref()?;
        Some(v.service_account_json(&format!("http://{}/token", self.addr)))
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Fault-injection knobs.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request that reached a model endpoint (not the token endpoint or the control
    /// plane), oldest first. Requests to unknown paths are included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.all()
    }

    /// Number of recorded requests.
    pub fn request_count(&self) -> usize {
        self.shared.recorder.len()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Stop serving: the listener is closed and open connections are aborted. Idempotent.
    pub fn shutdown(&self) {
        self.task.abort();
    }

    /// Whether [`EmulatorHandle::shutdown`] was called (or the server task ended).
    pub fn is_shut_down(&self) -> bool {
        self.task.is_finished()
    }
}

/// Serve `config` on `listener` in a background task (needs a Tokio runtime).
pub async fn spawn(
    config: EmulatorConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<EmulatorHandle> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        config,
        faults: Faults::new(),
        recorder: record::Recorder::default(),
        prompt_cache: prompt_cache::PromptCache::default(),
        reported: Mutex::default(),
        tokens: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
    });
    let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
    tracing::debug!(%addr, cloud = ?shared.config.cloud, name = %shared.config.name, "emulator started");
    Ok(EmulatorHandle {
        addr,
        shared,
        task: Arc::new(task.abort_handle()),
    })
}

/// Bind `127.0.0.1:port` (0 = any free port) and [`spawn`] on it.
pub async fn spawn_on_port(config: EmulatorConfig, port: u16) -> std::io::Result<EmulatorHandle> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    spawn(config, listener).await
}
