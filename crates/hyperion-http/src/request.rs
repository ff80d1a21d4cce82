//! Strict request-head parser (RFC 9112 sections 2-3, 5-7).

use crate::chars::{
    all_field_bytes, is_ows, is_target_byte, is_tchar, is_valid_authority, trim_ows,
};
use crate::error::{ParseError, ParseErrorKind};
use ParseErrorKind as K;

/// Byte range into the buffer the head was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Heads are capped well below 4 GiB (see `parse_request_head`), so offsets fit in u32.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The bytes this span covers. Panics if `buf` is not (a superset of) the parsed buffer.
    #[inline]
    pub fn slice<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(&self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length and no Transfer-Encoding: the request has no body.
    None,
    /// Content-Length as sent (`Length(0)` is reported as such, not folded into `None`).
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Which request-target form was used (RFC 9112 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    Origin,
    Absolute,
    Asterisk,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Span,
    /// Raw request-target as sent.
    pub target: Span,
    /// Path part. Absolute-form: the URI's path, which may be EMPTY (`http://h?q`); treat an empty path as "/".
    /// Asterisk-form: `*`.
    pub path: Span,
    /// After '?', without it; empty span if none. Any `#fragment` is left in place (clients must not send one).
    pub query: Span,
    pub version: Version,
    /// In order, names as sent, values trimmed of OWS.
    pub headers: Vec<HeaderSpan>,
    pub framing: BodyFraming,
    /// HTTP/1.1: true unless a "close" Connection token. HTTP/1.0: only with a "keep-alive" token (and no "close").
    pub keep_alive: bool,
    /// `Expect: 100-continue` (case-insensitive) on an HTTP/1.1 request (RFC 9110 10.1.1: ignored for HTTP/1.0).
    pub expect_continue: bool,
    /// Authority of an absolute-form target, else the Host header value.
    pub host: Option<Span>,
    /// Connection has an "upgrade" token and an Upgrade header is present.
    pub upgrade: bool,
    /// Which target form was used.
    pub target_form: TargetForm,
    /// Index into `headers` of the Content-Type field, if any.
    pub content_type: Option<usize>,
    /// Index into `headers` of the Content-Length field, if any.
    pub content_length: Option<usize>,
}

impl RequestHead {
    /// First header value whose name matches `name` case-insensitively.
    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.slice(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.slice(buf))
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Request line + fields + leading empty lines + final CRLFCRLF. Over it: 431.
    pub max_head_bytes: usize,
    /// Field lines in the head (and in a chunked trailer section). Over it: 431 (trailers: 400).
    pub max_headers: usize,
    /// Request-target length. Over it: 414.
    pub max_uri_bytes: usize,
    /// Content-Length or decoded chunked payload. Over it: 413.
    pub max_body_bytes: u64,
    /// Chunk extension bytes on one chunk-size line. Over it: 400.
    pub max_chunk_ext_bytes: usize,
    /// Whole trailer section including line endings. Over it: 400 (the response is already mid-body; 431 is
    /// reserved for the head).
    pub max_trailer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 1 << 30,
            max_chunk_ext_bytes: 1024,
            max_trailer_bytes: 16 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadStatus {
    Complete { head: RequestHead, len: usize },
    Partial,
}

#[inline]
fn err<T>(kind: ParseErrorKind) -> Result<T, ParseError> {
    Err(ParseError { kind })
}

/// Parses one request head from the start of `buf`. `len` = bytes consumed including leading empty lines and
/// the final CRLFCRLF. Bytes after the head (body, pipelined requests) are never looked at.
///
/// Each call re-parses from the start; every complete line is fully validated, so malformed input is rejected
/// as soon as the offending line is complete rather than when the head ends.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<HeadStatus, ParseError> {
    // Only the first max_head_bytes can belong to an acceptable head; scanning no further bounds the work per
    // call and keeps every offset within u32.
    let cap = limits.max_head_bytes.min(u32::MAX as usize - 1);
    let window = &buf[..buf.len().min(cap)];
    match parse_window(window, limits)? {
        Some((head, len)) => Ok(HeadStatus::Complete { head, len }),
        None if buf.len() > cap => err(K::HeadTooLarge),
        None => Ok(HeadStatus::Partial),
    }
}

/// Index of the CR of the next CRLF at or after `from`; `None` if more input is needed.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ParseError> {
    match memchr::memchr2(b'\r', b'\n', &buf[from..]) {
        None => Ok(None),
        Some(i) => {
            let i = from + i;
            if buf[i] == b'\n' {
                return err(K::BareLineEnding);
            }
            match buf.get(i + 1) {
                None => Ok(None),
                Some(b'\n') => Ok(Some(i)),
                Some(_) => err(K::BareLineEnding),
            }
        }
    }
}

