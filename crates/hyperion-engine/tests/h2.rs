//! HTTP/2 (h2c with prior knowledge) end to end: the engine with a Rust application on one
//! side, the `h2` crate's client on the other, over real sockets, on both connection loops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::Reason;
use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
use hyperion_engine::{trailer_map, Body, Engine, EngineConfig, Exchange, HeadBuilder, IoUring};
use tokio::net::TcpStream;

mod common;
use common::{tcp, with_loop};

both_loops!(
    get_and_post_over_h2c_reach_the_app_as_http2_exchanges,
    static_routes_are_answered_with_their_prebuilt_head,
    a_slow_stream_does_not_block_the_others,
    large_bodies_pass_through_a_small_flow_control_window,
    streams_past_max_total_streams_are_refused_and_the_connection_lives_on,
    streamed_responses_end_with_trailers,
    early_hints_arrive_before_the_response,
    http11_still_works_next_to_h2c,
    graceful_stop_sends_goaway_and_finishes_in_flight_streams,
    oversized_header_lists_are_answered_431,
    request_bodies_over_max_body_bytes_get_413,
    rapid_reset_ends_the_connection_with_enhance_your_calm,
    continuation_and_ping_floods_end_the_connection,
    grpc_request_bodies_reach_the_app_as_they_arrive,
    a_streamed_request_body_is_paced_by_the_reader,
    a_reset_fails_the_reader_of_a_streamed_body,
    a_streamed_body_past_max_body_bytes_fails_the_reader,
);

/// A gate the slow handler waits at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

type Handler = Arc<dyn Fn(&mut Exchange) + Send + Sync>;

fn start(config: EngineConfig, threads: usize, handler: Handler) -> (Arc<Engine>, u16) {
    let engine = Arc::new(Engine::start(config, &tcp()).expect("bind"));
    common::app_threads(&engine, threads, move |ex: &mut Exchange| handler(ex));
    let port = engine.ports()[0];
    (engine, port)
}

fn respond(ex: &mut Exchange, status: i64, body: &[u8]) {
    let mut head = HeadBuilder::new(status, 128).unwrap();
    head.header(b"content-type", b"text/plain").unwrap();
    head.header(b"Connection", b"keep-alive").unwrap();
    head.header(b"keep-alive", b"timeout=5").unwrap();
    let msg = ex
        .response
        .encode_full(head, body.len() as u64, |b| b.extend_from_slice(body))
        .unwrap();
    ex.response.send(msg).unwrap();
}

fn body_bytes(ex: &mut Exchange) -> Vec<u8> {
    match &mut ex.body {
        Body::Memory(bytes) => bytes.clone(),
        Body::File { file, .. } => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(file, &mut out).unwrap();
            out
        }
        Body::Stream(stream) => {
            let mut out = Vec::new();
            while let Ok(hyperion_engine::Read::Data(chunk)) = stream.next() {
                out.extend_from_slice(&chunk);
            }
            out
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An h2c client connection (prior knowledge); the connection is driven by a task.
async fn connect(port: u16, window: Option<u32>) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut builder = h2::client::Builder::new();
    if let Some(window) = window {
        builder.initial_window_size(window);
    }
    let (client, conn) = builder.handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .body(())
        .unwrap()
}

/// Sends a request (with `body`, if any) and reads the whole response.
async fn exchange(
    client: &mut SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<Bytes>,
) -> Result<(http::response::Parts, Vec<u8>, Option<http::HeaderMap>), h2::Error> {
    let mut client = client.clone().ready().await?;
    let (response, mut send) = client.send_request(req, body.is_none())?;
    if let Some(body) = body {
        send_all(&mut send, body).await?;
    }
    let response = response.await?;
    let (parts, mut recv) = response.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await?;
    Ok((parts, out, trailers))
}

async fn send_all(send: &mut h2::SendStream<Bytes>, mut body: Bytes) -> Result<(), h2::Error> {
    while !body.is_empty() {
        send.reserve_capacity(body.len());
        let n = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(n) => n?,
            None => break,
        };
        let chunk = body.split_to(n.min(body.len()));
        send.send_data(chunk, body.is_empty())?;
    }
    Ok(())
}

