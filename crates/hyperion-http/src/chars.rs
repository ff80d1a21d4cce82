//! Byte-class tables shared by the request and response sides.

const fn build_tchar() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
}

static TCHAR: [bool; 256] = build_tchar();

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

/// Bytes of an RFC 3986 `host [":" port]`: unreserved, pct-encoded, sub-delims, ':' and IP-literal brackets.
#[inline]
pub(crate) fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
        )
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
