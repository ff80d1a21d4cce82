//! HPACK header compression (RFC 7541): a full decoder for request header blocks and a
//! stateless encoder for response and trailer blocks.

use std::collections::VecDeque;

use crate::huffman;

/// Why a header block could not be decoded: a connection error COMPRESSION_ERROR (RFC 9113 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// An index of 0, or past the static and dynamic tables.
    BadIndex,
    /// An integer or string length that runs past the block or overflows.
    Truncated,
    /// A Huffman string with an invalid code, EOS inside it, or padding longer than 7 bits / not all ones.
    BadHuffman,
    /// A dynamic table size update larger than the limit we advertised, or not at the start of the block.
    BadSizeUpdate,
}

/// What a successfully decoded block amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Every field was passed to the callback.
    Complete,
    /// The fields' total size (RFC 9113 6.5.2: name + value + 32 each) passed `max_list_size`.
    /// Decoding went on to the end of the block, so the dynamic table stays in step with the
    /// peer's encoder, but no field after the limit was passed to the callback.
    TooLarge,
}

/// The static table of RFC 7541 Appendix A; index `i` is `STATIC[i - 1]`.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The per-entry overhead in the table size and in the header list size (RFC 7541 4.1,
/// RFC 9113 6.5.2).
const ENTRY_OVERHEAD: usize = 32;

/// Integers past this are refused; no legitimate index, length or table size comes close,
/// and the cap keeps the arithmetic far from overflow.
const MAX_INT: usize = 1 << 28;

/// One dynamic table entry: name and value in one allocation.
#[derive(Debug)]
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// The dynamic table (RFC 7541 2.3.2): newest entry at the front, which is index 62.
#[derive(Debug)]
struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    capacity: usize,
}

impl DynamicTable {
    fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict_to(capacity);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size(),
                None => break,
            }
        }
    }

    /// RFC 7541 4.4: evict until the new entry fits; one larger than the whole table empties
    /// it and is not added.
    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.capacity {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.capacity - size);
        self.size += size;
        self.entries.push_front(entry);
    }
}

/// Where a decoded string lies: in the block itself (plain) or in the scratch buffer
/// (Huffman-decoded).
#[derive(Clone, Copy)]
enum Str {
    Block(usize, usize),
    Scratch(usize, usize),
}

impl Str {
    fn get<'a>(self, block: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Str::Block(a, b) => &block[a..b],
            Str::Scratch(a, b) => &scratch[a..b],
        }
    }
}

/// The name of a literal field: a table index or a string.
#[derive(Clone, Copy)]
enum Name {
    Index(usize),
    Literal(Str),
}

/// Decodes request header blocks, keeping the dynamic table between them.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE: the most a size update may ask for.
    max_table_size: usize,
    /// Huffman-decoded strings of the current field, reused across fields and blocks.
    scratch: Vec<u8>,
}

