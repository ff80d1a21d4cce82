//! A request body the application reads while it arrives: the HTTP/2 stream's future pushes
//! DATA frames in as the connection receives them, an application thread takes them out, and the
//! bytes it has taken are given back to the client as flow-control window. A client can
//! therefore have no more than its stream window in flight, and an application that reads
//! slowly slows the client down instead of filling memory.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

/// Why a streamed request body cannot be read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// The client reset the stream or the connection closed.
    Reset,
    /// The body grew past `max_body_bytes`.
    TooLarge,
    /// No bytes arrived for `max_request_read_seconds` while the application waited.
    Timeout,
    /// The response is complete, or the input was closed: nothing more will be read.
    Closed,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputError::Reset => "the client reset the stream before the request body ended",
            InputError::TooLarge => "the request body is larger than max_body_bytes",
            InputError::Timeout => "no request body bytes arrived within max_request_read_seconds",
            InputError::Closed => "the request body is closed",
        })
    }
}

impl std::error::Error for InputError {}

/// What one wait for the body gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The next bytes, as they arrived (one DATA frame, or what is left of one).
    Data(Bytes),
    /// END_STREAM: the body is complete.
    Eof,
    /// [`BodyStream::interrupt`] was called (the runtime wants the thread back); call again.
    Interrupted,
}

struct State {
    chunks: VecDeque<Bytes>,
    end: Option<Result<(), InputError>>,
    /// Bytes the reader took that have not been given back as window yet.
    consumed: usize,
    interrupted: bool,
    reader_gone: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes a reader waiting for bytes.
    ready: Condvar,
    /// Wakes the stream's future: the reader took bytes, or is gone.
    task: Notify,
    read_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The application's end: what `rack.input` reads.
pub struct BodyStream {
    shared: Arc<Shared>,
}

/// The connection's end, held by the stream's future.
pub(crate) struct BodyFeed {
    shared: Arc<Shared>,
}

/// A new streamed body; a reader waits at most `read_timeout` for the next bytes.
pub(crate) fn channel(read_timeout: Duration) -> (BodyStream, BodyFeed) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chunks: VecDeque::new(),
            end: None,
            consumed: 0,
            interrupted: false,
            reader_gone: false,
        }),
        ready: Condvar::new(),
        task: Notify::new(),
        read_timeout,
    });
    (
        BodyStream {
            shared: shared.clone(),
        },
        BodyFeed { shared },
    )
}

