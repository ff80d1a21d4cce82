//! One HTTP/1.x connection on the ring: the same steps as the tokio connection (`conn.rs`),
//! written as a state machine that runs until it needs the kernel, then submits exactly one
//! operation and waits for its completion.
//!
//! At most one operation per connection is in flight, and a receive is submitted only when a
//! state needs bytes: like the tokio loop, the engine never reads past a request while the
//! application is answering it (backpressure, and a hijacked socket loses no bytes).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use hyperion_http::{
    parse_request_head, BodyFraming, ChunkedDecoder, HeadStatus, RequestHead, Version,
};
use io_uring::{cqueue, opcode, squeue, types};
use tokio::sync::mpsc;

use super::{user_data, Io, FILE_READ, RECV, SEND};
use crate::body::BodyBuffer;
use crate::dispatch::{
    append, dispatch, internal_error_response, parse_error_response, timeout_response, BatchEnd,
    Dispatched, Request, COALESCE_LIMIT, CONTINUE, LINGER_BYTES, LINGER_TIME, STATIC_COPY_LIMIT,
};
use crate::exchange::{ListenerInfo, Peer};
use crate::response::{Hijacked, ResponseMsg, WrittenNotice};
use crate::routes::StaticResponse;

/// Bytes of a file body read per step before they are sent.
const FILE_CHUNK: usize = 64 * 1024;
/// A send buffer larger than this is not kept for the next request.
const OUT_KEEP: usize = 4096;
/// Largest single send (partial sends continue where they stopped).
const SEND_MAX: usize = 1 << 30;

/// What the loop does with a connection after driving it.
pub(super) enum Next {
    /// It waits for a completion or a response message.
    Keep,
    Close,
    /// Hand the socket to the application.
    Hijack(SyncSender<Hijacked>),
}

