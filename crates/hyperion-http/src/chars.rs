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

/// Whether every byte of a field value is a field-value byte ([`is_field_byte`]). Eight bytes
/// at a time: a word with no byte below SP and none equal to DEL holds only valid bytes, and
/// only a word with one of those (a tab, or a fault) is looked at byte by byte.
pub(crate) fn all_field_bytes(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte below 0x20 sets its high bit in the first term; `!x` drops bytes of 0x80 and
        // above, which the subtraction also marks. Without such a byte nothing borrows, so
        // no flag is ever set for a valid word.
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y & HIGHS;
        if below_space | del != 0 && !word.iter().all(|&b| is_field_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_field_byte(b))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_bytes_are_checked_alike_a_word_and_a_byte_at_a_time() {
        // Every byte value in every position of a word and of the remainder.
        for len in [1usize, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut value = vec![b'a'; len];
                    value[at] = b;
                    assert_eq!(
                        all_field_bytes(&value),
                        is_field_byte(b),
                        "byte {b:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(all_field_bytes(b"text/html; charset=utf-8\t\x80\xff ~"));
        assert!(all_field_bytes(b""));
    }
}
