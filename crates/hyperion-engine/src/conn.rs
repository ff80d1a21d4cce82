//! One HTTP/1.x connection: read a request, hand it to the application threads, write the
//! answer, repeat. Requests on a connection are answered strictly in order, so pipelined
//! requests simply wait in the read buffer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use hyperion_http::{
    parse_request_head, BodyFraming, ChunkedDecoder, HeadStatus, ParseError, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use crate::engine::{Phase, Shared};
use crate::exchange::{Exchange, ListenerInfo, Peer};
use crate::queue::PushError;
use crate::response::{simple_response, Response, ResponseMsg};
use crate::stats::bump;

/// Read-buffer growth step: small, because 10,000 idle connections must stay cheap.
const READ_CHUNK: usize = 4096;
/// How long and how much a rejected connection is drained before closing, so the client reads
/// the error instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// While the engine stops, how long an idle connection still waits for a request the client
/// may already have sent (it cannot know we are stopping) before closing: closing under it
/// would lose that request, answering it with `connection: close` does not.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// How much already-waiting response data is gathered into one write.
const COALESCE_LIMIT: usize = 256 * 1024;

/// Where a batch of response messages leaves the response.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    More,
    Done { close: bool },
    Abort,
}

/// Appends a message's bytes to `out` (taking the buffer when `out` is empty).
fn append(msg: ResponseMsg, out: &mut Vec<u8>) -> BatchEnd {
    let (bytes, end) = match msg {
        ResponseMsg::Bytes(bytes) => (bytes, BatchEnd::More),
        ResponseMsg::Final { bytes, close } => (bytes, BatchEnd::Done { close }),
        ResponseMsg::Abort => return BatchEnd::Abort,
    };
    if out.is_empty() {
        *out = bytes;
    } else {
        out.extend_from_slice(&bytes);
    }
    end
}

/// Response messages buffered between an application thread and the writer.
pub(crate) const RESPONSE_CHANNEL: usize = 16;

enum Outcome {
    KeepAlive,
    Close,
}

pub(crate) struct Connection<S> {
    io: S,
    peer: Peer,
    shared: Arc<Shared>,
    listener: Arc<ListenerInfo>,
    buf: BytesMut,
}

/// A connected socket the engine can wait on without committing a read buffer to it.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

impl Socket for tokio::net::TcpStream {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::TcpStream::readable(self)
    }
}

impl Socket for tokio::net::UnixStream {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::UnixStream::readable(self)
    }
}

