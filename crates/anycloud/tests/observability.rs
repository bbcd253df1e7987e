//! Black-box observability of the real `anycloud serve` binary:
//!
//! - traces: an OTLP/HTTP receiver inside the test decodes the exported
//!   `ExportTraceServiceRequest`s; a request sent with a client `traceparent`
//!   yields a server span in the client's trace with one child per attempt,
//!   GenAI attributes, and each emulated cloud saw its attempt's context. The
//!   spans arrive only because SIGTERM flushes the exporter.
//! - logs: `--log-format json` prints JSON lines only, exactly one
//!   `anycloud::access` line per request (failures included), and neither the
//!   client's key nor the prompt text appears anywhere in the output.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");
const PROMPT: &str = "the secret plan is purple-elephant-42";

struct Gateway {
    child: Child,
    url: String,
    key: String,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

async fn emulator(name: &str) -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::openai_compatible(name, "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap()
}

fn config(dir: &Path, clouds: &[&EmulatorHandle], server: &str, extra: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[store]\nurl = \"sqlite://{}\"\n[routing]\nstrategy = \"priority\"\n[routing.retry]\nmax_attempts = 2\n{extra}\n",
        dir.join("gw.db").display()
    );
    for (i, c) in clouds.iter().enumerate() {
        text.push_str(&format!(
            "[[clouds]]\nname = \"c{i}\"\nprovider = \"openai_compatible\"\nbase_url = \"{}\"\napi_key = \"emu-key\"\n",
            c.base_url()
        ));
    }
    text.push_str("[[models]]\nname = \"gpt-4o\"\n");
    for i in 0..clouds.len() {
        text.push_str(&format!(
            "[[models.deployments]]\ncloud = \"c{i}\"\ntarget = \"gpt-4o\"\ncapabilities = [\"chat\", \"stream\"]\nprice = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}\n"
        ));
    }
    text.push_str("[[tenants]]\nname = \"t\"\n");
    let path = dir.join("anycloud.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: tempfile::TempDir, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let out = Command::new(BIN)
        .args(["keys", "create", "--config"])
        .arg(config)
        .args(["--tenant", "t"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(config).args(args);
    cmd.env_remove("ANYCLOUD_LOG_FORMAT")
        .env("ANYCLOUD_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // stdout and stderr both collected: nothing secret may appear on either.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let addr = wait_for(&lines, |l| {
        l.contains("anycloud listening").then(|| {
            let at = l.find("127.0.0.1:").unwrap();
            l[at..]
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .next()
                .unwrap()
                .to_string()
        })
    });
    Gateway {
        child,
        url: format!("http://{addr}"),
        key,
        lines,
        _dir: dir,
    }
}

fn wait_for<T>(lines: &Mutex<Vec<String>>, f: impl Fn(&str) -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = lines.lock().unwrap().iter().find_map(|l| f(l)) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "gateway did not start:\n{}",
        lines.lock().unwrap().join("\n")
    );
}

impl Gateway {
    /// SIGTERM, then wait for a clean exit; returns every output line.
    fn stop(mut self) -> Vec<String> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
        // The reader threads finish at EOF, right after the exit.
        std::thread::sleep(Duration::from_millis(200));
        let lines = self.lines.lock().unwrap().clone();
        lines
    }
}

async fn chat(
    g: &Gateway,
    stream: bool,
    key: &str,
    model: &str,
    traceparent: Option<&str>,
) -> (u16, String) {
    let mut rb = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(key)
        .json(&if stream {
            serde_json::json!({"model": model, "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": PROMPT}]})
        } else {
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]})
        });
    if let Some(tp) = traceparent {
        rb = rb.header("traceparent", tp);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let _ = resp.bytes().await.unwrap();
    (status, id)
}

// ---- traces ---------------------------------------------------------------------------