impl Decoder {
    /// `max_table_size`: our SETTINGS_HEADER_TABLE_SIZE (the default 4096). The peer may shrink
    /// it with size updates, never grow past it.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                capacity: max_table_size,
            },
            max_table_size,
            scratch: Vec::new(),
        }
    }

    /// Decodes one whole header block (HEADERS + CONTINUATION payloads joined), calling
    /// `field(name, value)` for each field in order, until the list passes `max_list_size`.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<Decoded, DecodeError> {
        let mut pos = 0;
        let mut list_size = 0usize;
        let mut too_large = false;
        let mut any_field = false;

        // Counts a field into the list size; true while it may still go to the callback.
        let mut admit = |name_len: usize, value_len: usize, too_large: &mut bool| -> bool {
            if *too_large {
                return false;
            }
            list_size = list_size.saturating_add(name_len + value_len + ENTRY_OVERHEAD);
            if list_size > max_list_size {
                *too_large = true;
                return false;
            }
            true
        };

        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed field (RFC 7541 6.1). Once past the limit it costs nothing more
                // than the lookup: a bomb of references copies no bytes.
                any_field = true;
                let index = decode_int(block, &mut pos, 7)?;
                let (name, value) = self.lookup(index)?;
                if admit(name.len(), value.len(), &mut too_large) {
                    field(name, value);
                }
                continue;
            }

            if first & 0xe0 == 0x20 {
                // Dynamic table size update (RFC 7541 6.3), allowed only before any field
                // (RFC 7541 4.2).
                if any_field {
                    return Err(DecodeError::BadSizeUpdate);
                }
                let size = decode_int(block, &mut pos, 5)?;
                if size > self.max_table_size {
                    return Err(DecodeError::BadSizeUpdate);
                }
                self.table.set_capacity(size);
                continue;
            }

            // A literal field: with incremental indexing (01, 6-bit index), or without
            // indexing (0000) or never indexed (0001), both with a 4-bit index.
            any_field = true;
            let indexing = first & 0x40 != 0;
            let index = decode_int(block, &mut pos, if indexing { 6 } else { 4 })?;
            self.scratch.clear();
            let name = if index == 0 {
                Name::Literal(self.read_string(block, &mut pos)?)
            } else {
                if index > STATIC.len() + self.table.entries.len() {
                    return Err(DecodeError::BadIndex);
                }
                Name::Index(index)
            };
            let value = self.read_string(block, &mut pos)?;

            let scratch = &self.scratch[..];
            let name_bytes = match name {
                Name::Index(i) => name_at(&self.table, i),
                Name::Literal(s) => s.get(block, scratch),
            };
            let value_bytes = value.get(block, scratch);
            if admit(name_bytes.len(), value_bytes.len(), &mut too_large) {
                field(name_bytes, value_bytes);
            }
            if indexing {
                // Copied before inserting: eviction may drop the entry the name came from.
                let mut bytes = Vec::with_capacity(name_bytes.len() + value_bytes.len());
                bytes.extend_from_slice(name_bytes);
                bytes.extend_from_slice(value_bytes);
                let entry = Entry {
                    bytes: bytes.into_boxed_slice(),
                    name_len: name_bytes.len(),
                };
                self.table.insert(entry);
            }
        }

        Ok(if too_large {
            Decoded::TooLarge
        } else {
            Decoded::Complete
        })
    }

    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        if index == 0 {
            return Err(DecodeError::BadIndex);
        }
        if let Some(&(name, value)) = STATIC.get(index - 1) {
            return Ok((name, value));
        }
        match self.table.entries.get(index - 1 - STATIC.len()) {
            Some(e) => Ok((e.name(), e.value())),
            None => Err(DecodeError::BadIndex),
        }
    }

    /// Reads a string literal (RFC 7541 5.2) at `pos`; a Huffman one is decoded onto the end
    /// of the scratch buffer.
    fn read_string(&mut self, block: &[u8], pos: &mut usize) -> Result<Str, DecodeError> {
        let huffman = block.get(*pos).ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let len = decode_int(block, pos, 7)?;
        let start = *pos;
        if len > block.len() - start {
            return Err(DecodeError::Truncated);
        }
        let end = start + len;
        *pos = end;
        if !huffman {
            return Ok(Str::Block(start, end));
        }
        let from = self.scratch.len();
        huffman::decode(&block[start..end], &mut self.scratch)
            .map_err(|_| DecodeError::BadHuffman)?;
        Ok(Str::Scratch(from, self.scratch.len()))
    }
}

/// The name at a literal's index, which the caller has checked is in range and not 0.
fn name_at(table: &DynamicTable, index: usize) -> &[u8] {
    match STATIC.get(index - 1) {
        Some(&(name, _)) => name,
        None => table.entries[index - 1 - STATIC.len()].name(),
    }
}

/// Reads an integer with an `prefix_bits`-bit prefix (RFC 7541 5.1) at `pos`.
fn decode_int(block: &[u8], pos: &mut usize, prefix_bits: u8) -> Result<usize, DecodeError> {
    let mask = (1usize << prefix_bits) - 1;
    let first = *block.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift >= 28 {
            return Err(DecodeError::Truncated);
        }
    }
    if value > MAX_INT {
        return Err(DecodeError::Truncated);
    }
    Ok(value)
}

/// Appends `value` as an integer with a `prefix_bits`-bit prefix (RFC 7541 5.1); the bits of
/// the first byte above the prefix come from `first_byte_flags`.
pub fn encode_int(out: &mut Vec<u8>, value: usize, prefix_bits: u8, first_byte_flags: u8) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        out.push(first_byte_flags | value as u8);
        return;
    }
    out.push(first_byte_flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a string literal without Huffman coding.
fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    encode_int(out, s.len(), 7, 0);
    out.extend_from_slice(s);
}

