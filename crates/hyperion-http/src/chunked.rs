//! Incremental chunked transfer-coding decoder (RFC 9112 7.1).

use crate::chars::{is_ows, is_tchar};
use crate::error::{ParseError, ParseErrorKind};
use crate::request::{parse_field_line, Limits};
use ParseErrorKind as K;

/// Chunk-size digits accepted per line. u64 needs 16; the slack admits zero padding without letting a
/// client stream zeros forever.
const MAX_SIZE_DIGITS: u32 = 32;

/// Trailer fields that must not be acted on after the body (RFC 9110 6.5.1: framing, routing, request
/// modifiers, authentication, content metadata). They are silently dropped, not rejected, so well-meaning
/// clients still work while nothing can smuggle framing or routing through the trailer section.
const DROPPED_TRAILERS: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"upgrade",
    b"expect",
    b"max-forwards",
    b"authorization",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"proxy-connection",
    b"cookie",
    b"content-type",
    b"content-encoding",
    b"content-range",
    b"range",
    b"if-match",
    b"if-none-match",
    b"if-modified-since",
    b"if-unmodified-since",
    b"if-range",
    b"cache-control",
    b"pragma",
];

/// Position inside the chunk-extension grammar `*( BWS ";" BWS name [ BWS "=" BWS value ] )`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// Whitespace seen after a size/name/value: only more BWS or ';' may follow.
    BwsBeforeSemi,
    AfterSemi,
    Name,
    AfterName,
    AfterEq,
    Token,
    Quoted,
    QuotedEscape,
    AfterQuoted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Ext(Ext),
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    Done,
}

/// Incremental chunked decoder, resumable across arbitrary input splits.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u32,
    ext_len: usize,
    remaining: u64,
    body_len: u64,
    line: Vec<u8>,
    trailer_bytes: usize,
    trailer_fields: usize,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    error: Option<ParseError>,
    max_body: u64,
    max_ext: usize,
    max_trailer_bytes: usize,
    max_trailer_fields: usize,
}

