//! Log lines the engine writes itself, in the same format as the Ruby logger: text
//! (`2026-01-01T00:00:00.000Z WARN [hyperion] message key=value`) or one JSON object per line.
//!
//! Warn lines are rendered on the calling thread; access lines (one per response) travel as a
//! small record and are rendered on the writer thread. A dedicated writer thread writes them,
//! whole lines gathered into writes of at most `PIPE_BUF` bytes (so they never interleave with
//! other writers of the same pipe), and a slow or blocked stdout/stderr never stalls the I/O
//! thread: when the writer falls behind, lines are dropped and counted instead.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" => Level::Warn,
            "error" | "fatal" => Level::Error,
            _ => return None,
        })
    }

    fn label(self, upper: bool) -> &'static str {
        match (self, upper) {
            (Level::Debug, false) => "debug",
            (Level::Info, false) => "info",
            (Level::Warn, false) => "warn",
            (Level::Error, false) => "error",
            (Level::Debug, true) => "DEBUG",
            (Level::Info, true) => "INFO",
            (Level::Warn, true) => "WARN",
            (Level::Error, true) => "ERROR",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub level: Level,
    pub format: Format,
    /// Where info and debug go (warn and above go to `err_fd`).
    pub out_fd: i32,
    pub err_fd: i32,
    /// One info line per response (see [`AccessRecord`]).
    pub access_log: bool,
    /// Run the writer thread under `SCHED_BATCH` ([`crate::sched`]): its wake-ups then never
    /// preempt a thread serving requests.
    pub batch_writer: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: Level::Info,
            format: Format::Text,
            out_fd: 1,
            err_fd: 2,
            access_log: false,
            batch_writer: false,
        }
    }
}

/// A field value: numbers are written bare in JSON.
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
    /// Written with two decimals.
    Float(f64),
}

/// Lines waiting for the writer thread.
const QUEUE: usize = 4096;

/// What the writer thread receives.
enum Entry {
    /// A rendered line and the descriptor it goes to.
    Line(i32, Vec<u8>),
    Access(AccessRecord),
    /// Write out everything queued before it, then answer.
    Flush(SyncSender<()>),
}

/// Writes gathered into one `write(2)`: at most `PIPE_BUF`, which a pipe writes atomically.
const BATCH_BYTES: usize = 4096;
/// Entries taken from the queue before the batch is written.
const BATCH_ENTRIES: usize = 256;
/// After writing a batch the writer pauses this long before taking the next. Under load the
/// queue then fills meanwhile and is written in a few large writes, and the threads that queue
/// lines never have to wake the writer (it is not waiting): one wake-up per request would cost
/// a context switch per request on the server's core. A quiet server's lines still go out at
/// once, since the writer waits for them when the queue is empty.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);

/// One response, as the access log line reports it. Rendered on the writer thread.
pub struct AccessRecord {
    at: SystemTime,
    /// Method, path and request id, back to back.
    text: Vec<u8>,
    method_len: u16,
    path_len: u16,
    status: u16,
    bytes: u64,
    duration_us: u64,
    peer: crate::exchange::Peer,
    version: &'static str,
}

impl AccessRecord {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        at: SystemTime,
        method: &[u8],
        path: &[u8],
        request_id: Option<&[u8]>,
        status: u16,
        bytes: u64,
        elapsed: Duration,
        peer: crate::exchange::Peer,
        version: &'static str,
    ) -> AccessRecord {
        let method = &method[..method.len().min(64)];
        let path = &path[..path.len().min(8192)];
        let id = request_id.unwrap_or(b"");
        let mut text = Vec::with_capacity(method.len() + path.len() + id.len());
        text.extend_from_slice(method);
        text.extend_from_slice(path);
        text.extend_from_slice(id);
        AccessRecord {
            at,
            text,
            method_len: method.len() as u16,
            path_len: path.len() as u16,
            status,
            bytes,
            duration_us: elapsed.as_micros().min(u64::MAX as u128) as u64,
            peer,
            version,
        }
    }

    pub fn render(&self, format: Format) -> Vec<u8> {
        let (method, rest) = self.text.split_at(self.method_len as usize);
        let (path, id) = rest.split_at(self.path_len as usize);
        let method = String::from_utf8_lossy(method);
        let path = String::from_utf8_lossy(path);
        let id = String::from_utf8_lossy(id);
        let addr = match self.peer {
            crate::exchange::Peer::Tcp(addr) => addr.ip().to_string(),
            crate::exchange::Peer::Unix => "unix".to_string(),
        };
        let mut fields = vec![
            ("method", Value::Str(&method)),
            ("path", Value::Str(&path)),
            ("status", Value::Num(self.status as u64)),
            (
                "duration_ms",
                Value::Float(self.duration_us as f64 / 1000.0),
            ),
            ("remote_addr", Value::Str(&addr)),
            ("http_version", Value::Str(self.version)),
            ("bytes", Value::Num(self.bytes)),
        ];
        if !id.is_empty() {
            fields.push(("request_id", Value::Str(&id)));
        }
        render(format, Level::Info, "request", &fields, self.at)
    }
}

