//! HTTP/2 connections, with the `h2` crate on the I/O thread's tokio runtime.
//!
//! [`serve`] runs one connection over any byte stream: a plain socket whose first bytes were
//! the connection preface (h2c with prior knowledge), or a TLS stream that negotiated `h2` by
//! ALPN. Each stream becomes an ordinary [`crate::Exchange`]: its pseudo-headers and headers are
//! rewritten as an HTTP/1.1 head and parsed by `hyperion_http`, so routing, limits and the Rack
//! env are built by the same code as for HTTP/1.1 (the exchange is marked
//! [`Protocol::Http2`]). Static routes and page-cache hits are answered on the connection task
//! itself from a prebuilt header map and a shared body. Every other stream becomes a future
//! that reads the request body (with flow control), hands the exchange to the application
//! threads and writes the response messages that come back; the connection task drives these
//! futures alongside the connection, so a slow handler never holds up the other streams, and
//! the responses that arrived while the I/O thread was busy leave together in one write.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::h2::server::{Builder, SendResponse};
use ::h2::{Reason, RecvStream, SendStream};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyperion_http::{parse_request_head, HeadStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::timeout;

use crate::body::{BodyBuffer, SPILL_CHUNK};
use crate::chan;
use crate::dispatch::{dispatch, rejected, static_hit, Dispatched, Request};
use crate::engine::{Phase, Shared};
use crate::exchange::{Body, ListenerInfo, Peer, Protocol};
use crate::response::{date_value, ResponseMsg};
use crate::routes::StaticResponse;
use crate::stats::bump;

/// The client connection preface (RFC 9113 3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may reset before the server has accepted them (rapid reset); past it the
/// connection ends with GOAWAY ENHANCE_YOUR_CALM.
const MAX_PENDING_ACCEPT_RESETS: usize = 50;
/// Streams the server may reset because of client errors before the connection ends.
const MAX_LOCAL_ERROR_RESETS: usize = 256;
/// SETTINGS and PING frames (not acknowledgements) a client may send per second.
const MAX_CONTROL_FRAMES_PER_SECOND: u32 = 200;
/// CONTINUATION frames in one header block.
const MAX_CONTINUATIONS: u32 = 64;
/// Response bytes the h2 crate may buffer per stream beyond what the client can receive.
const SEND_BUFFER: usize = 256 * 1024;
/// While a connection drains (GOAWAY sent), how often it looks whether any stream is left.
const DRAIN_CHECK: Duration = Duration::from_secs(1);
/// After an abuse defence trips: how long the GOAWAY gets to leave before the socket closes.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// Whether `buf` (the first bytes of a plain connection) is, or may still become, the HTTP/2
/// connection preface: `Some(true)` complete, `Some(false)` a prefix of it, `None` not h2c.
pub(crate) fn preface_state(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return None;
    }
    Some(n == PREFACE.len())
}

