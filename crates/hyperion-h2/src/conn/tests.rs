use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Wake;

use crate::frame::{
    CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PRIORITY, PRIORITY_FLAG,
    RST_STREAM, SETTINGS, SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE,
    WINDOW_UPDATE,
};

// --- A small test client: frames as bytes, written independently of `frame::write_*` --------

const EH: u8 = END_HEADERS;
const ES_EH: u8 = END_STREAM | END_HEADERS;

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = pairs
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    raw(SETTINGS, 0, 0, &payload)
}

fn settings_ack() -> Vec<u8> {
    raw(SETTINGS, frame::ACK, 0, &[])
}

/// A header block from the crate's (never-indexing) encoder; pseudo-headers included.
fn hb(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    for (n, v) in fields {
        enc.field(n.as_bytes(), v.as_bytes(), &mut out);
    }
    out
}

const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/"),
    (":authority", "example.com"),
];

fn req(method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = GET.to_vec();
    fields[0].1 = method;
    fields.extend_from_slice(extra);
    hb(&fields)
}

fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    raw(HEADERS, flags, stream, block)
}

fn get(stream: u32) -> Vec<u8> {
    headers(stream, ES_EH, &req("GET", &[]))
}

fn data(stream: u32, end: bool, bytes: &[u8]) -> Vec<u8> {
    raw(DATA, if end { END_STREAM } else { 0 }, stream, bytes)
}

fn rst(stream: u32, reason: Reason) -> Vec<u8> {
    raw(RST_STREAM, 0, stream, &reason.0.to_be_bytes())
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    raw(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

fn ping(payload: [u8; 8]) -> Vec<u8> {
    raw(PING, 0, 0, &payload)
}

fn ping_ack(payload: [u8; 8]) -> Vec<u8> {
    raw(PING, frame::ACK, 0, &payload)
}

fn continuation(stream: u32, flags: u8, fragment: &[u8]) -> Vec<u8> {
    raw(CONTINUATION, flags, stream, fragment)
}

fn goaway(last: u32, reason: Reason) -> Vec<u8> {
    let mut payload = last.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.0.to_be_bytes());
    raw(GOAWAY, 0, 0, &payload)
}

fn priority(stream: u32, dependency: u32) -> Vec<u8> {
    let mut payload = dependency.to_be_bytes().to_vec();
    payload.push(16);
    raw(PRIORITY, 0, stream, &payload)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn parse(mut b: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 9, "a partial frame head in the output");
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        assert!(b.len() >= 9 + len, "a partial frame in the output");
        frames.push(Frame {
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
            payload: b[9..9 + len].to_vec(),
        });
        b = &b[9 + len..];
    }
    frames
}

/// The one frame in `bytes`.
fn fr(bytes: Vec<u8>) -> Frame {
    let mut frames = parse(&bytes);
    assert_eq!(frames.len(), 1);
    frames.pop().unwrap()
}

struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

fn woken(counter: &Counter) -> usize {
    counter.0.load(Ordering::SeqCst)
}

fn noop() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

struct Client {
    conn: Connection,
    buf: BytesMut,
    decoder: Decoder,
}

impl Client {
    fn new(config: Config) -> Client {
        Client {
            conn: Connection::new(config),
            buf: BytesMut::new(),
            decoder: Decoder::new(4096),
        }
    }

    /// Preface and the client's SETTINGS taken in; the output so far dropped.
    fn open_with(config: Config, client_settings: &[(u16, u32)]) -> Client {
        let mut c = Client::new(config);
        c.send(&[PREFACE, &settings(client_settings)[..]].concat())
            .unwrap();
        let frames = c.take();
        assert_eq!(frames.last(), Some(&fr(settings_ack())));
        c
    }

    fn open() -> Client {
        Client::open_with(Config::default(), &[])
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.buf.extend_from_slice(bytes);
        self.conn.recv(&mut self.buf, Instant::now())
    }

    fn take(&mut self) -> Vec<Frame> {
        let frames = parse(self.conn.output());
        self.conn.output().clear();
        frames
    }