fn get_and_post_over_h2c_reach_the_app_as_http2_exchanges(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        assert!(ex.is_h2());
        assert!(ex.response.is_h2());
        let body = body_bytes(ex);
        let text = format!(
            "{} {} host={} body={}",
            String::from_utf8_lossy(ex.method()),
            String::from_utf8_lossy(ex.path()),
            ex.head
                .host
                .map(|h| String::from_utf8_lossy(h.slice(&ex.head_bytes)).into_owned())
                .unwrap_or_default(),
            String::from_utf8_lossy(&body),
        );
        respond(ex, 200, text.as_bytes());
    });
    let (engine, port) = start(with_loop(mode), 2, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let (parts, body, _) = exchange(&mut client, request("GET", "/a?x=1"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"GET /a host=localhost body=");
        assert!(parts.headers.get("date").is_some());
        assert_eq!(parts.headers["content-length"], "27");
        // Connection-specific headers from the app never reach an HTTP/2 response.
        assert!(parts.headers.get("connection").is_none());
        assert!(parts.headers.get("keep-alive").is_none());

        let (parts, body, _) = exchange(
            &mut client,
            request("POST", "/p"),
            Some(Bytes::from_static(b"hello")),
        )
        .await
        .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"POST /p host=localhost body=hello");
    });
    let stats = engine.stats();
    assert_eq!(stats.h2_connections, 1);
    assert_eq!(stats.h2_streams, 2);
}

fn static_routes_are_answered_with_their_prebuilt_head(mode: IoUring) {
    let routes = Arc::new(RouteTable::new());
    let headers = [(b"content-type".to_vec(), b"text/plain".to_vec())];
    routes.add_static(
        Method::Get,
        b"/static",
        StaticResponse::new(200, &headers, b"static body".to_vec()).unwrap(),
    );
    let big = vec![b'x'; 300_000];
    routes.add_static(
        Method::Get,
        b"/big",
        StaticResponse::new(200, &headers, big.clone()).unwrap(),
    );
    let mut config = with_loop(mode);
    config.routes = routes;
    let handler: Handler = Arc::new(|ex| respond(ex, 404, b"app"));
    let (engine, port) = start(config, 1, handler);
    runtime().block_on(async {
        let mut client = connect(port, Some(16_384)).await;
        let (parts, body, _) = exchange(&mut client, request("GET", "/static"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"static body");
        assert_eq!(parts.headers["content-type"], "text/plain");
        assert_eq!(parts.headers["content-length"], "11");
        let (parts, body, _) = exchange(&mut client, request("HEAD", "/static"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert!(body.is_empty());
        assert_eq!(parts.headers["content-length"], "11");
        let (_, body, _) = exchange(&mut client, request("GET", "/big"), None)
            .await
            .unwrap();
        assert_eq!(body, big);
    });
    assert_eq!(engine.stats().dispatch_static, 3);
    assert_eq!(engine.stats().dispatch_rack, 0);
}

fn a_slow_stream_does_not_block_the_others(mode: IoUring) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let handler: Handler = Arc::new(move |ex| {
        if ex.path() == b"/slow" {
            g.wait();
        }
        let path = ex.path().to_vec();
        respond(ex, 200, &path);
    });
    let (_engine, port) = start(with_loop(mode), 2, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let mut slow_client = client.clone();
        let slow =
            tokio::spawn(
                async move { exchange(&mut slow_client, request("GET", "/slow"), None).await },
            );
        // The slow stream is open and its handler is parked; the fast one on the same
        // connection is answered regardless.
        for _ in 0..3 {
            let (_, body, _) = exchange(&mut client, request("GET", "/fast"), None)
                .await
                .unwrap();
            assert_eq!(body, b"/fast");
        }
        assert!(!slow.is_finished());
        gate.open();
        let (_, body, _) = slow.await.unwrap().unwrap();
        assert_eq!(body, b"/slow");
    });
}

fn large_bodies_pass_through_a_small_flow_control_window(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        let body = body_bytes(ex);
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        // Stream back 3 MiB in 64 KiB chunks: the client's 16 KiB window paces it.
        let msg = ex
            .response
            .encode_stream_head(HeadBuilder::new(200, 64).unwrap())
            .unwrap();
        ex.response.send(msg).unwrap();
        let chunk = vec![b'r'; 64 * 1024];
        for _ in 0..48 {
            let msg = ex.response.encode_chunk(&chunk).unwrap().unwrap();
            ex.response.send(msg).unwrap();
        }
        let trailer = [(b"x-sum".to_vec(), sum.to_string().into_bytes())];
        let msg = ex
            .response
            .encode_end_with_trailers(trailer_map(&trailer).unwrap())
            .unwrap();
        ex.response.send(msg).unwrap();
    });
    let mut config = with_loop(mode);
    config.h2.initial_window_size = 16_384;
    // Larger than memory allows: the body goes through the temp file.
    config.max_in_memory_body_bytes = 256 * 1024;
    let (_engine, port) = start(config, 1, handler);
    let upload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected: u64 = upload.iter().map(|&b| b as u64).sum();
    runtime().block_on(async {
        let mut client = connect(port, Some(16_384)).await;
        let (parts, body, trailers) = exchange(
            &mut client,
            request("POST", "/up"),
            Some(Bytes::from(upload)),
        )
        .await
        .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body.len(), 48 * 64 * 1024);
        assert!(body.iter().all(|&b| b == b'r'));
        assert_eq!(trailers.unwrap()["x-sum"], expected.to_string().as_str());
    });
}

