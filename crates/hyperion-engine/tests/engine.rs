//! The engine driven end to end by a Rust application over real sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hyperion_engine::{
    Body, Engine, EngineConfig, Exchange, HeadBuilder, IoUring, ListenSpec, Pop, ResponseMsg,
    WaitToken,
};

mod common;
use common::{io_uring_available, tcp, with_loop};

both_loops!(
    keep_alive_and_pipelined_requests_are_answered_in_order,
    chunked_request_body_is_decoded_before_dispatch,
    malformed_request_gets_400_and_the_connection_closes,
    full_queue_answers_503_with_retry_after,
    idle_connections_are_closed_after_idle_keepalive,
    graceful_stop_finishes_in_flight_requests_and_refuses_new_connections,
    graceful_timeout_cuts_requests_that_take_too_long,
    request_read_timeout_answers_408_to_a_stalled_head,
    streamed_response_is_chunked_and_coalesced_with_its_end,
    unix_socket_listener_serves_and_removes_its_file,
    large_bodies_spill_to_a_temp_file_and_arrive_intact,
    file_responses_go_out_with_sendfile_and_keep_alive,
    full_hijack_hands_over_the_socket_with_the_bytes_read_ahead,
    partial_hijack_writes_the_head_then_hands_over,
    written_notice_arrives_after_the_response_is_written,
    rejections_are_counted_by_reason,
    static_routes_are_answered_by_the_io_thread_and_handlers_are_tagged,
    expect_continue_is_answered_before_the_body_is_read,
    stalled_body_gets_408,
    a_client_that_stops_reading_is_dropped_after_write_timeout,
    a_long_pipeline_is_answered_in_order,
    every_response_is_reported_once_with_status_bytes_and_path,
    every_application_thread_takes_a_request_while_the_others_wait,
);

/// Starts `threads` application threads answering every exchange with `handler`.
fn start(config: EngineConfig, threads: usize, handler: fn(&mut Exchange)) -> (Arc<Engine>, u16) {
    let expected = match config.io_uring {
        IoUring::Off => "epoll",
        _ => "io_uring",
    };
    let engine = Arc::new(Engine::start(config, &tcp()).expect("bind"));
    assert_eq!(engine.io_loop().0, expected);
    common::app_threads(&engine, threads, handler);
    let port = engine.ports()[0];
    (engine, port)
}

fn respond(ex: &mut Exchange, status: i64, body: &[u8]) {
    let mut head = HeadBuilder::new(status, 128).unwrap();
    head.header(b"content-type", b"text/plain").unwrap();
    let msg = ex
        .response
        .encode_full(head, body.len() as u64, |b| b.extend_from_slice(body))
        .unwrap();
    ex.response.send(msg).unwrap();
}

/// Echoes "METHOD PATH BODY".
fn echo(ex: &mut Exchange) {
    let mut out = Vec::new();
    out.extend_from_slice(ex.method());
    out.push(b' ');
    out.extend_from_slice(ex.path());
    out.push(b' ');
    out.extend_from_slice(&body_bytes(ex));
    respond(ex, 200, &out);
}

/// The request body, wherever the engine stored it.
fn body_bytes(ex: &mut Exchange) -> Vec<u8> {
    match &mut ex.body {
        Body::Memory(bytes) => bytes.clone(),
        Body::File { file, .. } => {
            let mut out = Vec::new();
            file.read_to_end(&mut out).unwrap();
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

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `n` complete responses (content-length framed) have arrived or EOF.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(u16, String)> {
    let mut data = Vec::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        // Parse what we have.
        out.clear();
        let mut rest = &data[..];
        while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&rest[..end]).unwrap();
            let status: u16 = head[9..12].parse().unwrap();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map(|v| v.parse::<usize>().unwrap())
                .unwrap_or(0);
            if rest.len() < end + 4 + len {
                break;
            }
            out.push((
                status,
                String::from_utf8_lossy(&rest[end + 4..end + 4 + len]).into_owned(),
            ));
            rest = &rest[end + 4 + len..];
        }
        if out.len() >= n {
            return out;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(k) => data.extend_from_slice(&buf[..k]),
        }
    }
}

