//! The one loop that turns a cloud's stream into canonical events: it reads the next
//! unit of the body (an SSE event, or raw bytes for Bedrock's binary event stream),
//! hands it to the cloud's [`Decode`], queues what comes out, and ends after the first
//! error or when the body ends. Each cloud's `stream.rs` keeps only its decoding.

use crate::error::ProviderError;
use crate::EventStream;
use anycloud_types::StreamEvent;
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;

/// One cloud's stream decoding: units of the body in, canonical events out.
pub trait Decode: Send + 'static {
    /// What the body yields: an [`crate::sse::SseEvent`], or bytes.
    type Input: Send + 'static;

    /// Feeds one unit. Events pushed to `out` before an error are still sent, then
    /// the error, which ends the stream.
    fn decode(
        &mut self,
        input: Self::Input,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError>;

    /// The body ended: whatever was held back, or the error for a cut stream.
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// The cloud's last event was seen: nothing after it matters, so the body is not
    /// read to its close ([`Decode::end`] is called at once).
    fn is_done(&self) -> bool {
        false
    }
}

/// [`Decode`] for an SSE decoder with the usual inherent methods: `on_event(&SseEvent)`
/// and `on_end()`, each returning `Result<Vec<StreamEvent>, ProviderError>`, and
/// `is_done()` (its last event was seen).
macro_rules! sse_decode {
    ($ty:ty) => {
        impl crate::pump::Decode for $ty {
            type Input = crate::sse::SseEvent;
            fn decode(
                &mut self,
                ev: crate::sse::SseEvent,
                out: &mut Vec<anycloud_types::StreamEvent>,
            ) -> Result<(), crate::ProviderError> {
                out.extend(self.on_event(&ev)?);
                Ok(())
            }
            fn end(
                &mut self,
                out: &mut Vec<anycloud_types::StreamEvent>,
            ) -> Result<(), crate::ProviderError> {
                out.extend(self.on_end()?);
                Ok(())
            }
            fn is_done(&self) -> bool {
                <$ty>::is_done(self)
            }
        }
    };
}
pub(crate) use sse_decode;

/// Runs `dec` over `body`. The result ends after the first error.
pub fn pump<S, D>(body: S, dec: D) -> EventStream
where
    S: Stream<Item = Result<D::Input, ProviderError>> + Send + 'static,
    D: Decode,
{
    struct State<S, D> {
        body: Pin<Box<S>>,
        dec: D,
        queue: VecDeque<Result<StreamEvent, ProviderError>>,
        ended: bool,
    }
    let state = State {
        body: Box::pin(body),
        dec,
        queue: VecDeque::new(),
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                if item.is_err() {
                    st.queue.clear();
                    st.ended = true;
                }
                return Some((item, st));
            }
            if st.ended {
                return None;
            }
            let next = if st.dec.is_done() {
                None
            } else {
                st.body.next().await
            };
            let mut out = Vec::new();
            let produced = match next {
                Some(Ok(input)) => st.dec.decode(input, &mut out),
                Some(Err(e)) => Err(e),
                None => {
                    st.ended = true;
                    st.dec.end(&mut out)
                }
            };
            st.queue.extend(out.into_iter().map(Ok));
            if let Err(e) = produced {
                st.queue.push_back(Err(e));
            }
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::error::ProviderErrorKind;
    use anycloud_types::FinishReason;

    /// Emits one text delta per number; 0 is an error after one event; the end
    /// needs a `Finish` (an odd number) first; 9 is the last event.
    #[derive(Default)]
    struct Numbers {
        finished: bool,
        done: bool,
    }

    impl Decode for Numbers {
        type Input = u32;
        fn decode(&mut self, n: u32, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
            out.push(StreamEvent::TextDelta {
                text: n.to_string(),
            });
            if n == 0 {
                return Err(ProviderError::new(ProviderErrorKind::Protocol, "zero"));
            }
            self.finished = n % 2 == 1;
            self.done = n == 9;
            Ok(())
        }
        fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
            if !self.finished {
                return Err(ProviderError::new(ProviderErrorKind::Protocol, "early"));
            }
            out.push(StreamEvent::Finish {
                reason: FinishReason::Stop,
            });
            Ok(())
        }
        fn is_done(&self) -> bool {
            self.done
        }
    }

    async fn run(body: Vec<Result<u32, ProviderError>>) -> Vec<Result<String, String>> {
        pump(futures::stream::iter(body), Numbers::default())
            .map(|r| match r {
                Ok(StreamEvent::TextDelta { text }) => Ok(text),
                Ok(other) => Ok(format!("{other:?}")),
                Err(e) => Err(e.message),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_then_the_end() {
        let out = run(vec![Ok(2), Ok(3)]).await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[..2], [Ok("2".into()), Ok("3".into())]);
        assert!(out[2].as_ref().unwrap().starts_with("Finish"));
    }

    #[tokio::test]
    async fn an_error_is_sent_after_the_events_before_it_and_ends_the_stream() {
        let out = run(vec![Ok(2), Ok(0), Ok(3)]).await;
        assert_eq!(out, [Ok("2".into()), Ok("0".into()), Err("zero".into())]);
        let out = run(vec![
            Ok(2),
            Err(ProviderError::new(ProviderErrorKind::Timeout, "idle")),
            Ok(3),
        ])
        .await;
        assert_eq!(out, [Ok("2".into()), Err("idle".into())]);
        let out = run(vec![Ok(2)]).await;
        assert_eq!(out, [Ok("2".into()), Err("early".into())]);
    }

    #[tokio::test]
    async fn nothing_after_the_last_event_is_read() {
        let out = run(vec![Ok(9), Ok(0)]).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], Ok("9".into()));
    }
}