fn streams_past_max_total_streams_are_refused_and_the_connection_lives_on(mode: IoUring) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let handler: Handler = Arc::new(move |ex| {
        if ex.path() == b"/slow" {
            g.wait();
        }
        respond(ex, 200, b"ok");
    });
    let mut config = with_loop(mode);
    config.h2.max_total_streams = Some(1);
    let (engine, port) = start(config, 2, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let mut slow_client = client.clone();
        let slow =
            tokio::spawn(
                async move { exchange(&mut slow_client, request("GET", "/slow"), None).await },
            );
        // Wait until the slow stream holds the only slot.
        while engine.stats().h2_streams == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = exchange(&mut client, request("GET", "/other"), None)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Some(Reason::REFUSED_STREAM));
        gate.open();
        let (_, body, _) = slow.await.unwrap().unwrap();
        assert_eq!(body, b"ok");
        // Same connection, slot free again.
        let (parts, _, _) = exchange(&mut client, request("GET", "/again"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
    });
    assert_eq!(engine.stats().h2_streams_refused, 1);
    assert_eq!(engine.stats().h2_connections, 1);
}

fn streamed_responses_end_with_trailers(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        let mut head = HeadBuilder::new(200, 64).unwrap();
        head.header(b"content-type", b"application/grpc").unwrap();
        head.header(b"trailer", b"grpc-status").unwrap();
        let msg = ex.response.encode_stream_head(head).unwrap();
        ex.response.send(msg).unwrap();
        for part in [&b"one"[..], b"two"] {
            let msg = ex.response.encode_chunk(part).unwrap().unwrap();
            ex.response.send(msg).unwrap();
        }
        let trailers = [(b"grpc-status".to_vec(), b"0".to_vec())];
        let msg = ex
            .response
            .encode_end_with_trailers(trailer_map(&trailers).unwrap())
            .unwrap();
        ex.response.send(msg).unwrap();
    });
    let (_engine, port) = start(with_loop(mode), 1, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let (parts, body, trailers) = exchange(&mut client, request("POST", "/rpc"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"onetwo");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
    });
}

fn early_hints_arrive_before_the_response(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        let mut hints = HeadBuilder::new(103, 64).unwrap();
        hints.header(b"link", b"</a.css>; rel=preload").unwrap();
        let msg = ex.response.encode_informational(hints).unwrap();
        ex.response.send(msg).unwrap();
        respond(ex, 200, b"page");
    });
    let (_engine, port) = start(with_loop(mode), 1, handler);
    runtime().block_on(async {
        let client = connect(port, None).await;
        let mut client = client.ready().await.unwrap();
        let (mut response, _) = client.send_request(request("GET", "/"), true).unwrap();
        let hints = std::future::poll_fn(|cx| response.poll_informational(cx))
            .await
            .expect("an informational response")
            .unwrap();
        assert_eq!(hints.status(), 103);
        assert_eq!(hints.headers()["link"], "</a.css>; rel=preload");
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
    });
}

fn http11_still_works_next_to_h2c(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        let text = if ex.is_h2() { "h2" } else { "h1" };
        respond(ex, 200, text.as_bytes());
    });
    let (_engine, port) = start(with_loop(mode), 1, handler);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // `Upgrade: h2c` is ignored: the answer is plain HTTP/1.1.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("h1"), "{text}");
    // A request starting with "P" that is not the preface is HTTP/1.1 too.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("h1"));
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let (_, body, _) = exchange(&mut client, request("GET", "/"), None)
            .await
            .unwrap();
        assert_eq!(body, b"h2");
    });
}