fn keep_alive_and_pipelined_requests_are_answered_in_order(mode: IoUring) {
    let (_engine, port) = start(with_loop(mode), 4, echo);
    let mut s = connect(port);
    s.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let got = read_responses(&mut s, 3);
    assert_eq!(
        got,
        vec![
            (200, "GET /one ".to_string()),
            (200, "POST /two abc".to_string()),
            (200, "GET /three ".to_string())
        ]
    );
    // Still open: a fourth request on the same socket.
    s.write_all(b"GET /four HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        vec![(200, "GET /four ".to_string())]
    );
}

fn chunked_request_body_is_decoded_before_dispatch(mode: IoUring) {
    let (_engine, port) = start(with_loop(mode), 1, echo);
    let mut s = connect(port);
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));
    s.write_all(b"6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        vec![(200, "POST /up hello world".to_string())]
    );
}

fn malformed_request_gets_400_and_the_connection_closes(mode: IoUring) {
    let (engine, port) = start(with_loop(mode), 1, echo);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\naGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 400 "), "{all}");
    assert!(all.contains("connection: close"), "{all}");
    assert!(
        !all.contains("smuggled") && all.matches("HTTP/1.1").count() == 1,
        "{all}"
    );
    assert_eq!(engine.stats().parse_errors, 1);
    assert_eq!(engine.stats().requests_total, 0);
}

fn full_queue_answers_503_with_retry_after(mode: IoUring) {
    let config = EngineConfig {
        max_pending: 1,
        // The queued exchange is never answered; do not wait long for it when dropping.
        graceful_timeout: Duration::from_millis(100),
        ..with_loop(mode)
    };
    // No application thread: the first exchange fills the queue.
    let (engine, port) = start(config, 0, echo);
    let mut first = connect(port);
    first
        .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    while engine.queue().is_empty() {
        thread::sleep(Duration::from_millis(5));
    }
    let mut second = connect(port);
    second
        .write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = second.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("retry-after: 1\r\n"), "{text}");
    assert_eq!(engine.stats().rejected, 1);
}

/// Requests that arrive together while every application thread waits must each wake one:
/// the handler answers 200 only once GATHERED requests for its path are inside handlers at
/// the same time (503 if they have not met within 10 s).
const GATHERED: usize = 4;

fn gather(ex: &mut Exchange) {
    use std::collections::HashMap;
    use std::sync::{Condvar, Mutex, OnceLock};
    type Arrivals = (Mutex<HashMap<Vec<u8>, usize>>, Condvar);
    static MET: OnceLock<Arrivals> = OnceLock::new();
    let (lock, arrived) = MET.get_or_init(|| (Mutex::new(HashMap::new()), Condvar::new()));
    let key = ex.path().to_vec();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut inside = lock.lock().unwrap();
    *inside.entry(key.clone()).or_insert(0) += 1;
    arrived.notify_all();
    while inside[&key] < GATHERED {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        inside = arrived.wait_timeout(inside, left).unwrap().0;
    }
    let met = inside[&key] >= GATHERED;
    drop(inside);
    respond(ex, if met { 200 } else { 503 }, b"");
}

fn every_application_thread_takes_a_request_while_the_others_wait(mode: IoUring) {
    let (_engine, port) = start(with_loop(mode), GATHERED, gather);
    let request = format!("GET /gather-{mode:?} HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut clients: Vec<TcpStream> = (0..GATHERED).map(|_| connect(port)).collect();
    for c in &mut clients {
        c.write_all(request.as_bytes()).unwrap();
    }
    for c in &mut clients {
        let answers = read_responses(c, 1);
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].0, 200,
            "not every application thread took a request"
        );
    }
}

fn idle_connections_are_closed_after_idle_keepalive(mode: IoUring) {
    let config = EngineConfig {
        idle_keepalive: Duration::from_millis(200),
        ..with_loop(mode)
    };
    let (_engine, port) = start(config, 1, echo);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut s, 1).len(), 1);
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap(),
        0,
        "server closes the idle connection"
    );
}

