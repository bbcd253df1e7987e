//! One upstream MCP server: its connection (Streamable HTTP through [`super::http_client`]
//! or a child process over stdio, both rmcp client transports), its tool list, its drain
//! switch, and `tools/call` with progress and cancellation passed through.
//!
//! Connections are made at start in the background and again on first use after a
//! failure (a stdio server that exited is started anew), so one broken server never
//! blocks the gateway's start or another server's calls.

use super::http_client::ReqwestHttp;
use anycloud_config::McpServerConfig;
use arc_swap::ArcSwapOption;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, ProgressNotificationParam,
    ProgressToken, ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RoleClient, RoleServer, RunningService,
    ServiceError,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a call did not produce a tool result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("MCP server `{0}` is unavailable: {1}")]
    Unavailable(String, String),
    #[error("MCP server `{0}` did not answer within {1} ms")]
    Timeout(String, u64),
    #[error("cancelled by the client")]
    Cancelled,
    /// The server's own JSON-RPC error, passed back as is.
    #[error("{}", .0.message)]
    Upstream(rmcp::ErrorData),
}

impl CallError {
    /// The `outcome` label and audit value.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Unavailable(..) => "unavailable",
            CallError::Timeout(..) => "timeout",
            CallError::Cancelled => "cancelled",
            CallError::Upstream(_) => "upstream_error",
        }
    }
}

/// Where an upstream progress token's notifications go: the client's peer and its token.
type Route = (Peer<RoleServer>, ProgressToken);

/// Progress routes of one upstream connection (std Mutex: map access only, no await).
#[derive(Debug, Default)]
struct ProgressRoutes(Mutex<HashMap<ProgressToken, Route>>);

impl ProgressRoutes {
    fn insert(&self, upstream: ProgressToken, to: Route) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(upstream, to);
        }
    }
    fn remove(&self, upstream: &ProgressToken) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(upstream);
        }
    }
    fn get(&self, upstream: &ProgressToken) -> Option<Route> {
        self.0.lock().ok()?.get(upstream).cloned()
    }
}

/// The gateway as an MCP client of one upstream server.
#[derive(Debug, Clone)]
struct UpstreamClient {
    progress: Arc<ProgressRoutes>,
    tools_stale: Arc<AtomicBool>,
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("anycloud", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // A notification racing ahead of its route's registration is dropped: progress
        // is advisory and the call's result still arrives.
        let Some((peer, token)) = self.progress.get(&params.progress_token) else {
            return;
        };
        let mut out = params;
        out.progress_token = token;
        if let Err(e) = peer.notify_progress(out).await {
            tracing::debug!(error = %e, "progress not delivered to the MCP client");
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_stale.store(true, Ordering::Release);
    }
}

struct Connection {
    service: RunningService<RoleClient, UpstreamClient>,
}

pub struct Upstream {
    pub config: McpServerConfig,
    http: reqwest::Client,
    conn: ArcSwapOption<Connection>,
    tools: arc_swap::ArcSwap<Vec<Tool>>,
    /// Serialises (re)connecting; held across the handshake, never on the call path.
    connecting: tokio::sync::Mutex<()>,
    progress: Arc<ProgressRoutes>,
    tools_stale: Arc<AtomicBool>,
    drained: AtomicBool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.config.name)
            .finish()
    }
}

impl Upstream {
    pub fn new(config: McpServerConfig, http: reqwest::Client) -> Upstream {
        Upstream {
            config,
            http,
            conn: ArcSwapOption::empty(),
            tools: arc_swap::ArcSwap::default(),
            connecting: tokio::sync::Mutex::new(()),
            progress: Arc::default(),
            tools_stale: Arc::default(),
            drained: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Release);
    }

