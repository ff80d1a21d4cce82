use std::fmt;

/// Why a request (head or chunked body) was rejected. See the crate docs for the status table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// Request line is not `method SP request-target SP HTTP-version` (empty method, extra spaces, ...).
    BadRequestLine,
    /// Method is not a token.
    BadMethod,
    /// Request-target has invalid bytes or an unsupported form (authority-form, `*` without OPTIONS,
    /// non-http(s) absolute-form, userinfo in absolute-form).
    BadTarget,
    /// Version missing (HTTP/0.9) or not `HTTP/DIGIT.DIGIT`.
    BadVersion,
    /// Well-formed version other than HTTP/1.0 and HTTP/1.1.
    UnsupportedVersion,
    /// LF without CR, or CR not followed by LF.
    BareLineEnding,
    /// Line folding (field line starting with SP/HTAB), including whitespace before the first field.
    ObsFold,
    /// Whitespace between field name and colon.
    SpaceBeforeColon,
    /// Invalid byte in a field name or value (CTL, NUL, DEL, separator in name).
    InvalidHeaderChar,
    /// Field line starting with a colon.
    EmptyHeaderName,
    /// Field line without a colon.
    BadHeader,
    /// More than `max_headers` field lines.
    TooManyHeaders,
    /// Head longer than `max_head_bytes`.
    HeadTooLarge,
    /// Request-target longer than `max_uri_bytes`.
    UriTooLong,
    /// Content-Length empty, signed, non-decimal or overflowing.
    BadContentLength,
    /// Content-Length repeated (as lines or as a list), even with equal values.
    DuplicateContentLength,
    /// Both Content-Length and Transfer-Encoding present.
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding names a coding other than chunked (gzip, identity, unknown).
    UnsupportedTransferEncoding,
    /// Transfer-Encoding malformed: empty value or list element, chunked not last, chunked repeated,
    /// chunked with parameters.
    BadTransferEncoding,
    /// Transfer-Encoding on an HTTP/1.0 request.
    TransferEncodingOnHttp10,
    /// HTTP/1.1 request without Host.
    MissingHost,
    /// Host repeated.
    DuplicateHost,
    /// Host (or absolute-form authority) with bytes outside RFC 3986 `host [":" port]`.
    BadHost,
    /// Content-Length or decoded chunked body over `max_body_bytes`.
    BodyTooLarge,
    /// Chunk size missing, not hex, too many digits or overflowing u64.
    BadChunkSize,
    /// Chunk extension not `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
    BadChunkExtension,
    /// Chunk extensions longer than `max_chunk_ext_bytes` on one chunk line.
    ChunkExtensionTooLong,
    /// Chunk data not followed by exactly CRLF.
    BadChunkData,
    /// Trailer section over `max_trailer_bytes` (or more than `max_headers` trailer fields).
    TrailersTooLarge,
    /// Trailer line is not a valid field line.
    BadTrailer,
}

impl ParseErrorKind {
    /// The HTTP status for this rejection.
    pub fn status(self) -> u16 {
        use ParseErrorKind::*;
        match self {
            UnsupportedVersion => 505,
            TooManyHeaders | HeadTooLarge => 431,
            UriTooLong => 414,
            BodyTooLarge => 413,
            UnsupportedTransferEncoding => 501,
            BadRequestLine
            | BadMethod
            | BadTarget
            | BadVersion
            | BareLineEnding
            | ObsFold
            | SpaceBeforeColon
            | InvalidHeaderChar
            | EmptyHeaderName
            | BadHeader
            | BadContentLength
            | DuplicateContentLength
            | ContentLengthWithTransferEncoding
            | BadTransferEncoding
            | TransferEncodingOnHttp10
            | MissingHost
            | DuplicateHost
            | BadHost
            | BadChunkSize
            | BadChunkExtension
            | ChunkExtensionTooLong
            | BadChunkData
            | TrailersTooLarge
            | BadTrailer => 400,
        }
    }

    /// Short snake_case label for metrics and logs.
    pub fn reason(self) -> &'static str {
        use ParseErrorKind::*;
        match self {
            BadRequestLine => "bad_request_line",
            BadMethod => "bad_method",
            BadTarget => "bad_target",
            BadVersion => "bad_version",
            UnsupportedVersion => "unsupported_version",
            BareLineEnding => "bare_line_ending",
            ObsFold => "obs_fold",
            SpaceBeforeColon => "space_before_colon",
            InvalidHeaderChar => "invalid_header_char",
            EmptyHeaderName => "empty_header_name",
            BadHeader => "bad_header",
            TooManyHeaders => "too_many_headers",
            HeadTooLarge => "head_too_large",
            UriTooLong => "uri_too_long",
            BadContentLength => "bad_content_length",
            DuplicateContentLength => "duplicate_content_length",
            ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            BadTransferEncoding => "bad_transfer_encoding",
            TransferEncodingOnHttp10 => "transfer_encoding_on_http10",
            MissingHost => "missing_host",
            DuplicateHost => "duplicate_host",
            BadHost => "bad_host",
            BodyTooLarge => "body_too_large",
            BadChunkSize => "bad_chunk_size",
            BadChunkExtension => "bad_chunk_extension",
            ChunkExtensionTooLong => "chunk_extension_too_long",
            BadChunkData => "bad_chunk_data",
            TrailersTooLarge => "trailers_too_large",
            BadTrailer => "bad_trailer",
        }
    }

    /// Every kind, for exhaustive tables and tests.
    pub const ALL: &'static [ParseErrorKind] = &[
        ParseErrorKind::BadRequestLine,
        ParseErrorKind::BadMethod,
        ParseErrorKind::BadTarget,
        ParseErrorKind::BadVersion,
        ParseErrorKind::UnsupportedVersion,
        ParseErrorKind::BareLineEnding,
        ParseErrorKind::ObsFold,
        ParseErrorKind::SpaceBeforeColon,
        ParseErrorKind::InvalidHeaderChar,
        ParseErrorKind::EmptyHeaderName,
        ParseErrorKind::BadHeader,
        ParseErrorKind::TooManyHeaders,
        ParseErrorKind::HeadTooLarge,
        ParseErrorKind::UriTooLong,
        ParseErrorKind::BadContentLength,
        ParseErrorKind::DuplicateContentLength,
        ParseErrorKind::ContentLengthWithTransferEncoding,
        ParseErrorKind::UnsupportedTransferEncoding,
        ParseErrorKind::BadTransferEncoding,
        ParseErrorKind::TransferEncodingOnHttp10,
        ParseErrorKind::MissingHost,
        ParseErrorKind::DuplicateHost,
        ParseErrorKind::BadHost,
        ParseErrorKind::BodyTooLarge,
        ParseErrorKind::BadChunkSize,
        ParseErrorKind::BadChunkExtension,
        ParseErrorKind::ChunkExtensionTooLong,
        ParseErrorKind::BadChunkData,
        ParseErrorKind::TrailersTooLarge,
        ParseErrorKind::BadTrailer,
    ];
}

/// A rejected request. `status()` is the single kind-to-status mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParseError {
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        ParseError { kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for ParseError {}
