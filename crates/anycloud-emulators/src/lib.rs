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
//! [`EmulatedCloud::AzureOpenai`] (classic deployment URLs, v1 URLs, Entra ID tokens),
//! [`EmulatedCloud::Anthropic`] (`/v1/messages`).
//!
//! Every listener also serves a control plane that is neither recorded nor subject to faults:
//!
//! - `POST /_emulator/faults` with any of
//!   `{"fail_next":{"count":N,"status":503,"retry_after":2},
//!     "fail_rate":{"probability":0.3,"status":503}, "latency_ms":M, "chunk_delay_ms":M,
//!     "cut_stream_after":K (null turns it off), "refuse_connections":bool, "seed":S,
//!     "stream_error_after":K (null turns it off)}`;
//!   answers `{"ok":true}` or 400 `{"error":"..."}` (nothing is applied on error).
//! - `POST /_emulator/reset`: all faults off and the request log cleared.
//! - `GET /_emulator/stats`: `{"requests":N}`.

mod anthropic;
mod azure;
mod chat;
mod embeddings;
pub mod faults;
mod http;
mod openai;
pub mod record;
pub mod reply;
mod server;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use faults::{Faults, InjectedFailure};
pub use record::RecordedRequest;

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
    /// Anthropic's Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
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
        }
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
        }
    }

    /// Builder-style: enable the Entra ID token endpoint.
    pub fn with_entra(mut self, entra: EntraConfig) -> Self {
        self.entra = Some(entra);
        self
    }
}

/// State shared by the server tasks and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub faults: Faults,
    pub recorder: record::Recorder,
    tokens: Mutex<HashMap<String, Instant>>,
    seq: AtomicU64,
}

impl Shared {
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
    /// OpenAI-compatible, `http://127.0.0.1:PORT` for Azure (the "endpoint").
    pub fn base_url(&self) -> String {
        match self.shared.config.cloud {
            EmulatedCloud::OpenaiCompatible => format!("http://{}/v1", self.addr),
            EmulatedCloud::AzureOpenai | EmulatedCloud::Anthropic => {
                format!("http://{}", self.addr)
            }
        }
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