fn graceful_stop_finishes_in_flight_requests_and_refuses_new_connections(mode: IoUring) {
    fn slow(ex: &mut Exchange) {
        thread::sleep(Duration::from_millis(300));
        respond(ex, 200, b"finished");
    }
    let (engine, port) = start(with_loop(mode), 2, slow);
    let mut busy = connect(port);
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut idle = connect(port);
    while engine.stats().requests_total == 0 {
        thread::sleep(Duration::from_millis(5));
    }
    engine.stop();
    let got = read_responses(&mut busy, 1);
    assert_eq!(got, vec![(200, "finished".to_string())]);
    let mut buf = [0u8; 16];
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "idle connection closed on stop"
    );
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener closed"
    );
    assert!(engine.queue().is_closed());
}

fn graceful_timeout_cuts_requests_that_take_too_long(mode: IoUring) {
    fn stuck(ex: &mut Exchange) {
        thread::sleep(Duration::from_secs(3));
        respond(ex, 200, b"late");
    }
    let config = EngineConfig {
        graceful_timeout: Duration::from_millis(200),
        ..with_loop(mode)
    };
    let (engine, port) = start(config, 1, stuck);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    while engine.stats().requests_total == 0 {
        thread::sleep(Duration::from_millis(5));
    }
    engine.stop();
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "no response after the graceful timeout");
}

fn request_read_timeout_answers_408_to_a_stalled_head(mode: IoUring) {
    let config = EngineConfig {
        request_read_timeout: Duration::from_millis(200),
        ..with_loop(mode)
    };
    let (engine, port) = start(config, 1, echo);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("HTTP/1.1 408 "), "{all}");
    assert_eq!(engine.stats().read_timeouts, 1);
}

fn streamed_response_is_chunked_and_coalesced_with_its_end(mode: IoUring) {
    fn stream(ex: &mut Exchange) {
        let head = HeadBuilder::new(200, 64).unwrap();
        let msg = ex.response.encode_stream_head(head).unwrap();
        ex.response.send(msg).unwrap();
        for part in [&b"ab"[..], b"cde"] {
            let msg = ex.response.encode_chunk(part).unwrap().unwrap();
            ex.response.send(msg).unwrap();
        }
        let msg = ex.response.encode_end().unwrap();
        ex.response.send(msg).unwrap();
    }
    let (_engine, port) = start(with_loop(mode), 1, stream);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.ends_with(b"0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "unexpected EOF");
        data.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(data).unwrap();
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{text}"
    );
}

fn unix_socket_listener_serves_and_removes_its_file(mode: IoUring) {
    use std::os::unix::net::UnixStream;
    let dir = std::env::temp_dir().join(format!("hyperion-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let engine =
        Engine::start(with_loop(mode), &[ListenSpec::Unix { path: path.clone() }]).unwrap();
    let queue = engine.queue().clone();
    thread::spawn(move || {
        let token = WaitToken::new();
        while let Pop::Exchange(mut ex) = queue.pop(&token, None) {
            echo(&mut ex);
        }
    });
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"GET /unix HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200 ") && all.ends_with("GET /unix "),
        "{all}"
    );
    engine.stop();
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
    assert!(!path.exists(), "socket file removed on stop");
    let _ = std::fs::remove_dir_all(&dir);
}

fn large_bodies_spill_to_a_temp_file_and_arrive_intact(mode: IoUring) {
    fn where_stored(ex: &mut Exchange) {
        let kind: &[u8] = match ex.body {
            Body::Memory(_) => b"memory ",
            Body::File { .. } => b"file ",
            Body::Stream(_) => b"stream ",
        };
        let mut out = kind.to_vec();
        let body = body_bytes(ex);
        out.extend_from_slice(
            format!(
                "{} {}",
                body.len(),
                body.iter().map(|&b| b as u64).sum::<u64>()
            )
            .as_bytes(),
        );
        respond(ex, 200, &out);
    }
    let config = EngineConfig {
        max_in_memory_body_bytes: 1000,
        ..with_loop(mode)
    };
    let (_engine, port) = start(config, 1, where_stored);
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = payload.iter().map(|&b| b as u64).sum();

    let mut s = connect(port);
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n".to_vec();
    req.extend_from_slice(&payload);
    // A small one on the same connection stays in memory.
    req.extend_from_slice(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    s.write_all(&req).unwrap();
    let got = read_responses(&mut s, 2);
    assert_eq!(got[0], (200, format!("file 5000 {sum}")));
    assert_eq!(
        got[1],
        (
            200,
            format!("memory 3 {}", b"abc".iter().map(|&b| b as u64).sum::<u64>())
        )
    );

    // Chunked: decoded into the file as it grows.
    let mut s = connect(port);
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in payload.chunks(700) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        vec![(200, format!("file 5000 {sum}"))]
    );
}

