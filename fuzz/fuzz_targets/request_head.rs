//! `parse_request_head` on arbitrary bytes, with the default limits and with small ones.
//!
//! Input layout: two bytes choosing where the first read ends, then the request bytes.
//! Checks: no panic; a Complete head stays within the limits and its spans within the head;
//! and the verdict does not depend on the split: the bytes up to the split point parse as
//! Partial or as exactly what the whole input gives (the engine re-parses from the start
//! after each read, so this is what a client splitting its request across reads sees).

#![no_main]

use hyperion_http::{parse_request_head, BodyFraming, HeadStatus, Limits, Span};
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

fn check_span(span: Span, len: usize) {
    assert!(span.start <= span.end, "{span:?}");
    assert!(span.end as usize <= len, "{span:?} beyond the head ({len})");
}

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*a, *b])) % (input.len() + 1);
    for limits in [Limits::default(), small_limits()] {
        let whole = parse_request_head(input, &limits);
        if let Ok(HeadStatus::Complete { head, len }) = &whole {
            let len = *len;
            assert!(len <= input.len() && len <= limits.max_head_bytes);
            for span in [head.method, head.target, head.path, head.query] {
                check_span(span, len);
            }
            for h in &head.headers {
                check_span(h.name, len);
                check_span(h.value, len);
                assert!(!h.name.is_empty());
            }
            if let Some(host) = head.host {
                check_span(host, len);
            }
            assert!(!head.method.is_empty());
            assert!(head.target.len() <= limits.max_uri_bytes);
            assert!(head.headers.len() <= limits.max_headers);
            if let BodyFraming::Length(n) = head.framing {
                assert!(n <= limits.max_body_bytes);
            }
            // The head ends with an empty line and nothing after it was looked at.
            assert!(input[..len].ends_with(b"\r\n\r\n"));
            let again = parse_request_head(&input[..len], &limits);
            assert_eq!(again.as_ref(), whole.as_ref());
        }
        match parse_request_head(&input[..split], &limits) {
            Ok(HeadStatus::Partial) => {}
            first_read => assert_eq!(
                first_read,
                whole,
                "split at {split} of {:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
});
