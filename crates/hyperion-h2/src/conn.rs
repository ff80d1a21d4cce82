//! One server connection's HTTP/2 state (RFC 9113): frames in, events and frames out.
//!
//! The connection owns no socket. Its owner passes the bytes it read to [`Connection::recv`],
//! takes the requests that came complete from [`Connection::next_event`], answers them with
//! the `send_*` calls, and writes [`Connection::output`]. A stream's request body and its
//! flow-control window are read and waited for with the `poll_*` calls, which remember the
//! caller's waker; every waiter of one stream must share one task.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{self, Head, Reason, MAX_WINDOW};
use crate::hpack::{Decoded, Decoder, Encoder};

/// What a client sends first (RFC 9113 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The dynamic table a client's encoder may use (SETTINGS_HEADER_TABLE_SIZE, left at its
/// default).
const HEADER_TABLE_SIZE: usize = 4096;
/// Streams closed by a reset (ours or the client's) whose late frames are ignored rather than
/// treated as errors (RFC 9113 5.1, "closed").
const RECENTLY_CLOSED: usize = 64;
/// A header block may not grow past this over its CONTINUATION frames, whatever the frame
/// count.
const MAX_BLOCK: usize = 1 << 20;
const ONE_SECOND: Duration = Duration::from_secs(1);

/// The settings a connection announces, and the limits that bound what a client may make it
/// do.
#[derive(Clone, Debug)]
pub struct Config {
    pub max_concurrent_streams: u32,
    /// How much request body one stream may send before the application has taken it in.
    pub initial_window_size: u32,
    /// The same for all streams of the connection together.
    pub connection_window_size: u32,
    pub max_frame_size: u32,
    /// Decoded header bytes per request (RFC 9113 6.5.2); more is [`Event::TooLarge`].
    pub max_header_list_size: u32,
    /// SETTINGS, PING and PRIORITY frames a client may send in one second.
    pub max_control_frames_per_second: u32,
    /// CONTINUATION frames in one header block.
    pub max_continuations: u32,
    /// Streams a client may reset, before their responses ended, in one second.
    pub max_resets_per_second: u32,
    /// Streams the server may reset for the client's errors over the connection's life.
    pub max_error_resets: u32,
    /// Output held before streams must wait for it to be written.
    pub send_buffer: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_streams: 128,
            initial_window_size: 1 << 20,
            connection_window_size: 1 << 20,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: 65_536,
            max_control_frames_per_second: 200,
            max_continuations: 64,
            max_resets_per_second: 200,
            max_error_resets: 256,
            send_buffer: 256 * 1024,
        }
    }
}

/// Why the connection ended: the GOAWAY it sent, already in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    pub reason: Reason,
}

impl ConnError {
    /// A client past one of the abuse limits (GOAWAY ENHANCE_YOUR_CALM).
    pub fn is_abuse(&self) -> bool {
        self.reason == Reason::ENHANCE_YOUR_CALM
    }
}

/// A stream is gone: reset by either side, finished, or the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

type Span = (u32, u32);

/// A request's head as decoded: pseudo-header fields and the others in order. Validated
/// (RFC 9113 8.2, 8.3): lowercase token names, no connection-specific fields, `te` only
/// `trailers`, values without NUL, CR or LF.
#[derive(Debug, Default)]
pub struct RequestHead {
    bytes: Vec<u8>,
    method: Span,
    scheme: Option<Span>,
    path: Option<Span>,
    authority: Option<Span>,
    fields: Vec<(Span, Span)>,
    pub content_length: Option<u64>,
}

impl RequestHead {
    fn at(&self, span: Span) -> &[u8] {
        &self.bytes[span.0 as usize..span.1 as usize]
    }

    pub fn method(&self) -> &[u8] {
        self.at(self.method)
    }

    /// `:path`; absent only for CONNECT.
    pub fn path(&self) -> &[u8] {
        self.path.map_or(&[][..], |s| self.at(s))
    }

    pub fn scheme(&self) -> &[u8] {
        self.scheme.map_or(&[][..], |s| self.at(s))
    }

    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.map(|s| self.at(s))
    }

    /// The fields other than pseudo-header fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|&(n, v)| (self.at(n), self.at(v)))
    }

    /// The first field called `name` (lowercase).
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The head's bytes and where each part is in them, for a consumer that keeps them as
    /// they are instead of copying them.
    pub fn into_raw(self) -> RawHead {
        RawHead {
            bytes: self.bytes,
            method: self.method,
            path: self.path,
            authority: self.authority,
            fields: self.fields,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        (start, self.bytes.len() as u32)
    }
}

