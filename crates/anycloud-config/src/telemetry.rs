//! `[telemetry]` (OpenTelemetry traces over OTLP/HTTP, opt-in) and `server.log_format`.
//! The server's `telemetry` module turns these into an exporter and log layers.

use crate::{Config, Problem};
use serde::Deserialize;

/// `[telemetry]`: traces are exported only when `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL (an OpenTelemetry Collector, Jaeger, Tempo…), e.g.
    /// `http://127.0.0.1:4318`; spans go to `<endpoint>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces kept, 0.0–1.0. A client's sampled `traceparent` is always followed.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

fn default_service_name() -> String {
    "anycloud".into()
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
        }
    }
}

impl TelemetryConfig {
    /// The OTLP/HTTP traces URL, when tracing is on.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_deref()
            .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
    }
}

/// `server.log_format`: `text` for terminals (the default) or `json` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub(crate) fn validate(c: &Config, problems: &mut Vec<Problem>) {
    let t = &c.telemetry;
    let mut push = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            line: None,
            message,
        })
    };
    if let Some(e) = &t.otlp_endpoint {
        match url::Url::parse(e) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    push(
                        "telemetry.otlp_endpoint",
                        "must not carry credentials in the URL".into(),
                    );
                }
            }
            _ => push(
                "telemetry.otlp_endpoint",
                format!("`{e}` is not an http(s) URL like http://127.0.0.1:4318"),
            ),
        }
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        push(
            "telemetry.sample_ratio",
            format!("must be between 0.0 and 1.0, got {}", t.sample_ratio),
        );
    }
    let name_ok = !t.service_name.is_empty()
        && t.service_name.len() <= 64
        && t.service_name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
    if !name_ok {
        push(
            "telemetry.service_name",
            "must be 1-64 characters of letters, digits, `-`, `_` or `.`".into(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::parse_str;
    use std::path::Path;

    const BASE: &str = "[[clouds]]\nname = \"c\"\nprovider = \"openai_compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigError> {
        parse_str(&format!("{extra}\n{BASE}"), Path::new("t.toml"), &|_| None)
    }

    #[test]
    fn telemetry_is_off_and_logs_are_text_by_default() {
        let c = parse("").unwrap();
        assert_eq!(c.telemetry.traces_url(), None);
        assert_eq!(c.telemetry.service_name, "anycloud");
        assert_eq!(c.server.log_format, crate::LogFormat::Text);
    }

    #[test]
    fn a_valid_telemetry_section_parses() {
        let c = parse(
            "[server]\nlog_format = \"json\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\nservice_name = \"gw-eu\"\nsample_ratio = 0.25\n",
        )
        .unwrap();
        assert_eq!(
            c.telemetry.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(c.telemetry.sample_ratio, 0.25);
        assert_eq!(c.server.log_format, crate::LogFormat::Json);
    }

    #[test]
    fn bad_telemetry_values_are_each_reported_with_their_line() {
        let e = parse(
            "[telemetry]\notlp_endpoint = \"grpc://collector\"\nservice_name = \"has space\"\nsample_ratio = 1.5\n",
        )
        .unwrap_err();
        let text = e.to_string();
        for (key, line) in [
            ("telemetry.otlp_endpoint", 2),
            ("telemetry.service_name", 3),
            ("telemetry.sample_ratio", 4),
        ] {
            assert!(text.contains(&format!("t.toml:{line}: `{key}`")), "{text}");
        }
        assert!(parse("[server]\nlog_format = \"xml\"\n").is_err());
        assert!(
            parse("[telemetry]\notlp_endpoint = \"http://u:p@h:4318\"\n")
                .unwrap_err()
                .to_string()
                .contains("credentials")
        );
    }
}