impl ChunkedDecoder {
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            ext_len: 0,
            remaining: 0,
            body_len: 0,
            line: Vec::new(),
            trailer_bytes: 0,
            trailer_fields: 0,
            trailers: Vec::new(),
            error: None,
            max_body: limits.max_body_bytes,
            max_ext: limits.max_chunk_ext_bytes,
            max_trailer_bytes: limits.max_trailer_bytes,
            max_trailer_fields: limits.max_headers,
        }
    }

    /// Consumes bytes from `input`, appending decoded payload to `out`. Returns how many input bytes were
    /// consumed (all of them while more is needed). Stops right after the CRLF ending the trailer section, so
    /// a following pipelined request is left in `input`. Once done, returns `Ok(0)`. After an error, every
    /// later call returns the same error.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.run(input, out) {
            Ok(n) => Ok(n),
            Err(kind) => {
                let e = ParseError { kind };
                self.error = Some(e);
                Err(e)
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Trailer fields received (name as sent, value trimmed), minus the dropped framing/routing fields.
    pub fn trailers(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.trailers
    }

    /// Total decoded payload bytes so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseErrorKind> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => break,
                State::Size => {
                    i += 1;
                    if let Some(d) = hex_val(b) {
                        if self.digits >= MAX_SIZE_DIGITS || self.size > (u64::MAX >> 4) {
                            return Err(K::BadChunkSize);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.digits += 1;
                        continue;
                    }
                    if self.digits == 0 {
                        return Err(K::BadChunkSize);
                    }
                    self.state = match b {
                        b'\r' => State::SizeLf,
                        b';' => State::Ext(Ext::AfterSemi),
                        b' ' | b'\t' => State::Ext(Ext::BwsBeforeSemi),
                        b'\n' => return Err(K::BareLineEnding),
                        _ => return Err(K::BadChunkSize),
                    };
                    if matches!(self.state, State::Ext(_)) {
                        self.count_ext()?;
                    }
                }
                State::Ext(ext) => {
                    i += 1;
                    if b == b'\r' {
                        if !matches!(ext, Ext::Name | Ext::Token | Ext::AfterQuoted) {
                            return Err(K::BadChunkExtension);
                        }
                        self.state = State::SizeLf;
                        continue;
                    }
                    if b == b'\n' {
                        return Err(K::BareLineEnding);
                    }
                    self.count_ext()?;
                    self.state = State::Ext(next_ext(ext, b)?);
                }
                State::SizeLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(K::BareLineEnding);
                    }
                    if self.size == 0 {
                        self.state = State::Trailer;
                    } else {
                        if self.size > self.max_body.saturating_sub(self.body_len) {
                            return Err(K::BodyTooLarge);
                        }
                        self.remaining = self.size;
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let avail = input.len() - i;
                    let n = self.remaining.min(avail as u64) as usize;
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.remaining -= n as u64;
                    self.body_len += n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    i += 1;
                    if b != b'\r' {
                        return Err(K::BadChunkData);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    i += 1;
                    if b != b'\n' {
                        return Err(K::BadChunkData);
                    }
                    self.size = 0;
                    self.digits = 0;
                    self.ext_len = 0;
                    self.state = State::Size;
                }
                State::Trailer => {
                    let rest = &input[i..];
                    let (take, next) = match memchr::memchr2(b'\r', b'\n', rest) {
                        None => (rest.len(), None),
                        Some(j) if rest[j] == b'\n' => {
                            // The bytes before the LF count first, as they would had they
                            // arrived in an earlier read: the verdict must not depend on
                            // how the input was split.
                            self.count_trailer(j)?;
                            return Err(K::BareLineEnding);
                        }
                        Some(j) => (j, Some(State::TrailerLf)),
                    };
                    let consumed = take + usize::from(next.is_some());
                    self.count_trailer(consumed)?;
                    self.line.extend_from_slice(&rest[..take]);
                    i += consumed;
                    if let Some(s) = next {
                        self.state = s;
                    }
                }
                State::TrailerLf => {
                    i += 1;
                    self.count_trailer(1)?;
                    if b != b'\n' {
                        return Err(K::BareLineEnding);
                    }
                    if self.line.is_empty() {
                        self.state = State::Done;
                        self.line = Vec::new();
                        break;
                    }
                    self.finish_trailer_line()?;
                    self.state = State::Trailer;
                }
            }
        }
        Ok(i)
    }

    #[inline]
    fn count_ext(&mut self) -> Result<(), ParseErrorKind> {
        self.ext_len += 1;
        if self.ext_len > self.max_ext {
            return Err(K::ChunkExtensionTooLong);
        }
        Ok(())
    }

    #[inline]
    fn count_trailer(&mut self, n: usize) -> Result<(), ParseErrorKind> {
        self.trailer_bytes += n;
        if self.trailer_bytes > self.max_trailer_bytes {
            return Err(K::TrailersTooLarge);
        }
        Ok(())
    }

    fn finish_trailer_line(&mut self) -> Result<(), ParseErrorKind> {
        self.trailer_fields += 1;
        if self.trailer_fields > self.max_trailer_fields {
            return Err(K::TrailersTooLarge);
        }
        let (ne, vs, ve) = parse_field_line(&self.line).map_err(|_| K::BadTrailer)?;
        let name = &self.line[..ne];
        let dropped = DROPPED_TRAILERS
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
            || name.len() > 6 && name[..6].eq_ignore_ascii_case(b"proxy-");
        if !dropped {
            self.trailers
                .push((name.to_vec(), self.line[vs..ve].to_vec()));
        }
        self.line.clear();
        Ok(())
    }
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Transition for one non-CR, non-LF byte of a chunk extension.
fn next_ext(state: Ext, b: u8) -> Result<Ext, ParseErrorKind> {
    use Ext::*;
    let ws = is_ows(b);
    let next = match state {
        BwsBeforeSemi if ws => BwsBeforeSemi,
        BwsBeforeSemi if b == b';' => AfterSemi,
        AfterSemi if ws => AfterSemi,
        AfterSemi if is_tchar(b) => Name,
        Name if is_tchar(b) => Name,
        Name | AfterName if b == b'=' => AfterEq,
        Name | AfterName if b == b';' => AfterSemi,
        Name | AfterName if ws => AfterName,
        AfterEq if ws => AfterEq,
        AfterEq if is_tchar(b) => Token,
        AfterEq if b == b'"' => Quoted,
        Token if is_tchar(b) => Token,
        Token | AfterQuoted if b == b';' => AfterSemi,
        Token | AfterQuoted if ws => BwsBeforeSemi,
        Quoted if b == b'"' => AfterQuoted,
        Quoted if b == b'\\' => QuotedEscape,
        // qdtext: HTAB, SP, VCHAR except '"' and '\\', obs-text.
        Quoted if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => Quoted,
        QuotedEscape if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => Quoted,
        _ => return Err(K::BadChunkExtension),
    };
    Ok(next)
}