    fn fields(&mut self, frame: &Frame) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let decoded = self
            .decoder
            .decode(&frame.payload, usize::MAX, |n, v| {
                fields.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        assert_eq!(decoded, Decoded::Complete);
        fields
    }

    fn request(&mut self) -> (u32, RequestHead, bool) {
        match self.conn.next_event() {
            Some(Event::Request {
                stream,
                head,
                end_stream,
            }) => (stream, head, end_stream),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// Sends `bytes`, expecting a connection error: exactly one GOAWAY out, nothing after.
    fn fails(&mut self, bytes: &[u8], reason: Reason, last: u32) {
        assert_eq!(self.send(bytes), Err(ConnError { reason }));
        assert_eq!(self.take(), vec![fr(goaway(last, reason))]);
        assert!(self.conn.is_done());
        assert!(self.conn.next_event().is_none());
        assert_eq!(self.send(&get(101)), Ok(()));
        assert!(self.take().is_empty());
    }

    /// Sends `bytes`, expecting exactly one RST_STREAM out.
    fn resets(&mut self, bytes: &[u8], id: u32, reason: Reason) {
        assert_eq!(self.send(bytes), Ok(()));
        assert_eq!(self.take(), vec![fr(rst(id, reason))]);
        assert!(self.conn.is_gone(id));
    }

    /// A malformed request on stream 1 is reset before it becomes an event, and the
    /// connection goes on to answer stream 3.
    fn refuses_malformed(&mut self, block: &[u8]) {
        self.resets(&headers(1, ES_EH, block), 1, Reason::PROTOCOL_ERROR);
        assert!(self.conn.next_event().is_none());
        self.answers(3);
    }

    /// The connection still serves: a GET on `id` is taken and answered.
    fn answers(&mut self, id: u32) {
        self.send(&get(id)).unwrap();
        let (stream, head, end) = self.request();
        assert_eq!((stream, head.method(), end), (id, &b"GET"[..], true));
        assert!(self.conn.next_event().is_none());
        self.conn.send_headers(id, 204, [], true).unwrap();
        let frames = self.take();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0].kind, frames[0].flags, frames[0].stream),
            (HEADERS, ES_EH, id)
        );
        assert_eq!(self.fields(&frames[0]), owned(&[(":status", "204")]));
        assert!(self.conn.is_gone(id));
    }
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn pairs(head: &RequestHead) -> Vec<(&[u8], &[u8])> {
    head.fields().collect()
}

// --- Handshake ---------------------------------------------------------------------------------

#[test]
fn handshake_output_is_settings_then_connection_window_update() {
    let mut c = Client::new(Config::default());
    assert_eq!(
        c.take(),
        vec![
            fr(settings(&[
                (SETTINGS_MAX_CONCURRENT_STREAMS, 128),
                (SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),
                (SETTINGS_MAX_HEADER_LIST_SIZE, 65_536),
            ])),
            fr(window_update(0, (1 << 20) - 65_535)),
        ]
    );
}

#[test]
fn bad_preface_is_goaway_protocol_error() {
    let mut c = Client::new(Config::default());
    c.take();
    c.fails(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Reason::PROTOCOL_ERROR,
        0,
    );
}

#[test]
fn first_frame_other_than_settings_is_protocol_error() {
    let mut c = Client::new(Config::default());
    c.take();
    c.send(PREFACE).unwrap();
    assert!(c.take().is_empty());
    c.fails(&ping([1; 8]), Reason::PROTOCOL_ERROR, 0);
}

#[test]
fn first_frame_settings_ack_is_protocol_error() {
    let mut c = Client::new(Config::default());
    c.take();
    c.fails(
        &[PREFACE, &settings_ack()[..]].concat(),
        Reason::PROTOCOL_ERROR,
        0,
    );
}

#[test]
fn client_settings_are_acknowledged_each_time() {
    let mut c = Client::new(Config::default());
    c.take();
    let first = settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1000)]);
    c.send(&[PREFACE, &first[..]].concat()).unwrap();
    assert_eq!(c.take(), vec![fr(settings_ack())]);
    // The ack of our SETTINGS is not answered.
    c.send(&settings_ack()).unwrap();
    assert!(c.take().is_empty());
    c.send(&settings(&[(SETTINGS_MAX_FRAME_SIZE, 20_000)]))
        .unwrap();
    assert_eq!(c.take(), vec![fr(settings_ack())]);
}

#[test]
fn preface_and_settings_fed_one_byte_at_a_time() {
    let mut c = Client::new(Config::default());
    c.take();
    let bytes = [
        PREFACE,
        &settings(&[(SETTINGS_ENABLE_PUSH, 0)])[..],
        &get(1)[..],
    ]
    .concat();
    for (i, b) in bytes.iter().enumerate() {
        c.send(&[*b]).unwrap();
        let frames = c.take();
        if i == PREFACE.len() + 9 + 6 - 1 {
            assert_eq!(frames, vec![fr(settings_ack())]);
        } else {
            assert!(frames.is_empty(), "output after byte {i}");
        }
    }
    assert!(c.buf.is_empty());
    assert_eq!(c.request().0, 1);
}

// --- Requests and responses --------------------------------------------------------------------

#[test]
fn get_with_end_stream_gives_request_with_pseudo_headers_and_fields_in_order() {
    let mut c = Client::open();
    let block = hb(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/a/b?c=d"),
        (":authority", "example.com:8443"),
        ("user-agent", "test"),
        ("accept", "*/*"),
        ("x-b", "2"),
        ("x-a", "1"),
        ("accept", "text/html"),
    ]);
    c.send(&headers(1, ES_EH, &block)).unwrap();
    let (stream, head, end) = c.request();
    assert_eq!((stream, end), (1, true));
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.path(), b"/a/b?c=d");
    assert_eq!(head.scheme(), b"https");
    assert_eq!(head.authority(), Some(&b"example.com:8443"[..]));
    assert_eq!(
        pairs(&head),
        [
            (&b"user-agent"[..], &b"test"[..]),
            (b"accept", b"*/*"),
            (b"x-b", b"2"),
            (b"x-a", b"1"),
            (b"accept", b"text/html"),
        ]
    );
    assert_eq!(head.field(b"accept"), Some(&b"*/*"[..]));
    assert_eq!(head.content_length, None);
    assert!(c.conn.next_event().is_none());
    assert!(c.take().is_empty());
}

