//! A small MCP server (rmcp, Streamable HTTP) for the gateway's tests and `anycloud
//! demo`: deterministic tools, one slow (with progress, cancellable), one failing.
//!
//! Tools:
//! - `echo {text}` → the text back;
//! - `add {a, b}` → the sum, as text and as structured content `{"sum": …}`;
//! - `lookup_order {order_id}` → a deterministic order record (structured);
//! - `slow {ms, steps}` → waits `ms` (default 500) in `steps` (default 5), sending a
//!   progress notification as each step starts (progress 0 … steps-1 of `steps`) when the
//!   client asked for progress; stops when the call is cancelled;
//! - `fail {}` → always a tool error (`isError: true`).
//!
//! `GET /_emulator/stats` answers `{"calls": {"<tool>": n}, "cancelled": n}`: what
//! reached the server, so tests can tell a refused call never did.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What reached the emulator.
#[derive(Debug, Default)]
pub struct McpStats {
    calls: Mutex<BTreeMap<String, u64>>,
    cancelled: Mutex<u64>,
}

impl McpStats {
    fn count(&self, tool: &str) {
        if let Ok(mut m) = self.calls.lock() {
            *m.entry(tool.to_string()).or_default() += 1;
        }
    }
    /// Calls that reached the server for `tool`.
    pub fn calls(&self, tool: &str) -> u64 {
        self.calls
            .lock()
            .ok()
            .and_then(|m| m.get(tool).copied())
            .unwrap_or(0)
    }
    pub fn json(&self) -> Value {
        let calls = self.calls.lock().map(|m| m.clone()).unwrap_or_default();
        let cancelled = self.cancelled.lock().map(|c| *c).unwrap_or(0);
        json!({"calls": calls, "cancelled": cancelled})
    }
}

#[derive(Debug, Clone)]
pub struct McpEmulator {
    stats: Arc<McpStats>,
}

fn schema(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The emulator's tools, in a fixed order.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Returns the text it was given.",
            schema(
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
        ),
        Tool::new(
            "add",
            "Adds two numbers.",
            schema(
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
            ),
        ),
        Tool::new(
            "lookup_order",
            "Looks up an order by id (deterministic fake data).",
            schema(
                json!({"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}),
            ),
        ),
        Tool::new(
            "slow",
            "Waits `ms` milliseconds in `steps` steps, reporting progress.",
            schema(
                json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 60000}, "steps": {"type": "integer", "minimum": 1, "maximum": 100}}}),
            ),
        ),
        Tool::new(
            "fail",
            "Always fails (a tool error).",
            schema(json!({"type": "object", "properties": {}})),
        ),
    ]
}

fn text(s: impl Into<String>) -> Vec<ContentBlock> {
    vec![ContentBlock::text(s)]
}

fn bad_args(msg: &str) -> ErrorData {
    ErrorData::invalid_params(msg.to_string(), None)
}

impl McpEmulator {
    pub fn new() -> McpEmulator {
        McpEmulator {
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<McpStats> {
        self.stats.clone()
    }

    async fn run(
        &self,
        name: &str,
        args: &Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        match name {
            "echo" => {
                let t = args
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_args("`text` (string) is required"))?;
                Ok(CallToolResult::success(text(t)))
            }
            "add" => {
                let n = |k: &str| args.get(k).and_then(Value::as_f64);
                let (Some(a), Some(b)) = (n("a"), n("b")) else {
                    return Err(bad_args("`a` and `b` (numbers) are required"));
                };
                let mut r = CallToolResult::structured(json!({"sum": a + b}));
                r.content = text(format!("{}", a + b));
                Ok(r)
            }
            "lookup_order" => {
                let id = args
                    .get("order_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_args("`order_id` (string) is required"))?;
                let digits: u64 = id.bytes().map(u64::from).sum();
                let status = ["shipped", "packed", "delivered"][(digits % 3) as usize];
                let order = json!({"order_id": id, "status": status,
                                   "items": 1 + digits % 4, "total_eur": (digits % 500) as f64 + 0.99});
                let mut r = CallToolResult::structured(order.clone());
                r.content = text(order.to_string());
                Ok(r)
            }
            "slow" => self.slow(args, ctx).await,
            "fail" => Ok(CallToolResult::error(text(
                "the emulator's `fail` tool always fails",
            ))),
            other => Err(ErrorData::invalid_params(
                format!("Unknown tool: {other}"),
                None,
            )),
        }
    }

    async fn slow(
        &self,
        args: &Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let ms = args
            .get("ms")
            .and_then(Value::as_u64)
            .unwrap_or(500)
            .min(60_000);
        let steps = args
            .get("steps")
            .and_then(Value::as_u64)
            .unwrap_or(5)
            .clamp(1, 100);
        let token = ctx.meta.get_progress_token();
        // Progress is reported as each step starts, so the last notification is well
        // ahead of the result (notifications that arrive after it are dropped by clients).
        for step in 0..steps {
            if let Some(t) = &token {
                let mut p = ProgressNotificationParam::new(t.clone(), step as f64);
                p.total = Some(steps as f64);
                p.message = Some(format!("step {} of {steps}", step + 1));
                let _ = ctx.peer.notify_progress(p).await;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms / steps)) => {}
                () = ctx.ct.cancelled() => {
                    if let Ok(mut c) = self.stats.cancelled.lock() {
                        *c += 1;
                    }
                    return Err(ErrorData::internal_error("cancelled", None));
                }
            }
        }
        Ok(CallToolResult::success(text(format!("waited {ms} ms"))))
    }
}

impl Default for McpEmulator {
    fn default() -> Self {
        McpEmulator::new()
    }
}

impl ServerHandler for McpEmulator {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("anycloud-mcp-emulator", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.stats.count(&request.name);
        let args = request.arguments.clone().unwrap_or_default();
        self.run(&request.name, &args, &ctx)
            .await
            .map(CallToolResponse::Complete)
    }
}

/// A running HTTP MCP emulator.
#[derive(Debug)]
pub struct McpEmulatorHandle {
    addr: SocketAddr,
    stats: Arc<McpStats>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl McpEmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The Streamable HTTP endpoint, `http://127.0.0.1:P/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
    pub fn stats(&self) -> &McpStats {
        &self.stats
    }
    pub fn shutdown(self) {
        let _ = self.stop.send(());
    }
}

/// Starts the emulator on 127.0.0.1:`port` (0 = any free port).
pub async fn spawn_mcp(port: u16) -> std::io::Result<McpEmulatorHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let emulator = McpEmulator::new();
    let stats = emulator.stats();
    let ct = tokio_util::sync::CancellationToken::new();
    let service = StreamableHttpService::new(
        move || Ok(emulator.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(ct.child_token()),
    );
    let app = Router::new()
        .route_service("/mcp", service)
        .route("/_emulator/stats", get(stats_handler))
        .with_state(stats.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                ct.cancel();
            })
            .await;
    });
    Ok(McpEmulatorHandle { addr, stats, stop })
}

async fn stats_handler(State(stats): State<Arc<McpStats>>) -> Json<Value> {
    Json(stats.json())
}

/// Serves the emulator over stdio (a child process of the gateway) until stdin closes.
pub async fn serve_stdio() -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let running = McpEmulator::new()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
