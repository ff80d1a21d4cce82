//! HTTP/1.x wire format for Hyperion: a strict request-head parser, an incremental chunked decoder and
//! allocation-free response helpers. No I/O.
//!
//! The parser faces the internet, so anything a proxy might read differently is rejected rather than
//! guessed at (request smuggling). Rejections and their statuses (`ParseError::status()` is the single
//! mapping; `reason()` gives the label):
//!
//! | Status | Kind (reason label) | When |
//! |---|---|---|
//! | 400 | `BadRequestLine` (`bad_request_line`) | not `method SP target SP version`: empty method, empty target, extra spaces |
//! | 400 | `BadMethod` (`bad_method`) | method is not a token |
//! | 400 | `BadTarget` (`bad_target`) | target bytes outside `!`..`~`; not origin-form (`/...`), absolute-form (`http[s]://authority...`) or `*`; `*` without OPTIONS; authority-form (CONNECT: not a proxy); userinfo or empty authority |
//! | 400 | `BadVersion` (`bad_version`) | version missing (HTTP/0.9) or not `HTTP/DIGIT.DIGIT` (case-sensitive) |
//! | 505 | `UnsupportedVersion` (`unsupported_version`) | well-formed `HTTP/x.y` or `HTTP/x` other than 1.0/1.1 |
//! | 400 | `BareLineEnding` (`bare_line_ending`) | LF without CR or CR without LF, in the head or in chunked framing/trailers |
//! | 400 | `ObsFold` (`obs_fold`) | field line starting with SP/HTAB (also right after the request line) |
//! | 400 | `SpaceBeforeColon` (`space_before_colon`) | whitespace between field name and `:` |
//! | 400 | `InvalidHeaderChar` (`invalid_header_char`) | non-token byte in a name; CTL/NUL/DEL in a value (HTAB allowed) |
//! | 400 | `EmptyHeaderName` (`empty_header_name`) | line starting with `:` |
//! | 400 | `BadHeader` (`bad_header`) | field line without a colon |
//! | 431 | `TooManyHeaders` (`too_many_headers`) | more than `max_headers` fields |
//! | 431 | `HeadTooLarge` (`head_too_large`) | head longer than `max_head_bytes` (also while still incomplete) |
//! | 414 | `UriTooLong` (`uri_too_long`) | target longer than `max_uri_bytes` (also while still incomplete) |
//! | 400 | `BadContentLength` (`bad_content_length`) | Content-Length empty, signed, non-decimal, overflowing u64 |
//! | 400 | `DuplicateContentLength` (`duplicate_content_length`) | Content-Length repeated, even equal, as lines or as a list (`5, 5`) |
//! | 400 | `ContentLengthWithTransferEncoding` (`content_length_with_transfer_encoding`) | both present |
//! | 501 | `UnsupportedTransferEncoding` (`unsupported_transfer_encoding`) | a well-formed coding other than `chunked` (gzip, identity, unknown), chunked framing otherwise valid |
//! | 400 | `BadTransferEncoding` (`bad_transfer_encoding`) | empty value or list element, `chunked` not last, `chunked` repeated, `chunked` with parameters, malformed coding |
//! | 400 | `TransferEncodingOnHttp10` (`transfer_encoding_on_http10`) | any Transfer-Encoding on HTTP/1.0 |
//! | 400 | `MissingHost` (`missing_host`) | HTTP/1.1 without Host (even with an absolute-form target) |
//! | 400 | `DuplicateHost` (`duplicate_host`) | Host repeated |
//! | 400 | `BadHost` (`bad_host`) | Host value or absolute-form authority with bytes outside RFC 3986 `host[:port]` |
//! | 413 | `BodyTooLarge` (`body_too_large`) | Content-Length, a chunk size, or decoded chunked total over `max_body_bytes` |
//! | 400 | `BadChunkSize` (`bad_chunk_size`) | chunk size not 1*HEXDIG (sign, `0x`, leading space), over 32 digits, overflowing u64 |
//! | 400 | `BadChunkExtension` (`bad_chunk_extension`) | chunk extension not `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )` |
//! | 400 | `ChunkExtensionTooLong` (`chunk_extension_too_long`) | extensions over `max_chunk_ext_bytes` on one chunk line |
//! | 400 | `BadChunkData` (`bad_chunk_data`) | chunk data not followed by exactly CRLF |
//! | 400 | `TrailersTooLarge` (`trailers_too_large`) | trailer section over `max_trailer_bytes`, or more than `max_headers` trailer fields (400, not 431: the head was already accepted) |
//! | 400 | `BadTrailer` (`bad_trailer`) | trailer line that is not a valid field line (e.g. a smuggled request line) |
//!
//! Check order in the head: line syntax (per line, as soon as the line is complete), then Host, then
//! framing (Transfer-Encoding on 1.0, Content-Length with Transfer-Encoding, Transfer-Encoding list,
//! Content-Length size).
//!
//! Accepted but noteworthy: leading empty lines (CRLF only) before the request line are skipped and counted
//! in `len`; unknown method tokens pass (the application answers); `Expect` values other than 100-continue
//! are ignored; trailer fields carrying framing, routing, auth or content metadata (content-length,
//! transfer-encoding, host, connection, authorization, cookie, content-type, proxy-*, ...) are dropped,
//! not rejected.

mod chars;
mod chunked;
mod error;
mod request;
mod response;

pub use chunked::ChunkedDecoder;
pub use error::{ParseError, ParseErrorKind};
pub use request::{
    assemble_head, parse_request_head, split_host, BodyFraming, HeadParts, HeadStatus, HeaderSpan,
    Limits, RequestHead, Span, TargetForm, Version,
};
pub use response::{
    cgi_header_key, format_http_date, http_date, ipv4_text, is_content_length, is_content_type,
    is_valid_header_name, is_valid_header_value, reason_phrase, write_chunk, write_status_line,
    LAST_CHUNK,
};
