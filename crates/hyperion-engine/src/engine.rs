//! The engine: binds listeners, runs the I/O thread, and stops gracefully.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::{EngineConfig, IoUring};
use crate::conn::Connection;
use crate::exchange::{ListenerInfo, Peer};
use crate::listener::{BoundListener, Listening};
use crate::log::{Logger, RateLimit};
use crate::metrics::Metrics;
use crate::queue::{ExchangeQueue, WaitToken};
use crate::stats::{Stats, StatsSnapshot};

/// Warn lines about rejected requests, at most, per second.
const REJECT_LOG_PER_SECOND: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Not accepting; connections finish their current request and close.
    Draining,
}

pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) queue: Arc<ExchangeQueue>,
    pub(crate) stats: Stats,
    pub(crate) phase: watch::Sender<Phase>,
    /// Mirrors `phase` for application threads deciding keep-alive without a lock.
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) log: Logger,
    /// Bounds the warn lines about rejected requests, so a flood cannot fill the disk.
    pub(crate) reject_log: RateLimit,
    /// Set when the listeners speak TLS.
    pub(crate) tls: Option<crate::tls::TlsState>,
    idle: Notify,
    /// Wakes the io_uring loop when the engine starts stopping (the tokio loop watches `phase`).
    pub(crate) io_waker: Mutex<Option<std::task::Waker>>,
    stopped: Mutex<bool>,
    stopped_cv: Condvar,
    /// HTTP/2 streams open across every connection (bounded by `h2.max_total_streams`).
    pub(crate) h2_open_streams: std::sync::atomic::AtomicUsize,
    /// The thread serving HTTP/2 connections handed over by the io_uring loop.
    pub(crate) h2_runtime: Mutex<Option<crate::h2::Runtime>>,
}

impl Shared {
    pub(crate) fn new(config: EngineConfig, tls: Option<crate::tls::TlsState>) -> Arc<Shared> {
        let (phase, _) = watch::channel(Phase::Running);
        Arc::new(Shared {
            stats: Stats::new(config.metrics.clone().unwrap_or_else(Metrics::private)),
            queue: Arc::new(ExchangeQueue::new(config.max_pending)),
            log: Logger::new(config.log.clone()),
            reject_log: RateLimit::new(REJECT_LOG_PER_SECOND),
            tls,
            config,
            phase,
            draining: Arc::new(AtomicBool::new(false)),
            idle: Notify::new(),
            io_waker: Mutex::new(None),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            h2_open_streams: std::sync::atomic::AtomicUsize::new(0),
            h2_runtime: Mutex::new(None),
        })
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// See [`Engine::stop`].
    pub(crate) fn begin_stop(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.phase.send_replace(Phase::Draining);
        self.wake_io();
    }

    /// Wakes the io_uring loop (if it runs), e.g. so a stopping loop sees that a connection it
    /// handed over has closed.
    pub(crate) fn wake_io(&self) {
        let waker = self.io_waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waker) = waker.as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// A running server. Dropping it stops it (gracefully) and waits for the I/O thread.
pub struct Engine {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    addresses: Vec<String>,
    ports: Vec<u16>,
    admin_addresses: Vec<String>,
    admin_ports: Vec<u16>,
    io_loop: IoLoop,
}

/// Which connection loop runs ("epoll" or "io_uring") and why.
type IoLoop = (&'static str, String);

impl Engine {
    /// Binds every listener on the calling thread (so bind errors surface here), then starts
    /// the I/O thread, which picks its connection loop (see [`EngineConfig::io_uring`]). With
    /// `IoUring::On` this fails when the ring cannot be used.
    ///
    /// With [`EngineConfig::tls`] the certificate and key are loaded first: an unusable pair
    /// fails with `ErrorKind::InvalidData` and a message naming the file.
    pub fn start(config: EngineConfig, listen: &[crate::config::ListenSpec]) -> io::Result<Engine> {
        let tls = match &config.tls {
            Some(tls) => Some(crate::tls::TlsState::new(tls)?),
            None => None,
        };
        raise_open_files_limit();
        let admin_listen = match &config.admin {
            Some(admin) => {
                admin.validate()?;
                admin.listen.as_slice()
            }
            None => &[],
        };
        let mut bound = Vec::with_capacity(listen.len() + admin_listen.len());
        for (spec, admin_only) in listen
            .iter()
            .map(|s| (s, false))
            .chain(admin_listen.iter().map(|s| (s, true)))
        {
            bound.push(Listening {
                bound: BoundListener::bind(spec, config.listen_backlog)?,
                admin_only,
            });
        }
        let describe = |admin_only: bool| -> (Vec<String>, Vec<u16>) {
            let of_kind = || bound.iter().filter(move |l| l.admin_only == admin_only);
            (
                of_kind()
                    .map(|l| {
                        let url = l.bound.describe();
                        match (&tls, url.strip_prefix("http://")) {
                            (Some(_), Some(rest)) => format!("https://{rest}"),
                            _ => url,
                        }
                    })
                    .collect(),
                of_kind().filter_map(|l| l.bound.local_port()).collect(),
            )
        };
        let (addresses, ports) = describe(false);
        let (admin_addresses, admin_ports) = describe(true);
        let shared = Shared::new(config, tls);
        let io_shared = shared.clone();
        let (report, chosen) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("hyperion-io".into())
            .spawn(move || run_io_thread(bound, io_shared, report))?;
        let io_loop = match chosen.recv() {
            Ok(Ok(io_loop)) => io_loop,
            Ok(Err(reason)) => {
                let _ = thread.join();
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring cannot be used: {reason}"),
                ));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other("the I/O thread failed to start"));
            }
        };
        Ok(Engine {
            shared,
            thread: Mutex::new(Some(thread)),
            addresses,
            ports,
            admin_addresses,
            admin_ports,
            io_loop,
        })
    }

