//! Building the Rack env for one exchange, in one call, with interned keys.

use std::cell::RefCell;
use std::os::raw::{c_char, c_long, c_void};
use std::sync::OnceLock;

use hyperion_engine::{Body, Exchange, Peer};
use hyperion_http::{
    cgi_header_key, ipv4_text, is_content_length, is_content_type, split_host, TargetForm, Version,
};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::{Lazy, ReprValue};
use magnus::{Error, Module, RClass, RHash, Ruby, Value};
use rb_sys::VALUE;

/// Keys and constant values, interned once and kept alive for the life of the process.
struct Interned {
    request_method: VALUE,
    path_info: VALUE,
    query_string: VALUE,
    request_uri: VALUE,
    server_name: VALUE,
    server_port: VALUE,
    server_protocol: VALUE,
    remote_addr: VALUE,
    content_type: VALUE,
    content_length: VALUE,
    rack_input: VALUE,
    rack_url_scheme: VALUE,
    rack_response_finished: VALUE,
    http_1_1: VALUE,
    http_1_0: VALUE,
    http_2: VALUE,
    rack_hijack_p: VALUE,
}

// SAFETY: VALUEs of permanently registered frozen strings are plain words, valid on any Ruby
// thread; they are only dereferenced by Ruby with the GVL held.
unsafe impl Send for Interned {}
unsafe impl Sync for Interned {}

static INTERNED: OnceLock<Interned> = OnceLock::new();

static STRING_IO: Lazy<RClass> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get("StringIO")
        .expect("stringio is required before the engine starts")
});

static STREAM_INPUT: Lazy<RClass> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get::<_, magnus::RModule>("Hyperion")
        .and_then(|m| m.const_get("StreamInput"))
        .expect("hyperion/stream_input is required before the engine starts")
});

fn intern(bytes: &[u8]) -> VALUE {
    // SAFETY: called with the GVL held; rb_interned_str copies the bytes.
    unsafe { rb_sys::rb_interned_str(bytes.as_ptr() as *const _, bytes.len() as _) }
}

fn permanent(bytes: &[u8]) -> VALUE {
    let v = intern(bytes);
    // SAFETY: GVL held; keeps the interned string from ever being collected.
    unsafe { rb_sys::rb_gc_register_mark_object(v) };
    v
}

pub fn init() {
    INTERNED.get_or_init(|| Interned {
        request_method: permanent(b"REQUEST_METHOD"),
        path_info: permanent(b"PATH_INFO"),
        query_string: permanent(b"QUERY_STRING"),
        request_uri: permanent(b"REQUEST_URI"),
        server_name: permanent(b"SERVER_NAME"),
        server_port: permanent(b"SERVER_PORT"),
        server_protocol: permanent(b"SERVER_PROTOCOL"),
        remote_addr: permanent(b"REMOTE_ADDR"),
        content_type: permanent(b"CONTENT_TYPE"),
        content_length: permanent(b"CONTENT_LENGTH"),
        rack_input: permanent(b"rack.input"),
        rack_url_scheme: permanent(b"rack.url_scheme"),
        rack_response_finished: permanent(b"rack.response_finished"),
        http_1_1: permanent(b"HTTP/1.1"),
        http_1_0: permanent(b"HTTP/1.0"),
        http_2: permanent(b"HTTP/2"),
        rack_hijack_p: permanent(b"rack.hijack?"),
    });
}

fn new_str(bytes: &[u8]) -> VALUE {
    // SAFETY: GVL held; copies the bytes into a new (binary) String.
    unsafe { rb_sys::rb_str_new(bytes.as_ptr() as *const _, bytes.len() as _) }
}

fn aset(env: VALUE, key: VALUE, value: VALUE) {
    // SAFETY: GVL held; `env` is a fresh, unfrozen Hash and keys are frozen Strings.
    unsafe { rb_sys::rb_hash_aset(env, key, value) };
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

type NewHashWithCapacity = unsafe extern "C" fn(c_long) -> VALUE;

/// Ruby's constructor for a Hash with room for `capa` entries: `rb_hash_new_capa` (public since
/// Ruby 3.2) or `rb_hash_new_with_size` (3.1, exported but not in the public headers), looked
/// up at run time so that a Ruby without either still loads the extension.
fn hash_with_capacity(capa: usize) -> VALUE {
    static FOUND: OnceLock<Option<NewHashWithCapacity>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        [c"rb_hash_new_capa", c"rb_hash_new_with_size"]
            .into_iter()
            .find_map(|name| {
                // SAFETY: RTLD_DEFAULT (a null handle) searches the loaded objects, libruby
                // included; the name is a NUL-terminated literal.
                let symbol = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
                // SAFETY: both functions take one word-sized integer and return a VALUE.
                (!symbol.is_null()).then(|| unsafe {
                    std::mem::transmute::<*mut c_void, NewHashWithCapacity>(symbol)
                })
            })
    });
    // SAFETY: GVL held by the caller.
    unsafe {
        match found {
            Some(new_hash) => new_hash(capa as c_long),
            None => rb_sys::rb_hash_new(),
        }
    }
}