fn parse_window(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, ParseError> {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let mut pos = 0;
    loop {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Ok(None),
                Some(b'\n') => pos += 2,
                Some(_) => return err(K::BareLineEnding),
            },
            Some(b'\n') => return err(K::BareLineEnding),
            Some(_) => break,
        }
    }

    let line_start = pos;
    let line_end = match find_crlf(buf, pos) {
        Ok(Some(end)) => end,
        Ok(None) => {
            check_partial_request_line(&buf[line_start..], limits)?;
            return Ok(None);
        }
        Err(e) => {
            // Report what a shorter read would already have reported, so the verdict does not depend on
            // how the bytes were split.
            let bad = memchr::memchr2(b'\r', b'\n', &buf[line_start..]).unwrap_or(0);
            check_partial_request_line(&buf[line_start..line_start + bad], limits)?;
            return Err(e);
        }
    };
    let rl = parse_request_line(buf, line_start, line_end, limits)?;
    pos = line_end + 2;

    let mut headers: Vec<HeaderSpan> = Vec::with_capacity(limits.max_headers.min(24));
    loop {
        if headers.len() >= limits.max_headers && buf.get(pos).is_some_and(|&b| b != b'\r') {
            return err(K::TooManyHeaders);
        }
        let Some(end) = find_crlf(buf, pos)? else {
            return Ok(None);
        };
        if end == pos {
            pos += 2;
            break;
        }
        let (name_end, vstart, vend) =
            parse_field_line(&buf[pos..end]).map_err(ParseError::from)?;
        headers.push(HeaderSpan {
            name: Span::new(pos, pos + name_end),
            value: Span::new(pos + vstart, pos + vend),
        });
        pos = end + 2;
    }

    let head = analyze(buf, rl, headers, limits)?;
    Ok(Some((head, pos)))
}

struct RequestLine {
    method: Span,
    target: Span,
    path: Span,
    query: Span,
    version: Version,
    form: TargetForm,
    authority: Option<Span>,
}

/// A request head whose parts arrived already separated (an HTTP/2 HEADERS block): the method,
/// the request-target, and the field lines in order, as spans into one buffer. Names must be
/// field names as sent; values must not have surrounding whitespace (HTTP/2 refuses both
/// before this point).
pub struct HeadParts {
    pub method: Span,
    pub target: Span,
    pub headers: Vec<HeaderSpan>,
}

/// Builds the [`RequestHead`] that [`parse_request_head`] would return for these parts written
/// as an HTTP/1.1 head (`METHOD SP target SP HTTP/1.1`, then `name: value` lines), or the
/// error it would return: the same checks in the same order (method and target characters,
/// target form, the head's size, the field count, name and value characters, Host,
/// Content-Length, Transfer-Encoding), without writing the text or scanning it twice.
pub fn assemble_head(
    buf: &[u8],
    parts: HeadParts,
    limits: &Limits,
) -> Result<RequestHead, ParseError> {
    let HeadParts {
        method,
        target,
        headers,
    } = parts;
    let cap = limits.max_head_bytes.min(u32::MAX as usize - 1);
    let method_bytes = method.slice(buf);
    let target_bytes = target.slice(buf);
    if method_bytes.is_empty() || target_bytes.is_empty() {
        return err(K::BadRequestLine);
    }
    if !method_bytes.iter().all(|&b| is_tchar(b)) {
        return err(K::BadMethod);
    }
    if target_bytes.len() > limits.max_uri_bytes {
        return err(K::UriTooLong);
    }
    // Where each line would end in the text: a line counts once its CRLF fits in the head.
    let mut pos = method.len() + 1 + target.len() + 1 + 8 + 2;
    if pos > cap {
        return err(K::HeadTooLarge);
    }
    let rl = parse_target(method_bytes, method, target, target_bytes, Version::Http11)?;
    for (i, h) in headers.iter().enumerate() {
        if pos >= cap {
            return err(K::HeadTooLarge);
        }
        if i >= limits.max_headers {
            return err(K::TooManyHeaders);
        }
        pos += h.name.len() + 2 + h.value.len() + 2;
        if pos > cap {
            return err(K::HeadTooLarge);
        }
        let name = h.name.slice(buf);
        if name.is_empty() {
            return err(K::EmptyHeaderName);
        }
        if !name.iter().all(|&b| is_tchar(b)) || !all_field_bytes(h.value.slice(buf)) {
            return err(K::InvalidHeaderChar);
        }
    }
    if pos + 2 > cap {
        return err(K::HeadTooLarge);
    }
    analyze(buf, rl, headers, limits)
}

