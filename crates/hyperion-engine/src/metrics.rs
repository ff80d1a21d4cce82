//! Server metrics in a memory region that every process of a cluster can read.
//!
//! The region is an anonymous shared mapping (`MAP_SHARED | MAP_ANONYMOUS`). A cluster master
//! creates it before forking ([`init_process`]), so every worker inherits the same pages; each
//! worker writes only its own [`Slot`] (index = worker index, kept by a replacement worker, so
//! its counters continue) and a scrape on any worker renders every slot. A single process works
//! the same way with one slot.
//!
//! Everything in the region is an atomic integer: counters are bumped with relaxed adds, and
//! the variable parts (histogram series, counter names) are claimed with a compare-and-swap and
//! published with a release store. No lock, no allocation on the request path.
//!
//! Cardinality is bounded by construction: a fixed number of histogram series per slot (paths
//! are templated first: numeric segments become `:id`, UUIDs `:uuid`), overflow goes to the
//! path label `__other__`; a fixed number of named counters (custom counters and rejection
//! reasons) for the whole region.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Histogram series per slot.
pub const SERIES: usize = 128;
/// Series only paths that overflowed (`__other__`) may take, so they always find room.
const OVERFLOW_RESERVE: usize = 16;
/// Named counters (custom and rejection reasons), shared by every slot.
pub const NAMES: usize = 128;
/// Longest counter name, in bytes.
pub const NAME_MAX: usize = 56;
/// Longest series key (status class, method, space, templated path), in bytes.
const KEY_MAX: usize = 120;
/// Templated paths longer than this are reported as `__other__`.
const PATH_MAX: usize = 100;
/// Status codes counted one by one: 100..=599; anything else is counted under 0.
const STATUS_CODES: usize = 600;
/// Histogram bucket bounds, in microseconds; one more bucket holds everything above.
const BUCKETS_US: [u64; 12] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
const BUCKET_LABELS: [&str; 12] = [
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];
/// The path label of requests whose own path found no room, or was too long.
pub const OTHER_PATH: &str = "__other__";

const MAGIC: u64 = 0x4859_5045_524d_4554; // "HYPERMET"

const FREE: u64 = 0;
const CLAIMED: u64 = 1;
const READY: u64 = 2;

/// What a named counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// `Hyperion.metrics.increment(:name)`, exported as `hyperion_<name>`.
    Custom = 1,
    /// A rejected request's reason, exported as `hyperion_rejections_total{reason=...}`.
    Reason = 2,
}

#[repr(C)]
struct Name {
    state: AtomicU64,
    kind: AtomicU64,
    len: AtomicU64,
    bytes: [AtomicU64; NAME_MAX / 8],
}

#[repr(C)]
struct Header {
    magic: AtomicU64,
    slots: AtomicU64,
    names: [Name; NAMES],
}