fn file_responses_go_out_with_sendfile_and_keep_alive(mode: IoUring) {
    fn send_file(ex: &mut Exchange) {
        let path = std::env::temp_dir().join(format!("hyperion-sendfile-{}", std::process::id()));
        let content: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut head = HeadBuilder::new(200, 128).unwrap();
        head.header(b"content-type", b"text/plain").unwrap();
        let msg = ex
            .response
            .encode_file(head, file, content.len() as u64)
            .unwrap();
        assert!(matches!(msg, ResponseMsg::File { .. }) != ex.response.is_head_request());
        ex.response.send(msg).unwrap();
    }
    let (_engine, port) = start(with_loop(mode), 1, send_file);
    let mut s = connect(port);
    s.write_all(b"GET /f HTTP/1.1\r\nHost: a\r\n\r\nHEAD /f HTTP/1.1\r\nHost: a\r\n\r\nGET /f HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let expected: String = (0..300_000u32)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    // The HEAD response announces the length but carries no body, so the reader would take the
    // next response's bytes as its body: read the three by hand.
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    let total = 2 * (expected.len()) + 3 * 60;
    while data.len() < total {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => data.extend_from_slice(&buf[..k]),
        }
        let text = String::from_utf8_lossy(&data);
        if text.matches(&expected[..]).count() == 2 && text.matches("HTTP/1.1 200").count() == 3 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3);
    assert_eq!(text.matches("content-length: 300000").count(), 3);
    assert_eq!(text.matches(&expected[..]).count(), 2);
}

fn full_hijack_hands_over_the_socket_with_the_bytes_read_ahead(mode: IoUring) {
    fn hijack(ex: &mut Exchange) {
        let (msg, rx) = ex.response.hijack().unwrap();
        ex.response.send(msg).unwrap();
        let got = rx.recv().unwrap();
        let mut sock = std::fs::File::from(got.fd);
        let mut reply = b"hijacked; ahead=".to_vec();
        reply.extend_from_slice(&got.buffered);
        sock.write_all(&reply).unwrap();
        // The engine no longer owns the socket: closing is ours.
    }
    let (engine, port) = start(with_loop(mode), 1, hijack);
    let mut s = connect(port);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\n\r\nextra bytes")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "hijacked; ahead=extra bytes");
    // The connection no longer counts as the engine's.
    for _ in 0..100 {
        if engine.stats().connections_active == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(engine.stats().connections_active, 0);
}

fn partial_hijack_writes_the_head_then_hands_over(mode: IoUring) {
    fn upgrade(ex: &mut Exchange) {
        let mut head = HeadBuilder::new(101, 128).unwrap();
        head.header(b"upgrade", b"echo").unwrap();
        head.header(b"connection", b"Upgrade").unwrap();
        let msg = ex.response.encode_upgrade_head(head).unwrap();
        ex.response.send(msg).unwrap();
        let (msg, rx) = ex.response.hijack().unwrap();
        ex.response.send(msg).unwrap();
        let got = rx.recv().unwrap();
        let mut sock = std::fs::File::from(got.fd);
        let mut buf = [0u8; 4];
        sock.read_exact(&mut buf).unwrap();
        sock.write_all(&buf).unwrap();
    }
    let (_engine, port) = start(with_loop(mode), 1, upgrade);
    let mut s = connect(port);
    s.write_all(b"GET /e HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("connection: Upgrade\r\n"));
    assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
    s.write_all(b"ping").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "ping");
}

fn written_notice_arrives_after_the_response_is_written(mode: IoUring) {
    fn notified(ex: &mut Exchange) {
        let rx = ex.response.request_written_notice();
        respond(ex, 200, b"done");
        let written = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(written);
    }
    let (_engine, port) = start(with_loop(mode), 1, notified);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut s, 1), vec![(200, "done".to_string())]);
}

