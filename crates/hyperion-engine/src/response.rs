//! Building and sending an HTTP/1.x response from an application thread.
//!
//! The application thread encodes the head (and, for buffered bodies, the body) into one buffer
//! and passes it to the connection's I/O task over a small channel; the I/O task only writes.
//! Framing decisions (content-length, chunked, close) are made here and nowhere else.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyperion_http::{
    is_valid_header_name, is_valid_header_value, write_chunk, Version, LAST_CHUNK,
};

use crate::chan;

/// What travels from an application thread to the connection task.
#[derive(Debug)]
pub enum ResponseMsg {
    /// Bytes to write; more follow.
    Bytes(Vec<u8>),
    /// The head of a streamed (or upgraded) response, carrying its status for the metrics
    /// and the access log; body bytes follow.
    Head { bytes: Vec<u8>, status: u16 },
    /// The last bytes of the response; `close` ends the connection after writing them.
    /// `status` is the response's status when these bytes include its head, else 0.
    Final {
        bytes: Vec<u8>,
        close: bool,
        notice: Option<WrittenNotice>,
        status: u16,
    },
    /// The last part of the response: `head`, then `len` bytes of `file` from its start,
    /// sent with sendfile.
    File {
        head: Vec<u8>,
        file: std::fs::File,
        len: u64,
        close: bool,
        notice: Option<WrittenNotice>,
        status: u16,
    },
    /// The application takes the socket over: the connection task writes nothing more, lets
    /// go of the descriptor and sends it back with the bytes it had read past the request.
    Hijack(std::sync::mpsc::SyncSender<Hijacked>),
    /// The response cannot be completed: close the connection without writing more (on
    /// HTTP/2: reset the stream).
    Abort,
    /// HTTP/2: status and headers (HEADERS), then `body` as DATA; the stream ends after them
    /// when `end`. Further body parts follow as `Bytes`, the last as `Final` or `Trailers`.
    Head2 {
        head: H2Head,
        body: Vec<u8>,
        end: bool,
        notice: Option<WrittenNotice>,
    },
    /// HTTP/2: status and headers, then the first `len` bytes of `file` as DATA; this ends
    /// the stream.
    File2 {
        head: H2Head,
        file: std::fs::File,
        len: u64,
        notice: Option<WrittenNotice>,
    },
    /// HTTP/2: an informational (1xx) head, e.g. 103 Early Hints, ahead of the response.
    Interim(H2Head),
    /// The last part of a streamed response: trailer fields (HTTP/2: trailing HEADERS;
    /// HTTP/1.1 chunked: the trailer section).
    Trailers {
        trailers: Box<http::HeaderMap>,
        notice: Option<WrittenNotice>,
    },
}

/// A socket handed over to the application: blocking mode, owned by the receiver.
#[derive(Debug)]
pub struct Hijacked {
    pub fd: OwnedFd,
    /// Bytes the client sent after the request (a pipelined request, the first frames of an
    /// upgraded protocol) that the engine had already read.
    pub buffered: Vec<u8>,
}

/// Tells an application thread that the last byte of its response reached the socket
/// (`true`) or that it never will (`false`, or the notice dropped unsent).
#[derive(Debug)]
pub struct WrittenNotice(std::sync::mpsc::SyncSender<bool>);

impl WrittenNotice {
    pub fn done(self, written: bool) {
        let _ = self.0.try_send(written);
    }
}