/// A [`RequestHead`] taken apart: `(start, end)` ranges into `bytes`.
#[derive(Debug)]
pub struct RawHead {
    pub bytes: Vec<u8>,
    pub method: (u32, u32),
    pub path: Option<(u32, u32)>,
    pub authority: Option<(u32, u32)>,
    /// The fields other than pseudo-header fields, in order: name and value.
    pub fields: Vec<((u32, u32), (u32, u32))>,
}

/// Header fields as name and value pairs (trailers).
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What the connection has for its owner.
#[derive(Debug)]
pub enum Event {
    /// A new stream's request head. `end_stream`: it has no body.
    Request {
        stream: u32,
        head: RequestHead,
        end_stream: bool,
    },
    /// A new stream whose header list passed `max_header_list_size`: to be answered 431.
    TooLarge { stream: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    /// Both sides may still send.
    Open,
    /// The request has ended (END_STREAM received); the response is under way.
    RemoteClosed,
    /// The response has ended; the request body is still coming.
    LocalClosed,
}

struct Stream {
    state: StreamState,
    send_window: i64,
    recv_window: i64,
    /// Flow-controlled bytes received and not yet given back by the reader.
    held: u32,
    /// Bytes given back and not yet announced in a WINDOW_UPDATE.
    released: u32,
    data: VecDeque<Bytes>,
    trailers: Option<Fields>,
    content_length: Option<u64>,
    received: u64,
    waker: Option<Waker>,
}

impl Stream {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn remember(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
}

/// Stream ids hash to themselves: they are distinct small integers, chosen by the client but
/// only ever increasing.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Spread the odd ids over the table's buckets.
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type StreamMap = HashMap<u32, Stream, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's preface.
    Preface,
    /// Waiting for the client's first SETTINGS.
    Settings,
    Open,
    /// GOAWAY sent for an error: nothing more is read.
    Closed,
}

/// A header block arriving over HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
    continuations: u32,
    /// A PRIORITY field in HEADERS naming the stream itself (RFC 9113 5.3.1).
    self_dependent: bool,
}

/// A count of frames in the last second.
struct Rate {
    since: Option<Instant>,
    count: u32,
}

impl Rate {
    /// Counts one more at `now`; false past `max` in the current second.
    fn bump(&mut self, now: Instant, max: u32) -> bool {
        match self.since {
            Some(since) if now.duration_since(since) < ONE_SECOND => {}
            _ => {
                self.since = Some(now);
                self.count = 0;
            }
        }
        self.count += 1;
        self.count <= max
    }
}

pub struct Connection {
    config: Config,
    phase: Phase,
    decoder: Decoder,
    encoder: Encoder,
    out: Vec<u8>,
    scratch: Vec<u8>,
    streams: StreamMap,
    events: VecDeque<Event>,
    /// The highest stream id the client has opened.
    last_stream: u32,
    recent: VecDeque<u32>,
    block: Option<Block>,
    /// GOAWAY sent (graceful): streams above this id are not taken.
    goaway: Option<u32>,
    /// The client sent GOAWAY.
    peer_goaway: bool,
    settings_acked: bool,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    /// Connection window given back and not yet announced.
    released: u32,
    /// Streams waiting for connection window or for output room.
    blocked: Vec<u32>,
    control: Rate,
    resets: Rate,
    error_resets: u32,
    resets_received: u32,
}

impl Connection {
    /// A connection whose SETTINGS (and connection window) are already in the output.
    pub fn new(config: Config) -> Connection {
        let mut out = Vec::with_capacity(4096);
        let mut settings = vec![
            (
                frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                config.max_concurrent_streams,
            ),
            (
                frame::SETTINGS_INITIAL_WINDOW_SIZE,
                config.initial_window_size,
            ),
            (
                frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                config.max_header_list_size,
            ),
        ];
        if config.max_frame_size != frame::DEFAULT_MAX_FRAME_SIZE {
            settings.push((frame::SETTINGS_MAX_FRAME_SIZE, config.max_frame_size));
        }
        frame::write_settings(&mut out, &settings);
        let window =
            (config.connection_window_size as i64).clamp(frame::DEFAULT_WINDOW, MAX_WINDOW);
        if window > frame::DEFAULT_WINDOW {
            frame::write_window_update(&mut out, 0, (window - frame::DEFAULT_WINDOW) as u32);
        }
        Connection {
            phase: Phase::Preface,
            decoder: Decoder::new(HEADER_TABLE_SIZE),
            encoder: Encoder::new(),
            out,
            scratch: Vec::with_capacity(256),
            streams: StreamMap::default(),
            events: VecDeque::new(),
            last_stream: 0,
            recent: VecDeque::with_capacity(RECENTLY_CLOSED),
            block: None,
            goaway: None,
            peer_goaway: false,
            settings_acked: false,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
            send_window: frame::DEFAULT_WINDOW,
            recv_window: window,
            released: 0,
            blocked: Vec::new(),
            control: Rate {
                since: None,
                count: 0,
            },
            resets: Rate {
                since: None,
                count: 0,
            },
            error_resets: 0,
            resets_received: 0,
            config,
        }
    }

