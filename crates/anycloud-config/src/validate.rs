//! Cross-checks a parsed [`Config`]: references resolve, each provider has
//! the keys it needs, windows are ordered. Reports every problem, not the
//! first.

use crate::{CloudConfig, Config, Problem};
use anycloud_types::ProviderKind;
use std::collections::HashSet;

/// Shortest admin token `config check` and `serve` accept.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;
/// Longest `[responses] retention_days`.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

pub fn validate(c: &Config) -> Vec<Problem> {
    let mut v = Validator { problems: vec![] };
    v.server(c);
    v.routing(c);
    v.clouds(c);
    let clouds: HashSet<&str> = c.clouds.iter().map(|c| c.name.as_str()).collect();
    let models: HashSet<&str> = c.models.iter().map(|m| m.name.as_str()).collect();
    v.models(c, &clouds);
    v.agreements(c, &clouds, &models);
    v.tenants(c, &clouds, &models);
    crate::mcp::validate_servers(&c.mcp_servers, &mut v.problems);
    let mcp_servers: HashSet<&str> = c.mcp_servers.iter().map(|s| s.name.as_str()).collect();
    for (i, t) in c.tenants.iter().enumerate() {
        if let Some(p) = &t.mcp {
            v.problems
                .extend(p.problems(&format!("tenants[{i}].mcp"), &mcp_servers));
        }
    }
    crate::telemetry::validate(c, &mut v.problems);
    crate::residency::validate(c, &mut v.problems);
    v.problems
}

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn push(&mut self, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            key,
            line: None,
            message: message.into(),
        });
    }

    fn server(&mut self, c: &Config) {
        if c.server.listen.parse::<std::net::SocketAddr>().is_err() {
            self.push(
                "server.listen".into(),
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    c.server.listen
                ),
            );
        }
        self.admin_token(c);
        self.audit_keys(c);
        // Purge arithmetic adds this many days to a date: bounded so it cannot overflow.
        if !(1..=MAX_RETENTION_DAYS).contains(&c.responses.retention_days) {
            self.push(
                "responses.retention_days".into(),
                format!("must be between 1 and {MAX_RETENTION_DAYS} (ten years)"),
            );
        }
        if c.server.max_body_bytes == 0 {
            self.push("server.max_body_bytes".into(), "must be greater than 0");
        }
        let url = c.store.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.push(
                "store.url".into(),
                "must start with sqlite:// or postgres://",
            );
        }
        self.redis(c);
    }

    /// The admin token opens the admin API and the dashboard (drain, restore, the audit
    /// log, the ledger): an empty or short one (`"${VAR}"` with `VAR` set but empty, say)
    /// would let anyone in, so the gateway refuses to start with it.
    fn admin_token(&mut self, c: &Config) {
        use secrecy::ExposeSecret;
        let tokens = [
            ("server.admin_token", &c.server.admin_token),
            ("server.metrics_token", &c.server.metrics_token),
        ];
        for (key, token) in tokens {
            let Some(token) = token else { continue };
            let len = token.expose_secret().chars().count();
            if len < MIN_ADMIN_TOKEN_CHARS {
                // The length is no secret worth keeping; the token itself never appears.
                self.push(
                    key.into(),
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters (it has {len}); \
                         generate one with `openssl rand -hex 32`, or remove the key to \
                         disable what it opens"
                    ),
                );
            }
        }
        if let Some(listen) = &c.server.metrics_listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                self.push(
                    "server.metrics_listen".into(),
                    format!("`{listen}` is not an address like 127.0.0.1:9464"),
                );
            }
        }
    }

    fn audit_keys(&mut self, c: &Config) {
        use base64::Engine as _;
        use secrecy::ExposeSecret;
        let a = &c.audit;
        let id_ok = |id: &str| {
            !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        };
        let mut keys: Vec<(String, &secrecy::SecretString, &str)> = a
            .old_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("audit.old_keys[{i}]"), &k.key, k.id.as_str()))
            .collect();
        if let Some(k) = &a.key {
            keys.push(("audit.key".into(), k, a.key_id.as_str()));
        }
        for (path, key, id) in keys {
            let long_enough = base64::engine::general_purpose::STANDARD
                .decode(key.expose_secret().trim())
                .is_ok_and(|b| b.len() >= 32);
            if !long_enough {
                self.push(
                    path.clone(),
                    "must be base64 of at least 32 random bytes (`openssl rand -base64 32`)",
                );
            }
            if !id_ok(id) {
                self.push(
                    path,
                    format!("key id `{id}` must be 1 to 32 letters, digits, `-` or `_`"),
                );
            }
        }
    }

    fn redis(&mut self, c: &Config) {
        use secrecy::ExposeSecret;
        if let Some(url) = &c.store.redis_url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                // Never echo the URL: it may carry a password.
                self.push(
                    "store.redis_url".into(),
                    "must start with redis:// or rediss:// (TLS)",
                );
            }
        }
        let p = &c.store.redis_prefix;
        if p.is_empty() || p.len() > 64 || p.chars().any(|ch| ch.is_whitespace() || ch.is_control())
        {
            self.push(
                "store.redis_prefix".into(),
                "must be 1 to 64 characters without spaces, like \"anycloud:prod:\"",
            );
        }
        if c.store.reservation_lease_ms == Some(0) {
            self.push(
                "store.reservation_lease_ms".into(),
                "must be at least 1 ms (unset: server.request_timeout_ms + 60 s)",
            );
        }
        if c.store.queue_bound < 100 {
            self.push("store.queue_bound".into(), "must be at least 100 records");
        }
        if c.store.spill_max_bytes < 1 << 20 {
            self.push(
                "store.spill_max_bytes".into(),
                "must be at least 1048576 (1 MiB)",
            );
        }
    }

    fn routing(&mut self, c: &Config) {
        let b = &c.routing.breaker;
        if b.consecutive_failures == 0 {
            self.push(
                "routing.breaker.consecutive_failures".into(),
                "must be at least 1",
            );
        }
        if !(b.error_rate > 0.0 && b.error_rate <= 1.0) {
            self.push(
                "routing.breaker.error_rate".into(),
                "must be greater than 0 and at most 1",
            );
        }
        if b.window == 0 {
            self.push("routing.breaker.window".into(), "must be at least 1");
        }
        if b.min_requests > b.window {
            self.push(
                "routing.breaker.min_requests".into(),
                "must not exceed routing.breaker.window",
            );
        }
        if b.cool_down_ms == 0 {
            self.push(
                "routing.breaker.cool_down_ms".into(),
                "must be greater than 0",
            );
        }
        let r = &c.routing.retry;
        if r.max_attempts == 0 {
            self.push("routing.retry.max_attempts".into(), "must be at least 1");
        }
        if r.budget_ratio.is_some_and(|x| !(x >= 0.0 && x.is_finite())) {
            self.push(
                "routing.retry.budget_ratio".into(),
                "must be a number of at least 0",
            );
        }
        if r.backoff_base_ms > r.backoff_max_ms {
            self.push(
                "routing.retry.backoff_base_ms".into(),
                "must not exceed routing.retry.backoff_max_ms",
            );
        }
        if c.routing
            .resume_max_setting
            .is_some_and(|n| !(1..=5).contains(&n))
        {
            self.push(
                "routing.resume_max".into(),
                "must be between 1 and 5 (turn routing.resume_streams off to disable resuming)",
            );
        }
        if c.routing.hedge_after_ms == Some(0) {
            self.push(
                "routing.hedge_after_ms".into(),
                "must be greater than 0 (leave it out to disable hedging)",
            );
        }
    }

    fn clouds(&mut self, c: &Config) {
        let mut seen = HashSet::new();
        for (i, cloud) in c.clouds.iter().enumerate() {
            let at = |k: &str| format!("clouds[{i}].{k}");
            if cloud.name.is_empty()
                || !cloud
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                self.push(at("name"), "must be non-empty letters, digits, `-` or `_`");
            }
            if !seen.insert(cloud.name.as_str()) {
                self.push(
                    at("name"),
                    format!("cloud `{}` is defined twice", cloud.name),
                );
            }
            if let Some(u) = &cloud.base_url {
                match url::Url::parse(u) {
                    Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {}
                    _ => self.push(at("base_url"), format!("`{u}` is not an http(s) URL")),
                }
            }
            self.provider_keys(i, cloud);
        }
    }

    fn provider_keys(&mut self, i: usize, cloud: &CloudConfig) {
        let at = |k: &str| format!("clouds[{i}].{k}");
        let p = cloud.provider;
        match p {
            ProviderKind::Openai | ProviderKind::Anthropic => {
                if cloud.api_key.is_none() {
                    self.push(at("api_key"), format!("required for provider `{p}`"));
                }
            }
            ProviderKind::OpenaiCompatible => {
                if cloud.base_url.is_none() {
                    self.push(
                        at("base_url"),
                        "required for provider `openai_compatible` (include the /v1 prefix)",
                    );
                }
            }
            ProviderKind::AzureOpenai => {
                if cloud.base_url.is_none() {
                    self.push(
                        at("base_url"),
                        "required for provider `azure_openai` (https://<resource>.openai.azure.com)",
                    );
                }
                if cloud.api_version.is_none() {
                    self.push(
                        at("api_version"),
                        "required for provider `azure_openai` (e.g. 2024-10-21)",
                    );
                }
                let entra = [
                    cloud.tenant_id.is_some(),
                    cloud.client_id.is_some(),
                    cloud.client_secret.is_some(),
                ];
                let entra_any = entra.iter().any(|b| *b);
                let entra_all = entra.iter().all(|b| *b);
                if entra_any && !entra_all {
                    self.push(
                        at("client_secret"),
                        "Entra ID needs all of tenant_id, client_id and client_secret",
                    );
                }
                if cloud.api_key.is_none() && cloud.azure_ad_token.is_none() && !entra_all {
                    self.push(
                        at("api_key"),
                        "provider `azure_openai` needs api_key, azure_ad_token, or tenant_id + client_id + client_secret",
                    );
                }
            }
            ProviderKind::Bedrock => {
                if cloud.region.is_none() {
                    self.push(at("region"), "required for provider `bedrock`");
                }
                if cloud.access_key_id.is_some() != cloud.secret_access_key.is_some() {
                    self.push(
                        at("secret_access_key"),
                        "access_key_id and secret_access_key go together",
                    );
                }
            }
            ProviderKind::Vertex => {
                if cloud.api_key.is_none() {
                    if cloud.project_id.is_none() {
                        self.push(
                            at("project_id"),
                            "required for provider `vertex` without api_key",
                        );
                    }
                    if cloud.region.is_none() {
                        self.push(
                            at("region"),
                            "required for provider `vertex` without api_key",
                        );
                    }
                }
            }
            ProviderKind::Oci => {
                for (k, present) in [
                    ("region", cloud.region.is_some()),
                    ("tenancy", cloud.tenancy.is_some()),
                    ("user", cloud.user.is_some()),
                    ("fingerprint", cloud.fingerprint.is_some()),
                    ("key_file", cloud.key_file.is_some()),
                    ("compartment_id", cloud.compartment_id.is_some()),
                ] {
                    if !present {
                        self.push(at(k), "required for provider `oci`");
                    }
                }
            }
        }
    }

    fn models(&mut self, c: &Config, clouds: &HashSet<&str>) {
        let mut seen = HashSet::new();
        for (i, m) in c.models.iter().enumerate() {
            if m.name.is_empty() {
                self.push(format!("models[{i}].name"), "must not be empty");
            }
            if !seen.insert(m.name.as_str()) {
                self.push(
                    format!("models[{i}].name"),
                    format!("model `{}` is defined twice", m.name),
                );
            }
            if m.deployments.is_empty() {
                self.push(
                    format!("models[{i}].deployments"),
                    format!("model `{}` has no deployments", m.name),
                );
            }
            for (j, d) in m.deployments.iter().enumerate() {
                let at = |k: &str| format!("models[{i}].deployments[{j}].{k}");
                if !clouds.contains(d.cloud.as_str()) {
                    self.push(at("cloud"), format!("unknown cloud `{}`", d.cloud));
                }
                if d.target.is_empty() {
                    self.push(at("target"), "must not be empty");
                }
                let provider = c
                    .clouds
                    .iter()
                    .find(|x| x.name == d.cloud)
                    .map(|x| x.provider);
                if let Some(kind) = provider.filter(|k| {
                    d.capabilities
                        .contains(&anycloud_types::Capability::Prefill)
                        && !prefill_possible(*k)
                }) {
                    self.push(
                        at("capabilities"),
                        format!(
                            "`prefill` is not possible on {kind} clouds: their chat API answers a \
                             final assistant message instead of continuing it"
                        ),
                    );
                }
                if let Some(kind) = provider.filter(|k| {
                    d.prompt_cache == crate::PromptCacheMode::Auto
                        && !crate::prompt_cache::serves_claude(*k, &d.target)
                }) {
                    self.push(
                        at("prompt_cache"),
                        format!(
                            "`auto` marks Claude's cache breakpoints, and `{}` on {kind} is not \
                             Claude: OpenAI, Azure OpenAI and Gemini cache by themselves",
                            d.target
                        ),
                    );
                }
                if let (Some(from), Some(until)) = (d.valid_from, d.valid_until) {
                    if from > until {
                        self.push(at("valid_until"), "is before valid_from");
                    }
                }
                let p = d.price;
                if p.input_per_mtok < 0.0
                    || p.output_per_mtok < 0.0
                    || [
                        p.cached_input_per_mtok,
                        p.cache_write_per_mtok,
                        p.cache_write_1h_per_mtok,
                    ]
                    .iter()
                    .any(|x| x.is_some_and(|x| x < 0.0))
                {
                    self.push(at("price"), "prices must not be negative");
                }
            }
        }
    }

    fn agreements(&mut self, c: &Config, clouds: &HashSet<&str>, models: &HashSet<&str>) {
        let a = &c.agreements;
        if let Some(p) = &a.primary {
            if !clouds.contains(p.cloud.as_str()) {
                self.push(
                    "agreements.primary.cloud".into(),
                    format!("unknown cloud `{}`", p.cloud),
                );
            }
        }
        if let Some(p) = &a.primary {
            for (j, m) in p.declined_models.iter().enumerate() {
                if !models.contains(m.as_str()) {
                    self.push(
                        format!("agreements.primary.declined_models[{j}]"),
                        format!("unknown model `{m}`"),
                    );
                }
            }
        }
        for (i, e) in a.exclusive.iter().enumerate() {
            if let (Some(from), Some(until)) = (e.from, e.until) {
                if from > until {
                    self.push(
                        format!("agreements.exclusive[{i}].until"),
                        "is before `from`",
                    );
                }
            }
            if !clouds.contains(e.cloud.as_str()) {
                self.push(
                    format!("agreements.exclusive[{i}].cloud"),
                    format!("unknown cloud `{}`", e.cloud),
                );
            }
            if !models.contains(e.model.as_str()) {
                self.push(
                    format!("agreements.exclusive[{i}].model"),
                    format!("unknown model `{}`", e.model),
                );
            }
        }
        for (i, r) in a.revenue_share.iter().enumerate() {
            if !(0.0..=100.0).contains(&r.percent) {
                self.push(
                    format!("agreements.revenue_share[{i}].percent"),
                    "must be between 0 and 100",
                );
            }
            if r.cap_usd.is_some_and(|x| x < 0.0) {
                self.push(
                    format!("agreements.revenue_share[{i}].cap_usd"),
                    "must not be negative",
                );
            }
        }
        for (i, k) in a.commitment.iter().enumerate() {
            if !clouds.contains(k.cloud.as_str()) {
                self.push(
                    format!("agreements.commitment[{i}].cloud"),
                    format!("unknown cloud `{}`", k.cloud),
                );
            }
            if k.from >= k.to {
                self.push(
                    format!("agreements.commitment[{i}].to"),
                    "must be after `from`",
                );
            }
        }
    }

    fn tenants(&mut self, c: &Config, clouds: &HashSet<&str>, models: &HashSet<&str>) {
        let mut seen = HashSet::new();
        for (i, t) in c.tenants.iter().enumerate() {
            if t.name.is_empty() {
                self.push(format!("tenants[{i}].name"), "must not be empty");
            }
            if !seen.insert(t.name.as_str()) {
                self.push(
                    format!("tenants[{i}].name"),
                    format!("tenant `{}` is defined twice", t.name),
                );
            }
            for (j, m) in t.models.iter().flatten().enumerate() {
                if !models.contains(m.as_str()) {
                    self.push(
                        format!("tenants[{i}].models[{j}]"),
                        format!("unknown model `{m}`"),
                    );
                }
            }
            for (j, cl) in t.clouds.iter().flatten().enumerate() {
                if !clouds.contains(cl.as_str()) {
                    self.push(
                        format!("tenants[{i}].clouds[{j}]"),
                        format!("unknown cloud `{cl}`"),
                    );
                }
            }
            if let Some(b) = t.budget {
                if b.usd < 0.0 {
                    self.push(format!("tenants[{i}].budget.usd"), "must not be negative");
                }
            }
        }
        if c.capture.key.is_none() {
            if let Some((i, t)) = c.tenants.iter().enumerate().find(|(_, t)| t.capture) {
                self.push(
                    format!("tenants[{i}].capture"),
                    format!(
                        "tenant `{}` captures payloads, so `[capture] key` (base64 of 32 bytes) is required",
                        t.name
                    ),
                );
            }
        }
    }
}

/// Whether a provider's chat API continues a final assistant message (README "Streams
/// that survive a cloud failing"): Anthropic, Claude on Bedrock and Vertex, Gemini, and
/// OpenAI-compatible servers such as vLLM (`continue_final_message`); not OpenAI, Azure
/// OpenAI or OCI chat.
pub fn prefill_possible(kind: anycloud_types::ProviderKind) -> bool {
    use anycloud_types::ProviderKind as K;
    matches!(
        kind,
        K::Anthropic | K::Bedrock | K::Vertex | K::OpenaiCompatible
    )
}