fn graceful_stop_sends_goaway_and_finishes_in_flight_streams(mode: IoUring) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let handler: Handler = Arc::new(move |ex| {
        s.store(true, Ordering::SeqCst);
        g.wait();
        respond(ex, 200, b"finished");
    });
    let (engine, port) = start(with_loop(mode), 1, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let mut slow_client = client.clone();
        let slow =
            tokio::spawn(
                async move { exchange(&mut slow_client, request("GET", "/slow"), None).await },
            );
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        engine.stop();
        // Let the GOAWAY arrive, then finish the in-flight stream.
        tokio::time::sleep(Duration::from_millis(200)).await;
        gate.open();
        let (parts, body, _) = slow.await.unwrap().unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"finished");
        // After GOAWAY no new stream is accepted on that connection.
        assert!(exchange(&mut client, request("GET", "/late"), None)
            .await
            .is_err());
    });
    engine.join();
}

fn oversized_header_lists_are_answered_431(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| respond(ex, 200, b"ok"));
    let mut config = with_loop(mode);
    config.h2.max_header_list_size = 4096;
    let (_engine, port) = start(config, 1, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let mut req = request("GET", "/");
        req.headers_mut()
            .insert("x-big", "a".repeat(8000).parse().unwrap());
        let result = exchange(&mut client, req, None).await;
        match result {
            Ok((parts, _, _)) => assert_eq!(parts.status, 431),
            Err(e) => assert_eq!(e.reason(), Some(Reason::REFUSED_STREAM), "{e}"),
        }
        // The connection survives.
        let (parts, _, _) = exchange(&mut client, request("GET", "/"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
    });
}

fn request_bodies_over_max_body_bytes_get_413(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| respond(ex, 200, b"ok"));
    let mut config = with_loop(mode);
    config.limits.max_body_bytes = 1000;
    let (_engine, port) = start(config, 1, handler);
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let mut send = client.clone().ready().await.unwrap();
        let (response, mut body) = send.send_request(request("POST", "/"), false).unwrap();
        body.send_data(Bytes::from(vec![b'a'; 5000]), false)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 413);
        let (parts, _, _) = exchange(&mut client, request("GET", "/"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
    });
}

/// Raw frames, for clients that misbehave on purpose.
mod raw {
    use std::io::{Read, Write};

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    /// `GET / http`, authority "x": static-table indexes and one literal.
    pub const GET_BLOCK: &[u8] = &[0x82, 0x86, 0x84, 0x41, 0x01, b'x'];

    pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
    }

    pub fn connect(port: u16) -> std::net::TcpStream {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut hello = PREFACE.to_vec();
        frame(&mut hello, SETTINGS, 0, 0, &[]);
        s.write_all(&hello).unwrap();
        s
    }

    /// Writes `bytes` (ignoring a reset: the server may close mid-way), then reads frames
    /// until GOAWAY (its error code) or the end of the connection (`None`).
    pub fn send_until_goaway(s: &mut std::net::TcpStream, bytes: &[u8]) -> Option<u32> {
        let _ = s.write_all(bytes);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                if buf[3] == GOAWAY {
                    let p = &buf[9..9 + len];
                    return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
                }
                buf.drain(..9 + len);
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Polls `f` until it gives a value (a generous ceiling, not a timing assertion); the last
/// attempt's panic message says what was never reached.
fn eventually<T>(f: impl Fn() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn rapid_reset_ends_the_connection_with_enhance_your_calm(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| respond(ex, 200, b"ok"));
    let (engine, port) = start(with_loop(mode), 1, handler);
    let mut s = raw::connect(port);
    let mut bytes = Vec::new();
    for i in 0..2000u32 {
        let stream = 1 + 2 * i;
        raw::frame(
            &mut bytes,
            raw::HEADERS,
            raw::END_STREAM | raw::END_HEADERS,
            stream,
            raw::GET_BLOCK,
        );
        raw::frame(&mut bytes, raw::RST_STREAM, 0, stream, &8u32.to_be_bytes());
    }
    assert_eq!(
        raw::send_until_goaway(&mut s, &bytes),
        Some(ENHANCE_YOUR_CALM)
    );
    // The connection task counts the abuse once the GOAWAY is out: wait for it.
    let stats = eventually(|| Some(engine.stats()).filter(|s| s.h2_abuse >= 1));
    assert!(stats.h2_abuse >= 1, "{stats:?}");
    assert!(stats.h2_streams_reset >= 1, "{stats:?}");
    // Far fewer than the 2000 streams reached the application.
    assert!(stats.requests_total < 2000, "{stats:?}");
}

fn continuation_and_ping_floods_end_the_connection(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| respond(ex, 200, b"ok"));
    let (engine, port) = start(with_loop(mode), 1, handler);

    let mut s = raw::connect(port);
    let mut bytes = Vec::new();
    raw::frame(
        &mut bytes,
        raw::HEADERS,
        raw::END_STREAM,
        1,
        &raw::GET_BLOCK[..2],
    );
    for _ in 0..1000 {
        raw::frame(&mut bytes, raw::CONTINUATION, 0, 1, &[]);
    }
    assert_eq!(
        raw::send_until_goaway(&mut s, &bytes),
        Some(ENHANCE_YOUR_CALM)
    );

    let mut s = raw::connect(port);
    let mut bytes = Vec::new();
    for _ in 0..1000 {
        raw::frame(&mut bytes, raw::PING, 0, 0, b"pingpong");
    }
    assert_eq!(
        raw::send_until_goaway(&mut s, &bytes),
        Some(ENHANCE_YOUR_CALM)
    );
    let stats = eventually(|| Some(engine.stats()).filter(|s| s.h2_abuse >= 2));
    assert_eq!(stats.h2_abuse, 2);

    // Other connections are served as before.
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        let (parts, _, _) = exchange(&mut client, request("GET", "/"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
    });
}

