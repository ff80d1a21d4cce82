//! Byte-class tables shared by the request and response sides.

/// A byte-class table: ASCII letters and digits, and `extra`.
const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

static TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// RFC 9110 5.6.2 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Field-value bytes: HTAB, SP, VCHAR, obs-text. Everything else (NUL, CR, LF, other CTLs, DEL) is rejected.
#[inline]
pub(crate) fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Bytes allowed in a request-target. Only visible ASCII: raw UTF-8 / obs-text is rejected because
/// RFC 3986 requires percent-encoding and browsers always encode.
#[inline]
pub(crate) fn is_target_byte(b: u8) -> bool {
    (b'!'..=b'~').contains(&b)
}

/// Trims leading and trailing OWS.
#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Structural check of an RFC 3986 `host [":" port]` (Host header, absolute-form authority):
/// an IP-literal in brackets or a reg-name/IPv4 without ':', then an optional port of at most
/// five digits not above 65535. Byte-level checks alone would let `a:80:90` or `[::1` through
/// and leave each consumer to split them its own way.
pub(crate) fn is_valid_authority(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &value[1..close];
        let literal_ok = !inside.is_empty()
            && (inside.contains(&b':')
                || inside
                    .first()
                    .is_some_and(|b| b.eq_ignore_ascii_case(&b'v')))
            && inside.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'%' | b'-' | b'_' | b'~')
            });
        if !literal_ok {
            return false;
        }
        match &value[close + 1..] {
            [] => (&value[..0], None),
            [b':', port @ ..] => (&value[..0], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        }
    };
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if REG_NAME_BYTE[b as usize] {
            i += 1;
            continue;
        }
        if b == b'%'
            && host.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && host.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
            continue;
        }
        return false;
    }
    match port {
        None => true,
        Some(p) => {
            p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535
        }
    }
}

/// Bytes of a reg-name or IPv4 address other than a pct-encoded triplet: unreserved and
/// sub-delims (RFC 3986 3.2.2).
const REG_NAME_BYTE: [bool; 256] = alphanumeric_and(b"-._~!$&'()*+,;=");