    /// The connection loop that runs, `"epoll"` or `"io_uring"`, and why (e.g. the reason
    /// io_uring was not available).
    pub fn io_loop(&self) -> (&'static str, String) {
        self.io_loop.clone()
    }

    pub fn queue(&self) -> &Arc<ExchangeQueue> {
        &self.shared.queue
    }

    /// Listener addresses as URLs, for the boot log.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// Bound TCP ports (useful with port 0).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Addresses of the admin-only listeners (`AdminConfig::listen`), as URLs.
    pub fn admin_addresses(&self) -> &[String] {
        &self.admin_addresses
    }

    /// Bound TCP ports of the admin-only listeners.
    pub fn admin_ports(&self) -> &[u16] {
        &self.admin_ports
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Responses by status code, as counted in this engine's metrics slot.
    pub fn responses_by_status(&self) -> Vec<(u16, u64)> {
        self.shared.stats.responses_by_status()
    }

    /// The whole metrics region (every worker of a cluster) in the Prometheus text format.
    /// For an engine given the process's metrics (`EngineConfig::metrics`), this is what
    /// [`crate::metrics::render_prometheus`] returns.
    pub fn metrics_text(&self) -> String {
        self.shared.stats.metrics().render()
    }

    /// The metrics this engine writes to.
    pub fn metrics(&self) -> &Metrics {
        self.shared.stats.metrics()
    }

    /// Rejected requests by reason (`bad_request_line`, `read_timeout`, `queue_full`, ...).
    pub fn rejections_by_reason(&self) -> Vec<(&'static str, u64)> {
        self.shared.stats.rejections_by_reason()
    }

    /// Reads the TLS certificate and key files again; handshakes from now on use the new
    /// pair. When they are unusable the current pair stays in use and the error says why.
    pub fn reload_tls(&self) -> io::Result<()> {
        match &self.shared.tls {
            Some(tls) => Ok(tls.reload()?),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS is not configured",
            )),
        }
    }

    /// Starts a graceful stop: accepting ends at once, idle connections close, in-flight
    /// requests get `graceful_timeout` to finish. Safe to call from any thread, repeatedly.
    pub fn stop(&self) {
        self.shared.begin_stop();
    }

    pub fn is_stopping(&self) -> bool {
        self.shared.is_draining()
    }

    /// Blocks until the engine has stopped (true), `token` is interrupted or `timeout` passes
    /// (false).
    pub fn wait_stopped(&self, token: &WaitToken, timeout: Option<Duration>) -> bool {
        let mut stopped = self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if *stopped {
                return true;
            }
            if token.take_interrupt() {
                return false;
            }
            stopped = match deadline {
                None => self
                    .shared
                    .stopped_cv
                    .wait(stopped)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.shared
                        .stopped_cv
                        .wait_timeout(stopped, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Wakes a thread blocked in [`Engine::wait_stopped`] with `token`.
    pub fn interrupt_wait(&self, token: &WaitToken) {
        token.interrupt();
        let _guard = self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.shared.stopped_cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the I/O thread once it has stopped.
    pub fn join(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
        self.join();
    }
}

/// Chooses the connection loop (on this thread, so a ring is created after any fork), reports
/// the choice to `Engine::start`, serves until stopped, then marks the engine stopped.
fn run_io_thread(
    listeners: Vec<Listening>,
    shared: Arc<Shared>,
    report: std::sync::mpsc::SyncSender<Result<IoLoop, String>>,
) {
    let mode = shared.config.io_uring;
    let reason = match mode {
        IoUring::Off => "io_uring is off".to_string(),
        // The ring writes to its sockets directly; TLS connections run on the tokio loop.
        _ if shared.tls.is_some() => {
            "TLS is configured; the io_uring loop serves plain TCP only".to_string()
        }
        #[cfg(target_os = "linux")]
        IoUring::Auto | IoUring::On => match crate::uring::Ring::new() {
            Ok(ring) => {
                let _ = report.send(Ok(("io_uring", ring.describe())));
                crate::uring::serve(ring, listeners, shared.clone());
                finish(&shared);
                return;
            }
            Err(reason) => reason,
        },
        #[cfg(not(target_os = "linux"))]
        IoUring::Auto | IoUring::On => "io_uring needs Linux".to_string(),
    };
    if mode == IoUring::On {
        for listener in &listeners {
            if let BoundListener::Unix {
                path,
                remove_on_close: true,
                ..
            } = &listener.bound
            {
                let _ = std::fs::remove_file(path);
            }
        }
        let _ = report.send(Err(reason));
        return;
    }
    let _ = report.send(Ok(("epoll", reason)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let Ok(runtime) = runtime {
        runtime.block_on(serve(listeners, shared.clone()));
        // Dropping the runtime cancels whatever the graceful timeout left running.
        drop(runtime);
    }
    finish(&shared);
}

/// Closes the queue (application threads drain it and exit) and tells whoever waits.
fn finish(shared: &Shared) {
    let runtime = shared
        .h2_runtime
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(mut runtime) = runtime {
        runtime.shutdown();
    }
    // The access lines of the last requests go out before the process can exit.
    shared.log.flush(Duration::from_secs(1));
    shared.queue.close();
    *shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
    shared.stopped_cv.notify_all();
    if let Some(fd) = shared.config.stop_notify_fd {
        // SAFETY: writing one byte from a local buffer; the caller keeps `fd` open for the
        // engine's lifetime.
        unsafe { libc::write(fd, b"!".as_ptr() as *const libc::c_void, 1) };
    }
}

async fn serve(listeners: Vec<Listening>, shared: Arc<Shared>) {
    crate::relay::start();
    let mut accept_loops = Vec::with_capacity(listeners.len());
    for listener in listeners {
        match register(listener, &shared) {
            Ok(fut) => accept_loops.push(tokio::spawn(fut)),
            Err(e) => {
                eprintln!("hyperion: cannot register listener: {e}");
                shared.draining.store(true, Ordering::Relaxed);
                shared.phase.send_replace(Phase::Draining);
            }
        }
    }
    for handle in accept_loops {
        let _ = handle.await;
    }
    // Accepting has ended: wait for open connections to finish, within the graceful timeout.
    let grace = shared.config.graceful_timeout;
    let _ = tokio::time::timeout(grace, async {
        loop {
            let notified = shared.idle.notified();
            if shared.stats.connections_active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    })
    .await;
}

type AcceptLoop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A listening socket: TCP or Unix, accepted the same way.
trait Acceptor: Send + 'static {
    type Stream: crate::conn::Socket;
    fn accept(&self) -> impl std::future::Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
    /// Accepts, without waiting, up to `limit` connections already queued, and closes the
    /// listener.
    fn take_queued(self, limit: usize) -> Vec<(Self::Stream, Peer)>;
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Stream, Peer)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Small responses must not wait for the peer's delayed ACK (Nagle).
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer::Tcp(peer)))
    }

    fn take_queued(self, limit: usize) -> Vec<(Self::Stream, Peer)> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        accept_queued(limit, || listener.accept())
            .into_iter()
            .filter_map(|(stream, peer)| {
                stream.set_nonblocking(true).ok()?;
                let _ = stream.set_nodelay(true);
                let stream = tokio::net::TcpStream::from_std(stream).ok()?;
                Some((stream, Peer::Tcp(peer)))
            })
            .collect()
    }
}

