//! Log lines the engine writes itself, in the same format as the Ruby logger: text
//! (`2026-01-01T00:00:00.000Z WARN [hyperion] message key=value`) or one JSON object per line.
//!
//! Lines are rendered on the calling thread and written by a dedicated writer thread, one
//! `write(2)` per line, so a slow or blocked stderr never stalls the I/O thread: when the
//! writer falls behind, lines are dropped and counted instead.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: Level::Info,
            format: Format::Text,
            out_fd: 1,
            err_fd: 2,
        }
    }
}

/// A field value: numbers are written bare in JSON.
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
}

/// Lines waiting for the writer thread.
const QUEUE: usize = 4096;

/// A rendered line and the descriptor it goes to.
type Line = (i32, Vec<u8>);

pub struct Logger {
    config: LogConfig,
    tx: Mutex<Option<SyncSender<Line>>>,
    /// Lines dropped because the writer could not keep up.
    pub dropped: AtomicU64,
}

impl Logger {
    pub fn new(config: LogConfig) -> Logger {
        Logger {
            config,
            tx: Mutex::new(None),
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
        let mut guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let (tx, rx) = sync_channel::<Line>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("hyperion-log".into())
                .spawn(move || {
                    for (fd, line) in rx {
                        write_fd(fd, &line);
                    }
                });
            if spawned.is_err() {
                write_fd(fd, &line);
                return;
            }
            *guard = Some(tx);
        }
        if let Some(tx) = guard.as_ref() {
            match tx.try_send((fd, line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
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
    fn levels_filter() {
        let logger = Logger::new(LogConfig {
            level: Level::Warn,
            ..LogConfig::default()
        });
        assert!(!logger.enabled(Level::Info));
        assert!(logger.enabled(Level::Error));
    }
}
