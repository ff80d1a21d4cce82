use hyperion_http::*;
use proptest::prelude::*;

const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n";

#[derive(Clone, Debug)]
struct Req {
    leading_crlf: usize,
    method: String,
    path: String,
    query: Option<String>,
    http10: bool,
    keep_alive_hdr: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: Option<Chunking>,
}

#[derive(Clone, Debug)]
struct Chunking {
    sizes: Vec<usize>,
    ext: Vec<Option<String>>,
    trailers: Vec<(String, String)>,
}

/// Names the generator must not produce as extra headers: they change framing or semantics under test.
fn reserved(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "expect",
        "upgrade",
    ]
    .contains(&n.as_str())
        || n.starts_with("proxy-")
}

fn header_strategy() -> impl Strategy<Value = (String, String)> {
    (
        "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}",
        "[ \t]{0,2}[!-~]([ -~\t]{0,20}[!-~])?[ \t]{0,2}",
    )
        .prop_filter("reserved", |(n, _)| !reserved(n))
}

fn trailer_strategy() -> impl Strategy<Value = (String, String)> {
    ("X-[A-Za-z0-9-]{1,10}", "[!-~]{0,10}")
}

fn ext_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[a-z]{1,5}".prop_map(|n| Some(format!(";{n}"))),
        ("[a-z]{1,5}", "[a-z0-9]{1,5}").prop_map(|(n, v)| Some(format!(";{n}={v}"))),
        ("[a-z]{1,5}", "[ a-z]{0,5}").prop_map(|(n, v)| Some(format!(" ; {n} = \"{v}\\\"\""))),
    ]
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        0usize..3,
        prop_oneof![
            Just("GET".to_string()),
            Just("POST".to_string()),
            Just("PUT".to_string()),
            "[A-Z][A-Z-]{0,9}",
        ],
        "/[A-Za-z0-9/._~%!$&'()*+,;=:@-]{0,30}",
        proptest::option::of("[A-Za-z0-9=&%/?._-]{0,20}"),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(header_strategy(), 0..8),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        proptest::collection::vec(1usize..64, 1..10),
        proptest::collection::vec(ext_strategy(), 11),
        proptest::collection::vec(trailer_strategy(), 0..3),
    )
        .prop_map(
            |(
                leading_crlf,
                method,
                path,
                query,
                http10,
                keep_alive_hdr,
                headers,
                body,
                use_chunked,
                sizes,
                ext,
                trailers,
            )| {
                Req {
                    leading_crlf,
                    method,
                    path,
                    query,
                    http10,
                    keep_alive_hdr,
                    headers,
                    body,
                    chunked: (use_chunked && !http10).then_some(Chunking {
                        sizes,
                        ext,
                        trailers,
                    }),
                }
            },
        )
}