impl BodyStream {
    /// Blocks until bytes arrive, the body ends, the wait is interrupted, or no bytes came
    /// for the read timeout. Meant to run without the GVL.
    pub fn next(&self) -> Result<Read, InputError> {
        let shared = &*self.shared;
        let deadline = Instant::now() + shared.read_timeout;
        let mut state = shared.lock();
        loop {
            if let Some(chunk) = state.chunks.pop_front() {
                state.consumed += chunk.len();
                drop(state);
                shared.task.notify_one();
                return Ok(Read::Data(chunk));
            }
            match state.end {
                Some(Ok(())) => return Ok(Read::Eof),
                Some(Err(e)) => return Err(e),
                None => {}
            }
            if state.reader_gone {
                return Err(InputError::Closed);
            }
            if state.interrupted {
                state.interrupted = false;
                return Ok(Read::Interrupted);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(InputError::Timeout);
            }
            state = shared
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Clears a stale interruption; call before each blocking [`BodyStream::next`], while
    /// nothing else can interrupt it yet.
    pub fn arm(&self) {
        self.shared.lock().interrupted = false;
    }

    /// Makes a blocked [`BodyStream::next`] return [`Read::Interrupted`] (the unblocking
    /// function of a GVL-free wait).
    pub fn interrupt(&self) {
        self.shared.lock().interrupted = true;
        self.shared.ready.notify_all();
    }

    /// The application needs no more of the body: what arrived is dropped and the stream's
    /// task stops reading.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.reader_gone = true;
        let dropped: usize = state.chunks.drain(..).map(|c| c.len()).sum();
        state.consumed += dropped;
        drop(state);
        self.shared.ready.notify_all();
        self.shared.task.notify_one();
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl BodyFeed {
    /// Hands a DATA frame's bytes to the reader; false once the reader is gone.
    pub(crate) fn push(&self, chunk: Bytes) -> bool {
        let mut state = self.shared.lock();
        if state.reader_gone {
            return false;
        }
        if !chunk.is_empty() {
            state.chunks.push_back(chunk);
        }
        drop(state);
        self.shared.ready.notify_all();
        true
    }

    /// The body ended (END_STREAM) or failed.
    pub(crate) fn end(&self, result: Result<(), InputError>) {
        let mut state = self.shared.lock();
        if state.end.is_none() {
            state.end = Some(result);
        }
        drop(state);
        self.shared.ready.notify_all();
    }

    /// Bytes the reader took since the last call (to release as flow-control window), and
    /// whether the reader is gone.
    pub(crate) fn take_consumed(&self) -> (usize, bool) {
        let mut state = self.shared.lock();
        (std::mem::take(&mut state.consumed), state.reader_gone)
    }

    /// Resolves when the reader took bytes or went away.
    pub(crate) async fn wait_reader(&self) {
        self.shared.task.notified().await;
    }
}

impl Drop for BodyFeed {
    fn drop(&mut self) {
        // The stream's task stopped reading (the response is complete, or the stream died):
        // a reader still waiting must not wait for bytes that will never come.
        self.end(Err(InputError::Closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_takes_chunks_in_order_then_eof_and_counts_what_it_took() {
        let (reader, feed) = channel(Duration::from_secs(5));
        assert!(feed.push(Bytes::from_static(b"ab")));
        assert!(feed.push(Bytes::from_static(b"cde")));
        feed.end(Ok(()));
        assert_eq!(reader.next(), Ok(Read::Data(Bytes::from_static(b"ab"))));
        assert_eq!(feed.take_consumed(), (2, false));
        assert_eq!(reader.next(), Ok(Read::Data(Bytes::from_static(b"cde"))));
        assert_eq!(reader.next(), Ok(Read::Eof));
        assert_eq!(reader.next(), Ok(Read::Eof));
        assert_eq!(feed.take_consumed(), (3, false));
    }

    #[test]
    fn a_blocked_reader_wakes_for_data_interrupts_and_resets() {
        let (reader, feed) = channel(Duration::from_secs(30));
        let reader = Arc::new(reader);
        let waiting = {
            let reader = reader.clone();
            std::thread::spawn(move || reader.next())
        };
        std::thread::sleep(Duration::from_millis(20));
        feed.push(Bytes::from_static(b"x"));
        assert_eq!(
            waiting.join().unwrap(),
            Ok(Read::Data(Bytes::from_static(b"x")))
        );

        reader.arm();
        let waiting = {
            let reader = reader.clone();
            std::thread::spawn(move || reader.next())
        };
        std::thread::sleep(Duration::from_millis(20));
        reader.interrupt();
        assert_eq!(waiting.join().unwrap(), Ok(Read::Interrupted));

        feed.end(Err(InputError::Reset));
        assert_eq!(reader.next(), Err(InputError::Reset));
    }

    #[test]
    fn a_silent_client_times_the_reader_out_and_a_dropped_feed_closes_the_body() {
        let (reader, feed) = channel(Duration::from_millis(10));
        assert_eq!(reader.next(), Err(InputError::Timeout));
        drop(feed);
        assert_eq!(reader.next(), Err(InputError::Closed));
    }

    #[test]
    fn closing_the_reader_gives_back_unread_bytes_and_stops_the_feed() {
        let (reader, feed) = channel(Duration::from_secs(5));
        feed.push(Bytes::from_static(b"unread"));
        reader.close();
        assert_eq!(feed.take_consumed(), (6, true));
        assert!(!feed.push(Bytes::from_static(b"more")));
    }
}
