//! The Hyperion server engine.
//!
//! It owns every socket: listeners, accepted connections, reads, parsing, writes and timers run
//! on a native I/O thread. Complete requests become [`Exchange`]s on a bounded
//! [`ExchangeQueue`]; application threads (Ruby, or any Rust code) pop them, answer through the
//! exchange's [`Response`], and never touch a socket. Nothing here knows about Ruby.

pub mod admin;
mod body;
mod chan;
pub mod config;
mod conn;
mod dispatch;
pub mod engine;
pub mod exchange;
pub(crate) mod h2;
pub mod input;
pub mod listener;
pub mod log;
pub mod metrics;
mod observe;
pub mod queue;
mod relay;
pub mod response;
pub mod routes;
pub mod sched;
pub mod stats;
#[cfg(test)]
mod test_waker;
pub mod tls;
#[cfg(target_os = "linux")]
mod uring;

pub use admin::AdminConfig;
pub use config::{EngineConfig, H2Config, IoUring, ListenSpec};
pub use engine::Engine;
pub use exchange::{Body, Direct, Exchange, ListenerInfo, Peer, Protocol};
pub use input::{BodyStream, InputError, Read};
pub use queue::{ExchangeQueue, Pop, PushError, WaitToken};
pub use response::{
    trailer_map, Disconnected, HeadBuilder, Hijacked, Response, ResponseError, ResponseMsg,
    ResponseSender, WrittenNotice,
};
pub use stats::StatsSnapshot;
pub use tls::{TicketGeneration, TlsConfig, TlsError};