impl<S: Socket> Connection<S> {
    pub(crate) fn new(io: S, peer: Peer, shared: Arc<Shared>, listener: Arc<ListenerInfo>) -> Self {
        Connection {
            io,
            peer,
            shared,
            listener,
            buf: BytesMut::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        while let Ok(Outcome::KeepAlive) = self.serve_one().await {
            if self.buf.is_empty() {
                // Give the memory back while the connection idles.
                self.buf = BytesMut::new();
            }
        }
        let _ = self.io.shutdown().await;
    }

    /// Reads more bytes into the buffer; Ok(false) on EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    async fn serve_one(&mut self) -> io::Result<Outcome> {
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
                match parse_request_head(&self.buf, limits) {
                    Ok(HeadStatus::Complete { head, len }) => break (head, len),
                    Ok(HeadStatus::Partial) => {}
                    Err(e) => return self.reject(e).await,
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
        let head_bytes = self.buf.split_to(head_len).freeze();
        // A body may legitimately take long (a large upload); what must not happen is a
        // stall, so its timeout restarts whenever bytes arrive.
        let body_timeout = self.shared.config.request_read_timeout;
        let mut deadline = Instant::now() + body_timeout;

        // The body, read completely before dispatch so no application thread ever waits on a
        // slow client.
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        let expect_continue = head.expect_continue && head.version == Version::Http11;
        match head.framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                let n = n as usize;
                if expect_continue && self.buf.len() < n {
                    self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
                let have = self.buf.len().min(n);
                body.reserve_exact(n);
                body.extend_from_slice(&self.buf[..have]);
                self.buf.advance(have);
                let mut filled = have;
                if filled < n {
                    body.resize(n, 0);
                    while filled < n {
                        let read = tokio::select! {
                            r = self.io.read(&mut body[filled..]) => r?,
                            _ = sleep_until(deadline) => return self.timed_out().await,
                        };
                        if read == 0 {
                            return Ok(Outcome::Close);
                        }
                        filled += read;
                        deadline = Instant::now() + body_timeout;
                    }
                }
            }
            BodyFraming::Chunked => {
                if expect_continue && self.buf.is_empty() {
                    self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
                let mut decoder = ChunkedDecoder::new(limits);
                loop {
                    match decoder.decode(&self.buf, &mut body) {
                        Ok(consumed) => self.buf.advance(consumed),
                        Err(e) => return self.reject(e).await,
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

        bump(&self.shared.stats.requests_total);
        let head_request = head.method.slice(&head_bytes) == b"HEAD";
        // A channel per request rather than per connection: an idle connection then holds
        // nothing but its socket.
        let (tx, rx) = mpsc::channel(RESPONSE_CHANNEL);
        let response = Response::new(
            tx,
            head_request,
            head.version,
            head.keep_alive,
            self.shared.draining.clone(),
        );
        let exchange = Box::new(Exchange {
            head,
            head_bytes,
            body,
            trailers,
            peer: self.peer,
            listener: self.listener.clone(),
            response,
        });
        // Refused: the engine answers 503 itself. A full queue keeps the connection; a closed
        // one (the engine is stopping) ends it.
        let (mut refused, keep) = match self.shared.queue.push(exchange) {
            Ok(()) => return self.write_response(rx).await,
            Err(PushError::Full(ex)) => {
                let keep = ex.head.keep_alive && !self.shared.is_draining();
                (ex, keep)
            }
            Err(PushError::Closed(ex)) => (ex, false),
        };
        bump(&self.shared.stats.rejected);
        // Marked answered so dropping it does not abort the connection.
        refused.response.abort_msg();
        drop(refused);
        let out = simple_response(503, "Service Unavailable\n", !keep, &[("retry-after", "1")]);
        self.write_all(&out).await?;
        Ok(if keep {
            Outcome::KeepAlive
        } else {
            Outcome::Close
        })
    }

    /// Writes what the application thread sends until the response is complete. Messages that
    /// are already waiting are coalesced into one write (e.g. the last chunk and the terminator).
    async fn write_response(&mut self, mut rx: mpsc::Receiver<ResponseMsg>) -> io::Result<Outcome> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(first) = rx.recv().await else {
                return Ok(Outcome::Close);
            };
            let mut end = append(first, &mut out);
            while end == BatchEnd::More && out.len() < COALESCE_LIMIT {
                match rx.try_recv() {
                    Ok(msg) => end = append(msg, &mut out),
                    Err(_) => break,
                }
            }
            if !out.is_empty() {
                self.write_all(&out).await?;
                out.clear();
            }
            match end {
                BatchEnd::More => {}
                BatchEnd::Done { close: false } => return Ok(Outcome::KeepAlive),
                BatchEnd::Done { close: true } | BatchEnd::Abort => return Ok(Outcome::Close),
            }
        }
    }

    /// Writes everything or fails; a client that stops reading for `write_timeout` is cut off
    /// so it cannot pin the connection forever.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match timeout(self.shared.config.write_timeout, self.io.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    async fn reject(&mut self, err: ParseError) -> io::Result<Outcome> {
        bump(&self.shared.stats.parse_errors);
        let status = err.status();
        let body = format!("{}\n", hyperion_http::reason_phrase(status));
        let out = simple_response(status, &body, true, &[]);
        self.write_all(&out).await?;
        self.linger().await;
        Ok(Outcome::Close)
    }

    async fn timed_out(&mut self) -> io::Result<Outcome> {
        bump(&self.shared.stats.read_timeouts);
        let out = simple_response(408, "Request Timeout\n", true, &[]);
        self.write_all(&out).await?;
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
