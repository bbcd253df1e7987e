//! The typed shape of `anycloud.toml` (README "Configuration").
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. Secrets are `SecretString`, whose `Debug` prints
//! `[REDACTED]`.

use anycloud_types::{Capability, ProviderKind};
use chrono::NaiveDate;
use secrecy::SecretString;
use serde::Deserialize;

use crate::{RoutingConfig, StoreConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub clouds: Vec<CloudConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub agreements: AgreementsConfig,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub responses: ResponsesConfig,
    /// Payload capture for tenants with `capture = true`.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// The audit chain's HMAC key.
    #[serde(default)]
    pub audit: AuditConfig,
    /// OpenTelemetry trace export (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// Upstream MCP servers behind `/mcp`.
    #[serde(default)]
    pub mcp_servers: Vec<crate::mcp::McpServerConfig>,
}

/// Stored state of the Responses API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// Days a stored response is kept; expired ones are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    30
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            retention_days: default_retention_days(),
        }
    }
}

/// `[audit]`: the HMAC-SHA-256 key of the audit chain (README "Security"). Without it
/// the chain is plain SHA-256, which anyone who can write the database can recompute.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Base64 of at least 32 random bytes.
    pub key: Option<SecretString>,
    /// Written into each entry's hash (`<key_id>:<hmac>`), so keys can rotate.
    #[serde(default = "default_audit_key_id")]
    pub key_id: String,
    /// Retired keys, still used to verify older entries.
    #[serde(default)]
    pub old_keys: Vec<CaptureKey>,
}

fn default_audit_key_id() -> String {
    "a1".into()
}

/// `[capture]`: the AES-256-GCM key that seals captured bodies, and redaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Base64 of 32 bytes; required when any tenant captures.
    pub key: Option<SecretString>,
    /// Stored beside each record, so keys can rotate.
    #[serde(default = "default_capture_key_id")]
    pub key_id: String,
    /// Retired keys, still used to decrypt older records.
    #[serde(default)]
    pub old_keys: Vec<CaptureKey>,
    /// Mask e-mail addresses, phone numbers and card numbers before sealing.
    #[serde(default)]
    pub redact: bool,
}

fn default_capture_key_id() -> String {
    "k1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureKey {
    pub id: String,
    pub key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub admin_token: Option<SecretString>,
    /// Bearer token for `GET /metrics` on the main listener (the admin token works too).
    pub metrics_token: Option<SecretString>,
    /// A second, internal listener serving only `/metrics`, without auth, for a
    /// Prometheus on the same host or network (e.g. `127.0.0.1:9464`).
    pub metrics_listen: Option<String>,
    /// Mark the dashboard's session cookie `Secure` (send it over HTTPS only). Turn it on
    /// when the gateway is reached through a TLS-terminating proxy.
    #[serde(default)]
    pub secure_cookies: bool,
    /// Failed admin-token attempts one client address may make per minute (admin API,
    /// dashboard login, `/metrics`) before it gets 429s for the rest of the minute;
    /// 0 turns the throttle off.
    #[serde(default = "default_admin_auth_failures")]
    pub admin_auth_failures_per_minute: u32,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Overall deadline for one client request across all attempts.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Output tokens assumed for a request without `max_tokens` when reserving its
    /// worst-case cost against a budget.
    #[serde(default = "default_max_output_tokens")]
    pub default_max_output_tokens: u64,
    /// `text` (default) or `json` lines; `--log-format` and `ANYCLOUD_LOG_FORMAT` override it.
    #[serde(default)]
    pub log_format: crate::telemetry::LogFormat,
}

fn default_max_output_tokens() -> u64 {
    4096
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    10 * 1024 * 1024
}
fn default_request_timeout() -> u64 {
    600_000
}

fn default_admin_auth_failures() -> u32 {
    10
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_token: None,
            metrics_token: None,
            metrics_listen: None,
            secure_cookies: false,
            admin_auth_failures_per_minute: default_admin_auth_failures(),
            max_body_bytes: default_max_body(),
            request_timeout_ms: default_request_timeout(),
            default_max_output_tokens: default_max_output_tokens(),
            log_format: Default::default(),
        }
    }
}

/// One upstream endpoint. Provider-specific keys are optional here and
/// required per provider by validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub name: String,
    pub provider: ProviderKind,
    pub base_url: Option<String>,
    pub region: Option<String>,
    pub jurisdiction: Option<String>,

    // openai / openai_compatible / azure_openai / anthropic / vertex (Gemini API key)
    pub api_key: Option<SecretString>,
    pub organization: Option<String>,
    pub project: Option<String>,

    // azure_openai
    pub api_version: Option<String>,
    /// A ready Entra ID access token (e.g. from a sidecar), sent as bearer.
    pub azure_ad_token: Option<SecretString>,
    /// Entra ID client-credentials: the gateway fetches and refreshes tokens.
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// Token authority, default `https://login.microsoftonline.com`.
    pub authority_host: Option<String>,

    // bedrock
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,

    // vertex
    pub project_id: Option<String>,
    pub credentials_file: Option<String>,

    // oci
    pub tenancy: Option<String>,
    pub user: Option<String>,
    pub fingerprint: Option<String>,
    pub key_file: Option<String>,
    pub compartment_id: Option<String>,

    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed until the first response byte (headers, and for streams
    /// the first event) before the attempt counts as a timeout.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout_ms: u64,
    /// Longest silence allowed between two stream chunks.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    5_000
}
fn default_first_byte_timeout() -> u64 {
    60_000
}
fn default_idle_timeout() -> u64 {
    60_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// Overrides `routing.resume_streams` for this model.
    pub resume_streams: Option<bool>,
}

