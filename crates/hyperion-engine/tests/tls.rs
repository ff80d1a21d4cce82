//! TLS listeners driven by a rustls client over real sockets. The certificates are generated
//! for each run with `openssl` (spec/support/make_test_certs.sh); no key is committed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hyperion_engine::{
    Engine, EngineConfig, Exchange, HeadBuilder, IoUring, ListenSpec, Pop, TicketGeneration,
    TlsConfig, WaitToken,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A directory holding the test PKI, removed when dropped.
struct Certs(PathBuf);

impl std::ops::Deref for Certs {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory with the test PKI.
fn certs() -> Certs {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hyperion-tls-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/support/make_test_certs.sh");
    let status = std::process::Command::new("sh")
        .arg(script)
        .arg(&dir)
        .status()
        .expect("run make_test_certs.sh (needs openssl)");
    assert!(status.success(), "make_test_certs.sh failed");
    Certs(dir)
}

fn tls_config(dir: &Path, cert: &str, key: &str) -> TlsConfig {
    TlsConfig::new(dir.join(cert), dir.join(key))
}

fn start(config: EngineConfig) -> (Arc<Engine>, u16) {
    let listen = [ListenSpec::Tcp {
        host: "127.0.0.1".into(),
        port: 0,
    }];
    let engine = Arc::new(Engine::start(config, &listen).expect("start"));
    let queue = engine.queue().clone();
    thread::spawn(move || {
        let token = WaitToken::new();
        loop {
            match queue.pop(&token, None) {
                Pop::Exchange(mut ex) => answer(&mut ex),
                Pop::Closed => break,
                Pop::Interrupted => {}
            }
        }
    });
    let port = engine.ports()[0];
    (engine, port)
}

/// An engine with `tls` and otherwise the defaults.
fn start_tls(tls: TlsConfig) -> (Arc<Engine>, u16) {
    start(EngineConfig {
        tls: Some(tls),
        ..EngineConfig::default()
    })
}

const FILE_LEN: usize = 300_000;

fn file_content() -> Vec<u8> {
    (0..FILE_LEN as u32)
        .map(|i| b'a' + (i % 26) as u8)
        .collect()
}

/// `/file` answers a file body (sent with sendfile on plain sockets); `/hijack` tries to take
/// the socket; anything else answers "hello".
fn answer(ex: &mut Exchange) {
    let mut head = HeadBuilder::new(200, 128).unwrap();
    head.header(b"content-type", b"text/plain").unwrap();
    match ex.path() {
        b"/file" => {
            let path = std::env::temp_dir().join(format!(
                "hyperion-tls-file-{}-{:?}",
                std::process::id(),
                thread::current().id()
            ));
            std::fs::write(&path, file_content()).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let msg = ex
                .response
                .encode_file(head, file, FILE_LEN as u64)
                .unwrap();
            ex.response.send(msg).unwrap();
        }
        b"/hijack" => {
            let (msg, handed) = ex.response.hijack().unwrap();
            ex.response.send(msg).unwrap();
            assert!(handed.recv().is_err(), "a TLS socket was handed over");
        }
        _ => {
            let msg = ex
                .response
                .encode_full(head, 5, |b| b.extend_from_slice(b"hello"))
                .unwrap();
            ex.response.send(msg).unwrap();
        }
    }
}

fn client(dir: &Path, version: &'static rustls::SupportedProtocolVersion) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// What one connection saw.
struct Seen {
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
    kind: Option<HandshakeKind>,
    leaf: Vec<u8>,
    response: Vec<u8>,
}

/// Connects, sends one request with `connection: close` and reads the answer to the end.
fn fetch(config: &Arc<ClientConfig>, port: u16, path: &str) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("handshake");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        // The server ends with close_notify; a bare close would be an error here.
        tls.read_to_end(&mut response).await.unwrap();
        let conn = tls.get_ref().1;
        Seen {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
            kind: conn.handshake_kind(),
            leaf: conn.peer_certificates().unwrap()[0].to_vec(),
            response,
        }
    })
}

/// Polls `condition` until it holds (a generous ceiling, not a timing assertion).
fn eventually(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("condition not met in 10 s");
}

fn body(response: &[u8]) -> &[u8] {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &response[at + 4..]
}

fn der(dir: &Path, cert: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(dir.join(cert))
        .unwrap()
        .to_vec()
}

