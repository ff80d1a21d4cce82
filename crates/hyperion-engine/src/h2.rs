//! HTTP/2 connections on the I/O thread's tokio runtime, with the protocol kept by
//! `hyperion_h2` (frames, HPACK, stream states and flow control, without I/O).
//!
//! [`serve`] runs one connection over any byte stream: a plain socket whose first bytes were
//! the connection preface (h2c with prior knowledge), or a TLS stream that negotiated `h2` by
//! ALPN. The connection task reads, hands the bytes to the protocol state, answers what can
//! be answered at once and writes everything queued in one write. Each stream becomes an
//! ordinary [`crate::Exchange`]: its pseudo-headers and headers become the request head an
//! HTTP/1.1 request gets, checked as the HTTP/1.1 parser checks one (`assemble_head`), so
//! routing, limits and the Rack env are built by the same code as for HTTP/1.1 (the exchange
//! is marked [`Protocol::Http2`]). Static routes and page-cache hits are answered on the
//! connection task itself from a prebuilt header block and a shared body. Every other stream becomes a future that reads the request body (with
//! flow control), hands the exchange to the application threads and writes the response
//! messages that come back; the connection task drives these futures alongside its socket,
//! so a slow handler never holds up the other streams, and the responses that arrived while
//! the I/O thread was busy leave together in one write.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyperion_h2::{ConnError, Connection, Event, Reason, RequestHead};
use hyperion_http::{assemble_head, HeadParts, HeaderSpan, Span};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::body::{BodyBuffer, SPILL_CHUNK};
use crate::chan;
use crate::dispatch::{dispatch, rejected, static_hit, Dispatched, Request};
use crate::engine::{Phase, Shared};
use crate::exchange::{Body, ListenerInfo, Peer, Protocol};
use crate::relay::RelayCache;
use crate::response::{HeadBuilder, ResponseMsg};
use crate::routes::StaticResponse;
use crate::stats::bump;

/// What an h2c client sends first.
pub(crate) const PREFACE: &[u8] = hyperion_h2::PREFACE;
/// How often a draining connection checks whether its streams are done.
const DRAIN_CHECK: Duration = Duration::from_secs(1);
/// How long the last frames (GOAWAY) get to leave before the socket closes.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Whether `buf` (the first bytes of a plain connection) is, or may still become, the HTTP/2
/// connection preface: `Some(true)` complete, `Some(false)` a prefix of it, `None` not h2c.
pub(crate) fn preface_state(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return None;
    }
    Some(n == PREFACE.len())
}

/// A thread with a tokio runtime for HTTP/2 connections the io_uring loop recognised: HTTP/2
/// connections are served by tokio tasks. Started on first use; ends when the engine has stopped.
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

/// The protocol state of one connection, shared by its task and its streams' futures (all
/// polled by that one task, so the lock is never contended).
#[derive(Clone)]
struct Core(Arc<Mutex<Connection>>);

impl Core {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One stream, as its future sees it.
struct StreamRef {
    core: Core,
    id: u32,
}

impl StreamRef {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.core.lock()
    }

    fn send_head(&self, block: &[u8], end: bool) -> Result<(), Stop> {
        self.lock()
            .send_block(self.id, block, end)
            .map_err(|_| Stop::Gone)
    }

    fn reset(&self, reason: Reason) {
        self.lock().reset(self.id, reason);
    }
}

fn protocol_config(shared: &Shared) -> hyperion_h2::Config {
    let h2 = &shared.config.h2;
    hyperion_h2::Config {
        max_concurrent_streams: h2.max_concurrent_streams,
        initial_window_size: h2.initial_window_size,
        connection_window_size: h2.initial_window_size.max(1 << 20),
        max_frame_size: h2.max_frame_size,
        max_header_list_size: h2.max_header_list_size,
        ..hyperion_h2::Config::default()
    }
}