/// A thread with a tokio runtime for HTTP/2 connections the io_uring loop recognised: the
/// h2 crate needs tokio I/O. Started on first use; ends when the engine has stopped.
pub(crate) struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    fn start() -> io::Result<Runtime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hyperion-h2".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping the runtime cuts whatever the graceful timeout left running.
            })?;
        Ok(Runtime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Ends the thread (called once the engine has stopped waiting for connections).
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves a connection the io_uring loop took the HTTP/2 preface from: `fd` (counted in
/// `connections_active` by the caller, uncounted here when the connection ends) and the bytes
/// read so far.
#[cfg(target_os = "linux")]
pub(crate) fn hand_off(
    shared: &Arc<Shared>,
    fd: std::os::fd::OwnedFd,
    prefix: Vec<u8>,
    peer: Peer,
    listener: Arc<ListenerInfo>,
) {
    let guard = crate::engine::ActiveGuard::adopt(shared.clone());
    let handle = {
        let mut runtime = shared.h2_runtime.lock().unwrap_or_else(|e| e.into_inner());
        if runtime.is_none() {
            match Runtime::start() {
                Ok(started) => *runtime = Some(started),
                // Dropping the descriptor and the guard closes and uncounts the connection.
                Err(_) => return,
            }
        }
        runtime.as_ref().expect("started above").handle.clone()
    };
    let shared = shared.clone();
    handle.spawn(async move {
        let prefix = Bytes::from(prefix);
        match peer {
            Peer::Unix => {
                let std = std::os::unix::net::UnixStream::from(fd);
                if std.set_nonblocking(true).is_ok() {
                    if let Ok(io) = tokio::net::UnixStream::from_std(std) {
                        serve(io, prefix, peer, shared.clone(), listener).await;
                    }
                }
            }
            Peer::Tcp(_) => {
                let std = std::net::TcpStream::from(fd);
                if std.set_nonblocking(true).is_ok() {
                    if let Ok(io) = tokio::net::TcpStream::from_std(std) {
                        serve(io, prefix, peer, shared.clone(), listener).await;
                    }
                }
            }
        }
        drop(guard);
        // A stopping ring waits for its open connections, this one included.
        if shared.is_draining() {
            shared.wake_io();
        }
    });
}

/// Serves one HTTP/2 connection until it closes.
///
/// `io` is the connection's byte stream (a socket, or a TLS stream after ALPN chose `h2`);
/// `prefix` holds bytes already read from it (for h2c, at least the connection preface; may be
/// empty). The connection counts as open for the engine's graceful stop for as long as the
/// caller's own bookkeeping says so; on stop it sends GOAWAY and lets its streams finish.
pub(crate) async fn serve<S>(
    io: S,
    prefix: Bytes,
    peer: Peer,
    shared: Arc<Shared>,
    listener: Arc<ListenerInfo>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    bump(&shared.stats.h2_connections);
    let config = &shared.config.h2;
    let tripped = Arc::new(Notify::new());
    let io = Metered {
        io,
        prefix,
        meter: Meter::new(shared.clone(), tripped.clone()),
    };
    let mut builder = Builder::new();
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_window_size(config.initial_window_size)
        .initial_connection_window_size(config.initial_window_size.max(1 << 20))
        .max_frame_size(config.max_frame_size)
        .max_header_list_size(config.max_header_list_size)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(SEND_BUFFER);
    let handshake = timeout(
        shared.config.request_read_timeout,
        builder.handshake::<_, Bytes>(io),
    );
    let mut conn = match handshake.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            count_error(&shared, &e);
            return;
        }
        Err(_) => return,
    };

    let mut phase = shared.phase.subscribe();
    let mut draining = false;
    let idle = shared.config.idle_keepalive;
    let mut last_stream = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let tripped = tripped.notified();
    tokio::pin!(tripped);
    // Static answers wait here while more streams are taken in, so a burst of requests is
    // answered in one write rather than one write per stream.
    let mut inline: Vec<Inline> = Vec::new();
    // The streams waiting on a request body or on the application threads. Response
    // messages wake this task once, however many arrive before it runs (the set's own waker
    // is spent by the first); the streams it completes are all queued in the connection
    // before the connection is polled to write.
    let mut streams: FuturesUnordered<StreamTask> = FuturesUnordered::new();
    loop {
        if !draining && *phase.borrow_and_update() != Phase::Running {
            draining = true;
            conn.graceful_shutdown();
            idle_timer
                .as_mut()
                .reset(tokio::time::Instant::now() + DRAIN_CHECK);
        }
        tokio::select! {
            biased;
            _ = poll_fn(|cx| drive(&mut streams, cx)), if !streams.is_empty() => {}
            next = conn.accept() => {
                let mut next = Poll::Ready(next);
                let mut closed = false;
                while let Poll::Ready(item) = next {
                    match item {
                        Some(Ok((request, respond))) => {
                            let pending = Pending { inline: &mut inline, streams: &mut streams };
                            on_stream(&shared, request, respond, peer, &listener, pending);
                        }
                        Some(Err(e)) => {
                            count_error(&shared, &e);
                            closed = true;
                            break;
                        }
                        None => {
                            closed = true;
                            break;
                        }
                    }
                    next = poll_fn(|cx| Poll::Ready(conn.poll_accept(cx))).await;
                }
                last_stream = tokio::time::Instant::now();
                for Inline { mut respond, response, head_only, mut report } in inline.drain(..) {
                    send_static(&mut respond, &response, head_only, &mut report);
                }
                if closed {
                    // Whatever was queued still goes out before the socket closes.
                    let _ = timeout(GOAWAY_FLUSH, poll_fn(|cx| conn.poll_closed(cx))).await;
                    break;
                }
            }
            _ = phase.changed(), if !draining => {}
            _ = &mut idle_timer => {
                let now = tokio::time::Instant::now();
                if draining {
                    // GOAWAY is out; once no stream is left the connection has nothing more
                    // to say, even if the client never acknowledges the shutdown.
                    if !conn.has_streams() {
                        let _ = timeout(GOAWAY_FLUSH, poll_fn(|cx| conn.poll_closed(cx))).await;
                        break;
                    }
                    idle_timer.as_mut().reset(now + DRAIN_CHECK);
                } else if conn.has_streams() {
                    idle_timer.as_mut().reset(now + idle);
                } else if last_stream + idle > now {
                    idle_timer.as_mut().reset(last_stream + idle);
                } else {
                    draining = true;
                    conn.graceful_shutdown();
                    idle_timer.as_mut().reset(now + DRAIN_CHECK);
                }
            }
            _ = &mut tripped => {
                bump(&shared.stats.h2_abuse);
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                let _ = timeout(GOAWAY_FLUSH, poll_fn(|cx| conn.poll_closed(cx))).await;
                break;
            }
        }
    }
    // Streams still open learn from the h2 crate, as the connection is dropped, that it is
    // gone; they get a moment to pass that on (a reader waiting for request body learns of
    // the reset, an application thread that its response has nowhere to go).
    drop(conn);
    let _ = timeout(GOAWAY_FLUSH, async {
        while streams.next().await.is_some() {}
    })
    .await;
}