fn rejections_are_counted_by_reason(mode: IoUring) {
    let (engine, port) = start(with_loop(mode), 1, echo);
    for req in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let mut s = connect(port);
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(out.starts_with(b"HTTP/1.1 400"));
    }
    let reasons = engine.rejections_by_reason();
    assert!(reasons.contains(&("invalid_header_char", 1)), "{reasons:?}");
    assert!(reasons.contains(&("missing_host", 1)), "{reasons:?}");
}

fn static_routes_are_answered_by_the_io_thread_and_handlers_are_tagged(mode: IoUring) {
    use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
    use hyperion_engine::Direct;
    fn tagged(ex: &mut Exchange) {
        let tag = match ex.direct {
            Direct::Handler(id) => format!("handler {id}"),
            Direct::None => "rack".to_string(),
            Direct::Static { .. } => "static".to_string(),
        };
        respond(ex, 200, tag.as_bytes());
    }
    let routes = Arc::new(RouteTable::new());
    routes.add_static(
        Method::Get,
        b"/health",
        StaticResponse::new(
            200,
            &[(b"content-type".to_vec(), b"text/plain".to_vec())],
            b"ok".to_vec(),
        )
        .unwrap(),
    );
    let big = vec![b'z'; 100_000];
    routes.add_static(
        Method::Get,
        b"/big",
        StaticResponse::new(200, &[], big.clone()).unwrap(),
    );
    routes.add_handler(Method::Post, b"/ping", 3);
    let config = EngineConfig {
        routes: routes.clone(),
        ..with_loop(mode)
    };
    // No application thread at all: static routes must not need one.
    let (engine, port) = start(config, 0, tagged);
    let mut s = connect(port);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let got = read_responses(&mut s, 3);
    assert_eq!(got[0], (200, "ok".to_string()));
    assert_eq!(got[1], (200, "ok".to_string()));
    assert_eq!(got[2].1.len(), 100_000);
    let stats = engine.stats();
    assert_eq!(stats.dispatch_static, 3);
    drop(s);

    // With threads, other routes reach the application tagged with their handler.
    let config = EngineConfig {
        routes,
        ..with_loop(mode)
    };
    let (_engine, port) = start(config, 1, tagged);
    let mut s = connect(port);
    s.write_all(b"POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_responses(&mut s, 2),
        vec![(200, "handler 3".to_string()), (200, "rack".to_string())]
    );
}

fn expect_continue_is_answered_before_the_body_is_read(mode: IoUring) {
    let (_engine, port) = start(with_loop(mode), 1, echo);
    let mut s = connect(port);
    s.write_all(
        b"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"data").unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        vec![(200, "POST /c data".to_string())]
    );
}

fn stalled_body_gets_408(mode: IoUring) {
    let config = EngineConfig {
        request_read_timeout: Duration::from_millis(200),
        ..with_loop(mode)
    };
    let (engine, port) = start(config, 1, echo);
    let mut s = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("HTTP/1.1 408 "), "{all}");
    assert_eq!(engine.stats().read_timeouts, 1);
    assert_eq!(engine.stats().requests_total, 0);
}

