//! rmcp's Streamable HTTP client transport, driven by the tree's reqwest 0.12.
//!
//! rmcp ships this trait implemented for reqwest 0.13, whose rustls feature brings a
//! second HTTP stack and the aws-lc crypto provider (a C build). The transport's session,
//! reconnect and JSON-RPC logic stay rmcp's; only the three HTTP exchanges (POST a
//! message, GET the server's stream, DELETE the session) are written here, on the same
//! `reqwest::Client` settings the cloud providers use.

use futures::stream::BoxStream;
use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_LAST_EVENT_ID, HEADER_SESSION_ID, JSON_MIME_TYPE,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::{Sse, SseStream};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest JSON reply read into memory from an upstream server.
const MAX_JSON_REPLY: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ReqwestHttp(pub reqwest::Client);

type HttpError = StreamableHttpError<reqwest::Error>;

fn accept() -> String {
    format!("{EVENT_STREAM_MIME_TYPE}, {JSON_MIME_TYPE}")
}

fn with_headers(
    mut b: reqwest::RequestBuilder,
    auth: Option<String>,
    custom: HashMap<HeaderName, HeaderValue>,
) -> reqwest::RequestBuilder {
    if let Some(token) = auth {
        b = b.bearer_auth(token);
    }
    for (name, value) in custom {
        b = b.header(name, value);
    }
    b
}

fn media_is(ct: Option<&reqwest::header::HeaderValue>, mime: &str) -> bool {
    ct.and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

fn sse(resp: reqwest::Response) -> BoxStream<'static, Result<Sse, SseError>> {
    SseStream::from_bytes_stream(resp.bytes_stream()).boxed()
}

/// The status as an error the transport reports (the body is not echoed: an upstream's
/// error page may quote the request's headers).
fn status_error(status: reqwest::StatusCode) -> HttpError {
    StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!("HTTP {status}")))
}

impl StreamableHttpClient for ReqwestHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let mut b = self
            .0
            .post(uri.as_ref())
            .header(reqwest::header::ACCEPT, accept());
        if let Some(s) = &session_id {
            b = b.header(HEADER_SESSION_ID, s.as_ref());
        }
        let resp = with_headers(b, auth, custom)
            .json(&message)
            .send()
            .await
            .map_err(StreamableHttpError::Client)?;
        let status = resp.status();
        if status == reqwest::StatusCode::ACCEPTED || status == reqwest::StatusCode::NO_CONTENT {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == reqwest::StatusCode::NOT_FOUND && session_id.is_some() {
            return Err(StreamableHttpError::SessionExpired);
        }
        let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let new_session = resp
            .headers()
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let awaits_nothing = !matches!(message, ClientJsonRpcMessage::Request(_));
        if media_is(ct.as_ref(), EVENT_STREAM_MIME_TYPE) && status.is_success() {
            return Ok(StreamableHttpPostResponse::Sse(sse(resp), new_session));
        }
        if media_is(ct.as_ref(), JSON_MIME_TYPE) {
            // A JSON-RPC error may come with a 4xx/5xx status: keep it as the reply.
            let body = read_capped(resp, MAX_JSON_REPLY).await?;
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(m) => Ok(StreamableHttpPostResponse::Json(m, new_session)),
                Err(_) if status.is_success() && awaits_nothing => {
                    Ok(StreamableHttpPostResponse::Accepted)
                }
                Err(_) if !status.is_success() => Err(status_error(status)),
                Err(e) => Err(StreamableHttpError::Deserialize(e)),
            };
        }
        if !status.is_success() {
            return Err(status_error(status));
        }
        if awaits_nothing {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(
            ct.and_then(|v| v.to_str().ok().map(str::to_string)),
        ))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        let b = self
            .0
            .delete(uri.as_ref())
            .header(HEADER_SESSION_ID, session_id.as_ref());
        let resp = with_headers(b, auth, custom)
            .send()
            .await
            .map_err(StreamableHttpError::Client)?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
            return Ok(());
        }
        Err(status_error(status))
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        let mut b = self
            .0
            .get(uri.as_ref())
            .header(reqwest::header::ACCEPT, accept());
        if let Some(s) = session_id {
            b = b.header(HEADER_SESSION_ID, s.as_ref());
        }
        if let Some(id) = last_event_id {
            b = b.header(HEADER_LAST_EVENT_ID, id);
        }
        let resp = with_headers(b, auth, custom)
            .send()
            .await
            .map_err(StreamableHttpError::Client)?;
        let status = resp.status();
        if status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if !status.is_success() {
            return Err(status_error(status));
        }
        let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        if !media_is(ct.as_ref(), EVENT_STREAM_MIME_TYPE) {
            return Err(StreamableHttpError::UnexpectedContentType(
                ct.and_then(|v| v.to_str().ok().map(str::to_string)),
            ));
        }
        Ok(sse(resp))
    }
}

/// The body, refused once it passes `max` bytes.
async fn read_capped(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(StreamableHttpError::Client)?;
        if out.len() + chunk.len() > max {
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
