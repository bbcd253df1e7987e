//! Server-sent events from an upstream byte stream.
//!
//! [`decode`] turns a response body (`reqwest::Response::bytes_stream()`) into
//! [`SseEvent`]s, applying the cloud's idle timeout to every read so a stream
//! that goes silent ends with a [`ProviderErrorKind::Timeout`] error instead of
//! hanging the client. The line protocol itself (CRLF / LF / CR endings split
//! anywhere, multi-line `data:`, `:` comments, a leading BOM, UTF-8 split
//! across reads) is the `eventsource-stream` crate's: it is small, spec-shaped
//! and its streaming parser waits for a whole line before acting, which the
//! proptest below checks for every way of splitting the bytes.
//!
//! Neighbours: `openai::stream` (and later Anthropic and Vertex) read these
//! events; `http` builds the response they come from.

use crate::error::{ProviderError, ProviderErrorKind};
use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;

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
pub fn decode_with<S, E, F>(body: S, idle: Duration, map_err: F) -> SseStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
    F: Fn(E) -> ProviderError + Send + Sync + 'static,
{
    let reads = with_idle_timeout(body, idle, map_err);
    let events = EventStream::new(reads).map(|item| match item {
        Ok(ev) => Ok(SseEvent {
            event: (!ev.event.is_empty() && ev.event != "message").then_some(ev.event),
            data: ev.data,
        }),
        Err(EventStreamError::Transport(e)) => Err(e),
        Err(EventStreamError::Utf8(_)) => Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "event stream is not valid UTF-8",
        )),
        Err(EventStreamError::Parser(_)) => Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "event stream did not parse",
        )),
    });
    Box::pin(fuse_after_error(events))
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

/// Ends a stream after its first `Err` item.
pub fn fuse_after_error<S, T>(s: S) -> impl Stream<Item = Result<T, ProviderError>> + Send
where
    S: Stream<Item = Result<T, ProviderError>> + Send + 'static,
    T: Send + 'static,
{
    futures::stream::unfold(Some(Box::pin(s)), |state| async move {
        let mut s = state?;
        match s.next().await? {
            Ok(v) => Some((Ok(v), Some(s))),
            Err(e) => Some((Err(e), None)),
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
        let last = events_of(vec![SAMPLE.as_bytes().to_vec()]).pop().unwrap().unwrap();
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