#[test]
fn response_is_headers_then_data_end_stream_and_stream_is_gone() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    assert!(!c.conn.is_gone(1));
    c.conn
        .send_headers(1, 200, [(&b"content-type"[..], &b"text/plain"[..])], false)
        .unwrap();
    c.conn.send_data(1, b"hello", true).unwrap();
    let frames = c.take();
    assert_eq!(frames.len(), 2);
    assert_eq!(
        (frames[0].kind, frames[0].flags, frames[0].stream),
        (HEADERS, EH, 1)
    );
    assert_eq!(
        c.fields(&frames[0]),
        owned(&[(":status", "200"), ("content-type", "text/plain")])
    );
    assert_eq!(frames[1], fr(data(1, true, b"hello")));
    assert!(c.conn.is_gone(1));
    assert!(!c.conn.has_streams());
    assert_eq!(c.conn.send_data(1, b"", true), Err(Gone));
    assert_eq!(c.conn.capacity(1), Err(Gone));
    assert_eq!(c.conn.poll_data(1, &noop()), Poll::Ready(Some(Err(Gone))));
}

#[test]
fn post_body_reaches_poll_data_in_order_then_none() {
    let mut c = Client::open();
    let cx = noop();
    c.send(&headers(1, EH, &req("POST", &[]))).unwrap();
    let (stream, head, end) = c.request();
    assert_eq!((stream, head.method(), end), (1, &b"POST"[..], false));
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Pending);
    c.send(&[data(1, false, b"hello"), data(1, false, b" world")].concat())
        .unwrap();
    assert_eq!(
        c.conn.poll_data(1, &cx),
        Poll::Ready(Some(Ok(Bytes::from_static(b"hello"))))
    );
    assert_eq!(
        c.conn.poll_data(1, &cx),
        Poll::Ready(Some(Ok(Bytes::from_static(b" world"))))
    );
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Pending);
    c.send(&data(1, true, b"!")).unwrap();
    assert_eq!(
        c.conn.poll_data(1, &cx),
        Poll::Ready(Some(Ok(Bytes::from_static(b"!"))))
    );
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Ready(None));
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Ready(None));
    assert_eq!(c.conn.take_trailers(1), None);
    assert!(c.take().is_empty());
}

#[test]
fn trailers_reach_take_trailers_after_the_body() {
    let mut c = Client::open();
    let cx = noop();
    c.send(&headers(1, EH, &req("POST", &[("te", "trailers")])))
        .unwrap();
    c.request();
    c.send(&data(1, false, b"body")).unwrap();
    assert_eq!(c.conn.take_trailers(1), None);
    let trailers = hb(&[("x-checksum", "abc"), ("x-count", "1")]);
    c.send(&headers(1, ES_EH, &trailers)).unwrap();
    assert!(c.take().is_empty());
    assert_eq!(
        c.conn.poll_data(1, &cx),
        Poll::Ready(Some(Ok(Bytes::from_static(b"body"))))
    );
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Ready(None));
    assert_eq!(
        c.conn.take_trailers(1),
        Some(vec![
            (b"x-checksum".to_vec(), b"abc".to_vec()),
            (b"x-count".to_vec(), b"1".to_vec())
        ])
    );
    assert_eq!(c.conn.take_trailers(1), None);
    assert!(c.conn.next_event().is_none());
}

#[test]
fn release_sends_window_updates_once_half_the_window_is_given_back() {
    let config = Config {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    c.send(&settings_ack()).unwrap();
    c.send(&headers(1, EH, &req("POST", &[]))).unwrap();
    c.request();
    let chunk = [9u8; 10_000];
    c.send(&[data(1, false, &chunk), data(1, false, &chunk)].concat())
        .unwrap();
    c.conn.release(1, 20_000);
    assert!(c.take().is_empty(), "20000 < 65535 / 2");
    c.send(&[data(1, false, &chunk), data(1, false, &chunk)].concat())
        .unwrap();
    c.conn.release(1, 10_000);
    assert!(c.take().is_empty(), "30000 < 65535 / 2");
    c.conn.release(1, 10_000);
    assert_eq!(
        c.take(),
        vec![fr(window_update(1, 40_000)), fr(window_update(0, 40_000))]
    );
    // Releasing more than was received gives back nothing more.
    c.conn.release(1, 50_000);
    assert!(c.take().is_empty());
}

#[test]
fn connection_window_update_comes_from_releases_over_several_streams() {
    let config = Config {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    c.send(&settings_ack()).unwrap();
    let chunk = [1u8; 12_000];
    for id in [1, 3, 5] {
        c.send(&headers(id, EH, &req("POST", &[]))).unwrap();
        c.request();
        c.send(&data(id, false, &chunk)).unwrap();
    }
    c.conn.release(1, 12_000);
    c.conn.release(3, 12_000);
    assert!(c.take().is_empty());
    c.conn.release(5, 12_000);
    assert_eq!(c.take(), vec![fr(window_update(0, 36_000))]);
}

// --- Connection errors -------------------------------------------------------------------------

#[test]
fn data_on_stream_zero_is_protocol_error() {
    Client::open().fails(&data(0, false, b"x"), Reason::PROTOCOL_ERROR, 0);
}

#[test]
fn settings_of_length_5_is_frame_size_error() {
    Client::open().fails(
        &raw(SETTINGS, 0, 0, &[0, 4, 0, 0, 1]),
        Reason::FRAME_SIZE_ERROR,
        0,
    );
}

#[test]
fn ping_of_length_7_is_frame_size_error() {
    Client::open().fails(&raw(PING, 0, 0, &[0; 7]), Reason::FRAME_SIZE_ERROR, 0);
}

#[test]
fn settings_ack_with_payload_is_frame_size_error() {
    Client::open().fails(
        &raw(SETTINGS, frame::ACK, 0, &[0, 4, 0, 0, 1, 0]),
        Reason::FRAME_SIZE_ERROR,
        0,
    );
}

#[test]
fn enable_push_2_is_protocol_error() {
    Client::open().fails(
        &settings(&[(SETTINGS_ENABLE_PUSH, 2)]),
        Reason::PROTOCOL_ERROR,
        0,
    );
}

#[test]
fn initial_window_size_2_pow_31_is_flow_control_error() {
    Client::open().fails(
        &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)]),
        Reason::FLOW_CONTROL_ERROR,
        0,
    );
}