/// A minimal OTLP/HTTP trace receiver: `POST /v1/traces` with protobuf bodies.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    use axum::routing::post;
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        other => panic!("span {} has no {key}: {other:?}", span.name),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_and_attempt_spans_reach_otlp_in_the_clients_trace() {
    let (otlp, spans) = otlp_receiver().await;
    let failing = emulator("failing").await;
    let good = emulator("good").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &[&failing, &good],
        "log_format = \"json\"",
        &format!("[telemetry]\notlp_endpoint = \"{otlp}\"\nservice_name = \"gw-test\"\n"),
    );
    let g = start(dir, &cfg, &[], &[]);

    // The first cloud fails once: the request fails over, two attempts.
    failing.faults().fail_next(1, 503, None);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let tp = format!("00-{trace_id}-{client_span}-01");
    let (status, _) = chat(&g, false, &g.key.clone(), "gpt-4o", Some(&tp)).await;
    assert_eq!(status, 200);
    // A stream without a client context starts its own trace.
    let (status, _) = chat(&g, true, &g.key.clone(), "gpt-4o", None).await;
    assert_eq!(status, 200);
    // Nothing is exported yet (batches leave every 5 s): SIGTERM must flush.
    let lines = g.stop();
    // `server.log_format = "json"` alone switches the logs to JSON lines.
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }

    let spans = spans.lock().unwrap().clone();
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == trace_id)
        .collect();
    let request = in_trace
        .iter()
        .find(|s| s.name == "POST /v1/chat/completions")
        .unwrap_or_else(|| panic!("no request span in the client's trace: {spans:#?}"));
    assert_eq!(
        hex::encode(&request.parent_span_id),
        client_span,
        "request span is the client's child"
    );
    assert_eq!(request.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(attr_str(request, "gen_ai.operation.name"), "chat");
    assert_eq!(attr_str(request, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(attr_str(request, "gen_ai.response.model"), "gpt-4o");
    assert_eq!(attr_str(request, "gen_ai.system"), "openai");
    assert_eq!(attr_str(request, "http.response.status_code"), "200");
    assert!(
        attr_str(request, "gen_ai.usage.input_tokens")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(
        attr_str(request, "gen_ai.usage.output_tokens")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(
        attr_str(request, "anycloud.route"),
        "c0:failed(upstream_503) c1:ok"
    );

    let mut attempts: Vec<&&Span> = in_trace
        .iter()
        .filter(|s| s.parent_span_id == request.span_id)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "one child per attempt: {in_trace:#?}");
    for a in &attempts {
        assert_eq!(a.name, "chat gpt-4o");
        assert_eq!(a.kind, 3, "SPAN_KIND_CLIENT");
        assert_eq!(attr_str(a, "server.address"), "127.0.0.1");
        assert_eq!(attr_str(a, "gen_ai.request.model"), "gpt-4o");
    }
    assert_eq!(attr_str(attempts[0], "http.response.status_code"), "503");
    assert_eq!(attr_str(attempts[0], "error.type"), "upstream_503");
    assert_eq!(attr_str(attempts[1], "http.response.status_code"), "200");

    // Each cloud saw its own attempt's context, in the client's trace.
    for (emu, attempt) in [(&failing, attempts[0]), (&good, attempts[1])] {
        let seen: Vec<String> = emu
            .requests()
            .iter()
            .filter_map(|r| r.header("traceparent").map(str::to_string))
            .collect();
        let want = format!("00-{trace_id}-{}-01", hex::encode(&attempt.span_id));
        assert!(seen.contains(&want), "{want} not in {seen:?}");
    }

    // The stream's request span has its own trace, with its attempt under it.
    let stream_req = spans
        .iter()
        .find(|s| s.name == "POST /v1/chat/completions" && hex::encode(&s.trace_id) != trace_id)
        .expect("the stream's request span");
    assert!(stream_req.parent_span_id.is_empty());
    assert!(spans
        .iter()
        .any(|s| s.parent_span_id == stream_req.span_id && s.name == "chat gpt-4o"));
    assert!(
        attr_str(stream_req, "gen_ai.usage.output_tokens")
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

// ---- logs -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_have_one_access_line_per_request_and_no_secrets() {
    let cloud = emulator("only").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[&cloud], "", "");
    let g = start(dir, &cfg, &["--log-format", "json"], &[]);
    let key = g.key.clone();

    let mut sent: Vec<(String, u16)> = Vec::new();
    for (stream, key, model) in [
        (false, key.as_str(), "gpt-4o"),
        (true, key.as_str(), "gpt-4o"),
        (false, key.as_str(), "no-such-model"),
        (false, "ak-not-a-real-key-0123456789", "gpt-4o"),
    ] {
        let (status, id) = chat(&g, stream, key, model, None).await;
        sent.push((id, status));
    }
    // The only cloud fails (twice: one retry): a 503 for the client.
    cloud.faults().fail_next(2, 503, None);
    let (status, id) = chat(&g, false, &key, "gpt-4o", None).await;
    assert_eq!(status, 503);
    sent.push((id, status));
    let resp = reqwest::get(format!("{}/healthz", g.url)).await.unwrap();
    sent.push((
        resp.headers()["x-request-id"].to_str().unwrap().to_string(),
        200,
    ));
    assert_eq!(
        sent.iter().map(|s| s.1).collect::<Vec<_>>(),
        [200, 200, 404, 401, 503, 200]
    );

    let lines = g.stop();
    let all = lines.join("\n");
    assert!(!all.contains(&key), "the client key leaked into the output");
    assert!(!all.contains(PROMPT), "the prompt leaked into the output");
    assert!(
        !all.contains("emu-key"),
        "the cloud key leaked into the output"
    );

    let mut access = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        if v["target"] == "anycloud::access" {
            access.push(v["fields"].clone());
        }
    }
    assert_eq!(
        access.len(),
        sent.len(),
        "one access line per request:\n{all}"
    );
    for (id, status) in &sent {
        let found: Vec<_> = access
            .iter()
            .filter(|a| a["request_id"] == id.as_str())
            .collect();
        assert_eq!(found.len(), 1, "exactly one line for {id}");
        let a = found[0];
        assert_eq!(a["status"], *status, "{a}");
        for field in [
            "tenant",
            "key_id",
            "model",
            "cloud",
            "route",
            "input_tokens",
            "output_tokens",
            "latency_ms",
        ] {
            assert!(!a[field].is_null(), "{field} missing in {a}");
        }
    }
    let by_status = |s: u16| access.iter().find(|a| a["status"] == s).unwrap();
    let ok = &access[0];
    assert_eq!(ok["tenant"], "t");
    assert_eq!(ok["cloud"], "c0");
    assert_eq!(ok["model"], "gpt-4o");
    assert_eq!(ok["route"], "c0:ok");
    assert!(ok["input_tokens"].as_u64().unwrap() > 0 && ok["output_tokens"].as_u64().unwrap() > 0);
    assert!(ok["key_id"].as_str().unwrap().len() >= 6);
    let streamed = access
        .iter()
        .find(|a| a["request_id"] == sent[1].0.as_str())
        .unwrap();
    assert!(
        streamed["ttft_ms"].is_u64(),
        "a stream's line has its time to first token: {streamed}"
    );
    assert_eq!(
        by_status(404)["model"],
        "unknown",
        "a free-text model never reaches the log"
    );
    assert_eq!(by_status(401)["tenant"], "none");
    assert_eq!(
        by_status(503)["route"],
        "c0:failed(upstream_503) c0:failed(upstream_503)"
    );
}