fn a_client_that_stops_reading_is_dropped_after_write_timeout(mode: IoUring) {
    fn flood(ex: &mut Exchange) {
        respond(ex, 200, &vec![b'x'; 64 << 20]);
    }
    let config = EngineConfig {
        write_timeout: Duration::from_millis(200),
        ..with_loop(mode)
    };
    let (engine, port) = start(config, 1, flood);
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    // Never read: the server's writes stall, then it gives up on the client.
    for _ in 0..500 {
        if engine.stats().requests_total == 1 && engine.stats().connections_active == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(engine.stats().connections_active, 0);
    drop(s);
}

#[test]
fn io_loop_reports_which_loop_runs_and_why() {
    let off = Engine::start(EngineConfig::default(), &tcp()).unwrap();
    assert_eq!(off.io_loop(), ("epoll", "io_uring is off".to_string()));
    let auto = Engine::start(with_loop(IoUring::Auto), &tcp()).unwrap();
    let (name, reason) = auto.io_loop();
    assert!(!reason.is_empty());
    let expected = if io_uring_available() {
        "io_uring"
    } else {
        "epoll"
    };
    assert_eq!(name, expected, "{reason}");
}

fn a_long_pipeline_is_answered_in_order(mode: IoUring) {
    // Far more than the engine reads ahead while the application answers.
    let (_engine, port) = start(with_loop(mode), 2, echo);
    let mut s = connect(port);
    let count = 3000;
    let mut pipeline = Vec::new();
    for i in 0..count {
        pipeline.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    let mut writer = s.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(&pipeline).unwrap());
    let got = read_responses(&mut s, count);
    sender.join().unwrap();
    assert_eq!(got.len(), count);
    for (i, (status, body)) in got.iter().enumerate() {
        assert_eq!(
            (*status, body.as_str()),
            (200, format!("GET /{i} ").as_str())
        );
    }
}

/// Epoll loop only: the idle-connection grace while stopping is a property of that loop.
#[test]
fn request_arriving_on_an_idle_connection_while_stopping_is_answered_then_closed() {
    let (engine, port) = start(EngineConfig::default(), 1, echo);
    let mut s = connect(port);
    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut s, 1), vec![(200, "GET /first ".into())]);
    // The client cannot know the server is stopping: its next request may already be on the
    // wire. It is answered (with connection: close), not cut off.
    engine.stop();
    s.write_all(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 "), "{all}");
    assert!(all.contains("connection: close\r\n"), "{all}");
    assert!(all.ends_with("GET /second "), "{all}");
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
}

/// Application threads for an engine started by hand.
fn serve_echo(engine: &Engine) {
    let queue = engine.queue().clone();
    thread::spawn(move || {
        let token = WaitToken::new();
        while let Pop::Exchange(mut ex) = queue.pop(&token, None) {
            echo(&mut ex);
        }
    });
}

#[test]
fn listening_descriptor_is_served_and_left_to_its_owner() {
    use std::os::fd::AsRawFd;
    let owner = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = owner.local_addr().unwrap().port();
    let engine = Engine::start(
        EngineConfig::default(),
        &[ListenSpec::Fd {
            fd: owner.as_raw_fd(),
        }],
    )
    .unwrap();
    assert_eq!(engine.ports(), &[port]);
    assert_eq!(engine.addresses(), &[format!("http://127.0.0.1:{port}")]);
    serve_echo(&engine);

    let mut s = connect(port);
    s.write_all(b"GET /fd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200 ") && all.ends_with("GET /fd "),
        "{all}"
    );

    engine.stop();
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
    // The engine closed only its duplicate: the owner's socket still queues connections.
    let _queued = connect(port);
    let (_accepted, _) = owner.accept().unwrap();
}

