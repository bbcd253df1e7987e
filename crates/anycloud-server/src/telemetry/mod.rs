//! Traces: one span per request (`request`, an HTTP server span) with one
//! child per upstream attempt (`attempt`, a GenAI client span), attributes
//! named by the OpenTelemetry HTTP and GenAI semantic conventions.
//!
//! Spans are created only when `[telemetry] otlp_endpoint` is set; otherwise
//! every helper here hands out `Span::none()`, which costs nothing. The
//! exporter and the subscriber layer live in [`export`]; the binary installs
//! them. A client's `traceparent` makes the request span its child, and each
//! attempt's own context is sent upstream (see [`export::install_propagation`]).
//!
//! Attribute values are names from the config, typed enums and counts — never
//! prompt text or keys.

pub mod export;

use crate::outcome::RequestOutcome;
use anycloud_config::Config;
use anycloud_types::ProviderKind;
use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span made here; the export layer keeps only these.
pub const TARGET: &str = "anycloud::trace";

#[derive(Debug, Clone)]
struct CloudAttrs {
    system: &'static str,
    address: Option<String>,
}

/// Span factory, built once from the config.
#[derive(Debug, Default)]
pub struct Tracing {
    enabled: bool,
    clouds: HashMap<String, CloudAttrs>,
}

/// `gen_ai.system` / `gen_ai.provider.name` for a cloud's provider kind.
pub fn gen_ai_system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => "openai",
        ProviderKind::AzureOpenai => "azure.ai.openai",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Vertex => "gcp.vertex_ai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Oci => "oci.generative_ai",
    }
}

/// `gen_ai.operation.name` for an ingress API.
pub fn operation(api: &str) -> &'static str {
    match api {
        "embeddings" => "embeddings",
        _ => "chat",
    }
}

impl Tracing {
    pub fn new(c: &Config) -> Tracing {
        let clouds = c
            .clouds
            .iter()
            .map(|cl| {
                let address = cl
                    .base_url
                    .as_deref()
                    .and_then(|u| url_host(u))
                    .map(str::to_string);
                (
                    cl.name.clone(),
                    CloudAttrs {
                        system: gen_ai_system(cl.provider),
                        address,
                    },
                )
            })
            .collect();
        Tracing {
            enabled: c.telemetry.otlp_endpoint.is_some(),
            clouds,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The request's span, a child of the client's `traceparent` when it sent
    /// a valid one. `route` is the matched route template, never the raw URL.
    pub fn request_span(&self, method: &str, route: &str, headers: &HeaderMap) -> Span {
        if !self.enabled {
            return Span::none();
        }
        let span = tracing::info_span!(
            target: TARGET,
            "request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = Empty,
            error.type = Empty,
            gen_ai.operation.name = Empty,
            gen_ai.system = Empty,
            gen_ai.provider.name = Empty,
            gen_ai.request.model = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            anycloud.request_id = Empty,
            anycloud.tenant = Empty,
            anycloud.cloud = Empty,
            anycloud.route = Empty,
        );
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer is installed: nothing to link then.
            let _ = span.set_parent(parent);
        }
        span
    }

    /// A child of the current (request) span for one attempt on `cloud`.
    pub fn attempt_span(&self, api: &str, cloud: &str, target: &str) -> Span {
        if !self.enabled {
            return Span::none();
        }
        let attrs = self.clouds.get(cloud);
        let system = attrs.map_or("unknown", |a| a.system);
        let op = operation(api);
        tracing::info_span!(
            target: TARGET,
            "attempt",
            otel.name = %format!("{op} {target}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = op,
            gen_ai.system = system,
            gen_ai.provider.name = system,
            gen_ai.request.model = %target,
            server.address = attrs.and_then(|a| a.address.as_deref()).unwrap_or(""),
            http.response.status_code = Empty,
            error.type = Empty,
            anycloud.cloud = %cloud,
        )
    }

    /// Ends an attempt's span with its result: `ok` or a reason code.
    pub fn attempt_result(&self, span: &Span, status: Option<u16>, outcome: &str) {
        if span.is_none() {
            return;
        }
        if let Some(s) = status {
            span.record("http.response.status_code", s);
        }
        if outcome != "ok" {
            span.record("error.type", outcome);
            span.record("otel.status_code", "error");
        }
    }

    /// Everything the request span learns when the request finishes.
    pub fn request_outcome(&self, span: &Span, o: &RequestOutcome) {
        if span.is_none() {
            return;
        }
        let usage = o.usage();
        span.record("gen_ai.operation.name", operation(o.api));
        span.record("gen_ai.request.model", o.model.as_str());
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
        span.record("anycloud.request_id", o.request_id.as_str());
        span.record("anycloud.tenant", o.tenant.as_str());
        span.record(
            "anycloud.route",
            anycloud_router::reason::header_value(&o.route).as_str(),
        );
        if let Some(ok) = o.attempts.iter().rev().find(|a| a.outcome == "ok") {
            span.record("gen_ai.response.model", ok.deployment.as_str());
            span.record("anycloud.cloud", ok.cloud.as_str());
            if let Some(a) = self.clouds.get(&ok.cloud) {
                span.record("gen_ai.system", a.system);
                span.record("gen_ai.provider.name", a.system);
            }
        }
        let error = (o.status >= 400).then(|| {
            o.attempts
                .iter()
                .rev()
                .find(|a| a.outcome != "ok")
                .map_or_else(|| o.status.to_string(), |a| a.outcome.clone())
        });
        self.response_status(span, o.status, error.as_deref());
    }

    /// The status the client got; 5xx marks the server span as failed.
    pub fn response_status(&self, span: &Span, status: u16, error: Option<&str>) {
        if span.is_none() {
            return;
        }
        span.record("http.response.status_code", status);
        if let Some(e) = error {
            span.record("error.type", e);
        }
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
}

/// Fills the request span from the finished request.
impl crate::outcome::OutcomeSink for Tracing {
    fn record(&self, o: &RequestOutcome) {
        self.request_outcome(&o.span, o);
    }
}

fn url_host(u: &str) -> Option<&str> {
    let rest = u.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_is_the_host_alone() {
        assert_eq!(
            url_host("https://contoso.openai.azure.com/x"),
            Some("contoso.openai.azure.com")
        );
        assert_eq!(
            url_host("http://user:pw@127.0.0.1:9100/v1"),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("http://[::1]:80"), Some("::1"));
        assert_eq!(url_host("not a url"), None);
    }

    #[test]
    fn spans_cost_nothing_when_tracing_is_off() {
        let t = Tracing::default();
        assert!(t
            .request_span("POST", "/v1/chat/completions", &HeaderMap::new())
            .is_none());
        assert!(t.attempt_span("chat_completions", "c", "m").is_none());
    }
}