#[repr(C)]
struct Series {
    state: AtomicU64,
    len: AtomicU64,
    key: [AtomicU64; KEY_MAX / 8],
    /// Not cumulative: bucket `i` counts durations in (bound[i-1], bound[i]]; the last one
    /// counts everything above the largest bound.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// One worker's counters. Gauges (`connections_active`, `requests_in_flight`) are reset when
/// a worker takes the slot over.
#[repr(C)]
pub struct Slot {
    /// The process that owns the slot (0: never used, not rendered).
    pub pid: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub requests_total: AtomicU64,
    pub requests_in_flight: AtomicU64,
    pub parse_errors: AtomicU64,
    pub app_errors: AtomicU64,
    pub read_timeouts: AtomicU64,
    /// 503 answers (queue full, or closed while stopping).
    pub rejected: AtomicU64,
    pub bytes_written: AtomicU64,
    pub dispatch_rack: AtomicU64,
    pub dispatch_static: AtomicU64,
    pub dispatch_handler: AtomicU64,
    pub dispatch_page_cache: AtomicU64,
    pub dispatch_admin: AtomicU64,
    pub access_log_dropped: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub tls_handshake_timeouts: AtomicU64,
    pub tls_handshakes_rate_limited: AtomicU64,
    pub h2_connections: AtomicU64,
    pub h2_streams: AtomicU64,
    pub h2_streams_refused: AtomicU64,
    pub h2_streams_reset: AtomicU64,
    pub h2_protocol_errors: AtomicU64,
    pub h2_abuse: AtomicU64,
    /// Observations that found no histogram series at all.
    pub series_overflow: AtomicU64,
    responses: [AtomicU64; STATUS_CODES],
    named: [AtomicU64; NAMES],
    /// `hashes[i]` is series `i`'s key hash once it is ready: lookups scan this dense array.
    hashes: [AtomicU64; SERIES],
    series: [Series; SERIES],
}

/// Reads one counter of a slot.
type Field = fn(&Slot) -> &AtomicU64;
/// The counters every slot renders, in order: (field, name, type, help).
type Family = (Field, &'static str, &'static str, &'static str);

const FAMILIES: &[Family] = &[
    (
        |s| &s.connections_accepted,
        "hyperion_connections_accepted_total",
        "counter",
        "Connections accepted.",
    ),
    (
        |s| &s.connections_active,
        "hyperion_connections_active",
        "gauge",
        "Open connections, idle keep-alive ones included.",
    ),
    (
        |s| &s.requests_total,
        "hyperion_requests_total",
        "counter",
        "Requests read completely (head and body) and dispatched.",
    ),
    (
        |s| &s.requests_in_flight,
        "hyperion_requests_in_flight",
        "gauge",
        "Requests read but not yet completely answered.",
    ),
    (
        |s| &s.parse_errors,
        "hyperion_parse_errors_total",
        "counter",
        "Requests rejected because they do not parse (4xx/5xx answered by the engine).",
    ),
    (
        |s| &s.app_errors,
        "hyperion_app_errors_total",
        "counter",
        "Requests whose application raised or returned an invalid response (answered 500).",
    ),
    (
        |s| &s.read_timeouts,
        "hyperion_read_timeouts_total",
        "counter",
        "Requests that stalled while being read (answered 408).",
    ),
    (
        |s| &s.rejected,
        "hyperion_rejected_total",
        "counter",
        "Requests answered 503 because the exchange queue was full or the server was stopping.",
    ),
    (
        |s| &s.bytes_written,
        "hyperion_bytes_written_total",
        "counter",
        "Response bytes written to sockets.",
    ),
    (
        |s| &s.tls_handshakes,
        "hyperion_tls_handshakes_total",
        "counter",
        "TLS handshakes completed.",
    ),
    (
        |s| &s.tls_handshake_failures,
        "hyperion_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed (bad or closed by the client).",
    ),
    (
        |s| &s.tls_handshake_timeouts,
        "hyperion_tls_handshake_timeouts_total",
        "counter",
        "TLS handshakes cut off by tls_handshake_timeout.",
    ),
    (
        |s| &s.tls_handshakes_rate_limited,
        "hyperion_tls_handshakes_rate_limited_total",
        "counter",
        "Connections closed before their TLS handshake by tls_handshake_rate_limit.",
    ),
    (
        |s| &s.h2_connections,
        "hyperion_h2_connections_total",
        "counter",
        "HTTP/2 connections served (h2c prior knowledge or ALPN h2).",
    ),
    (
        |s| &s.h2_streams,
        "hyperion_h2_streams_total",
        "counter",
        "HTTP/2 streams accepted (requests).",
    ),
    (
        |s| &s.h2_streams_refused,
        "hyperion_h2_streams_refused_total",
        "counter",
        "HTTP/2 streams refused with REFUSED_STREAM because h2_max_total_streams were open.",
    ),
    (
        |s| &s.h2_streams_reset,
        "hyperion_h2_streams_reset_total",
        "counter",
        "RST_STREAM frames received from clients.",
    ),
    (
        |s| &s.h2_protocol_errors,
        "hyperion_h2_protocol_errors_total",
        "counter",
        "HTTP/2 connections ended by a protocol error.",
    ),
    (
        |s| &s.h2_abuse,
        "hyperion_h2_abuse_total",
        "counter",
        "HTTP/2 connections closed by an abuse defence (rapid reset, CONTINUATION, SETTINGS or PING flood).",
    ),
    (
        |s| &s.access_log_dropped,
        "hyperion_access_log_dropped_total",
        "counter",
        "Access log lines dropped because the log writer fell behind.",
    ),
    (
        |s| &s.series_overflow,
        "hyperion_request_duration_dropped_total",
        "counter",
        "Requests not recorded in the duration histogram because every series was taken.",
    ),
];

const DISPATCH: &[(Field, &str)] = &[
    (|s| &s.dispatch_rack, "rack"),
    (|s| &s.dispatch_static, "static"),
    (|s| &s.dispatch_handler, "handler"),
    (|s| &s.dispatch_page_cache, "page_cache"),
    (|s| &s.dispatch_admin, "admin"),
];

/// Every metric name the renderer can emit besides custom counters.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = FAMILIES.iter().map(|f| f.1).collect();
    names.extend([
        "hyperion_dispatch_total",
        "hyperion_responses_total",
        "hyperion_rejections_total",
        "hyperion_request_duration_seconds",
    ]);
    names
}

/// The mapping and its size. Zeroed memory is a valid, empty region.
pub struct Region {
    ptr: *mut u8,
    len: usize,
    slots: usize,
}

// SAFETY: every access to the mapping goes through atomics.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Maps a region with `slots` worker slots (at least one).
    pub fn new(slots: usize) -> io::Result<Region> {
        let slots = slots.max(1);
        let len = std::mem::size_of::<Header>() + slots * std::mem::size_of::<Slot>();
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = Region {
            ptr: ptr as *mut u8,
            len,
            slots,
        };
        region.header().magic.store(MAGIC, Ordering::Relaxed);
        region.header().slots.store(slots as u64, Ordering::Relaxed);
        Ok(region)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a Header, is page aligned and lives as long as self;
        // all-zero bytes are valid atomics.
        unsafe { &*(self.ptr as *const Header) }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slot `index` (indexes past the end share slots, modulo the count).
    pub fn slot(&self, index: usize) -> &Slot {
        let index = index % self.slots;
        // SAFETY: in bounds; Slots follow the Header back to back, each 8-byte aligned.
        unsafe {
            &*(self
                .ptr
                .add(std::mem::size_of::<Header>() + index * std::mem::size_of::<Slot>())
                as *const Slot)
        }
    }

    /// The id of the named counter `name` of `kind`, registering it if needed; `None` when the
    /// table is full or the name too long.
    pub fn name_id(&self, kind: NameKind, name: &str) -> Option<usize> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > NAME_MAX {
            return None;
        }
        let words = pack::<{ NAME_MAX / 8 }>(bytes);
        for (id, entry) in self.header().names.iter().enumerate() {
            let mut state = entry.state.load(Ordering::Acquire);
            if state == FREE {
                if entry
                    .state
                    .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    entry.kind.store(kind as u64, Ordering::Relaxed);
                    entry.len.store(bytes.len() as u64, Ordering::Relaxed);
                    for (slot, word) in entry.bytes.iter().zip(words) {
                        slot.store(word, Ordering::Relaxed);
                    }
                    entry.state.store(READY, Ordering::Release);
                    return Some(id);
                }
                state = entry.state.load(Ordering::Acquire);
            }
            // Another process is writing this entry: it takes nanoseconds. Bounded, in case
            // that process died mid-write (the entry is then skipped).
            let mut spins = 0;
            while state == CLAIMED && spins < 100_000 {
                std::hint::spin_loop();
                spins += 1;
                state = entry.state.load(Ordering::Acquire);
            }
            if state == READY
                && entry.kind.load(Ordering::Relaxed) == kind as u64
                && entry.len.load(Ordering::Relaxed) == bytes.len() as u64
                && entry
                    .bytes
                    .iter()
                    .zip(words)
                    .all(|(slot, word)| slot.load(Ordering::Relaxed) == word)
            {
                return Some(id);
            }
        }
        None
    }

    /// Every registered name: (id, kind, name).
    fn names(&self) -> Vec<(usize, u64, String)> {
        let mut out = Vec::new();
        for (id, entry) in self.header().names.iter().enumerate() {
            if entry.state.load(Ordering::Acquire) != READY {
                continue;
            }
            let len = entry.len.load(Ordering::Relaxed) as usize;
            let bytes = unpack(&entry.bytes, len);
            out.push((
                id,
                entry.kind.load(Ordering::Relaxed),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        out
    }

    /// Renders every used slot in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let slots: Vec<(usize, &Slot)> = (0..self.slots)
            .map(|i| (i, self.slot(i)))
            .filter(|(_, s)| s.pid.load(Ordering::Relaxed) != 0)
            .collect();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (field, name, kind, help) in FAMILIES {
            family(&mut out, name, kind, help);
            for (i, slot) in &slots {
                let _ = writeln!(out, "{name}{{worker_id=\"{i}\"}} {}", get(field(slot)));
            }
        }
        family(
            &mut out,
            "hyperion_dispatch_total",
            "counter",
            "Requests by who answered them: rack (the app), static (handle_static), handler (Server.handle), page_cache (preload_static).",
        );
        for (i, slot) in &slots {
            for (field, kind) in DISPATCH {
                let _ = writeln!(
                    out,
                    "hyperion_dispatch_total{{worker_id=\"{i}\",kind=\"{kind}\"}} {}",
                    get(field(slot))
                );
            }
        }
        family(
            &mut out,
            "hyperion_responses_total",
            "counter",
            "Responses by status code (0: outside 100..599).",
        );
        for (i, slot) in &slots {
            for (code, count) in slot.responses.iter().enumerate() {
                let count = get(count);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "hyperion_responses_total{{worker_id=\"{i}\",status=\"{code}\"}} {count}"
                    );
                }
            }
        }
        // Names can in rare races be registered twice; merge them so no series repeats.
        let names = self.names();
        let mut reasons: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        let mut customs: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (id, kind, name) in &names {
            if *kind == NameKind::Reason as u64 {
                reasons.entry(name).or_default().push(*id);
            } else if *kind == NameKind::Custom as u64 {
                customs.entry(name).or_default().push(*id);
            }
        }
        family(
            &mut out,
            "hyperion_rejections_total",
            "counter",
            "Requests the engine refused, by reason (parse errors, read_timeout, queue_full).",
        );
        for (i, slot) in &slots {
            for (reason, ids) in &reasons {
                let count: u64 = ids.iter().map(|id| get(&slot.named[*id])).sum();
                let _ = write!(out, "hyperion_rejections_total{{worker_id=\"{i}\",reason=");
                label_value(&mut out, reason);
                let _ = writeln!(out, "}} {count}");
            }
        }
        family(
            &mut out,
            "hyperion_request_duration_seconds",
            "histogram",
            "Time from a complete request head to the last byte of the response written, by method, templated path and status class.",
        );
        for (i, slot) in &slots {
            render_series(&mut out, *i, slot);
        }
        for (name, ids) in &customs {
            let metric = format!("hyperion_{name}");
            family(
                &mut out,
                &metric,
                "counter",
                "Custom counter (Hyperion.metrics.increment).",
            );
            for (i, slot) in &slots {
                let count: u64 = ids.iter().map(|id| get(&slot.named[*id])).sum();
                let _ = writeln!(out, "{metric}{{worker_id=\"{i}\"}} {count}");
            }
        }
        out
    }
}