thread_local! {
    /// The template last used on this thread, flattened to key, value, key, value...
    static TEMPLATE: RefCell<(VALUE, Vec<VALUE>)> = const { RefCell::new((0, Vec::new())) };
}

/// A new env holding `template`'s entries, with room for `more` besides. The template is
/// copied into a table already sized for the whole env: a copy of the template itself would
/// be a small table that Ruby converts, then grows and rehashes, as the request's keys go in.
fn env_from(template: RHash, more: usize) -> Result<VALUE, Error> {
    TEMPLATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != template.as_raw() {
            let mut pairs = Vec::with_capacity(template.len() * 2);
            template.foreach(|key: Value, value: Value| {
                pairs.push(key.as_raw());
                pairs.push(value.as_raw());
                Ok(magnus::r_hash::ForEach::Continue)
            })?;
            // The raw pairs stay valid only while the template lives, and the cache compares
            // templates by address: keep this one alive for good (one per server).
            // SAFETY: GVL held.
            unsafe { rb_sys::rb_gc_register_mark_object(template.as_raw()) };
            *cached = (template.as_raw(), pairs);
        }
        let env = hash_with_capacity(cached.1.len() / 2 + more);
        // SAFETY: GVL held; `env` is a new Hash; the pairs are live objects (above) and the
        // keys frozen Strings.
        unsafe { rb_sys::rb_hash_bulk_insert(cached.1.len() as c_long, cached.1.as_ptr(), env) };
        Ok(env)
    })
}

/// Entries the engine and the adapter add to every env, besides the request's headers.
const PER_REQUEST_ENTRIES: usize = 16;

