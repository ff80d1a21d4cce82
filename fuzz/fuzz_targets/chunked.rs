//! `ChunkedDecoder` fed arbitrary bytes in arbitrary pieces.
//!
//! Input layout: one byte of flags (bit 0: small limits), one byte giving the number of cuts
//! (0..=15), two bytes per cut (a position), then the body bytes.
//! Checks: no panic; feeding the pieces gives exactly what feeding everything at once gives
//! (consumed count, done, error kind, decoded bytes, trailers); errors are sticky; nothing is
//! consumed once done; the decoded body never exceeds max_body_bytes.

#![no_main]

use hyperion_http::{ChunkedDecoder, Limits, ParseError};
use libfuzzer_sys::fuzz_target;

fn small_limits() -> Limits {
    Limits {
        max_head_bytes: 64,
        max_headers: 3,
        max_uri_bytes: 16,
        max_body_bytes: 100,
        max_chunk_ext_bytes: 8,
        max_trailer_bytes: 32,
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The error, or (bytes consumed, body complete).
    result: Result<(usize, bool), ParseError>,
    body: Vec<u8>,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Feeds `input` in contiguous pieces ending at `cuts` (sorted), the way the engine does:
/// each read is offered once and decoding stops when the body is complete.
fn feed(input: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    let mut d = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut pos = 0;
    let mut result = Ok((input.len(), false));
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        if end < pos {
            continue;
        }
        match d.decode(&input[pos..end], &mut body) {
            Err(e) => {
                assert_eq!(
                    d.decode(b"0\r\n\r\n", &mut body),
                    Err(e),
                    "errors are sticky"
                );
                result = Err(e);
                break;
            }
            Ok(n) if d.is_done() => {
                assert!(pos + n <= end);
                assert_eq!(
                    d.decode(b"0\r\n\r\n", &mut body),
                    Ok(0),
                    "nothing after done"
                );
                result = Ok((pos + n, true));
                break;
            }
            Ok(n) => assert_eq!(n, end - pos, "a piece was not consumed whole"),
        }
        pos = end;
    }
    assert_eq!(d.body_len(), body.len() as u64);
    assert!(body.len() as u64 <= limits.max_body_bytes);
    Outcome {
        result,
        body,
        trailers: d.trailers().to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, n_cuts, rest @ ..] = data else {
        return;
    };
    let n_cuts = usize::from(n_cuts % 16);
    if rest.len() < 2 * n_cuts {
        return;
    }
    let (cut_bytes, input) = rest.split_at(2 * n_cuts);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (input.len() + 1))
        .collect();
    cuts.sort_unstable();
    let limits = if flags & 1 == 0 {
        Limits::default()
    } else {
        small_limits()
    };
    let whole = feed(input, &[], &limits);
    let pieces = feed(input, &cuts, &limits);
    assert_eq!(
        pieces,
        whole,
        "cuts {cuts:?} of {:?}",
        String::from_utf8_lossy(input)
    );
});