#[test]
fn even_stream_id_is_protocol_error() {
    Client::open().fails(&get(2), Reason::PROTOCOL_ERROR, 0);
}

#[test]
fn decreasing_stream_id_is_protocol_error() {
    let mut c = Client::open();
    c.send(&get(5)).unwrap();
    c.request();
    c.fails(&get(3), Reason::PROTOCOL_ERROR, 5);
}

#[test]
fn data_on_idle_stream_is_protocol_error() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.fails(&data(3, false, b"x"), Reason::PROTOCOL_ERROR, 1);
}

#[test]
fn rst_stream_on_idle_stream_is_protocol_error() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.fails(&rst(3, Reason::CANCEL), Reason::PROTOCOL_ERROR, 1);
}

#[test]
fn continuation_without_headers_is_protocol_error() {
    Client::open().fails(
        &continuation(1, EH, &req("GET", &[])),
        Reason::PROTOCOL_ERROR,
        0,
    );
}

#[test]
fn frame_interleaved_in_header_block_is_protocol_error() {
    let block = req("GET", &[]);
    let (a, b) = block.split_at(4);
    let mut c = Client::open();
    c.send(&headers(1, END_STREAM, a)).unwrap();
    c.fails(
        &[ping([0; 8]), continuation(1, EH, b)].concat(),
        Reason::PROTOCOL_ERROR,
        0,
    );

    let mut c = Client::open();
    c.send(&headers(1, END_STREAM, a)).unwrap();
    c.fails(&continuation(3, EH, b), Reason::PROTOCOL_ERROR, 0);
}

#[test]
fn invalid_hpack_index_is_compression_error() {
    // Index 62 with an empty dynamic table.
    let mut block = req("GET", &[]);
    block.push(0x80 | 62);
    Client::open().fails(&headers(1, ES_EH, &block), Reason::COMPRESSION_ERROR, 1);
}

#[test]
fn frame_longer_than_max_frame_size_is_frame_size_error() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    // The head alone is enough to fail.
    let head = raw(DATA, 0, 1, &[0; 16_385])[..9].to_vec();
    c.fails(&head, Reason::FRAME_SIZE_ERROR, 1);
}

#[test]
fn connection_window_update_overflow_is_flow_control_error() {
    let mut c = Client::open();
    c.send(&window_update(0, (1 << 31) - 1 - 65_535)).unwrap();
    assert!(c.take().is_empty());
    c.fails(&window_update(0, 1), Reason::FLOW_CONTROL_ERROR, 0);
}

#[test]
fn connection_window_update_of_zero_is_protocol_error() {
    Client::open().fails(&window_update(0, 0), Reason::PROTOCOL_ERROR, 0);
}

// --- Stream errors -----------------------------------------------------------------------------

#[test]
fn missing_method_resets_the_stream() {
    let mut c = Client::open();
    let block = hb(&[(":scheme", "https"), (":path", "/"), (":authority", "a")]);
    c.refuses_malformed(&block);
}

#[test]
fn pseudo_header_after_regular_field_resets_the_stream() {
    let mut c = Client::open();
    let block = hb(&[
        (":method", "GET"),
        (":scheme", "https"),
        ("accept", "*/*"),
        (":path", "/"),
    ]);
    c.refuses_malformed(&block);
}

#[test]
fn connection_specific_field_resets_the_stream() {
    let mut c = Client::open();
    let block = req("GET", &[("connection", "keep-alive")]);
    c.refuses_malformed(&block);
}

#[test]
fn te_gzip_resets_the_stream_while_te_trailers_is_accepted() {
    let mut c = Client::open();
    let block = req("GET", &[("te", "gzip")]);
    c.resets(&headers(1, ES_EH, &block), 1, Reason::PROTOCOL_ERROR);
    assert!(c.conn.next_event().is_none());
    c.send(&headers(3, ES_EH, &req("GET", &[("te", "trailers")])))
        .unwrap();
    let (stream, head, _) = c.request();
    assert_eq!((stream, head.field(b"te")), (3, Some(&b"trailers"[..])));
    assert!(c.take().is_empty());
}

#[test]
fn uppercase_field_name_resets_the_stream() {
    let mut c = Client::open();
    let block = req("GET", &[("X-Foo", "1")]);
    c.refuses_malformed(&block);
}

#[test]
fn content_length_mismatch_resets_the_stream() {
    let mut c = Client::open();
    let block = req("POST", &[("content-length", "10")]);
    c.send(&headers(1, EH, &block)).unwrap();
    let (_, head, _) = c.request();
    assert_eq!(head.content_length, Some(10));
    c.resets(&data(1, true, b"12345"), 1, Reason::PROTOCOL_ERROR);
    assert_eq!(c.conn.poll_data(1, &noop()), Poll::Ready(Some(Err(Gone))));
    c.answers(3);
}

#[test]
fn data_after_end_stream_is_stream_closed() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    c.resets(&data(1, false, b"x"), 1, Reason::STREAM_CLOSED);
    c.answers(3);
}

