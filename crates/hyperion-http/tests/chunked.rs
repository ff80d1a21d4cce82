use hyperion_http::*;

fn decode_all(input: &[u8]) -> (Result<usize, ParseError>, Vec<u8>, ChunkedDecoder) {
    decode_with(input, &Limits::default())
}

fn decode_with(
    input: &[u8],
    limits: &Limits,
) -> (Result<usize, ParseError>, Vec<u8>, ChunkedDecoder) {
    let mut d = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let r = d.decode(input, &mut out);
    (r, out, d)
}

fn err_kind(input: &[u8]) -> ParseErrorKind {
    let (r, _, _) = decode_all(input);
    r.expect_err(&String::from_utf8_lossy(input)).kind
}

#[test]
fn simple_body() {
    let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (r, out, d) = decode_all(input);
    assert_eq!(r.unwrap(), input.len());
    assert_eq!(out, b"hello world");
    assert!(d.is_done());
    assert_eq!(d.body_len(), 11);
    assert!(d.trailers().is_empty());
}

#[test]
fn hex_sizes_both_cases_and_zero_padding() {
    let mut input = b"A\r\n0123456789\r\n00000a\r\nabcdefghij\r\n".to_vec();
    input.extend_from_slice(b"1f\r\n");
    input.extend_from_slice(&[b'x'; 31]);
    input.extend_from_slice(b"\r\n1F\r\n");
    input.extend_from_slice(&[b'y'; 31]);
    input.extend_from_slice(b"\r\n000\r\n\r\n");
    let (r, out, d) = decode_all(&input);
    assert_eq!(r.unwrap(), input.len());
    assert_eq!(out.len(), 82);
    assert!(d.is_done());
}

#[test]
fn extensions_and_trailers() {
    let input = b"5;name=value;flag\r\nhello\r\n3 ; a = \"q\\\"x\" ;b\r\nabc\r\n0;last\r\nX-Checksum: abc123 \r\nX-Empty:\r\n\r\n";
    let (r, out, d) = decode_all(input);
    assert_eq!(r.unwrap(), input.len());
    assert_eq!(out, b"helloabc");
    assert!(d.is_done());
    assert_eq!(
        d.trailers(),
        &[
            (b"X-Checksum".to_vec(), b"abc123".to_vec()),
            (b"X-Empty".to_vec(), b"".to_vec())
        ]
    );
}

#[test]
fn leaves_next_request_bytes() {
    let next = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut input = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n".to_vec();
    let body_len = input.len();
    input.extend_from_slice(next);
    let (r, out, d) = decode_all(&input);
    assert_eq!(r.unwrap(), body_len);
    assert_eq!(out, b"abc");
    assert!(d.is_done());
    // Further calls consume nothing.
    let mut d = d;
    let mut out2 = Vec::new();
    assert_eq!(d.decode(next, &mut out2).unwrap(), 0);
    assert!(out2.is_empty());
}

#[test]
fn byte_at_a_time() {
    let input = b"5;e=\"x y\"\r\nhello\r\n0\r\nA: b\r\n\r\nNEXT";
    let mut d = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    let mut consumed = 0;
    for i in 0..input.len() {
        let n = d.decode(&input[i..i + 1], &mut out).unwrap();
        consumed += n;
        if d.is_done() {
            break;
        }
        assert_eq!(n, 1);
    }
    assert_eq!(consumed, input.len() - 4);
    assert_eq!(out, b"hello");
    assert_eq!(d.trailers(), &[(b"A".to_vec(), b"b".to_vec())]);
}

#[test]
fn partial_input_is_all_consumed_and_not_done() {
    let (r, out, d) = decode_all(b"5\r\nhel");
    assert_eq!(r.unwrap(), 6);
    assert_eq!(out, b"hel");
    assert!(!d.is_done());
}

