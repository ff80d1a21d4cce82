//! The admin endpoints, answered by the I/O thread before any route or application sees the
//! request: `GET /-/metrics` (Prometheus text) and `POST /-/quit` (graceful stop of the whole
//! server), both guarded by the `X-Hyperion-Admin-Token` header.
//!
//! On an application listener a request without a valid token is not an admin request at all:
//! it goes on to the routes and the application like any other, so nobody without the token can
//! tell the endpoints exist. On an admin listener (`AdminConfig::listen`) only admin requests
//! are served; everything else is the engine's own 404.

use std::fmt;
use std::sync::Arc;

use hyperion_http::RequestHead;

use crate::config::ListenSpec;
use crate::dispatch::rejected;
use crate::engine::Shared;
use crate::exchange::{ListenerInfo, Peer};
use crate::log::{Level, Value as LogValue};
use crate::response::engine_response;
use crate::stats::bump;

/// The request header carrying the token.
pub const TOKEN_HEADER: &[u8] = b"x-hyperion-admin-token";

/// Shorter tokens are refused at start: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// The content type Prometheus expects for its text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Renders the body of `/-/metrics`. Called on the I/O thread for every scrape, so it must be
/// quick and must not block.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

/// What `/-/quit` does once its answer is queued (e.g. signal a cluster master).
pub type QuitAction = Arc<dyn Fn() + Send + Sync>;

/// The admin endpoints exist only when the engine is given one of these.
#[derive(Clone)]
pub struct AdminConfig {
    /// Compared in constant time with the request's `X-Hyperion-Admin-Token`; at least
    /// [`MIN_TOKEN_LEN`] bytes.
    pub token: Vec<u8>,
    /// Listeners that serve only the admin endpoints. When there is one, the application
    /// listeners no longer answer admin paths: `/-/...` reaches the application there.
    pub listen: Vec<ListenSpec>,
    /// The metrics text. `None`: the process's metrics region ([`crate::metrics`]).
    pub metrics: Option<MetricsText>,
    /// `None`: the engine stops itself, as [`crate::Engine::stop`] does.
    pub quit: Option<QuitAction>,
}

impl AdminConfig {
    pub fn new(token: impl Into<Vec<u8>>) -> AdminConfig {
        AdminConfig {
            token: token.into(),
            listen: Vec::new(),
            metrics: None,
            quit: None,
        }
    }

