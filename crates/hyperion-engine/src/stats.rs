//! Engine counters: plain atomics, bumped on the I/O thread, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub requests_total: AtomicU64,
    pub parse_errors: AtomicU64,
    pub read_timeouts: AtomicU64,
    pub rejected: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub requests_total: u64,
    pub parse_errors: u64,
    pub read_timeouts: u64,
    pub rejected: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_active: get(&self.connections_active),
            requests_total: get(&self.requests_total),
            parse_errors: get(&self.parse_errors),
            read_timeouts: get(&self.read_timeouts),
            rejected: get(&self.rejected),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