#[test]
fn chunk_size_rejections() {
    use ParseErrorKind::*;
    for (input, want) in [
        (&b"\r\n"[..], BadChunkSize),
        (b"+5\r\nhello\r\n", BadChunkSize),
        (b"-5\r\nhello\r\n", BadChunkSize),
        (b"0x5\r\nhello\r\n", BadChunkSize),
        (b" 5\r\nhello\r\n", BadChunkSize),
        (b"g\r\n", BadChunkSize),
        (b"5g\r\n", BadChunkSize),
        (b";a\r\n", BadChunkSize),
        (b"10000000000000000\r\n", BadChunkSize),
        (b"fffffffffffffffff\r\n", BadChunkSize),
        (b"5\nhello\r\n", BareLineEnding),
        (b"5\r\rhello\r\n", BareLineEnding),
        (b"5;a\nhello\r\n", BareLineEnding),
    ] {
        assert_eq!(
            err_kind(input),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(ParseError { kind: want }.status(), 400);
    }
    let mut many_zeros = vec![b'0'; 33];
    many_zeros.extend_from_slice(b"5\r\n");
    assert_eq!(err_kind(&many_zeros), BadChunkSize);
}

#[test]
fn chunk_extension_rejections() {
    use ParseErrorKind::*;
    for input in [
        &b"5;\r\nhello\r\n"[..],
        b"5;=v\r\nhello\r\n",
        b"5;a=\r\nhello\r\n",
        b"5;a=\"x\r\nhello\r\n",
        b"5;a=b c\r\nhello\r\n",
        b"5 \r\nhello\r\n",
        b"5;a \r\nhello\r\n",
        b"5;a=b \r\nhello\r\n",
        b"5;a=(x)\r\nhello\r\n",
        b"5;a\x00\r\nhello\r\n",
        b"5;a=\"\x01\"\r\nhello\r\n",
        b"5 x\r\nhello\r\n",
    ] {
        assert_eq!(
            err_kind(input),
            BadChunkExtension,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn chunk_extension_too_long() {
    let limits = Limits {
        max_chunk_ext_bytes: 8,
        ..Limits::default()
    };
    // ";abcdefg" is 8 bytes: fine.
    let (r, _, _) = decode_with(b"1;abcdefg\r\nx\r\n0\r\n\r\n", &limits);
    r.unwrap();
    let (r, _, _) = decode_with(b"1;abcdefgh\r\nx\r\n0\r\n\r\n", &limits);
    let e = r.unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::ChunkExtensionTooLong);
    assert_eq!(e.status(), 400);
    // The limit is per chunk line, not cumulative.
    let (r, _, _) = decode_with(
        b"1;abcdefg\r\nx\r\n1;abcdefg\r\ny\r\n0;abcdefg\r\n\r\n",
        &limits,
    );
    r.unwrap();
}

#[test]
fn chunk_data_must_end_with_crlf() {
    use ParseErrorKind::BadChunkData;
    for input in [
        &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"5\r\nhello 0\r\n\r\n",
    ] {
        assert_eq!(
            err_kind(input),
            BadChunkData,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn body_too_large() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let (r, _, _) = decode_with(b"a\r\n0123456789\r\n0\r\n\r\n", &limits);
    r.unwrap();
    // Single chunk over the limit: rejected at the size line, before any data.
    let (r, out, _) = decode_with(b"b\r\n", &limits);
    assert_eq!(r.unwrap_err().status(), 413);
    assert!(out.is_empty());
    // Cumulative.
    let (r, _, d) = decode_with(b"6\r\n012345\r\n5\r\n", &limits);
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::BodyTooLarge);
    assert_eq!(d.body_len(), 6);
    // Huge size does not overflow the check.
    let (r, _, _) = decode_with(b"ffffffffffffffff\r\n", &Limits::default());
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::BodyTooLarge);
}

#[test]
fn error_is_sticky() {
    let mut d = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    let e = d.decode(b"z", &mut out).unwrap_err();
    assert_eq!(d.decode(b"0\r\n\r\n", &mut out).unwrap_err(), e);
    assert!(!d.is_done());
}

#[test]
fn trailer_rejections() {
    use ParseErrorKind::*;
    for (input, want) in [
        (&b"0\r\nGET / HTTP/1.1\r\n\r\n"[..], BadTrailer),
        (b"0\r\nX : y\r\n\r\n", BadTrailer),
        (b"0\r\nX: y\r\n z\r\n\r\n", BadTrailer),
        (b"0\r\n: y\r\n\r\n", BadTrailer),
        (b"0\r\nNoColon\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\x00b\r\n\r\n", BadTrailer),
        (b"0\r\nX: y\n\r\n", BareLineEnding),
        (b"0\r\n\n", BareLineEnding),
        (b"0\r\nX: y\rZ\r\n\r\n", BareLineEnding),
        (b"0\n\r\n", BareLineEnding),
    ] {
        assert_eq!(
            err_kind(input),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// A trailer line that is already over the limit when its bare LF arrives is refused as too
/// large whether the LF comes in the same read or a later one (found by the split property).
#[test]
fn oversized_trailer_line_ending_in_bare_lf_is_too_large_however_split() {
    let limits = Limits {
        max_trailer_bytes: 16,
        ..Limits::default()
    };
    let input = b"0\r\nX: 0123456789abcdef\n\r\n";
    let (r, _, _) = decode_with(input, &limits);
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::TrailersTooLarge);
    let lf = input.iter().rposition(|&b| b == b'\n').unwrap() - 2;
    let mut d = ChunkedDecoder::new(&limits);
    let mut out = Vec::new();
    let first = d.decode(&input[..lf], &mut out);
    let r = first.and_then(|_| d.decode(&input[lf..], &mut out));
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::TrailersTooLarge);
    // Under the limit, the bare LF is what is wrong.
    let (r, _, _) = decode_with(b"0\r\nX: 0\n\r\n", &limits);
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::BareLineEnding);
}

#[test]
fn framing_trailers_dropped() {
    let input = b"0\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\nHost: evil\r\nProxy-Foo: 1\r\nX-Keep: yes\r\n\r\n";
    let (r, _, d) = decode_all(input);
    assert_eq!(r.unwrap(), input.len());
    assert_eq!(d.trailers(), &[(b"X-Keep".to_vec(), b"yes".to_vec())]);
}

#[test]
fn trailers_too_large() {
    let limits = Limits {
        max_trailer_bytes: 16,
        ..Limits::default()
    };
    // "X: 0123456789\r\n" (15) + "\r\n" (2) = 17 > 16
    let (r, _, _) = decode_with(b"0\r\nX: 0123456789\r\n\r\n", &limits);
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::TrailersTooLarge);
    let (r, _, _) = decode_with(b"0\r\nX: 012345678\r\n\r\n", &limits);
    r.unwrap();
    // An endless trailer line is cut off.
    let (r, _, _) = decode_with(
        &[b'0', b'\r', b'\n']
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'a', 100))
            .collect::<Vec<_>>(),
        &limits,
    );
    assert_eq!(r.unwrap_err().status(), 400);
    // Field count bounded by max_headers.
    let limits = Limits {
        max_headers: 2,
        ..Limits::default()
    };
    let (r, _, _) = decode_with(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits);
    assert_eq!(r.unwrap_err().kind, ParseErrorKind::TrailersTooLarge);
}