/// One stream's handling after it was taken in: reading its body, waiting for its response
/// and writing it.
type StreamTask = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Polls the connection's streams until none can make progress; ready once at least one has
/// finished (the connection then runs again and writes what they queued), pending otherwise.
fn drive(streams: &mut FuturesUnordered<StreamTask>, cx: &mut Context<'_>) -> Poll<()> {
    let mut finished = false;
    loop {
        match streams.poll_next_unpin(cx) {
            Poll::Ready(Some(())) => finished = true,
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending if finished => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Where `on_stream` leaves what the connection task finishes after taking in a burst of
/// streams: static answers to send, and stream futures to drive.
struct Pending<'a> {
    inline: &'a mut Vec<Inline>,
    streams: &'a mut FuturesUnordered<StreamTask>,
}

/// A static answer held back until the streams already received are taken in.
struct Inline {
    respond: SendResponse<Bytes>,
    response: Arc<StaticResponse>,
    head_only: bool,
    report: Report,
}

fn count_error(shared: &Shared, e: &::h2::Error) {
    match e.reason() {
        Some(Reason::ENHANCE_YOUR_CALM) => bump(&shared.stats.h2_abuse),
        Some(Reason::NO_ERROR) | None => {}
        Some(_) => bump(&shared.stats.h2_protocol_errors),
    }
}

/// Holds one of the engine's `max_total_streams` slots for as long as the stream lives.
struct StreamSlot(Arc<Shared>);

impl StreamSlot {
    fn take(shared: &Arc<Shared>) -> Option<StreamSlot> {
        let open = shared.h2_open_streams.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot(shared.clone());
        match shared.config.h2.max_total_streams {
            Some(max) if open >= max => None,
            _ => Some(slot),
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.h2_open_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one stream reports when it ends (metrics and the access log, [`crate::observe`]):
/// exactly once, when the stream's handling is dropped, whichever way it ended. `bytes` counts
/// body bytes handed to the connection (HPACK-coded heads are not counted).
struct Report {
    shared: Arc<Shared>,
    method: http::Method,
    uri: http::Uri,
    request_id: Option<http::HeaderValue>,
    peer: Peer,
    started: Instant,
    status: u16,
    bytes: u64,
}

impl Report {
    fn new(shared: &Arc<Shared>, parts: &http::request::Parts, peer: Peer) -> Report {
        crate::observe::request_started(shared);
        let request_id = if shared.config.log.access_log {
            parts.headers.get("x-request-id").cloned()
        } else {
            None
        };
        Report {
            shared: shared.clone(),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            request_id,
            peer,
            started: Instant::now(),
            status: 0,
            bytes: 0,
        }
    }

    fn answered(&mut self, status: u16, bytes: usize) {
        self.status = status;
        self.bytes += bytes as u64;
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let path = match self.uri.path() {
            "" => "/",
            path => path,
        };
        crate::observe::request_completed(
            &self.shared,
            crate::observe::Completion {
                method: self.method.as_str().as_bytes(),
                path: path.as_bytes(),
                status: self.status,
                bytes: self.bytes,
                started: self.started,
                peer: self.peer,
                version: "HTTP/2",
                request_id: self.request_id.as_ref().map(|v| v.as_bytes()),
            },
        );
    }
}

/// A new stream: refuse it, answer it inline (static routes), or start its future.
fn on_stream(
    shared: &Arc<Shared>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: Peer,
    listener: &Arc<ListenerInfo>,
    pending: Pending<'_>,
) {
    bump(&shared.stats.h2_streams);
    let (parts, recv) = request.into_parts();
    let mut report = Report::new(shared, &parts, peer);
    if recv.is_end_stream() {
        let path = parts.uri.path();
        let path = if path.is_empty() { "/" } else { path };
        if let Some((response, head_only)) =
            static_hit(shared, parts.method.as_str().as_bytes(), path.as_bytes())
        {
            pending.inline.push(Inline {
                respond,
                response,
                head_only,
                report,
            });
            return;
        }
    }
    let Some(slot) = StreamSlot::take(shared) else {
        bump(&shared.stats.h2_streams_refused);
        respond.send_reset(Reason::REFUSED_STREAM);
        return;
    };
    let https = parts.uri.scheme_str() == Some("https");
    let head_bytes = Bytes::from(http1_head(&parts));
    let head = match parse_request_head(&head_bytes, &shared.config.limits) {
        Ok(HeadStatus::Complete { head, .. }) => head,
        Ok(HeadStatus::Partial) => {
            rejected(shared, peer, 400, "bad_request");
            send_simple(&mut respond, 400, &[], &mut report);
            return;
        }
        Err(e) => {
            bump(&shared.stats.parse_errors);
            let status = e.status();
            rejected(shared, peer, status, e.reason());
            send_simple(&mut respond, status, &[], &mut report);
            return;
        }
    };
    let protocol = Protocol::Http2 { https };
    if recv.is_end_stream() {
        let request = Request {
            head,
            head_bytes,
            body: Body::Memory(Vec::new()),
            trailers: Vec::new(),
            protocol,
        };
        match dispatch(shared, request, peer, listener) {
            Dispatched::Static {
                response,
                head_only,
                ..
            } => send_static(&mut respond, &response, head_only, &mut report),
            Dispatched::Queued(rx) => {
                let shared = shared.clone();
                pending.streams.push(Box::pin(async move {
                    write_stream(&shared, respond, rx, &mut report).await;
                    drop(report);
                    drop(slot);
                }));
            }
            Dispatched::Answered { bytes, .. } => send_answer(&mut respond, &bytes, &mut report),
        }
        return;
    }
    let declared = head.framing;
    if streams_body(&parts) {
        stream_exchange(
            shared,
            head,
            head_bytes,
            protocol,
            recv,
            respond,
            report,
            slot,
            peer,
            listener,
            pending.streams,
        );
        return;
    }
    let shared = shared.clone();
    let listener = listener.clone();
    pending.streams.push(Box::pin(async move {
        let (body, trailers) = match read_body(&shared, recv, declared).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                rejected(&shared, peer, 413, "body_too_large");
                send_simple(&mut respond, 413, &[], &mut report);
                return;
            }
            Err(BodyError::Timeout) => {
                bump(&shared.stats.read_timeouts);
                rejected(&shared, peer, 408, "read_timeout");
                send_simple(&mut respond, 408, &[], &mut report);
                return;
            }
            Err(BodyError::Store(e)) => {
                let _ = crate::dispatch::internal_error_response(&shared, e);
                send_simple(&mut respond, 500, &[], &mut report);
                return;
            }
            Err(BodyError::Reset) => return,
        };
        let request = Request {
            head,
            head_bytes,
            body,
            trailers,
            protocol,
        };
        match dispatch(&shared, request, peer, &listener) {
            Dispatched::Static {
                response,
                head_only,
                ..
            } => send_static(&mut respond, &response, head_only, &mut report),
            Dispatched::Queued(rx) => write_stream(&shared, respond, rx, &mut report).await,
            Dispatched::Answered { bytes, .. } => send_answer(&mut respond, &bytes, &mut report),
        }
        drop(report);
        drop(slot);
    }));
}

/// Whether the application reads this request's body while it arrives instead of after it
/// has been read whole: gRPC (`application/grpc`, `application/grpc+proto`, ...), whose client
/// and bidirectional streams are open-ended message sequences.
fn streams_body(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .is_some_and(|ct| {
            ct.len() >= 16
                && ct[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(ct.get(16), None | Some(b'+' | b';'))
        })
}

/// A request whose body the application reads as it arrives: dispatched at once, with the
/// stream's future feeding DATA to the reader while it writes the response.
#[allow(clippy::too_many_arguments)]
fn stream_exchange(
    shared: &Arc<Shared>,
    head: hyperion_http::RequestHead,
    head_bytes: Bytes,
    protocol: Protocol,
    recv: RecvStream,
    mut respond: SendResponse<Bytes>,
    mut report: Report,
    slot: StreamSlot,
    peer: Peer,
    listener: &Arc<ListenerInfo>,
    streams: &mut FuturesUnordered<StreamTask>,
) {
    let max = shared.config.limits.max_body_bytes;
    if let hyperion_http::BodyFraming::Length(n) = head.framing {
        if n > max {
            rejected(shared, peer, 413, "body_too_large");
            send_simple(&mut respond, 413, &[], &mut report);
            return;
        }
    }
    let (reader, feed) = crate::input::channel(shared.config.request_read_timeout);
    let request = Request {
        head,
        head_bytes,
        body: Body::Stream(reader),
        trailers: Vec::new(),
        protocol,
    };
    match dispatch(shared, request, peer, listener) {
        Dispatched::Static {
            response,
            head_only,
            ..
        } => send_static(&mut respond, &response, head_only, &mut report),
        Dispatched::Answered { bytes, .. } => send_answer(&mut respond, &bytes, &mut report),
        Dispatched::Queued(rx) => {
            let shared = shared.clone();
            streams.push(Box::pin(async move {
                {
                    let writer = write_stream(&shared, respond, rx, &mut report);
                    let feeder = feed_body(feed, recv, max);
                    tokio::pin!(writer, feeder);
                    let mut feeding = true;
                    loop {
                        tokio::select! {
                            _ = &mut writer => break,
                            _ = &mut feeder, if feeding => feeding = false,
                        }
                    }
                    if feeding {
                        // A reset ends the response and the body at once: let the feeder see
                        // it (one poll; a zero timeout polls the future first), so a reader
                        // still waiting learns of the reset rather than of a closed body.
                        let _ = timeout(Duration::ZERO, &mut feeder).await;
                    }
                    // Dropping the feeder here ends the body for a reader still waiting.
                }
                drop(report);
                drop(slot);
            }));
        }
    }
}

/// Moves a streamed request body's DATA to its reader, giving flow-control window back only
/// as the reader takes the bytes, until END_STREAM, a reset, `max` bytes, or the reader
/// closing the body.
async fn feed_body(feed: crate::input::BodyFeed, mut recv: RecvStream, max: u64) {
    use crate::input::InputError;
    let mut total: u64 = 0;
    // Bytes received and not yet given back as window.
    let mut held: usize = 0;
    loop {
        let (taken, gone) = feed.take_consumed();
        if taken > 0 {
            let n = taken.min(held);
            held -= n;
            let _ = recv.flow_control().release_capacity(n);
        }
        if gone {
            return;
        }
        tokio::select! {
            next = poll_fn(|cx| recv.poll_data(cx)) => match next {
                None => break,
                Some(Err(_)) => {
                    feed.end(Err(InputError::Reset));
                    return;
                }
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if total > max {
                        feed.end(Err(InputError::TooLarge));
                        return;
                    }
                    held += chunk.len();
                    if !feed.push(chunk) {
                        return;
                    }
                }
            },
            _ = feed.wait_reader() => {}
        }
    }
    // Everything has arrived: what the reader has not taken yet no longer needs to hold the
    // connection's window. (Request trailers are not delivered for a streamed body.)
    if held > 0 {
        let _ = recv.flow_control().release_capacity(held);
    }
    feed.end(Ok(()));
}

/// The request as an HTTP/1.1 head: `:method`, `:path`, `host` from `:authority`, then the
/// fields. The h2 crate has already refused malformed pseudo-headers and connection-specific
/// fields (RFC 9113 8.2.2, 8.3.1), and its field values can hold no CR, LF or NUL.
fn http1_head(parts: &http::request::Parts) -> Vec<u8> {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let mut out = Vec::with_capacity(64 + target.len() + parts.headers.len() * 32);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    // `:authority` wins over a Host field (RFC 9113 8.3.1); without either the host is empty
    // and the env falls back to the listener's name.
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    let host = authority.or_else(|| parts.headers.get(http::header::HOST).map(|v| v.as_bytes()));
    out.extend_from_slice(host.unwrap_or(b""));
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

enum BodyError {
    TooLarge,
    Timeout,
    Reset,
    Store(io::Error),
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads a request body like HTTP/1.1 does (memory, then a temp file), releasing flow-control
/// capacity as each DATA frame is stored, so the client can send at the pace we take it in.
async fn read_body(
    shared: &Shared,
    mut recv: RecvStream,
    declared: hyperion_http::BodyFraming,
) -> Result<(Body, Fields), BodyError> {
    let max = shared.config.limits.max_body_bytes;
    if let hyperion_http::BodyFraming::Length(n) = declared {
        if n > max {
            return Err(BodyError::TooLarge);
        }
    }
    let mut body = BodyBuffer::new(shared.config.max_in_memory_body_bytes);
    let mut total: u64 = 0;
    let read_timeout = shared.config.request_read_timeout;
    loop {
        let next = timeout(read_timeout, poll_fn(|cx| recv.poll_data(cx))).await;
        let chunk = match next {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Reset),
            Ok(Some(Ok(chunk))) => chunk,
        };
        total += chunk.len() as u64;
        if total > max {
            return Err(BodyError::TooLarge);
        }
        body.extend(&chunk).map_err(BodyError::Store)?;
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    let trailers = match timeout(read_timeout, poll_fn(|cx| recv.poll_trailers(cx))).await {
        Err(_) => return Err(BodyError::Timeout),
        Ok(Ok(Some(map))) => map
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        Ok(Ok(None)) => Vec::new(),
        Ok(Err(_)) => return Err(BodyError::Reset),
    };
    let body = body.finish().map_err(BodyError::Store)?;
    Ok((body, trailers))
}

/// A static route or page-cache hit, answered on the connection task: the prebuilt head and
/// the shared body, queued together so HEADERS and DATA leave in one write.
fn send_static(
    respond: &mut SendResponse<Bytes>,
    response: &StaticResponse,
    head_only: bool,
    report: &mut Report,
) {
    let end = head_only || response.body_len() == 0;
    if let Ok(mut stream) = respond.send_response(response.h2_response(), end) {
        report.answered(response.status(), 0);
        if !end {
            let body = response.body_bytes();
            report.answered(response.status(), body.len());
            let _ = stream.send_data(body, true);
        }
    }
}

/// The engine's own short answers (errors, 503) on a stream.
fn send_simple(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    extra: &[(&'static str, &str)],
    report: &mut Report,
) {
    let body = format!("{}\n", hyperion_http::reason_phrase(status));
    let mut response = http::Response::new(());
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(http::header::CONTENT_LENGTH, body.len().into());
    headers.insert(http::header::DATE, date_value());
    for (name, value) in extra {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    if let Ok(mut stream) = respond.send_response(response, false) {
        report.answered(status, body.len());
        let _ = stream.send_data(Bytes::from(body), true);
    }
}

/// Sends an answer the engine built as HTTP/1.1 bytes (a 503, an admin endpoint) as an
/// HTTP/2 response: its status, its fields less the connection-specific ones, its body.
fn send_answer(respond: &mut SendResponse<Bytes>, bytes: &[u8], report: &mut Report) {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(at) => (&bytes[..at], &bytes[at + 4..]),
        None => (bytes, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status = lines
        .next()
        .and_then(|line| line.get(9..12))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| http::StatusCode::from_bytes(code.as_bytes()).ok())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        let framing = name == http::header::CONNECTION || name == http::header::TRANSFER_ENCODING;
        if !framing && !crate::response::is_connection_specific(name.as_ref(), value.as_bytes()) {
            headers.append(name, value);
        }
    }
    let end = body.is_empty();
    if let Ok(mut stream) = respond.send_response(response, end) {
        report.answered(status.as_u16(), body.len());
        if !end {
            let _ = stream.send_data(Bytes::copy_from_slice(body), true);
        }
    }
}

/// Why a response stopped early.
enum Stop {
    /// The client reset the stream or the connection is gone.
    Gone,
    /// No progress for `write_timeout`, or the body cannot be completed (a file shrank); the
    /// stream was reset.
    Failed,
}

/// Writes the response messages of one exchange: HEADERS, DATA as flow control allows (the
/// application thread blocks on the full channel meanwhile: backpressure), then the end of
/// the stream or trailing HEADERS.
async fn write_stream(
    shared: &Shared,
    mut respond: SendResponse<Bytes>,
    mut rx: chan::Receiver<ResponseMsg>,
    report: &mut Report,
) {
    let write_timeout = shared.config.write_timeout;
    // Until the head is sent, a reset from the client must still end the wait. Informational
    // heads (103 Early Hints) go out as they come.
    let first = loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
        };
        match msg {
            Some(ResponseMsg::Interim(head)) => {
                let _ = respond.send_informational(*head);
            }
            other => break other,
        }
    };
    let (head, body, end, mut notice) = match first {
        Some(ResponseMsg::Head2 {
            head,
            body,
            end,
            notice,
        }) => (head, body, end, notice),
        Some(ResponseMsg::File2 {
            head,
            file,
            len,
            notice,
        }) => {
            report.answered(head.status().as_u16(), len as usize);
            let sent = match respond.send_response(*head, false) {
                // Rare: boxed, so that it adds nothing to the size of every stream's future.
                Ok(mut stream) => Box::pin(send_file(&mut stream, file, len, write_timeout)).await,
                Err(_) => Err(Stop::Gone),
            };
            finished(notice, sent);
            return;
        }
        // Nothing else may come first; a dropped exchange (Abort, or no message) fails the
        // stream.
        _ => {
            respond.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    let only_head = end && body.is_empty();
    report.answered(head.status().as_u16(), body.len());
    let mut stream = match respond.send_response(*head, only_head) {
        Ok(stream) => stream,
        Err(_) => {
            finished(notice, Err(Stop::Gone));
            return;
        }
    };
    if only_head {
        finished(notice, Ok(()));
        return;
    }
    if !body.is_empty() || end {
        if let Err(stop) = send_data(&mut stream, Bytes::from(body), end, write_timeout).await {
            finished(notice, Err(stop));
            return;
        }
        if end {
            finished(notice, Ok(()));
            return;
        }
    }
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => {
                finished(notice.take(), Err(Stop::Gone));
                return;
            }
        };
        let result = match msg {
            Some(ResponseMsg::Bytes(bytes)) => {
                report.bytes += bytes.len() as u64;
                match send_data(&mut stream, Bytes::from(bytes), false, write_timeout).await {
                    Ok(()) => continue,
                    Err(stop) => Err(stop),
                }
            }
            Some(ResponseMsg::Final {
                bytes, notice: n, ..
            }) => {
                notice = n;
                report.bytes += bytes.len() as u64;
                send_data(&mut stream, Bytes::from(bytes), true, write_timeout).await
            }
            Some(ResponseMsg::Trailers {
                trailers,
                notice: n,
            }) => {
                notice = n;
                stream.send_trailers(*trailers).map_err(|_| Stop::Gone)
            }
            // Abort (a short body, a failed app), a dropped exchange, or a message that has
            // no meaning here: the stream cannot end normally.
            _ => {
                stream.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
        };
        finished(notice, result);
        return;
    }
}

/// Tells a waiting application thread whether its response was handed to the connection
/// whole (`rack.response_finished`).
fn finished(notice: Option<crate::response::WrittenNotice>, result: Result<(), Stop>) {
    if let Some(notice) = notice {
        notice.done(result.is_ok());
    }
}

/// Queues `data` as DATA frames no faster than the client's flow-control window opens, so
/// a slow reader holds back the application rather than filling memory.
async fn send_data(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    write_timeout: Duration,
) -> Result<(), Stop> {
    if data.is_empty() {
        return if end {
            stream.send_data(data, true).map_err(|_| Stop::Gone)
        } else {
            Ok(())
        };
    }
    // What the windows allow now goes at once: all of a small body, as a rule. Waiting for
    // window is its own boxed future, which keeps every stream's future small (one allocation
    // the allocator serves from its per-thread cache).
    send_available(stream, &mut data, end)?;
    if data.is_empty() {
        return Ok(());
    }
    Box::pin(send_when_window(stream, data, end, write_timeout)).await
}

/// Sends as much of `data` as the stream may send now.
fn send_available(stream: &mut SendStream<Bytes>, data: &mut Bytes, end: bool) -> Result<(), Stop> {
    stream.reserve_capacity(data.len());
    let capacity = stream.capacity();
    if capacity == 0 {
        return Ok(());
    }
    let chunk = data.split_to(capacity.min(data.len()));
    stream
        .send_data(chunk, end && data.is_empty())
        .map_err(|_| Stop::Gone)
}

/// Sends `data` as window opens, giving up when none opens for `write_timeout`.
async fn send_when_window(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    write_timeout: Duration,
) -> Result<(), Stop> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let deadline = Instant::now() + write_timeout;
        while stream.capacity() == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, poll_fn(|cx| stream.poll_capacity(cx))).await {
                Err(_) => {
                    stream.send_reset(Reason::CANCEL);
                    return Err(Stop::Failed);
                }
                Ok(None) | Ok(Some(Err(_))) => return Err(Stop::Gone),
                Ok(Some(Ok(_))) => {}
            }
        }
        send_available(stream, &mut data, end)?;
    }
    Ok(())
}

/// Sends the first `len` bytes of `file` as DATA, read in 64 KiB pieces (the reads of a
/// cached page complete at once).
async fn send_file(
    stream: &mut SendStream<Bytes>,
    file: std::fs::File,
    len: u64,
    write_timeout: Duration,
) -> Result<(), Stop> {
    use std::os::unix::fs::FileExt;
    let mut offset = 0u64;
    while offset < len {
        let want = (len - offset).min(SPILL_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) | Err(_) => {
                // The file shrank after its length was announced: the stream cannot end well.
                stream.send_reset(Reason::INTERNAL_ERROR);
                return Err(Stop::Failed);
            }
            Ok(n) => n,
        };
        buf.truncate(n);
        offset += n as u64;
        send_data(stream, Bytes::from(buf), offset >= len, write_timeout).await?;
    }
    Ok(())
}

/// Watches the frames a client sends for floods the h2 crate does not bound by itself, by
/// reading the 9-byte frame headers as the bytes pass.
struct Meter {
    shared: Arc<Shared>,
    tripped: Arc<Notify>,
    /// Preface bytes still to skip.
    preface_left: usize,
    header: [u8; 9],
    header_len: usize,
    payload_left: usize,
    window_start: Instant,
    control_frames: u32,
    continuations: u32,
    stopped: bool,
}

impl Meter {
    fn new(shared: Arc<Shared>, tripped: Arc<Notify>) -> Meter {
        Meter {
            shared,
            tripped,
            preface_left: PREFACE.len(),
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            window_start: Instant::now(),
            control_frames: 0,
            continuations: 0,
            stopped: false,
        }
    }

    /// Accounts for bytes read; false once a limit is exceeded.
    fn observe(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == 9 {
                self.header_len = 0;
                let h = self.header;
                self.payload_left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                if !self.frame(h[3], h[4]) {
                    return false;
                }
            }
        }
        true
    }

    fn frame(&mut self, kind: u8, flags: u8) -> bool {
        const HEADERS: u8 = 0x1;
        const RST_STREAM: u8 = 0x3;
        const SETTINGS: u8 = 0x4;
        const PING: u8 = 0x6;
        const CONTINUATION: u8 = 0x9;
        const ACK: u8 = 0x1;
        match kind {
            SETTINGS | PING if flags & ACK == 0 => {
                if self.window_start.elapsed() >= Duration::from_secs(1) {
                    self.window_start = Instant::now();
                    self.control_frames = 0;
                }
                self.control_frames += 1;
                self.control_frames <= MAX_CONTROL_FRAMES_PER_SECOND
            }
            HEADERS => {
                self.continuations = 0;
                true
            }
            CONTINUATION => {
                self.continuations += 1;
                self.continuations <= MAX_CONTINUATIONS
            }
            RST_STREAM => {
                bump(&self.shared.stats.h2_streams_reset);
                true
            }
            _ => true,
        }
    }
}