/// Serves one HTTP/2 connection until it closes.
///
/// `io` is the connection's byte stream (a socket, or a TLS stream after ALPN chose `h2`);
/// `prefix` holds bytes already read from it (for h2c, at least the connection preface; may be
/// empty). The connection counts as open for the engine's graceful stop for as long as the
/// caller's own bookkeeping says so; on stop it sends GOAWAY and lets its streams finish.
pub(crate) async fn serve<S>(
    mut io: S,
    prefix: Bytes,
    peer: Peer,
    shared: Arc<Shared>,
    listener: Arc<ListenerInfo>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    bump(&shared.stats.h2_connections);
    let core = Core(Arc::new(Mutex::new(Connection::new(protocol_config(
        &shared,
    )))));
    let write_timeout = shared.config.write_timeout;
    let mut buf = BytesMut::with_capacity(READ_CHUNK.max(prefix.len()));
    buf.extend_from_slice(&prefix);
    let mut out: Vec<u8> = Vec::new();
    let mut phase = shared.phase.subscribe();
    let mut draining = false;
    let idle = shared.config.idle_keepalive;
    let mut last_stream = tokio::time::Instant::now();
    // Until the client's preface and SETTINGS are in, the read timeout bounds the wait.
    let mut handshaken = false;
    let idle_timer = tokio::time::sleep(shared.config.request_read_timeout);
    tokio::pin!(idle_timer);
    // The streams waiting on a request body or on the application threads. Response
    // messages wake this task once, however many arrive before it runs; what the streams
    // queue in the meantime leaves in one write.
    let mut streams: FuturesUnordered<StreamTask> = FuturesUnordered::new();
    // Their wake-ups from application threads go through the I/O thread's relay: however
    // many connections get responses while the I/O thread is busy, it is signalled once.
    let mut relayed = RelayCache::default();
    let mut closing = false;
    loop {
        if !draining && *phase.borrow_and_update() != Phase::Running {
            draining = true;
            core.lock().go_away();
            idle_timer
                .as_mut()
                .reset(tokio::time::Instant::now() + DRAIN_CHECK);
        }
        let done = {
            let mut conn = core.lock();
            if !buf.is_empty() && !closing {
                // The time of this read: the start of every request it brought.
                let now = Instant::now();
                if let Err(e) = conn.recv(&mut buf, now) {
                    count_error(&shared, e);
                    closing = true;
                }
                let resets = conn.take_resets_received();
                if resets > 0 {
                    shared
                        .stats
                        .h2_streams_reset
                        .fetch_add(resets as u64, Ordering::Relaxed);
                }
                if !handshaken && conn.is_open() {
                    handshaken = true;
                    idle_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle);
                }
                let mut took = false;
                while let Some(event) = conn.next_event() {
                    took = true;
                    let at = Taken {
                        shared: &shared,
                        core: &core,
                        peer,
                        listener: &listener,
                        streams: &mut streams,
                        now,
                    };
                    on_event(at, &mut conn, event);
                }
                if took {
                    last_stream = tokio::time::Instant::from_std(now);
                }
            }
            std::mem::swap(conn.output(), &mut out);
            closing || conn.is_done()
        };
        if !out.is_empty() {
            let limit = if done { GOAWAY_FLUSH } else { write_timeout };
            let written = timeout(limit, async {
                io.write_all(&out).await?;
                io.flush().await
            })
            .await;
            out.clear();
            if !matches!(written, Ok(Ok(()))) {
                break;
            }
            core.lock().flushed();
            continue;
        }
        if done {
            break;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = poll_fn(|cx| {
                drive(&mut streams, &core, &mut Context::from_waker(relayed.waker(cx.waker())))
            }), if !streams.is_empty() => {}
            read = io.read_buf(&mut buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
            }
            _ = phase.changed(), if !draining => {}
            _ = &mut idle_timer => {
                let now = tokio::time::Instant::now();
                let mut conn = core.lock();
                if !handshaken {
                    break;
                }
                if draining {
                    // GOAWAY is out; once no stream is left the connection has nothing more
                    // to say, even if the client never acknowledges the shutdown.
                    if !conn.has_streams() {
                        break;
                    }
                    idle_timer.as_mut().reset(now + DRAIN_CHECK);
                } else if conn.has_streams() {
                    idle_timer.as_mut().reset(now + idle);
                } else if last_stream + idle > now {
                    idle_timer.as_mut().reset(last_stream + idle);
                } else {
                    draining = true;
                    conn.go_away();
                    idle_timer.as_mut().reset(now + DRAIN_CHECK);
                }
            }
        }
    }
    // Streams still open learn that the connection is gone; they get a moment to pass that
    // on (a reader waiting for request body learns of the reset, an application thread that
    // its response has nowhere to go).
    core.lock().close_all();
    let _ = timeout(GOAWAY_FLUSH, async {
        while streams.next().await.is_some() {}
    })
    .await;
}

