//! Server-sent events from an upstream byte stream.
//!
//! [`decode`] turns a response body (`reqwest::Response::bytes_stream()`) into
//! [`SseEvent`]s, applying the cloud's idle timeout to every read so a stream
//! that goes silent ends with a [`ProviderErrorKind::Timeout`] error instead of
//! hanging the client. [`SseParser`] is the line protocol: CRLF / LF / CR
//! endings split anywhere, multi-line `data:`, `:` comments, a leading BOM,
//! UTF-8 split across reads; the proptest below checks that the same events
//! come out however the bytes are split.
//!
//! Hand-written rather than the `eventsource-stream` crate (0.2.3): that crate
//! panics on a leading BOM (it slices a 3-byte char at byte 1, found by the
//! proptest here), stalls on invalid UTF-8 instead of failing, and has no
//! bound on line length. Working on bytes and splitting only at ASCII CR/LF
//! avoids all three in about a hundred lines.
//!
//! Neighbours: `openai::stream` (and later Anthropic and Vertex) read these
//! events; `http` builds the response they come from.

use crate::error::{ProviderError, ProviderErrorKind};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

/// The longest line or event accepted; an upstream sending more is broken.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event. `event` is `None` for the default type (`message`),
/// which is what OpenAI sends; Anthropic and the Responses API name theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// OpenAI's end-of-stream sentinel.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Incremental SSE parser: feed it bytes as they arrive, collect events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The last line ended with CR: a LF right after it belongs to it.
    skip_lf: bool,
    seen_first_line: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        while let Some(&first) = chunk.first() {
            if std::mem::take(&mut self.skip_lf) && first == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(p) => {
                    self.line.extend_from_slice(&chunk[..p]);
                    let line = std::mem::take(&mut self.line);
                    self.on_line(&line, out)?;
                    self.skip_lf = chunk[p] == b'\r';
                    chunk = &chunk[p + 1..];
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    break;
                }
            }
        }
        if self.line.len() > MAX_EVENT_BYTES {
            return Err(protocol("event stream line too long"));
        }
        Ok(())
    }

    fn on_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if !self.seen_first_line {
            self.seen_first_line = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            let event = self.event.take();
            if std::mem::take(&mut self.has_data) {
                out.push(SseEvent {
                    event,
                    data: std::mem::take(&mut self.data),
                });
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line =
            std::str::from_utf8(line).map_err(|_| protocol("event stream is not valid UTF-8"))?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    return Err(protocol("event stream event too large"));
                }
            }
            "event" => {
                self.event = (!value.is_empty() && value != "message").then(|| value.to_string());
            }
            // `id` and `retry` matter to browsers reconnecting, not to us.
            _ => {}
        }
        Ok(())
    }
}

fn protocol(message: &str) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Protocol, message)
}

/// A boxed stream of SSE events from one upstream response.
pub type SseStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

/// Decodes a reqwest body stream, with `idle` allowed between two reads.
pub fn decode<S>(body: S, idle: Duration) -> SseStream
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    decode_with(body, idle, |e| ProviderError::from_transport(&e))
}

/// [`decode`] for any byte stream; `map_err` classifies its transport errors.
/// The stream ends after the first error. An unterminated last event is
/// dropped, as the SSE spec says.
pub fn decode_with<S, E, F>(body: S, idle: Duration, map_err: F) -> SseStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
    F: Fn(E) -> ProviderError + Send + Sync + 'static,
{
    decode_events(body, idle, idle, map_err)
}

/// [`decode_with`], with `first` allowed until the first whole event and `idle`
/// between two whole events. The limits apply to events, not reads: a cloud
/// trickling a byte at a time cannot hold a request past them (README
/// "Configuration": `first_byte_timeout_ms`, `idle_timeout_ms`).
pub fn decode_events<S, E, F>(body: S, first: Duration, idle: Duration, map_err: F) -> SseStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
    F: Fn(E) -> ProviderError + Send + Sync + 'static,
{
    struct State<R> {
        reads: Pin<Box<R>>,
        parser: SseParser,
        queue: VecDeque<Result<SseEvent, ProviderError>>,
        failed: bool,
        /// Until the first event: `first`; then `idle`.
        limit: Duration,
    }
    let state = Some(State {
        reads: Box::pin(with_idle_timeout(body, first.max(idle), map_err)),
        parser: SseParser::new(),
        queue: VecDeque::new(),
        failed: false,
        limit: first,
    });
    Box::pin(futures::stream::unfold(state, move |state| async move {
        let mut st = state?;
        let deadline = tokio::time::Instant::now() + st.limit;
        loop {
            if let Some(item) = st.queue.pop_front() {
                st.limit = idle;
                return match item {
                    Ok(ev) => Some((Ok(ev), Some(st))),
                    Err(e) => Some((Err(e), None)),
                };
            }
            if st.failed {
                return None;
            }
            let bytes = match tokio::time::timeout_at(deadline, st.reads.next()).await {
                Ok(read) => match read? {
                    Ok(bytes) => bytes,
                    Err(e) => return Some((Err(e), None)),
                },
                Err(_) => {
                    return Some((
                        Err(ProviderError::new(
                            ProviderErrorKind::Timeout,
                            format!(
                                "upstream sent no whole stream event for more than {} ms",
                                st.limit.as_millis()
                            ),
                        )),
                        None,
                    ))
                }
            };
            let mut out = Vec::new();
            let pushed = st.parser.push(&bytes, &mut out);
            // Events completed before a bad line still go out, then the error.
            st.queue.extend(out.into_iter().map(Ok));
            if let Err(e) = pushed {
                st.failed = true;
                st.queue.push_back(Err(e));
            }
        }
    }))
}