fn grpc_request(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Answers each piece of a streamed body with a DATA frame of its own as soon as it arrives,
/// then ends with `grpc-status` trailers.
fn echo_as_it_arrives(ex: &mut Exchange) {
    let Body::Stream(stream) = std::mem::replace(&mut ex.body, Body::Memory(Vec::new())) else {
        respond(ex, 500, b"not streamed");
        return;
    };
    let mut head = HeadBuilder::new(200, 64).unwrap();
    head.header(b"content-type", b"application/grpc").unwrap();
    let msg = ex.response.encode_stream_head(head).unwrap();
    ex.response.send(msg).unwrap();
    while let Ok(hyperion_engine::Read::Data(chunk)) = stream.next() {
        let msg = ex.response.encode_chunk(&chunk).unwrap().unwrap();
        ex.response.send(msg).unwrap();
    }
    let trailers = [(b"grpc-status".to_vec(), b"0".to_vec())];
    let msg = ex
        .response
        .encode_end_with_trailers(trailer_map(&trailers).unwrap())
        .unwrap();
    ex.response.send(msg).unwrap();
}

fn grpc_request_bodies_reach_the_app_as_they_arrive(mode: IoUring) {
    let handler: Handler = Arc::new(echo_as_it_arrives);
    let (_engine, port) = start(with_loop(mode), 1, handler);
    runtime().block_on(async {
        let client = connect(port, None).await;
        let mut client = client.ready().await.unwrap();
        let (response, mut send) = client.send_request(grpc_request("/rpc"), false).unwrap();
        send.send_data(Bytes::from_static(b"ping"), false).unwrap();
        let (parts, mut recv) = response.await.unwrap().into_parts();
        assert_eq!(parts.status, 200);
        // The reply to the first piece arrives while the request body is still open: the
        // exchange was dispatched at HEADERS and reads DATA as it comes.
        assert_eq!(recv.data().await.unwrap().unwrap(), "ping");
        send.send_data(Bytes::from_static(b"pong"), true).unwrap();
        assert_eq!(recv.data().await.unwrap().unwrap(), "pong");
        assert!(recv.data().await.is_none());
        assert_eq!(recv.trailers().await.unwrap().unwrap()["grpc-status"], "0");
    });
}

fn a_streamed_request_body_is_paced_by_the_reader(mode: IoUring) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let handler: Handler = Arc::new(move |ex| {
        if ex.path() == b"/warm-up" {
            return respond(ex, 200, b"");
        }
        g.wait();
        let body = body_bytes(ex);
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        respond(ex, 200, format!("{} {sum}", body.len()).as_bytes());
    });
    let mut config = with_loop(mode);
    config.h2.initial_window_size = 16_384;
    let (_engine, port) = start(config, 1, handler);
    let upload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected: u64 = upload.iter().map(|&b| b as u64).sum();
    runtime().block_on(async {
        let mut client = connect(port, None).await;
        // One exchange first, so the server's SETTINGS (its 16 KiB window) are in effect.
        exchange(&mut client, request("GET", "/warm-up"), None)
            .await
            .unwrap();
        let mut client = client.ready().await.unwrap();
        let (response, mut send) = client.send_request(grpc_request("/up"), false).unwrap();
        let mut body = Bytes::from(upload);
        // The stream's window is all the client gets while the application reads nothing.
        let mut sent = 0;
        loop {
            send.reserve_capacity(body.len());
            let wait = std::future::poll_fn(|cx| send.poll_capacity(cx));
            let n = match tokio::time::timeout(Duration::from_millis(300), wait).await {
                Ok(Some(n)) => n.unwrap(),
                _ => break,
            };
            let chunk = body.split_to(n.min(body.len()));
            sent += chunk.len();
            send.send_data(chunk, false).unwrap();
        }
        assert_eq!(sent, 16_384);
        gate.open();
        send_all(&mut send, body).await.unwrap();
        let (parts, mut recv) = response.await.unwrap().into_parts();
        assert_eq!(parts.status, 200);
        let mut out = Vec::new();
        while let Some(chunk) = recv.data().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(out, format!("200000 {expected}").as_bytes());
    });
}