/// One stream's handling after it was taken in: reading its body, waiting for its response
/// and writing it.
type StreamTask = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Polls the connection's streams until none can make progress; ready once one has finished
/// or output is waiting to be written, pending otherwise.
fn drive(
    streams: &mut FuturesUnordered<StreamTask>,
    core: &Core,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut finished = false;
    loop {
        match streams.poll_next_unpin(cx) {
            Poll::Ready(Some(())) => finished = true,
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => break,
        }
    }
    if finished || !core.lock().output().is_empty() {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

fn count_error(shared: &Shared, e: ConnError) {
    if e.is_abuse() {
        bump(&shared.stats.h2_abuse);
    } else if e.reason != Reason::NO_ERROR {
        bump(&shared.stats.h2_protocol_errors);
    }
}

/// What the handling of a new stream needs from its connection.
struct Taken<'a> {
    shared: &'a Arc<Shared>,
    core: &'a Core,
    peer: Peer,
    listener: &'a Arc<ListenerInfo>,
    streams: &'a mut FuturesUnordered<StreamTask>,
    /// When the bytes holding these requests were read.
    now: Instant,
}

impl Taken<'_> {
    fn stream(&self, id: u32) -> StreamRef {
        StreamRef {
            core: self.core.clone(),
            id,
        }
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
    /// The method, then the path without its query.
    target: Vec<u8>,
    method_len: usize,
    request_id: Option<Vec<u8>>,
    peer: Peer,
    started: Instant,
    status: u16,
    bytes: u64,
}

impl Report {
    fn new(shared: &Arc<Shared>, head: &RequestHead, peer: Peer, started: Instant) -> Report {
        crate::observe::request_started(shared);
        let request_id = if shared.config.log.access_log {
            head.field(b"x-request-id").map(|v| v.to_vec())
        } else {
            None
        };
        let method = head.method();
        let path = path_of(head);
        let mut target = Vec::with_capacity(method.len() + path.len());
        target.extend_from_slice(method);
        target.extend_from_slice(path);
        Report {
            shared: shared.clone(),
            target,
            method_len: method.len(),
            request_id,
            peer,
            started,
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
        let (method, path) = self.target.split_at(self.method_len);
        crate::observe::request_completed(
            &self.shared,
            crate::observe::Completion {
                method,
                path,
                status: self.status,
                bytes: self.bytes,
                started: self.started,
                peer: self.peer,
                version: "HTTP/2",
                request_id: self.request_id.as_deref(),
            },
        );
    }
}

/// The request's path without its query; "/" when empty.
fn path_of(head: &RequestHead) -> &[u8] {
    let path = head.path();
    let path = match path.iter().position(|&b| b == b'?') {
        Some(at) => &path[..at],
        None => path,
    };
    if path.is_empty() {
        b"/"
    } else {
        path
    }
}

fn on_event(at: Taken<'_>, conn: &mut Connection, event: Event) {
    match event {
        Event::TooLarge { stream } => {
            bump(&at.shared.stats.h2_streams);
            rejected(at.shared, at.peer, 431, "head_too_large");
            answer_now(&at, conn, stream, Answer::simple(431), None);
        }
        Event::Request {
            stream,
            head,
            end_stream,
        } => on_request(at, conn, stream, head, end_stream),
    }
}

/// A new stream: refuse it, answer it at once (static routes), or start its future.
fn on_request(at: Taken<'_>, conn: &mut Connection, id: u32, head: RequestHead, end_stream: bool) {
    let shared = at.shared;
    let peer = at.peer;
    bump(&shared.stats.h2_streams);
    if end_stream {
        if let Some((response, head_only)) = static_hit(shared, head.method(), path_of(&head)) {
            let mut report = Report::new(shared, &head, peer, at.now);
            let answer = Answer::of_static(&response, head_only);
            answer_now(&at, conn, id, answer, Some(&mut report));
            return;
        }
    }
    let mut report = Report::new(shared, &head, peer, at.now);
    let Some(slot) = StreamSlot::take(shared) else {
        bump(&shared.stats.h2_streams_refused);
        conn.reset(id, Reason::REFUSED_STREAM);
        return;
    };
    let https = head.scheme() == b"https";
    let streams_body = streams_body(&head);
    let (head_bytes, parsed) = request_head(head, &shared.config.limits);
    let parsed = match parsed {
        Ok(head) => head,
        Err(e) => {
            bump(&shared.stats.parse_errors);
            let status = e.status();
            rejected(shared, peer, status, e.reason());
            answer_now(&at, conn, id, Answer::simple(status), Some(&mut report));
            return;
        }
    };
    let protocol = Protocol::Http2 { https };
    if end_stream {
        let request = Request {
            head: parsed,
            head_bytes,
            body: Body::Memory(Vec::new()),
            trailers: Vec::new(),
            protocol,
        };
        match engine_answer(dispatch(shared, request, peer, at.listener)) {
            Ok(answer) => answer_now(&at, conn, id, answer, Some(&mut report)),
            Err(rx) => {
                let shared = shared.clone();
                let stream = at.stream(id);
                at.streams.push(Box::pin(async move {
                    write_stream(&shared, &stream, rx, &mut report).await;
                    drop(report);
                    drop(slot);
                }));
            }
        }
        return;
    }
    let declared = parsed.framing;
    if streams_body {
        stream_exchange(at, conn, id, parsed, head_bytes, protocol, report, slot);
        return;
    }
    let shared = shared.clone();
    let listener = at.listener.clone();
    let stream = at.stream(id);
    at.streams.push(Box::pin(async move {
        let write_timeout = shared.config.write_timeout;
        let (body, trailers) = match read_body(&shared, &stream, declared).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                rejected(&shared, peer, 413, "body_too_large");
                answer(&stream, Answer::simple(413), &mut report, write_timeout).await;
                return;
            }
            Err(BodyError::Timeout) => {
                bump(&shared.stats.read_timeouts);
                rejected(&shared, peer, 408, "read_timeout");
                answer(&stream, Answer::simple(408), &mut report, write_timeout).await;
                return;
            }
            Err(BodyError::Store(e)) => {
                let _ = crate::dispatch::internal_error_response(&shared, e);
                answer(&stream, Answer::simple(500), &mut report, write_timeout).await;
                return;
            }
            Err(BodyError::Reset) => return,
        };
        let request = Request {
            head: parsed,
            head_bytes,
            body,
            trailers,
            protocol,
        };
        match engine_answer(dispatch(&shared, request, peer, &listener)) {
            Ok(reply) => answer(&stream, reply, &mut report, write_timeout).await,
            Err(rx) => write_stream(&shared, &stream, rx, &mut report).await,
        }
        drop(report);
        drop(slot);
    }));
}