#[test]
fn stream_window_update_of_zero_resets_the_stream() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    c.resets(&window_update(1, 0), 1, Reason::PROTOCOL_ERROR);
    c.answers(3);
}

#[test]
fn priority_depending_on_itself_resets_the_stream() {
    let mut c = Client::open();
    c.send(&headers(1, EH, &req("POST", &[]))).unwrap();
    c.request();
    c.resets(&priority(1, 1), 1, Reason::PROTOCOL_ERROR);
    // A PRIORITY naming another stream is fine.
    c.send(&priority(1, 0)).unwrap();
    assert!(c.take().is_empty());
    c.answers(3);
}

#[test]
fn headers_with_priority_depending_on_itself_resets_the_stream() {
    let mut c = Client::open();
    let mut payload = 1u32.to_be_bytes().to_vec();
    payload.push(16);
    payload.extend_from_slice(&req("GET", &[]));
    c.resets(
        &headers(1, ES_EH | PRIORITY_FLAG, &payload),
        1,
        Reason::PROTOCOL_ERROR,
    );
    assert!(c.conn.next_event().is_none());
    c.answers(3);
}

// --- Flow control ------------------------------------------------------------------------------

#[test]
fn client_initial_window_bounds_capacity_until_window_update() {
    let mut c = Client::open_with(Config::default(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 1000)]);
    let cx = noop();
    c.send(&get(1)).unwrap();
    c.request();
    assert_eq!(c.conn.capacity(1), Ok(1000));
    c.conn.send_headers(1, 200, [], false).unwrap();
    c.conn.send_data(1, &[5; 1000], false).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(0));
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Pending);
    let frames = c.take();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1], fr(data(1, false, &[5; 1000])));
    // A connection WINDOW_UPDATE alone does not open the stream's window.
    c.send(&window_update(0, 10_000)).unwrap();
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Pending);
    c.send(&window_update(1, 300)).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(300));
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Ready(Ok(300)));
    assert!(c.take().is_empty());
}

#[test]
fn connection_send_window_bounds_capacity() {
    let mut c = Client::open_with(
        Config::default(),
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 100_000)],
    );
    c.send(&get(1)).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(65_535));
    c.send(&window_update(0, 10)).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(65_545));
}

#[test]
fn settings_change_of_initial_window_adjusts_open_streams_even_below_zero() {
    let mut c = Client::open_with(Config::default(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 1000)]);
    c.send(&get(1)).unwrap();
    c.request();
    c.conn.send_headers(1, 200, [], false).unwrap();
    c.conn.send_data(1, &[0; 600], false).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(400));
    c.take();
    c.send(&settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 500)]))
        .unwrap();
    assert_eq!(c.take(), vec![fr(settings_ack())]);
    // The window is now -100.
    assert_eq!(c.conn.capacity(1), Ok(0));
    c.send(&window_update(1, 100)).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(0));
    c.send(&window_update(1, 50)).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(50));
    c.send(&settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 2000)]))
        .unwrap();
    assert_eq!(c.conn.capacity(1), Ok(1550));
    // A stream opened now starts at the new initial window.
    c.send(&get(3)).unwrap();
    assert_eq!(c.conn.capacity(3), Ok(2000));
}

#[test]
fn settings_raising_a_stream_window_past_max_is_flow_control_error() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.send(&window_update(1, (1 << 31) - 1 - 65_535)).unwrap();
    assert!(c.take().is_empty());
    c.fails(
        &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 65_536)]),
        Reason::FLOW_CONTROL_ERROR,
        1,
    );
}

#[test]
fn stream_window_update_overflow_resets_the_stream() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    c.resets(
        &window_update(1, (1 << 31) - 65_535),
        1,
        Reason::FLOW_CONTROL_ERROR,
    );
    c.answers(3);
}

#[test]
fn data_frames_are_cut_at_the_peer_max_frame_size() {
    let mut c = Client::open_with(
        Config::default(),
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 100_000)],
    );
    c.send(&window_update(0, 100_000)).unwrap();
    c.send(&get(1)).unwrap();
    c.request();
    assert_eq!(c.conn.capacity(1), Ok(100_000));
    c.conn.send_headers(1, 200, [], false).unwrap();
    let body: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    c.conn.send_data(1, &body, true).unwrap();
    let frames = c.take();
    let shape: Vec<_> = frames
        .iter()
        .map(|f| (f.kind, f.flags, f.payload.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (HEADERS, EH, 1),
            (DATA, 0, 16_384),
            (DATA, 0, 16_384),
            (DATA, END_STREAM, 7_232)
        ]
    );
    let sent: Vec<u8> = frames[1..].iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(sent, body);

    // A larger SETTINGS_MAX_FRAME_SIZE makes larger frames.
    c.send(&settings(&[(SETTINGS_MAX_FRAME_SIZE, 32_768)]))
        .unwrap();
    c.send(&get(3)).unwrap();
    c.request();
    c.take();
    c.conn.send_data(3, &body, true).unwrap();
    let shape: Vec<_> = c
        .take()
        .iter()
        .map(|f| (f.flags, f.payload.len()))
        .collect();
    assert_eq!(shape, [(0, 32_768), (END_STREAM, 7_232)]);
}

