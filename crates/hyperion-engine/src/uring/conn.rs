//! One HTTP/1.x connection on the ring: the same steps as the tokio connection (`conn.rs`),
//! written as a state machine that runs until it needs the kernel, then submits exactly one
//! operation and waits for its completion.
//!
//! A connection keeps one multishot receive armed for its whole life, so reading the next
//! request costs no submission. Besides it, at most one write-side operation (a send or a file
//! read) is in flight. Bytes that arrive while no state wants them (the application is
//! answering) wait in the read buffer; past [`PAUSE_BYTES`] the receive is cancelled and armed
//! again when a state needs bytes, which bounds what a pipelining client can make the engine
//! hold. Before the socket is handed over (hijack) or closed, the receive is cancelled and its
//! last completion awaited, so the application gets every byte read ahead and no completion
//! can reach a reused slot.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use hyperion_http::{
    parse_request_head, BodyFraming, ChunkedDecoder, HeadStatus, RequestHead, Version,
};
use io_uring::{cqueue, opcode, types};

use super::{user_data, Io, FILE_READ, RECV, SEND};
use crate::body::BodyBuffer;
use crate::chan;
use crate::dispatch::{
    append, dispatch, internal_error_response, parse_error_response, timeout_response, BatchEnd,
    Dispatched, Request, COALESCE_LIMIT, CONTINUE, LINGER_BYTES, LINGER_TIME, STATIC_COPY_LIMIT,
};
use crate::exchange::{ListenerInfo, Peer};
use crate::observe::Current;
use crate::response::{Hijacked, ResponseMsg, WrittenNotice};
use crate::routes::StaticResponse;

/// Bytes of a file body read per step before they are sent.
const FILE_CHUNK: usize = 64 * 1024;
/// A send buffer larger than this is not kept for the next request (a small static answer
/// reuses it; an idle connection should hold next to nothing).
const OUT_KEEP: usize = 1024;
/// Largest single send (partial sends continue where they stopped).
const SEND_MAX: usize = 1 << 30;
/// Bytes read ahead, while no state wants them, before receiving pauses.
const PAUSE_BYTES: usize = 64 * 1024;

/// What the loop does with a connection after driving it.
pub(super) enum Next {
    /// It waits for a completion, bytes or a response message.
    Keep,
    /// Nothing is in flight any more: release it.
    End(End),
}

/// Where a connection is in its request/response cycle.
enum State {
    /// Waiting for (the rest of) a request head; `started` is when its first byte was seen.
    Head {
        started: Option<Instant>,
    },
    Body(Box<BodyRead>),
    /// An application thread answers; its messages arrive on the channel.
    Awaiting(chan::Receiver<ResponseMsg>),
    /// The last bytes of the response are in the send buffer; then `After`.
    Sending(After),
    /// A file body goes out: read a chunk, send it, repeat.
    File(Box<FileBody>),
    /// After an error answer: half-closed, discarding what the client still sends.
    Linger {
        until: Option<Instant>,
        drained: usize,
    },
}

enum After {
    KeepAlive,
    Close,
    Hijack(SyncSender<Hijacked>),
}

struct BodyRead {
    head: RequestHead,
    head_bytes: Bytes,
    framing: Framing,
    body: BodyBuffer,
    /// Restarts whenever bytes arrive: a body may be slow, not stalled.
    deadline: Instant,
}

enum Framing {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

struct FileBody {
    file: std::fs::File,
    len: u64,
    offset: u64,
    close: bool,
}

enum Step {
    Again,
    /// The state needs more bytes, by this deadline.
    Read(Instant),
    /// An operation was submitted, or the connection waits for a response message.
    Wait,
    End(End),
}

/// How a connection ends, once its receive has completed for the last time.
pub(super) enum End {
    Close,
    /// Hand the socket to the application.
    Hijack(SyncSender<Hijacked>),
    /// The connection began with the HTTP/2 preface: hand it to the engine's HTTP/2 runtime.
    Http2,
}

/// The multishot receive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receive {
    Off,
    Armed,
    /// Cancelled; its last completion has not arrived yet.
    Cancelling,
}