/// Serialises the request; returns (bytes, head length, body wire length).
fn encode(r: &Req) -> (Vec<u8>, usize, usize) {
    let mut out = b"\r\n".repeat(r.leading_crlf);
    out.extend_from_slice(r.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.path.as_bytes());
    if let Some(q) = &r.query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(if r.http10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    out.extend_from_slice(b"Host: example.com:8080\r\n");
    for (n, v) in &r.headers {
        out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
    }
    if r.keep_alive_hdr {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    match &r.chunked {
        Some(_) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        None => out.extend_from_slice(format!("Content-Length: {}\r\n", r.body.len()).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let head_len = out.len();
    match &r.chunked {
        None => out.extend_from_slice(&r.body),
        Some(c) => {
            let mut rest = &r.body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = c.sizes[i % c.sizes.len()].min(rest.len());
                out.extend_from_slice(format!("{n:X}").as_bytes());
                if let Some(e) = &c.ext[i % c.ext.len()] {
                    out.extend_from_slice(e.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            out.extend_from_slice(b"0");
            if let Some(e) = &c.ext[c.ext.len() - 1] {
                out.extend_from_slice(e.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            for (n, v) in &c.trailers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    let body_wire = out.len() - head_len;
    out.extend_from_slice(NEXT);
    (out, head_len, body_wire)
}

fn parse(buf: &[u8]) -> Result<HeadStatus, ParseError> {
    parse_request_head(buf, &Limits::default())
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

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

/// Random request heads: lines that are mostly well-formed, with junk lines, wrong line endings
/// and stray bytes mixed in, so that random input reaches every state of the parser (including
/// Complete) rather than failing on the first byte.
fn http_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"/".to_vec()),
        Just(b"http://h:80/p".to_vec()),
        Just(b"*".to_vec()),
        Just(b"HTTP/1.1".to_vec()),
        Just(b"HTTP/2".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b":".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"Host".to_vec()),
        Just(b"Content-Length".to_vec()),
        Just(b"Transfer-Encoding".to_vec()),
        Just(b"chunked".to_vec()),
        Just(b",".to_vec()),
        "[A-Za-z0-9_-]{1,8}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    let junk_line = proptest::collection::vec(fragment, 0..6).prop_map(|v| v.concat());
    let request_line = prop_oneof![
        6 => prop::sample::select(vec![
            &b"GET / HTTP/1.1"[..],
            b"POST /a?b=c HTTP/1.1",
            b"GET http://h:80/p?q HTTP/1.1",
            b"OPTIONS * HTTP/1.1",
            b"GET / HTTP/1.0",
            b"PUT /xxxxxxxxxxxxxxxxxxxx HTTP/1.1",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => junk_line.clone(),
    ];
    let header_line = prop_oneof![
        6 => prop::sample::select(vec![
            &b"Host: h"[..],
            b"Host: h:8080",
            b"Content-Length: 5",
            b"Content-Length: 500",
            b"Content-Length: 5, 5",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Connection: close",
            b"Connection: keep-alive, Upgrade",
            b"Upgrade: websocket",
            b"Expect: 100-continue",
            b"Content-Type: text/plain",
            b"X-A: b",
            b"X-A:",
            b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => junk_line,
    ];
    let ending = line_ending();
    (
        0usize..2,
        request_line,
        prop::bool::weighted(0.8),
        ending.clone(),
        proptest::collection::vec((header_line, ending.clone()), 0..8),
        ending,
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(empty_lines, line, host, end, headers, last, tail)| {
            let mut out = b"\r\n".repeat(empty_lines);
            out.extend_from_slice(&line);
            out.extend_from_slice(end);
            if host {
                out.extend_from_slice(b"Host: h\r\n");
            }
            for (h, e) in headers {
                out.extend_from_slice(&h);
                out.extend_from_slice(e);
            }
            out.extend_from_slice(last);
            out.extend_from_slice(&tail);
            out
        })
}

/// Mostly CRLF, sometimes a bare LF, a bare CR or nothing.
fn line_ending() -> impl Strategy<Value = &'static [u8]> + Clone {
    prop_oneof![
        40 => Just(&b"\r\n"[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b""[..]),
    ]
}

/// Random chunked bodies: chunks whose size mostly matches their data, with junk sizes,
/// extensions, trailers, wrong line endings and stray bytes mixed in.
fn chunk_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"0".to_vec()),
        Just(b"5".to_vec()),
        Just(b"a".to_vec()),
        Just(b"F".to_vec()),
        Just(b"20".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b";".to_vec()),
        Just(b"=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b":".to_vec()),
        Just(b"ext".to_vec()),
        Just(b"GET / HTTP/1.1".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    let junk = proptest::collection::vec(fragment, 0..4).prop_map(|v| v.concat());
    let ext = prop_oneof![
        6 => Just(Vec::new()),
        2 => prop::sample::select(vec![
            &b";a"[..],
            b";a=b",
            b" ; a = \"q\\\"x\" ;b",
            b";a=",
            b";aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => junk.clone(),
    ];
    // None: the data's true length, in hex.
    let size = prop_oneof![8 => Just(None), 1 => junk.clone().prop_map(Some)];
    let chunk = (
        size,
        any::<bool>(),
        ext.clone(),
        line_ending(),
        proptest::collection::vec(any::<u8>(), 1..40),
        line_ending(),
    );
    let trailer = prop_oneof![
        3 => prop::sample::select(vec![&b"X-T: v"[..], b"Content-Length: 5", b"X-Empty:", b"Host: h"])
            .prop_map(<[u8]>::to_vec),
        1 => junk,
    ];
    (
        proptest::collection::vec(chunk, 0..5),
        ext,
        line_ending(),
        proptest::collection::vec((trailer, line_ending()), 0..3),
        line_ending(),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(chunks, last_ext, last_end, trailers, end, tail)| {
            let mut out = Vec::new();
            for (size, upper, ext, size_end, data, data_end) in chunks {
                match size {
                    Some(junk) => out.extend_from_slice(&junk),
                    None if upper => out.extend_from_slice(format!("{:X}", data.len()).as_bytes()),
                    None => out.extend_from_slice(format!("{:x}", data.len()).as_bytes()),
                }
                out.extend_from_slice(&ext);
                out.extend_from_slice(size_end);
                out.extend_from_slice(&data);
                out.extend_from_slice(data_end);
            }
            out.push(b'0');
            out.extend_from_slice(&last_ext);
            out.extend_from_slice(last_end);
            for (t, e) in trailers {
                out.extend_from_slice(&t);
                out.extend_from_slice(e);
            }
            out.extend_from_slice(end);
            out.extend_from_slice(&tail);
            out
        })
}

/// Outcome of feeding a decoder: the error, or (consumed, done), plus the decoded bytes.
type Decoded = (Result<(usize, bool), ParseError>, Vec<u8>);

/// Feeds `bytes` to a fresh decoder in the pieces given by `cuts`, the way the engine does:
/// contiguous pieces, stopping once the body is complete.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize], limits: &Limits) -> Decoded {
    let mut points: Vec<usize> = cuts.to_vec();
    points.push(bytes.len());
    points.sort_unstable();
    let mut d = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    for p in points {
        if p < pos {
            continue;
        }
        match d.decode(&bytes[pos..p], &mut out) {
            Err(e) => {
                // Errors are sticky.
                assert_eq!(d.decode(b"0\r\n\r\n", &mut out), Err(e));
                return (Err(e), out);
            }
            Ok(n) if d.is_done() => {
                // Once done, nothing more is consumed.
                assert_eq!(d.decode(b"0\r\n\r\n", &mut out), Ok(0));
                assert_eq!(d.body_len(), out.len() as u64);
                return (Ok((pos + n, true)), out);
            }
            Ok(n) => assert_eq!(n, p - pos, "consumed less than given while not done"),
        }
        pos = p;
    }
    assert_eq!(d.body_len(), out.len() as u64);
    (Ok((bytes.len(), false)), out)
}

proptest! {

    #[test]
    fn valid_requests_parse_identically_when_split(r in req_strategy(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let (buf, head_len, body_wire) = encode(&r);
        let HeadStatus::Complete { head, len } = parse(&buf).expect("valid request must parse") else {
            panic!("whole request reported partial");
        };
        prop_assert_eq!(len, head_len);

        // Parsed fields agree with what was generated.
        prop_assert_eq!(head.method.slice(&buf), r.method.as_bytes());
        prop_assert_eq!(head.path.slice(&buf), r.path.as_bytes());
        prop_assert_eq!(head.query.slice(&buf), r.query.as_deref().unwrap_or("").as_bytes());
        prop_assert_eq!(head.version, if r.http10 { Version::Http10 } else { Version::Http11 });
        prop_assert_eq!(head.keep_alive, !r.http10 || r.keep_alive_hdr);
        prop_assert_eq!(head.host.unwrap().slice(&buf), b"example.com:8080");
        for (i, (n, v)) in r.headers.iter().enumerate() {
            let h = head.headers[i + 1];
            prop_assert_eq!(h.name.slice(&buf), n.as_bytes());
            prop_assert_eq!(h.value.slice(&buf), trim(v).as_bytes());
        }
        match &r.chunked {
            Some(_) => prop_assert_eq!(head.framing, BodyFraming::Chunked),
            None => prop_assert_eq!(head.framing, BodyFraming::Length(r.body.len() as u64)),
        }

        // Every strict prefix of the head is Partial; from the end of the head on, Complete and identical.
        for k in 0..=buf.len().min(head_len + 3) {
            match parse(&buf[..k]) {
                Ok(HeadStatus::Partial) => prop_assert!(k < head_len, "partial at {} >= {}", k, head_len),
                Ok(HeadStatus::Complete { head: h2, len: l2 }) => {
                    prop_assert!(k >= head_len);
                    prop_assert_eq!(l2, len);
                    prop_assert_eq!(&h2, &head);
                }
                Err(e) => prop_assert!(false, "prefix {} errored: {:?}", k, e),
            }
        }

        // Body: chunked decoding in random pieces equals one-shot decoding and leaves NEXT untouched.
        let body_and_next = &buf[head_len..];
        if let Some(c) = &r.chunked {
            let mut whole = ChunkedDecoder::new(&Limits::default());
            let mut whole_out = Vec::new();
            let n = whole.decode(body_and_next, &mut whole_out).unwrap();
            prop_assert_eq!(n, body_wire);
            prop_assert!(whole.is_done());
            prop_assert_eq!(&whole_out, &r.body);
            let want_trailers: Vec<(Vec<u8>, Vec<u8>)> = c
                .trailers
                .iter()
                .map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes()))
                .collect();
            prop_assert_eq!(whole.trailers(), &want_trailers[..]);

            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(body_and_next.len() + 1)).collect();
            points.push(body_and_next.len());
            points.sort_unstable();
            let mut d = ChunkedDecoder::new(&Limits::default());
            let mut out = Vec::new();
            let mut pos = 0;
            let mut leftover: Option<usize> = None;
            for p in points {
                if p <= pos {
                    continue;
                }
                let piece = &body_and_next[pos..p];
                let n = d.decode(piece, &mut out).unwrap();
                if d.is_done() {
                    leftover = Some(pos + n);
                    break;
                }
                prop_assert_eq!(n, piece.len());
                pos = p;
            }
            prop_assert_eq!(leftover, Some(body_wire));
            prop_assert_eq!(&body_and_next[body_wire..], NEXT);
            prop_assert_eq!(&out, &whole_out);
            prop_assert_eq!(d.trailers(), whole.trailers());
            prop_assert_eq!(d.body_len(), r.body.len() as u64);
        } else {
            prop_assert_eq!(&body_and_next[..body_wire], &r.body[..]);
            prop_assert_eq!(&body_and_next[body_wire..], NEXT);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for limits in [Limits::default(), small_limits()] {
            if let Ok(HeadStatus::Complete { head, len }) = parse_request_head(&bytes, &limits) {
                prop_assert!(len <= bytes.len());
                for s in [head.method, head.target, head.path, head.query] {
                    prop_assert!(s.start <= s.end && (s.end as usize) <= len);
                }
            }
            let mut d = ChunkedDecoder::new(&limits);
            let mut out = Vec::new();
            if let Ok(n) = d.decode(&bytes, &mut out) {
                prop_assert!(n <= bytes.len());
            }
        }
    }

    #[test]
    fn arbitrary_chunked_bytes_split_never_panic_and_agree(bytes in proptest::collection::vec(
        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'0'), Just(b'1'), Just(b'a'), Just(b'='), Just(b'"'), Just(b':'), Just(b' '), any::<u8>()], 0..200),
        split in any::<prop::sample::Index>()) {
        let limits = Limits::default();
        let mut whole = ChunkedDecoder::new(&limits);
        let mut whole_out = Vec::new();
        let whole_res = whole.decode(&bytes, &mut whole_out);

        let k = split.index(bytes.len() + 1);
        let mut d = ChunkedDecoder::new(&limits);
        let mut out = Vec::new();
        let res = d.decode(&bytes[..k], &mut out).and_then(|n| {
            if d.is_done() { Ok(n) } else { d.decode(&bytes[k..], &mut out).map(|m| n + m) }
        });
        match (whole_res, res) {
            (Ok(a), Ok(b)) => { prop_assert_eq!(a, b); prop_assert_eq!(&whole_out, &out); }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "split disagrees: {:?} vs {:?}", a, b),
        }
    }

    /// An error on a prefix is never contradicted by more input: the parser does not reject early what the
    /// full parse would accept (or reject differently).
    #[test]
    fn prefix_errors_are_final(r in req_strategy(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (mut buf, head_len, _) = encode(&r);
        let i = flip.index(head_len);
        buf[i] = byte;
        let full = parse(&buf);
        for k in 0..=buf.len().min(head_len + 2) {
            if let Err(e) = parse(&buf[..k]) {
                prop_assert_eq!(full.clone().err(), Some(e), "prefix {} of {:?}", k, String::from_utf8_lossy(&buf));
                break;
            }
        }
    }

    /// Whatever the bytes, the head verdict does not depend on where the input stopped: every prefix is
    /// either still Partial, or gives exactly the result of the whole input (Complete with the same head,
    /// or the same error).
    #[test]
    fn head_verdict_does_not_depend_on_where_input_stops(bytes in http_ish_bytes()) {
        for limits in [Limits::default(), small_limits()] {
            let full = parse_request_head(&bytes, &limits);
            for k in 0..=bytes.len() {
                match parse_request_head(&bytes[..k], &limits) {
                    Ok(HeadStatus::Partial) => {}
                    other => {
                        prop_assert_eq!(&other, &full, "prefix {} of {:?}", k, String::from_utf8_lossy(&bytes));
                        break;
                    }
                }
            }
            if let Ok(HeadStatus::Complete { head, len }) = &full {
                prop_assert!(*len <= bytes.len() && *len <= limits.max_head_bytes);
                prop_assert!(head.target.len() <= limits.max_uri_bytes);
                prop_assert!(head.headers.len() <= limits.max_headers);
                if let BodyFraming::Length(n) = head.framing {
                    prop_assert!(n <= limits.max_body_bytes);
                }
            }
        }
    }

    /// Whatever the bytes, feeding the chunked decoder in any number of pieces gives what one piece gives,
    /// and the decoded body never exceeds max_body_bytes.
    #[test]
    fn chunked_pieces_agree_with_one_piece(
        bytes in chunk_ish_bytes(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
        small in any::<bool>(),
    ) {
        let limits = if small { small_limits() } else { Limits::default() };
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let (whole, whole_out) = decode_in_pieces(&bytes, &[], &limits);
        let (pieces, pieces_out) = decode_in_pieces(&bytes, &cuts, &limits);
        prop_assert_eq!(&pieces, &whole, "{:?} cut at {:?}", String::from_utf8_lossy(&bytes), cuts);
        prop_assert_eq!(&pieces_out, &whole_out);
        prop_assert!(whole_out.len() as u64 <= limits.max_body_bytes);
    }
}