#[test]
fn headers_blocks_are_cut_at_the_peer_max_frame_size() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    let value = vec![b'v'; 20_000];
    c.conn
        .send_headers(1, 200, [(&b"x-big"[..], &value[..])], true)
        .unwrap();
    let frames = c.take();
    let shape: Vec<_> = frames.iter().map(|f| (f.kind, f.flags, f.stream)).collect();
    assert_eq!(shape, [(HEADERS, END_STREAM, 1), (CONTINUATION, EH, 1)]);
    assert_eq!(frames[0].payload.len(), 16_384);
    let mut joined = frames[0].clone();
    joined.payload.extend_from_slice(&frames[1].payload);
    let fields = c.fields(&joined);
    assert_eq!(fields[1].1.len(), 20_000);
}

// --- Limits ------------------------------------------------------------------------------------

#[test]
fn streams_past_max_concurrent_streams_are_refused() {
    let config = Config {
        max_concurrent_streams: 2,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    c.send(&[get(1), headers(3, EH, &req("POST", &[]))].concat())
        .unwrap();
    assert_eq!(c.request().0, 1);
    assert_eq!(c.request().0, 3);
    c.resets(&get(5), 5, Reason::REFUSED_STREAM);
    assert!(c.conn.next_event().is_none());
    assert!(!c.conn.is_gone(1) && !c.conn.is_gone(3));
    // The refused stream's late DATA is ignored; the others go on.
    c.send(&[data(5, true, b"late"), data(3, true, b"body")].concat())
        .unwrap();
    assert!(c.take().is_empty());
    assert_eq!(
        c.conn.poll_data(3, &noop()),
        Poll::Ready(Some(Ok(Bytes::from_static(b"body"))))
    );
    c.conn.send_headers(1, 204, [], true).unwrap();
    c.take();
    c.answers(7);
}

#[test]
fn header_list_too_large_is_too_large_event_and_hpack_table_stays_in_step() {
    let config = Config {
        max_header_list_size: 300,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    let mut block = req("GET", &[("x-big", &"a".repeat(400))]);
    // After the limit: a literal with incremental indexing, x-tag: v1 (dynamic index 62).
    block.extend_from_slice(b"\x40\x05x-tag\x02v1");
    c.send(&headers(1, ES_EH, &block)).unwrap();
    match c.conn.next_event() {
        Some(Event::TooLarge { stream: 1 }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(c.take().is_empty());
    c.conn.send_headers(1, 431, [], true).unwrap();
    let frames = c.take();
    assert_eq!(c.fields(&frames[0]), owned(&[(":status", "431")]));
    assert!(c.conn.is_gone(1));

    let mut block = req("GET", &[]);
    block.push(0x80 | 62);
    c.send(&headers(3, ES_EH, &block)).unwrap();
    let (stream, head, _) = c.request();
    assert_eq!(stream, 3);
    assert_eq!(head.field(b"x-tag"), Some(&b"v1"[..]));
    assert!(c.take().is_empty());
}

#[test]
fn continuation_flood_is_enhance_your_calm() {
    let mut c = Client::open();
    let mut bytes = headers(1, END_STREAM, &req("GET", &[]));
    for _ in 0..2000 {
        bytes.extend_from_slice(&continuation(1, 0, &[]));
    }
    assert_eq!(
        c.send(&bytes),
        Err(ConnError {
            reason: Reason::ENHANCE_YOUR_CALM
        })
    );
    assert_eq!(c.take(), vec![fr(goaway(0, Reason::ENHANCE_YOUR_CALM))]);
    assert!(c.conn.next_event().is_none());
}

#[test]
fn ping_flood_is_enhance_your_calm() {
    let mut c = Client::open();
    let bytes: Vec<u8> = (0..1000u32).flat_map(|i| ping([i as u8; 8])).collect();
    let result = c.send(&bytes);
    assert!(result.unwrap_err().is_abuse());
    let frames = c.take();
    let (last, acks) = frames.split_last().unwrap();
    assert_eq!(*last, fr(goaway(0, Reason::ENHANCE_YOUR_CALM)));
    assert!(!acks.is_empty() && acks.len() <= 200, "{} acks", acks.len());
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(*ack, fr(ping_ack([i as u8; 8])));
    }
    assert!(c.conn.is_done());
}

#[test]
fn ten_pings_get_ten_acks_with_their_payloads() {
    let mut c = Client::open();
    let payloads: Vec<[u8; 8]> = (0..10u8).map(|i| [i, 1, 2, 3, 4, 5, 6, 255 - i]).collect();
    let bytes: Vec<u8> = payloads.iter().flat_map(|p| ping(*p)).collect();
    c.send(&bytes).unwrap();
    let acks: Vec<Frame> = payloads.iter().map(|p| fr(ping_ack(*p))).collect();
    assert_eq!(c.take(), acks);
    // A PING ACK from the client is not answered.
    c.send(&ping_ack([0; 8])).unwrap();
    assert!(c.take().is_empty());
}

#[test]
fn rapid_reset_is_enhance_your_calm() {
    let mut c = Client::open();
    let mut bytes = Vec::new();
    for i in 0..1000u32 {
        bytes.extend_from_slice(&get(2 * i + 1));
        bytes.extend_from_slice(&rst(2 * i + 1, Reason::CANCEL));
    }
    assert!(c.send(&bytes).unwrap_err().is_abuse());
    let frames = c.take();
    assert_eq!(frames.len(), 1);
    let last = u32::from_be_bytes(frames[0].payload[..4].try_into().unwrap());
    assert!(last > 1 && last < 1999, "last stream {last}");
    assert_eq!(frames[0], fr(goaway(last, Reason::ENHANCE_YOUR_CALM)));
    assert!(c.conn.next_event().is_none());
    assert!(c.conn.is_done());
}

#[test]
fn streams_reset_in_the_same_read_as_their_headers_never_surface() {
    let mut c = Client::open();
    c.send(
        &[
            get(1),
            rst(1, Reason::CANCEL),
            get(3),
            headers(5, EH, &req("POST", &[])),
            rst(5, Reason::CANCEL),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(c.conn.take_resets_received(), 2);
    assert_eq!(c.request().0, 3);
    assert!(c.conn.next_event().is_none());
    assert!(c.take().is_empty());
    assert!(c.conn.is_gone(1) && c.conn.is_gone(5));
    // Late frames on the reset streams are ignored.
    c.send(
        &[
            data(5, true, b"x"),
            window_update(1, 5),
            rst(5, Reason::CANCEL),
        ]
        .concat(),
    )
    .unwrap();
    assert!(c.take().is_empty());
}

// --- Shutdown ----------------------------------------------------------------------------------

#[test]
fn go_away_sends_no_error_with_last_stream_and_ignores_new_streams() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    c.conn.go_away();
    assert_eq!(c.take(), vec![fr(goaway(1, Reason::NO_ERROR))]);
    c.conn.go_away();
    assert!(c.take().is_empty(), "one GOAWAY only");
    assert!(!c.conn.is_done());
    c.send(&get(3)).unwrap();
    assert!(c.conn.next_event().is_none());
    assert!(c.conn.is_gone(3));
    assert!(c.take().is_empty());
    assert!(!c.conn.is_done());
    c.conn.send_headers(1, 200, [], false).unwrap();
    assert!(!c.conn.is_done());
    c.conn.send_data(1, b"bye", true).unwrap();
    assert!(c.conn.is_done());
}

#[test]
fn client_goaway_is_done_once_no_stream_is_left() {
    let mut c = Client::open();
    c.send(&get(1)).unwrap();
    c.request();
    c.send(&goaway(0, Reason::NO_ERROR)).unwrap();
    assert!(c.take().is_empty());
    assert!(!c.conn.is_done());
    c.conn.send_headers(1, 204, [], true).unwrap();
    assert!(c.conn.is_done());

    let mut c = Client::open();
    assert!(!c.conn.is_done());
    c.send(&goaway(0, Reason::NO_ERROR)).unwrap();
    assert!(c.conn.is_done());
}

// --- Output room and wakers --------------------------------------------------------------------

#[test]
fn capacity_is_bounded_by_output_room_and_flushed_wakes_the_blocked_stream() {
    let config = Config {
        send_buffer: 2000,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[(SETTINGS_INITIAL_WINDOW_SIZE, 100_000)]);
    c.send(&window_update(0, 100_000)).unwrap();
    c.send(&get(1)).unwrap();
    c.request();
    assert_eq!(c.conn.capacity(1), Ok(2000));
    c.conn.send_headers(1, 200, [], false).unwrap();
    let room = 2000 - c.conn.output().len();
    assert_eq!(c.conn.capacity(1), Ok(room));
    c.conn.send_data(1, &vec![1; room], false).unwrap();
    assert_eq!(c.conn.capacity(1), Ok(0));
    let (counter, waker) = counting();
    let cx = Context::from_waker(&waker);
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Pending);
    let frames = c.take();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].payload.len(), room);
    assert_eq!(woken(&counter), 0, "clearing the output alone wakes nobody");
    c.conn.flushed();
    assert_eq!(woken(&counter), 1);
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Ready(Ok(2000)));
}

