//! `assemble_head` (a head whose parts arrived separated, as in HTTP/2) must agree with
//! `parse_request_head` on the same request written as HTTP/1.1 text: the same head when
//! accepted, the same status when refused.

use hyperion_http::*;
use proptest::prelude::*;

/// The parts as spans into one buffer, and the same request as HTTP/1.1 text.
fn build(
    method: &[u8],
    target: &[u8],
    fields: &[(Vec<u8>, Vec<u8>)],
) -> (Vec<u8>, HeadParts, Vec<u8>) {
    let mut buf = Vec::new();
    let span = |bytes: &[u8], buf: &mut Vec<u8>| {
        let start = buf.len() as u32;
        buf.extend_from_slice(bytes);
        Span {
            start,
            end: buf.len() as u32,
        }
    };
    let method_span = span(method, &mut buf);
    let target_span = span(target, &mut buf);
    let headers = fields
        .iter()
        .map(|(n, v)| HeaderSpan {
            name: span(n, &mut buf),
            value: span(v, &mut buf),
        })
        .collect();
    let mut text = Vec::new();
    text.extend_from_slice(method);
    text.push(b' ');
    text.extend_from_slice(target);
    text.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in fields {
        text.extend_from_slice(n);
        text.extend_from_slice(b": ");
        text.extend_from_slice(v);
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"\r\n");
    let parts = HeadParts {
        method: method_span,
        target: target_span,
        headers,
    };
    (buf, parts, text)
}

/// What a head says, independent of where its bytes are.
#[derive(Debug, PartialEq)]
struct Seen {
    method: Vec<u8>,
    target: Vec<u8>,
    path: Vec<u8>,
    query: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    host: Option<Vec<u8>>,
    upgrade: bool,
    target_form: TargetForm,
    content_type: Option<usize>,
    content_length: Option<usize>,
}

fn seen(head: &RequestHead, buf: &[u8]) -> Seen {
    Seen {
        method: head.method.slice(buf).to_vec(),
        target: head.target.slice(buf).to_vec(),
        path: head.path.slice(buf).to_vec(),
        query: head.query.slice(buf).to_vec(),
        headers: head
            .headers
            .iter()
            .map(|h| (h.name.slice(buf).to_vec(), h.value.slice(buf).to_vec()))
            .collect(),
        framing: head.framing,
        keep_alive: head.keep_alive,
        expect_continue: head.expect_continue,
        host: head.host.map(|h| h.slice(buf).to_vec()),
        upgrade: head.upgrade,
        target_form: head.target_form,
        content_type: head.content_type,
        content_length: head.content_length,
    }
}