#[test]
fn listening_unix_descriptor_keeps_its_socket_file() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("hyperion-engine-fd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let owner = UnixListener::bind(&path).unwrap();
    let engine = Engine::start(
        EngineConfig::default(),
        &[ListenSpec::Fd {
            fd: owner.as_raw_fd(),
        }],
    )
    .unwrap();
    assert_eq!(engine.addresses(), &[format!("unix://{}", path.display())]);
    serve_echo(&engine);

    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"GET /unix-fd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.ends_with("GET /unix-fd "), "{all}");

    engine.stop();
    assert!(engine.wait_stopped(&WaitToken::new(), Some(Duration::from_secs(10))));
    assert!(path.exists(), "the owner's socket file stays");
    drop(owner);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn descriptor_that_is_not_a_listening_socket_is_refused() {
    use std::os::fd::AsRawFd;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let unlistened =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let mut fds = vec![-1, udp.as_raw_fd()];
    if cfg!(target_os = "linux") {
        fds.push(unlistened.as_raw_fd());
    }
    for fd in fds {
        let err = Engine::start(EngineConfig::default(), &[ListenSpec::Fd { fd }])
            .err()
            .unwrap_or_else(|| panic!("descriptor {fd} accepted"));
        assert!(
            err.kind() == std::io::ErrorKind::InvalidInput || err.raw_os_error().is_some(),
            "{err}"
        );
    }
}

/// The completion point: app responses (full and streamed), static routes, 404s and parse
/// errors are each counted by status, timed in the histogram under their templated path and
/// written to the access log, on both loops.
fn every_response_is_reported_once_with_status_bytes_and_path(mode: IoUring) {
    use hyperion_engine::log::{Format, LogConfig};
    use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
    fn app(ex: &mut Exchange) {
        match ex.path() {
            b"/missing" => respond(ex, 404, b"no"),
            b"/stream" => {
                let head = HeadBuilder::new(201, 64).unwrap();
                let msg = ex.response.encode_stream_head(head).unwrap();
                ex.response.send(msg).unwrap();
                if let Some(msg) = ex.response.encode_chunk(b"part").unwrap() {
                    ex.response.send(msg).unwrap();
                }
                let end = ex.response.encode_end().unwrap();
                ex.response.send(end).unwrap();
            }
            _ => respond(ex, 200, b"hello"),
        }
    }
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let routes = Arc::new(RouteTable::new());
    routes.add_static(
        Method::Get,
        b"/health",
        StaticResponse::new(200, &[], b"ok".to_vec()).unwrap(),
    );
    let config = EngineConfig {
        routes,
        log: LogConfig {
            format: Format::Json,
            out_fd: fds[1],
            access_log: true,
            ..LogConfig::default()
        },
        ..with_loop(mode)
    };
    let (engine, port) = start(config, 1, app);
    let mut s = connect(port);
    s.write_all(
        b"GET /users/12 HTTP/1.1\r\nHost: a\r\nX-Request-Id: req-77\r\n\r\n\
          GET /users/13 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /health HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let answers = read_responses(&mut s, 4);
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [200, 200, 200, 404]
    );
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut streamed = Vec::new();
    let mut buf = [0u8; 4096];
    while !streamed.ends_with(b"0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        streamed.extend_from_slice(&buf[..n]);
    }
    let mut bad = connect(port);
    bad.write_all(b"NOT HTTP\r\n\r\n").unwrap();
    let mut rest = String::new();
    bad.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 400 "), "{rest}");

    // Reported when the last byte is written, which the client may see first.
    let mut lines = String::new();
    let mut reader = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    while lines.lines().count() < 6 {
        let n = reader.read(&mut buf).unwrap();
        lines.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    let find = |path: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("\"path\":\"{path}\"")))
            .unwrap_or_else(|| panic!("no line for {path}: {lines:?}"))
    };
    let first = find("/users/12");
    assert!(
        first.contains("\"message\":\"request\",\"method\":\"GET\""),
        "{first}"
    );
    assert!(first.contains("\"status\":200"), "{first}");
    assert!(first.contains("\"remote_addr\":\"127.0.0.1\""), "{first}");
    assert!(first.contains("\"http_version\":\"HTTP/1.1\""), "{first}");
    assert!(first.contains("\"request_id\":\"req-77\""), "{first}");
    assert!(first.contains("\"duration_ms\":"), "{first}");
    assert!(!find("/users/13").contains("request_id"));
    assert!(find("/health").contains("\"status\":200"));
    assert!(find("/missing").contains("\"status\":404"));
    assert!(find("/stream").contains("\"status\":201"));
    assert!(find("-").contains("\"status\":400"));

    let by_status: std::collections::HashMap<u16, u64> =
        engine.responses_by_status().into_iter().collect();
    assert_eq!(by_status.get(&200), Some(&3));
    assert_eq!(by_status.get(&201), Some(&1));
    assert_eq!(by_status.get(&404), Some(&1));
    assert_eq!(by_status.get(&400), Some(&1));
    let stats = engine.stats();
    assert_eq!(stats.requests_in_flight, 0);
    assert!(stats.bytes_written > 5 * 40, "{stats:?}");
    let text = engine.metrics_text();
    assert!(
        text.contains("hyperion_request_duration_seconds_count{worker_id=\"0\",method=\"GET\",path=\"/users/:id\",status=\"2xx\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("path=\"/health\",status=\"2xx\"} 1\n"));
    assert!(text.contains("path=\"/missing\",status=\"4xx\"} 1\n"));
    assert!(text.contains("hyperion_dispatch_total{worker_id=\"0\",kind=\"static\"} 1\n"));
    // The write end stays open: the engine's log thread may outlive this function briefly,
    // and a closed descriptor number could be reused under it by another test.
}