#[test]
fn a_waker_is_woken_by_data_window_and_reset() {
    let mut c = Client::open_with(Config::default(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 10)]);
    c.send(&headers(1, EH, &req("POST", &[]))).unwrap();
    c.request();
    let (counter, waker) = counting();
    let cx = Context::from_waker(&waker);

    assert_eq!(c.conn.poll_data(1, &cx), Poll::Pending);
    c.send(&data(1, false, b"x")).unwrap();
    assert_eq!(woken(&counter), 1, "data arrived");
    assert!(c.conn.poll_data(1, &cx).is_ready());

    c.conn.send_headers(1, 200, [], false).unwrap();
    c.conn.send_data(1, &[0; 10], false).unwrap();
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Pending);
    c.send(&window_update(1, 5)).unwrap();
    assert_eq!(woken(&counter), 2, "window opened");
    assert_eq!(c.conn.poll_capacity(1, &cx), Poll::Ready(Ok(5)));

    assert_eq!(c.conn.poll_gone(1, &cx), Poll::Pending);
    c.send(&rst(1, Reason::CANCEL)).unwrap();
    assert_eq!(woken(&counter), 3, "stream reset");
    assert_eq!(c.conn.poll_gone(1, &cx), Poll::Ready(()));
    assert_eq!(c.conn.poll_data(1, &cx), Poll::Ready(Some(Err(Gone))));

    // A connection error wakes the waiting streams too.
    c.send(&headers(3, EH, &req("POST", &[]))).unwrap();
    c.request();
    assert_eq!(c.conn.poll_data(3, &cx), Poll::Pending);
    assert!(c.send(&window_update(0, 0)).is_err());
    assert_eq!(woken(&counter), 4, "connection ended");
    assert_eq!(c.conn.poll_data(3, &cx), Poll::Ready(Some(Err(Gone))));
}

// --- More request validation and framing -------------------------------------------------------