    /// `connected`, `disconnected` (not yet, or lost; the next use reconnects).
    pub fn connection_state(&self) -> &'static str {
        match self.conn.load().as_ref() {
            Some(c) if !c.service.is_closed() => "connected",
            _ => "disconnected",
        }
    }

    /// The server's tools (connecting first when needed; listed again after the server
    /// announced `notifications/tools/list_changed`).
    pub async fn tools(&self) -> Result<Arc<Vec<Tool>>, CallError> {
        let conn = self.connection().await?;
        if self.tools_stale.swap(false, Ordering::AcqRel) {
            let tools = Arc::new(self.list_tools(&conn.service).await?);
            self.tools.store(tools.clone());
            return Ok(tools);
        }
        Ok(self.tools.load_full())
    }

    async fn list_tools(
        &self,
        service: &RunningService<RoleClient, UpstreamClient>,
    ) -> Result<Vec<Tool>, CallError> {
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        match tokio::time::timeout(timeout, service.peer().list_all_tools()).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(self.service_error(e)),
            Err(_) => Err(CallError::Timeout(
                self.config.name.clone(),
                self.config.connect_timeout_ms,
            )),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, CallError> {
        if let Some(c) = self.conn.load_full() {
            if !c.service.is_closed() {
                return Ok(c);
            }
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            if !c.service.is_closed() {
                return Ok(c);
            }
        }
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let service = match tokio::time::timeout(timeout, self.connect()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(CallError::Timeout(
                    self.config.name.clone(),
                    self.config.connect_timeout_ms,
                ))
            }
        };
        self.tools_stale.store(false, Ordering::Release);
        let tools = self.list_tools(&service).await?;
        tracing::info!(server = %self.config.name, tools = tools.len(), "MCP server connected");
        self.tools.store(Arc::new(tools));
        let c = Arc::new(Connection { service });
        self.conn.store(Some(c.clone()));
        Ok(c)
    }

    async fn connect(&self) -> Result<RunningService<RoleClient, UpstreamClient>, CallError> {
        let handler = UpstreamClient {
            progress: self.progress.clone(),
            tools_stale: self.tools_stale.clone(),
        };
        let unavailable = |e: String| CallError::Unavailable(self.config.name.clone(), e);
        if let Some(url) = &self.config.url {
            let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            for (k, v) in &self.config.headers {
                let (Ok(name), Ok(mut value)) = (
                    http::HeaderName::try_from(k.as_str()),
                    http::HeaderValue::try_from(v.expose_secret()),
                ) else {
                    return Err(unavailable(format!(
                        "header `{k}` is not a valid HTTP header"
                    )));
                };
                value.set_sensitive(true);
                cfg.custom_headers.insert(name, value);
            }
            let transport =
                StreamableHttpClientTransport::with_client(ReqwestHttp(self.http.clone()), cfg);
            return handler
                .serve(transport)
                .await
                .map_err(|e| unavailable(e.to_string()));
        }
        let Some(program) = &self.config.command else {
            return Err(unavailable("neither `url` nor `command` is set".into()));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.config.args);
        for (k, v) in &self.config.env {
            cmd.env(k, v.expose_secret());
        }
        if let Some(dir) = &self.config.cwd {
            cmd.current_dir(dir);
        }
        let (transport, stderr) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| unavailable(format!("cannot start `{program}`: {e}")))?;
        if let Some(stderr) = stderr {
            forward_stderr(self.config.name.clone(), stderr);
        }
        handler
            .serve(transport)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Like [`Self::service_error`]; a closed transport (a stdio server that exited, an
    /// HTTP session gone) also drops the connection, so the next use connects anew.
    fn lost(&self, conn: &Arc<Connection>, e: ServiceError) -> CallError {
        if matches!(
            e,
            ServiceError::TransportClosed | ServiceError::TransportSend(_)
        ) {
            let current = self.conn.load_full();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                self.conn.store(None);
                tracing::warn!(server = %self.config.name, "MCP server connection lost; reconnecting on next use");
            }
        }
        self.service_error(e)
    }

    fn service_error(&self, e: ServiceError) -> CallError {
        match e {
            ServiceError::McpError(data) => CallError::Upstream(data),
            ServiceError::Timeout { .. } => {
                CallError::Timeout(self.config.name.clone(), self.config.call_timeout_ms)
            }
            ServiceError::Cancelled { .. } => CallError::Cancelled,
            other => CallError::Unavailable(self.config.name.clone(), other.to_string()),
        }
    }

    /// Calls `tool` (the server's own name). Progress notifications for it go to
    /// `progress_to`; cancelling `ct` sends `notifications/cancelled` upstream.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Option<rmcp::model::JsonObject>,
        progress_to: Option<Route>,
        ct: CancellationToken,
    ) -> Result<CallToolResult, CallError> {
        let conn = self.connection().await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let options =
            PeerRequestOptions::with_timeout(Duration::from_millis(self.config.call_timeout_ms));
        let handle = conn
            .service
            .peer()
            .send_request_with_option(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                options,
            )
            .await
            .map_err(|e| self.lost(&conn, e))?;
        let token = handle.progress_token.clone();
        if let Some(to) = progress_to {
            self.progress.insert(token.clone(), to);
        }
        let (id, peer) = (handle.id.clone(), handle.peer.clone());
        let result = tokio::select! {
            r = handle.await_response() => r.map_err(|e| self.lost(&conn, e)),
            () = ct.cancelled() => {
                let note = CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the client".into()),
                );
                if let Err(e) = peer.notify_cancelled(note).await {
                    tracing::debug!(error = %e, "cancellation not delivered upstream");
                }
                Err(CallError::Cancelled)
            }
        };
        self.progress.remove(&token);
        match result? {
            ServerResult::CallToolResult(r) => Ok(r),
            _ => Err(CallError::Unavailable(
                self.config.name.clone(),
                "the server answered tools/call with another result type".into(),
            )),
        }
    }

    /// Stops the connection (a stdio server's process is ended).
    pub async fn shutdown(&self) {
        if let Some(c) = self.conn.swap(None) {
            if let Ok(c) = Arc::try_unwrap(c) {
                let _ = c.service.cancel().await;
            }
        }
    }
}

/// A stdio server's stderr, line by line, into the gateway's log at debug level.
fn forward_stderr(server: String, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "anycloud::mcp", server = %server, "{line}");
        }
    });
}