/// Where a connection is in its request/response cycle.
enum State {
    /// Waiting for (the rest of) a request head; `started` is when its first byte was seen.
    Head {
        started: Option<Instant>,
    },
    Body(Box<BodyRead>),
    /// An application thread answers; its messages arrive on the channel.
    Awaiting(mpsc::Receiver<ResponseMsg>),
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
    /// An operation was submitted, or the connection waits for a response message.
    Wait,
    Close,
    Hijack(SyncSender<Hijacked>),
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
    /// The operation in flight, if any (its user-data kind).
    op: Option<u8>,
    deadline: Option<Instant>,
    /// The deadline passed and the operation is being cancelled.
    expired: bool,
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
            op: None,
            deadline: None,
            expired: false,
        }
    }

    /// The operation in flight and its deadline, for the timer sweep.
    pub(super) fn timed_op(&self) -> Option<(u8, Instant)> {
        match (self.op, self.deadline, self.expired) {
            (Some(op), Some(deadline), false) => Some((op, deadline)),
            _ => None,
        }
    }

    pub(super) fn expire(&mut self) {
        self.expired = true;
    }

    /// Waiting for its next request with nothing read: what a stop closes at once.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { .. }) && self.buf.is_empty() && self.op == Some(RECV)
    }

    /// Waiting for a response message with nothing in flight.
    pub(super) fn is_awaiting(&self) -> bool {
        matches!(self.state, State::Awaiting(_)) && self.op.is_none()
    }

    pub(super) fn op(&self) -> Option<u8> {
        self.op
    }

    /// The socket, for the application to own, with the bytes read past the request.
    pub(super) fn into_hijacked(self) -> (OwnedFd, Vec<u8>) {
        (self.fd, self.buf.to_vec())
    }

    /// Handles the completion of this connection's operation, then drives it on.
    pub(super) fn complete(
        &mut self,
        io: &mut Io,
        slot: u32,
        kind: u8,
        res: i32,
        flags: u32,
        waker: &Waker,
    ) -> Next {
        self.op = None;
        let expired = std::mem::take(&mut self.expired);
        match kind {
            RECV => {
                if let Some(bid) = cqueue::buffer_select(flags) {
                    if res > 0 && !expired {
                        let data = io.bufs.data(bid, res as usize);
                        self.received(data, io);
                    }
                    io.bufs.recycle(bid);
                }
                if expired {
                    return self.timed_out(io, slot, waker, kind);
                }
                match res {
                    0 => return Next::Close,
                    n if n == -libc::ENOBUFS => {
                        // Every buffer is in use this instant; try again after the batch.
                        io.starved.push(slot);
                        return Next::Keep;
                    }
                    n if n < 0 && n != -libc::ECANCELED => return Next::Close,
                    _ => {}
                }
            }
            SEND => {
                if expired || res <= 0 {
                    return self.write_failed();
                }
                let n = res as usize;
                if self.sent < self.out.len() {
                    self.sent += n;
                } else if let Some((_, sent)) = &mut self.tail {
                    *sent += n;
                }
            }
            FILE_READ => {
                let State::File(file) = &mut self.state else {
                    return Next::Close;
                };
                if res <= 0 {
                    // The file shrank after its length was announced (or cannot be read):
                    // the response cannot be completed.
                    return self.write_failed();
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

    fn received(&mut self, data: &[u8], io: &Io) {
        match &mut self.state {
            State::Body(read) => {
                read.deadline = io.now + io.shared.config.request_read_timeout;
                self.buf.extend_from_slice(data);
            }
            State::Linger { drained, .. } => *drained += data.len(),
            _ => self.buf.extend_from_slice(data),
        }
    }

    fn write_failed(&mut self) -> Next {
        if let Some(notice) = self.notice.take() {
            notice.done(false);
        }
        Next::Close
    }

    /// A deadline passed while `kind` was in flight.
    fn timed_out(&mut self, io: &mut Io, slot: u32, waker: &Waker, kind: u8) -> Next {
        if kind != RECV {
            return self.write_failed();
        }
        match self.state {
            State::Head { .. } if self.buf.is_empty() => Next::Close,
            State::Head { .. } | State::Body(_) => {
                let out = timeout_response(&io.shared, self.peer);
                self.linger_after(out);
                self.advance(io, slot, waker)
            }
            _ => Next::Close,
        }
    }

    /// Runs the connection until it needs the kernel or a response message.
    pub(super) fn advance(&mut self, io: &mut Io, slot: u32, waker: &Waker) -> Next {
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
            match self.step(io, slot, waker) {
                Step::Again => {}
                Step::Wait => return Next::Keep,
                Step::Close => return Next::Close,
                Step::Hijack(tx) => return Next::Hijack(tx),
            }
        }
    }

    fn step(&mut self, io: &mut Io, slot: u32, waker: &Waker) -> Step {
        let config = &io.shared.config;
        match std::mem::replace(&mut self.state, State::Head { started: None }) {
            State::Head { started } => {
                if self.buf.is_empty() {
                    if io.shared.is_draining() {
                        return Step::Close;
                    }
                    let deadline = io.now + config.idle_keepalive;
                    self.recv(io, slot, deadline);
                    return Step::Wait;
                }
                // The read timeout runs from the first byte of a request, not per read, so a
                // client trickling one byte at a time cannot hold the connection forever.
                let started = started.unwrap_or(io.now);
                self.state = State::Head {
                    started: Some(started),
                };
                match parse_request_head(&self.buf, &config.limits) {
                    Ok(HeadStatus::Complete { head, len }) => self.begin_body(io, head, len),
                    Ok(HeadStatus::Partial) => {
                        let deadline = started + config.request_read_timeout;
                        self.recv(io, slot, deadline);
                        return Step::Wait;
                    }
                    Err(e) => {
                        let out = parse_error_response(&io.shared, self.peer, e);
                        self.linger_after(out);
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
                                self.linger_after(internal_error_response(&io.shared, e));
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
                                let out = parse_error_response(&io.shared, self.peer, e);
                                self.linger_after(out);
                                return Step::Again;
                            }
                        }
                        if let Err(e) = read.body.settle() {
                            self.linger_after(internal_error_response(&io.shared, e));
                            return Step::Again;
                        }
                        decoder.is_done()
                    }
                };
                if !done {
                    let deadline = read.deadline;
                    self.state = State::Body(read);
                    self.recv(io, slot, deadline);
                    return Step::Wait;
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
                        },
                    ),
                    Err(e) => self.linger_after(internal_error_response(&io.shared, e)),
                }
                Step::Again
            }
            State::Awaiting(rx) => self.gather(rx, waker),
            State::Sending(after) => {
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
                    After::Close => Step::Close,
                    After::Hijack(tx) => Step::Hijack(tx),
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
                        // SAFETY: shutdown on a descriptor this connection owns.
                        if unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) } != 0 {
                            return Step::Close;
                        }
                        io.now + LINGER_TIME
                    }
                };
                if drained >= LINGER_BYTES || io.now >= until {
                    return Step::Close;
                }
                self.state = State::Linger {
                    until: Some(until),
                    drained,
                };
                self.recv(io, slot, until);
                Step::Wait
            }
        }
    }

    /// A complete head: answer `100 Continue` when asked and read the body.
    fn begin_body(&mut self, io: &mut Io, head: RequestHead, head_len: usize) {
        let head_bytes = self.buf.split_to(head_len).freeze();
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
                if head_only || response.body_len() <= STATIC_COPY_LIMIT {
                    response.write_to(&mut self.out, head_only, version, !keep);
                } else {
                    response.write_head_to(&mut self.out, version, !keep);
                    self.tail = Some((response, 0));
                }
                State::Sending(if keep { After::KeepAlive } else { After::Close })
            }
            Dispatched::Queued(rx) => State::Awaiting(rx),
            Dispatched::Refused { bytes, keep } => {
                self.out.extend_from_slice(&bytes);
                State::Sending(if keep { After::KeepAlive } else { After::Close })
            }
        };
    }

    /// Gathers the response messages already waiting into the send buffer.
    fn gather(&mut self, mut rx: mpsc::Receiver<ResponseMsg>, waker: &Waker) -> Step {
        let mut cx = Context::from_waker(waker);
        let mut end = BatchEnd::More;
        let mut closed = false;
        loop {
            match rx.poll_recv(&mut cx) {
                Poll::Ready(Some(msg)) => {
                    end = append(msg, &mut self.out);
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
        self.state = match end {
            BatchEnd::More => {
                if self.out.is_empty() {
                    if closed {
                        return Step::Close;
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

    /// Writes an error answer, then lingers and closes.
    fn linger_after(&mut self, answer: Vec<u8>) {
        self.out.extend_from_slice(&answer);
        self.tail = None;
        self.state = State::Linger {
            until: None,
            drained: 0,
        };
    }

    fn recv(&mut self, io: &mut Io, slot: u32, deadline: Instant) {
        let entry = opcode::Recv::new(
            types::Fd(self.fd.as_raw_fd()),
            std::ptr::null_mut(),
            io.bufs.buf_size(),
        )
        .buf_group(super::BUF_GROUP)
        .build()
        .flags(squeue::Flags::BUFFER_SELECT)
        .user_data(user_data(slot, RECV));
        io.push(entry);
        self.op = Some(RECV);
        self.deadline = Some(deadline);
        io.note_deadline(deadline);
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
