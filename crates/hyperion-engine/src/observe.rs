//! The one place a request's end is reported: metrics (status, bytes, duration histogram) and
//! the access log. Every protocol calls [`request_started`] when a request begins and
//! [`request_completed`] exactly once when its answer is written (or the connection gave up),
//! including the answers the engine writes itself (static routes, page cache, 503, parse
//! errors, 408).

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hyperion_http::{RequestHead, Span, Version};

use crate::engine::Shared;
use crate::exchange::Peer;
use crate::log::AccessRecord;

/// What a protocol knows about a finished request.
pub(crate) struct Completion<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// The status sent; 0 when no response was started (the client went away, or the
    /// application took the socket without answering): only the in-flight gauge moves then.
    pub status: u16,
    /// Bytes written to the socket for this request.
    pub bytes: u64,
    /// When the request's head was complete.
    pub started: Instant,
    pub peer: Peer,
    /// `"HTTP/1.1"`, `"HTTP/1.0"`, `"HTTP/2"`...
    pub version: &'static str,
    /// The client's `X-Request-Id`, if it sent a usable one.
    pub request_id: Option<&'a [u8]>,
}

/// A request has begun (its head is complete, or it is being rejected).
pub(crate) fn request_started(shared: &Shared) {
    shared
        .stats
        .requests_in_flight
        .fetch_add(1, Ordering::Relaxed);
}

/// A request has ended. Cheap: relaxed atomics, a histogram lookup on the stack, and, when
/// access logs are on, one record queued for the log thread (never blocking).
pub(crate) fn request_completed(shared: &Shared, c: Completion<'_>) {
    let slot = &*shared.stats;
    let _ = slot
        .requests_in_flight
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    slot.bytes_written.fetch_add(c.bytes, Ordering::Relaxed);
    if c.status == 0 {
        return;
    }
    slot.count_status(c.status);
    let elapsed = c.started.elapsed();
    slot.observe(c.method, c.path, c.status, elapsed);
    if shared.config.log.access_log {
        let record = AccessRecord::new(
            SystemTime::now(),
            c.method,
            c.path,
            c.request_id,
            c.status,
            c.bytes,
            elapsed,
            c.peer,
            c.version,
        );
        if !shared.log.access(record) {
            slot.access_log_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) fn version_label(version: Version) -> &'static str {
    match version {
        Version::Http11 => "HTTP/1.1",
        Version::Http10 => "HTTP/1.0",
    }
}

/// Longest `X-Request-Id` carried into the access log.
const REQUEST_ID_MAX: usize = 200;

/// An HTTP/1 request being answered: what its completion will report. The head's bytes are
/// shared (a reference count), not copied.
pub(crate) struct Current {
    head: Bytes,
    method: Span,
    path: Span,
    request_id: Option<Span>,
    version: Version,
    started: Instant,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
}

impl Current {
    /// A parsed request; counts it in flight.
    pub(crate) fn parsed(
        shared: &Shared,
        head: &RequestHead,
        bytes: &Bytes,
        now: Instant,
    ) -> Current {
        request_started(shared);
        let request_id = if shared.config.log.access_log {
            head.headers
                .iter()
                .find(|h| h.name.slice(bytes).eq_ignore_ascii_case(b"x-request-id"))
                .map(|h| h.value)
                .filter(|v| {
                    let v = v.slice(bytes);
                    !v.is_empty() && v.len() <= REQUEST_ID_MAX
                })
        } else {
            None
        };
        Current {
            head: bytes.clone(),
            method: head.method,
            path: head.path,
            request_id,
            version: head.version,
            started: now,
            status: 0,
            bytes: 0,
        }
    }

    /// A request rejected before its head parsed: no method or path (reported as `-`).
    pub(crate) fn unparsed(shared: &Shared, now: Instant) -> Current {
        request_started(shared);
        Current {
            head: Bytes::from_static(b"-"),
            method: Span { start: 0, end: 1 },
            path: Span { start: 0, end: 1 },
            request_id: None,
            version: Version::Http11,
            started: now,
            status: 0,
            bytes: 0,
        }
    }

    pub(crate) fn complete(self, shared: &Shared, peer: Peer) {
        let head = &self.head;
        request_completed(
            shared,
            Completion {
                method: self.method.slice(head),
                path: self.path.slice(head),
                status: self.status,
                bytes: self.bytes,
                started: self.started,
                peer,
                version: version_label(self.version),
                request_id: self.request_id.map(|s| s.slice(head)),
            },
        );
    }
}
