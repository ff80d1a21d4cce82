//! Direct routes: responses known in advance (`handle_static`, the page cache) that the I/O
//! thread answers without an application thread, and handler routes (`handle`) that go to an
//! application thread tagged with their handler instead of the Rack app.
//!
//! One table per process, shared by every engine started in it (and inherited by forked
//! workers). Lookups take a read lock for a few nanoseconds; when no route is registered the
//! check is a single atomic load.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use hyperion_http::Version;

use crate::response::{HeadBuilder, ResponseError};

/// The methods a route can be registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
}

impl Method {
    /// Case-insensitive, as registered from Ruby (`:get`, "GET").
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// From the request line (methods are case-sensitive on the wire).
    pub fn from_wire(bytes: &[u8]) -> Option<Method> {
        Some(match bytes {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            _ => return None,
        })
    }
}

/// How often a page-cache entry that is not immutable looks at its file again.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where a page-cache entry came from, to notice when the file changes.
struct FileSource {
    path: std::path::PathBuf,
    content_type: Vec<u8>,
    mtime: Option<SystemTime>,
    len: u64,
    checked: Instant,
}

/// A complete response built once: everything but the `date` and `connection` lines.
pub struct StaticResponse {
    status: u16,
    /// Status line and headers, each ending in CRLF.
    head: Vec<u8>,
    /// `content-length: N\r\n`.
    length_line: Vec<u8>,
    /// The same head as an HPACK block (it never refers to the dynamic table, so any stream
    /// of any connection can send it), content-length included, without the date.
    h2_head: Vec<u8>,
    /// `h2_head` with the date of the second it was made for.
    h2_block: Mutex<([u8; 29], bytes::Bytes)>,
    body: bytes::Bytes,
}

impl StaticResponse {
    /// `headers` are validated like any response header; content-length, transfer-encoding,
    /// connection and date are the server's, so given values are checked but not copied.
    pub fn new(
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Vec<u8>,
    ) -> Result<StaticResponse, ResponseError> {
        let mut head = HeadBuilder::dated_at_send(status as i64, 128)?;
        for (name, value) in headers {
            head.header(name, value)?;
        }
        StaticResponse::from_head(head, body)
    }