fn a_reset_fails_the_reader_of_a_streamed_body(mode: IoUring) {
    let (read_tx, read_rx) = std::sync::mpsc::channel();
    let (tx, rx) = std::sync::mpsc::channel();
    let read_tx = Mutex::new(read_tx);
    let tx = Mutex::new(tx);
    let handler: Handler = Arc::new(move |ex| {
        let Body::Stream(stream) = &ex.body else {
            panic!("not streamed");
        };
        let first = stream.next();
        read_tx.lock().unwrap().send(()).unwrap();
        let after_reset = stream.next();
        tx.lock().unwrap().send((first, after_reset)).unwrap();
    });
    let (_engine, port) = start(with_loop(mode), 1, handler);
    let (first, after_reset) = runtime()
        .block_on(async {
            let client = connect(port, None).await;
            let mut client = client.ready().await.unwrap();
            let (_response, mut send) = client.send_request(grpc_request("/rpc"), false).unwrap();
            send.send_data(Bytes::from_static(b"part"), false).unwrap();
            // The reset comes once the application is reading the body.
            let read =
                tokio::task::spawn_blocking(move || read_rx.recv_timeout(Duration::from_secs(10)));
            read.await.unwrap().unwrap();
            send.send_reset(Reason::CANCEL);
            // Keep the connection up until the application has seen the reset.
            let wait =
                tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)));
            wait.await.unwrap()
        })
        .unwrap();
    assert_eq!(
        first,
        Ok(hyperion_engine::Read::Data(Bytes::from_static(b"part")))
    );
    assert_eq!(after_reset, Err(hyperion_engine::InputError::Reset));
}

fn a_streamed_body_past_max_body_bytes_fails_the_reader(mode: IoUring) {
    let handler: Handler = Arc::new(|ex| {
        let Body::Stream(stream) = std::mem::replace(&mut ex.body, Body::Memory(Vec::new())) else {
            return respond(ex, 500, b"not streamed");
        };
        let mut read = 0;
        let outcome = loop {
            match stream.next() {
                Ok(hyperion_engine::Read::Data(chunk)) => read += chunk.len(),
                Ok(hyperion_engine::Read::Eof) => break "eof".to_string(),
                Ok(hyperion_engine::Read::Interrupted) => continue,
                Err(e) => break format!("{e:?}"),
            }
        };
        respond(ex, 200, format!("{read} {outcome}").as_bytes());
    });
    let mut config = with_loop(mode);
    config.limits.max_body_bytes = 10;
    let (_engine, port) = start(config, 1, handler);
    runtime().block_on(async {
        let client = connect(port, None).await;
        let mut client = client.ready().await.unwrap();
        let (response, mut send) = client.send_request(grpc_request("/rpc"), false).unwrap();
        send.send_data(Bytes::from_static(b"0123456"), false)
            .unwrap();
        send.send_data(Bytes::from_static(b"789abc"), false)
            .unwrap();
        let (parts, mut recv) = response.await.unwrap().into_parts();
        assert_eq!(parts.status, 200);
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = recv.data().await {
            out.extend_from_slice(&chunk);
        }
        // The bytes within the limit were read; the frame that crossed it failed the body.
        assert_eq!(out, b"7 TooLarge");

        // A declared length over the limit is refused before the application is called.
        let mut req = grpc_request("/rpc");
        req.headers_mut()
            .insert("content-length", "11".parse().unwrap());
        let mut client = client.ready().await.unwrap();
        let (response, _send) = client.send_request(req, false).unwrap();
        assert_eq!(response.await.unwrap().status(), 413);
    });
}