    /// Takes in the frames complete in `buf`, leaving a partial frame there. After an error
    /// the GOAWAY is in the output and the connection reads nothing more.
    pub fn recv(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), ConnError> {
        loop {
            match self.phase {
                Phase::Closed => return Ok(()),
                Phase::Preface => {
                    let n = buf.len().min(PREFACE.len());
                    if buf[..n] != PREFACE[..n] {
                        return Err(self.fail(Reason::PROTOCOL_ERROR));
                    }
                    if n < PREFACE.len() {
                        return Ok(());
                    }
                    buf.advance(PREFACE.len());
                    self.phase = Phase::Settings;
                }
                Phase::Settings | Phase::Open => {
                    if buf.len() < frame::HEADER_LEN {
                        return Ok(());
                    }
                    let head = Head::parse(&buf[..frame::HEADER_LEN]);
                    if head.len > self.config.max_frame_size as usize {
                        return Err(self.fail(Reason::FRAME_SIZE_ERROR));
                    }
                    if buf.len() < frame::HEADER_LEN + head.len {
                        buf.reserve(frame::HEADER_LEN + head.len - buf.len());
                        return Ok(());
                    }
                    if self.phase == Phase::Settings {
                        if head.kind != frame::SETTINGS || head.flags & frame::ACK != 0 {
                            return Err(self.fail(Reason::PROTOCOL_ERROR));
                        }
                        self.phase = Phase::Open;
                    }
                    let result = if head.kind == frame::DATA {
                        let mut payload = buf.split_to(frame::HEADER_LEN + head.len).freeze();
                        payload.advance(frame::HEADER_LEN);
                        self.on_data(head, payload)
                    } else {
                        let result = self.on_frame(
                            head,
                            &buf[frame::HEADER_LEN..frame::HEADER_LEN + head.len],
                            now,
                        );
                        buf.advance(frame::HEADER_LEN + head.len);
                        result
                    };
                    if let Err(reason) = result {
                        return Err(self.fail(reason));
                    }
                }
            }
        }
    }

    /// A stream the client has not opened: above the last it opened, or even-numbered (a
    /// server's, and this one never pushes).
    fn idle(&self, id: u32) -> bool {
        id > self.last_stream || id.is_multiple_of(2)
    }

    /// Ends the connection with GOAWAY `reason`.
    fn fail(&mut self, reason: Reason) -> ConnError {
        if self.phase != Phase::Closed {
            frame::write_goaway(&mut self.out, self.last_stream, reason);
            self.close_all();
        }
        ConnError { reason }
    }

    /// The socket is gone: every stream ends, and the tasks waiting on them learn so.
    pub fn close_all(&mut self) {
        self.phase = Phase::Closed;
        for (_, mut stream) in self.streams.drain() {
            stream.wake();
        }
        self.events.clear();
    }

    /// Graceful shutdown: GOAWAY NO_ERROR with the last stream taken; streams already taken
    /// go on, new ones are ignored.
    pub fn go_away(&mut self) {
        if self.goaway.is_none() && self.phase != Phase::Closed {
            frame::write_goaway(&mut self.out, self.last_stream, Reason::NO_ERROR);
            self.goaway = Some(self.last_stream);
        }
    }