/// Applies `idle` to each read of `body` and ends the stream after the first
/// error (a timeout or a transport failure), so nothing is read after it.
pub fn with_idle_timeout<S, E, F>(
    body: S,
    idle: Duration,
    map_err: F,
) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
    F: Fn(E) -> ProviderError + Send + Sync + 'static,
{
    let state = Some((Box::pin(body), map_err));
    futures::stream::unfold(state, move |state| async move {
        let (mut body, map_err) = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some((body, map_err)))),
            Ok(Some(Err(e))) => Some((Err(map_err(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    format!("upstream stream idle for more than {} ms", idle.as_millis()),
                )),
                None,
            )),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn events_of(chunks: Vec<Vec<u8>>) -> Vec<Result<SseEvent, ProviderErrorKind>> {
        let body = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Bytes::from(c))),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            decode_with(body, Duration::from_secs(5), |e: Infallible| match e {})
                .map(|r| r.map_err(|e| e.kind))
                .collect()
                .await
        })
    }

    fn ev(event: Option<&str>, data: &str) -> Result<SseEvent, ProviderErrorKind> {
        Ok(SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        })
    }

    const SAMPLE: &str = "\u{feff}: comment line\r\n\
        data: {\"a\":1}\r\n\r\n\
        event: message_start\n\
        data: line one\n\
        data: line two é ü 日本\n\n\
        : keep-alive\n\n\
        data:no-space\r\r\
        id: 7\nretry: 100\n\n\
        data: [DONE]\n\n";

    fn sample_events() -> Vec<Result<SseEvent, ProviderErrorKind>> {
        vec![
            ev(None, "{\"a\":1}"),
            ev(Some("message_start"), "line one\nline two é ü 日本"),
            ev(None, "no-space"),
            ev(None, "[DONE]"),
        ]
    }

    #[test]
    fn decodes_the_sample_in_one_read() {
        assert_eq!(events_of(vec![SAMPLE.as_bytes().to_vec()]), sample_events());
        let last = events_of(vec![SAMPLE.as_bytes().to_vec()])
            .pop()
            .unwrap()
            .unwrap();
        assert!(last.is_done());
    }

    #[test]
    fn decodes_byte_by_byte() {
        let chunks = SAMPLE.bytes().map(|b| vec![b]).collect();
        assert_eq!(events_of(chunks), sample_events());
    }

    #[test]
    fn an_unterminated_last_event_is_not_dispatched() {
        assert_eq!(
            events_of(vec![b"data: a\n\ndata: b".to_vec()]),
            vec![ev(None, "a")]
        );
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error() {
        assert_eq!(
            events_of(vec![b"data: a\n\ndata: \xff\xfe\n\n".to_vec()]),
            vec![ev(None, "a"), Err(ProviderErrorKind::Protocol)]
        );
    }

    #[test]
    fn empty_data_lines_and_bare_fields() {
        // `data` with no colon is an empty data line; two of them make "\n".
        assert_eq!(
            events_of(vec![b"data\ndata\n\nevent: x\n\ndata: y\n\n".to_vec()]),
            vec![ev(None, "\n"), ev(None, "y")]
        );
    }

    proptest! {
        #[test]
        fn same_events_however_the_bytes_are_split(cuts in proptest::collection::vec(0usize..200, 0..12)) {
            let bytes = SAMPLE.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                chunks.push(bytes[prev..c].to_vec());
                prev = c;
            }
            prop_assert_eq!(events_of(chunks), sample_events());
        }

        #[test]
        fn arbitrary_data_lines_round_trip(
            datas in proptest::collection::vec("[a-zA-Z0-9 {}\":,é日]{1,20}", 1..6),
            crlf in any::<bool>(),
            split in 1usize..7,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for d in &datas {
                text.push_str(&format!("data: {d}{nl}{nl}"));
            }
            let chunks = text.as_bytes().chunks(split).map(<[u8]>::to_vec).collect();
            let want: Vec<_> = datas.iter().map(|d| ev(None, d)).collect();
            prop_assert_eq!(events_of(chunks), want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_times_out() {
        let body = futures::stream::iter(vec![Ok::<_, Infallible>(Bytes::from_static(
            b"data: a\n\n",
        ))])
        .chain(futures::stream::pending());
        let mut s = decode_with(body, Duration::from_millis(500), |e: Infallible| match e {});
        assert_eq!(s.next().await.unwrap().unwrap().data, "a");
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Timeout);
        assert!(s.next().await.is_none(), "nothing after the timeout");
    }
}
