//! One HTTP/1.x connection: read a request, hand it to the application threads, write the
//! answer, repeat. Requests on a connection are answered strictly in order, so pipelined
//! requests simply wait in the read buffer.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use hyperion_http::{
    parse_request_head, BodyFraming, ChunkedDecoder, HeadStatus, ParseError, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};

use crate::body::{BodyBuffer, SPILL_CHUNK};
use crate::chan;
use crate::dispatch::{
    append, dispatch, internal_error_response, parse_error_response, timeout_response, BatchEnd,
    Dispatched, Request, COALESCE_LIMIT, CONTINUE, LINGER_BYTES, LINGER_TIME, STATIC_COPY_LIMIT,
};
use crate::engine::{Phase, Shared};
use crate::exchange::{ListenerInfo, Peer};
use crate::observe::Current;
use crate::relay::RelayCache;
use crate::response::{Hijacked, ResponseMsg};
use crate::routes::StaticResponse;

/// Read-buffer growth step: small, because 10,000 idle connections must stay cheap.
const READ_CHUNK: usize = 4096;

/// While the engine stops, how long an idle connection still waits for a request the client
/// may already have sent (it cannot know we are stopping) before closing: closing under it
/// would lose that request, answering it with `connection: close` does not.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// The error of a write that made no progress for `write_timeout`.
fn write_timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "write timed out")
}

/// Chunk in which file bodies are read and written through a TLS stream.
const FILE_CHUNK: usize = 64 * 1024;

/// Largest single sendfile call (the kernel caps one call near 2 GiB anyway).
const SENDFILE_MAX: u64 = 1 << 30;

enum Outcome {
    KeepAlive,
    Close,
    /// The application takes the socket: hand it over, write and close nothing.
    Hijack(SyncSender<Hijacked>),
    /// The connection began with the HTTP/2 preface (h2c with prior knowledge).
    Http2,
}

pub(crate) struct Connection<S> {
    io: S,
    peer: Peer,
    shared: Arc<Shared>,
    listener: Arc<ListenerInfo>,
    buf: BytesMut,
    /// The request being answered, reported to metrics and the access log when it ends.
    current: Option<Current>,
    /// No request has been read yet: the first bytes may be the HTTP/2 preface.
    fresh: bool,
    /// The waker application threads use to say a response message is waiting.
    relayed: RelayCache,
}

/// A connected socket the engine can wait on without committing a read buffer to it, send
/// files into, and hand over to the application.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {
    /// Whether bytes written to the descriptor reach the client as they are, so the raw
    /// operations below (sendfile, MSG_MORE, hijack) work. False for TLS, whose bytes must go
    /// through the stream; being a constant, the choice costs plain sockets nothing.
    const RAW_FD: bool;
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    fn writable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// Runs a non-blocking write-side syscall on the socket, clearing readiness on
    /// WouldBlock.
    fn try_write_with<R>(&self, f: impl FnOnce(RawFd) -> io::Result<R>) -> io::Result<R>;
    /// Leaves the runtime: the descriptor, in blocking mode, for the application to own.
    fn into_blocking_fd(self) -> io::Result<OwnedFd>;
}

macro_rules! socket_impl {
    ($ty:ty) => {
        impl Socket for $ty {
            const RAW_FD: bool = true;
            fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
                <$ty>::readable(self)
            }
            fn writable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
                <$ty>::writable(self)
            }
            fn try_write_with<R>(&self, f: impl FnOnce(RawFd) -> io::Result<R>) -> io::Result<R> {
                let fd = self.as_raw_fd();
                self.try_io(tokio::io::Interest::WRITABLE, || f(fd))
            }
            fn into_blocking_fd(self) -> io::Result<OwnedFd> {
                let std = self.into_std()?;
                std.set_nonblocking(false)?;
                Ok(OwnedFd::from(std))
            }
        }
    };
}

socket_impl!(tokio::net::TcpStream);
socket_impl!(tokio::net::UnixStream);

