//! Response-side helpers. Hot path: nothing here allocates beyond growing the caller's `out`.

use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::chars::{all_field_bytes, is_tchar};

/// Standard reason phrase for `status`, "" when unknown.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Appends `HTTP/1.1 {status} {reason}\r\n`. Unknown statuses keep the separating space with an empty reason
/// (`HTTP/1.1 599 \r\n`, valid per RFC 9112 4). A status outside 100..=999 cannot be written as three digits
/// and is sent as 500.
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let reason = reason_phrase(status);
    out.reserve(15 + reason.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// True if `name` is a non-empty RFC 9110 token.
pub fn is_valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// True if `value` has no CR, LF, NUL or other CTL (HTAB allowed) and no DEL.
pub fn is_valid_header_value(value: &[u8]) -> bool {
    all_field_bytes(value)
}

/// Appends one chunk (`{hex len}\r\n{data}\r\n`). Empty data appends nothing: a zero-size chunk would end
/// the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.reserve(hex.len() - i + data.len() + 4);
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Terminating chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

thread_local! {
    static DATE_CACHE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// Current IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. Formatted at most once per second per thread.
pub fn http_date() -> [u8; 29] {
    let secs = unix_seconds();
    DATE_CACHE.with(|c| {
        let (cached_secs, cached) = c.get();
        if cached_secs == secs {
            return cached;
        }
        let date = format_http_date(secs);
        c.set((secs, date));
        date
    })
}

/// The wall clock in whole seconds. On Linux from the coarse clock, which is read from memory
/// without touching the time counter: it may be a few milliseconds behind, which a date with
/// one-second resolution does not show, and it costs a fraction of a precise read on every
/// response.
fn unix_seconds() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec.max(0) as u64;
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// IMF-fixdate for a unix timestamp (seconds).
pub fn format_http_date(unix_secs: u64) -> [u8; 29] {
    let mut buf = [0u8; 29];
    let t = UNIX_EPOCH + Duration::from_secs(unix_secs);
    // HttpDate's Display is always exactly 29 bytes for years 1970..=9999.
    let _ = write!(&mut buf[..], "{}", httpdate::HttpDate::from(t));
    buf
}

/// True for `Content-Type` in any case.
pub fn is_content_type(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-type")
}

/// True for `Content-Length` in any case.
pub fn is_content_length(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length")
}

/// An IPv4 address in dotted-decimal form (`REMOTE_ADDR`), written into `out` without the
/// formatting machinery, which showed up in profiles at one address per request.
pub fn ipv4_text(ip: std::net::Ipv4Addr, out: &mut [u8; 15]) -> &[u8] {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            out[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            out[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        out[len] = b'0' + octet % 10;
        len += 1;
    }
    &out[..len]
}

/// Appends the Rack/CGI env key for a request header (`HTTP_` + uppercase, '-' -> '_').
/// Returns false, writing nothing, for: names containing '_' (X-Forwarded_For would otherwise shadow
/// X-Forwarded-For), Content-Type/Content-Length (the caller maps those to CONTENT_TYPE/CONTENT_LENGTH), and
/// names that are not valid tokens.
pub fn cgi_header_key(name: &[u8], out: &mut Vec<u8>) -> bool {
    if !is_valid_header_name(name)
        || name.contains(&b'_')
        || is_content_type(name)
        || is_content_length(name)
    {
        return false;
    }
    out.reserve(5 + name.len());
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&b| {
        if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        }
    }));
    true
}

#[cfg(test)]
mod ipv4_tests {
    use super::ipv4_text;
    use std::net::Ipv4Addr;

    #[test]
    fn ipv4_text_matches_the_standard_form() {
        for octets in [
            [127, 0, 0, 1],
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 99, 100, 9],
            [192, 168, 1, 20],
        ] {
            let ip = Ipv4Addr::from(octets);
            let mut buf = [0u8; 15];
            assert_eq!(ipv4_text(ip, &mut buf), ip.to_string().as_bytes());
        }
        // Every octet value, in every position.
        for v in 0..=255u8 {
            let ip = Ipv4Addr::new(v, 255 - v, v / 3, v.wrapping_mul(7));
            let mut buf = [0u8; 15];
            assert_eq!(ipv4_text(ip, &mut buf), ip.to_string().as_bytes());
        }
    }
}