pub struct Logger {
    config: LogConfig,
    /// The writer thread's queue, started on first use (`None`: it could not be started).
    tx: OnceLock<Option<SyncSender<Entry>>>,
    /// Lines dropped because the writer could not keep up.
    pub dropped: AtomicU64,
}

impl Logger {
    pub fn new(config: LogConfig) -> Logger {
        Logger {
            config,
            tx: OnceLock::new(),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level >= self.config.level
    }

    pub fn log(&self, level: Level, message: &str, fields: &[(&str, Value<'_>)]) {
        if !self.enabled(level) {
            return;
        }
        let line = render(
            self.config.format,
            level,
            message,
            fields,
            SystemTime::now(),
        );
        let fd = if level >= Level::Warn {
            self.config.err_fd
        } else {
            self.config.out_fd
        };
        if !self.send(Entry::Line(fd, line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (up to `limit`) until every line queued so far is written: the engine calls it as
    /// it stops, so the last requests' lines are not lost with the process.
    pub fn flush(&self, limit: std::time::Duration) {
        let Some(Some(tx)) = self.tx.get() else {
            return;
        };
        let (done, wait) = sync_channel(1);
        if tx.try_send(Entry::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(limit);
        }
    }

    /// Queues one access line; false when it had to be dropped (the writer is behind).
    pub fn access(&self, record: AccessRecord) -> bool {
        self.send(Entry::Access(record))
    }

    fn send(&self, entry: Entry) -> bool {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = sync_channel::<Entry>(QUEUE);
            let config = self.config.clone();
            std::thread::Builder::new()
                .name("hyperion-log".into())
                .spawn(move || write_entries(rx, config))
                .ok()
                .map(|_| tx)
        });
        match tx.as_ref().map(|tx| tx.try_send(entry)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) | Some(Err(TrySendError::Disconnected(_))) | None => {
                false
            }
        }
    }
}

/// The writer thread: takes what is queued, up to a batch, and writes whole lines, each
/// descriptor's lines in as few writes as `BATCH_BYTES` allows.
fn write_entries(rx: Receiver<Entry>, config: LogConfig) {
    if config.batch_writer {
        // Unchanged where the system forbids it: the writer works the same, only less politely.
        let _ = crate::sched::prefer_batch();
    }
    let mut out: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut err: Vec<u8> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut taken = 0;
        let mut flushed = None;
        while let Some(entry) = next {
            let (fd, line) = match entry {
                Entry::Line(fd, line) => (fd, line),
                Entry::Access(record) => (config.out_fd, record.render(config.format)),
                Entry::Flush(done) => {
                    flushed = Some(done);
                    break;
                }
            };
            let buf = if fd == config.out_fd {
                &mut out
            } else {
                &mut err
            };
            if !buf.is_empty() && buf.len() + line.len() > BATCH_BYTES {
                write_fd(fd, buf);
                buf.clear();
            }
            if line.len() > BATCH_BYTES {
                write_fd(fd, &line);
            } else {
                buf.extend_from_slice(&line);
            }
            taken += 1;
            next = if taken < BATCH_ENTRIES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !out.is_empty() {
            write_fd(config.out_fd, &out);
            out.clear();
        }
        if !err.is_empty() {
            write_fd(config.err_fd, &err);
            err.clear();
        }
        match flushed {
            Some(done) => {
                let _ = done.send(());
            }
            None => std::thread::sleep(COALESCE),
        }
    }
}

/// One whole line in one write; EINTR retried, anything else given up (a logger must never
/// take the server down).
fn write_fd(fd: i32, line: &[u8]) {
    let mut rest = line;
    while !rest.is_empty() {
        // SAFETY: writes from a live slice to a descriptor the embedder owns.
        let n = unsafe { libc::write(fd, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}

pub fn render(
    format: Format,
    level: Level,
    message: &str,
    fields: &[(&str, Value<'_>)],
    now: SystemTime,
) -> Vec<u8> {
    let mut line = Vec::with_capacity(128);
    let ts = timestamp(now);
    match format {
        Format::Text => {
            let _ = write!(line, "{ts} {} [hyperion] {message}", level.label(true));
            for (key, value) in fields {
                let _ = write!(line, " {key}=");
                match value {
                    Value::Num(n) => {
                        let _ = write!(line, "{n}");
                    }
                    Value::Float(f) => {
                        let _ = write!(line, "{f:.2}");
                    }
                    Value::Str(s) if is_bare(s) => line.extend_from_slice(s.as_bytes()),
                    Value::Str(s) => json_string(&mut line, s),
                }
            }
        }
        Format::Json => {
            let _ = write!(
                line,
                "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"source\":\"hyperion\",\"message\":",
                level.label(false)
            );
            json_string(&mut line, message);
            for (key, value) in fields {
                line.push(b',');
                json_string(&mut line, key);
                line.push(b':');
                match value {
                    Value::Num(n) => {
                        let _ = write!(line, "{n}");
                    }
                    Value::Float(f) if f.is_finite() => {
                        let _ = write!(line, "{f:.2}");
                    }
                    Value::Float(_) => line.extend_from_slice(b"null"),
                    Value::Str(s) => json_string(&mut line, s),
                }
            }
            line.push(b'}');
        }
    }
    line.push(b'\n');
    line
}

/// Written without quotes in text format: no whitespace, quote, `=` or backslash.
fn is_bare(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'=' && b != b'\\' && b != 0x7f)
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Lets through at most `per_second` events per second; the first event after a suppressed
/// stretch learns how many were suppressed.
pub struct RateLimit {
    per_second: u32,
    state: Mutex<(Instant, u32, u64)>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed_before)` when this event may be logged.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (window, count, suppressed) = &mut *state;
        let now = Instant::now();
        if now.duration_since(*window) >= Duration::from_secs(1) {
            *window = now;
            *count = 0;
        }
        if *count < self.per_second {
            *count += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + 42)
    }

    #[test]
    fn text_lines_match_the_ruby_logger() {
        let line = render(
            Format::Text,
            Level::Warn,
            "request rejected",
            &[
                ("peer", Value::Str("127.0.0.1:5000")),
                ("status", Value::Num(400)),
                ("detail", Value::Str("two words")),
            ],
            at(1_767_225_600),
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2026-01-01T00:00:00.042Z WARN [hyperion] request rejected peer=127.0.0.1:5000 status=400 detail=\"two words\"\n"
        );
    }

    #[test]
    fn json_lines_are_one_escaped_object() {
        let line = render(
            Format::Json,
            Level::Warn,
            "say \"hi\"\n",
            &[
                ("status", Value::Num(431)),
                ("reason", Value::Str("a\u{1}b")),
            ],
            at(0),
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"ts\":\"1970-01-01T00:00:00.042Z\",\"level\":\"warn\",\"source\":\"hyperion\",\"message\":\"say \\\"hi\\\"\\n\",\"status\":431,\"reason\":\"a\\u0001b\"}\n"
        );
    }

    #[test]
    fn rate_limit_admits_a_burst_then_counts_the_rest() {
        let limit = RateLimit::new(3);
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        // A new window reports what was suppressed.
        limit.state.lock().unwrap().0 -= Duration::from_secs(2);
        assert_eq!(limit.admit(), Some(2));
        assert_eq!(limit.admit(), Some(0));
    }

    #[test]
    fn access_lines_have_every_field() {
        let record = AccessRecord::new(
            at(1_767_225_600),
            b"GET",
            b"/users/7",
            Some(b"abc-1"),
            200,
            1234,
            Duration::from_micros(46_630),
            crate::exchange::Peer::Tcp("127.0.0.1:4000".parse().unwrap()),
            "HTTP/1.1",
        );
        assert_eq!(
            String::from_utf8(record.render(Format::Text)).unwrap(),
            "2026-01-01T00:00:00.042Z INFO [hyperion] request method=GET path=/users/7 status=200 duration_ms=46.63 remote_addr=127.0.0.1 http_version=HTTP/1.1 bytes=1234 request_id=abc-1\n"
        );
        assert_eq!(
            String::from_utf8(record.render(Format::Json)).unwrap(),
            "{\"ts\":\"2026-01-01T00:00:00.042Z\",\"level\":\"info\",\"source\":\"hyperion\",\"message\":\"request\",\"method\":\"GET\",\"path\":\"/users/7\",\"status\":200,\"duration_ms\":46.63,\"remote_addr\":\"127.0.0.1\",\"http_version\":\"HTTP/1.1\",\"bytes\":1234,\"request_id\":\"abc-1\"}\n"
        );
    }

    /// Lines from many threads reach the descriptor whole, in batches, none lost while the
    /// queue has room.
    #[test]
    fn access_lines_are_written_whole() {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let logger = std::sync::Arc::new(Logger::new(LogConfig {
            out_fd: fds[1],
            access_log: true,
            format: Format::Json,
            ..LogConfig::default()
        }));
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                let n =
                    unsafe { libc::read(fds[0], buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n <= 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n as usize]);
                if all.iter().filter(|b| **b == b'\n').count() >= 400 {
                    break;
                }
            }
            all
        });
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let logger = logger.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let path = format!("/t{t}/{i}");
                        let record = AccessRecord::new(
                            SystemTime::now(),
                            b"GET",
                            path.as_bytes(),
                            None,
                            200,
                            1,
                            Duration::from_millis(1),
                            crate::exchange::Peer::Unix,
                            "HTTP/1.1",
                        );
                        while !logger.access(record_clone(&record)) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = String::from_utf8(reader.join().unwrap()).unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 400);
        for line in lines {
            assert!(
                line.starts_with("{\"ts\":") && line.ends_with('}'),
                "{line}"
            );
        }
        unsafe {
            libc::close(fds[1]);
            libc::close(fds[0]);
        }
    }

    /// A reader that never reads: the writer thread blocks on the full pipe, the queue fills,
    /// and from then on lines are refused at once instead of blocking the caller.
    #[test]
    fn a_blocked_writer_makes_access_lines_drop_not_wait() {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let logger = Logger::new(LogConfig {
            out_fd: fds[1],
            access_log: true,
            ..LogConfig::default()
        });
        let record = AccessRecord::new(
            SystemTime::now(),
            b"GET",
            &[b'x'; 2000],
            None,
            200,
            1,
            Duration::from_millis(1),
            crate::exchange::Peer::Unix,
            "HTTP/1.1",
        );
        let mut refused = 0;
        // A pipe holds 64 KiB by default; the queue 4096 lines of about 2 KiB each.
        for _ in 0..(QUEUE + 200) {
            if !logger.access(record_clone(&record)) {
                refused += 1;
            }
        }
        assert!(refused > 0);
        // The writer thread fails its pending writes (EPIPE) and ends once the logger is gone;
        // the write end stays open so its number cannot be reused under that thread.
        unsafe { libc::close(fds[0]) };
    }

    fn record_clone(r: &AccessRecord) -> AccessRecord {
        AccessRecord {
            at: r.at,
            text: r.text.clone(),
            ..*r
        }
    }

    #[test]
    fn levels_filter() {
        let logger = Logger::new(LogConfig {
            level: Level::Warn,
            ..LogConfig::default()
        });
        assert!(!logger.enabled(Level::Info));
        assert!(logger.enabled(Level::Error));
    }
}
