//! What a connection loop does with a complete request, and with the answer: route it (static
//! routes and the page cache are answered at once), hand it to the application threads, gather
//! the response messages that come back, and the engine's own error answers. Shared by the
//! tokio connection (`conn.rs`) and the io_uring loop, so both behave the same.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use bytes::Bytes;
use hyperion_http::{ParseError, RequestHead, Version};

use crate::admin;
use crate::chan;
use crate::engine::Shared;
use crate::exchange::{Body, Direct, Exchange, ListenerInfo, Peer, Protocol};
use crate::log::{Level, Value as LogValue};
use crate::queue::PushError;
use crate::response::{simple_response, Hijacked, Response, ResponseMsg, WrittenNotice};
use crate::routes::{Route, StaticResponse};
use crate::stats::bump;

/// Response messages buffered between an application thread and the writer.
pub(crate) const RESPONSE_CHANNEL: usize = 16;

/// How much already-waiting response data is gathered into one write.
pub(crate) const COALESCE_LIMIT: usize = 256 * 1024;

/// Static bodies up to this size are copied next to the head; larger ones are written from
/// their shared buffer.
pub(crate) const STATIC_COPY_LIMIT: usize = 16 * 1024;

/// How long and how much a rejected connection is drained before closing, so the client reads
/// the error instead of a reset.
pub(crate) const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
pub(crate) const LINGER_BYTES: usize = 256 * 1024;

/// The interim answer to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where a batch of response messages leaves the response.
pub(crate) enum BatchEnd {
    More,
    Done {
        close: bool,
        notice: Option<WrittenNotice>,
    },
    /// Write what was gathered, then the file; that ends the response.
    File {
        file: std::fs::File,
        len: u64,
        close: bool,
        notice: Option<WrittenNotice>,
    },
    Hijack(SyncSender<Hijacked>),
    Abort,
}

/// Appends a message's bytes to `out` (taking the buffer when `out` is empty); a message
/// carrying the response's head sets `status`.
pub(crate) fn append(msg: ResponseMsg, out: &mut Vec<u8>, status: &mut u16) -> BatchEnd {
    let (bytes, end) = match msg {
        ResponseMsg::Bytes(bytes) => (bytes, BatchEnd::More),
        ResponseMsg::Head { bytes, status: s } => {
            *status = s;
            (bytes, BatchEnd::More)
        }
        ResponseMsg::Final {
            bytes,
            close,
            notice,
            status: s,
        } => {
            if s != 0 {
                *status = s;
            }
            (bytes, BatchEnd::Done { close, notice })
        }
        ResponseMsg::File {
            head,
            file,
            len,
            close,
            notice,
            status: s,
        } => {
            *status = s;
            (
                head,
                BatchEnd::File {
                    file,
                    len,
                    close,
                    notice,
                },
            )
        }
        ResponseMsg::Hijack(tx) => return BatchEnd::Hijack(tx),
        ResponseMsg::Abort => return BatchEnd::Abort,
        // Only an HTTP/2 stream's response makes these.
        ResponseMsg::Head2 { .. }
        | ResponseMsg::File2 { .. }
        | ResponseMsg::Interim(_)
        | ResponseMsg::Trailers { .. } => return BatchEnd::Abort,
    };
    if out.is_empty() {
        *out = bytes;
    } else {
        out.extend_from_slice(&bytes);
    }
    end
}

/// A complete request, body included.
pub(crate) struct Request {
    pub(crate) head: RequestHead,
    pub(crate) head_bytes: Bytes,
    pub(crate) body: Body,
    pub(crate) trailers: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) protocol: Protocol,
}

/// What became of a request.
pub(crate) enum Dispatched {
    /// A static route or page-cache hit: the connection writes it itself.
    Static {
        response: Arc<StaticResponse>,
        head_only: bool,
        version: Version,
        keep: bool,
    },
    /// With an application thread; the answer arrives on this channel.
    Queued(chan::Receiver<ResponseMsg>),
    /// Answered by the engine itself (an admin endpoint, or not accepted because the queue is
    /// full or closed): write `bytes`, then keep the connection only if `keep`.
    Answered {
        bytes: Vec<u8>,
        keep: bool,
        status: u16,
    },
}

/// A static route or page-cache hit the connection can answer itself (no request hooks to
/// run): counts the request as `dispatch` would and returns the response, with whether only
/// its head is wanted. `None` leaves the request to [`dispatch`], uncounted.
pub(crate) fn static_hit(
    shared: &Shared,
    method: &[u8],
    path: &[u8],
) -> Option<(Arc<StaticResponse>, bool)> {
    let routes = &shared.config.routes;
    if routes.is_empty() || routes.is_observed() {
        return None;
    }
    let hit = routes.lookup(method, path)?;
    let Route::Static(route) = hit.route else {
        return None;
    };
    bump(&shared.stats.requests_total);
    bump(if route.page_cache {
        &shared.stats.dispatch_page_cache
    } else {
        &shared.stats.dispatch_static
    });
    Some((route.current(), hit.head_only))
}