/// USD per million tokens of each kind a cloud bills (README "Prompt caching").
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
    /// Price of prompt tokens read from the cloud's cache; defaults to `input_per_mtok`.
    pub cached_input_per_mtok: Option<f64>,
    /// Price of prompt tokens written to the cache with the five-minute TTL; defaults to
    /// `input_per_mtok`.
    pub cache_write_per_mtok: Option<f64>,
    /// Price of prompt tokens written with the one-hour TTL; defaults to
    /// `cache_write_per_mtok`.
    pub cache_write_1h_per_mtok: Option<f64>,
}

impl Price {
    /// The read price, defaults resolved.
    pub fn cached_input(&self) -> f64 {
        self.cached_input_per_mtok.unwrap_or(self.input_per_mtok)
    }

    /// The five-minute write price, defaults resolved.
    pub fn cache_write(&self) -> f64 {
        self.cache_write_per_mtok.unwrap_or(self.input_per_mtok)
    }

    /// The one-hour write price, defaults resolved.
    pub fn cache_write_1h(&self) -> f64 {
        self.cache_write_1h_per_mtok.unwrap_or(self.cache_write())
    }

    /// The same price with caching priced as plain input: what a usage would have cost had
    /// nothing been cached ("saved by caching" is the difference).
    pub fn uncached(&self) -> Price {
        Price {
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
            cache_write_1h_per_mtok: None,
        }
    }

    /// Cost in micro-dollars (tokens × USD per million) of one attempt's usage: cache reads,
    /// five-minute writes and one-hour writes at their own prices, the rest of the input at
    /// the input price; reasoning tokens are output and billed as such. The counts are
    /// clamped so a cloud's inconsistent report never bills a token twice.
    pub fn cost_micros(&self, usage: &anycloud_types::Usage) -> f64 {
        let read = usage.cached_input_tokens.min(usage.input_tokens);
        let write = usage.cache_write_tokens.min(usage.input_tokens - read);
        let write_1h = usage.cache_write_1h_tokens.min(write);
        let fresh = usage.input_tokens - read - write;
        fresh as f64 * self.input_per_mtok
            + read as f64 * self.cached_input()
            + (write - write_1h) as f64 * self.cache_write()
            + write_1h as f64 * self.cache_write_1h()
            + usage.output_tokens as f64 * self.output_per_mtok
    }

    /// Cost in USD of one attempt's usage at this price.
    pub fn cost(&self, usage: &anycloud_types::Usage) -> f64 {
        self.cost_micros(usage) / 1_000_000.0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    pub cloud: String,
    /// The cloud's own deployment or model id.
    pub target: String,
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub price: Price,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    /// Relative weight for the `weighted` strategy.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Context window in tokens, for the context-length check.
    pub context_window: Option<u64>,
    /// `"auto"`: the gateway marks cacheable prefixes itself (Claude deployments only;
    /// README "Prompt caching").
    #[serde(default)]
    pub prompt_cache: crate::PromptCacheMode,
}

fn default_capabilities() -> Vec<Capability> {
    vec![Capability::Chat, Capability::Stream]
}
fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementsConfig {
    pub primary: Option<PrimaryAgreement>,
    #[serde(default)]
    pub exclusive: Vec<ExclusiveAgreement>,
    #[serde(default)]
    pub revenue_share: Vec<RevenueShare>,
    #[serde(default)]
    pub commitment: Vec<Commitment>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryAgreement {
    pub cloud: String,
    #[serde(default)]
    pub ship_first: bool,
    #[serde(default)]
    pub declined_models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusiveAgreement {
    pub model: String,
    pub cloud: String,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueShare {
    pub party: String,
    pub percent: f64,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub cap_usd: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commitment {
    pub cloud: String,
    pub amount_usd: f64,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Day,
    Month,
    Total,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub usd: f64,
    pub period: BudgetPeriod,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    /// Jurisdictions the tenant's data may go to; absent = any.
    pub jurisdictions: Option<Vec<String>>,
    /// Models the tenant may use; absent = all.
    pub models: Option<Vec<String>>,
    /// Clouds the tenant may use; absent = all.
    pub clouds: Option<Vec<String>>,
    pub budget: Option<Budget>,
    pub rate_limit: Option<RateLimit>,
    /// Store request and response bodies (encrypted) for this tenant.
    #[serde(default)]
    pub capture: bool,
    /// MCP tools the tenant may call through `/mcp`; absent = none.
    #[serde(default)]
    pub mcp: Option<crate::mcp::McpPolicy>,
    /// The jurisdiction whose content store keeps this tenant's stored Responses and
    /// captured payloads; see [`TenantConfig::data_jurisdiction`] for the default.
    #[serde(default)]
    pub data_jurisdiction: Option<String>,
}

impl TenantConfig {
    /// Where the tenant's content lives: `data_jurisdiction` when set, else its one
    /// jurisdiction when `jurisdictions` names exactly one, else none.
    pub fn data_jurisdiction(&self) -> Option<&str> {
        if let Some(j) = &self.data_jurisdiction {
            return Some(j);
        }
        match self.jurisdictions.as_deref() {
            Some([only]) => Some(only),
            _ => None,
        }
    }
}