impl Acceptor for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Stream, Peer)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, Peer::Unix))
    }

    fn take_queued(self, limit: usize) -> Vec<(Self::Stream, Peer)> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        accept_queued(limit, || listener.accept())
            .into_iter()
            .filter_map(|(stream, _)| {
                stream.set_nonblocking(true).ok()?;
                let stream = tokio::net::UnixStream::from_std(stream).ok()?;
                Some((stream, Peer::Unix))
            })
            .collect()
    }
}

/// Calls a non-blocking `accept` until the queue is empty (or `limit` connections).
fn accept_queued<T>(limit: usize, mut accept: impl FnMut() -> io::Result<T>) -> Vec<T> {
    let mut accepted = Vec::new();
    while accepted.len() < limit {
        match accept() {
            Ok(conn) => accepted.push(conn),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED) | Some(libc::EINTR)
                ) => {}
            Err(_) => break,
        }
    }
    accepted
}

/// Accepts until the engine leaves `Phase::Running`, then takes the connections already queued
/// before the listener is dropped (closed): closing a listening socket resets whatever waits
/// in its queue, and when no other process holds the socket (single mode, a cluster slot
/// being removed) nobody else would accept them. They are served like any connection of a
/// stopping engine: one request, answered with `connection: close`.
async fn accept_loop<A: Acceptor>(listener: A, shared: Arc<Shared>, info: Arc<ListenerInfo>) {
    let mut phase = shared.phase.subscribe();
    while *phase.borrow_and_update() == Phase::Running {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => spawn_connection(stream, peer, &shared, &info),
                Err(e) => accept_error(e).await,
            },
            _ = phase.changed() => {}
        }
    }
    let limit = usize::try_from(shared.config.listen_backlog).unwrap_or(0);
    for (stream, peer) in listener.take_queued(limit) {
        spawn_connection(stream, peer, &shared, &info);
    }
}