#[test]
fn duplicate_pseudo_header_resets_the_stream() {
    let mut c = Client::open();
    let block = req("GET", &[]);
    let mut twice = hb(&[(":path", "/other")]);
    twice.extend_from_slice(&block);
    c.refuses_malformed(&twice);
}

#[test]
fn end_stream_with_nonzero_content_length_resets_the_stream() {
    let mut c = Client::open();
    let block = req("POST", &[("content-length", "3")]);
    c.refuses_malformed(&block);
}

#[test]
fn connect_takes_authority_without_scheme_or_path() {
    let mut c = Client::open();
    let block = hb(&[(":method", "CONNECT"), (":authority", "example.com:443")]);
    c.send(&headers(1, EH, &block)).unwrap();
    let (stream, head, end) = c.request();
    assert_eq!((stream, end), (1, false));
    assert_eq!(
        (head.method(), head.path(), head.scheme()),
        (&b"CONNECT"[..], &b""[..], &b""[..])
    );
    assert_eq!(head.authority(), Some(&b"example.com:443"[..]));
    let block = hb(&[
        (":method", "CONNECT"),
        (":authority", "a:1"),
        (":path", "/"),
    ]);
    c.resets(&headers(3, EH, &block), 3, Reason::PROTOCOL_ERROR);
}

#[test]
fn header_block_over_continuations_and_padding_is_one_request() {
    let mut c = Client::open();
    let block = req("GET", &[("x-a", "1")]);
    let (a, rest) = block.split_at(3);
    let (b, d) = rest.split_at(5);
    // HEADERS PADDED with 4 bytes of padding, then two CONTINUATIONs.
    let mut first = vec![4];
    first.extend_from_slice(a);
    first.extend_from_slice(&[0; 4]);
    let bytes = [
        headers(1, END_STREAM | frame::PADDED, &first),
        continuation(1, 0, b),
        continuation(1, EH, d),
    ]
    .concat();
    c.send(&bytes).unwrap();
    let (stream, head, end) = c.request();
    assert_eq!(
        (stream, end, head.field(b"x-a")),
        (1, true, Some(&b"1"[..]))
    );
}

#[test]
fn padded_data_delivers_only_the_data_and_counts_padding_in_flow_control() {
    let config = Config {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    c.send(&settings_ack()).unwrap();
    c.send(&headers(1, EH, &req("POST", &[]))).unwrap();
    c.request();
    let mut payload = vec![200];
    payload.extend_from_slice(b"abc");
    payload.extend_from_slice(&[0; 200]);
    let frame = raw(DATA, frame::PADDED, 1, &payload);
    let bytes: Vec<u8> = std::iter::repeat_n(frame, 200).flatten().collect();
    c.send(&bytes).unwrap();
    assert_eq!(
        c.conn.poll_data(1, &noop()),
        Poll::Ready(Some(Ok(Bytes::from_static(b"abc"))))
    );
    // Each frame is 204 flow-controlled bytes, 201 of them padding given back at once: the
    // 164th frame passes half of both windows (164 * 201 = 32964); the 36 after it do not.
    assert_eq!(
        c.take(),
        vec![fr(window_update(1, 32_964)), fr(window_update(0, 32_964))]
    );
}

#[test]
fn data_past_the_connection_window_is_flow_control_error() {
    let config = Config {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..Config::default()
    };
    let mut c = Client::open_with(config, &[]);
    let mut bytes = headers(1, EH, &req("POST", &[]));
    for _ in 0..4 {
        bytes.extend_from_slice(&data(1, false, &[0; 16_000]));
    }
    bytes.extend_from_slice(&data(1, false, &[0; 1_535]));
    c.send(&bytes).unwrap();
    assert!(c.take().is_empty());
    c.fails(&data(1, false, &[0]), Reason::FLOW_CONTROL_ERROR, 1);
}

// --- Found bugs (ignored until conn.rs is fixed) -----------------------------------------------

#[test]
fn field_value_with_surrounding_whitespace_resets_the_stream() {
    let mut c = Client::open();
    let block = req("GET", &[("x-a", " padded")]);
    c.resets(&headers(1, ES_EH, &block), 1, Reason::PROTOCOL_ERROR);
    let block = req("GET", &[("x-a", "padded\t")]);
    c.resets(&headers(3, ES_EH, &block), 3, Reason::PROTOCOL_ERROR);
    assert!(c.conn.next_event().is_none());
    c.answers(5);
}

#[test]
fn data_on_idle_server_stream_is_protocol_error() {
    let mut c = Client::open();
    c.send(&get(3)).unwrap();
    c.fails(&data(2, false, b"x"), Reason::PROTOCOL_ERROR, 3);
}

#[test]
fn window_update_on_idle_server_stream_is_protocol_error() {
    let mut c = Client::open();
    c.send(&get(3)).unwrap();
    c.fails(&window_update(2, 1), Reason::PROTOCOL_ERROR, 3);
}

#[test]
fn empty_method_resets_the_stream() {
    let mut c = Client::open();
    let block = req("", &[]);
    c.refuses_malformed(&block);
}

#[test]
fn nul_cr_and_lf_are_found_in_every_position_of_a_value() {
    for len in [1usize, 7, 8, 9, 16, 23] {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut value = vec![b'a'; len];
                value[at] = b;
                assert_eq!(
                    has_nul_cr_lf(&value),
                    matches!(b, 0 | b'\r' | b'\n'),
                    "byte {b:#x} at {at} of {len}"
                );
            }
        }
    }
}