/// Early rejection on an incomplete request line, so a client streaming a huge target gets 414 (not 431) and
/// garbage is refused before the line ends. Only checks the full parse would also make.
fn check_partial_request_line(line: &[u8], limits: &Limits) -> Result<(), ParseError> {
    // A trailing CR may be the start of the CRLF.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let method_len = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    if method_len == line.len() {
        return Ok(());
    }
    if line[method_len] != b' ' {
        return err(K::BadMethod);
    }
    if method_len == 0 {
        return err(K::BadRequestLine);
    }
    let rest = &line[method_len + 1..];
    let target_len = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    if target_len > limits.max_uri_bytes {
        return err(K::UriTooLong);
    }
    Ok(())
}

fn parse_request_line(
    buf: &[u8],
    start: usize,
    end: usize,
    limits: &Limits,
) -> Result<RequestLine, ParseError> {
    let line = &buf[start..end];

    let method_len = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    if method_len == line.len() {
        // Only a method: no target, no version.
        return err(if method_len == 0 {
            K::BadRequestLine
        } else {
            K::BadVersion
        });
    }
    if line[method_len] != b' ' {
        return err(K::BadMethod);
    }
    if method_len == 0 {
        return err(K::BadRequestLine);
    }
    let method = Span::new(start, start + method_len);

    let t_start = method_len + 1;
    let rest = &line[t_start..];
    let (target_len, version) = match memchr::memchr(b' ', rest) {
        Some(i) => (i, Some(&rest[i + 1..])),
        None => (rest.len(), None),
    };
    if target_len == 0 {
        return err(K::BadRequestLine);
    }
    if target_len > limits.max_uri_bytes {
        return err(K::UriTooLong);
    }
    let Some(version) = version else {
        // HTTP/0.9 style "GET /".
        return err(K::BadVersion);
    };
    if version.contains(&b' ') {
        return err(K::BadRequestLine);
    }
    let version = parse_version(version)?;

    let t_abs = start + t_start;
    let target = Span::new(t_abs, t_abs + target_len);
    parse_target(
        &line[..method_len],
        method,
        target,
        &rest[..target_len],
        version,
    )
}

/// The request-target's form and parts (RFC 9112 3.2); `target_bytes` is `target` in the buffer.
fn parse_target(
    method_bytes: &[u8],
    method: Span,
    target: Span,
    target_bytes: &[u8],
    version: Version,
) -> Result<RequestLine, ParseError> {
    if !target_bytes.iter().all(|&b| is_target_byte(b)) {
        return err(K::BadTarget);
    }
    let t_abs = target.start as usize;
    let (form, path, query, authority) = if target_bytes[0] == b'/' {
        let (p, q) = split_query(target_bytes, t_abs);
        (TargetForm::Origin, p, q, None)
    } else if target_bytes == b"*" {
        if method_bytes != b"OPTIONS" {
            return err(K::BadTarget);
        }
        (
            TargetForm::Asterisk,
            target,
            Span::new(t_abs + 1, t_abs + 1),
            None,
        )
    } else {
        let (p, q, a) = parse_absolute_form(target_bytes, t_abs)?;
        (TargetForm::Absolute, p, q, Some(a))
    };

    Ok(RequestLine {
        method,
        target,
        path,
        query,
        version,
        form,
        authority,
    })
}