impl<S: Socket> Connection<S> {
    pub(crate) fn new(io: S, peer: Peer, shared: Arc<Shared>, listener: Arc<ListenerInfo>) -> Self {
        Connection {
            io,
            peer,
            shared,
            listener,
            buf: BytesMut::new(),
            current: None,
            fresh: true,
            relayed: RelayCache::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            match self.serve_one().await {
                Ok(Outcome::KeepAlive) => {
                    if self.buf.is_empty() {
                        // Give the memory back while the connection idles.
                        self.buf = BytesMut::new();
                    }
                }
                Ok(Outcome::Hijack(tx)) if S::RAW_FD => {
                    let buffered = self.buf.to_vec();
                    // If the application is gone, dropping the descriptor closes it.
                    if let Ok(fd) = self.io.into_blocking_fd() {
                        let _ = tx.send(Hijacked { fd, buffered });
                    }
                    return;
                }
                Ok(Outcome::Http2) => {
                    let prefix = std::mem::take(&mut self.buf).freeze();
                    // Boxed: an HTTP/1.1 connection's future must not carry the h2 state.
                    Box::pin(crate::h2::serve(
                        self.io,
                        prefix,
                        self.peer,
                        self.shared,
                        self.listener,
                    ))
                    .await;
                    return;
                }
                // A TLS socket cannot change hands: dropping the sender tells the application
                // thread, and the connection closes.
                Ok(Outcome::Hijack(_)) | Ok(Outcome::Close) | Err(_) => break,
            }
        }
        let _ = self.io.shutdown().await;
    }

