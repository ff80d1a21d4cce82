//! Frame headers and the frames a server writes (RFC 9113 4.1, 6).

pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The largest flow-control window (RFC 9113 6.9.1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The smallest SETTINGS_MAX_FRAME_SIZE, and every peer's until it says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
pub const DEFAULT_WINDOW: i64 = 65_535;

/// Error codes (RFC 9113 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

/// The fixed nine bytes in front of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub fn parse(b: &[u8]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize,
            kind: b[3],
            flags: b[4],
            // The reserved bit is ignored on receipt (RFC 9113 4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }
}

pub fn write_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = (len as u32).to_be_bytes();
    let id = stream.to_be_bytes();
    out.extend_from_slice(&[
        len[1], len[2], len[3], kind, flags, id[0], id[1], id[2], id[3],
    ]);
}

/// A header block as HEADERS and, past `max_frame`, CONTINUATION frames.
pub fn write_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let flags = if end_stream { END_STREAM } else { 0 };
    if block.len() <= max_frame {
        write_head(out, block.len(), HEADERS, flags | END_HEADERS, stream);
        out.extend_from_slice(block);
        return;
    }
    let mut pieces = block.chunks(max_frame).peekable();
    let mut kind = HEADERS;
    let mut flags = flags;
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        write_head(
            out,
            piece.len(),
            kind,
            flags | if last { END_HEADERS } else { 0 },
            stream,
        );
        out.extend_from_slice(piece);
        kind = CONTINUATION;
        flags = 0;
    }
}

/// `data` as DATA frames of at most `max_frame` bytes; END_STREAM on the last when `end`.
pub fn write_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end: bool, max_frame: usize) {
    if data.is_empty() {
        write_head(out, 0, DATA, if end { END_STREAM } else { 0 }, stream);
        return;
    }
    let mut pieces = data.chunks(max_frame).peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        write_head(
            out,
            piece.len(),
            DATA,
            if end && last { END_STREAM } else { 0 },
            stream,
        );
        out.extend_from_slice(piece);
    }
}

pub fn write_settings(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    write_head(out, settings.len() * 6, SETTINGS, 0, 0);
    for (id, value) in settings {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn write_settings_ack(out: &mut Vec<u8>) {
    write_head(out, 0, SETTINGS, ACK, 0);
}

pub fn write_ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    write_head(out, 8, PING, ACK, 0);
    out.extend_from_slice(payload);
}

pub fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

pub fn write_rst(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    write_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&reason.0.to_be_bytes());
}

pub fn write_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    write_head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_and_ignores_the_reserved_bit() {
        let mut out = Vec::new();
        write_head(&mut out, 0x012345, HEADERS, END_HEADERS, 7);
        out[5] |= 0x80;
        let head = Head::parse(&out);
        assert_eq!(
            head,
            Head {
                len: 0x012345,
                kind: HEADERS,
                flags: END_HEADERS,
                stream: 7
            }
        );
    }

    #[test]
    fn a_long_header_block_continues_and_ends_on_the_last_frame() {
        let block = vec![b'x'; 40];
        let mut out = Vec::new();
        write_headers(&mut out, 3, &block, true, 16);
        let first = Head::parse(&out);
        assert_eq!(
            (first.len, first.kind, first.flags),
            (16, HEADERS, END_STREAM)
        );
        let second = Head::parse(&out[25..]);
        assert_eq!(
            (second.len, second.kind, second.flags),
            (16, CONTINUATION, 0)
        );
        let third = Head::parse(&out[50..]);
        assert_eq!(
            (third.len, third.kind, third.flags),
            (8, CONTINUATION, END_HEADERS)
        );
        assert_eq!(out.len(), 27 + 40);
    }

    #[test]
    fn data_is_cut_at_the_frame_size_with_end_stream_last() {
        let mut out = Vec::new();
        write_data(&mut out, 1, &[1; 20], true, 16);
        assert_eq!(Head::parse(&out).flags, 0);
        assert_eq!(
            Head::parse(&out[25..]),
            Head {
                len: 4,
                kind: DATA,
                flags: END_STREAM,
                stream: 1
            }
        );
    }
}
