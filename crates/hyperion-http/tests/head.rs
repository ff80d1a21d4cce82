use hyperion_http::*;

fn parse(buf: &[u8]) -> Result<HeadStatus, ParseError> {
    parse_request_head(buf, &Limits::default())
}

fn complete(buf: &[u8]) -> (RequestHead, usize) {
    match parse(buf) {
        Ok(HeadStatus::Complete { head, len }) => (head, len),
        other => panic!(
            "expected complete for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn kind(buf: &[u8]) -> ParseErrorKind {
    kind_with(buf, &Limits::default())
}

fn kind_with(buf: &[u8], limits: &Limits) -> ParseErrorKind {
    match parse_request_head(buf, limits) {
        Err(e) => e.kind,
        Ok(other) => panic!(
            "expected error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn status(buf: &[u8]) -> u16 {
    parse(buf).expect_err("expected error").status()
}

fn s(buf: &[u8], span: Span) -> &str {
    std::str::from_utf8(span.slice(buf)).unwrap()
}

// ---------- happy paths ----------

#[test]
fn get_with_query() {
    let buf = b"GET /search?q=rust&x=1 HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\n\r\n";
    let (h, len) = complete(buf);
    assert_eq!(len, buf.len());
    assert_eq!(s(buf, h.method), "GET");
    assert_eq!(s(buf, h.target), "/search?q=rust&x=1");
    assert_eq!(s(buf, h.path), "/search");
    assert_eq!(s(buf, h.query), "q=rust&x=1");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert!(!h.upgrade);
    assert_eq!(s(buf, h.host.unwrap()), "example.com");
    assert_eq!(h.headers.len(), 2);
    assert_eq!(s(buf, h.headers[1].name), "Accept");
    assert_eq!(s(buf, h.headers[1].value), "*/*");
    assert_eq!(h.target_form, TargetForm::Origin);
    assert_eq!(h.header(buf, b"ACCEPT"), Some(&b"*/*"[..]));
}

#[test]
fn no_query_gives_empty_query_span() {
    let buf = b"GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(s(buf, h.path), "/a/b");
    assert!(h.query.is_empty());
    assert_eq!(h.query.len(), 0);
}

#[test]
fn empty_query_after_question_mark() {
    let buf = b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(s(buf, h.path), "/a");
    assert_eq!(s(buf, h.query), "");
}

#[test]
fn post_with_content_length_and_pipelined_bytes_not_consumed() {
    let head = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
    let mut buf = head.to_vec();
    buf.extend_from_slice(b"hello");
    buf.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h, len) = complete(&buf);
    assert_eq!(len, head.len());
    assert_eq!(h.framing, BodyFraming::Length(5));
    assert_eq!(
        s(&buf, h.headers[h.content_type.unwrap()].value),
        "text/plain"
    );
    assert_eq!(s(&buf, h.headers[h.content_length.unwrap()].value), "5");
    // The next request parses from where the body ends.
    let (h2, len2) = complete(&buf[len + 5..]);
    assert_eq!(s(&buf[len + 5..], h2.path), "/next");
    assert_eq!(len + 5 + len2, buf.len());
}

#[test]
fn content_length_zero_is_length_zero() {
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(0));
}

#[test]
fn chunked_framing() {
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:   chunked  \r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
}

#[test]
fn partial_until_complete() {
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for i in 0..buf.len() {
        assert!(
            matches!(parse(&buf[..i]), Ok(HeadStatus::Partial)),
            "prefix {i}"
        );
    }
    complete(buf);
}

#[test]
fn leading_empty_lines_skipped_and_counted() {
    let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, len) = complete(buf);
    assert_eq!(len, buf.len());
    assert_eq!(s(buf, h.method), "GET");
    assert_eq!(h.method.start, 4);
}

#[test]
fn http10_keep_alive_logic() {
    let (h, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::Http10);
    assert!(!h.keep_alive);
    assert!(h.host.is_none());
    let (h, _) = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let (h, _) = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(!h.keep_alive);
    let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n");
    assert!(!h.keep_alive);
    let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive);
    // Tokens may be split over several Connection lines.
    let (h, _) =
        complete(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: a\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
}

#[test]
fn expect_continue() {
    let (h, _) = complete(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
    );
    assert!(h.expect_continue);
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n");
    assert!(!h.expect_continue);
    let (h, _) = complete(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expect_continue, "ignored on HTTP/1.0");
}

#[test]
fn upgrade_detection() {
    let (h, _) = complete(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.upgrade);
    let (h, _) = complete(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
    assert!(!h.upgrade);
    let (h, _) = complete(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
    assert!(!h.upgrade);
}

#[test]
fn absolute_form() {
    let buf = b"GET http://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(h.target_form, TargetForm::Absolute);
    assert_eq!(s(buf, h.target), "http://Example.com:8080/p/q?x=1");
    assert_eq!(s(buf, h.path), "/p/q");
    assert_eq!(s(buf, h.query), "x=1");
    assert_eq!(
        s(buf, h.host.unwrap()),
        "Example.com:8080",
        "authority wins over Host"
    );

    let buf = b"GET HTTPS://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n";
    let (h, _) = complete(buf);
    assert!(h.path.is_empty());
    assert!(h.query.is_empty());
    assert_eq!(s(buf, h.host.unwrap()), "h.example");

    let buf = b"GET http://h?a=b HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, _) = complete(buf);
    assert!(h.path.is_empty());
    assert_eq!(s(buf, h.query), "a=b");
}

#[test]
fn absolute_form_rejections() {
    assert_eq!(
        kind(b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET http://h\"x/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadHost
    );
    // Host header is still mandatory on HTTP/1.1.
    assert_eq!(
        kind(b"GET http://h/ HTTP/1.1\r\n\r\n"),
        ParseErrorKind::MissingHost
    );
}

#[test]
fn asterisk_form() {
    let buf = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(h.target_form, TargetForm::Asterisk);
    assert_eq!(s(buf, h.path), "*");
    assert!(h.query.is_empty());
    assert_eq!(
        kind(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
}

#[test]
fn authority_form_rejected() {
    assert_eq!(
        kind(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
}

#[test]
fn unknown_method_token_accepted() {
    let buf = b"PROPFIND /x HTTP/1.1\r\nHost: h\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(s(buf, h.method), "PROPFIND");
}

#[test]
fn header_values_trimmed_and_may_contain_tab_and_obs_text() {
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a\tb \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(h.headers[1].value.slice(buf), b"a\tb");
    assert_eq!(h.headers[2].value.slice(buf), b"");
    assert_eq!(h.headers[3].value.slice(buf), b"caf\xc3\xa9");
}

#[test]
fn empty_host_allowed() {
    let (h, _) = complete(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert!(h.host.unwrap().is_empty());
}

// ---------- request line ----------

#[test]
fn request_line_rejections() {
    use ParseErrorKind::*;
    let cases: &[(&[u8], ParseErrorKind, u16)] = &[
        (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", BadRequestLine, 400),
        (b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", BadRequestLine, 400),
        (b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", BadRequestLine, 400),
        (b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", BadRequestLine, 400),
        (
            b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n",
            BadRequestLine,
            400,
        ),
        (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", BadMethod, 400),
        (b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", BadMethod, 400),
        (b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n", BadMethod, 400),
        (b"GET /\r\n\r\n", BadVersion, 400),
        (b"GET\r\n\r\n", BadVersion, 400),
        (b"GET / http/1.1\r\nHost: h\r\n\r\n", BadVersion, 400),
        (b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", BadVersion, 400),
        (b"GET / HTTP/11\r\nHost: h\r\n\r\n", BadVersion, 400),
        (b"GET / HTTP/1.x\r\nHost: h\r\n\r\n", BadVersion, 400),
        (b"GET / FOO\r\nHost: h\r\n\r\n", BadVersion, 400),
        (
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            UnsupportedVersion,
            505,
        ),
        (b"GET / HTTP/3\r\nHost: h\r\n\r\n", UnsupportedVersion, 505),
        (
            b"GET / HTTP/0.9\r\nHost: h\r\n\r\n",
            UnsupportedVersion,
            505,
        ),
        (
            b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
            UnsupportedVersion,
            505,
        ),
    ];
    for (buf, want, st) in cases {
        let e = parse(buf).expect_err(&String::from_utf8_lossy(buf));
        assert_eq!(e.kind, *want, "{:?}", String::from_utf8_lossy(buf));
        assert_eq!(e.status(), *st);
    }
}

#[test]
fn target_bytes() {
    assert_eq!(
        kind(b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    assert_eq!(
        kind(b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"),
        ParseErrorKind::BadTarget
    );
    complete(b"GET /a%20b;c=d,e!$&'()*+@:~ HTTP/1.1\r\nHost: h\r\n\r\n");
}

// ---------- line endings and field syntax ----------

#[test]
fn bare_line_endings() {
    use ParseErrorKind::BareLineEnding;
    for buf in [
        &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: h\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
        b"GET / HTTP/1.1\r\nHost: h\n\n",
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\rX",
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\nb\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(
            kind(buf),
            BareLineEnding,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
        assert_eq!(status(buf), 400);
    }
}

#[test]
fn bare_lf_rejected_before_head_is_complete() {
    // No CRLFCRLF yet, but the damage is already visible.
    assert_eq!(
        kind(b"GET / HTTP/1.1\nHost"),
        ParseErrorKind::BareLineEnding
    );
}

#[test]
fn field_syntax_rejections() {
    use ParseErrorKind::*;
    let cases: &[(&[u8], ParseErrorKind)] = &[
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", ObsFold),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", ObsFold),
        (b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", ObsFold),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", SpaceBeforeColon),
        (b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", SpaceBeforeColon),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-\x00: a\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x0bb\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX(y): a\r\n\r\n",
            InvalidHeaderChar,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX y: a\r\n\r\n",
            InvalidHeaderChar,
        ),
        (b"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", EmptyHeaderName),
        (b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", BadHeader),
        (b"GET / HTTP/1.1\r\nHost: h\r\nNoColon \r\n\r\n", BadHeader),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nGET / HTTP/1.1\r\n\r\n",
            InvalidHeaderChar,
        ),
    ];
    for (buf, want) in cases {
        let e = parse(buf).expect_err(&String::from_utf8_lossy(buf));
        assert_eq!(e.kind, *want, "{:?}", String::from_utf8_lossy(buf));
        assert_eq!(e.status(), 400);
    }
}

// ---------- limits ----------

#[test]
fn head_too_large_complete_and_partial() {
    let limits = Limits {
        max_head_bytes: 64,
        ..Limits::default()
    };
    let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
    buf.resize(70, b'a');
    // Incomplete and already longer than the limit.
    assert_eq!(kind_with(&buf, &limits), ParseErrorKind::HeadTooLarge);
    buf.extend_from_slice(b"\r\n\r\n");
    assert_eq!(kind_with(&buf, &limits), ParseErrorKind::HeadTooLarge);
    assert_eq!(parse_request_head(&buf, &limits).unwrap_err().status(), 431);

    // Exactly at the limit is fine, and body bytes after the head do not count.
    let exact = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let limits = Limits {
        max_head_bytes: exact.len(),
        ..Limits::default()
    };
    let mut with_body = exact.to_vec();
    with_body.extend_from_slice(&[b'z'; 100]);
    assert!(matches!(
        parse_request_head(&with_body, &limits),
        Ok(HeadStatus::Complete { len, .. }) if len == exact.len()
    ));
    // One byte short of the limit is still partial.
    assert!(matches!(
        parse_request_head(&exact[..exact.len() - 1], &limits),
        Ok(HeadStatus::Partial)
    ));
}

#[test]
fn endless_leading_crlf_hits_head_limit() {
    let buf = b"\r\n".repeat(40 * 1024);
    assert_eq!(kind(&buf), ParseErrorKind::HeadTooLarge);
}

#[test]
fn too_many_headers() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(matches!(
        parse_request_head(ok, &limits),
        Ok(HeadStatus::Complete { .. })
    ));
    let bad = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let e = parse_request_head(bad, &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooManyHeaders);
    assert_eq!(e.status(), 431);
    // Detected while the extra line is still arriving.
    let partial = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC";
    assert_eq!(kind_with(partial, &limits), ParseErrorKind::TooManyHeaders);
    // Default limit of 100.
    let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..100 {
        buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
    assert_eq!(status(&buf), 431);
}

#[test]
fn uri_too_long() {
    let limits = Limits {
        max_uri_bytes: 10,
        ..Limits::default()
    };
    let ok = b"GET /123456789 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert!(matches!(
        parse_request_head(ok, &limits),
        Ok(HeadStatus::Complete { .. })
    ));
    let bad = b"GET /1234567890 HTTP/1.1\r\nHost: h\r\n\r\n";
    let e = parse_request_head(bad, &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::UriTooLong);
    assert_eq!(e.status(), 414);
    // Still streaming the target.
    assert_eq!(
        kind_with(b"GET /1234567890", &limits),
        ParseErrorKind::UriTooLong
    );
    // Default: a 100 KiB target is 414, not 431.
    let mut buf = b"GET /".to_vec();
    buf.resize(100 * 1024, b'a');
    assert_eq!(status(&buf), 414);
}

// ---------- Content-Length ----------

#[test]
fn content_length_rejections() {
    use ParseErrorKind::*;
    let cases: &[(&str, ParseErrorKind, u16)] = &[
        (
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            DuplicateContentLength,
            400,
        ),
        (
            "Content-Length: 5\r\ncontent-length: 6\r\n",
            DuplicateContentLength,
            400,
        ),
        ("Content-Length: 5, 5\r\n", DuplicateContentLength, 400),
        ("Content-Length: 5,5\r\n", DuplicateContentLength, 400),
        ("Content-Length: \r\n", BadContentLength, 400),
        ("Content-Length: +5\r\n", BadContentLength, 400),
        ("Content-Length: -5\r\n", BadContentLength, 400),
        ("Content-Length: 5.0\r\n", BadContentLength, 400),
        ("Content-Length: 0x5\r\n", BadContentLength, 400),
        ("Content-Length: 5 5\r\n", BadContentLength, 400),
        (
            "Content-Length: 18446744073709551616\r\n",
            BadContentLength,
            400,
        ),
        (
            "Content-Length: 99999999999999999999999\r\n",
            BadContentLength,
            400,
        ),
        ("Content-Length: 1073741825\r\n", BodyTooLarge, 413),
        (
            "Content-Length: 18446744073709551615\r\n",
            BodyTooLarge,
            413,
        ),
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            ContentLengthWithTransferEncoding,
            400,
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            ContentLengthWithTransferEncoding,
            400,
        ),
    ];
    for (hdrs, want, st) in cases {
        let buf = format!("POST / HTTP/1.1\r\nHost: h\r\n{hdrs}\r\n");
        let e = parse(buf.as_bytes()).expect_err(&buf);
        assert_eq!(e.kind, *want, "{buf:?}");
        assert_eq!(e.status(), *st, "{buf:?}");
    }
    // Exactly the limit, and leading zeros, are accepted.
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1073741824\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(1 << 30));
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(7));
}

// ---------- Transfer-Encoding ----------

#[test]
fn transfer_encoding_rules() {
    use ParseErrorKind::*;
    let cases: &[(&str, ParseErrorKind, u16)] = &[
        (
            "Transfer-Encoding: gzip\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
        (
            "Transfer-Encoding: identity\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
        (
            "Transfer-Encoding: foo\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
        (
            "Transfer-Encoding: chunked, gzip\r\n",
            BadTransferEncoding,
            400,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            BadTransferEncoding,
            400,
        ),
        (
            "Transfer-Encoding: chunked, chunked\r\n",
            BadTransferEncoding,
            400,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
            400,
        ),
        ("Transfer-Encoding: \r\n", BadTransferEncoding, 400),
        ("Transfer-Encoding: chunked,\r\n", BadTransferEncoding, 400),
        ("Transfer-Encoding: , chunked\r\n", BadTransferEncoding, 400),
        (
            "Transfer-Encoding: chunked;q=1\r\n",
            BadTransferEncoding,
            400,
        ),
        (
            "Transfer-Encoding: \"chunked\"\r\n",
            BadTransferEncoding,
            400,
        ),
        ("Transfer-Encoding: chun ked\r\n", BadTransferEncoding, 400),
        (
            "Transfer-Encoding: xchunked\r\n",
            UnsupportedTransferEncoding,
            501,
        ),
    ];
    for (hdrs, want, st) in cases {
        let buf = format!("POST / HTTP/1.1\r\nHost: h\r\n{hdrs}\r\n");
        let e = parse(buf.as_bytes()).expect_err(&buf);
        assert_eq!(e.kind, *want, "{buf:?}");
        assert_eq!(e.status(), *st, "{buf:?}");
    }
    let (h, _) = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
}

#[test]
fn transfer_encoding_on_http10() {
    let buf = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(kind(buf), ParseErrorKind::TransferEncodingOnHttp10);
    assert_eq!(status(buf), 400);
}

// ---------- Host ----------

#[test]
fn host_rules() {
    use ParseErrorKind::*;
    assert_eq!(kind(b"GET / HTTP/1.1\r\n\r\n"), MissingHost);
    assert_eq!(
        kind(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        DuplicateHost
    );
    assert_eq!(
        kind(b"GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"),
        DuplicateHost
    );
    assert_eq!(kind(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), BadHost);
    assert_eq!(kind(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), BadHost);
    assert_eq!(kind(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), BadHost);
    // Structure, not just bytes: one port, digits only, within range; bracketed IPv6 closed.
    for bad in [
        &b"example.com:xyz"[..],
        b"example.com:-1",
        b"example.com:80:90",
        b"example.com:65536",
        b"example.com:123456",
        b"[::1",
        b"[::1]x",
        b"[]",
        b"[abc]",
        b"a%zz",
        b"::1",
    ] {
        let mut req = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(kind(&req), BadHost, "{}", String::from_utf8_lossy(bad));
    }
    for good in [
        &b"example.com"[..],
        b"example.com:8080",
        b"example.com:",
        b"127.0.0.1:65535",
        b"[::1]",
        b"[::1]:9292",
        b"[fe80::1%25eth0]:80",
        b"xn--bcher-kva.example",
        b"a%41b",
    ] {
        let mut req = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        req.extend_from_slice(good);
        req.extend_from_slice(b"\r\n\r\n");
        let (h, _) = complete(&req);
        assert_eq!(s(&req, h.host.unwrap()), String::from_utf8_lossy(good));
    }
    assert_eq!(
        kind(b"GET http://a:1:2/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        BadHost
    );
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
    let buf = b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
    let (h, _) = complete(buf);
    assert_eq!(s(buf, h.host.unwrap()), "[::1]:8080");
}

// ---------- error type ----------

#[test]
fn error_statuses_and_labels() {
    let mut labels = std::collections::HashSet::new();
    for &k in ParseErrorKind::ALL {
        let e = ParseError { kind: k };
        assert!(
            [400, 413, 414, 431, 501, 505].contains(&e.status()),
            "{k:?}"
        );
        let r = e.reason();
        assert!(
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        );
        assert!(labels.insert(r), "duplicate label {r}");
        assert!(e.to_string().contains(r));
    }
    assert_eq!(
        ParseError {
            kind: ParseErrorKind::BadContentLength
        }
        .reason(),
        "bad_content_length"
    );
    let _: &dyn std::error::Error = &ParseError {
        kind: ParseErrorKind::BadHeader,
    };
}

#[test]
fn split_host_is_ipv6_safe() {
    use hyperion_http::split_host;
    assert_eq!(split_host(b"example.com"), (&b"example.com"[..], None));
    assert_eq!(
        split_host(b"example.com:8080"),
        (&b"example.com"[..], Some(&b"8080"[..]))
    );
    assert_eq!(split_host(b"example.com:"), (&b"example.com"[..], None));
    assert_eq!(split_host(b"[::1]"), (&b"[::1]"[..], None));
    assert_eq!(
        split_host(b"[::1]:9292"),
        (&b"[::1]"[..], Some(&b"9292"[..]))
    );
    assert_eq!(
        split_host(b"[fe80::1%25eth0]:80"),
        (&b"[fe80::1%25eth0]"[..], Some(&b"80"[..]))
    );
}