    /// Reads more bytes into the buffer; Ok(false) on EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.buf.is_empty() && self.buf.capacity() < READ_CHUNK / 4 {
            // Between requests a connection holds no buffer. Read into stack space and keep
            // only what came: a head is usually far smaller than a read, and a buffer of its
            // own size comes from the allocator's per-thread cache, where a whole read
            // chunk would not.
            let (io, buf) = (&mut self.io, &mut self.buf);
            return poll_fn(|cx| {
                let mut space = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut read = tokio::io::ReadBuf::uninit(&mut space);
                std::task::ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
                buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(!read.filled().is_empty()))
            })
            .await;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    /// Serves one request and reports its end, however it ended.
    async fn serve_one(&mut self) -> io::Result<Outcome> {
        let outcome = self.serve_request().await;
        self.finish_request();
        outcome
    }

    /// Reports the current request's end (once).
    fn finish_request(&mut self) {
        if let Some(current) = self.current.take() {
            current.complete(&self.shared, self.peer);
        }
    }

    fn set_status(&mut self, status: u16) {
        if let Some(current) = &mut self.current {
            current.status = status;
        }
    }

    fn count_written(&mut self, n: usize) {
        if let Some(current) = &mut self.current {
            current.bytes += n as u64;
        }
    }

    async fn serve_request(&mut self) -> io::Result<Outcome> {
        let shared = self.shared.clone();
        let limits = &shared.config.limits;
        let mut deadline: Option<Instant> = None;
        let mut phase = self.shared.phase.subscribe();

        // The head.
        let (head, head_len) = loop {
            if !self.buf.is_empty() {
                // The read timeout runs from the first byte of a request, not per read, so a
                // client trickling one byte at a time cannot hold the connection forever.
                deadline.get_or_insert_with(|| Instant::now() + shared.config.request_read_timeout);
                let preface = if self.fresh && shared.config.h2.h2c {
                    crate::h2::preface_state(&self.buf)
                } else {
                    None
                };
                match preface {
                    Some(true) => return Ok(Outcome::Http2),
                    Some(false) => {}
                    None => match parse_request_head(&self.buf, limits) {
                        Ok(HeadStatus::Complete { head, len }) => break (head, len),
                        Ok(HeadStatus::Partial) => {}
                        Err(e) => return self.reject(e).await,
                    },
                }
            }
            let idle = self.buf.is_empty();
            let draining = *phase.borrow_and_update() != Phase::Running;
            let idle_limit = if draining {
                DRAIN_IDLE_GRACE.min(self.shared.config.idle_keepalive)
            } else {
                self.shared.config.idle_keepalive
            };
            let wait_until = deadline.unwrap_or_else(|| Instant::now() + idle_limit);
            if idle {
                // Wait for the next request without holding a read buffer: 10,000 idle
                // keep-alive connections should cost no more than their sockets.
                tokio::select! {
                    r = self.io.readable() => r?,
                    _ = sleep_until(wait_until) => return Ok(Outcome::Close),
                    _ = phase.changed(), if !draining => continue,
                }
            }
            tokio::select! {
                r = self.fill() => {
                    if !r? {
                        return Ok(Outcome::Close);
                    }
                }
                _ = sleep_until(wait_until) => {
                    if idle {
                        return Ok(Outcome::Close);
                    }
                    return self.timed_out().await;
                }
                _ = phase.changed(), if idle && !draining => continue,
            }
        };
        self.fresh = false;
        let head_bytes = self.buf.split_to(head_len).freeze();
        self.current = Some(Current::parsed(
            &shared,
            &head,
            &head_bytes,
            std::time::Instant::now(),
        ));
        // A body may legitimately take long (a large upload); what must not happen is a
        // stall, so its timeout restarts whenever bytes arrive.
        let body_timeout = self.shared.config.request_read_timeout;
        let mut deadline = Instant::now() + body_timeout;

        // The body, read completely before dispatch so no application thread ever waits on a
        // slow client. Past `max_in_memory_body_bytes` it goes to an unlinked temp file.
        let mut body = BodyBuffer::new(self.shared.config.max_in_memory_body_bytes);
        let mut trailers = Vec::new();
        let expect_continue = head.expect_continue && head.version == Version::Http11;
        match head.framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                if expect_continue && (self.buf.len() as u64) < n {
                    self.write_all(CONTINUE).await?;
                }
                let have = (self.buf.len() as u64).min(n) as usize;
                if n as usize <= body.limit {
                    // In memory: read straight into the final buffer.
                    let n = n as usize;
                    let mem = &mut body.mem;
                    mem.reserve_exact(n);
                    mem.extend_from_slice(&self.buf[..have]);
                    self.buf.advance(have);
                    let mut filled = have;
                    if filled < n {
                        mem.resize(n, 0);
                        while filled < n {
                            let read = tokio::select! {
                                r = self.io.read(&mut body.mem[filled..]) => r?,
                                _ = sleep_until(deadline) => return self.timed_out().await,
                            };
                            if read == 0 {
                                return Ok(Outcome::Close);
                            }
                            filled += read;
                            deadline = Instant::now() + body_timeout;
                        }
                    }
                } else {
                    if let Err(e) = body.extend(&self.buf[..have]) {
                        return self.internal_error(e).await;
                    }
                    self.buf.advance(have);
                    let mut remaining = n - have as u64;
                    let mut chunk = vec![0u8; SPILL_CHUNK];
                    while remaining > 0 {
                        let want = remaining.min(SPILL_CHUNK as u64) as usize;
                        let read = tokio::select! {
                            r = self.io.read(&mut chunk[..want]) => r?,
                            _ = sleep_until(deadline) => return self.timed_out().await,
                        };
                        if read == 0 {
                            return Ok(Outcome::Close);
                        }
                        if let Err(e) = body.extend(&chunk[..read]) {
                            return self.internal_error(e).await;
                        }
                        remaining -= read as u64;
                        deadline = Instant::now() + body_timeout;
                    }
                }
            }
            BodyFraming::Chunked => {
                if expect_continue && self.buf.is_empty() {
                    self.write_all(CONTINUE).await?;
                }
                let mut decoder = ChunkedDecoder::new(limits);
                loop {
                    match decoder.decode(&self.buf, &mut body.mem) {
                        Ok(consumed) => self.buf.advance(consumed),
                        Err(e) => return self.reject(e).await,
                    }
                    if let Err(e) = body.settle() {
                        return self.internal_error(e).await;
                    }
                    if decoder.is_done() {
                        break;
                    }
                    tokio::select! {
                        r = self.fill() => {
                            if !r? {
                                return Ok(Outcome::Close);
                            }
                            deadline = Instant::now() + body_timeout;
                        }
                        _ = sleep_until(deadline) => return self.timed_out().await,
                    }
                }
                trailers = decoder.trailers().to_vec();
            }
        }
        let body = match body.finish() {
            Ok(body) => body,
            Err(e) => return self.internal_error(e).await,
        };

        let request = Request {
            head,
            head_bytes,
            body,
            trailers,
            protocol: crate::exchange::Protocol::Http1,
        };
        match dispatch(&shared, request, self.peer, &self.listener) {
            Dispatched::Static {
                response,
                head_only,
                version,
                keep,
            } => {
                self.set_status(response.status());
                self.write_static(&response, head_only, version, keep)
                    .await?;
                Ok(if keep {
                    Outcome::KeepAlive
                } else {
                    Outcome::Close
                })
            }
            Dispatched::Queued(rx) => self.write_response(rx).await,
            Dispatched::Answered {
                bytes,
                keep,
                status,
            } => {
                self.set_status(status);
                self.write_all(&bytes).await?;
                Ok(if keep {
                    Outcome::KeepAlive
                } else {
                    Outcome::Close
                })
            }
        }
    }

    /// Writes what the application thread sends until the response is complete. Messages that
    /// are already waiting are coalesced into one write (e.g. the last chunk and the terminator).
    async fn write_response(&mut self, mut rx: chan::Receiver<ResponseMsg>) -> io::Result<Outcome> {
        let mut out: Vec<u8> = Vec::new();
        let mut status = 0;
        loop {
            let relayed = &mut self.relayed;
            let next =
                poll_fn(|cx| rx.poll_recv(&mut Context::from_waker(relayed.waker(cx.waker()))));
            let Some(first) = next.await else {
                return Ok(Outcome::Close);
            };
            let mut end = append(first, &mut out, &mut status);
            while matches!(end, BatchEnd::More) && out.len() < COALESCE_LIMIT {
                match rx.try_recv() {
                    Ok(msg) => end = append(msg, &mut out, &mut status),
                    Err(_) => break,
                }
            }
            if status != 0 {
                self.set_status(status);
            }
            let written = if out.is_empty() {
                Ok(())
            } else if S::RAW_FD && matches!(end, BatchEnd::File { .. }) {
                // A file follows: hold the head back so it leaves with the file's first bytes.
                Box::pin(self.write_more(&out)).await
            } else {
                self.write_all(&out).await
            };
            out.clear();
            let after = |close: bool| {
                if close {
                    Outcome::Close
                } else {
                    Outcome::KeepAlive
                }
            };
            match end {
                BatchEnd::More => written?,
                BatchEnd::Done { close, notice } => {
                    if let Some(notice) = notice {
                        notice.done(written.is_ok());
                    }
                    written?;
                    return Ok(after(close));
                }
                BatchEnd::File {
                    file,
                    len,
                    close,
                    notice,
                } => {
                    let sent = match written {
                        // Boxed: the file loops should not enlarge every connection's future.
                        Ok(()) if S::RAW_FD => Box::pin(self.send_file(&file, len)).await,
                        Ok(()) => Box::pin(self.copy_file(&file, len)).await,
                        Err(e) => Err(e),
                    };
                    if let Some(notice) = notice {
                        notice.done(sent.is_ok());
                    }
                    sent?;
                    return Ok(after(close));
                }
                BatchEnd::Hijack(tx) => {
                    written?;
                    return Ok(Outcome::Hijack(tx));
                }
                BatchEnd::Abort => {
                    written?;
                    return Ok(Outcome::Close);
                }
            }
        }
    }

    /// Runs one write-side system call on the socket once it is writable (`call` returns what
    /// the call returned: a byte count, or -1 with errno set), retrying when it would block.
    /// A client that accepts nothing for `write_timeout` is cut off.
    async fn write_op(&self, mut call: impl FnMut(RawFd) -> isize) -> io::Result<usize> {
        let io = &self.io;
        let attempt = async {
            loop {
                io.writable().await?;
                let result = io.try_write_with(|sock| match call(sock) {
                    n if n < 0 => Err(io::Error::last_os_error()),
                    n => Ok(n as usize),
                });
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        };
        timeout(self.shared.config.write_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(write_timed_out()))
    }

    /// Writes `bytes` with MSG_MORE: the kernel keeps them until more data follows (or a
    /// short delay passes), so a file's head goes out in the same segments as its first bytes.
    async fn write_more(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        while sent < bytes.len() {
            let rest = &bytes[sent..];
            // SAFETY: writes from a live slice to the connection's socket.
            let n = self
                .write_op(|sock| unsafe {
                    libc::send(
                        sock,
                        rest.as_ptr() as *const libc::c_void,
                        rest.len(),
                        libc::MSG_MORE | libc::MSG_NOSIGNAL,
                    )
                })
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            sent += n;
            self.count_written(n);
        }
        Ok(())
    }

    /// Sends the first `len` bytes of `file` with sendfile(2): the data goes from the page
    /// cache to the socket without passing through user space.
    async fn send_file(&mut self, file: &std::fs::File, len: u64) -> io::Result<()> {
        let file_fd = file.as_raw_fd();
        let mut offset: libc::off_t = 0;
        while (offset as u64) < len {
            let count = (len - offset as u64).min(SENDFILE_MAX) as usize;
            let offset_ref = &mut offset;
            // SAFETY: both descriptors stay open for the call and `offset_ref` points to a
            // live off_t.
            let sent = self
                .write_op(|sock| unsafe { libc::sendfile(sock, file_fd, &mut *offset_ref, count) })
                .await?;
            if sent == 0 {
                // The file shrank after its length was announced: the response cannot be
                // completed, so the connection must close.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its announced length",
                ));
            }
            self.count_written(sent);
        }
        Ok(())
    }

    /// Sends the first `len` bytes of `file` through the stream (TLS, where sendfile would
    /// put plaintext on the wire): read in chunks on the I/O thread, like the temp-file
    /// writes of request bodies, which mostly hit the page cache.
    async fn copy_file(&mut self, file: &std::fs::File, len: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut chunk = vec![0u8; FILE_CHUNK.min(len as usize)];
        let mut offset = 0u64;
        while offset < len {
            let want = (len - offset).min(chunk.len() as u64) as usize;
            let read = file.read_at(&mut chunk[..want], offset)?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its announced length",
                ));
            }
            self.write_all(&chunk[..read]).await?;
            offset += read as u64;
        }
        Ok(())
    }

    /// Answers a static route from the I/O thread: one write; a large body is sent from the
    /// shared buffer in the same vectored write rather than copied.
    async fn write_static(
        &mut self,
        response: &StaticResponse,
        head_only: bool,
        version: Version,
        keep: bool,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        if head_only || response.body_len() <= STATIC_COPY_LIMIT {
            response.write_to(&mut out, head_only, version, !keep);
            return self.write_all(&out).await;
        }
        response.write_head_to(&mut out, version, !keep);
        let body = response.body();
        let total = out.len() + body.len();
        let mut written = 0;
        let write_timeout = self.shared.config.write_timeout;
        while written < total {
            let slices: [io::IoSlice<'_>; 2] = if written < out.len() {
                [io::IoSlice::new(&out[written..]), io::IoSlice::new(body)]
            } else {
                [
                    io::IoSlice::new(&body[written - out.len()..]),
                    io::IoSlice::new(&[]),
                ]
            };
            let n = timeout(write_timeout, self.io.write_vectored(&slices))
                .await
                .unwrap_or_else(|_| Err(write_timed_out()))?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += n;
            self.count_written(n);
        }
        if !S::RAW_FD {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything or fails; a client that stops reading for `write_timeout` is cut off
    /// so it cannot pin the connection forever.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        timeout(self.shared.config.write_timeout, self.io.write_all(bytes))
            .await
            .unwrap_or_else(|_| Err(write_timed_out()))?;
        self.count_written(bytes.len());
        if !S::RAW_FD {
            self.flush().await?;
        }
        Ok(())
    }

    /// A TLS stream may keep encrypted bytes back when the socket would block; they must be
    /// on the wire before the connection waits for the client.
    async fn flush(&mut self) -> io::Result<()> {
        timeout(self.shared.config.write_timeout, self.io.flush())
            .await
            .unwrap_or_else(|_| Err(write_timed_out()))
    }

    async fn reject(&mut self, err: ParseError) -> io::Result<Outcome> {
        let status = err.status();
        let out = parse_error_response(&self.shared, self.peer, err);
        self.answer_and_close(&out, status).await
    }

    async fn internal_error(&mut self, err: io::Error) -> io::Result<Outcome> {
        let out = internal_error_response(&self.shared, err);
        self.answer_and_close(&out, 500).await
    }

    async fn timed_out(&mut self) -> io::Result<Outcome> {
        let out = timeout_response(&self.shared, self.peer);
        self.answer_and_close(&out, 408).await
    }

    /// Writes one of the engine's error answers, reports the request, lingers and closes.
    async fn answer_and_close(&mut self, out: &[u8], status: u16) -> io::Result<Outcome> {
        if self.current.is_none() {
            self.current = Some(Current::unparsed(&self.shared, std::time::Instant::now()));
        }
        self.set_status(status);
        let written = self.write_all(out).await;
        self.finish_request();
        written?;
        self.linger().await;
        Ok(Outcome::Close)
    }

    /// Half-closes and discards what the client still sends, briefly, so that closing with
    /// unread data does not reset the connection before the client has read our answer.
    async fn linger(&mut self) {
        if self.io.shutdown().await.is_err() {
            return;
        }
        // On the heap: a buffer here would be part of every connection's future, idle or not.
        let mut sink = vec![0u8; 4096];
        let mut total = 0usize;
        let until = Instant::now() + LINGER_TIME;
        while total < LINGER_BYTES {
            match timeout(
                until.saturating_duration_since(Instant::now()),
                self.io.read(&mut sink),
            )
            .await
            {
                Ok(Ok(n)) if n > 0 => total += n,
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every open connection, idle or not, is one of these futures: a large buffer slipped into
    /// it (it happened once, through the linger path) multiplies by 10,000 idle connections.
    #[test]
    fn connection_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, _b) = tokio::net::UnixStream::pair().unwrap();
            let info = std::sync::Arc::new(crate::exchange::ListenerInfo {
                server_name: "x".into(),
                server_port: 1,
                scheme: "http",
                admin_only: false,
            });
            let conn = super::Connection::new(
                a,
                crate::exchange::Peer::Unix,
                crate::engine::test_shared(),
                info,
            );
            let size = std::mem::size_of_val(&conn.run());
            assert!(size <= 2048, "connection future is {size} bytes");
        });
    }
}