    /// From a head made with [`HeadBuilder::dated_at_send`].
    pub fn from_head(head: HeadBuilder, body: Vec<u8>) -> Result<StaticResponse, ResponseError> {
        let status = head.status();
        if !(200..=999).contains(&status) || status == 204 || status == 304 {
            return Err(ResponseError::InvalidStatus(status as i64));
        }
        let h2_head = head.to_h2_block(Some(body.len() as u64), false)?.block;
        let head = head.into_bytes();
        let length_line = format!("content-length: {}\r\n", body.len()).into_bytes();
        Ok(StaticResponse {
            status,
            head,
            length_line,
            h2_block: Mutex::new(([0; 29], bytes::Bytes::new())),
            h2_head,
            body: body.into(),
        })
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as a shared buffer (sent on HTTP/2 streams without copying).
    pub fn body_bytes(&self) -> bytes::Bytes {
        self.body.clone()
    }

    /// The HTTP/2 head for one stream as an HPACK block, with the current date.
    pub fn h2_block(&self) -> bytes::Bytes {
        let now = hyperion_http::http_date();
        let mut dated = self.h2_block.lock().unwrap_or_else(|e| e.into_inner());
        // (The first date, all zeros, never matches.)
        if dated.0 != now {
            let mut block = Vec::with_capacity(self.h2_head.len() + 40);
            block.extend_from_slice(&self.h2_head);
            let mut encoder = hyperion_h2::hpack::Encoder::new();
            encoder.field(b"date", &now, &mut block);
            *dated = (now, block.into());
        }
        dated.1.clone()
    }

    /// Like [`StaticResponse::write_to`] without the body: for sending a large body from the
    /// shared buffer in the same vectored write instead of copying it.
    pub fn write_head_to(&self, out: &mut Vec<u8>, version: Version, close: bool) {
        self.write_to(out, true, version, close);
    }

    /// Appends the whole response for one request to `out`: the cached date, `connection`
    /// as the request needs it, and the body unless `head_only`.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, version: Version, close: bool) {
        out.reserve(self.head.len() + 80 + if head_only { 0 } else { self.body.len() });
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&hyperion_http::http_date());
        out.extend_from_slice(b"\r\n");
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::Http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(&self.length_line);
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// A page-cache or static route entry.
pub struct StaticRoute {
    response: RwLock<Arc<StaticResponse>>,
    /// Set for page-cache entries that are not immutable.
    source: Option<Mutex<FileSource>>,
    /// Loaded from a file (the page cache) rather than registered with a body.
    pub page_cache: bool,
}

impl StaticRoute {
    /// The current response; a non-immutable file entry first looks at its file again when
    /// the last look is older than [`RECHECK_INTERVAL`].
    pub fn current(&self) -> Arc<StaticResponse> {
        if let Some(source) = &self.source {
            if let Ok(mut source) = source.try_lock() {
                if source.checked.elapsed() >= RECHECK_INTERVAL {
                    source.checked = Instant::now();
                    self.refresh(&mut source);
                }
            }
        }
        self.response
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refresh(&self, source: &mut FileSource) {
        let Ok(meta) = std::fs::metadata(&source.path) else {
            return;
        };
        let mtime = meta.modified().ok();
        if mtime == source.mtime && meta.len() == source.len {
            return;
        }
        if let Ok(response) = file_response(&source.path, &source.content_type) {
            source.mtime = mtime;
            source.len = response.body_len() as u64;
            *self.response.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(response);
        }
    }
}

/// A file as a complete 200 response with its content type.
fn file_response(path: &std::path::Path, content_type: &[u8]) -> std::io::Result<StaticResponse> {
    let body = std::fs::read(path)?;
    let headers = [(b"content-type".to_vec(), content_type.to_vec())];
    StaticResponse::new(200, &headers, body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
}

#[derive(Clone)]
pub enum Route {
    /// Answered by the I/O thread.
    Static(Arc<StaticRoute>),
    /// Dispatched to an application thread, which runs the handler with this id.
    Handler(u32),
}

/// What a lookup found.
pub struct Hit {
    pub route: Route,
    /// A HEAD request answered by a GET registration: headers only.
    pub head_only: bool,
}

/// Path -> one slot per method (indexed by `Method as usize`), so a lookup borrows the
/// request's path instead of allocating a key.
/// Paths hash with FNV-1a rather than the default keyed hash: the keys are the application's
/// registrations, never a client's, so a client's path can only be looked up, and a lookup
/// walks at most the entries the application made.
type Table = HashMap<Box<[u8]>, [Option<Route>; 7], BuildHasherDefault<PathHasher>>;

/// FNV-1a over the bytes written.
struct PathHasher(u64);

impl Default for PathHasher {
    fn default() -> PathHasher {
        PathHasher(FNV_OFFSET)
    }
}

/// FNV-1a's starting state.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: `state` (FNV_OFFSET to start) with `bytes` folded in.
pub(crate) fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= b as u64;
        state = state.wrapping_mul(0x0100_0000_01b3);
    }
    state
}

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
pub struct RouteTable {
    table: RwLock<Arc<Table>>,
    len: AtomicUsize,
    /// Request hooks are registered: static hits must also pass through an application
    /// thread so the hooks observe them.
    observed: AtomicBool,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("paths", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    fn insert(&self, method: Method, path: &[u8], route: Route) {
        let mut guard = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut table = Table::clone(&guard);
        table.entry(path.into()).or_default()[method as usize] = Some(route);
        self.len.store(table.len(), Ordering::Release);
        *guard = Arc::new(table);
    }

    /// Registers a fixed response; the last registration for a method and path wins.
    pub fn add_static(&self, method: Method, path: &[u8], response: StaticResponse) {
        let route = StaticRoute {
            response: RwLock::new(Arc::new(response)),
            source: None,
            page_cache: false,
        };
        self.insert(method, path, Route::Static(Arc::new(route)));
    }

    /// Registers a file of the page cache for GET (and so HEAD) at each of `paths` (one
    /// entry, so one read and one recheck however many paths serve it). Returns its size.
    pub fn add_file(
        &self,
        paths: &[&[u8]],
        file: &std::path::Path,
        content_type: &[u8],
        immutable: bool,
    ) -> std::io::Result<u64> {
        let meta = std::fs::metadata(file)?;
        let response = file_response(file, content_type)?;
        let len = response.body_len() as u64;
        let source = (!immutable).then(|| {
            Mutex::new(FileSource {
                path: file.to_path_buf(),
                content_type: content_type.to_vec(),
                mtime: meta.modified().ok(),
                len,
                checked: Instant::now(),
            })
        });
        let route = Arc::new(StaticRoute {
            response: RwLock::new(Arc::new(response)),
            source,
            page_cache: true,
        });
        for path in paths {
            self.insert(Method::Get, path, Route::Static(route.clone()));
        }
        Ok(len)
    }

    pub fn add_handler(&self, method: Method, path: &[u8], id: u32) {
        self.insert(method, path, Route::Handler(id));
    }

    pub fn set_observed(&self, observed: bool) {
        self.observed.store(observed, Ordering::Release);
    }

    pub fn is_observed(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }

    /// Exact match on method and path (the target without its query). HEAD falls back to a
    /// GET registration, answered without a body.
    pub fn lookup(&self, method: &[u8], path: &[u8]) -> Option<Hit> {
        if self.is_empty() {
            return None;
        }
        let method = Method::from_wire(method)?;
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let slots = table.get(path)?;
        if let Some(route) = &slots[method as usize] {
            return Some(Hit {
                route: route.clone(),
                head_only: method == Method::Head,
            });
        }
        if method == Method::Head {
            if let Some(route) = &slots[Method::Get as usize] {
                return Some(Hit {
                    route: route.clone(),
                    head_only: true,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &StaticResponse, head_only: bool, version: Version, close: bool) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out, head_only, version, close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn static_response_is_complete_and_framing_headers_are_the_servers() {
        let r = StaticResponse::new(
            200,
            &[
                (b"content-type".to_vec(), b"text/plain".to_vec()),
                (b"content-length".to_vec(), b"999".to_vec()),
            ],
            b"ok".to_vec(),
        )
        .unwrap();
        let s = text(&r, false, Version::Http11, false);
        assert!(s.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: "));
        assert!(s.ends_with("\r\ncontent-length: 2\r\n\r\nok"), "{s}");
        assert!(!s.contains("999"));
        let head = text(&r, true, Version::Http11, true);
        assert!(head.ends_with("connection: close\r\ncontent-length: 2\r\n\r\n"));
        assert!(text(&r, false, Version::Http10, false).contains("connection: keep-alive\r\n"));
    }

    #[test]
    fn invalid_headers_and_bodyless_statuses_are_refused() {
        assert!(StaticResponse::new(200, &[(b"x".to_vec(), b"a\r\nb".to_vec())], vec![]).is_err());
        assert!(
            StaticResponse::new(200, &[(b"bad name".to_vec(), b"v".to_vec())], vec![]).is_err()
        );
        assert!(StaticResponse::new(204, &[], vec![]).is_err());
        assert!(StaticResponse::new(99, &[], vec![]).is_err());
    }

    #[test]
    fn lookup_is_exact_head_falls_back_to_get_and_last_wins() {
        let t = RouteTable::new();
        assert!(t.lookup(b"GET", b"/x").is_none());
        t.add_static(
            Method::Get,
            b"/x",
            StaticResponse::new(200, &[], b"1".to_vec()).unwrap(),
        );
        t.add_static(
            Method::Get,
            b"/x",
            StaticResponse::new(200, &[], b"2".to_vec()).unwrap(),
        );
        t.add_handler(Method::Post, b"/x", 7);
        let hit = t.lookup(b"GET", b"/x").unwrap();
        assert!(!hit.head_only);
        match hit.route {
            Route::Static(s) => assert_eq!(s.current().body(), b"2"),
            Route::Handler(_) => panic!("static expected"),
        }
        assert!(t.lookup(b"HEAD", b"/x").unwrap().head_only);
        assert!(matches!(
            t.lookup(b"POST", b"/x").unwrap().route,
            Route::Handler(7)
        ));
        assert!(t.lookup(b"GET", b"/x/").is_none());
        assert!(t.lookup(b"get", b"/x").is_none());
        assert!(t.lookup(b"PUT", b"/x").is_none());
        // An explicit HEAD registration wins over the GET fallback.
        t.add_static(
            Method::Head,
            b"/x",
            StaticResponse::new(200, &[], vec![]).unwrap(),
        );
        match t.lookup(b"HEAD", b"/x").unwrap().route {
            Route::Static(s) => assert_eq!(s.current().body(), b""),
            Route::Handler(_) => panic!(),
        }
    }

    #[test]
    fn mutable_file_entries_notice_changes() {
        let dir = std::env::temp_dir().join(format!("hyperion-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, "one").unwrap();
        let t = RouteTable::new();
        t.add_file(&[b"/a.txt"], &file, b"text/plain", false)
            .unwrap();
        t.add_file(&[b"/b.txt", b"/c.txt"], &file, b"text/plain", true)
            .unwrap();
        std::fs::write(&file, "changed").unwrap();
        let current = |p: &[u8]| match t.lookup(b"GET", p).unwrap().route {
            Route::Static(s) => s,
            Route::Handler(_) => panic!(),
        };
        // Not before the recheck interval...
        assert_eq!(current(b"/a.txt").current().body(), b"one");
        // ...but after it.
        let entry = current(b"/a.txt");
        entry.source.as_ref().unwrap().lock().unwrap().checked -= RECHECK_INTERVAL;
        assert_eq!(entry.current().body(), b"changed");
        // Immutable entries never look again.
        assert_eq!(current(b"/b.txt").current().body(), b"one");
        // Several paths, one entry.
        assert!(Arc::ptr_eq(&current(b"/b.txt"), &current(b"/c.txt")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