/// Why a response was refused before anything reached the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    InvalidStatus(i64),
    InvalidHeaderName(String),
    InvalidHeaderValue(String),
    InvalidContentLength(String),
    AlreadyStarted,
    NotStreaming,
    /// Taking the socket over is impossible on an HTTP/2 stream.
    NoHijackOnHttp2,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::InvalidStatus(s) => write!(f, "invalid response status {s}"),
            ResponseError::InvalidHeaderName(n) => write!(f, "invalid response header name {n:?}"),
            ResponseError::InvalidHeaderValue(n) => {
                write!(
                    f,
                    "invalid value for response header {n:?} (CR, LF, NUL or control character)"
                )
            }
            ResponseError::InvalidContentLength(v) => write!(f, "invalid content-length {v:?}"),
            ResponseError::AlreadyStarted => f.write_str("response already started"),
            ResponseError::NotStreaming => f.write_str("response is not streaming"),
            ResponseError::NoHijackOnHttp2 => {
                f.write_str("an HTTP/2 stream cannot be hijacked (rack.hijack? is false)")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

/// A handle for sending from outside any lock, e.g. while the caller's runtime lock (the GVL)
/// is released.
#[derive(Clone)]
pub struct ResponseSender(chan::Sender<ResponseMsg>);

impl ResponseSender {
    /// Blocks the calling (non-runtime) thread until the connection task has room.
    pub fn send_blocking(&self, msg: ResponseMsg) -> Result<(), Disconnected> {
        self.0.blocking_send(msg).map_err(|_| Disconnected)
    }
}

/// The connection is gone; nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// Refuses a header name that is not a token, or a value with CR, LF, NUL or another control
/// character: such bytes must never reach the wire.
fn check_header(name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
    if !is_valid_header_name(name) {
        return Err(ResponseError::InvalidHeaderName(
            String::from_utf8_lossy(name).into(),
        ));
    }
    if !is_valid_header_value(value) {
        return Err(ResponseError::InvalidHeaderValue(
            String::from_utf8_lossy(name).into(),
        ));
    }
    Ok(())
}

/// A response head under construction. Headers go straight into the output buffer; the framing
/// headers are appended by [`Response`] once the body's shape is known.
/// An HTTP/2 response head: the status and the fields as an HPACK block. The block never
/// refers to the dynamic table, so it can go on any stream of any connection as it is.
#[derive(Debug, Clone)]
pub struct H2Head {
    pub status: u16,
    pub block: Vec<u8>,
}

impl H2Head {
    /// The fields, decoded (for tests and diagnostics).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let mut decoder = hyperion_h2::hpack::Decoder::new(4096);
        let _ = decoder.decode(&self.block, usize::MAX, |name, value| {
            fields.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        });
        fields
    }

    /// The first value of `name`, `:status` included.
    pub fn get(&self, name: &str) -> Option<String> {
        self.fields()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

pub struct HeadBuilder {
    buf: Vec<u8>,
    status: u16,
    content_length: Option<u64>,
    app_close: bool,
    /// The app's own Connection value, written only for a hijacked (upgraded) response.
    connection: Option<Vec<u8>>,
    has_date: bool,
    /// The date is added when the response is sent (a prebuilt response): a given one is
    /// checked and dropped.
    date_at_send: bool,
    /// `buf` is an HPACK block (an HTTP/2 stream's head, see [`HeadBuilder::for_h2`]), not
    /// HTTP/1.1 text.
    h2: bool,
}

impl HeadBuilder {
    pub fn new(status: i64, size_hint: usize) -> Result<Self, ResponseError> {
        Self::start(status, size_hint.max(256), false)
    }

    /// A head for an HTTP/2 stream: each field is HPACK-encoded as it is added (names in
    /// lowercase, connection-specific fields left out), so sending it copies nothing and
    /// parses nothing. Only [`HeadBuilder::into_h2_head`] and [`HeadBuilder::to_h2_block`]
    /// read it; a [`Response`] for an HTTP/2 stream asks for nothing else.
    pub fn for_h2(status: i64, size_hint: usize) -> Result<Self, ResponseError> {
        Self::start(status, size_hint.max(128), true)
    }

    /// A head holding only its status: the status line, or `:status` in HPACK.
    fn start(status: i64, capacity: usize, h2: bool) -> Result<Self, ResponseError> {
        if !(100..=999).contains(&status) {
            return Err(ResponseError::InvalidStatus(status));
        }
        let mut buf = Vec::with_capacity(capacity);
        if h2 {
            hyperion_h2::hpack::Encoder::new().status(status as u16, &mut buf);
        } else {
            hyperion_http::write_status_line(&mut buf, status as u16);
        }
        Ok(HeadBuilder {
            buf,
            status: status as u16,
            content_length: None,
            app_close: false,
            connection: None,
            has_date: false,
            date_at_send: false,
            h2,
        })
    }

    /// A head for a response built once and sent many times, which gets its `date` line
    /// when sent.
    pub fn dated_at_send(status: i64, size_hint: usize) -> Result<Self, ResponseError> {
        let mut head = HeadBuilder::new(status, size_hint)?;
        head.date_at_send = true;
        Ok(head)
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The status line and the header lines so far.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn push_content_length(&mut self, len: u64) {
        self.buf.extend_from_slice(b"content-length: ");
        self.buf.extend_from_slice(itoa_buf(len).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// The head as an HTTP/2 HPACK block: names in lowercase, connection-specific fields left
    /// out, then `content-length: length` and a date when asked for.
    pub(crate) fn to_h2_block(
        &self,
        length: Option<u64>,
        date: bool,
    ) -> Result<H2Head, ResponseError> {
        if !(100..=999).contains(&self.status) {
            return Err(ResponseError::InvalidStatus(self.status as i64));
        }
        let mut block = Vec::with_capacity(self.buf.len() + 64);
        if self.h2 {
            block.extend_from_slice(&self.buf);
            return Ok(H2Head {
                status: self.status,
                block: Self::end_h2_block(block, length, date),
            });
        }
        hyperion_h2::hpack::Encoder::new().status(self.status, &mut block);
        // The buffer holds our own validated lines: the status line, then `name: value\r\n`.
        let start = self
            .buf
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(self.buf.len(), |i| i + 2);
        for line in self.buf[start..].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                encode_h2_field(
                    &line[..colon],
                    line[colon + 1..].trim_ascii_start(),
                    &mut block,
                );
            }
        }
        Ok(H2Head {
            status: self.status,
            block: Self::end_h2_block(block, length, date),
        })
    }

    /// Appends `content-length` (when given) and the server's date (when asked) to a block.
    fn end_h2_block(mut block: Vec<u8>, length: Option<u64>, date: bool) -> Vec<u8> {
        use hyperion_h2::hpack::Encoder;
        let mut encoder = Encoder::new();
        if let Some(len) = length {
            encoder.named(
                Encoder::CONTENT_LENGTH,
                itoa_buf(len).as_bytes(),
                &mut block,
            );
        }
        if date {
            encoder.named(Encoder::DATE, &hyperion_http::http_date(), &mut block);
        }
        block
    }

    /// An HTTP/2 head with the server's date (unless the head has one) and, when known, the
    /// content-length. A head made with [`HeadBuilder::for_h2`] becomes the block as it is.
    pub(crate) fn into_h2_head(self, length: Option<u64>) -> Result<H2Head, ResponseError> {
        if !self.h2 {
            return self.to_h2_block(length, !self.has_date);
        }
        let date = !self.has_date;
        Ok(H2Head {
            status: self.status,
            block: Self::end_h2_block(self.buf, length, date),
        })
    }

    /// The app's Content-Length, if it declared one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Adds one header line. Framing headers are interpreted, not copied: the server frames
    /// the body itself so the app cannot desynchronise the connection.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
        check_header(name, value)?;
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let text = std::str::from_utf8(value).ok();
                let parsed = text
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u64>().ok());
                match parsed {
                    Some(n) => self.content_length = Some(n),
                    None => {
                        return Err(ResponseError::InvalidContentLength(
                            String::from_utf8_lossy(value).into(),
                        ))
                    }
                }
                return Ok(());
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return Ok(()),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                if value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                {
                    self.app_close = true;
                }
                self.connection = Some(value.to_vec());
                return Ok(());
            }
            4 if name.eq_ignore_ascii_case(b"date") => {
                if self.date_at_send {
                    return Ok(());
                }
                self.has_date = true;
            }
            _ if name.starts_with(b"rack.") => return Ok(()),
            _ => {}
        }
        if self.h2 {
            encode_h2_field(name, value, &mut self.buf);
            return Ok(());
        }
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// One validated response field into an HTTP/2 block: the name in lowercase, and nothing
/// for a connection-specific field.
fn encode_h2_field(name: &[u8], value: &[u8], block: &mut Vec<u8>) {
    if is_connection_specific(name, value) {
        return;
    }
    let mut encoder = hyperion_h2::hpack::Encoder::new();
    if !name.iter().any(u8::is_ascii_uppercase) {
        encoder.field(name, value, block);
        return;
    }
    let mut stack = [0u8; 64];
    let mut heap;
    let lower: &mut [u8] = if name.len() <= stack.len() {
        &mut stack[..name.len()]
    } else {
        heap = name.to_vec();
        &mut heap
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    encoder.field(lower, value, block);
}

/// Headers that only mean something on one HTTP/1.1 connection and must not appear in an
/// HTTP/2 message (`connection` and `transfer-encoding` never reach the head buffer).
pub(crate) fn is_connection_specific(name: &[u8], value: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"keep-alive")
        || name.eq_ignore_ascii_case(b"proxy-connection")
        || name.eq_ignore_ascii_case(b"upgrade")
        || (name.eq_ignore_ascii_case(b"te") && !value.eq_ignore_ascii_case(b"trailers"))
}

/// Trailer fields for the end of a streamed response, validated like headers. Pseudo-header
/// names (`:status`) and connection-specific fields (RFC 9113 8.2.2; they are framing, not
/// content) are dropped, since no trailer section may carry them.
pub fn trailer_map(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<http::HeaderMap, ResponseError> {
    let mut map = http::HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        if name.first() == Some(&b':')
            || name.eq_ignore_ascii_case(b"connection")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"te")
            || is_connection_specific(name, value)
        {
            continue;
        }
        check_header(name, value)?;
        let name = http::HeaderName::from_bytes(name)
            .map_err(|_| ResponseError::InvalidHeaderName(String::from_utf8_lossy(name).into()))?;
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|_| ResponseError::InvalidHeaderValue(name.as_str().to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}

/// How the body of a streamed response is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamFraming {
    /// HEAD, 1xx, 204, 304: the head is all there is.
    NoBody,
    /// The app declared a content-length: bytes go out as-is, exactly that many.
    Length {
        remaining: u64,
    },
    Chunked,
    /// HTTP/1.0 client and unknown length: the end of the body is the end of the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Streaming {
        framing: StreamFraming,
        keep_alive: bool,
    },
    /// A partial hijack's head went out; the socket is handed over next.
    Upgraded,
    Done,
}

