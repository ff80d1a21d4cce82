use hyperion_http::*;

#[test]
fn status_lines() {
    let mut out = Vec::new();
    write_status_line(&mut out, 200);
    assert_eq!(out, b"HTTP/1.1 200 OK\r\n");
    out.clear();
    write_status_line(&mut out, 404);
    assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n");
    out.clear();
    write_status_line(&mut out, 599);
    assert_eq!(out, b"HTTP/1.1 599 \r\n");
    out.clear();
    write_status_line(&mut out, 103);
    assert_eq!(out, b"HTTP/1.1 103 Early Hints\r\n");
    out.clear();
    write_status_line(&mut out, 42);
    assert_eq!(out, b"HTTP/1.1 500 Internal Server Error\r\n");
    out.clear();
    write_status_line(&mut out, 1000);
    assert_eq!(out, b"HTTP/1.1 500 Internal Server Error\r\n");
    // Appends, never clears.
    let mut out = b"x".to_vec();
    write_status_line(&mut out, 204);
    assert_eq!(out, b"xHTTP/1.1 204 No Content\r\n");
}

#[test]
fn reason_phrases() {
    assert_eq!(reason_phrase(200), "OK");
    assert_eq!(reason_phrase(413), "Content Too Large");
    assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
    assert_eq!(reason_phrase(299), "");
    // Every status the parser can produce has a phrase.
    for &k in ParseErrorKind::ALL {
        assert!(!reason_phrase(ParseError { kind: k }.status()).is_empty());
    }
}

#[test]
fn header_validation() {
    assert!(is_valid_header_name(b"X-Request-Id"));
    assert!(is_valid_header_name(b"a!#$%&'*+-.^_`|~9"));
    assert!(!is_valid_header_name(b""));
    assert!(!is_valid_header_name(b"X Y"));
    assert!(!is_valid_header_name(b"X:Y"));
    assert!(!is_valid_header_name(b"X\r\nY"));
    assert!(!is_valid_header_name(b"caf\xc3\xa9"));
    assert!(is_valid_header_value(b""));
    assert!(is_valid_header_value(b"text/html; charset=utf-8"));
    assert!(is_valid_header_value(b"a\tb \xc3\xa9"));
    assert!(!is_valid_header_value(b"a\r\nSet-Cookie: x"));
    assert!(!is_valid_header_value(b"a\nb"));
    assert!(!is_valid_header_value(b"a\rb"));
    assert!(!is_valid_header_value(b"a\0b"));
    assert!(!is_valid_header_value(b"a\x1bb"));
    assert!(!is_valid_header_value(b"a\x7fb"));
}

#[test]
fn chunks() {
    let mut out = Vec::new();
    write_chunk(&mut out, b"hello");
    assert_eq!(out, b"5\r\nhello\r\n");
    out.clear();
    write_chunk(&mut out, b"");
    assert!(out.is_empty());
    let data = vec![b'a'; 0x1f0a];
    write_chunk(&mut out, &data);
    assert!(out.starts_with(b"1f0a\r\naaa"));
    assert!(out.ends_with(b"a\r\n"));
    assert_eq!(out.len(), 4 + 2 + data.len() + 2);
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");

    // Round trip through the decoder.
    let mut wire = Vec::new();
    write_chunk(&mut wire, b"abc");
    write_chunk(&mut wire, &[b'z'; 300]);
    wire.extend_from_slice(LAST_CHUNK);
    let mut d = ChunkedDecoder::new(&Limits::default());
    let mut body = Vec::new();
    assert_eq!(d.decode(&wire, &mut body).unwrap(), wire.len());
    assert!(d.is_done());
    assert_eq!(body.len(), 303);
}

#[test]
fn date_format() {
    assert_eq!(
        &format_http_date(784_111_777),
        b"Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    let d = http_date();
    let s = std::str::from_utf8(&d).unwrap();
    assert_eq!(s.len(), 29);
    assert!(s.ends_with(" GMT"));
    assert_eq!(&s[3..5], ", ");
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&s[..3]));
    // It is the current time (within a few seconds).
    let parsed = httpdate_parse(s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(parsed) <= 2, "{s}");
    // Cached value within the same second is identical.
    let a = http_date();
    let b = http_date();
    assert!(a == b || a[..20] == b[..20]);
}

/// Minimal IMF-fixdate parser for the test (days since epoch via civil-from-days inverse).
fn httpdate_parse(s: &str) -> u64 {
    let day: u64 = s[5..7].parse().unwrap();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == &s[8..11]).unwrap() as u64 + 1;
    let year: i64 = s[12..16].parse().unwrap();
    let h: u64 = s[17..19].parse().unwrap();
    let m: u64 = s[20..22].parse().unwrap();
    let sec: u64 = s[23..25].parse().unwrap();
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe as i64 - 719_468) as u64;
    days * 86_400 + h * 3600 + m * 60 + sec
}

#[test]
fn cgi_keys() {
    let mut out = Vec::new();
    assert!(cgi_header_key(b"X-Forwarded-For", &mut out));
    assert_eq!(out, b"HTTP_X_FORWARDED_FOR");
    out.clear();
    assert!(cgi_header_key(b"accept", &mut out));
    assert_eq!(out, b"HTTP_ACCEPT");
    out.clear();
    assert!(!cgi_header_key(b"X-Forwarded_For", &mut out));
    assert!(!cgi_header_key(b"Content-Type", &mut out));
    assert!(!cgi_header_key(b"content-length", &mut out));
    assert!(!cgi_header_key(b"", &mut out));
    assert!(!cgi_header_key(b"X Y", &mut out));
    assert!(out.is_empty(), "nothing written on false");
    // Appends.
    let mut out = b"k=".to_vec();
    assert!(cgi_header_key(b"Host", &mut out));
    assert_eq!(out, b"k=HTTP_HOST");
    assert!(is_content_type(b"CONTENT-TYPE"));
    assert!(is_content_length(b"Content-Length"));
    assert!(!is_content_length(b"Content-Lengths"));
}
