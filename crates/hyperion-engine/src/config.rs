//! Settings the engine receives once, at start.

use std::path::PathBuf;
use std::time::Duration;

use hyperion_http::Limits;

use crate::admin::AdminConfig;
use crate::log::LogConfig;
use crate::routes::RouteTable;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenSpec {
    Tcp {
        host: String,
        port: u16,
    },
    Unix {
        path: PathBuf,
    },
    /// A stream socket that is already bound and listening (TCP or Unix), e.g. inherited from
    /// a cluster master. The engine accepts on its own duplicate of `fd` and closes only that;
    /// the caller keeps `fd`, and a Unix socket's file is left in place on stop.
    Fd {
        fd: i32,
    },
}

/// Which connection loop the I/O thread runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoUring {
    /// The tokio loop (epoll).
    #[default]
    Off,
    /// io_uring when the kernel offers what the loop needs, epoll otherwise.
    Auto,
    /// io_uring, or the engine does not start.
    On,
}

impl IoUring {
    /// "off", "auto" or "on".
    pub fn parse(name: &str) -> Option<IoUring> {
        match name {
            "off" => Some(IoUring::Off),
            "auto" => Some(IoUring::Auto),
            "on" => Some(IoUring::On),
            _ => None,
        }
    }
}

/// HTTP/2 settings and limits (h2c with prior knowledge on plain listeners, and any stream
/// handed to [`crate::h2::serve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Config {
    /// Recognise the HTTP/2 connection preface on plain listeners (h2c prior knowledge).
    pub h2c: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS: open streams per connection.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much request body a stream may send before the
    /// server has taken it in.
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE (16384 ..= 16777215).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: decoded header bytes per request; larger gets 431.
    pub max_header_list_size: u32,
    /// Open streams across every connection of this engine; more are refused with
    /// RST_STREAM REFUSED_STREAM. `None`: unbounded.
    pub max_total_streams: Option<usize>,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            h2c: true,
            max_concurrent_streams: 128,
            initial_window_size: 1 << 20,
            max_frame_size: 16_384,
            max_header_list_size: 65_536,
            max_total_streams: Some(1024),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long a keep-alive connection may sit between requests (and a new connection before
    /// its first byte).
    pub idle_keepalive: Duration,
    /// How long a request head or body may take to arrive once it has started.
    pub request_read_timeout: Duration,
    /// How long a write may make no progress before the client is dropped.
    pub write_timeout: Duration,
    /// On stop: how long in-flight requests get to finish before connections are cut.
    pub graceful_timeout: Duration,
    /// Exchanges waiting for an application thread before new ones are answered 503.
    pub max_pending: usize,
    /// Request bodies larger than this are written to an unlinked temp file instead of memory.
    pub max_in_memory_body_bytes: usize,
    pub limits: Limits,
    pub listen_backlog: i32,
    /// A descriptor (e.g. a pipe's write end, owned by the caller) that gets one byte when the
    /// engine has fully stopped, so a caller can wait with its own event loop.
    pub stop_notify_fd: Option<i32>,
    /// Direct routes and the page cache (shared with whoever registers them).
    pub routes: std::sync::Arc<RouteTable>,
    /// Where and how the engine's own log lines (rejected requests) are written.
    pub log: LogConfig,
    /// The connection loop: tokio (epoll) or io_uring (Linux only). With `tls` set, `Auto`
    /// runs the tokio loop and `On` does not start.
    pub io_uring: IoUring,
    /// The admin endpoints (`/-/metrics`, `/-/quit`) and their token; `None`: they do not
    /// exist.
    pub admin: Option<AdminConfig>,
    /// Where the counters go: the process's region and slot ([`crate::metrics::process`]),
    /// or, when `None`, a one-slot region of the engine's own.
    pub metrics: Option<crate::metrics::Metrics>,
    /// When set, every listener speaks TLS.
    pub tls: Option<crate::tls::TlsConfig>,
    pub h2: H2Config,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            idle_keepalive: Duration::from_secs(5),
            request_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            graceful_timeout: Duration::from_secs(30),
            max_pending: 4096,
            max_in_memory_body_bytes: 128 * 1024,
            limits: Limits::default(),
            listen_backlog: 1024,
            stop_notify_fd: None,
            log: LogConfig::default(),
            routes: Default::default(),
            io_uring: IoUring::Off,
            admin: None,
            metrics: None,
            tls: None,
            h2: H2Config::default(),
        }
    }
}