    /// Whether nothing more will happen on the connection: closed for an error, or past a
    /// GOAWAY (either side's) with no stream left.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Closed
            || ((self.goaway.is_some() || self.peer_goaway) && self.streams.is_empty())
    }

    /// RST_STREAM frames received since the last call.
    pub fn take_resets_received(&mut self) -> u32 {
        std::mem::take(&mut self.resets_received)
    }

    /// Whether the client's preface and first SETTINGS are in and no error has ended the
    /// connection.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    pub fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    pub fn next_event(&mut self) -> Option<Event> {
        while let Some(event) = self.events.pop_front() {
            let stream = match &event {
                Event::Request { stream, .. } | Event::TooLarge { stream } => *stream,
            };
            // A stream reset in the same read never reaches the owner.
            if self.streams.contains_key(&stream) {
                return Some(event);
            }
        }
        None
    }

    /// The bytes to write. The owner writes and clears them, then calls [`Self::flushed`].
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The output was written: streams waiting for room may go on.
    pub fn flushed(&mut self) {
        self.wake_blocked();
    }

    fn wake_blocked(&mut self) {
        for id in self.blocked.drain(..) {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.wake();
            }
        }
    }

    // --- Receiving ---------------------------------------------------------------------------

    fn on_frame(&mut self, head: Head, payload: &[u8], now: Instant) -> Result<(), Reason> {
        if self.block.is_some() && head.kind != frame::CONTINUATION {
            return Err(Reason::PROTOCOL_ERROR);
        }
        match head.kind {
            frame::HEADERS => self.on_headers(head, payload),
            frame::CONTINUATION => self.on_continuation(head, payload),
            frame::PRIORITY => {
                if head.stream == 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                if !self
                    .control
                    .bump(now, self.config.max_control_frames_per_second)
                {
                    return Err(Reason::ENHANCE_YOUR_CALM);
                }
                if payload.len() != 5 {
                    self.stream_error(head.stream, Reason::FRAME_SIZE_ERROR)?;
                } else if dependency(payload) == head.stream {
                    self.stream_error(head.stream, Reason::PROTOCOL_ERROR)?;
                }
                Ok(())
            }
            frame::RST_STREAM => self.on_rst(head, payload, now),
            frame::SETTINGS => self.on_settings(head, payload, now),
            frame::PUSH_PROMISE => Err(Reason::PROTOCOL_ERROR),
            frame::PING => {
                if head.stream != 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                if payload.len() != 8 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                if head.flags & frame::ACK == 0 {
                    if !self
                        .control
                        .bump(now, self.config.max_control_frames_per_second)
                    {
                        return Err(Reason::ENHANCE_YOUR_CALM);
                    }
                    frame::write_ping_ack(&mut self.out, payload);
                }
                Ok(())
            }
            frame::GOAWAY => {
                if head.stream != 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                if payload.len() < 8 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                self.peer_goaway = true;
                Ok(())
            }
            frame::WINDOW_UPDATE => self.on_window_update(head, payload),
            // Unknown types are ignored (RFC 9113 4.1).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, head: Head, payload: &[u8], now: Instant) -> Result<(), Reason> {
        if head.stream != 0 {
            return Err(Reason::PROTOCOL_ERROR);
        }
        if head.flags & frame::ACK != 0 {
            if !payload.is_empty() {
                return Err(Reason::FRAME_SIZE_ERROR);
            }
            self.settings_acked = true;
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        if !self
            .control
            .bump(now, self.config.max_control_frames_per_second)
        {
            return Err(Reason::ENHANCE_YOUR_CALM);
        }
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                frame::SETTINGS_ENABLE_PUSH if value > 1 => return Err(Reason::PROTOCOL_ERROR),
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if value as i64 > MAX_WINDOW {
                        return Err(Reason::FLOW_CONTROL_ERROR);
                    }
                    let delta = value as i64 - self.peer_initial_window;
                    self.peer_initial_window = value as i64;
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > MAX_WINDOW {
                            return Err(Reason::FLOW_CONTROL_ERROR);
                        }
                        if delta > 0 {
                            stream.wake();
                        }
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value)
                    {
                        return Err(Reason::PROTOCOL_ERROR);
                    }
                    self.peer_max_frame = value as usize;
                }
                // The encoder never uses the dynamic table, so any table size suits it; a
                // server does not open streams, so the client's stream limit does not bind.
                _ => {}
            }
        }
        frame::write_settings_ack(&mut self.out);
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), Reason> {
        if payload.len() != 4 {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        let increment = (u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
            & 0x7fff_ffff) as i64;
        if head.stream == 0 {
            if increment == 0 {
                return Err(Reason::PROTOCOL_ERROR);
            }
            self.send_window += increment;
            if self.send_window > MAX_WINDOW {
                return Err(Reason::FLOW_CONTROL_ERROR);
            }
            self.wake_blocked();
            return Ok(());
        }
        if self.idle(head.stream) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let Some(stream) = self.streams.get_mut(&head.stream) else {
            return Ok(());
        };
        if increment == 0 {
            return self.stream_error(head.stream, Reason::PROTOCOL_ERROR);
        }
        stream.send_window += increment;
        if stream.send_window > MAX_WINDOW {
            return self.stream_error(head.stream, Reason::FLOW_CONTROL_ERROR);
        }
        stream.wake();
        Ok(())
    }

    fn on_rst(&mut self, head: Head, payload: &[u8], now: Instant) -> Result<(), Reason> {
        if head.stream == 0 {
            return Err(Reason::PROTOCOL_ERROR);
        }
        if payload.len() != 4 {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        if self.idle(head.stream) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        self.resets_received += 1;
        if let Some(stream) = self.streams.get(&head.stream) {
            if stream.state != StreamState::LocalClosed
                && !self.resets.bump(now, self.config.max_resets_per_second)
            {
                return Err(Reason::ENHANCE_YOUR_CALM);
            }
            self.close(head.stream);
        }
        Ok(())
    }

    fn on_data(&mut self, head: Head, mut payload: Bytes) -> Result<(), Reason> {
        if self.block.is_some() || head.stream == 0 || self.idle(head.stream) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let flow = head.len as i64;
        if head.flags & frame::PADDED != 0 {
            let pad = *payload.first().ok_or(Reason::PROTOCOL_ERROR)? as usize;
            if pad >= payload.len() {
                return Err(Reason::PROTOCOL_ERROR);
            }
            payload.truncate(payload.len() - pad);
            payload.advance(1);
        }
        if flow > self.recv_window {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.recv_window -= flow;
        let id = head.stream;
        let Some(stream) = self.streams.get_mut(&id) else {
            // A stream already closed: nobody reads this, so its window comes back at once.
            self.release_connection(flow as u32);
            if !self.recent.contains(&id) {
                frame::write_rst(&mut self.out, id, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        if stream.state == StreamState::RemoteClosed {
            self.release_connection(flow as u32);
            return self.stream_error(id, Reason::STREAM_CLOSED);
        }
        if flow > stream.recv_window {
            self.release_connection(flow as u32);
            return self.stream_error(id, Reason::FLOW_CONTROL_ERROR);
        }
        stream.recv_window -= flow;
        stream.held += flow as u32;
        stream.received += payload.len() as u64;
        let end = head.flags & frame::END_STREAM != 0;
        let length_wrong = match stream.content_length {
            Some(n) => stream.received > n || (end && stream.received != n),
            None => false,
        };
        if length_wrong {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        // Padding is flow-controlled but never read.
        let padding = flow as u32 - payload.len() as u32;
        if !payload.is_empty() {
            stream.data.push_back(payload);
        }
        if end {
            self.remote_closed(id);
        } else if let Some(stream) = self.streams.get_mut(&id) {
            stream.wake();
        }
        if padding > 0 {
            self.release(id, padding);
        }
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: &[u8]) -> Result<(), Reason> {
        let id = head.stream;
        if id == 0 || id.is_multiple_of(2) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let mut payload = payload;
        let mut pad = 0;
        if head.flags & frame::PADDED != 0 {
            pad = *payload.first().ok_or(Reason::PROTOCOL_ERROR)? as usize;
            payload = &payload[1..];
        }
        let mut self_dependent = false;
        if head.flags & frame::PRIORITY_FLAG != 0 {
            if payload.len() < 5 {
                return Err(Reason::FRAME_SIZE_ERROR);
            }
            self_dependent = dependency(payload) == id;
            payload = &payload[5..];
        }
        if pad > payload.len() {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let fragment = &payload[..payload.len() - pad];
        let block = Block {
            stream: id,
            end_stream: head.flags & frame::END_STREAM != 0,
            bytes: fragment.to_vec(),
            continuations: 0,
            self_dependent,
        };
        if head.flags & frame::END_HEADERS != 0 {
            self.on_block(block)
        } else {
            self.block = Some(block);
            Ok(())
        }
    }

    fn on_continuation(&mut self, head: Head, payload: &[u8]) -> Result<(), Reason> {
        let Some(block) = self.block.as_mut() else {
            return Err(Reason::PROTOCOL_ERROR);
        };
        if block.stream != head.stream {
            return Err(Reason::PROTOCOL_ERROR);
        }
        block.continuations += 1;
        if block.continuations > self.config.max_continuations
            || block.bytes.len() + payload.len() > MAX_BLOCK
        {
            return Err(Reason::ENHANCE_YOUR_CALM);
        }
        block.bytes.extend_from_slice(payload);
        if head.flags & frame::END_HEADERS != 0 {
            let block = self.block.take().expect("checked above");
            return self.on_block(block);
        }
        Ok(())
    }

    /// A whole header block: a new request, trailers, or one to decode and drop.
    fn on_block(&mut self, block: Block) -> Result<(), Reason> {
        let id = block.stream;
        let max = self.config.max_header_list_size as usize;
        if id <= self.last_stream {
            let Some(stream) = self.streams.get(&id) else {
                if self.recent.contains(&id) {
                    // Late trailers on a stream reset: decoded only to keep the table in step.
                    self.decoder
                        .decode(&block.bytes, max, |_, _| {})
                        .map_err(|_| Reason::COMPRESSION_ERROR)?;
                    return Ok(());
                }
                return Err(Reason::PROTOCOL_ERROR);
            };
            if stream.state == StreamState::RemoteClosed {
                self.decoder
                    .decode(&block.bytes, max, |_, _| {})
                    .map_err(|_| Reason::COMPRESSION_ERROR)?;
                return self.stream_error(id, Reason::STREAM_CLOSED);
            }
            return self.on_trailers(block);
        }
        self.last_stream = id;
        let mut check = Check::default();
        // Room for a usual request: a compressed block decodes to several times its size.
        let mut head = RequestHead {
            bytes: Vec::with_capacity(512.max(block.bytes.len() * 4)),
            fields: Vec::with_capacity(16),
            ..RequestHead::default()
        };
        let decoded = self
            .decoder
            .decode(&block.bytes, max, |name, value| {
                check.field(&mut head, name, value)
            })
            .map_err(|_| Reason::COMPRESSION_ERROR)?;
        if self.goaway.is_some_and(|last| id > last) {
            return Ok(());
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            frame::write_rst(&mut self.out, id, Reason::REFUSED_STREAM);
            self.remember_closed(id);
            return Ok(());
        }
        let window = if self.settings_acked {
            self.config.initial_window_size as i64
        } else {
            (self.config.initial_window_size as i64).max(frame::DEFAULT_WINDOW)
        };
        let stream = Stream {
            state: if block.end_stream {
                StreamState::RemoteClosed
            } else {
                StreamState::Open
            },
            send_window: self.peer_initial_window,
            recv_window: window,
            held: 0,
            released: 0,
            data: VecDeque::new(),
            trailers: None,
            content_length: None,
            received: 0,
            waker: None,
        };
        if decoded == Decoded::TooLarge {
            self.streams.insert(id, stream);
            self.events.push_back(Event::TooLarge { stream: id });
            return Ok(());
        }
        if check.malformed || block.self_dependent || !check.complete(&head) {
            return self.refuse(id, Reason::PROTOCOL_ERROR);
        }
        if block.end_stream && head.content_length.is_some_and(|n| n > 0) {
            return self.refuse(id, Reason::PROTOCOL_ERROR);
        }
        let mut stream = stream;
        stream.content_length = head.content_length;
        self.streams.insert(id, stream);
        self.events.push_back(Event::Request {
            stream: id,
            head,
            end_stream: block.end_stream,
        });
        Ok(())
    }

    fn on_trailers(&mut self, block: Block) -> Result<(), Reason> {
        let id = block.stream;
        let max = self.config.max_header_list_size as usize;
        let mut fields = Fields::new();
        let mut malformed = false;
        let decoded = self
            .decoder
            .decode(&block.bytes, max, |name, value| {
                if name.first() == Some(&b':') || !valid_name(name) || !valid_value(value) {
                    malformed = true;
                } else {
                    fields.push((name.to_vec(), value.to_vec()));
                }
            })
            .map_err(|_| Reason::COMPRESSION_ERROR)?;
        if !block.end_stream || malformed || decoded == Decoded::TooLarge {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        let stream = self.streams.get_mut(&id).expect("checked by the caller");
        if stream.content_length.is_some_and(|n| n != stream.received) {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        stream.trailers = Some(fields);
        self.remote_closed(id);
        Ok(())
    }

    /// A stream the client opened wrongly: reset before its owner ever sees it.
    fn refuse(&mut self, id: u32, reason: Reason) -> Result<(), Reason> {
        frame::write_rst(&mut self.out, id, reason);
        self.remember_closed(id);
        self.count_error_reset()
    }

    /// Resets a stream for the client's error, counting it against `max_error_resets`.
    fn stream_error(&mut self, id: u32, reason: Reason) -> Result<(), Reason> {
        frame::write_rst(&mut self.out, id, reason);
        self.close(id);
        self.count_error_reset()
    }

    fn count_error_reset(&mut self) -> Result<(), Reason> {
        self.error_resets += 1;
        if self.error_resets > self.config.max_error_resets {
            return Err(Reason::ENHANCE_YOUR_CALM);
        }
        Ok(())
    }

    fn remote_closed(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        match stream.state {
            StreamState::LocalClosed => self.close(id),
            _ => {
                stream.state = StreamState::RemoteClosed;
                stream.wake();
            }
        }
    }

    /// Forgets a stream (reset or finished); its waiting task learns it is gone, and the
    /// request body it did not read gives its connection window back.
    fn close(&mut self, id: u32) {
        if let Some(mut stream) = self.streams.remove(&id) {
            stream.wake();
            let held = stream.held;
            self.release_connection(held);
            self.remember_closed(id);
        }
    }

    fn remember_closed(&mut self, id: u32) {
        if self.recent.len() == RECENTLY_CLOSED {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    fn release_connection(&mut self, n: u32) {
        self.released += n;
        if self.phase != Phase::Closed
            && self.released as i64 >= (self.config.connection_window_size as i64 / 2).max(1)
        {
            frame::write_window_update(&mut self.out, 0, self.released);
            self.recv_window += self.released as i64;
            self.released = 0;
        }
    }

    // --- The streams' side -------------------------------------------------------------------

    /// The next piece of a stream's request body: `None` once it has ended.
    pub fn poll_data(&mut self, id: u32, cx: &Context<'_>) -> Poll<Option<Result<Bytes, Gone>>> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Poll::Ready(Some(Err(Gone)));
        };
        if let Some(data) = stream.data.pop_front() {
            return Poll::Ready(Some(Ok(data)));
        }
        if stream.state != StreamState::Open {
            return Poll::Ready(None);
        }
        stream.remember(cx);
        Poll::Pending
    }

    /// The request's trailers, once its body has ended.
    pub fn take_trailers(&mut self, id: u32) -> Option<Fields> {
        self.streams.get_mut(&id).and_then(|s| s.trailers.take())
    }

    /// Gives `n` bytes of a stream's request body back to the client's flow-control windows.
    pub fn release(&mut self, id: u32, n: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let n = n.min(stream.held);
        stream.held -= n;
        stream.released += n;
        let threshold = (self.config.initial_window_size / 2).max(1);
        if stream.state == StreamState::Open && stream.released >= threshold {
            frame::write_window_update(&mut self.out, id, stream.released);
            stream.recv_window += stream.released as i64;
            stream.released = 0;
        }
        self.release_connection(n);
    }

    /// Ready once the stream is gone (reset, or the connection ended).
    pub fn poll_gone(&mut self, id: u32, cx: &Context<'_>) -> Poll<()> {
        match self.streams.get_mut(&id) {
            None => Poll::Ready(()),
            Some(stream) => {
                stream.remember(cx);
                Poll::Pending
            }
        }
    }

    pub fn is_gone(&self, id: u32) -> bool {
        !self.streams.contains_key(&id)
    }

    /// How many body bytes the stream may send now: its window, the connection's, and the
    /// room left in the output.
    pub fn capacity(&self, id: u32) -> Result<usize, Gone> {
        let stream = self.streams.get(&id).ok_or(Gone)?;
        let room = self.config.send_buffer.saturating_sub(self.out.len()) as i64;
        Ok(stream.send_window.min(self.send_window).min(room).max(0) as usize)
    }

    /// Ready with a non-zero capacity, or once the stream is gone.
    pub fn poll_capacity(&mut self, id: u32, cx: &Context<'_>) -> Poll<Result<usize, Gone>> {
        let n = self.capacity(id)?;
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        let stream = self.streams.get_mut(&id).expect("capacity found it");
        stream.remember(cx);
        if !self.blocked.contains(&id) {
            self.blocked.push(id);
        }
        Poll::Pending
    }

    /// Sends a response head: `:status` and `fields` (lowercase names, no connection-specific
    /// fields). `end`: the response has no body.
    pub fn send_headers<'a>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        end: bool,
    ) -> Result<(), Gone> {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        self.encoder.status(status, &mut block);
        for (name, value) in fields {
            self.encoder.field(name, value, &mut block);
        }
        let result = self.send_block(id, &block, end);
        self.scratch = block;
        result
    }

    /// Sends a header block already encoded (see [`crate::hpack::Encoder`]; it never refers
    /// to the dynamic table, so a block can be sent any number of times).
    pub fn send_block(&mut self, id: u32, block: &[u8], end: bool) -> Result<(), Gone> {
        let stream = self.streams.get_mut(&id).ok_or(Gone)?;
        if stream.state == StreamState::LocalClosed {
            return Err(Gone);
        }
        frame::write_headers(&mut self.out, id, block, end, self.peer_max_frame);
        if end {
            self.local_closed(id);
        }
        Ok(())
    }

    /// Sends `data`, no more than [`Self::capacity`] allows, as DATA frames.
    pub fn send_data(&mut self, id: u32, data: &[u8], end: bool) -> Result<(), Gone> {
        let room = self.capacity(id)?;
        assert!(data.len() <= room, "send_data past the stream's capacity");
        let stream = self.streams.get_mut(&id).expect("capacity found it");
        if stream.state == StreamState::LocalClosed {
            return Err(Gone);
        }
        stream.send_window -= data.len() as i64;
        self.send_window -= data.len() as i64;
        frame::write_data(&mut self.out, id, data, end, self.peer_max_frame);
        if end {
            self.local_closed(id);
        }
        Ok(())
    }

    /// Ends the stream with trailing fields.
    pub fn send_trailers<'a>(
        &mut self,
        id: u32,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<(), Gone> {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        for (name, value) in fields {
            self.encoder.field(name, value, &mut block);
        }
        let result = self.send_block(id, &block, true);
        self.scratch = block;
        result
    }

    /// Resets a stream from the server's side.
    pub fn reset(&mut self, id: u32, reason: Reason) {
        if self.streams.contains_key(&id) {
            frame::write_rst(&mut self.out, id, reason);
            self.close(id);
        }
    }

    fn local_closed(&mut self, id: u32) {
        let stream = self.streams.get_mut(&id).expect("the caller found it");
        match stream.state {
            StreamState::RemoteClosed => self.close(id),
            _ => {
                // The response is whole while the request still comes: the client may stop
                // sending it (RFC 9113 8.1).
                frame::write_rst(&mut self.out, id, Reason::NO_ERROR);
                self.close(id);
            }
        }
    }
}

/// The stream a PRIORITY field depends on.
fn dependency(payload: &[u8]) -> u32 {
    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff
}

/// Checks a request's fields as they are decoded (RFC 9113 8.2, 8.3.1).
#[derive(Default)]
struct Check {
    malformed: bool,
    regular_seen: bool,
    method: bool,
}

impl Check {
    fn field(&mut self, head: &mut RequestHead, name: &[u8], value: &[u8]) {
        if self.malformed {
            return;
        }
        if !valid_value(value) {
            self.malformed = true;
            return;
        }
        if name.first() == Some(&b':') {
            if self.regular_seen {
                self.malformed = true;
                return;
            }
            let slot = match name {
                b":method" => {
                    if self.method {
                        self.malformed = true;
                        return;
                    }
                    self.method = true;
                    if !valid_method(value) {
                        self.malformed = true;
                        return;
                    }
                    head.method = head.push(value);
                    return;
                }
                b":scheme" => &mut head.scheme,
                b":path" => &mut head.path,
                b":authority" => &mut head.authority,
                _ => {
                    self.malformed = true;
                    return;
                }
            };
            if slot.is_some() {
                self.malformed = true;
                return;
            }
            let start = head.bytes.len() as u32;
            head.bytes.extend_from_slice(value);
            *slot = Some((start, head.bytes.len() as u32));
            return;
        }
        self.regular_seen = true;
        if !valid_name(name) {
            self.malformed = true;
            return;
        }
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => {
                self.malformed = true;
                return;
            }
            b"te" if !value.eq_ignore_ascii_case(b"trailers") => {
                self.malformed = true;
                return;
            }
            b"content-length" => {
                let parsed = parse_length(value);
                match (parsed, head.content_length) {
                    (None, _) => {
                        self.malformed = true;
                        return;
                    }
                    (Some(n), Some(m)) if n != m => {
                        self.malformed = true;
                        return;
                    }
                    (Some(n), _) => head.content_length = Some(n),
                }
            }
            _ => {}
        }
        let name = head.push(name);
        let value = head.push(value);
        head.fields.push((name, value));
    }

    fn complete(&self, head: &RequestHead) -> bool {
        if !self.method {
            return false;
        }
        if head.method() == b"CONNECT" {
            return head.authority.is_some() && head.scheme.is_none() && head.path.is_none();
        }
        head.scheme.is_some_and(|s| s.1 > s.0) && head.path.is_some_and(|s| s.1 > s.0)
    }
}

fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + (b - b'0') as u64)
    })
}

/// A field name: lowercase token characters (RFC 9110 5.6.2, RFC 9113 8.2.1).
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| LOWER_TOKEN[b as usize])
}

/// A field value: no NUL, CR or LF, and no space or tab at either end (RFC 9113 8.2.1).
fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !edge(value.first()) && !edge(value.last()) && !has_nul_cr_lf(value)
}

/// Whether `value` holds NUL, CR or LF. Eight bytes at a time: only a word with a byte below
/// SP (those three, a tab, another control) is looked at byte by byte.
fn has_nul_cr_lf(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let bad = |b: &u8| matches!(b, 0 | b'\r' | b'\n');
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // Exact for "some byte is below 0x20": no such byte, no borrow, no flag.
        if x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0 && word.iter().any(bad) {
            return true;
        }
    }
    words.remainder().iter().any(bad)
}

/// A method: a token (RFC 9110 9.1), in any case.
fn valid_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method
            .iter()
            .all(|&b| LOWER_TOKEN[b.to_ascii_lowercase() as usize])
}

const LOWER_TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    let mut c = b'0';
    while c <= b'9' {
        table[c as usize] = true;
        c += 1;
    }
    let mut c = b'a';
    while c <= b'z' {
        table[c as usize] = true;
        c += 1;
    }
    table
};

#[cfg(test)]
mod tests;
