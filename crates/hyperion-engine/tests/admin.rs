//! The admin endpoints (`/-/metrics`, `/-/quit`) over real sockets, on both connection loops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperion_engine::{
    AdminConfig, Engine, EngineConfig, Exchange, HeadBuilder, IoUring, WaitToken,
};

mod common;
use common::{tcp, with_loop};

const TOKEN: &str = "s3cret-admin-token-0123";

both_loops!(
    metrics_answer_with_a_valid_token_while_the_app_is_busy,
    a_missing_or_wrong_token_goes_to_the_application,
    a_repeated_token_header_goes_to_the_application,
    wrong_method_with_a_valid_token_gets_405_with_allow,
    head_of_metrics_has_no_body,
    quit_answers_202_and_stops_the_engine,
    quit_runs_the_configured_action,
    custom_metrics_renderer_is_used,
    admin_listener_serves_only_admin_paths,
    without_an_admin_config_the_paths_belong_to_the_application,
);

fn config(mode: IoUring, admin: Option<AdminConfig>) -> EngineConfig {
    EngineConfig {
        admin,
        graceful_timeout: Duration::from_secs(1),
        ..with_loop(mode)
    }
}

fn admin() -> AdminConfig {
    AdminConfig::new(TOKEN)
}

/// Starts `threads` application threads answering "app METHOD PATH" with status 404, the way
/// an application answers a path it does not know.
fn start(config: EngineConfig, threads: usize) -> (Arc<Engine>, u16) {
    let engine = Arc::new(Engine::start(config, &tcp()).expect("bind"));
    common::app_threads(&engine, threads, app);
    let port = engine.ports()[0];
    (engine, port)
}

fn app(ex: &mut Exchange) {
    let body = format!(
        "app {} {}",
        String::from_utf8_lossy(ex.method()),
        String::from_utf8_lossy(ex.path())
    );
    let mut head = HeadBuilder::new(404, 128).unwrap();
    head.header(b"content-type", b"text/plain").unwrap();
    let msg = ex
        .response
        .encode_full(head, body.len() as u64, |b| {
            b.extend_from_slice(body.as_bytes())
        })
        .unwrap();
    ex.response.send(msg).unwrap();
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }
}

/// Sends `request` on a new connection and reads one response (the body by content-length,
/// none for HEAD).
fn request(port: u16, request: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let mut reply = Reply {
                status: head[9..12].parse().unwrap(),
                head,
                body: String::new(),
            };
            let len: usize = if request.starts_with("HEAD ") {
                0
            } else {
                reply.header("content-length").unwrap().parse().unwrap()
            };
            while data.len() < end + 4 + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed mid-body");
                data.extend_from_slice(&buf[..n]);
            }
            reply.body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).into_owned();
            return reply;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before a response");
        data.extend_from_slice(&buf[..n]);
    }
}

fn get(port: u16, path: &str, token: Option<&str>) -> Reply {
    with_method(port, "GET", path, token)
}

fn with_method(port: u16, method: &str, path: &str, token: Option<&str>) -> Reply {
    let token = token
        .map(|t| format!("X-Hyperion-Admin-Token: {t}\r\n"))
        .unwrap_or_default();
    request(
        port,
        &format!("{method} {path} HTTP/1.1\r\nHost: a\r\n{token}Content-Length: 0\r\n\r\n"),
    )
}

fn metrics_answer_with_a_valid_token_while_the_app_is_busy(mode: IoUring) {
    // No application thread at all: whatever answers is the I/O thread.
    let (engine, port) = start(config(mode, Some(admin())), 0);
    let mut parked = TcpStream::connect(("127.0.0.1", port)).unwrap();
    parked
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let reply = get(port, "/-/metrics", Some(TOKEN));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(
        reply
            .body
            .contains("# TYPE hyperion_requests_total counter"),
        "{}",
        reply.body
    );
    // The parked request is still in flight while the scrape is answered.
    let in_flight: u64 = reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix("hyperion_requests_in_flight{worker_id=\"0\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no in-flight gauge in {}", reply.body));
    assert!(in_flight >= 1, "{}", reply.body);
    assert_eq!(engine.stats().dispatch_admin, 1);
}

fn a_missing_or_wrong_token_goes_to_the_application(mode: IoUring) {
    let (engine, port) = start(config(mode, Some(admin())), 2);
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(&TOKEN[..TOKEN.len() - 1]),
    ] {
        for path in ["/-/metrics", "/-/quit"] {
            let reply = get(port, path, token);
            assert_eq!((reply.status, reply.body), (404, format!("app GET {path}")));
        }
        let reply = with_method(port, "POST", "/-/quit", token);
        assert_eq!(reply.body, "app POST /-/quit");
    }
    assert!(!engine.is_stopping());
    assert_eq!(engine.stats().dispatch_admin, 0);
}