#[test]
fn serves_http11_over_tls_13_and_12_and_picks_http11_from_alpn() {
    let dir = certs();
    let (engine, port) = start_tls(tls_config(&dir, "rsa-chain.pem", "rsa.key"));
    assert_eq!(engine.addresses()[0], format!("https://127.0.0.1:{port}"));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let seen = fetch(&Arc::new(client(&dir, version)), port, "/");
        assert_eq!(seen.version, Some(version.version));
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(seen.response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(body(&seen.response), b"hello");
    }
    // A client without ALPN gets HTTP/1.1 too.
    let mut no_alpn = client(&dir, &rustls::version::TLS13);
    no_alpn.alpn_protocols.clear();
    let seen = fetch(&Arc::new(no_alpn), port, "/");
    assert_eq!(seen.alpn, None);
    assert_eq!(body(&seen.response), b"hello");
    assert_eq!(engine.stats().tls_handshakes, 3);
}

#[test]
fn alpn_prefers_h2_and_serves_http2_over_tls() {
    let dir = certs();
    let (_engine, port) = start_tls(tls_config(&dir, "rsa-chain.pem", "rsa.key"));
    let mut config = client(&dir, &rustls::version::TLS13);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
        tokio::spawn(connection);
        let request = http::Request::get("https://localhost/").body(()).unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = body.data().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, b"hello");
    });
}

#[test]
fn every_key_format_loads() {
    let dir = certs();
    for (cert, key) in [
        ("rsa.pem", "rsa.key"),
        ("rsa.pem", "rsa-pkcs1.key"),
        ("ec.pem", "ec-sec1.key"),
        ("ec.pem", "ec.key"),
    ] {
        let (_engine, port) = start_tls(tls_config(&dir, cert, key));
        let seen = fetch(&Arc::new(client(&dir, &rustls::version::TLS13)), port, "/");
        assert_eq!(seen.leaf, der(&dir, cert), "{cert} with {key}");
    }
}

#[test]
fn unusable_certificates_and_keys_stop_the_start_with_a_clear_error() {
    let dir = certs();
    std::fs::write(dir.join("junk.key"), "not a key\n").unwrap();
    let cases = [
        ("missing.pem", "rsa.key", "cannot read TLS certificate"),
        ("rsa.pem", "missing.key", "cannot read TLS private key"),
        ("rsa.key", "rsa.key", "no PEM certificate"),
        ("rsa.pem", "junk.key", "no usable private key"),
        ("rsa.pem", "ec.key", "does not belong to the certificate"),
    ];
    for (cert, key, expected) in cases {
        let config = EngineConfig {
            tls: Some(tls_config(&dir, cert, key)),
            ..EngineConfig::default()
        };
        let err = Engine::start(config, &[]).err().expect("start must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains(expected),
            "{cert}/{key}: {err} lacks {expected:?}"
        );
    }
}

#[test]
fn reload_switches_the_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let dir = certs();
    let (cert, key) = (dir.join("live.pem"), dir.join("live.key"));
    std::fs::copy(dir.join("rsa.pem"), &cert).unwrap();
    std::fs::copy(dir.join("rsa.key"), &key).unwrap();
    let (engine, port) = start_tls(TlsConfig::new(&cert, &key));
    // Without resumption, so every connection is shown the certificate in use.
    let mut client = client(&dir, &rustls::version::TLS13);
    client.resumption = Resumption::disabled();
    let client = Arc::new(client);
    assert_eq!(fetch(&client, port, "/").leaf, der(&dir, "rsa.pem"));

    std::fs::copy(dir.join("ec.pem"), &cert).unwrap();
    std::fs::copy(dir.join("ec.key"), &key).unwrap();
    engine.reload_tls().unwrap();
    assert_eq!(fetch(&client, port, "/").leaf, der(&dir, "ec.pem"));

    // A certificate without its key: refused, and the pair in use stays.
    std::fs::copy(dir.join("rsa.pem"), &cert).unwrap();
    let err = engine.reload_tls().unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    assert_eq!(fetch(&client, port, "/").leaf, der(&dir, "ec.pem"));
}