/// The sending half of one exchange's response.
pub struct Response {
    tx: chan::Sender<ResponseMsg>,
    head_request: bool,
    version: Version,
    keep_alive: bool,
    draining: Arc<AtomicBool>,
    state: State,
    notice: Option<WrittenNotice>,
    /// An HTTP/2 stream: heads travel structured and the body as DATA.
    h2: bool,
}

fn body_allowed(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

impl Response {
    pub(crate) fn new(
        tx: chan::Sender<ResponseMsg>,
        head_request: bool,
        version: Version,
        keep_alive: bool,
        draining: Arc<AtomicBool>,
    ) -> Self {
        Response {
            tx,
            head_request,
            version,
            keep_alive,
            draining,
            state: State::Pending,
            notice: None,
            h2: false,
        }
    }

    /// The response of an HTTP/2 stream.
    pub(crate) fn new_h2(
        tx: chan::Sender<ResponseMsg>,
        head_request: bool,
        draining: Arc<AtomicBool>,
    ) -> Self {
        let mut response = Response::new(tx, head_request, Version::Http11, true, draining);
        response.h2 = true;
        response
    }

    /// Whether this answers an HTTP/2 stream (no hijack, no early hints).
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// A head for this response, in the form its protocol sends.
    pub fn new_head(&self, status: i64, size_hint: usize) -> Result<HeadBuilder, ResponseError> {
        if self.h2 {
            HeadBuilder::for_h2(status, size_hint)
        } else {
            HeadBuilder::new(status, size_hint)
        }
    }

    pub fn is_head_request(&self) -> bool {
        self.head_request
    }

    pub fn is_started(&self) -> bool {
        self.state != State::Pending
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn keep_alive_for(&self, head: &HeadBuilder) -> bool {
        self.keep_alive && !head.app_close && !self.draining.load(Ordering::Relaxed)
    }

    fn finish_head(&self, head: &mut HeadBuilder, keep_alive: bool) {
        let buf = &mut head.buf;
        if !head.has_date {
            buf.extend_from_slice(b"date: ");
            buf.extend_from_slice(&hyperion_http::http_date());
            buf.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            buf.extend_from_slice(b"connection: close\r\n");
        } else if self.version == Version::Http10 {
            buf.extend_from_slice(b"connection: keep-alive\r\n");
        }
        buf.extend_from_slice(b"\r\n");
    }

    /// Encodes a response whose body is fully known: `body_len` bytes, appended by `fill` into
    /// the returned buffer (only when a body is to be sent). Returns the message to send.
    pub fn encode_full(
        &mut self,
        mut head: HeadBuilder,
        body_len: u64,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<ResponseMsg, ResponseError> {
        if self.state != State::Pending {
            return Err(ResponseError::AlreadyStarted);
        }
        let with_body = body_allowed(head.status);
        if self.h2 {
            let len = match (self.head_request, head.content_length) {
                (true, Some(declared)) => declared,
                _ => body_len,
            };
            let head = head.into_h2_head(with_body.then_some(len))?;
            let mut body = Vec::new();
            if with_body && !self.head_request && body_len > 0 {
                body.reserve(body_len as usize);
                fill(&mut body);
            }
            self.state = State::Done;
            return Ok(ResponseMsg::Head2 {
                head,
                body,
                end: true,
                notice: self.notice.take(),
            });
        }
        let keep_alive = self.keep_alive_for(&head);
        if with_body {
            // A HEAD response reports the length a GET would have had; the app may know it.
            let len = match (self.head_request, head.content_length) {
                (true, Some(declared)) => declared,
                _ => body_len,
            };
            head.push_content_length(len);
        }
        self.finish_head(&mut head, keep_alive);
        let status = head.status;
        let mut bytes = head.buf;
        if with_body && !self.head_request && body_len > 0 {
            bytes.reserve(body_len as usize);
            fill(&mut bytes);
        }
        self.state = State::Done;
        Ok(ResponseMsg::Final {
            bytes,
            close: !keep_alive,
            notice: self.notice.take(),
            status,
        })
    }

    /// Starts a streamed response: returns the head to send. Chunks follow through
    /// [`Response::encode_chunk`] and the end through [`Response::encode_end`].
    pub fn encode_stream_head(
        &mut self,
        mut head: HeadBuilder,
    ) -> Result<ResponseMsg, ResponseError> {
        if self.state != State::Pending {
            return Err(ResponseError::AlreadyStarted);
        }
        if self.h2 {
            let allowed = body_allowed(head.status);
            let framing = match head.content_length {
                _ if !allowed || self.head_request => StreamFraming::NoBody,
                Some(len) => StreamFraming::Length { remaining: len },
                None => StreamFraming::Chunked,
            };
            let length = head.content_length.filter(|_| allowed);
            let head = head.into_h2_head(length)?;
            self.state = State::Streaming {
                framing,
                keep_alive: true,
            };
            return Ok(ResponseMsg::Head2 {
                head,
                body: Vec::new(),
                end: false,
                notice: None,
            });
        }
        let mut keep_alive = self.keep_alive_for(&head);
        let framing = if !body_allowed(head.status) {
            StreamFraming::NoBody
        } else if let Some(len) = head.content_length {
            head.push_content_length(len);
            if self.head_request {
                StreamFraming::NoBody
            } else {
                StreamFraming::Length { remaining: len }
            }
        } else if self.head_request {
            StreamFraming::NoBody
        } else if self.version == Version::Http11 {
            head.buf
                .extend_from_slice(b"transfer-encoding: chunked\r\n");
            StreamFraming::Chunked
        } else {
            keep_alive = false;
            StreamFraming::UntilClose
        };
        self.finish_head(&mut head, keep_alive);
        self.state = State::Streaming {
            framing,
            keep_alive,
        };
        Ok(ResponseMsg::Head {
            bytes: head.buf,
            status: head.status,
        })
    }

    /// Encodes one body chunk; `None` when there is nothing to send (empty chunk, HEAD, or a
    /// declared length already reached — excess bytes are dropped and the connection closed).
    pub fn encode_chunk(&mut self, data: &[u8]) -> Result<Option<ResponseMsg>, ResponseError> {
        let State::Streaming {
            framing,
            keep_alive,
        } = &mut self.state
        else {
            return Err(ResponseError::NotStreaming);
        };
        if data.is_empty() {
            return Ok(None);
        }
        match framing {
            StreamFraming::NoBody => Ok(None),
            // HTTP/2 DATA frames carry the bytes as they are.
            StreamFraming::Chunked if self.h2 => Ok(Some(ResponseMsg::Bytes(data.to_vec()))),
            StreamFraming::Chunked => {
                let mut out = Vec::with_capacity(data.len() + 16);
                write_chunk(&mut out, data);
                Ok(Some(ResponseMsg::Bytes(out)))
            }
            StreamFraming::UntilClose => Ok(Some(ResponseMsg::Bytes(data.to_vec()))),
            StreamFraming::Length { remaining } => {
                let take = (*remaining).min(data.len() as u64) as usize;
                if take < data.len() {
                    // The app wrote more than it declared; the peer must not read the excess
                    // as the next response.
                    *keep_alive = false;
                }
                *remaining -= take as u64;
                if take == 0 {
                    return Ok(None);
                }
                Ok(Some(ResponseMsg::Bytes(data[..take].to_vec())))
            }
        }
    }

    /// Ends a streamed response.
    pub fn encode_end(&mut self) -> Result<ResponseMsg, ResponseError> {
        let State::Streaming {
            framing,
            keep_alive,
        } = self.state
        else {
            return Err(ResponseError::NotStreaming);
        };
        self.state = State::Done;
        let notice = self.notice.take();
        Ok(match framing {
            StreamFraming::Chunked if !self.h2 => ResponseMsg::Final {
                bytes: LAST_CHUNK.to_vec(),
                close: !keep_alive,
                notice,
                status: 0,
            },
            // Fewer bytes than declared: the only honest end is closing the connection (the
            // notice, dropped unsent, reports the response as not written).
            StreamFraming::Length { remaining } if remaining > 0 => ResponseMsg::Abort,
            StreamFraming::UntilClose => ResponseMsg::Final {
                bytes: Vec::new(),
                close: true,
                notice,
                status: 0,
            },
            _ => ResponseMsg::Final {
                bytes: Vec::new(),
                close: !keep_alive,
                notice,
                status: 0,
            },
        })
    }

    /// Ends a streamed response with trailer fields: trailing HEADERS on HTTP/2, the trailer
    /// section of a chunked HTTP/1.1 body. Where trailers cannot be sent (a declared length,
    /// HTTP/1.0, no body) they are dropped and the response ends as with
    /// [`Response::encode_end`].
    pub fn encode_end_with_trailers(
        &mut self,
        trailers: http::HeaderMap,
    ) -> Result<ResponseMsg, ResponseError> {
        let State::Streaming {
            framing,
            keep_alive,
        } = self.state
        else {
            return Err(ResponseError::NotStreaming);
        };
        let can_trail = match framing {
            StreamFraming::Chunked => true,
            StreamFraming::Length { remaining: 0 } => self.h2,
            _ => false,
        };
        if !can_trail || trailers.is_empty() {
            return self.encode_end();
        }
        self.state = State::Done;
        let notice = self.notice.take();
        if self.h2 {
            return Ok(ResponseMsg::Trailers {
                trailers: Box::new(trailers),
                notice,
            });
        }
        let mut bytes = b"0\r\n".to_vec();
        for (name, value) in &trailers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        Ok(ResponseMsg::Final {
            bytes,
            close: !keep_alive,
            notice,
            status: 0,
        })
    }

    /// Answers with a response built in advance (a static route observed by request hooks).
    pub fn encode_static(
        &mut self,
        response: &crate::routes::StaticResponse,
        head_only: bool,
    ) -> Result<ResponseMsg, ResponseError> {
        if self.state != State::Pending {
            return Err(ResponseError::AlreadyStarted);
        }
        if self.h2 {
            let head_only = head_only || self.head_request;
            self.state = State::Done;
            return Ok(ResponseMsg::Head2 {
                head: H2Head {
                    status: response.status(),
                    block: response.h2_block().to_vec(),
                },
                body: if head_only {
                    Vec::new()
                } else {
                    response.body().to_vec()
                },
                end: true,
                notice: self.notice.take(),
            });
        }
        let keep_alive = self.keep_alive && !self.draining.load(Ordering::Relaxed);
        let mut bytes = Vec::new();
        response.write_to(
            &mut bytes,
            head_only || self.head_request,
            self.version,
            !keep_alive,
        );
        self.state = State::Done;
        Ok(ResponseMsg::Final {
            bytes,
            close: !keep_alive,
            notice: self.notice.take(),
            status: response.status(),
        })
    }

    /// Asks to be told when the response has been written completely (or has failed): the
    /// returned receiver gets one value after the final message reaches the socket.
    pub fn request_written_notice(&mut self) -> std::sync::mpsc::Receiver<bool> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.notice = Some(WrittenNotice(tx));
        rx
    }

    /// Encodes a complete response whose body is the first `len` bytes of `file`, written
    /// by the connection task with sendfile. HEAD requests get the head only.
    pub fn encode_file(
        &mut self,
        head: HeadBuilder,
        file: std::fs::File,
        len: u64,
    ) -> Result<ResponseMsg, ResponseError> {
        let sends_body = body_allowed(head.status) && !self.head_request && len > 0;
        if self.h2 && sends_body {
            if self.state != State::Pending {
                return Err(ResponseError::AlreadyStarted);
            }
            let head = head.into_h2_head(Some(len))?;
            self.state = State::Done;
            return Ok(ResponseMsg::File2 {
                head,
                file,
                len,
                notice: self.notice.take(),
            });
        }
        // The head is that of a full response of `len` bytes; only the body travels apart.
        match self.encode_full(head, len, |_| {})? {
            ResponseMsg::Final {
                bytes,
                close,
                notice,
                status,
            } if sends_body => Ok(ResponseMsg::File {
                head: bytes,
                file,
                len,
                close,
                notice,
                status,
            }),
            other => Ok(other),
        }
    }

    /// An informational (1xx) response sent ahead of the real one, e.g. 103 Early Hints.
    /// `None` when the client cannot receive one (HTTP/1.0) or the response has started.
    pub fn encode_informational(&self, head: HeadBuilder) -> Option<ResponseMsg> {
        if self.state != State::Pending {
            return None;
        }
        if self.h2 {
            return head.to_h2_block(None, false).ok().map(ResponseMsg::Interim);
        }
        if self.version != Version::Http11 {
            return None;
        }
        let mut buf = head.buf;
        buf.extend_from_slice(b"\r\n");
        Some(ResponseMsg::Bytes(buf))
    }

    /// The head of a partially hijacked response (e.g. 101 Switching Protocols): status and
    /// headers as the app gave them, its own Connection value, no body framing. The socket
    /// is handed over right after it with [`Response::hijack`].
    pub fn encode_upgrade_head(
        &mut self,
        mut head: HeadBuilder,
    ) -> Result<ResponseMsg, ResponseError> {
        if self.h2 {
            return Err(ResponseError::NoHijackOnHttp2);
        }
        if self.state != State::Pending {
            return Err(ResponseError::AlreadyStarted);
        }
        let buf = &mut head.buf;
        if let Some(connection) = &head.connection {
            buf.extend_from_slice(b"connection: ");
            buf.extend_from_slice(connection);
            buf.extend_from_slice(b"\r\n");
        }
        if !head.has_date {
            buf.extend_from_slice(b"date: ");
            buf.extend_from_slice(&hyperion_http::http_date());
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        self.state = State::Upgraded;
        Ok(ResponseMsg::Head {
            bytes: head.buf,
            status: head.status,
        })
    }

    /// Takes the socket over (full hijack, or after [`Response::encode_upgrade_head`]). The
    /// descriptor arrives on the returned receiver once everything before it is written; the
    /// receiver errs if the connection is already gone.
    pub fn hijack(
        &mut self,
    ) -> Result<(ResponseMsg, std::sync::mpsc::Receiver<Hijacked>), ResponseError> {
        if self.h2 {
            return Err(ResponseError::NoHijackOnHttp2);
        }
        if !matches!(self.state, State::Pending | State::Upgraded) {
            return Err(ResponseError::AlreadyStarted);
        }
        self.state = State::Done;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        Ok((ResponseMsg::Hijack(tx), rx))
    }

    /// Marks the response failed: the connection is closed without further writes.
    pub fn abort_msg(&mut self) -> ResponseMsg {
        self.state = State::Done;
        ResponseMsg::Abort
    }

    /// Sends without blocking. `Err(Ok(msg))` means the channel is full: the caller should
    /// send it through [`Response::sender`] (after releasing any lock it holds).
    pub fn try_send(&self, msg: ResponseMsg) -> Result<(), Result<ResponseMsg, Disconnected>> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(chan::TrySendError::Full(msg)) => Err(Ok(msg)),
            Err(chan::TrySendError::Closed(_)) => Err(Err(Disconnected)),
        }
    }

    pub fn sender(&self) -> ResponseSender {
        ResponseSender(self.tx.clone())
    }

    /// Sends, blocking when the connection task is behind (backpressure from a slow client).
    pub fn send(&self, msg: ResponseMsg) -> Result<(), Disconnected> {
        match self.try_send(msg) {
            Ok(()) => Ok(()),
            Err(Ok(msg)) => self.sender().send_blocking(msg),
            Err(Err(d)) => Err(d),
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // An exchange dropped without an answer (app thread died, engine stopping) must not
        // leave its connection waiting forever.
        if self.state != State::Done {
            let _ = self.tx.try_send(ResponseMsg::Abort);
        }
    }
}

/// Decimal digits of `n` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// A complete response the engine writes by itself (errors, 503), always closing or keeping
/// alive as told.
pub fn simple_response(status: u16, body: &str, close: bool, extra: &[(&str, &str)]) -> Vec<u8> {
    engine_response(
        status,
        "text/plain; charset=utf-8",
        body,
        false,
        close,
        extra,
    )
}

/// [`simple_response`] with its content type given, and without the body when `head_only` (the
/// answer to a HEAD request keeps the body's content-length).
pub fn engine_response(
    status: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
    close: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    hyperion_http::write_status_line(&mut out, status);
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa_buf(body.len() as u64).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(&hyperion_http::http_date());
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(
        version: Version,
        head_request: bool,
        keep_alive: bool,
    ) -> (Response, chan::Receiver<ResponseMsg>) {
        let (tx, rx) = chan::channel(8);
        (
            Response::new(
                tx,
                head_request,
                version,
                keep_alive,
                Arc::new(AtomicBool::new(false)),
            ),
            rx,
        )
    }

    fn text(msg: &ResponseMsg) -> String {
        match msg {
            ResponseMsg::Bytes(b)
            | ResponseMsg::Head { bytes: b, .. }
            | ResponseMsg::Final { bytes: b, .. } => String::from_utf8_lossy(b).into_owned(),
            ResponseMsg::File { head, len, .. } => {
                format!("{}<file {len}>", String::from_utf8_lossy(head))
            }
            ResponseMsg::Hijack(_) => "<hijack>".into(),
            ResponseMsg::Abort => "<abort>".into(),
            ResponseMsg::Head2 { head, body, .. } => {
                format!("{:?} {}", head, String::from_utf8_lossy(body))
            }
            ResponseMsg::File2 { len, .. } => format!("<h2 file {len}>"),
            ResponseMsg::Interim(head) => format!("<interim {}>", head.status),
            ResponseMsg::Trailers { trailers, .. } => format!("<trailers {trailers:?}>"),
        }
    }

    #[test]
    fn early_hints_only_before_the_response_and_only_on_http11() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut hints = HeadBuilder::new(103, 0).unwrap();
        hints.header(b"link", b"</a.css>; rel=preload").unwrap();
        let s = text(&r.encode_informational(hints).unwrap());
        assert_eq!(
            s,
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
        );
        r.encode_full(HeadBuilder::new(200, 0).unwrap(), 0, |_| {})
            .unwrap();
        assert!(r
            .encode_informational(HeadBuilder::new(103, 0).unwrap())
            .is_none());

        let (r10, _rx) = response(Version::Http10, false, true);
        assert!(r10
            .encode_informational(HeadBuilder::new(103, 0).unwrap())
            .is_none());
    }

    #[test]
    fn upgrade_head_keeps_the_app_connection_value_and_has_no_framing() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(101, 0).unwrap();
        head.header(b"upgrade", b"websocket").unwrap();
        head.header(b"connection", b"Upgrade").unwrap();
        let s = text(&r.encode_upgrade_head(head).unwrap());
        assert!(s.starts_with("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\ndate: "), "{s}");
        assert!(!s.contains("content-length") && !s.contains("transfer-encoding"));
        assert!(r.hijack().is_ok());
        assert!(r.hijack().is_err());
    }

    #[test]
    fn hijack_is_refused_once_the_response_started() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        r.encode_stream_head(HeadBuilder::new(200, 0).unwrap())
            .unwrap();
        assert_eq!(r.hijack().err(), Some(ResponseError::AlreadyStarted));
    }

    #[test]
    fn full_response_gets_content_length_and_body_in_one_buffer() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"content-type", b"text/plain").unwrap();
        let msg = r
            .encode_full(head, 5, |b| b.extend_from_slice(b"hello"))
            .unwrap();
        let s = text(&msg);
        assert!(
            s.starts_with(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\ndate: "
            ),
            "{s}"
        );
        assert!(s.ends_with("GMT\r\n\r\nhello"), "{s}");
        assert!(matches!(msg, ResponseMsg::Final { close: false, .. }));
    }

    #[test]
    fn app_framing_headers_are_replaced() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"transfer-encoding", b"chunked").unwrap();
        head.header(b"content-length", b"999").unwrap();
        let s = text(
            &r.encode_full(head, 2, |b| b.extend_from_slice(b"ok"))
                .unwrap(),
        );
        assert!(s.contains("content-length: 2\r\n"), "{s}");
        assert!(
            !s.contains("999") && !s.contains("transfer-encoding"),
            "{s}"
        );
    }

    #[test]
    fn head_keeps_declared_length_and_sends_no_body() {
        let (mut r, _rx) = response(Version::Http11, true, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"content-length", b"1234").unwrap();
        let s = text(
            &r.encode_full(head, 0, |b| b.extend_from_slice(b"never"))
                .unwrap(),
        );
        assert!(
            s.contains("content-length: 1234\r\n") && s.ends_with("\r\n\r\n"),
            "{s}"
        );
    }

    #[test]
    fn no_body_statuses_have_no_framing() {
        for status in [101, 204, 304] {
            let (mut r, _rx) = response(Version::Http11, false, true);
            let head = HeadBuilder::new(status, 0).unwrap();
            let s = text(
                &r.encode_full(head, 3, |b| b.extend_from_slice(b"abc"))
                    .unwrap(),
            );
            assert!(
                !s.contains("content-length") && s.ends_with("\r\n\r\n"),
                "{status}: {s}"
            );
        }
    }

    #[test]
    fn rejects_crlf_and_nul_in_values_and_bad_names() {
        let mut head = HeadBuilder::new(200, 0).unwrap();
        assert!(head.header(b"x-a", b"a\r\nset-cookie: evil").is_err());
        assert!(head.header(b"x-a", b"a\nb").is_err());
        assert!(head.header(b"x-a", b"a\0b").is_err());
        assert!(head.header(b"bad name", b"v").is_err());
        assert!(head.header(b"", b"v").is_err());
        assert!(HeadBuilder::new(99, 0).is_err());
        assert!(HeadBuilder::new(1000, 0).is_err());
    }

    #[test]
    fn streaming_http11_is_chunked_and_ends_with_last_chunk() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let head = HeadBuilder::new(200, 0).unwrap();
        let h = text(&r.encode_stream_head(head).unwrap());
        assert!(h.contains("transfer-encoding: chunked\r\n"), "{h}");
        assert_eq!(
            text(&r.encode_chunk(b"hello").unwrap().unwrap()),
            "5\r\nhello\r\n"
        );
        assert!(r.encode_chunk(b"").unwrap().is_none());
        let end = r.encode_end().unwrap();
        assert_eq!(text(&end), "0\r\n\r\n");
        assert!(matches!(end, ResponseMsg::Final { close: false, .. }));
    }

    #[test]
    fn streaming_http10_without_length_closes() {
        let (mut r, _rx) = response(Version::Http10, false, true);
        let h = text(
            &r.encode_stream_head(HeadBuilder::new(200, 0).unwrap())
                .unwrap(),
        );
        assert!(
            h.contains("connection: close") && !h.contains("chunked"),
            "{h}"
        );
        assert_eq!(text(&r.encode_chunk(b"raw").unwrap().unwrap()), "raw");
        assert!(matches!(
            r.encode_end().unwrap(),
            ResponseMsg::Final { close: true, .. }
        ));
    }

    #[test]
    fn streaming_with_declared_length_is_exact() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"content-length", b"4").unwrap();
        r.encode_stream_head(head).unwrap();
        assert_eq!(text(&r.encode_chunk(b"ab").unwrap().unwrap()), "ab");
        assert!(
            matches!(r.encode_end().unwrap(), ResponseMsg::Abort),
            "short body must abort"
        );

        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"content-length", b"2").unwrap();
        r.encode_stream_head(head).unwrap();
        assert_eq!(text(&r.encode_chunk(b"abcd").unwrap().unwrap()), "ab");
        assert!(matches!(
            r.encode_end().unwrap(),
            ResponseMsg::Final { close: true, .. }
        ));
    }

    #[test]
    fn connection_close_from_app_and_http10_keep_alive() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"connection", b"close").unwrap();
        let msg = r.encode_full(head, 0, |_| {}).unwrap();
        assert!(text(&msg).contains("connection: close\r\n"));
        assert!(matches!(msg, ResponseMsg::Final { close: true, .. }));

        let (mut r, _rx) = response(Version::Http10, false, true);
        let msg = r
            .encode_full(HeadBuilder::new(200, 0).unwrap(), 0, |_| {})
            .unwrap();
        assert!(text(&msg).contains("connection: keep-alive\r\n"));
    }

    fn h2_response(head_request: bool) -> (Response, chan::Receiver<ResponseMsg>) {
        let (tx, rx) = chan::channel(8);
        (
            Response::new_h2(tx, head_request, Arc::new(AtomicBool::new(false))),
            rx,
        )
    }

    #[test]
    fn h2_heads_are_structured_without_connection_specific_headers() {
        // The form the response makes (HPACK as fields are added) and text converted when sent.
        for made_for_h2 in [true, false] {
            h2_head_is_structured(made_for_h2);
        }
    }

    #[test]
    fn an_h2_head_keeps_the_apps_date_and_lowercases_long_names() {
        let (mut r, _rx) = h2_response(false);
        let mut head = r.new_head(200, 0).unwrap();
        let long = format!("X-{}", "Long".repeat(30));
        head.header(long.as_bytes(), b"1").unwrap();
        head.header(b"Date", b"Tue, 01 Dec 2026 00:00:00 GMT")
            .unwrap();
        let ResponseMsg::Head2 { head, .. } = r.encode_full(head, 0, |_| {}).unwrap() else {
            panic!("not an HTTP/2 head");
        };
        let fields = head.fields();
        assert!(fields.contains(&(long.to_ascii_lowercase(), "1".into())));
        let dates: Vec<_> = fields.iter().filter(|(n, _)| n == "date").collect();
        assert_eq!(dates.len(), 1);
        assert_eq!(dates[0].1, "Tue, 01 Dec 2026 00:00:00 GMT");
    }

    fn h2_head_is_structured(made_for_h2: bool) {
        let (mut r, _rx) = h2_response(false);
        let mut head = if made_for_h2 {
            r.new_head(201, 0).unwrap()
        } else {
            HeadBuilder::new(201, 0).unwrap()
        };
        head.header(b"Content-Type", b"text/plain").unwrap();
        head.header(b"connection", b"close").unwrap();
        head.header(b"keep-alive", b"timeout=5").unwrap();
        head.header(b"transfer-encoding", b"chunked").unwrap();
        head.header(b"upgrade", b"websocket").unwrap();
        head.header(b"te", b"gzip").unwrap();
        head.header(b"set-cookie", b"a=1").unwrap();
        head.header(b"set-cookie", b"b=2").unwrap();
        let ResponseMsg::Head2 {
            head, body, end, ..
        } = r
            .encode_full(head, 2, |b| b.extend_from_slice(b"ok"))
            .unwrap()
        else {
            panic!("not an HTTP/2 head");
        };
        assert!(end);
        assert_eq!(body, b"ok");
        assert_eq!(head.status, 201);
        assert_eq!(head.get(":status").as_deref(), Some("201"));
        assert_eq!(head.get("content-type").as_deref(), Some("text/plain"));
        assert_eq!(head.get("content-length").as_deref(), Some("2"));
        assert!(head.get("date").is_some());
        let fields = head.fields();
        assert_eq!(fields.iter().filter(|(n, _)| n == "set-cookie").count(), 2);
        for gone in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "te",
        ] {
            assert!(head.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn h2_streams_send_raw_data_and_end_with_trailers() {
        let (mut r, _rx) = h2_response(false);
        let msg = r
            .encode_stream_head(HeadBuilder::new(200, 0).unwrap())
            .unwrap();
        assert!(matches!(msg, ResponseMsg::Head2 { end: false, .. }));
        assert_eq!(text(&r.encode_chunk(b"abc").unwrap().unwrap()), "abc");
        let trailers = trailer_map(&[(b"grpc-status".to_vec(), b"0".to_vec())]).unwrap();
        let ResponseMsg::Trailers { trailers, .. } = r.encode_end_with_trailers(trailers).unwrap()
        else {
            panic!("no trailers");
        };
        assert_eq!(trailers["grpc-status"], "0");
        // Early hints travel as a structured head; a stream cannot be hijacked.
        let (mut r, _rx) = h2_response(false);
        let mut hints = HeadBuilder::new(103, 0).unwrap();
        hints.header(b"link", b"</a.css>; rel=preload").unwrap();
        let Some(ResponseMsg::Interim(head)) = r.encode_informational(hints) else {
            panic!("no interim head");
        };
        assert_eq!(head.status, 103);
        assert_eq!(head.get("link").as_deref(), Some("</a.css>; rel=preload"));
        assert_eq!(r.hijack().err(), Some(ResponseError::NoHijackOnHttp2));
    }

    #[test]
    fn http11_chunked_responses_end_with_a_trailer_section() {
        let (mut r, _rx) = response(Version::Http11, false, true);
        r.encode_stream_head(HeadBuilder::new(200, 0).unwrap())
            .unwrap();
        let trailers = trailer_map(&[(b"x-sum".to_vec(), b"42".to_vec())]).unwrap();
        let end = r.encode_end_with_trailers(trailers).unwrap();
        assert_eq!(text(&end), "0\r\nx-sum: 42\r\n\r\n");
        // Under a declared length there is no trailer section: the plain end.
        let (mut r, _rx) = response(Version::Http11, false, true);
        let mut head = HeadBuilder::new(200, 0).unwrap();
        head.header(b"content-length", b"0").unwrap();
        r.encode_stream_head(head).unwrap();
        let trailers = trailer_map(&[(b"x-sum".to_vec(), b"42".to_vec())]).unwrap();
        assert_eq!(text(&r.encode_end_with_trailers(trailers).unwrap()), "");
        assert!(trailer_map(&[(b"x".to_vec(), b"a\r\nb".to_vec())]).is_err());
        let fields = [
            (b":status".to_vec(), b"200".to_vec()),
            (b"connection".to_vec(), b"close".to_vec()),
            (b"Transfer-Encoding".to_vec(), b"chunked".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
            (b"keep-alive".to_vec(), b"5".to_vec()),
            (b"upgrade".to_vec(), b"h2c".to_vec()),
            (b"grpc-status".to_vec(), b"0".to_vec()),
        ];
        let map = trailer_map(&fields).unwrap();
        assert_eq!(map.len(), 1);
        assert_eq!(map["grpc-status"], "0");
    }

    #[test]
    fn dropping_an_unanswered_response_aborts_the_connection() {
        let (r, mut rx) = response(Version::Http11, false, true);
        drop(r);
        assert!(matches!(rx.try_recv().unwrap(), ResponseMsg::Abort));
    }
}