/// Counts the request, answers it when it is an admin request or from the route table when it
/// can, and otherwise pushes it on the exchange queue.
pub(crate) fn dispatch(
    shared: &Arc<Shared>,
    request: Request,
    peer: Peer,
    listener: &Arc<ListenerInfo>,
) -> Dispatched {
    let Request {
        head,
        head_bytes,
        body,
        trailers,
        protocol,
    } = request;
    bump(&shared.stats.requests_total);
    if let Some(answer) = admin::answer(shared, &head, &head_bytes, peer, listener) {
        return Dispatched::Answered {
            bytes: answer.bytes,
            keep: answer.keep,
            status: answer.status,
        };
    }
    let mut direct = Direct::None;
    if let Some(hit) = shared
        .config
        .routes
        .lookup(head.method.slice(&head_bytes), head.path.slice(&head_bytes))
    {
        match hit.route {
            Route::Static(route) => {
                let counter = if route.page_cache {
                    &shared.stats.dispatch_page_cache
                } else {
                    &shared.stats.dispatch_static
                };
                bump(counter);
                let response = route.current();
                if !shared.config.routes.is_observed() {
                    return Dispatched::Static {
                        response,
                        head_only: hit.head_only,
                        version: head.version,
                        keep: head.keep_alive && !shared.is_draining(),
                    };
                }
                direct = Direct::Static {
                    response,
                    head_only: hit.head_only,
                };
            }
            Route::Handler(id) => {
                bump(&shared.stats.dispatch_handler);
                direct = Direct::Handler(id);
            }
        }
    } else {
        bump(&shared.stats.dispatch_rack);
    }
    let head_request = head.method.slice(&head_bytes) == b"HEAD";
    // A channel per request rather than per connection: an idle connection then holds
    // nothing but its socket.
    let (tx, rx) = chan::channel(RESPONSE_CHANNEL);
    let response = match protocol {
        Protocol::Http1 => Response::new(
            tx,
            head_request,
            head.version,
            head.keep_alive,
            shared.draining.clone(),
        ),
        Protocol::Http2 { .. } => Response::new_h2(tx, head_request, shared.draining.clone()),
    };
    let exchange = Box::new(Exchange {
        head,
        head_bytes,
        body,
        trailers,
        protocol,
        peer,
        listener: listener.clone(),
        response,
        direct,
    });
    // Refused: the engine answers 503 itself. A full queue keeps the connection; a closed
    // one (the engine is stopping) ends it.
    let (mut refused, keep) = match shared.queue.push(exchange) {
        Ok(()) => return Dispatched::Queued(rx),
        Err(PushError::Full(ex)) => {
            let keep = ex.head.keep_alive && !shared.is_draining();
            (ex, keep)
        }
        Err(PushError::Closed(ex)) => (ex, false),
    };
    bump(&shared.stats.rejected);
    rejected(shared, peer, 503, "queue_full");
    // Marked answered so dropping it does not abort the connection.
    refused.response.abort_msg();
    drop(refused);
    let bytes = simple_response(503, "Service Unavailable\n", !keep, &[("retry-after", "1")]);
    Dispatched::Answered {
        bytes,
        keep,
        status: 503,
    }
}

/// Counts a rejected request and logs one warn line about it (rate-limited).
pub(crate) fn rejected(shared: &Shared, peer: Peer, status: u16, reason: &'static str) {
    shared.stats.count_rejection(reason);
    warn_refused(shared, "request rejected", peer, Some(status), reason);
}

/// One warn line about a request or connection the engine refused, at most
/// `REJECT_LOG_PER_SECOND` a second; the first line after a suppressed stretch says how many
/// were left out, so a flood cannot fill the disk.
pub(crate) fn warn_refused(
    shared: &Shared,
    message: &str,
    peer: Peer,
    status: Option<u16>,
    reason: &str,
) {
    if !shared.log.enabled(Level::Warn) {
        return;
    }
    let Some(suppressed) = shared.reject_log.admit() else {
        return;
    };
    let peer = match peer {
        Peer::Tcp(addr) => addr.to_string(),
        Peer::Unix => "unix".to_string(),
    };
    let mut fields = vec![("peer", LogValue::Str(&peer))];
    if let Some(status) = status {
        fields.push(("status", LogValue::Num(status as u64)));
    }
    fields.push(("reason", LogValue::Str(reason)));
    if suppressed > 0 {
        fields.push(("suppressed", LogValue::Num(suppressed)));
    }
    shared.log.log(Level::Warn, message, &fields);
}

/// The answer to a request that does not parse; the connection closes after it.
pub(crate) fn parse_error_response(shared: &Shared, peer: Peer, err: ParseError) -> Vec<u8> {
    bump(&shared.stats.parse_errors);
    let status = err.status();
    rejected(shared, peer, status, err.reason());
    let body = format!("{}\n", hyperion_http::reason_phrase(status));
    simple_response(status, &body, true, &[])
}

/// The answer to a request that stalled (`request_read_timeout`); the connection closes.
pub(crate) fn timeout_response(shared: &Shared, peer: Peer) -> Vec<u8> {
    bump(&shared.stats.read_timeouts);
    rejected(shared, peer, 408, "read_timeout");
    simple_response(408, "Request Timeout\n", true, &[])
}

/// The server itself failed (e.g. no space for a request body's temp file).
pub(crate) fn internal_error_response(shared: &Shared, err: std::io::Error) -> Vec<u8> {
    shared.log.log(
        Level::Error,
        "could not store a request body",
        &[("error", LogValue::Str(&err.to_string()))],
    );
    simple_response(500, "Internal Server Error\n", true, &[])
}
