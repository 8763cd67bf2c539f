//! Server-sent events written one at a time through a channel, so each event
//! reaches the socket when it is produced. That is what lets tests prove the
//! gateway forwards early events before the provider has finished.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::record::now_ms;

/// Timing and failure knobs for one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamTiming {
    pub event_delay: Option<Duration>,
    pub pause: Option<(usize, Duration)>,
    pub cut_after: Option<usize>,
}

/// Starts writing `frames` and returns the body that carries them. Each item
/// is one complete event, written exactly as given (see [`data_event`] and
/// [`named_event`]; Gemini frames its own); the timing knobs count these
/// items. `on_done` gets the time the last event was handed to the
/// connection, once the stream has ended for any reason.
pub fn stream_frames<I, F>(frames: I, timing: StreamTiming, on_done: F) -> Body
where
    I: IntoIterator<Item = String> + Send + 'static,
    I::IntoIter: Send,
    F: FnOnce(Option<u64>) + Send + 'static,
{
    // Capacity 1: the writer runs at most one event ahead of the socket.
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(1);
    tokio::spawn(async move {
        let last = write_frames(frames, &timing, &tx).await;
        on_done(last);
    });
    Body::from_stream(ChannelStream(rx))
}

/// One SSE event that is only a `data:` line, as OpenAI chat sends them.
pub fn data_event(data: &str) -> String {
    format!("data: {data}\n\n")
}

/// One SSE event with an `event:` line, as Anthropic and the Responses API
/// send them.
pub fn named_event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A streamed body with the headers providers send on event streams.
pub fn stream_response(body: Body, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn write_frames<I>(
    frames: I,
    timing: &StreamTiming,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Option<u64>
where
    I: IntoIterator<Item = String>,
{
    let mut sent = 0usize;
    let mut last = None;
    for frame in frames {
        if timing.cut_after == Some(sent) {
            cut(tx).await;
            return last;
        }
        if sent > 0 {
            if let Some(d) = timing.event_delay {
                tokio::time::sleep(d).await;
            }
        }
        if tx.send(Ok(Bytes::from(frame))).await.is_err() {
            // The client went away; nothing left to write to.
            return last;
        }
        sent += 1;
        last = Some(now_ms());
        if let Some((after, d)) = timing.pause {
            if after == sent {
                tokio::time::sleep(d).await;
            }
        }
    }
    if timing.cut_after == Some(sent) {
        cut(tx).await;
    }
    last
}

/// An error item makes hyper abort the connection without the terminating
/// chunk, which is what a provider dying mid-stream looks like on the wire.
async fn cut(tx: &mpsc::Sender<io::Result<Bytes>>) {
    let err = io::Error::new(io::ErrorKind::ConnectionAborted, "x-mock-cut-after");
    let _ = tx.send(Err(err)).await;
}

struct ChannelStream(mpsc::Receiver<io::Result<Bytes>>);

impl futures_core::Stream for ChannelStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