/// Regions unmapped so far: a thread's [`LastSeries`] from before an unmapping is stale (a
/// new region may be mapped at the same address).
static REGIONS_UNMAPPED: AtomicU64 = AtomicU64::new(0);

impl Drop for Region {
    fn drop(&mut self) {
        REGIONS_UNMAPPED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: unmaps exactly what `new` mapped; no reference outlives self.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, quoted, with `\`, `"` and newlines escaped.
fn label_value(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render_series(out: &mut String, worker: usize, slot: &Slot) {
    for series in &slot.series {
        if series.state.load(Ordering::Acquire) != READY {
            continue;
        }
        let len = series.len.load(Ordering::Relaxed) as usize;
        let key = unpack(&series.key, len);
        let key = String::from_utf8_lossy(&key);
        let Some((head, path)) = key.split_once(' ') else {
            continue;
        };
        let (class, method) = head.split_at(1);
        let mut labels = format!("worker_id=\"{worker}\",method=");
        label_value(&mut labels, method);
        labels.push_str(",path=");
        label_value(&mut labels, path);
        let _ = write!(labels, ",status=\"{class}xx\"");
        let mut cumulative = 0;
        for (bucket, le) in series.buckets.iter().zip(BUCKET_LABELS) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hyperion_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += series.buckets[BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "hyperion_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
        );
        let sum = series.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "hyperion_request_duration_seconds_sum{{{labels}}} {sum}"
        );
        let _ = writeln!(
            out,
            "hyperion_request_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
}

/// Bytes packed little-endian into words, zero padded.
fn pack<const N: usize>(bytes: &[u8]) -> [u64; N] {
    let mut words = [0u64; N];
    for (i, chunk) in bytes.chunks(8).take(N).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_le_bytes(word);
    }
    words
}

fn unpack(words: &[AtomicU64], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 8);
    for word in words {
        out.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A series key, built on the stack: status class digit, method, a space, templated path.
pub struct Key {
    buf: [u8; KEY_MAX],
    len: usize,
}

impl Key {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.len + bytes.len() > KEY_MAX {
            return false;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }

    fn hash(&self) -> u64 {
        // 0 means "free" in the hash index, so it is never produced.
        crate::routes::fnv1a(crate::routes::FNV_OFFSET, self.as_bytes()).max(1)
    }
}

/// The method label: the usual methods as sent, anything else `OTHER` (bounded cardinality).
fn method_label(method: &[u8]) -> &'static [u8] {
    const KNOWN: [&[u8]; 9] = [
        b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"CONNECT", b"TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(b"OTHER")
}

fn is_uuid(seg: &[u8]) -> bool {
    seg.len() == 36
        && seg.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Appends `path` templated: numeric segments become `:id`, UUIDs `:uuid`. Returns false when
/// it does not fit in `limit` bytes of `key` or is not an origin-form path.
fn push_templated(key: &mut Key, path: &[u8], limit: usize) -> bool {
    if path.is_empty() {
        return key.push(b"/");
    }
    if path[0] != b'/' {
        return false;
    }
    let start = key.len;
    for seg in path[1..].split(|&b| b == b'/') {
        let piece: &[u8] = if !seg.is_empty() && seg.iter().all(u8::is_ascii_digit) {
            b":id"
        } else if is_uuid(seg) {
            b":uuid"
        } else {
            seg
        };
        if key.len - start + 1 + piece.len() > limit || !key.push(b"/") || !key.push(piece) {
            key.len = start;
            return false;
        }
    }
    true
}

/// The series the last request recorded on this thread went to, by its method, raw path and
/// status. Series are never freed or moved, so the next request with the same three (a
/// keep-alive client asking the same path again, as a rule) skips building its key and
/// scanning the table for it.
struct LastSeries {
    /// `REGIONS_UNMAPPED` when it was recorded.
    epoch: u64,
    slot: *const Slot,
    series: *const Series,
    status: u16,
    method: [u8; 8],
    method_len: usize,
    path: [u8; PATH_MAX],
    path_len: usize,
}

impl LastSeries {
    fn find<'a>(slot: &'a Slot, method: &[u8], path: &[u8], status: u16) -> Option<&'a Series> {
        thread_local! {
            static LAST: std::cell::RefCell<Option<LastSeries>> =
                const { std::cell::RefCell::new(None) };
        }
        let cacheable = method.len() <= 8 && path.len() <= PATH_MAX;
        let epoch = REGIONS_UNMAPPED.load(Ordering::Relaxed);
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some(hit) = last.as_ref().filter(|l| {
                cacheable
                    && l.epoch == epoch
                    && std::ptr::eq(l.slot, slot)
                    && l.status == status
                    && l.method[..l.method_len] == *method
                    && l.path[..l.path_len] == *path
            }) {
                // SAFETY: `series` points into `slot`'s table: the same region, not unmapped
                // since (checked above), which never frees or moves a series.
                return Some(unsafe { &*hit.series });
            }
            let series = slot.series_of(method, path, status)?;
            if cacheable {
                let mut entry = LastSeries {
                    epoch,
                    slot,
                    series,
                    status,
                    method: [0; 8],
                    method_len: method.len(),
                    path: [0; PATH_MAX],
                    path_len: path.len(),
                };
                entry.method[..method.len()].copy_from_slice(method);
                entry.path[..path.len()].copy_from_slice(path);
                *last = Some(entry);
            }
            Some(series)
        })
    }
}

/// The templated form of a path, as used for the histogram's `path` label.
pub fn template_path(path: &[u8]) -> String {
    let mut key = Key {
        buf: [0; KEY_MAX],
        len: 0,
    };
    if !push_templated(&mut key, path, PATH_MAX) {
        return OTHER_PATH.to_string();
    }
    String::from_utf8_lossy(key.as_bytes()).into_owned()
}

fn series_key(method: &[u8], path: Option<&[u8]>, status: u16) -> Key {
    let mut key = Key {
        buf: [0; KEY_MAX],
        len: 0,
    };
    let class = if (100..600).contains(&status) {
        b'0' + (status / 100) as u8
    } else {
        b'0'
    };
    key.push(&[class]);
    key.push(method_label(method));
    key.push(b" ");
    let templated = match path {
        Some(path) => push_templated(&mut key, path, PATH_MAX),
        None => false,
    };
    if !templated {
        key.push(OTHER_PATH.as_bytes());
    }
    key
}

impl Slot {
    /// Marks the slot as owned by `pid` and clears its gauges: whoever had it before may have
    /// died with connections open.
    pub fn take_over(&self, pid: u32) {
        self.connections_active.store(0, Ordering::Relaxed);
        self.requests_in_flight.store(0, Ordering::Relaxed);
        self.pid.store(pid as u64, Ordering::Relaxed);
    }

