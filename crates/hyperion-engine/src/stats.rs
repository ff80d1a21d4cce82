//! Engine counters: plain atomics, bumped on the I/O thread, read as a snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default, Debug)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub requests_total: AtomicU64,
    pub parse_errors: AtomicU64,
    pub read_timeouts: AtomicU64,
    pub rejected: AtomicU64,
    /// Requests by who answered them.
    pub dispatch_rack: AtomicU64,
    pub dispatch_static: AtomicU64,
    pub dispatch_handler: AtomicU64,
    pub dispatch_page_cache: AtomicU64,
    /// HTTP/2 connections served (h2c prior knowledge or handed over after ALPN).
    pub h2_connections: AtomicU64,
    /// HTTP/2 streams accepted (requests).
    pub h2_streams: AtomicU64,
    /// Streams refused with REFUSED_STREAM because `max_total_streams` were open.
    pub h2_streams_refused: AtomicU64,
    /// RST_STREAM frames received from clients.
    pub h2_streams_reset: AtomicU64,
    /// Connections ended by a protocol error (GOAWAY sent or received with an error code).
    pub h2_protocol_errors: AtomicU64,
    /// Connections closed by an abuse defence (rapid reset, CONTINUATION, SETTINGS or PING flood): GOAWAY ENHANCE_YOUR_CALM.
    pub h2_abuse: AtomicU64,
    /// Every rejected request (parse errors, timeouts, 503s) by reason. Rare, so a lock is
    /// fine.
    pub by_reason: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub requests_total: u64,
    pub parse_errors: u64,
    pub read_timeouts: u64,
    pub rejected: u64,
    pub dispatch_rack: u64,
    pub dispatch_static: u64,
    pub dispatch_handler: u64,
    pub dispatch_page_cache: u64,
    pub h2_connections: u64,
    pub h2_streams: u64,
    pub h2_streams_refused: u64,
    pub h2_streams_reset: u64,
    pub h2_protocol_errors: u64,
    pub h2_abuse: u64,
}

impl Stats {
    pub fn count_rejection(&self, reason: &'static str) {
        let mut map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason).or_insert(0) += 1;
    }

    pub fn rejections_by_reason(&self) -> Vec<(&'static str, u64)> {
        let map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_active: get(&self.connections_active),
            requests_total: get(&self.requests_total),
            parse_errors: get(&self.parse_errors),
            read_timeouts: get(&self.read_timeouts),
            rejected: get(&self.rejected),
            dispatch_rack: get(&self.dispatch_rack),
            dispatch_static: get(&self.dispatch_static),
            dispatch_handler: get(&self.dispatch_handler),
            dispatch_page_cache: get(&self.dispatch_page_cache),
            h2_connections: get(&self.h2_connections),
            h2_streams: get(&self.h2_streams),
            h2_streams_refused: get(&self.h2_streams_refused),
            h2_streams_reset: get(&self.h2_streams_reset),
            h2_protocol_errors: get(&self.h2_protocol_errors),
            h2_abuse: get(&self.h2_abuse),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