fn register(listener: Listening, shared: &Arc<Shared>) -> io::Result<AcceptLoop> {
    let shared = shared.clone();
    let mut info = listener.info();
    if shared.tls.is_some() {
        info.scheme = "https";
    }
    let info = Arc::new(info);
    match listener.bound {
        BoundListener::Tcp(std_listener, _) => {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            Ok(Box::pin(accept_loop(listener, shared, info)))
        }
        BoundListener::Unix {
            listener,
            path,
            remove_on_close,
        } => {
            let listener = tokio::net::UnixListener::from_std(listener)?;
            Ok(Box::pin(async move {
                accept_loop(listener, shared, info).await;
                if remove_on_close {
                    let _ = std::fs::remove_file(&path);
                }
            }))
        }
    }
}

/// Out of descriptors or memory: back off briefly instead of spinning on accept.
async fn accept_error(e: io::Error) {
    let transient = matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO)
    );
    if !transient {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn_connection<S: crate::conn::Socket>(
    io: S,
    peer: Peer,
    shared: &Arc<Shared>,
    info: &Arc<ListenerInfo>,
) {
    shared.stats.connection_opened();
    let guard = ActiveGuard(shared.clone());
    if shared.tls.is_some() {
        let (shared, info) = (shared.clone(), info.clone());
        tokio::spawn(async move {
            crate::tls::serve(io, peer, shared, info).await;
            drop(guard);
        });
        return;
    }
    let conn = Connection::new(io, peer, shared.clone(), info.clone());
    tokio::spawn(async move {
        conn.run().await;
        drop(guard);
    });
}

/// Decrements the active-connection count however the connection ends (including being
/// cancelled when the runtime shuts down).
pub(crate) struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    /// Takes over a connection already counted in `connections_active`.
    pub(crate) fn adopt(shared: Arc<Shared>) -> ActiveGuard {
        ActiveGuard(shared)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.stats.connection_closed() {
            self.0.idle.notify_waiters();
        }
    }
}

/// Idle keep-alive connections are cheap, but each still needs a descriptor: take the hard
/// limit as the soft one, like nginx's worker_rlimit_nofile.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
pub(crate) fn test_shared() -> Arc<Shared> {
    Shared::new(EngineConfig::default(), None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_queued_takes_what_waits_up_to_the_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let _clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        assert_eq!(super::accept_queued(2, || listener.accept()).len(), 2);
        assert_eq!(super::accept_queued(10, || listener.accept()).len(), 1);
        assert!(super::accept_queued(10, || listener.accept()).is_empty());
    }
}