fn compare(method: &[u8], target: &[u8], fields: &[(Vec<u8>, Vec<u8>)], limits: &Limits) {
    let (buf, parts, text) = build(method, target, fields);
    let assembled = assemble_head(&buf, parts, limits);
    let parsed = parse_request_head(&text, limits);
    match (assembled, parsed) {
        (Ok(a), Ok(HeadStatus::Complete { head, len })) => {
            assert_eq!(len, text.len());
            assert_eq!(seen(&a, &buf), seen(&head, &text));
        }
        (Err(a), Err(p)) => assert_eq!(
            a.status(),
            p.status(),
            "{:?} vs {:?} for {:?}",
            a.kind,
            p.kind,
            String::from_utf8_lossy(&text)
        ),
        (a, p) => panic!(
            "assembled {a:?}, parsed {p:?}, for {:?}",
            String::from_utf8_lossy(&text)
        ),
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_usual_request_gives_the_same_head() {
    let limits = Limits::default();
    let (buf, parts, _) = build(
        b"GET",
        b"/search?q=1",
        &fields(&[
            ("host", "example.com:8080"),
            ("accept", "*/*"),
            ("content-type", "text/plain"),
        ]),
    );
    let head = assemble_head(&buf, parts, &limits).expect("a valid head");
    assert_eq!(head.path.slice(&buf), b"/search");
    assert_eq!(head.query.slice(&buf), b"q=1");
    assert_eq!(
        head.host.map(|h| h.slice(&buf)),
        Some(&b"example.com:8080"[..])
    );
    assert_eq!(head.content_type, Some(2));
    assert_eq!(head.target_form, TargetForm::Origin);
    compare(
        b"GET",
        b"/search?q=1",
        &fields(&[("host", "example.com:8080"), ("accept", "*/*")]),
        &limits,
    );
}

#[test]
fn each_single_fault_is_refused_as_the_parser_refuses_it() {
    let limits = Limits {
        max_head_bytes: 200,
        max_headers: 4,
        max_uri_bytes: 40,
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let host = ("host", "h");
    let cases: Vec<(&[u8], Vec<u8>, Fields, ParseErrorKind)> = vec![
        (
            b"G@T",
            b"/".to_vec(),
            fields(&[host]),
            ParseErrorKind::BadMethod,
        ),
        (
            b"GET",
            b"/a\x01".to_vec(),
            fields(&[host]),
            ParseErrorKind::BadTarget,
        ),
        (
            b"GET",
            b"*".to_vec(),
            fields(&[host]),
            ParseErrorKind::BadTarget,
        ),
        (
            b"GET",
            vec![b'a'; 41],
            fields(&[host]),
            ParseErrorKind::UriTooLong,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[]),
            ParseErrorKind::MissingHost,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[("host", "a b")]),
            ParseErrorKind::BadHost,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, host]),
            ParseErrorKind::DuplicateHost,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, ("x", "\x01")]),
            ParseErrorKind::InvalidHeaderChar,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, ("a b", "1")]),
            ParseErrorKind::InvalidHeaderChar,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, ("", "1")]),
            ParseErrorKind::EmptyHeaderName,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, ("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]),
            ParseErrorKind::TooManyHeaders,
        ),
        (
            b"GET",
            b"/".to_vec(),
            fields(&[host, ("x", &"v".repeat(180))]),
            ParseErrorKind::HeadTooLarge,
        ),
        (
            b"POST",
            b"/".to_vec(),
            fields(&[host, ("content-length", "1x")]),
            ParseErrorKind::BadContentLength,
        ),
        (
            b"POST",
            b"/".to_vec(),
            fields(&[host, ("content-length", "1001")]),
            ParseErrorKind::BodyTooLarge,
        ),
        (
            b"POST",
            b"/".to_vec(),
            fields(&[host, ("transfer-encoding", "gzip")]),
            ParseErrorKind::UnsupportedTransferEncoding,
        ),
    ];
    for (method, target, list, kind) in cases {
        let (buf, parts, _) = build(method, &target, &list);
        let e = assemble_head(&buf, parts, &limits).expect_err("a faulty head");
        assert_eq!(e.kind, kind, "{}", String::from_utf8_lossy(&target));
        compare(method, &target, &list, &limits);
    }
}

fn method_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop_oneof![Just(b"GET".to_vec()), Just(b"POST".to_vec()), Just(b"OPTIONS".to_vec())],
        1 => proptest::collection::vec(prop_oneof![Just(b'A'), Just(b'@'), Just(b'-')], 0..4),
    ]
}

fn target_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "/[a-z0-9/?=&%.-]{0,30}".prop_map(String::into_bytes),
        1 => Just(b"*".to_vec()),
        1 => "https?://[a-z.:@]{0,12}(/[a-z]{0,4})?".prop_map(String::into_bytes),
        1 => proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'a'), Just(b'"'), Just(0x7fu8), Just(0x80u8)], 0..50),
    ]
}

fn field_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        Just(b"host".to_vec()),
        Just(b"content-length".to_vec()),
        Just(b"content-type".to_vec()),
        Just(b"transfer-encoding".to_vec()),
        Just(b"connection".to_vec()),
        Just(b"upgrade".to_vec()),
        Just(b"expect".to_vec()),
        "[a-z][a-z0-9-]{0,8}".prop_map(String::into_bytes),
        "[a-z ()]{0,3}".prop_map(String::into_bytes),
    ];
    let value = prop_oneof![
        "[0-9]{1,3}".prop_map(String::into_bytes),
        Just(b"chunked".to_vec()),
        Just(b"close, upgrade".to_vec()),
        Just(b"100-continue".to_vec()),
        "[a-z0-9.:\\[\\]]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(
            prop_oneof![
                Just(b'a'),
                Just(1u8),
                Just(0x7fu8),
                Just(0xffu8),
                Just(b'\t')
            ],
            1..6
        )
        .prop_filter("no surrounding whitespace", |v| v[0] != b'\t'
            && v[v.len() - 1] != b'\t'),
    ];
    (name, value)
}

proptest! {
    #[test]
    fn assembled_and_parsed_heads_agree(
        method in method_strategy(),
        target in target_strategy(),
        list in proptest::collection::vec(field_strategy(), 0..8),
        max_head_bytes in prop_oneof![Just(64usize), Just(120), Just(65536)],
        max_headers in 1usize..8,
    ) {
        let limits = Limits {
            max_head_bytes,
            max_headers,
            max_uri_bytes: 30,
            max_body_bytes: 500,
            ..Limits::default()
        };
        compare(&method, &target, &list, &limits);
    }
}