pub(super) struct Conn {
    fd: OwnedFd,
    peer: Peer,
    listener: Arc<ListenerInfo>,
    buf: BytesMut,
    state: State,
    /// Bytes to write before the state goes on; `sent` of them are written.
    out: Vec<u8>,
    sent: usize,
    /// A large static body written from its shared buffer after `out`.
    tail: Option<(Arc<StaticResponse>, usize)>,
    notice: Option<WrittenNotice>,
    receive: Receive,
    /// The peer closed its side (or the socket failed): no more bytes will come.
    eof: bool,
    /// The state waits for bytes (until `deadline`).
    reading: bool,
    /// The write-side operation in flight, if any (its user-data kind).
    op: Option<u8>,
    /// When the current wait (for bytes, or for `op`) gives up.
    deadline: Option<Instant>,
    /// `op`'s deadline passed and it is being cancelled.
    expired: bool,
    ending: Option<End>,
    /// The request being answered, reported to metrics and the access log when it ends.
    current: Option<Current>,
    /// No request has been read yet: the first bytes may be the HTTP/2 preface.
    fresh: bool,
}

impl Conn {
    pub(super) fn new(fd: OwnedFd, peer: Peer, listener: Arc<ListenerInfo>) -> Conn {
        Conn {
            fd,
            peer,
            listener,
            buf: BytesMut::new(),
            state: State::Head { started: None },
            out: Vec::new(),
            sent: 0,
            tail: None,
            notice: None,
            receive: Receive::Off,
            eof: false,
            reading: false,
            op: None,
            deadline: None,
            expired: false,
            ending: None,
            current: None,
            fresh: true,
        }
    }

    pub(super) fn peer(&self) -> Peer {
        self.peer
    }

    pub(super) fn listener(&self) -> &Arc<ListenerInfo> {
        &self.listener
    }

    /// What the timer sweep watches: the deadline of the wait for bytes (`None` kind) or of
    /// the write-side operation.
    pub(super) fn timed_wait(&self) -> Option<(Option<u8>, Instant)> {
        let deadline = self.deadline?;
        if self.ending.is_some() || self.expired {
            return None;
        }
        match self.op {
            Some(op) => Some((Some(op), deadline)),
            None if self.reading => Some((None, deadline)),
            None => None,
        }
    }

    /// The write-side operation's deadline passed: it is being cancelled.
    pub(super) fn expire(&mut self) {
        self.expired = true;
    }

