//! The OTLP/HTTP (protobuf) span exporter and the `tracing` layer that feeds
//! it, built from `[telemetry]`; and the hook that sends each attempt's trace
//! context upstream.
//!
//! Spans are batched on the SDK's own thread and posted with a blocking
//! reqwest client (the workspace's reqwest with rustls), so exporting never
//! runs on the request path. [`TraceExport::shutdown`] flushes what is left;
//! `serve` calls it after the server has drained on SIGTERM.

use super::TARGET;
use anycloud_config::TelemetryConfig;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing::{Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct ExportError(String);

/// A running exporter; shut it down to flush the last spans.
#[derive(Debug)]
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// The exporter for `config`, or `None` when tracing is off.
    pub fn start(
        config: &TelemetryConfig,
    ) -> Result<Option<(TraceExport, SdkTracer)>, ExportError> {
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ExportError(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            // A client's sampled trace is followed; new traces keep `sample_ratio`.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("anycloud");
        install_propagation();
        Ok(Some((TraceExport { provider }, tracer)))
    }

    /// Exports every span still queued, then stops. Blocks: call it outside
    /// the async runtime or on a blocking thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
    }
}

/// The layer that turns the gateway's spans into OpenTelemetry spans. It sees
/// only spans made by [`super::Tracing`] (and warnings logged inside them,
/// as span events), not every library's spans.
pub fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter_fn(|m| {
            if m.is_span() {
                m.target() == TARGET
            } else {
                m.target().starts_with("anycloud") && *m.level() <= Level::WARN
            }
        }))
}

/// Makes providers send the current attempt span's context as `traceparent`
/// (instead of the client's header as it came).
pub fn install_propagation() {
    anycloud_providers::trace_context::set_source(current_traceparent);
}

/// W3C `traceparent` of the current span, when it has a valid context.
fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}