#[test]
fn session_tickets_resume_on_another_engine_until_two_rotations() {
    let dir = certs();
    let generation = Arc::new(TicketGeneration::shared().unwrap());
    let shared_tickets = |dir: &Path| {
        let mut tls = tls_config(dir, "rsa.pem", "rsa.key");
        tls.ticket_secret = Some([42; 32]);
        tls.ticket_generation = Some(generation.clone());
        EngineConfig {
            tls: Some(tls),
            ..EngineConfig::default()
        }
    };
    let (_a, port_a) = start(shared_tickets(&dir));
    let (_b, port_b) = start(shared_tickets(&dir));
    // An engine with its own secret cannot open the others' tickets.
    let (_c, port_c) = start_tls(tls_config(&dir, "rsa.pem", "rsa.key"));

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // A fresh client cache each time, holding only tickets issued before the rotations.
        let fresh = || {
            let mut config = client(&dir, version);
            config.resumption = Resumption::in_memory_sessions(32);
            Arc::new(config)
        };
        let client = fresh();
        assert_eq!(fetch(&client, port_a, "/").kind, Some(HandshakeKind::Full));
        assert_eq!(
            fetch(&client, port_b, "/").kind,
            Some(HandshakeKind::Resumed)
        );

        let client = fresh();
        fetch(&client, port_a, "/");
        assert_ne!(
            fetch(&client, port_c, "/").kind,
            Some(HandshakeKind::Resumed)
        );

        let client = fresh();
        fetch(&client, port_a, "/");
        generation.bump();
        assert_eq!(
            fetch(&client, port_b, "/").kind,
            Some(HandshakeKind::Resumed)
        );

        let client = fresh();
        fetch(&client, port_a, "/");
        generation.bump();
        generation.bump();
        assert_eq!(fetch(&client, port_b, "/").kind, Some(HandshakeKind::Full));
    }
}

#[test]
fn file_bodies_are_written_through_the_tls_stream() {
    let dir = certs();
    let (_engine, port) = start_tls(tls_config(&dir, "rsa.pem", "rsa.key"));
    let seen = fetch(
        &Arc::new(client(&dir, &rustls::version::TLS13)),
        port,
        "/file",
    );
    assert!(seen.response.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(body(&seen.response), &file_content()[..]);
}

#[test]
fn a_tls_connection_is_never_hijacked() {
    let dir = certs();
    let (_engine, port) = start_tls(tls_config(&dir, "rsa.pem", "rsa.key"));
    // The application thread asserts the hand-over failed; the client sees the connection end.
    let seen = fetch(
        &Arc::new(client(&dir, &rustls::version::TLS13)),
        port,
        "/hijack",
    );
    assert!(seen.response.is_empty());
}

#[test]
fn silent_clients_time_out_and_excess_handshakes_are_refused_and_counted() {
    let dir = certs();
    let mut tls = tls_config(&dir, "rsa.pem", "rsa.key");
    tls.handshake_timeout = Duration::from_millis(200);
    let (engine, port) = start_tls(tls);
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap(), 0, "closed without a byte");
    // The client may see the close just before the I/O thread counts it.
    eventually(|| engine.stats().tls_handshake_timeouts == 1);

    // Plaintext HTTP on a TLS port is a failed handshake.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = plain.read(&mut buf);
    drop(plain);

    let mut limited = tls_config(&dir, "rsa.pem", "rsa.key");
    limited.handshake_rate_limit = Some(1);
    let (limited_engine, limited_port) = start_tls(limited);
    let client = Arc::new(client(&dir, &rustls::version::TLS13));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcomes: Vec<bool> = (0..5)
        .map(|_| {
            rt.block_on(async {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", limited_port))
                    .await
                    .unwrap();
                tokio_rustls::TlsConnector::from(client.clone())
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let refused = outcomes.iter().filter(|ok| !**ok).count() as u64;
    assert!(outcomes[0], "the first handshake is within the limit");
    assert!(refused >= 1, "{outcomes:?}");
    let stats = limited_engine.stats();
    assert_eq!(stats.tls_handshakes_rate_limited, refused);
    assert_eq!(stats.tls_handshakes, 5 - refused);

    // Counted once the engine has seen the plaintext client go.
    eventually(|| engine.stats().tls_handshake_failures == 1);
}

#[test]
fn io_uring_gives_way_to_the_tokio_loop_when_tls_is_on() {
    let dir = certs();
    let listen = [ListenSpec::Tcp {
        host: "127.0.0.1".into(),
        port: 0,
    }];
    let auto = Engine::start(
        EngineConfig {
            tls: Some(tls_config(&dir, "rsa.pem", "rsa.key")),
            io_uring: IoUring::Auto,
            ..EngineConfig::default()
        },
        &listen,
    )
    .unwrap();
    let (name, reason) = auto.io_loop();
    assert_eq!(name, "epoll");
    assert!(reason.contains("TLS"), "{reason}");
    let on = Engine::start(
        EngineConfig {
            tls: Some(tls_config(&dir, "rsa.pem", "rsa.key")),
            io_uring: IoUring::On,
            ..EngineConfig::default()
        },
        &listen,
    );
    let err = on.err().expect("io_uring on with TLS must not start");
    assert!(err.to_string().contains("TLS"), "{err}");
}