/// Whether the application reads this request's body while it arrives instead of after it
/// has been read whole: gRPC (`application/grpc`, `application/grpc+proto`, ...), whose client
/// and bidirectional streams are open-ended message sequences.
fn streams_body(head: &RequestHead) -> bool {
    head.field(b"content-type").is_some_and(|ct| {
        ct.len() >= 16
            && ct[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(ct.get(16), None | Some(b'+' | b';'))
    })
}

/// A request whose body the application reads as it arrives: dispatched at once, with the
/// stream's future feeding DATA to the reader while it writes the response.
#[allow(clippy::too_many_arguments)]
fn stream_exchange(
    at: Taken<'_>,
    conn: &mut Connection,
    id: u32,
    head: hyperion_http::RequestHead,
    head_bytes: Bytes,
    protocol: Protocol,
    mut report: Report,
    slot: StreamSlot,
) {
    let shared = at.shared;
    let max = shared.config.limits.max_body_bytes;
    if let hyperion_http::BodyFraming::Length(n) = head.framing {
        if n > max {
            rejected(shared, at.peer, 413, "body_too_large");
            answer_now(&at, conn, id, Answer::simple(413), Some(&mut report));
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
    match engine_answer(dispatch(shared, request, at.peer, at.listener)) {
        Ok(answer) => answer_now(&at, conn, id, answer, Some(&mut report)),
        Err(rx) => {
            let shared = shared.clone();
            let stream = at.stream(id);
            at.streams.push(Box::pin(async move {
                {
                    let writer = write_stream(&shared, &stream, rx, &mut report);
                    let feeder = feed_body(feed, &stream, max);
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
async fn feed_body(feed: crate::input::BodyFeed, stream: &StreamRef, max: u64) {
    use crate::input::InputError;
    let mut total: u64 = 0;
    // Bytes received and not yet given back as window.
    let mut held: usize = 0;
    loop {
        let (taken, gone) = feed.take_consumed();
        if taken > 0 {
            let n = taken.min(held);
            held -= n;
            stream.lock().release(stream.id, n as u32);
        }
        if gone {
            return;
        }
        tokio::select! {
            next = poll_fn(|cx| stream.lock().poll_data(stream.id, cx)) => match next {
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
        stream.lock().release(stream.id, held as u32);
    }
    feed.end(Ok(()));
}

/// The request as the engine's other requests are: the HTTP/2 head's own bytes, read through
/// the same checks and limits as an HTTP/1.1 head (`assemble_head`), with `:path` as the
/// target ("/" without one) and `host` as the first field, from `:authority`, else from the
/// first Host field (RFC 9113 8.3.1), else empty (the env then names the listener). The
/// protocol layer has already refused malformed pseudo-headers, connection-specific fields,
/// names that are not lowercase tokens, and values with CR, LF, NUL or surrounding
/// whitespace (RFC 9113 8.2).
fn request_head(
    head: RequestHead,
    limits: &hyperion_http::Limits,
) -> (
    Bytes,
    Result<hyperion_http::RequestHead, hyperion_http::ParseError>,
) {
    let raw = head.into_raw();
    let mut bytes = raw.bytes;
    let span = |(start, end): (u32, u32)| Span { start, end };
    let push = |bytes: &mut Vec<u8>, text: &[u8]| {
        let start = bytes.len() as u32;
        bytes.extend_from_slice(text);
        Span {
            start,
            end: bytes.len() as u32,
        }
    };
    let is_host = |name: Span, bytes: &[u8]| name.slice(bytes) == b"host";
    let target = match raw.path {
        Some((start, end)) if end > start => span((start, end)),
        _ => push(&mut bytes, b"/"),
    };
    let host = raw.authority.map(span).or_else(|| {
        raw.fields
            .iter()
            .find(|&&(name, _)| is_host(span(name), &bytes))
            .map(|&(_, value)| span(value))
    });
    let mut headers = Vec::with_capacity(raw.fields.len() + 1);
    headers.push(HeaderSpan {
        name: push(&mut bytes, b"host"),
        value: host.unwrap_or_default(),
    });
    for &(name, value) in &raw.fields {
        if !is_host(span(name), &bytes) {
            headers.push(HeaderSpan {
                name: span(name),
                value: span(value),
            });
        }
    }
    let parts = HeadParts {
        method: span(raw.method),
        target,
        headers,
    };
    let parsed = assemble_head(&bytes, parts, limits);
    (Bytes::from(bytes), parsed)
}

enum BodyError {
    TooLarge,
    Timeout,
    Reset,
    Store(io::Error),
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads a request body like HTTP/1.1 does (memory, then a temp file), giving flow-control
/// window back as each DATA frame is stored, so the client can send at the pace we take it in.
async fn read_body(
    shared: &Shared,
    stream: &StreamRef,
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
        let next = timeout(
            read_timeout,
            poll_fn(|cx| stream.lock().poll_data(stream.id, cx)),
        )
        .await;
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
        stream.lock().release(stream.id, chunk.len() as u32);
    }
    let trailers = stream.lock().take_trailers(stream.id).unwrap_or_default();
    let body = body.finish().map_err(BodyError::Store)?;
    Ok((body, trailers))
}

/// A whole answer the engine gives by itself: the status, the HPACK head and the body.
struct Answer {
    status: u16,
    block: Bytes,
    body: Bytes,
}

impl Answer {
    /// A static route or page-cache hit: the route's prebuilt block and shared body.
    fn of_static(response: &StaticResponse, head_only: bool) -> Answer {
        Answer {
            status: response.status(),
            block: response.h2_block(),
            body: if head_only {
                Bytes::new()
            } else {
                response.body_bytes()
            },
        }
    }

    /// The engine's own short answers (errors): a plain-text reason phrase.
    fn simple(status: u16) -> Answer {
        let body = format!("{}\n", hyperion_http::reason_phrase(status));
        let mut head = HeadBuilder::for_h2(status as i64, 64).expect("the engine's own status");
        head.header(b"content-type", b"text/plain; charset=utf-8")
            .expect("a valid field");
        Answer::from_head(head, Bytes::from(body))
    }

    /// An answer the engine built as HTTP/1.1 bytes (a 503, an admin endpoint): its status,
    /// its fields less the connection-specific ones, its body.
    fn from_http1(bytes: &[u8]) -> Answer {
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
            .and_then(|code| code.parse::<i64>().ok())
            .and_then(|code| HeadBuilder::for_h2(code, bytes.len()).ok());
        let mut builder = match status {
            Some(builder) => builder,
            None => return Answer::simple(500),
        };
        for line in lines {
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                // The engine's own lines: a field it would refuse is left out.
                let _ = builder.header(&line[..colon], line[colon + 1..].trim_ascii());
            }
        }
        Answer::from_head(builder, Bytes::copy_from_slice(body))
    }

    fn from_head(head: HeadBuilder, body: Bytes) -> Answer {
        match head.into_h2_head(Some(body.len() as u64)) {
            Ok(h2) => Answer {
                status: h2.status,
                block: Bytes::from(h2.block),
                body,
            },
            Err(_) => Answer::simple(500),
        }
    }
}

/// A dispatched request: what the engine answered by itself (a static route, an admin
/// endpoint, a 503), or the channel its application thread answers on.
fn engine_answer(dispatched: Dispatched) -> Result<Answer, chan::Receiver<ResponseMsg>> {
    match dispatched {
        Dispatched::Static {
            response,
            head_only,
            ..
        } => Ok(Answer::of_static(&response, head_only)),
        Dispatched::Answered { bytes, .. } => Ok(Answer::from_http1(&bytes)),
        Dispatched::Queued(rx) => Err(rx),
    }
}

/// Queues an answer on the connection task: the head, and the body if the windows allow it
/// now (as a rule), else from a future of its own. HEADERS and DATA leave in one write.
fn answer_now(
    at: &Taken<'_>,
    conn: &mut Connection,
    id: u32,
    answer: Answer,
    report: Option<&mut Report>,
) {
    let end = answer.body.is_empty();
    if conn.send_block(id, &answer.block, end).is_err() {
        return;
    }
    if let Some(report) = report {
        report.answered(answer.status, answer.body.len());
    }
    if end {
        return;
    }
    match conn.capacity(id) {
        Ok(room) if room >= answer.body.len() => {
            let _ = conn.send_data(id, &answer.body, true);
        }
        Ok(_) => {
            let stream = at.stream(id);
            let write_timeout = at.shared.config.write_timeout;
            at.streams.push(Box::pin(async move {
                let _ = send_data(&stream, answer.body, true, write_timeout).await;
            }));
        }
        Err(_) => {}
    }
}

/// The same from a stream's future.
async fn answer(stream: &StreamRef, answer: Answer, report: &mut Report, write_timeout: Duration) {
    let end = answer.body.is_empty();
    if stream.send_head(&answer.block, end).is_err() {
        return;
    }
    report.answered(answer.status, answer.body.len());
    if !end {
        let _ = send_data(stream, answer.body, true, write_timeout).await;
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
    stream: &StreamRef,
    mut rx: chan::Receiver<ResponseMsg>,
    report: &mut Report,
) {
    let write_timeout = shared.config.write_timeout;
    // Until the head is sent, a reset from the client must still end the wait. Informational
    // heads (103 Early Hints) go out as they come.
    let first = loop {
        let Some(msg) = recv_or_gone(&mut rx, stream).await else {
            return;
        };
        match msg {
            Some(ResponseMsg::Interim(head)) => {
                let _ = stream.send_head(&head.block, false);
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
            report.answered(head.status, len as usize);
            let sent = match stream.send_head(&head.block, len == 0) {
                // Rare: boxed, so that it adds nothing to the size of every stream's future.
                Ok(()) if len > 0 => Box::pin(send_file(stream, file, len, write_timeout)).await,
                other => other,
            };
            finished(notice, sent);
            return;
        }
        // Nothing else may come first; a dropped exchange (Abort, or no message) fails the
        // stream.
        _ => {
            stream.reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    let only_head = end && body.is_empty();
    report.answered(head.status, body.len());
    if let Err(stop) = stream.send_head(&head.block, only_head) {
        finished(notice, Err(stop));
        return;
    }
    if only_head {
        finished(notice, Ok(()));
        return;
    }
    if !body.is_empty() || end {
        if let Err(stop) = send_data(stream, Bytes::from(body), end, write_timeout).await {
            finished(notice, Err(stop));
            return;
        }
        if end {
            finished(notice, Ok(()));
            return;
        }
    }
    loop {
        let Some(msg) = recv_or_gone(&mut rx, stream).await else {
            finished(notice.take(), Err(Stop::Gone));
            return;
        };
        let result = match msg {
            Some(ResponseMsg::Bytes(bytes)) => {
                report.bytes += bytes.len() as u64;
                match send_data(stream, Bytes::from(bytes), false, write_timeout).await {
                    Ok(()) => continue,
                    Err(stop) => Err(stop),
                }
            }
            Some(ResponseMsg::Final {
                bytes, notice: n, ..
            }) => {
                notice = n;
                report.bytes += bytes.len() as u64;
                send_data(stream, Bytes::from(bytes), true, write_timeout).await
            }
            Some(ResponseMsg::Trailers {
                trailers,
                notice: n,
            }) => {
                notice = n;
                stream
                    .lock()
                    .send_trailers(
                        stream.id,
                        trailers
                            .iter()
                            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                    )
                    .map_err(|_| Stop::Gone)
            }
            // Abort (a short body, a failed app), a dropped exchange, or a message that has
            // no meaning here: the stream cannot end normally.
            _ => {
                stream.reset(Reason::INTERNAL_ERROR);
                return;
            }
        };
        finished(notice, result);
        return;
    }
}

/// The next response message (`None` inside once every sender is gone), or `None` when the
/// client reset the stream or the connection ended first. A message already there wins.
/// (One poll function rather than `select!` over two futures: no per-poll random branch
/// order, and a smaller future for every stream.)
async fn recv_or_gone(
    rx: &mut chan::Receiver<ResponseMsg>,
    stream: &StreamRef,
) -> Option<Option<ResponseMsg>> {
    poll_fn(|cx| {
        if let Poll::Ready(msg) = rx.poll_recv(cx) {
            return Poll::Ready(Some(msg));
        }
        stream.lock().poll_gone(stream.id, cx).map(|()| None)
    })
    .await
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
    stream: &StreamRef,
    mut data: Bytes,
    end: bool,
    write_timeout: Duration,
) -> Result<(), Stop> {
    loop {
        {
            let mut conn = stream.lock();
            let room = conn.capacity(stream.id).map_err(|_| Stop::Gone)?;
            if room > 0 || data.is_empty() {
                let n = room.min(data.len());
                let last = n == data.len();
                conn.send_data(stream.id, &data[..n], end && last)
                    .map_err(|_| Stop::Gone)?;
                if last {
                    return Ok(());
                }
                data.advance(n);
                continue;
            }
        }
        // Waiting for window is its own boxed future, which keeps every stream's future small.
        Box::pin(wait_for_window(stream, write_timeout)).await?;
    }
}

/// Waits until the stream may send again, giving up when no window opens for
/// `write_timeout`.
async fn wait_for_window(stream: &StreamRef, write_timeout: Duration) -> Result<(), Stop> {
    match timeout(
        write_timeout,
        poll_fn(|cx| stream.lock().poll_capacity(stream.id, cx)),
    )
    .await
    {
        Err(_) => {
            stream.reset(Reason::CANCEL);
            Err(Stop::Failed)
        }
        Ok(Err(_)) => Err(Stop::Gone),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Sends the first `len` bytes of `file` as DATA, read in 64 KiB pieces (the reads of a
/// cached page complete at once).
async fn send_file(
    stream: &StreamRef,
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
                stream.reset(Reason::INTERNAL_ERROR);
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

    fn request(fields: &[(&str, &str)]) -> RequestHead {
        let mut conn = Connection::new(hyperion_h2::Config::default());
        let mut encoder = hyperion_h2::hpack::Encoder::new();
        let mut block = Vec::new();
        for (name, value) in fields {
            encoder.field(name.as_bytes(), value.as_bytes(), &mut block);
        }
        let mut input = BytesMut::from(PREFACE);
        input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let len = (block.len() as u32).to_be_bytes();
        input.extend_from_slice(&[len[1], len[2], len[3], 1, 0x5, 0, 0, 0, 1]);
        input.extend_from_slice(&block);
        conn.recv(&mut input, Instant::now())
            .expect("a valid request");
        match conn.next_event() {
            Some(Event::Request { head, .. }) => head,
            other => panic!("no request: {other:?}"),
        }
    }

    /// The head the engine reads, as `METHOD target` and `name: value` lines.
    fn as_text(head: RequestHead) -> String {
        let (bytes, parsed) = request_head(head, &hyperion_http::Limits::default());
        let parsed = parsed.expect("a valid head");
        let mut text = format!(
            "{} {}",
            String::from_utf8_lossy(parsed.method.slice(&bytes)),
            String::from_utf8_lossy(parsed.target.slice(&bytes))
        );
        for h in &parsed.headers {
            text.push_str(&format!(
                "\n{}: {}",
                String::from_utf8_lossy(h.name.slice(&bytes)),
                String::from_utf8_lossy(h.value.slice(&bytes))
            ));
        }
        text
    }

    #[test]
    fn authority_becomes_the_host_field_and_other_host_fields_go() {
        let head = request(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "example.com:8443"),
            (":path", "/a/b?x=1"),
            ("host", "ignored.example"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        assert_eq!(
            as_text(head),
            "POST /a/b?x=1\nhost: example.com:8443\ncookie: a=1\ncookie: b=2"
        );
    }

    #[test]
    fn the_head_is_checked_as_an_http11_head_is() {
        let refused = |fields: &[(&str, &str)]| {
            let (_, parsed) = request_head(request(fields), &hyperion_http::Limits::default());
            parsed.expect_err("a refused head").status()
        };
        let base = [(":method", "GET"), (":scheme", "http"), (":authority", "h")];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            base.iter().chain(extra).copied().collect()
        };
        assert_eq!(refused(&with(&[(":path", "/a b")])), 400);
        assert_eq!(refused(&with(&[(":path", "/"), ("x", "a\x01b")])), 400);
        let long = format!("/{}", "a".repeat(9000));
        let long: &'static str = Box::leak(long.into_boxed_str());
        assert_eq!(refused(&with(&[(":path", long)])), 414);
        assert_eq!(
            refused(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a b"),
                (":path", "/")
            ]),
            400
        );
    }

    fn decoded(answer: &Answer) -> Vec<(String, String)> {
        crate::response::H2Head {
            status: answer.status,
            block: answer.block.to_vec(),
        }
        .fields()
    }

    #[test]
    fn an_http11_answer_keeps_its_status_fields_and_body_without_connection_fields() {
        let bytes = crate::response::simple_response(
            503,
            "Service Unavailable\n",
            true,
            &[("retry-after", "1")],
        );
        let answer = Answer::from_http1(&bytes);
        assert_eq!(answer.status, 503);
        assert_eq!(&answer.body[..], b"Service Unavailable\n");
        let fields = decoded(&answer);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "date").count(), 1);
        assert!(!names.contains(&"connection"));
        assert!(fields.contains(&(":status".into(), "503".into())));
        assert!(fields.contains(&("retry-after".into(), "1".into())));
        assert!(fields.contains(&("content-length".into(), "20".into())));
    }

    #[test]
    fn a_simple_answer_is_plain_text_with_its_length_and_a_date() {
        let answer = Answer::simple(431);
        let fields = decoded(&answer);
        assert_eq!(fields[0], (":status".into(), "431".into()));
        let length = answer.body.len().to_string();
        assert!(fields.contains(&("content-length".into(), length)));
        assert!(fields.contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
        assert!(fields.iter().any(|(n, _)| n == "date"));
    }

    #[test]
    fn a_host_field_stands_in_for_a_missing_authority() {
        let head = request(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("host", "h.example"),
        ]);
        assert_eq!(path_of(&head), b"/");
        assert_eq!(as_text(head), "GET /\nhost: h.example");
    }
}