/// The index of the first static entry named `name`, found by length first so that a lookup
/// is a jump and a couple of short compares.
fn static_name_index(name: &[u8]) -> Option<usize> {
    let index = match name.len() {
        3 => match name {
            b"age" => 21,
            b"via" => 60,
            _ => return None,
        },
        4 => match name {
            b"date" => 33,
            b"etag" => 34,
            b"from" => 37,
            b"host" => 38,
            b"link" => 45,
            b"vary" => 59,
            _ => return None,
        },
        5 => match name {
            b":path" => 4,
            b"allow" => 22,
            b"range" => 50,
            _ => return None,
        },
        6 => match name {
            b"accept" => 19,
            b"cookie" => 32,
            b"expect" => 35,
            b"server" => 54,
            _ => return None,
        },
        7 => match name {
            b":method" => 2,
            b":scheme" => 6,
            b":status" => 8,
            b"expires" => 36,
            b"referer" => 51,
            b"refresh" => 52,
            _ => return None,
        },
        8 => match name {
            b"if-match" => 39,
            b"if-range" => 42,
            b"location" => 46,
            _ => return None,
        },
        10 => match name {
            b":authority" => 1,
            b"set-cookie" => 55,
            b"user-agent" => 58,
            _ => return None,
        },
        11 => match name {
            b"retry-after" => 53,
            _ => return None,
        },
        12 => match name {
            b"content-type" => 31,
            b"max-forwards" => 47,
            _ => return None,
        },
        13 => match name {
            b"accept-ranges" => 18,
            b"authorization" => 23,
            b"cache-control" => 24,
            b"content-range" => 30,
            b"if-none-match" => 41,
            b"last-modified" => 44,
            _ => return None,
        },
        14 => match name {
            b"accept-charset" => 15,
            b"content-length" => 28,
            _ => return None,
        },
        15 => match name {
            b"accept-encoding" => 16,
            b"accept-language" => 17,
            _ => return None,
        },
        16 => match name {
            b"content-encoding" => 26,
            b"content-language" => 27,
            b"content-location" => 29,
            b"www-authenticate" => 61,
            _ => return None,
        },
        17 => match name {
            b"if-modified-since" => 40,
            b"transfer-encoding" => 57,
            _ => return None,
        },
        18 => match name {
            b"proxy-authenticate" => 48,
            _ => return None,
        },
        19 => match name {
            b"content-disposition" => 25,
            b"if-unmodified-since" => 43,
            b"proxy-authorization" => 49,
            _ => return None,
        },
        25 => match name {
            b"strict-transport-security" => 56,
            _ => return None,
        },
        27 => match name {
            b"access-control-allow-origin" => 20,
            _ => return None,
        },
        _ => return None,
    };
    Some(index)
}

/// Encodes response/trailer header blocks. It never inserts into the dynamic table (so it
/// never sends a size update and needs no state); it uses the static table: a fully indexed
/// field where name and value both match, else a literal without indexing with an indexed
/// name where the name is in the static table, else a literal with a literal name. Strings
/// are not Huffman-coded, which keeps encoding a plain copy.
#[derive(Debug, Default, Clone, Copy)]
pub struct Encoder;

impl Encoder {
    pub fn new() -> Encoder {
        Encoder
    }

