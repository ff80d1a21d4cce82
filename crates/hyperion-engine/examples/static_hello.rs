//! A static route served by the engine alone, for comparing the connection loops:
//!
//!     cargo run --release -p hyperion-engine --example static_hello -- io_uring 18401
//!
//! `GET /` answers "hello" from the I/O thread; there are no application threads. The first
//! argument is the loop (`epoll` or `io_uring`), the second the port (default 18401). Runs
//! until killed.

use std::sync::Arc;

use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
use hyperion_engine::{Engine, EngineConfig, IoUring, ListenSpec, WaitToken};

fn main() {
    let mut args = std::env::args().skip(1);
    let io_uring = match args.next().as_deref() {
        Some("epoll") | None => IoUring::Off,
        Some("io_uring") => IoUring::On,
        Some(other) => {
            eprintln!("unknown loop {other:?}: use epoll or io_uring");
            std::process::exit(64);
        }
    };
    let port = args.next().map_or(18401, |p| p.parse().expect("port"));
    let routes = Arc::new(RouteTable::new());
    let hello = StaticResponse::new(
        200,
        &[(b"content-type".to_vec(), b"text/plain".to_vec())],
        b"hello".to_vec(),
    )
    .expect("static response");
    routes.add_static(Method::Get, b"/", hello);
    let config = EngineConfig {
        routes,
        io_uring,
        ..EngineConfig::default()
    };
    let listen = [ListenSpec::Tcp {
        host: "127.0.0.1".into(),
        port,
    }];
    let engine = Engine::start(config, &listen).unwrap_or_else(|e| {
        eprintln!("cannot start: {e}");
        std::process::exit(1);
    });
    let (name, reason) = engine.io_loop();
    eprintln!("serving {} with {name} ({reason})", engine.addresses()[0]);
    engine.wait_stopped(&WaitToken::new(), None);
}