/// Splits `path?query` (bytes starting at absolute offset `off`).
fn split_query(t: &[u8], off: usize) -> (Span, Span) {
    match memchr::memchr(b'?', t) {
        Some(q) => (
            Span::new(off, off + q),
            Span::new(off + q + 1, off + t.len()),
        ),
        None => (
            Span::new(off, off + t.len()),
            Span::new(off + t.len(), off + t.len()),
        ),
    }
}

/// `http[s]://authority[/path][?query]`. Other schemes, userinfo and an empty authority are refused; anything
/// else that is not origin-form (authority-form for CONNECT included: this server is not a proxy) lands here
/// and fails the scheme check.
fn parse_absolute_form(t: &[u8], off: usize) -> Result<(Span, Span, Span), ParseError> {
    let scheme_len = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return err(K::BadTarget);
    };
    let rest = &t[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let auth = &rest[..auth_len];
    if auth.is_empty() || auth.contains(&b'@') {
        return err(K::BadTarget);
    }
    if !is_valid_authority(auth) {
        return err(K::BadHost);
    }
    let a_off = off + scheme_len;
    let (p, q) = split_query(&rest[auth_len..], a_off + auth_len);
    Ok((p, q, Span::new(a_off, a_off + auth_len)))
}

fn parse_version(v: &[u8]) -> Result<Version, ParseError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            err(K::UnsupportedVersion)
        }
        // "HTTP/2", "HTTP/3": well-formed enough to deserve 505.
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => {
            err(K::UnsupportedVersion)
        }
        _ => err(K::BadVersion),
    }
}

/// Parses one field line (no line ending). Returns (name_end, value_start, value_end) relative to `line`,
/// with the value trimmed of OWS.
pub(crate) fn parse_field_line(line: &[u8]) -> Result<(usize, usize, usize), ParseErrorKind> {
    match line.first() {
        None => return Err(K::BadHeader),
        Some(b' ' | b'\t') => return Err(K::ObsFold),
        _ => {}
    }
    let name_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    match line.get(name_end) {
        None => return Err(K::BadHeader),
        Some(b':') if name_end == 0 => return Err(K::EmptyHeaderName),
        Some(b':') => {}
        Some(b' ' | b'\t') => {
            let after_ws = line[name_end..]
                .iter()
                .position(|&b| !is_ows(b))
                .map(|i| name_end + i);
            return Err(match after_ws.map(|i| line[i]) {
                Some(b':') => K::SpaceBeforeColon,
                Some(_) => K::InvalidHeaderChar,
                None => K::BadHeader,
            });
        }
        Some(_) => return Err(K::InvalidHeaderChar),
    }
    let raw = &line[name_end + 1..];
    if !all_field_bytes(raw) {
        return Err(K::InvalidHeaderChar);
    }
    let mut vs = name_end + 1;
    let mut ve = line.len();
    while vs < ve && is_ows(line[vs]) {
        vs += 1;
    }
    while ve > vs && is_ows(line[ve - 1]) {
        ve -= 1;
    }
    Ok((name_end, vs, ve))
}

/// Accumulates the Transfer-Encoding list across field lines.
#[derive(Default)]
struct TeState {
    seen: bool,
    chunked_count: u32,
    last_is_chunked: bool,
    malformed: bool,
    unsupported: bool,
}

impl TeState {
    fn add(&mut self, value: &[u8]) {
        self.seen = true;
        for elem in value.split(|&b| b == b',') {
            let elem = trim_ows(elem);
            if elem.is_empty() {
                self.malformed = true;
                continue;
            }
            let name_len = elem
                .iter()
                .position(|&b| !is_tchar(b))
                .unwrap_or(elem.len());
            let name = &elem[..name_len];
            let params = trim_ows(&elem[name_len..]);
            if name.is_empty() || !(params.is_empty() || params[0] == b';') {
                self.malformed = true;
                continue;
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                if !params.is_empty() {
                    // chunked defines no parameters.
                    self.malformed = true;
                }
                self.chunked_count += 1;
                self.last_is_chunked = true;
            } else {
                self.unsupported = true;
                self.last_is_chunked = false;
            }
        }
    }