    /// Appends `:status` encoded to `out`.
    pub fn status(&mut self, status: u16, out: &mut Vec<u8>) {
        let indexed = match status {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if indexed != 0 {
            out.push(0x80 | indexed);
            return;
        }
        // Literal without indexing, name index 8 (`:status`).
        let mut digits = [0u8; 5];
        let mut n = status;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.push(0x08);
        encode_str(out, &digits[start..]);
    }

    /// Appends a field whose name is static table entry `index` (as from
    /// [`Encoder::CONTENT_LENGTH`]), as a literal without indexing: no name lookup.
    pub fn named(&mut self, index: u8, value: &[u8], out: &mut Vec<u8>) {
        debug_assert!((1..=61).contains(&index));
        out.reserve(value.len() + 4);
        encode_int(out, index as usize, 4, 0x00);
        encode_str(out, value);
    }

    /// Static table index of `content-length`.
    pub const CONTENT_LENGTH: u8 = 28;
    /// Static table index of `date`.
    pub const DATE: u8 = 33;

    /// Appends one field (the name already lowercase; the caller guarantees it) to `out`.
    pub fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        out.reserve(name.len() + value.len() + 8);
        let Some(index) = static_name_index(name) else {
            out.push(0x00);
            encode_str(out, name);
            encode_str(out, value);
            return;
        };
        // Entries sharing a name are adjacent in the static table; most names have one
        // entry, with an empty value.
        let mut i = index;
        while let Some(&(n, v)) = STATIC.get(i - 1) {
            if n != name {
                break;
            }
            if v == value {
                encode_int(out, i, 7, 0x80);
                return;
            }
            i += 1;
        }
        encode_int(out, index, 4, 0x00);
        encode_str(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_fields_use_the_static_entry_of_their_name() {
        assert_eq!(
            STATIC[Encoder::CONTENT_LENGTH as usize - 1].0,
            b"content-length"
        );
        assert_eq!(STATIC[Encoder::DATE as usize - 1].0, b"date");
        let mut named = Vec::new();
        Encoder::new().named(Encoder::CONTENT_LENGTH, b"13", &mut named);
        let mut looked_up = Vec::new();
        Encoder::new().field(b"content-length", b"13", &mut looked_up);
        assert_eq!(named, looked_up);
    }
    use crate::huffman::tests::encode as huffman_encode;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Result<(Decoded, Fields), DecodeError> {
        let mut fields = Vec::new();
        let r = d.decode(block, usize::MAX, |n, v| {
            fields.push((n.to_vec(), v.to_vec()))
        })?;
        Ok((r, fields))
    }

    fn fields(list: &[(&str, &str)]) -> Fields {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn table(d: &Decoder) -> Vec<(String, String)> {
        d.table
            .entries
            .iter()
            .map(|e| {
                (
                    String::from_utf8(e.name().to_vec()).unwrap(),
                    String::from_utf8(e.value().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn check(
        d: &mut Decoder,
        block: &str,
        want: &[(&str, &str)],
        dyn_table: &[(&str, &str)],
        size: usize,
    ) {
        let (r, got) = decode_all(d, &hex(block)).unwrap();
        assert_eq!(r, Decoded::Complete);
        assert_eq!(got, fields(want));
        let want_table: Vec<(String, String)> = dyn_table
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(table(d), want_table);
        assert_eq!(d.table.size, size);
    }

    #[test]
    fn rfc_c2_literals_and_indexed() {
        // C.2.1: literal with indexing, new name.
        let mut d = Decoder::new(4096);
        check(
            &mut d,
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            &[("custom-key", "custom-header")],
            &[("custom-key", "custom-header")],
            55,
        );
        // C.2.2: literal without indexing, indexed name.
        let mut d = Decoder::new(4096);
        check(
            &mut d,
            "040c 2f73 616d 706c 652f 7061 7468",
            &[(":path", "/sample/path")],
            &[],
            0,
        );
        // C.2.3: never indexed, new name.
        let mut d = Decoder::new(4096);
        check(
            &mut d,
            "1008 7061 7373 776f 7264 0673 6563 7265 74",
            &[("password", "secret")],
            &[],
            0,
        );
        // C.2.4: indexed.
        let mut d = Decoder::new(4096);
        check(&mut d, "82", &[(":method", "GET")], &[], 0);
    }

    /// RFC 7541 C.3 and C.4 encode the same three requests, without and with Huffman coding:
    /// each must decode to the same fields and leave the same dynamic table.
    fn rfc_requests(blocks: [&str; 3]) {
        let mut d = Decoder::new(4096);
        let first = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        check(
            &mut d,
            blocks[0],
            &first,
            &[(":authority", "www.example.com")],
            57,
        );
        let mut second = first.to_vec();
        second.push(("cache-control", "no-cache"));
        check(
            &mut d,
            blocks[1],
            &second,
            &[
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ],
            110,
        );
        check(
            &mut d,
            blocks[2],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ],
            &[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ],
            164,
        );
    }

    #[test]
    fn rfc_c3_requests_without_huffman() {
        rfc_requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn rfc_c4_requests_with_huffman() {
        rfc_requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    #[test]
    fn rfc_c6_responses_with_huffman_and_eviction() {
        let mut d = Decoder::new(256);
        check(
            &mut d,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            &[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ],
            &[
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
                (":status", "302"),
            ],
            222,
        );
        check(
            &mut d,
            "4883 640e ffc1 c0bf",
            &[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ],
            &[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
            ],
            222,
        );
        check(
            &mut d,
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            &[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
            ],
            &[
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
                ("content-encoding", "gzip"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ],
            215,
        );
    }

    #[test]
    fn errors() {
        let err = |block: &[u8], max_table: usize| {
            Decoder::new(max_table)
                .decode(block, usize::MAX, |_, _| {})
                .unwrap_err()
        };
        assert_eq!(err(&[0x80], 4096), DecodeError::BadIndex);
        assert_eq!(err(&[0x80 | 62], 4096), DecodeError::BadIndex);
        assert_eq!(err(&[0xff, 0x00], 4096), DecodeError::BadIndex);
        // Literal names by index past the table.
        assert_eq!(err(&[0x40 | 62, 0x00], 4096), DecodeError::BadIndex);
        assert_eq!(err(&[0x0f, 0x2f, 0x00], 4096), DecodeError::BadIndex);
        // Truncated integers: a continuation bit at the end of the block.
        assert_eq!(err(&[0xff], 4096), DecodeError::Truncated);
        assert_eq!(err(&[0xff, 0x80], 4096), DecodeError::Truncated);
        // An integer past 2^28.
        assert_eq!(
            err(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], 4096),
            DecodeError::Truncated
        );
        assert_eq!(
            err(&[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 4096),
            DecodeError::Truncated
        );
        // A string length past the end, and a missing value.
        assert_eq!(err(&[0x04, 0x05, b'/', b'a'], 4096), DecodeError::Truncated);
        assert_eq!(err(&[0x04], 4096), DecodeError::Truncated);
        assert_eq!(err(&[0x00, 0x01, b'a'], 4096), DecodeError::Truncated);
        // Huffman: padding of zeros, then a whole byte of padding, then EOS.
        assert_eq!(err(&[0x04, 0x81, 0x00], 4096), DecodeError::BadHuffman);
        assert_eq!(
            err(&[0x04, 0x82, 0x1f, 0xff], 4096),
            DecodeError::BadHuffman
        );
        assert_eq!(
            err(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], 4096),
            DecodeError::BadHuffman
        );
        // Size updates: above the advertised size; after a field.
        assert_eq!(err(&[0x3f, 0xe2, 0x1f], 4096), DecodeError::BadSizeUpdate);
        assert_eq!(err(&[0x3f, 0x02], 32), DecodeError::BadSizeUpdate);
        assert_eq!(err(&[0x82, 0x20], 4096), DecodeError::BadSizeUpdate);
    }

    #[test]
    fn size_updates() {
        let mut d = Decoder::new(4096);
        // Fill the table with one entry (C.2.1), then shrink to 0 and back within 4096.
        decode_all(
            &mut d,
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        )
        .unwrap();
        assert_eq!(d.table.size, 55);
        // Two updates in a row: 0 evicts everything, then 4096 (3f e1 1f).
        let (r, got) = decode_all(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]).unwrap();
        assert_eq!(r, Decoded::Complete);
        assert_eq!(got, fields(&[(":method", "GET")]));
        assert_eq!(d.table.entries.len(), 0);
        assert_eq!(d.table.capacity, 4096);
        // The old entry is gone.
        assert_eq!(
            d.decode(&[0x80 | 62], usize::MAX, |_, _| {}),
            Err(DecodeError::BadIndex)
        );
        // Shrinking to 60 keeps a 55-byte entry but a second evicts the first.
        decode_all(&mut d, &[0x3f, 0x1d]).unwrap();
        assert_eq!(d.table.capacity, 60);
        let mut block = vec![0x40, 0x01, b'a', 0x14];
        block.extend_from_slice(&[b'x'; 20]);
        decode_all(&mut d, &block).unwrap();
        assert_eq!(d.table.size, 53);
        decode_all(&mut d, &[0x40, 0x01, b'b', 0x01, b'y']).unwrap();
        assert_eq!(table(&d), vec![("b".to_string(), "y".to_string())]);
        assert_eq!(d.table.size, 34);
        // An entry larger than the table empties it.
        let mut big = vec![0x40, 0x01, b'c', 0x1e];
        big.extend_from_slice(&[b'z'; 30]);
        decode_all(&mut d, &big).unwrap();
        assert_eq!(d.table.entries.len(), 0);
        assert_eq!(d.table.size, 0);
    }

    #[test]
    fn literal_name_from_evicted_entry() {
        // RFC 7541 4.4: the name may refer to the entry that the insertion evicts.
        let mut d = Decoder::new(40);
        decode_all(&mut d, &[0x40, 0x01, b'a', 0x01, b'b']).unwrap();
        let (_, got) = decode_all(&mut d, &[0x40 | 62, 0x02, b'c', b'd']).unwrap();
        assert_eq!(got, fields(&[("a", "cd")]));
        assert_eq!(table(&d), vec![("a".to_string(), "cd".to_string())]);
    }

    #[test]
    fn bomb_stops_at_the_list_limit() {
        let mut block = vec![0x40, 0x01, b'x'];
        encode_int(&mut block, 4000, 7, 0);
        block.extend(std::iter::repeat_n(b'v', 4000));
        block.extend(std::iter::repeat_n(0x80 | 62, 100));
        let mut d = Decoder::new(4096);
        let mut seen = 0;
        let r = d.decode(&block, 16384, |n, v| {
            assert_eq!(n, b"x");
            assert_eq!(v.len(), 4000);
            seen += 1;
        });
        assert_eq!(r, Ok(Decoded::TooLarge));
        assert!(seen < 5, "{seen} fields passed");
        assert_eq!(seen, 4);
        // The table is still in step: the next block refers to the entry and adds another.
        let (r, got) =
            decode_all(&mut d, &[0xbe, 0x82, 0x40, 0x01, b'y', 0x01, b'z', 0xbe]).unwrap();
        assert_eq!(r, Decoded::Complete);
        assert_eq!(got[0].0, b"x");
        assert_eq!(got[0].1.len(), 4000);
        assert_eq!(
            &got[1..],
            &fields(&[(":method", "GET"), ("y", "z"), ("y", "z")])[..]
        );
        assert_eq!(d.table.entries.len(), 2);
        assert_eq!(d.table.entries[0].name(), b"y");
        assert_eq!(d.table.size, 4033 + 34);
    }

    #[test]
    fn too_large_still_indexes_later_literals() {
        let mut d = Decoder::new(4096);
        let mut block = vec![0x82, 0x82];
        block.extend_from_slice(&[0x40, 0x01, b'k']);
        let v = huffman_encode(b"value");
        encode_int(&mut block, v.len(), 7, 0x80);
        block.extend_from_slice(&v);
        let mut seen = Vec::new();
        let r = d.decode(&block, 50, |n, v| seen.push((n.to_vec(), v.to_vec())));
        assert_eq!(r, Ok(Decoded::TooLarge));
        assert_eq!(seen, fields(&[(":method", "GET")]));
        assert_eq!(table(&d), vec![("k".to_string(), "value".to_string())]);
        // Exactly at the limit is still complete.
        let r = d.decode(&[0x82], 42, |_, _| {});
        assert_eq!(r, Ok(Decoded::Complete));
        let r = d.decode(&[0x82], 41, |_, _| {});
        assert_eq!(r, Ok(Decoded::TooLarge));
    }

    #[test]
    fn huffman_strings() {
        let all: Vec<u8> = (0..=255u8).collect();
        let samples: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"custom-key",
            b"text/html; charset=utf-8",
            b"Mon, 21 Oct 2013 20:13:22 GMT",
            &all,
        ];
        let mut d = Decoder::new(4096);
        for (i, s) in samples.iter().enumerate() {
            let mut block = Vec::new();
            // Never indexed, Huffman name, Huffman value; then with indexing.
            let name = format!("n{i}");
            for first in [0x10u8, 0x40] {
                block.push(first);
                let n = huffman_encode(name.as_bytes());
                encode_int(&mut block, n.len(), 7, 0x80);
                block.extend_from_slice(&n);
                let v = huffman_encode(s);
                encode_int(&mut block, v.len(), 7, 0x80);
                block.extend_from_slice(&v);
            }
            block.push(0x80 | 62);
            let (_, got) = decode_all(&mut d, &block).unwrap();
            assert_eq!(got.len(), 3);
            for (n, v) in got {
                assert_eq!(n, name.as_bytes());
                assert_eq!(v, *s);
            }
        }
    }

    #[test]
    fn encoder_round_trip() {
        let printable: Vec<u8> = (0x20..=0x7eu8).collect();
        let list: Vec<(&[u8], &[u8])> = vec![
            (b"content-type", b"text/html"),
            (b"content-length", b"1234"),
            (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"),
            (b"server", b"hyperion"),
            (b"accept-ranges", b""),
            (b"accept-encoding", b"gzip, deflate"),
            (b"accept-encoding", b"br"),
            (b"x-request-id", b"abc"),
            (b"x-empty", b""),
            (b"x-printable", &printable),
            (b"set-cookie", &printable),
            (
                b"a-very-long-header-name-that-is-not-in-the-static-table-at-all-really",
                b"v",
            ),
            (b"etag", &[b'e'; 300]),
        ];
        for status in [
            200u16, 204, 206, 304, 400, 404, 500, 100, 201, 302, 503, 999, 1000, 65535, 0,
        ] {
            let mut e = Encoder::new();
            let mut out = Vec::new();
            e.status(status, &mut out);
            for &(n, v) in &list {
                e.field(n, v, &mut out);
            }
            let mut d = Decoder::new(4096);
            let (r, got) = decode_all(&mut d, &out).unwrap();
            assert_eq!(r, Decoded::Complete);
            assert_eq!(
                got[0],
                (b":status".to_vec(), status.to_string().into_bytes())
            );
            let want: Fields = list
                .iter()
                .map(|&(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(&got[1..], &want[..]);
            assert!(d.table.entries.is_empty());
        }
    }

    #[test]
    fn encoder_representations() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.status(200, &mut out);
        e.status(404, &mut out);
        assert_eq!(out, [0x88, 0x8d]);
        out.clear();
        e.status(302, &mut out);
        assert_eq!(out, [0x08, 0x03, b'3', b'0', b'2']);
        out.clear();
        e.field(b"content-type", b"a", &mut out);
        assert_eq!(out, [0x0f, 0x10, 0x01, b'a']);
        out.clear();
        e.field(b"date", b"", &mut out);
        assert_eq!(out, [0x80 | 33]);
        out.clear();
        e.field(b"accept-encoding", b"gzip, deflate", &mut out);
        assert_eq!(out, [0x80 | 16]);
        out.clear();
        e.field(b":authority", b"x", &mut out);
        assert_eq!(out, [0x01, 0x01, b'x']);
        out.clear();
        e.field(b"x-a", b"b", &mut out);
        assert_eq!(out, [0x00, 0x03, b'x', b'-', b'a', 0x01, b'b']);
    }

    #[test]
    fn static_name_lookup_matches_the_table() {
        for (i, &(name, _)) in STATIC.iter().enumerate() {
            let first = STATIC.iter().position(|&(n, _)| n == name).unwrap() + 1;
            assert_eq!(static_name_index(name), Some(first), "entry {}", i + 1);
        }
        assert_eq!(static_name_index(b"x-foo"), None);
        assert_eq!(static_name_index(b"Content-Type"), None);
        assert_eq!(static_name_index(b""), None);
    }

    #[test]
    fn integers() {
        // RFC 7541 C.1.
        let mut out = Vec::new();
        encode_int(&mut out, 10, 5, 0);
        assert_eq!(out, [0x0a]);
        out.clear();
        encode_int(&mut out, 1337, 5, 0);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        out.clear();
        encode_int(&mut out, 42, 8, 0);
        assert_eq!(out, [0x2a]);
        for prefix in 1..=8u8 {
            for v in [
                0usize,
                1,
                30,
                31,
                126,
                127,
                128,
                254,
                255,
                256,
                1337,
                65535,
                1 << 20,
                MAX_INT,
            ] {
                let mut out = Vec::new();
                encode_int(&mut out, v, prefix, 0);
                let mut pos = 0;
                assert_eq!(decode_int(&out, &mut pos, prefix), Ok(v));
                assert_eq!(pos, out.len());
            }
        }
    }
}