    /// Counts one response with `status`.
    pub fn count_status(&self, status: u16) {
        let index = if (status as usize) < STATUS_CODES && status >= 100 {
            status as usize
        } else {
            0
        };
        self.responses[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses by status code, as counted so far.
    pub fn responses_by_status(&self) -> Vec<(u16, u64)> {
        self.responses
            .iter()
            .enumerate()
            .filter_map(|(code, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((code as u16, n))
            })
            .collect()
    }

    pub fn add_named(&self, id: usize, by: u64) {
        if let Some(counter) = self.named.get(id) {
            counter.fetch_add(by, Ordering::Relaxed);
        }
    }

    pub fn named(&self, id: usize) -> u64 {
        self.named.get(id).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records one request's duration in the histogram.
    pub fn observe(&self, method: &[u8], path: &[u8], status: u16, elapsed: Duration) {
        let Some(series) = LastSeries::find(self, method, path, status) else {
            self.series_overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let bucket = BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS_US.len());
        series.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        series.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The series of a request: its own path's, else its method's `__other__` path, else
    /// none (the table is full).
    fn series_of(&self, method: &[u8], path: &[u8], status: u16) -> Option<&Series> {
        let key = series_key(method, Some(path), status);
        match self.find_series(&key, SERIES - OVERFLOW_RESERVE) {
            Some(series) => Some(series),
            None => self.find_series(&series_key(method, None, status), SERIES),
        }
    }

    /// The series for `key` among the first `limit`, created if there is room.
    fn find_series(&self, key: &Key, limit: usize) -> Option<&Series> {
        let hash = key.hash();
        let words = pack::<{ KEY_MAX / 8 }>(key.as_bytes());
        for i in 0..limit {
            let mut seen = self.hashes[i].load(Ordering::Acquire);
            if seen == 0 {
                let series = &self.series[i];
                if series
                    .state
                    .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    series.len.store(key.len as u64, Ordering::Relaxed);
                    for (slot, word) in series.key.iter().zip(words) {
                        slot.store(word, Ordering::Relaxed);
                    }
                    series.state.store(READY, Ordering::Release);
                    self.hashes[i].store(hash, Ordering::Release);
                    return Some(series);
                }
                // Another thread is creating this series: wait for its hash.
                let mut spins = 0;
                while seen == 0 && spins < 100_000 {
                    std::hint::spin_loop();
                    spins += 1;
                    seen = self.hashes[i].load(Ordering::Acquire);
                }
            }
            if seen == hash {
                let series = &self.series[i];
                if series.len.load(Ordering::Relaxed) == key.len as u64
                    && series
                        .key
                        .iter()
                        .zip(words)
                        .all(|(slot, word)| slot.load(Ordering::Relaxed) == word)
                {
                    return Some(series);
                }
            }
        }
        None
    }

    /// Histogram series in use.
    pub fn series_count(&self) -> usize {
        self.hashes
            .iter()
            .filter(|h| h.load(Ordering::Relaxed) != 0)
            .count()
    }
}

/// A region and the slot this process writes.
#[derive(Clone)]
pub struct Metrics {
    region: Arc<Region>,
    slot: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("slots", &self.region.slots())
            .field("slot", &self.slot)
            .finish()
    }
}

impl Metrics {
    /// A one-slot region of its own (an engine embedded without a cluster, tests).
    pub fn private() -> Metrics {
        let region = Region::new(1).expect("cannot map the metrics region");
        region.slot(0).take_over(std::process::id());
        Metrics {
            region: Arc::new(region),
            slot: 0,
        }
    }

    pub fn slot(&self) -> &Slot {
        self.region.slot(self.slot)
    }

    pub fn slot_index(&self) -> usize {
        self.slot % self.region.slots()
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The whole region (every worker) in the Prometheus text format.
    pub fn render(&self) -> String {
        self.region.render()
    }

    /// Adds `by` to the custom counter `name` (see [`check_custom_name`]); false when the
    /// name table is full.
    pub fn increment(&self, name: &str, by: u64) -> bool {
        match self.region.name_id(NameKind::Custom, name) {
            Some(id) => {
                self.slot().add_named(id, by);
                true
            }
            None => false,
        }
    }

    /// Counts a rejected request's reason.
    pub fn count_reason(&self, reason: &str) {
        if let Some(id) = self.region.name_id(NameKind::Reason, reason) {
            self.slot().add_named(id, 1);
        }
    }

    /// This slot's rejections by reason.
    pub fn reasons(&self) -> Vec<(String, u64)> {
        self.region
            .names()
            .into_iter()
            .filter(|(_, kind, _)| *kind == NameKind::Reason as u64)
            .map(|(id, _, name)| (name, self.slot().named(id)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// This slot's custom counters.
    pub fn customs(&self) -> Vec<(String, u64)> {
        self.region
            .names()
            .into_iter()
            .filter(|(_, kind, _)| *kind == NameKind::Custom as u64)
            .map(|(id, _, name)| (name, self.slot().named(id)))
            .collect()
    }
}

/// Why a custom counter name is refused, if it is: names are `[A-Za-z_][A-Za-z0-9_]*`, at most
/// [`NAME_MAX`] bytes, and must not shadow a built-in metric.
pub fn check_custom_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let valid = !b.is_empty()
        && b.len() <= NAME_MAX
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !valid {
        return Err(format!(
            "invalid counter name {name:?}: use letters, digits and _ (at most {NAME_MAX} bytes, not starting with a digit)"
        ));
    }
    let exported = format!("hyperion_{name}");
    if builtin_names()
        .iter()
        .any(|b| exported == *b || exported.starts_with(&format!("{b}_")))
    {
        return Err(format!(
            "counter name {name:?} is taken by a built-in metric ({exported})"
        ));
    }
    Ok(())
}

static PROCESS: Mutex<Option<Metrics>> = Mutex::new(None);

/// This process's metrics: the region set up by [`init_process`] (cluster) or, on first use,
/// a one-slot region of its own.
pub fn process() -> Metrics {
    let mut guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(Metrics::private).clone()
}

/// Maps a region with `slots` slots for this process and the processes it forks (a cluster
/// master calls it before forking its workers).
pub fn init_process(slots: usize) -> io::Result<()> {
    let region = Region::new(slots)?;
    let mut guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    *guard = Some(Metrics {
        region: Arc::new(region),
        slot: 0,
    });
    Ok(())
}

/// Makes this process (a forked worker) write slot `index` of the inherited region. The
/// slot's counters continue from its previous owner; its gauges restart at zero.
pub fn set_process_slot(index: usize) {
    let mut guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let metrics = guard.get_or_insert_with(Metrics::private);
    metrics.slot = index;
    metrics.slot().take_over(std::process::id());
}

/// The whole server's metrics (every worker of a cluster) in the Prometheus text format, as
/// served on `/-/metrics`.
pub fn render_prometheus() -> String {
    process().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_templated() {
        assert_eq!(template_path(b"/users/42/posts/7"), "/users/:id/posts/:id");
        assert_eq!(
            template_path(b"/o/123e4567-e89b-12d3-a456-426614174000/x"),
            "/o/:uuid/x"
        );
        assert_eq!(template_path(b"/v1/items"), "/v1/items");
        assert_eq!(template_path(b"/a1/1a/"), "/a1/1a/");
        assert_eq!(template_path(b""), "/");
        assert_eq!(template_path(b"*"), OTHER_PATH);
        assert_eq!(template_path(&[b'/'; 200]), OTHER_PATH);
    }

    #[test]
    fn histogram_series_are_bounded_and_overflow_to_other() {
        let m = Metrics::private();
        for i in 0..1000 {
            let path = format!("/page-{i}");
            m.slot()
                .observe(b"GET", path.as_bytes(), 200, Duration::from_millis(3));
        }
        assert_eq!(m.slot().series_count(), SERIES - OVERFLOW_RESERVE + 1);
        let text = m.render();
        let other = text
            .lines()
            .find(|l| {
                l.starts_with("hyperion_request_duration_seconds_count")
                    && l.contains("path=\"__other__\"")
            })
            .expect("an __other__ series");
        let expected = 1000 - (SERIES - OVERFLOW_RESERVE);
        assert!(other.ends_with(&format!(" {expected}")), "{other}");
        // Distinct methods and classes of overflowing paths still find room.
        m.slot()
            .observe(b"POST", b"/new", 500, Duration::from_millis(1));
        assert!(m
            .render()
            .contains("method=\"POST\",path=\"__other__\",status=\"5xx\""));
    }

    #[test]
    fn repeated_requests_reach_their_own_series_through_the_thread_cache() {
        let count = |text: &str, method: &str, path: &str, status: &str| -> u64 {
            let prefix = format!(
                "hyperion_request_duration_seconds_count{{worker_id=\"0\",method=\"{method}\",path=\"{path}\",status=\"{status}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map_or(0, |n| n.parse().unwrap())
        };
        let m = Metrics::private();
        let s = m.slot();
        for (method, path, status) in [
            (&b"GET"[..], &b"/a"[..], 200),
            (b"GET", b"/a", 200),
            (b"GET", b"/b", 200),
            (b"GET", b"/a", 500),
            (b"POST", b"/a", 200),
            (b"GET", b"/a", 200),
        ] {
            s.observe(method, path, status, Duration::from_millis(1));
        }
        let text = m.render();
        assert_eq!(count(&text, "GET", "/a", "2xx"), 3, "{text}");
        assert_eq!(count(&text, "GET", "/b", "2xx"), 1);
        assert_eq!(count(&text, "GET", "/a", "5xx"), 1);
        assert_eq!(count(&text, "POST", "/a", "2xx"), 1);

        // A region made after another was dropped (perhaps at the same address) starts empty
        // and gets its own series.
        drop(m);
        let m = Metrics::private();
        m.slot()
            .observe(b"GET", b"/a", 200, Duration::from_millis(1));
        assert_eq!(count(&m.render(), "GET", "/a", "2xx"), 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::private();
        let s = m.slot();
        s.observe(b"GET", b"/u/1", 200, Duration::from_micros(500));
        s.observe(b"GET", b"/u/2", 204, Duration::from_millis(30));
        s.observe(b"GET", b"/u/3", 200, Duration::from_secs(20));
        s.observe(b"BREW", b"/u/3", 404, Duration::from_millis(1));
        let text = m.render();
        let labels = "worker_id=\"0\",method=\"GET\",path=\"/u/:id\",status=\"2xx\"";
        for (le, n) in [
            ("0.001", 1),
            ("0.025", 1),
            ("0.05", 2),
            ("10", 2),
            ("+Inf", 3),
        ] {
            let line =
                format!("hyperion_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}");
            assert!(text.contains(&line), "missing {line}\n{text}");
        }
        assert!(text.contains(&format!(
            "hyperion_request_duration_seconds_count{{{labels}}} 3"
        )));
        assert!(text.contains(&format!(
            "hyperion_request_duration_seconds_sum{{{labels}}} 20.0305"
        )));
        assert!(text.contains("method=\"OTHER\",path=\"/u/:id\",status=\"4xx\""));
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_render() {
        let m = Metrics::private();
        m.slot().requests_total.fetch_add(5, Ordering::Relaxed);
        m.slot().count_status(200);
        m.slot().count_status(200);
        m.slot().count_status(404);
        m.count_reason("bad_request_line");
        assert!(m.increment("jobs_enqueued", 3));
        let text = m.render();
        assert!(text.contains("hyperion_requests_total{worker_id=\"0\"} 5\n"));
        assert!(text.contains("hyperion_responses_total{worker_id=\"0\",status=\"200\"} 2\n"));
        assert!(text.contains("hyperion_responses_total{worker_id=\"0\",status=\"404\"} 1\n"));
        assert!(text.contains(
            "hyperion_rejections_total{worker_id=\"0\",reason=\"bad_request_line\"} 1\n"
        ));
        assert!(text.contains("# TYPE hyperion_jobs_enqueued counter\n"));
        assert!(text.contains("hyperion_jobs_enqueued{worker_id=\"0\"} 3\n"));
        for name in builtin_names() {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        // Every sample line belongs to a family announced before it.
        let mut announced = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| announced.contains(*b)))
                    .unwrap_or(name);
                assert!(announced.contains(base), "{line}");
            }
        }
    }

    #[test]
    fn custom_names_are_checked() {
        assert!(check_custom_name("jobs_done").is_ok());
        assert!(check_custom_name("9lives").is_err());
        assert!(check_custom_name("a-b").is_err());
        assert!(check_custom_name("").is_err());
        assert!(check_custom_name(&"x".repeat(NAME_MAX + 1)).is_err());
        assert!(check_custom_name("requests_total").is_err());
        assert!(check_custom_name("request_duration_seconds_bucket").is_err());
    }

    #[test]
    fn name_table_is_bounded() {
        let m = Metrics::private();
        for i in 0..NAMES {
            assert!(m.increment(&format!("c{i}"), 1));
        }
        assert!(m.increment("c0", 1), "an existing name still counts");
        assert!(!m.increment("one_too_many", 1));
    }

    /// The point of the region: a forked child's counts are visible to the parent (and to any
    /// other child) through the same pages.
    #[test]
    fn a_forked_process_writes_its_slot_and_the_parent_reads_it() {
        let region = Arc::new(Region::new(2).unwrap());
        region.slot(0).take_over(std::process::id());
        // SAFETY: the child only touches atomics in the mapping and exits at once.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let slot = region.slot(1);
            slot.take_over(std::process::id());
            slot.requests_total.fetch_add(7, Ordering::Relaxed);
            slot.observe(b"GET", b"/x/1", 200, Duration::from_millis(2));
            if let Some(id) = region.name_id(NameKind::Custom, "from_child") {
                slot.add_named(id, 2);
            }
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let text = region.render();
        assert!(
            text.contains("hyperion_requests_total{worker_id=\"1\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("hyperion_from_child{worker_id=\"1\"} 2\n"));
        assert!(text.contains("hyperion_from_child{worker_id=\"0\"} 0\n"));
        assert!(text.contains("worker_id=\"1\",method=\"GET\",path=\"/x/:id\",status=\"2xx\""));
    }
}