/// Builds the env: the template's entries (the per-server constants) plus this request.
pub fn build(ruby: &Ruby, ex: &mut Exchange, template: RHash) -> Result<RHash, Error> {
    let k = INTERNED.get().expect("env::init runs at load");
    let env = env_from(template, PER_REQUEST_ENTRIES + ex.head.headers.len())?;
    let buf = &ex.head_bytes[..];
    let head = &ex.head;

    aset(env, k.request_method, intern(head.method.slice(buf)));
    // An absolute-form target with no path ("http://host?q") means "/" (RFC 9112 3.2.2).
    let path = head.path.slice(buf);
    aset(
        env,
        k.path_info,
        new_str(if path.is_empty() { b"/" } else { path }),
    );
    aset(env, k.query_string, new_str(head.query.slice(buf)));
    aset(env, k.request_uri, new_str(head.target.slice(buf)));
    aset(
        env,
        k.server_protocol,
        match head.version {
            _ if ex.is_h2() => k.http_2,
            Version::Http11 => k.http_1_1,
            Version::Http10 => k.http_1_0,
        },
    );
    let scheme = ex.scheme();
    aset(env, k.rack_url_scheme, intern(scheme.as_bytes()));
    if ex.is_h2() {
        // An HTTP/2 stream shares its connection: there is no socket to hand over.
        aset(env, k.rack_hijack_p, rb_sys::Qfalse as VALUE);
    }

    let default_port: &[u8] = if scheme == "https" { b"443" } else { b"80" };
    // An empty Host is legal (a target without authority); SERVER_NAME must not be empty.
    match head.host.filter(|span| !span.is_empty()) {
        Some(span) => {
            let (name, port) = split_host(span.slice(buf));
            aset(env, k.server_name, new_str(name));
            aset(env, k.server_port, new_str(port.unwrap_or(default_port)));
        }
        None => {
            aset(
                env,
                k.server_name,
                new_str(ex.listener.server_name.as_bytes()),
            );
            if ex.listener.server_port == 0 {
                aset(env, k.server_port, new_str(default_port));
            } else {
                aset(
                    env,
                    k.server_port,
                    new_str(ex.listener.server_port.to_string().as_bytes()),
                );
            }
        }
    }
    match ex.peer {
        Peer::Tcp(std::net::SocketAddr::V4(addr)) => {
            let mut text = [0u8; 15];
            aset(
                env,
                k.remote_addr,
                new_str(ipv4_text(*addr.ip(), &mut text)),
            );
        }
        Peer::Tcp(addr) => aset(
            env,
            k.remote_addr,
            new_str(addr.ip().to_string().as_bytes()),
        ),
        Peer::Unix => aset(env, k.remote_addr, new_str(b"127.0.0.1")),
    }

    let mut key = Vec::with_capacity(64);
    let mut saw_length = false;
    // RFC 9112 3.2.2: with an absolute-form target the authority in the target is the host and
    // the Host header is ignored, so HTTP_HOST (which Rack::Request reads first) carries it.
    let absolute = head.target_form == TargetForm::Absolute;
    if let (true, Some(authority)) = (absolute, head.host) {
        add_header(env, b"HTTP_HOST", authority.slice(buf));
    }
    for h in &head.headers {
        let name = h.name.slice(buf);
        let value = h.value.slice(buf);
        if absolute && name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        if is_content_type(name) {
            aset(env, k.content_type, new_str(value));
            continue;
        }
        if is_content_length(name) {
            saw_length = true;
            aset(env, k.content_length, new_str(value));
            continue;
        }
        key.clear();
        if !cgi_header_key(name, &mut key) {
            continue;
        }
        // The body handed to the app is already de-chunked (its length is set below), and a
        // client-sent `Proxy` header must never become HTTP_PROXY, which CGI-style code reads
        // as the outbound proxy setting ("httpoxy").
        if key == b"HTTP_TRANSFER_ENCODING" || key == b"HTTP_PROXY" {
            continue;
        }
        add_header(env, &key, value);
    }
    if !saw_length && (!ex.body.is_empty() || !ex.trailers.is_empty()) {
        aset(
            env,
            k.content_length,
            new_str(ex.body.len().to_string().as_bytes()),
        );
    }
    for (name, value) in &ex.trailers {
        key.clear();
        if cgi_header_key(name, &mut key) {
            let key_v = intern(&key);
            // SAFETY: GVL held. Trailers never override a header of the head.
            let existing = unsafe { rb_sys::rb_hash_lookup2(env, key_v, rb_sys::Qundef as VALUE) };
            if existing == rb_sys::Qundef as VALUE {
                aset(env, key_v, new_str(value));
            }
        }
    }

    let input: Value = match std::mem::replace(&mut ex.body, Body::Memory(Vec::new())) {
        Body::Memory(bytes) => {
            let body = new_str(&bytes);
            let string_io: RClass = ruby.get_inner(&STRING_IO);
            // SAFETY: GVL held; `body` is a live String on this stack.
            string_io.funcall("new", (unsafe { Value::from_raw(body) },))?
        }
        Body::File { file, .. } => {
            // A large body: the unlinked temp file itself, owned by Ruby from here on (the
            // adapter closes it after the response).
            let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
            ruby.class_object()
                .const_get::<_, RClass>("File")?
                .funcall("for_fd", (fd, "rb"))?
        }
        Body::Stream(stream) => {
            let class: RClass = ruby.get_inner(&STREAM_INPUT);
            class.funcall("new", (crate::input::Input::new(stream),))?
        }
    };
    // SAFETY: GVL held.
    unsafe {
        aset(env, k.rack_input, input.as_raw());
        aset(env, k.rack_response_finished, rb_sys::rb_ary_new());
    }
    // SAFETY: `env` is the Hash created above.
    Ok(unsafe { RHash::from_value(Value::from_raw(env)).unwrap_unchecked() })
}

/// Repeated fields are joined as one value (RFC 9110 5.3); cookies with "; ".
fn add_header(env: VALUE, key: &[u8], value: &[u8]) {
    let key_v = intern(key);
    // SAFETY: GVL held; values we stored are fresh, unfrozen Strings.
    unsafe {
        let existing = rb_sys::rb_hash_lookup2(env, key_v, rb_sys::Qundef as VALUE);
        if existing == rb_sys::Qundef as VALUE {
            aset(env, key_v, new_str(value));
        } else {
            let sep: &[u8] = if key == b"HTTP_COOKIE" { b"; " } else { b", " };
            rb_sys::rb_str_cat(existing, sep.as_ptr() as *const _, sep.len() as _);
            rb_sys::rb_str_cat(existing, value.as_ptr() as *const _, value.len() as _);
        }
    }
}