/// The connection's stream with the bytes already read in front of it, metered.
struct Metered<S> {
    io: S,
    prefix: Bytes,
    meter: Meter,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.meter.stopped {
            // Nothing more is read from a client past a limit; the connection task sends
            // GOAWAY and closes.
            return Poll::Pending;
        }
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            let chunk = this.prefix.split_to(n);
            if !this.meter.observe(&chunk) {
                return this.trip();
            }
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !this.meter.observe(&buf.filled()[before..]) {
                    buf.set_filled(before);
                    return this.trip();
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S> Metered<S> {
    fn trip(&mut self) -> Poll<io::Result<()>> {
        self.meter.stopped = true;
        self.meter.tripped.notify_one();
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_is_recognised_from_its_first_bytes() {
        assert_eq!(
            preface_state(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(true)
        );
        assert_eq!(preface_state(b"PRI * HT"), Some(false));
        assert_eq!(preface_state(b"POST / HTTP/1.1\r\n"), None);
        assert_eq!(preface_state(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn request_becomes_an_http11_head_with_authority_as_host() {
        let request = http::Request::builder()
            .method("POST")
            .uri("https://example.com:8443/a/b?x=1")
            .header("host", "ignored.example")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let head = String::from_utf8(http1_head(&parts)).unwrap();
        assert_eq!(
            head,
            "POST /a/b?x=1 HTTP/1.1\r\nhost: example.com:8443\r\ncookie: a=1\r\ncookie: b=2\r\n\r\n"
        );
    }

    #[test]
    fn meter_counts_control_frames_and_continuations() {
        let shared = crate::engine::test_shared();
        let mut meter = Meter::new(shared.clone(), Arc::new(Notify::new()));
        assert!(meter.observe(PREFACE));
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        for _ in 0..MAX_CONTROL_FRAMES_PER_SECOND {
            assert!(meter.observe(&ping));
        }
        assert!(!meter.observe(&ping));

        let mut meter = Meter::new(shared, Arc::new(Notify::new()));
        assert!(meter.observe(PREFACE));
        assert!(meter.observe(&[0, 0, 0, 1, 0, 0, 0, 0, 1]));
        let continuation = [0, 0, 0, 9, 0, 0, 0, 0, 1];
        for _ in 0..MAX_CONTINUATIONS {
            assert!(meter.observe(&continuation));
        }
        assert!(!meter.observe(&continuation));
    }
}