    fn result(&self) -> Result<(), ParseError> {
        if self.malformed
            || self.chunked_count > 1
            || (self.chunked_count == 1 && !self.last_is_chunked)
        {
            return err(K::BadTransferEncoding);
        }
        if self.unsupported {
            return err(K::UnsupportedTransferEncoding);
        }
        Ok(())
    }
}

fn parse_content_length(v: &[u8]) -> Result<u64, ParseError> {
    if v.is_empty() {
        return err(K::BadContentLength);
    }
    if v.contains(&b',') {
        // "5, 5": a list means the value was repeated somewhere along the path.
        return err(K::DuplicateContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return err(K::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError {
                kind: K::BadContentLength,
            })?;
    }
    Ok(n)
}

fn analyze(
    buf: &[u8],
    rl: RequestLine,
    headers: Vec<HeaderSpan>,
    limits: &Limits,
) -> Result<RequestHead, ParseError> {
    let mut content_length: Option<(usize, u64)> = None;
    let mut content_type: Option<usize> = None;
    let mut te = TeState::default();
    let mut host_header: Option<Span> = None;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_header = false;
    let mut expect_continue = false;

    for (idx, h) in headers.iter().enumerate() {
        let name = h.name.slice(buf);
        let value = h.value.slice(buf);
        // Dispatch on length first: most fields are none of these and fail one integer compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if host_header.is_some() {
                    return err(K::DuplicateHost);
                }
                if !is_valid_authority(value) {
                    return err(K::BadHost);
                }
                host_header = Some(h.value);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade_header = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for tok in value.split(|&b| b == b',') {
                    let tok = trim_ows(tok);
                    if tok.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    } else if tok.eq_ignore_ascii_case(b"upgrade") {
                        conn_upgrade = true;
                    }
                }
            }
            12 if name.eq_ignore_ascii_case(b"content-type") => {
                content_type = content_type.or(Some(idx));
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if content_length.is_some() {
                    return err(K::DuplicateContentLength);
                }
                content_length = Some((idx, parse_content_length(value)?));
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => te.add(value),
            _ => {}
        }
    }

    if rl.version == Version::Http11 && host_header.is_none() {
        return err(K::MissingHost);
    }

    let framing = if te.seen {
        if rl.version == Version::Http10 {
            return err(K::TransferEncodingOnHttp10);
        }
        if content_length.is_some() {
            return err(K::ContentLengthWithTransferEncoding);
        }
        te.result()?;
        BodyFraming::Chunked
    } else if let Some((_, n)) = content_length {
        if n > limits.max_body_bytes {
            return err(K::BodyTooLarge);
        }
        BodyFraming::Length(n)
    } else {
        BodyFraming::None
    };

    let keep_alive = match rl.version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };

    Ok(RequestHead {
        method: rl.method,
        target: rl.target,
        path: rl.path,
        query: rl.query,
        version: rl.version,
        headers,
        framing,
        keep_alive,
        expect_continue: expect_continue && rl.version == Version::Http11,
        host: rl.authority.or(host_header),
        upgrade: conn_upgrade && upgrade_header,
        target_form: rl.form,
        content_type,
        content_length: content_length.map(|(i, _)| i),
    })
}

/// Splits a Host value (already validated by the parser) into name and port, as SERVER_NAME
/// and SERVER_PORT want them: IPv6 literals keep their brackets; an empty port is no port.
pub fn split_host(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    if host.first() == Some(&b'[') {
        if let Some(close) = host.iter().position(|&b| b == b']') {
            let name = &host[..=close];
            let rest = &host[close + 1..];
            return match rest.strip_prefix(b":") {
                Some(port) if !port.is_empty() => (name, Some(port)),
                _ => (name, None),
            };
        }
        return (host, None);
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) if i + 1 < host.len() => (&host[..i], Some(&host[i + 1..])),
        Some(i) => (&host[..i], None),
        None => (host, None),
    }
}