fn a_repeated_token_header_goes_to_the_application(mode: IoUring) {
    let (_engine, port) = start(config(mode, Some(admin())), 1);
    let reply = request(
        port,
        &format!(
            "GET /-/metrics HTTP/1.1\r\nHost: a\r\nX-Hyperion-Admin-Token: {TOKEN}\r\n\
             X-Hyperion-Admin-Token: {TOKEN}\r\n\r\n"
        ),
    );
    assert_eq!(reply.body, "app GET /-/metrics");
}

fn wrong_method_with_a_valid_token_gets_405_with_allow(mode: IoUring) {
    let (engine, port) = start(config(mode, Some(admin())), 1);
    let reply = with_method(port, "POST", "/-/metrics", Some(TOKEN));
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = get(port, "/-/quit", Some(TOKEN));
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    assert!(!engine.is_stopping());
    assert!(engine
        .rejections_by_reason()
        .contains(&("admin_method_not_allowed", 2)));
}

fn head_of_metrics_has_no_body(mode: IoUring) {
    let (_engine, port) = start(config(mode, Some(admin())), 1);
    let reply = with_method(port, "HEAD", "/-/metrics", Some(TOKEN));
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    let len: usize = reply.header("content-length").unwrap().parse().unwrap();
    assert!(len > 0);
}

fn quit_answers_202_and_stops_the_engine(mode: IoUring) {
    let (engine, port) = start(config(mode, Some(admin())), 1);
    let reply = with_method(port, "POST", "/-/quit", Some(TOKEN));
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = WaitToken::new();
    assert!(engine.wait_stopped(&token, Some(Duration::from_secs(10))));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn quit_runs_the_configured_action(mode: IoUring) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut admin = admin();
    admin.quit = Some(Arc::new(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let (engine, port) = start(config(mode, Some(admin)), 1);
    let reply = with_method(port, "POST", "/-/quit", Some(TOKEN));
    assert_eq!(reply.status, 202);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Stopping is the action's business (in a cluster: the master's).
    assert!(!engine.is_stopping());
}

fn custom_metrics_renderer_is_used(mode: IoUring) {
    let scrapes = Arc::new(Mutex::new(0u32));
    let counter = scrapes.clone();
    let mut admin = admin();
    admin.metrics = Some(Arc::new(move || {
        let mut n = counter.lock().unwrap();
        *n += 1;
        format!("custom_scrapes {n}\n")
    }));
    let (_engine, port) = start(config(mode, Some(admin)), 1);
    assert_eq!(
        get(port, "/-/metrics", Some(TOKEN)).body,
        "custom_scrapes 1\n"
    );
    assert_eq!(
        get(port, "/-/metrics", Some(TOKEN)).body,
        "custom_scrapes 2\n"
    );
}

fn admin_listener_serves_only_admin_paths(mode: IoUring) {
    let mut admin = admin();
    admin.listen = tcp();
    let (engine, port) = start(config(mode, Some(admin)), 1);
    let admin_port = engine.admin_ports()[0];
    assert_ne!(admin_port, port);
    assert_eq!(engine.ports(), &[port]);
    assert!(engine.admin_addresses()[0].starts_with("http://127.0.0.1:"));

    let reply = get(admin_port, "/-/metrics", Some(TOKEN));
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("hyperion_requests_total"));
    // Anything else is the engine's 404, token or not; admin paths still need the token.
    for (path, token) in [
        ("/", Some(TOKEN)),
        ("/-/metrics", None),
        ("/-/metrics", Some("wrong-token-0123456789")),
        ("/-/quit", None),
    ] {
        let reply = get(admin_port, path, token);
        assert_eq!((reply.status, reply.body.as_str()), (404, "Not Found\n"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    // The application listener no longer answers admin paths, even with the token.
    assert_eq!(
        get(port, "/-/metrics", Some(TOKEN)).body,
        "app GET /-/metrics"
    );
    let reasons = engine.rejections_by_reason();
    assert!(reasons.contains(&("admin_not_found", 1)), "{reasons:?}");
    assert!(reasons.contains(&("admin_unauthorized", 3)), "{reasons:?}");

    let reply = with_method(admin_port, "POST", "/-/quit", Some(TOKEN));
    assert_eq!(reply.status, 202);
    let token = WaitToken::new();
    assert!(engine.wait_stopped(&token, Some(Duration::from_secs(10))));
}

fn without_an_admin_config_the_paths_belong_to_the_application(mode: IoUring) {
    let (engine, port) = start(config(mode, None), 1);
    let reply = with_method(port, "POST", "/-/quit", Some(TOKEN));
    assert_eq!(reply.body, "app POST /-/quit");
    assert_eq!(
        get(port, "/-/metrics", Some(TOKEN)).body,
        "app GET /-/metrics"
    );
    assert!(!engine.is_stopping());
}

#[test]
fn a_short_token_is_refused_at_start() {
    let err = Engine::start(
        config(IoUring::Off, Some(AdminConfig::new("too-short"))),
        &tcp(),
    )
    .err()
    .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at least 16"), "{err}");
}
