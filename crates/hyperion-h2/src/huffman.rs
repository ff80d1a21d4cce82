//! Decoding of HPACK's static Huffman code (RFC 7541 5.2 and Appendix B).
//!
//! The code is decoded four bits at a time by a state machine whose states are the 256
//! internal nodes of the code tree. Every code is at least five bits long, so one nibble
//! finishes at most one symbol. The table is built at compile time.

/// The Huffman code of RFC 7541 Appendix B: `(code, length in bits)` for symbols 0..=255 and
/// EOS (256).
pub(crate) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

const EOS: u16 = 256;

/// A child slot in the code tree: either an internal node's number or `LEAF | symbol`.
const LEAF: u16 = 0x8000;

/// The transition taken from one state on one nibble.
#[derive(Clone, Copy)]
struct Step {
    /// The state (internal node) reached; 0 is the root.
    next: u8,
    /// The symbol finished on the way, when `flags & EMIT`.
    sym: u8,
    flags: u8,
}

/// The nibble finished a symbol.
const EMIT: u8 = 1;
/// The nibble ran into EOS, which must not appear in a string (RFC 7541 5.2).
const FAIL: u8 = 2;
/// The state reached may end the string: it lies at most 7 bits down the all-ones path, so
/// the bits since the last symbol are valid padding (a prefix of EOS no longer than 7 bits).
const ACCEPT: u8 = 4;

/// The code tree as `children[node][bit]`; 0 means not yet set (the root is nobody's child).
const fn build_tree() -> [[u16; 2]; 256] {
    let mut children = [[0u16; 2]; 256];
    let mut allocated = 1usize;
    let mut sym = 0usize;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                assert!(children[node][bit] == 0, "Huffman code is not prefix-free");
                children[node][bit] = LEAF | sym as u16;
            } else {
                if children[node][bit] == 0 {
                    assert!(allocated < 256, "Huffman tree has too many nodes");
                    children[node][bit] = allocated as u16;
                    allocated += 1;
                }
                assert!(
                    children[node][bit] & LEAF == 0,
                    "Huffman code is not prefix-free"
                );
                node = children[node][bit] as usize;
            }
        }
        sym += 1;
    }
    // 257 leaves of a complete binary tree need exactly 256 internal nodes, all filled.
    assert!(allocated == 256, "Huffman code is not complete");
    children
}

const fn build_steps() -> [[Step; 16]; 256] {
    let children = build_tree();

    let mut accepting = [false; 256];
    let mut node = 0usize;
    let mut depth = 0;
    accepting[0] = true;
    while depth < 7 {
        node = children[node][1] as usize;
        accepting[node] = true;
        depth += 1;
    }

    let blank = Step {
        next: 0,
        sym: 0,
        flags: 0,
    };
    let mut steps = [[blank; 16]; 256];
    let mut state = 0usize;
    while state < 256 {
        let mut nibble = 0usize;
        while nibble < 16 {
            let mut node = state;
            let mut step = blank;
            let mut i = 4;
            while i > 0 {
                i -= 1;
                let child = children[node][(nibble >> i) & 1];
                if child & LEAF != 0 {
                    let sym = child & !LEAF;
                    if sym == EOS {
                        step.flags |= FAIL;
                        break;
                    }
                    step.sym = sym as u8;
                    step.flags |= EMIT;
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            step.next = node as u8;
            if step.flags & FAIL == 0 && accepting[node] {
                step.flags |= ACCEPT;
            }
            steps[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    steps
}

static STEPS: [[Step; 16]; 256] = build_steps();

/// The string is not valid Huffman code: it holds EOS, or its padding is longer than 7 bits or
/// not all ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidHuffman;

/// Appends the decoding of `src` to `out`.
pub(crate) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    // The shortest code is 5 bits, so n bytes hold at most 8n/5 symbols.
    out.reserve(src.len() + src.len() / 2 + src.len() / 8 + 1);
    let mut state = 0usize;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = STEPS[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(InvalidHuffman);
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = step.next as usize;
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(InvalidHuffman)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Huffman-encodes `src`, padding with ones (RFC 7541 5.2); for tests only.
    pub(crate) fn encode(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        for &b in src {
            let (code, len) = CODES[b as usize];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    fn dec(src: &[u8]) -> Result<Vec<u8>, InvalidHuffman> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn code_is_complete() {
        // Kraft's equality: a complete prefix code's 2^-len sum to exactly 1.
        let sum: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(sum, 1 << 30);
        for &(code, len) in &CODES {
            assert!(u64::from(code) < 1u64 << len);
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 and C.6.1.
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        assert_eq!(
            dec(&hex("f1e3c2e5f23a6ba0ab90f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(dec(&hex("6402")).unwrap(), b"302");
        assert_eq!(dec(&hex("aec3771a4b")).unwrap(), b"private");
        assert_eq!(
            dec(&hex("d07abe941054d444a8200595040b8166e082a62d1bff")).unwrap(),
            b"Mon, 21 Oct 2013 20:13:21 GMT"
        );
        assert_eq!(encode(b"www.example.com"), hex("f1e3c2e5f23a6ba0ab90f4ff"));
    }

    #[test]
    fn round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(dec(&encode(&all)).unwrap(), all);
        let reversed: Vec<u8> = (0..=255u8).rev().collect();
        assert_eq!(dec(&encode(&reversed)).unwrap(), reversed);
        for b in 0..=255u8 {
            for n in 1..=9 {
                let s = vec![b; n];
                assert_eq!(dec(&encode(&s)).unwrap(), s, "byte {b} x{n}");
            }
        }
        for s in [
            &b""[..],
            b"a",
            b"no-cache",
            b"custom-key",
            b"text/html; charset=utf-8",
            b"Mozilla/5.0 (X11; Linux x86_64)",
        ] {
            assert_eq!(dec(&encode(s)).unwrap(), s);
        }
    }

    #[test]
    fn rejects_bad_padding_and_eos() {
        // A whole byte of ones after the last symbol: padding of 8 bits.
        let mut s = encode(b"ab");
        s.push(0xff);
        assert_eq!(dec(&s), Err(InvalidHuffman));
        assert_eq!(dec(&[0xff]), Err(InvalidHuffman));
        // '0' is 00000; padding with zeros is not a prefix of EOS.
        assert_eq!(dec(&[0x00]), Err(InvalidHuffman));
        // 'a' (00011) then 3 bits that are not all ones.
        assert_eq!(dec(&[0b0001_1010]), Err(InvalidHuffman));
        assert_eq!(dec(&[0b0001_1111]).unwrap(), b"a");
        // EOS in full: 30 ones, then 2 bits of padding.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(InvalidHuffman));
        // 'a' then EOS (27 ones here, 3 in the last byte).
        assert_eq!(
            dec(&[0b0001_1111, 0xff, 0xff, 0xff, 0xfc]),
            Err(InvalidHuffman)
        );
        // A code cut short: the first 8 bits of '!' (1111111000).
        assert_eq!(dec(&[0b1111_1110]), Err(InvalidHuffman));
        assert_eq!(dec(&[]).unwrap(), b"");
    }
}