    pub(crate) fn validate(&self) -> std::io::Result<()> {
        if self.token.len() < MIN_TOKEN_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the admin token must be at least {MIN_TOKEN_LEN} bytes"),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself: configs end up in logs and panic messages.
        f.debug_struct("AdminConfig")
            .field("token", &"[redacted]")
            .field("listen", &self.listen)
            .field("metrics", &self.metrics.as_ref().map(|_| "custom"))
            .field("quit", &self.quit.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// A quit action that sends SIGTERM to `pid`: in a cluster worker, the master, which then
/// stops every worker gracefully.
pub fn terminate(pid: i32) -> QuitAction {
    Arc::new(move || {
        // SAFETY: kill(2) only reads its integer arguments.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    })
}

/// Compares `given` with `expected` in time that depends only on `expected.len()`: every byte
/// of `expected` is visited whatever `given` holds, and differences are accumulated rather than
/// returned early, so the time taken tells an attacker nothing about how much of a guess was
/// right. A length mismatch is folded into the same accumulator.
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = (given.len() ^ expected.len()) as u64;
    for (i, &want) in expected.iter().enumerate() {
        // A missing byte compares as the complement of the wanted one: always a difference,
        // through the same instructions as a present one.
        let got = given.get(i).copied().unwrap_or(!want);
        diff |= u64::from(got ^ want);
        // Keeps the compiler from turning the loop into a comparison that stops at the first
        // difference.
        diff = std::hint::black_box(diff);
    }
    diff == 0
}

/// What the engine answers instead of dispatching, and whether the connection stays open.
pub(crate) struct Answer {
    pub(crate) bytes: Vec<u8>,
    pub(crate) keep: bool,
    pub(crate) status: u16,
}

enum Endpoint {
    Metrics,
    Quit,
}

/// Answers the request when it is an admin request (or arrived on an admin listener); `None`
/// sends it on to the routes and the application.
pub(crate) fn answer(
    shared: &Shared,
    head: &RequestHead,
    head_bytes: &[u8],
    peer: Peer,
    listener: &ListenerInfo,
) -> Option<Answer> {
    let admin = shared.config.admin.as_ref()?;
    let on_admin_listener = listener.admin_only;
    if !on_admin_listener && !admin.listen.is_empty() {
        return None;
    }
    let path = head.path.slice(head_bytes);
    let endpoint = match path {
        b"/-/metrics" => Some(Endpoint::Metrics),
        b"/-/quit" => Some(Endpoint::Quit),
        _ => None,
    };
    if endpoint.is_none() && !on_admin_listener {
        return None;
    }
    let authorized = authorized(head, head_bytes, &admin.token);
    if !authorized && !on_admin_listener {
        return None;
    }
    bump(&shared.stats.dispatch_admin);
    let method = head.method.slice(head_bytes);
    let head_only = method == b"HEAD";
    let keep = head.keep_alive && !shared.is_draining();
    let answer =
        |status: u16, content_type: &str, body: &str, keep: bool, extra: &[(&str, &str)]| {
            let mut headers = vec![("cache-control", "no-store")];
            headers.extend_from_slice(extra);
            let bytes = engine_response(status, content_type, body, head_only, !keep, &headers);
            Some(Answer {
                bytes,
                keep,
                status,
            })
        };
    let plain = "text/plain; charset=utf-8";
    let Some(endpoint) = endpoint else {
        rejected(shared, peer, 404, "admin_not_found");
        return answer(404, plain, "Not Found\n", keep, &[]);
    };
    if !authorized {
        rejected(shared, peer, 404, "admin_unauthorized");
        return answer(404, plain, "Not Found\n", keep, &[]);
    }
    match endpoint {
        Endpoint::Metrics if method == b"GET" || head_only => {
            let text = metrics_text(shared, admin);
            answer(200, METRICS_CONTENT_TYPE, &text, keep, &[])
        }
        Endpoint::Quit if method == b"POST" => {
            shared.log.log(
                Level::Info,
                "quit requested: stopping the server gracefully",
                &[("peer", LogValue::Str(&peer_text(peer)))],
            );
            match &admin.quit {
                Some(quit) => quit(),
                None => shared.begin_stop(),
            }
            answer(202, plain, "Stopping\n", false, &[])
        }
        Endpoint::Metrics => {
            rejected(shared, peer, 405, "admin_method_not_allowed");
            answer(
                405,
                plain,
                "Method Not Allowed\n",
                keep,
                &[("allow", "GET, HEAD")],
            )
        }
        Endpoint::Quit => {
            rejected(shared, peer, 405, "admin_method_not_allowed");
            answer(
                405,
                plain,
                "Method Not Allowed\n",
                keep,
                &[("allow", "POST")],
            )
        }
    }
}

/// Exactly one token header, and it matches. A repeated header is refused rather than
/// guessing which copy counts.
fn authorized(head: &RequestHead, head_bytes: &[u8], token: &[u8]) -> bool {
    let mut values = head
        .headers
        .iter()
        .filter(|h| h.name.slice(head_bytes).eq_ignore_ascii_case(TOKEN_HEADER))
        .map(|h| h.value.slice(head_bytes));
    match (values.next(), values.next()) {
        (Some(value), None) => token_matches(value, token),
        _ => false,
    }
}

fn peer_text(peer: Peer) -> String {
    match peer {
        Peer::Tcp(addr) => addr.to_string(),
        Peer::Unix => "unix".to_string(),
    }
}

/// The body of `/-/metrics`: the configured renderer, or else the process's metrics region
/// (every worker's slot in cluster mode). This is the one place that decides what a scrape
/// returns.
pub(crate) fn metrics_text(shared: &Shared, admin: &AdminConfig) -> String {
    match &admin.metrics {
        Some(render) => render(),
        None => shared.stats.metrics().render(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        let token = b"0123456789abcdef";
        assert!(token_matches(token, token));
        assert!(!token_matches(b"0123456789abcdeF", token));
        assert!(!token_matches(b"X123456789abcdef", token));
        assert!(!token_matches(b"0123456789abcde", token));
        assert!(!token_matches(b"0123456789abcdef0", token));
        assert!(!token_matches(b"", token));
        // A prefix padded with the complement bytes a missing byte is compared as.
        let mut tricky = token[..15].to_vec();
        tricky.push(!token[15]);
        assert!(!token_matches(&tricky, token));
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(AdminConfig::new("short").validate().is_err());
        assert!(AdminConfig::new("0123456789abcdef").validate().is_ok());
    }

    #[test]
    fn debug_output_hides_the_token() {
        let text = format!("{:?}", AdminConfig::new("0123456789abcdef"));
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}