    /// Waiting for its next request with nothing read: what a stop closes at once.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { .. })
            && self.buf.is_empty()
            && self.reading
            && self.ending.is_none()
    }

    /// Waiting for a response message with nothing in flight.
    pub(super) fn is_awaiting(&self) -> bool {
        matches!(self.state, State::Awaiting(_)) && self.op.is_none() && self.ending.is_none()
    }

    /// The operations in flight (their user-data kinds), to cancel at exit.
    pub(super) fn ops(&self) -> impl Iterator<Item = u8> {
        let receive = (self.receive == Receive::Armed).then_some(RECV);
        receive.into_iter().chain(self.op)
    }

    /// The socket, for the application to own, with the bytes read past the request.
    pub(super) fn into_hijacked(self) -> (OwnedFd, Vec<u8>) {
        (self.fd, self.buf.to_vec())
    }

    /// Handles a completion of one of this connection's operations, then drives it on.
    pub(super) fn complete(
        &mut self,
        io: &mut Io,
        slot: u32,
        kind: u8,
        res: i32,
        flags: u32,
        waker: &Waker,
    ) -> Next {
        if kind == RECV {
            return self.received(io, slot, res, flags, waker);
        }
        self.op = None;
        let expired = std::mem::take(&mut self.expired);
        match kind {
            SEND => {
                if expired || res <= 0 {
                    self.write_failed();
                    return self.end(io, slot, End::Close);
                }
                let n = res as usize;
                if let Some(current) = &mut self.current {
                    current.bytes += n as u64;
                }
                if self.sent < self.out.len() {
                    self.sent += n;
                } else if let Some((_, sent)) = &mut self.tail {
                    *sent += n;
                }
            }
            FILE_READ => {
                let State::File(file) = &mut self.state else {
                    return self.end(io, slot, End::Close);
                };
                if res <= 0 {
                    // The file shrank after its length was announced (or cannot be read):
                    // the response cannot be completed.
                    self.write_failed();
                    return self.end(io, slot, End::Close);
                }
                // SAFETY: the kernel wrote `res` bytes into the spare capacity of `out`, which
                // was empty when the read was submitted.
                unsafe { self.out.set_len(res as usize) };
                file.offset += res as u64;
            }
            _ => {}
        }
        self.advance(io, slot, waker)
    }

    /// A completion of the multishot receive: bytes, the end of the stream, or the receive's
    /// own end (cancelled, out of buffers, failed).
    fn received(&mut self, io: &mut Io, slot: u32, res: i32, flags: u32, waker: &Waker) -> Next {
        if !cqueue::more(flags) {
            self.receive = Receive::Off;
        }
        if let Some(bid) = cqueue::buffer_select(flags) {
            if res > 0 {
                let data = io.bufs.data(bid, res as usize);
                match &mut self.state {
                    State::Linger { drained, .. } => *drained += data.len(),
                    State::Body(read) if self.reading => {
                        // A body may be slow, not stalled: its deadline restarts with each read.
                        read.deadline = io.now + io.shared.config.request_read_timeout;
                        self.deadline = Some(read.deadline);
                        self.buf.extend_from_slice(data);
                    }
                    _ => self.buf.extend_from_slice(data),
                }
            }
            io.bufs.recycle(bid);
        }
        if res == 0 || (res < 0 && res != -libc::ECANCELED && res != -libc::ENOBUFS) {
            self.eof = true;
        }
        if res == -libc::ENOBUFS && self.reading && self.ending.is_none() {
            // Every buffer is in use this instant: arm again after the batch.
            io.starved.push(slot);
        }
        if self.ending.is_some() || (self.reading && self.op.is_none()) {
            return self.advance(io, slot, waker);
        }
        if self.receive == Receive::Armed && self.buf.len() >= PAUSE_BYTES {
            // Nobody wants these bytes yet: stop reading until a state does.
            self.cancel_receive(io, slot);
        }
        Next::Keep
    }

    fn write_failed(&mut self) {
        if let Some(notice) = self.notice.take() {
            notice.done(false);
        }
    }

    fn cancel_receive(&mut self, io: &mut Io, slot: u32) {
        if self.receive == Receive::Armed {
            io.cancel(user_data(slot, RECV));
            self.receive = Receive::Cancelling;
        }
    }

    /// Reports the current request's end (once).
    fn finish_request(&mut self, io: &Io) {
        if let Some(current) = self.current.take() {
            current.complete(&io.shared, self.peer);
        }
    }

    fn set_status(&mut self, status: u16) {
        if let Some(current) = &mut self.current {
            current.status = status;
        }
    }

    /// Ends the connection once nothing is in flight any more.
    fn end(&mut self, io: &mut Io, slot: u32, end: End) -> Next {
        self.finish_request(io);
        self.ending = Some(end);
        self.reading = false;
        self.deadline = None;
        self.finish_ending(io, slot)
    }

    fn finish_ending(&mut self, io: &mut Io, slot: u32) -> Next {
        // The receive must be over before the socket is closed or handed over: its slot may be
        // reused, and a hijacking application must get every byte read.
        self.cancel_receive(io, slot);
        if self.receive != Receive::Off || self.op.is_some() {
            return Next::Keep;
        }
        Next::End(self.ending.take().expect("ending"))
    }

    /// The state waited for bytes past its deadline.
    pub(super) fn read_timed_out(&mut self, io: &mut Io, slot: u32, waker: &Waker) -> Next {
        self.reading = false;
        self.deadline = None;
        let stalled = match self.state {
            // An idle keep-alive connection just closes; a started request gets 408.
            State::Head { .. } => !self.buf.is_empty(),
            State::Body(_) => true,
            _ => false,
        };
        if !stalled {
            return self.end(io, slot, End::Close);
        }
        let out = timeout_response(&io.shared, self.peer);
        self.linger_after(io, out, 408);
        self.advance(io, slot, waker)
    }

    /// Runs the connection until it needs the kernel, bytes or a response message.
    pub(super) fn advance(&mut self, io: &mut Io, slot: u32, waker: &Waker) -> Next {
        if self.ending.is_some() {
            return self.finish_ending(io, slot);
        }
        loop {
            if self.op.is_some() {
                return Next::Keep;
            }
            if self.sent < self.out.len() {
                let more = self.tail.is_some();
                let bytes = &self.out[self.sent..];
                self.send(io, slot, bytes.as_ptr(), bytes.len(), more);
                return Next::Keep;
            }
            if let Some((response, sent)) = &self.tail {
                let body = &response.body()[*sent..];
                if !body.is_empty() {
                    let (ptr, len) = (body.as_ptr(), body.len());
                    self.send(io, slot, ptr, len, false);
                    return Next::Keep;
                }
                self.tail = None;
            }
            if !self.out.is_empty() {
                self.out.clear();
                self.sent = 0;
            }
            self.reading = false;
            match self.step(io, slot, waker) {
                Step::Again => {}
                Step::Read(deadline) => {
                    if self.eof {
                        return self.end(io, slot, End::Close);
                    }
                    self.reading = true;
                    self.deadline = Some(deadline);
                    io.note_deadline(deadline);
                    if self.receive == Receive::Off {
                        self.arm_receive(io, slot);
                    }
                    return Next::Keep;
                }
                Step::Wait => return Next::Keep,
                Step::End(end) => return self.end(io, slot, end),
            }
        }
    }

    fn step(&mut self, io: &mut Io, slot: u32, waker: &Waker) -> Step {
        let config = &io.shared.config;
        match std::mem::replace(&mut self.state, State::Head { started: None }) {
            State::Head { started } => {
                if self.buf.is_empty() {
                    if io.shared.is_draining() {
                        let until = io.drain_idle_until();
                        return if until > io.now {
                            Step::Read(until)
                        } else {
                            Step::End(End::Close)
                        };
                    }
                    return Step::Read(io.now + config.idle_keepalive);
                }
                // The read timeout runs from the first byte of a request, not per read, so a
                // client trickling one byte at a time cannot hold the connection forever.
                let started = started.unwrap_or(io.now);
                self.state = State::Head {
                    started: Some(started),
                };
                if self.fresh && config.h2.h2c {
                    match crate::h2::preface_state(&self.buf) {
                        Some(true) => return Step::End(End::Http2),
                        Some(false) => return Step::Read(started + config.request_read_timeout),
                        None => {}
                    }
                }
                match parse_request_head(&self.buf, &config.limits) {
                    Ok(HeadStatus::Complete { head, len }) => self.begin_body(io, head, len),
                    Ok(HeadStatus::Partial) => {
                        return Step::Read(started + config.request_read_timeout);
                    }
                    Err(e) => {
                        let status = e.status();
                        let out = parse_error_response(&io.shared, self.peer, e);
                        self.linger_after(io, out, status);
                    }
                }
                Step::Again
            }
            State::Body(mut read) => {
                let done = match &mut read.framing {
                    Framing::Length { remaining } => {
                        let take = (*remaining).min(self.buf.len() as u64) as usize;
                        if take > 0 {
                            if let Err(e) = read.body.extend(&self.buf[..take]) {
                                let out = internal_error_response(&io.shared, e);
                                self.linger_after(io, out, 500);
                                return Step::Again;
                            }
                            self.buf.advance(take);
                            *remaining -= take as u64;
                        }
                        *remaining == 0
                    }
                    Framing::Chunked(decoder) => {
                        match decoder.decode(&self.buf, &mut read.body.mem) {
                            Ok(consumed) => self.buf.advance(consumed),
                            Err(e) => {
                                let status = e.status();
                                let out = parse_error_response(&io.shared, self.peer, e);
                                self.linger_after(io, out, status);
                                return Step::Again;
                            }
                        }
                        if let Err(e) = read.body.settle() {
                            let out = internal_error_response(&io.shared, e);
                            self.linger_after(io, out, 500);
                            return Step::Again;
                        }
                        decoder.is_done()
                    }
                };
                if !done {
                    let deadline = read.deadline;
                    self.state = State::Body(read);
                    return Step::Read(deadline);
                }
                let BodyRead {
                    head,
                    head_bytes,
                    framing,
                    body,
                    ..
                } = *read;
                let trailers = match framing {
                    Framing::Chunked(decoder) => decoder.trailers().to_vec(),
                    Framing::Length { .. } => Vec::new(),
                };
                match body.finish() {
                    Ok(body) => self.dispatch(
                        io,
                        Request {
                            head,
                            head_bytes,
                            body,
                            trailers,
                            protocol: crate::exchange::Protocol::Http1,
                        },
                    ),
                    Err(e) => {
                        let out = internal_error_response(&io.shared, e);
                        self.linger_after(io, out, 500);
                    }
                }
                Step::Again
            }
            State::Awaiting(rx) => self.gather(rx, waker),
            State::Sending(after) => {
                self.finish_request(io);
                if let Some(notice) = self.notice.take() {
                    notice.done(true);
                }
                match after {
                    After::KeepAlive => {
                        if self.buf.is_empty() {
                            // Give the memory back while the connection idles.
                            self.buf = BytesMut::new();
                        }
                        if self.out.capacity() > OUT_KEEP {
                            self.out = Vec::new();
                        }
                        Step::Again
                    }
                    After::Close => Step::End(End::Close),
                    After::Hijack(tx) => Step::End(End::Hijack(tx)),
                }
            }
            State::File(file) => {
                if file.offset >= file.len {
                    let after = if file.close {
                        After::Close
                    } else {
                        After::KeepAlive
                    };
                    self.state = State::Sending(after);
                    return Step::Again;
                }
                self.out.reserve(FILE_CHUNK);
                let want = (file.len - file.offset).min(self.out.capacity() as u64) as u32;
                let entry = opcode::Read::new(
                    types::Fd(file.file.as_raw_fd()),
                    self.out.as_mut_ptr(),
                    want,
                )
                .offset(file.offset)
                .build()
                .user_data(user_data(slot, FILE_READ));
                self.state = State::File(file);
                io.push(entry);
                self.op = Some(FILE_READ);
                self.deadline = None;
                Step::Wait
            }
            State::Linger { until, drained } => {
                let until = match until {
                    Some(until) => until,
                    None => {
                        // The error answer is written.
                        self.finish_request(io);
                        // SAFETY: shutdown on a descriptor this connection owns.
                        if unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) } != 0 {
                            return Step::End(End::Close);
                        }
                        io.now + LINGER_TIME
                    }
                };
                if drained >= LINGER_BYTES || io.now >= until {
                    return Step::End(End::Close);
                }
                self.state = State::Linger {
                    until: Some(until),
                    drained,
                };
                Step::Read(until)
            }
        }
    }

    /// A complete head: answer `100 Continue` when asked and read the body.
    fn begin_body(&mut self, io: &mut Io, head: RequestHead, head_len: usize) {
        self.fresh = false;
        let head_bytes = self.buf.split_to(head_len).freeze();
        self.current = Some(Current::parsed(&io.shared, &head, &head_bytes, io.now));
        let config = &io.shared.config;
        let expect_continue = head.expect_continue && head.version == Version::Http11;
        let mut body = BodyBuffer::new(config.max_in_memory_body_bytes);
        let framing = match head.framing {
            BodyFraming::None => {
                let body = crate::exchange::Body::Memory(Vec::new());
                let request = Request {
                    head,
                    head_bytes,
                    body,
                    trailers: Vec::new(),
                    protocol: crate::exchange::Protocol::Http1,
                };
                return self.dispatch(io, request);
            }
            BodyFraming::Length(n) => {
                if expect_continue && (self.buf.len() as u64) < n {
                    self.out.extend_from_slice(CONTINUE);
                }
                if n <= body.limit as u64 {
                    body.mem.reserve_exact(n as usize);
                }
                Framing::Length { remaining: n }
            }
            BodyFraming::Chunked => {
                if expect_continue && self.buf.is_empty() {
                    self.out.extend_from_slice(CONTINUE);
                }
                Framing::Chunked(ChunkedDecoder::new(&config.limits))
            }
        };
        self.state = State::Body(Box::new(BodyRead {
            head,
            head_bytes,
            framing,
            body,
            deadline: io.now + config.request_read_timeout,
        }));
    }

    fn dispatch(&mut self, io: &mut Io, request: Request) {
        self.state = match dispatch(&io.shared, request, self.peer, &self.listener) {
            Dispatched::Static {
                response,
                head_only,
                version,
                keep,
            } => {
                self.set_status(response.status());
                if head_only || response.body_len() <= STATIC_COPY_LIMIT {
                    response.write_to(&mut self.out, head_only, version, !keep);
                } else {
                    response.write_head_to(&mut self.out, version, !keep);
                    self.tail = Some((response, 0));
                }
                State::Sending(if keep { After::KeepAlive } else { After::Close })
            }
            Dispatched::Queued(rx) => State::Awaiting(rx),
            Dispatched::Answered {
                bytes,
                keep,
                status,
            } => {
                self.set_status(status);
                self.out.extend_from_slice(&bytes);
                State::Sending(if keep { After::KeepAlive } else { After::Close })
            }
        };
    }

    /// Gathers the response messages already waiting into the send buffer.
    fn gather(&mut self, mut rx: chan::Receiver<ResponseMsg>, waker: &Waker) -> Step {
        let mut cx = Context::from_waker(waker);
        let mut end = BatchEnd::More;
        let mut closed = false;
        let mut status = 0;
        loop {
            match rx.poll_recv(&mut cx) {
                Poll::Ready(Some(msg)) => {
                    end = append(msg, &mut self.out, &mut status);
                    if !matches!(end, BatchEnd::More) || self.out.len() >= COALESCE_LIMIT {
                        break;
                    }
                }
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if status != 0 {
            self.set_status(status);
        }
        self.state = match end {
            BatchEnd::More => {
                if self.out.is_empty() {
                    if closed {
                        return Step::End(End::Close);
                    }
                    self.state = State::Awaiting(rx);
                    return Step::Wait;
                }
                State::Awaiting(rx)
            }
            BatchEnd::Done { close, notice } => {
                self.notice = notice;
                State::Sending(if close {
                    After::Close
                } else {
                    After::KeepAlive
                })
            }
            BatchEnd::File {
                file,
                len,
                close,
                notice,
            } => {
                self.notice = notice;
                State::File(Box::new(FileBody {
                    file,
                    len,
                    offset: 0,
                    close,
                }))
            }
            BatchEnd::Hijack(tx) => State::Sending(After::Hijack(tx)),
            BatchEnd::Abort => State::Sending(After::Close),
        };
        Step::Again
    }

    /// Writes an error answer (reported with `status`), then lingers and closes.
    fn linger_after(&mut self, io: &Io, answer: Vec<u8>, status: u16) {
        if self.current.is_none() {
            self.current = Some(Current::unparsed(&io.shared, io.now));
        }
        self.set_status(status);
        self.out.extend_from_slice(&answer);
        self.tail = None;
        self.state = State::Linger {
            until: None,
            drained: 0,
        };
    }

    fn arm_receive(&mut self, io: &mut Io, slot: u32) {
        let entry = opcode::RecvMulti::new(types::Fd(self.fd.as_raw_fd()), super::BUF_GROUP)
            .build()
            .user_data(user_data(slot, RECV));
        io.push(entry);
        self.receive = Receive::Armed;
    }

    /// Sends `len` bytes at `ptr`, which point into `out` or the static tail: both stay put
    /// until the completion arrives.
    fn send(&mut self, io: &mut Io, slot: u32, ptr: *const u8, len: usize, more: bool) {
        let mut flags = libc::MSG_NOSIGNAL;
        if more {
            flags |= libc::MSG_MORE;
        }
        let entry = opcode::Send::new(
            types::Fd(self.fd.as_raw_fd()),
            ptr,
            len.min(SEND_MAX) as u32,
        )
        .flags(flags)
        .build()
        .user_data(user_data(slot, SEND));
        io.push(entry);
        self.op = Some(SEND);
        let deadline = io.now + io.shared.config.write_timeout;
        self.deadline = Some(deadline);
        io.note_deadline(deadline);
    }
}

#[cfg(test)]
mod tests {
    /// Every open connection, idle or not, is one of these: 10,000 idle keep-alive connections
    /// must stay cheap.
    #[test]
    fn connection_stays_small() {
        let size = std::mem::size_of::<super::Conn>();
        assert!(size <= 320, "Conn is {size} bytes");
    }
}
