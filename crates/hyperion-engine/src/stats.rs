//! Engine counters: the engine's slot of the metrics region ([`crate::metrics`]), bumped with
//! relaxed atomics on the I/O thread and read as a snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::metrics::{Metrics, Slot};

pub struct Stats {
    metrics: Metrics,
    /// This engine's open connections. The slot has the same gauge for the whole process;
    /// this one decides when a stopping engine is idle, so no other engine may move it.
    pub connections_active: AtomicU64,
    /// Every rejected request (parse errors, timeouts, 503s) by reason, for this engine.
    /// Rare, so a lock is fine.
    pub by_reason: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::ops::Deref for Stats {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        self.metrics.slot()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub requests_total: u64,
    pub requests_in_flight: u64,
    pub parse_errors: u64,
    pub app_errors: u64,
    pub read_timeouts: u64,
    pub rejected: u64,
    pub bytes_written: u64,
    pub dispatch_rack: u64,
    pub dispatch_static: u64,
    pub dispatch_handler: u64,
    pub dispatch_page_cache: u64,
    pub dispatch_admin: u64,
    pub access_log_dropped: u64,
    /// TLS handshakes completed, failed (bad or closed by the client), timed out, and
    /// refused by the handshake rate limit.
    pub tls_handshakes: u64,
    pub tls_handshake_failures: u64,
    pub tls_handshake_timeouts: u64,
    pub tls_handshakes_rate_limited: u64,
    pub h2_connections: u64,
    pub h2_streams: u64,
    pub h2_streams_refused: u64,
    pub h2_streams_reset: u64,
    pub h2_protocol_errors: u64,
    pub h2_abuse: u64,
}

impl StatsSnapshot {
    /// The counters of a metrics slot (the slot's own `connections_active`).
    pub fn of_slot(slot: &Slot) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&slot.connections_accepted),
            connections_active: get(&slot.connections_active),
            requests_total: get(&slot.requests_total),
            requests_in_flight: get(&slot.requests_in_flight),
            parse_errors: get(&slot.parse_errors),
            app_errors: get(&slot.app_errors),
            read_timeouts: get(&slot.read_timeouts),
            rejected: get(&slot.rejected),
            bytes_written: get(&slot.bytes_written),
            dispatch_rack: get(&slot.dispatch_rack),
            dispatch_static: get(&slot.dispatch_static),
            dispatch_handler: get(&slot.dispatch_handler),
            dispatch_page_cache: get(&slot.dispatch_page_cache),
            dispatch_admin: get(&slot.dispatch_admin),
            access_log_dropped: get(&slot.access_log_dropped),
            tls_handshakes: get(&slot.tls_handshakes),
            tls_handshake_failures: get(&slot.tls_handshake_failures),
            tls_handshake_timeouts: get(&slot.tls_handshake_timeouts),
            tls_handshakes_rate_limited: get(&slot.tls_handshakes_rate_limited),
            h2_connections: get(&slot.h2_connections),
            h2_streams: get(&slot.h2_streams),
            h2_streams_refused: get(&slot.h2_streams_refused),
            h2_streams_reset: get(&slot.h2_streams_reset),
            h2_protocol_errors: get(&slot.h2_protocol_errors),
            h2_abuse: get(&slot.h2_abuse),
        }
    }
}

impl Stats {
    pub fn new(metrics: Metrics) -> Stats {
        Stats {
            metrics,
            connections_active: AtomicU64::new(0),
            by_reason: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn count_rejection(&self, reason: &'static str) {
        self.metrics.count_reason(reason);
        let mut map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason).or_insert(0) += 1;
    }

    pub fn rejections_by_reason(&self) -> Vec<(&'static str, u64)> {
        let map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// A connection opened (both gauges).
    pub(crate) fn connection_opened(&self) {
        bump(&self.metrics.slot().connections_accepted);
        self.metrics
            .slot()
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        self.connections_active.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection closed; true when it was this engine's last one.
    pub(crate) fn connection_closed(&self) -> bool {
        let slot = &self.metrics.slot().connections_active;
        // Saturating: a slot taken over while connections were open restarts at zero.
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.connections_active.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snap = StatsSnapshot::of_slot(self.metrics.slot());
        snap.connections_active = self.connections_active.load(Ordering::Relaxed);
        snap
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
