//! Building the Rack env for one exchange, in one call, with interned keys.

use std::cell::UnsafeCell;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::sync::OnceLock;

use hyperion_engine::{Body, Exchange, Peer};
use hyperion_http::{
    cgi_header_key, ipv4_text, is_content_length, is_content_type, split_host, TargetForm, Version,
};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::{Lazy, Opaque, ReprValue};
use magnus::{Class, Error, Module, RArray, RClass, RHash, Ruby, Value};
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
    rack_hijack: VALUE,
    rack_early_hints: VALUE,
    http_host: VALUE,
    http: VALUE,
    https: VALUE,
    port_80: VALUE,
    port_443: VALUE,
    empty: VALUE,
    /// (method, interned value) for the usual methods.
    methods: Vec<(&'static [u8], VALUE)>,
    /// Env keys of the usual request fields, by the length of the field name.
    fields: Vec<Vec<(&'static [u8], VALUE)>>,
}

// SAFETY: VALUEs of permanently registered frozen strings are plain words, valid on any Ruby
// thread; they are only dereferenced by Ruby with the GVL held.
unsafe impl Send for Interned {}
unsafe impl Sync for Interned {}

static INTERNED: OnceLock<Interned> = OnceLock::new();

/// The peer address and the Host of the last request that had them, with the frozen Strings
/// made for them. Requests through one proxy, from one client or for one site repeat them, and
/// their envs then share these four objects (REMOTE_ADDR, HTTP_HOST, SERVER_NAME, SERVER_PORT)
/// instead of allocating their own: fewer objects per request, less for the collector. A
/// request with other values makes new ones, which it leaves here for the next.
struct Recent {
    addr: Vec<u8>,
    addr_v: VALUE,
    host: Vec<u8>,
    host_v: VALUE,
    name_v: VALUE,
    port_v: VALUE,
}

/// Longer values are not kept (a Host of hundreds of bytes is unusual; each is copied once).
const RECENT_MAX: usize = 128;

/// A cell only ever touched with the GVL held, which serialises every access.
struct GvlCell<T>(UnsafeCell<T>);

// SAFETY: see `GvlCell`: the GVL is the lock.
unsafe impl<T> Sync for GvlCell<T> {}

static RECENT: GvlCell<Recent> = GvlCell(UnsafeCell::new(Recent {
    addr: Vec::new(),
    addr_v: rb_sys::Qnil as VALUE,
    host: Vec::new(),
    host_v: rb_sys::Qnil as VALUE,
    name_v: rb_sys::Qnil as VALUE,
    port_v: rb_sys::Qnil as VALUE,
}));

/// The remembered values, for the env being built.
///
/// # Safety
/// GVL held, and the reference not kept past the current env build (nothing else runs Ruby
/// while it lives).
unsafe fn recent<'a>() -> &'a mut Recent {
    // SAFETY: per the contract.
    unsafe { &mut *RECENT.0.get() }
}

/// Makes `kept` hold `bytes` when they are short enough to keep; whether it does.
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) -> bool {
    if bytes.len() > RECENT_MAX {
        return false;
    }
    kept.clear();
    kept.extend_from_slice(bytes);
    true
}

fn frozen_str(bytes: &[u8]) -> VALUE {
    let v = new_str(bytes);
    // SAFETY: GVL held; a new String.
    unsafe { rb_sys::rb_obj_freeze(v) }
}

impl Recent {
    /// REMOTE_ADDR for the text of a peer address.
    fn addr(&mut self, text: &[u8]) -> VALUE {
        if self.addr_v != rb_sys::Qnil as VALUE && self.addr == text {
            return self.addr_v;
        }
        let v = frozen_str(text);
        if keep(&mut self.addr, text) {
            self.addr_v = v;
        }
        v
    }

    /// SERVER_NAME and SERVER_PORT for a Host value (`default_port` when it names none), and
    /// makes HTTP_HOST for it available to [`Recent::http_host`].
    fn host(&mut self, host: &[u8], default_port: VALUE) -> (VALUE, VALUE) {
        if self.host_v != rb_sys::Qnil as VALUE && self.host == host {
            return (self.name_v, self.port_v);
        }
        let (name, port) = split_host(host);
        let name_v = frozen_str(name);
        let port_v = port.map_or(default_port, frozen_str);
        if keep(&mut self.host, host) {
            self.host_v = frozen_str(host);
            self.name_v = name_v;
            self.port_v = port_v;
        }
        (name_v, port_v)
    }

    /// HTTP_HOST for a Host field's value.
    fn http_host(&self, value: &[u8]) -> VALUE {
        if self.host_v != rb_sys::Qnil as VALUE && self.host == value {
            self.host_v
        } else {
            new_str(value)
        }
    }
}

static STRING_IO: Lazy<RClass> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get("StringIO")
        .expect("stringio is required before the engine starts")
});

static NULL_INPUT: Lazy<Value> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get::<_, magnus::RModule>("Hyperion")
        .and_then(|m| m.const_get::<_, RClass>("NullInput"))
        .and_then(|c| c.const_get("INSTANCE"))
        .expect("hyperion/null_input is required before the engine starts")
});

static STREAM_INPUT: Lazy<RClass> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get::<_, magnus::RModule>("Hyperion")
        .and_then(|m| m.const_get("StreamInput"))
        .expect("hyperion/stream_input is required before the engine starts")
});

fn intern(bytes: &[u8]) -> VALUE {
    // An empty slice's pointer may be dangling; C wants a valid one even for no bytes.
    let ptr = if bytes.is_empty() {
        c"".as_ptr()
    } else {
        bytes.as_ptr().cast()
    };
    // SAFETY: called with the GVL held; rb_interned_str copies the bytes.
    unsafe { rb_sys::rb_interned_str(ptr, bytes.len() as _) }
}

fn permanent(bytes: &[u8]) -> VALUE {
    let v = intern(bytes);
    // SAFETY: GVL held; keeps the interned string from ever being collected.
    unsafe { rb_sys::rb_gc_register_mark_object(v) };
    v
}

pub fn init() {
    // SAFETY: called once, at load, with the GVL held; the cell is a static, so the
    // addresses registered stay valid and the collector marks whatever they hold.
    unsafe {
        let recent = recent();
        for slot in [
            &raw mut recent.addr_v,
            &raw mut recent.host_v,
            &raw mut recent.name_v,
            &raw mut recent.port_v,
        ] {
            rb_sys::rb_gc_register_address(slot);
        }
    }
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
        rack_hijack: permanent(b"rack.hijack"),
        rack_early_hints: permanent(b"rack.early_hints"),
        http_host: permanent(b"HTTP_HOST"),
        http: permanent(b"http"),
        https: permanent(b"https"),
        port_80: permanent(b"80"),
        port_443: permanent(b"443"),
        empty: permanent(b""),
        methods: METHODS.iter().map(|m| (*m, permanent(m))).collect(),
        fields: {
            let mut by_len: Vec<Vec<(&'static [u8], VALUE)>> = Vec::new();
            let mut key = Vec::new();
            for name in USUAL_FIELDS {
                key.clear();
                let usable = cgi_header_key(name, &mut key);
                debug_assert!(usable, "{name:?}");
                if by_len.len() <= name.len() {
                    by_len.resize_with(name.len() + 1, Vec::new);
                }
                by_len[name.len()].push((*name, permanent(&key)));
            }
            by_len
        },
    });
}

const METHODS: [&[u8]; 7] = [
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"PATCH", b"OPTIONS",
];

/// Request fields common enough to have their env key made once (lowercase; a field is
/// matched in any case). Any other field's key is made and interned per request.
const USUAL_FIELDS: &[&[u8]] = &[
    b"host",
    b"user-agent",
    b"accept",
    b"accept-encoding",
    b"accept-language",
    b"accept-charset",
    b"connection",
    b"keep-alive",
    b"cookie",
    b"referer",
    b"origin",
    b"cache-control",
    b"pragma",
    b"authorization",
    b"upgrade-insecure-requests",
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
    b"range",
    b"te",
    b"dnt",
    b"priority",
    b"expect",
    b"upgrade",
    b"via",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-real-ip",
    b"x-request-id",
    b"x-requested-with",
    b"x-csrf-token",
    b"traceparent",
    b"tracestate",
    b"sec-fetch-dest",
    b"sec-fetch-mode",
    b"sec-fetch-site",
    b"sec-fetch-user",
    b"sec-ch-ua",
    b"sec-ch-ua-mobile",
    b"sec-ch-ua-platform",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"grpc-timeout",
    b"grpc-encoding",
    b"grpc-accept-encoding",
];

impl Interned {
    fn method(&self, method: &[u8]) -> VALUE {
        self.methods
            .iter()
            .find(|(known, _)| *known == method)
            .map_or_else(|| intern(method), |(_, v)| *v)
    }

    /// The env key of a field made once at load, when the field is one of [`USUAL_FIELDS`]
    /// (in any case).
    fn usual_field(&self, name: &[u8]) -> Option<VALUE> {
        self.fields
            .get(name.len())?
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// `rack.early_hints` for one exchange: the exchange and the logger the adapter's `call`
/// reports an invalid hint to. A native object, made without `new` or instance variables
/// (one allocation; about 1,000 instructions less per request than a Ruby object with two
/// instance variables). The adapter defines `call`.
#[derive(magnus::TypedData)]
#[magnus(
    class = "Hyperion::Native::EarlyHints",
    free_immediately,
    wb_protected,
    size,
    mark
)]
pub struct EarlyHints {
    exchange: Opaque<Value>,
    logger: Opaque<Value>,
}

impl magnus::DataTypeFunctions for EarlyHints {
    fn mark(&self, marker: &magnus::gc::Marker) {
        marker.mark(self.exchange);
        marker.mark(self.logger);
    }
}

impl EarlyHints {
    fn exchange(ruby: &Ruby, rb_self: &Self) -> Value {
        ruby.get_inner(rb_self.exchange)
    }

    fn logger(ruby: &Ruby, rb_self: &Self) -> Value {
        ruby.get_inner(rb_self.logger)
    }
}

/// `rack.hijack` for one HTTP/1.1 exchange on plain TCP: the exchange and its env, made like
/// [`EarlyHints`]. The adapter defines `call`.
#[derive(magnus::TypedData)]
#[magnus(
    class = "Hyperion::Native::Hijack",
    free_immediately,
    wb_protected,
    size,
    mark
)]
pub struct Hijack {
    exchange: Opaque<Value>,
    env: Opaque<Value>,
}

impl magnus::DataTypeFunctions for Hijack {
    fn mark(&self, marker: &magnus::gc::Marker) {
        marker.mark(self.exchange);
        marker.mark(self.env);
    }
}

impl Hijack {
    fn exchange(ruby: &Ruby, rb_self: &Self) -> Value {
        ruby.get_inner(rb_self.exchange)
    }

    fn env(ruby: &Ruby, rb_self: &Self) -> Value {
        ruby.get_inner(rb_self.env)
    }
}

/// Defines the classes of the per-request callables under `Hyperion::Native`.
pub fn define_callables(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
    let hints = native.define_class("EarlyHints", ruby.class_object())?;
    hints.undef_default_alloc_func();
    hints.define_method("exchange", magnus::method!(EarlyHints::exchange, 0))?;
    hints.define_method("logger", magnus::method!(EarlyHints::logger, 0))?;
    let hijack = native.define_class("Hijack", ruby.class_object())?;
    hijack.undef_default_alloc_func();
    hijack.define_method("exchange", magnus::method!(Hijack::exchange, 0))?;
    hijack.define_method("env", magnus::method!(Hijack::env, 0))?;
    Ok(())
}

/// What the per-request callables need: the exchange they act on, the logger
/// [`EarlyHints`] reports to, and whether the socket can be handed over ([`Hijack`]).
pub struct Callables {
    pub exchange: VALUE,
    pub logger: VALUE,
    pub hijack: bool,
}

/// Makes the request's `rack.early_hints` object (returned) and, when the socket can be
/// handed over, puts its `rack.hijack`.
fn add_callables(ruby: &Ruby, table: &Table, env: VALUE, callables: &Callables) -> VALUE {
    let k = INTERNED.get().expect("env::init runs at load");
    // SAFETY (from_raw): GVL held; the exchange, the logger and the env are live objects the
    // caller's frame holds.
    let exchange = Opaque::from(unsafe { Value::from_raw(callables.exchange) });
    let hints = ruby.obj_wrap(EarlyHints {
        exchange,
        logger: Opaque::from(unsafe { Value::from_raw(callables.logger) }),
    });
    if callables.hijack {
        let hijack = ruby.obj_wrap(Hijack {
            exchange,
            env: Opaque::from(unsafe { Value::from_raw(env) }),
        });
        table.put(k.rack_hijack, hijack.as_raw());
    }
    hints.as_raw()
}

/// The entries every request sets, in the order they open every template (see
/// [`env_templates`]): a copied template holds them in its first places, with nil, and
/// [`Fixed::fill`] writes the request's values there without hashing a key. HTTP_HOST is one:
/// HTTP/1.1 requires Host and HTTP/2 has `:authority`; a request without either (HTTP/1.0)
/// has the placeholder deleted.
const FIXED: usize = 11;

fn fixed_keys(k: &Interned) -> [VALUE; FIXED] {
    [
        k.request_method,
        k.path_info,
        k.query_string,
        k.request_uri,
        k.server_name,
        k.server_port,
        k.remote_addr,
        k.rack_input,
        k.rack_response_finished,
        k.rack_early_hints,
        k.http_host,
    ]
}

/// Where `rack.response_finished` is in [`fixed_keys`].
const FINISHED_AT: usize = 8;

/// The request's values for [`fixed_keys`], on the stack (where the collector sees them)
/// until they are in the env.
struct Fixed {
    keys: [VALUE; FIXED],
    values: [VALUE; FIXED],
}

impl Fixed {
    /// Writes the values over the template's placeholders in place. A table whose first
    /// keys are not [`fixed_keys`] (a template not made by `env_templates`) gets them stored
    /// like any entry instead.
    fn fill(self, table: &Table) {
        // SAFETY: GVL held; see `Table`, whose entries may be written directly.
        match unsafe { fixed_entries(table.0, &self.keys) } {
            Some(entries) => {
                for (entry, value) in entries.iter_mut().zip(self.values) {
                    entry.record = value;
                }
            }
            None => {
                for (key, value) in self.keys.into_iter().zip(self.values) {
                    table.put(key, value);
                }
            }
        }
    }
}

/// An entry of an st table, as `st.c` lays it out (Ruby 2.6 and later): the key's hash, the
/// key, the value. Only ever read through [`fixed_entries`], which checks that the entries
/// it returns hold the expected keys.
#[repr(C)]
struct StEntry {
    hash: u64,
    key: VALUE,
    record: VALUE,
}

/// The hash `st.c` gives a deleted entry.
const DELETED_ENTRY: u64 = !0;

/// The table's first [`FIXED`] entries when they hold `keys` in order (an env made from one
/// of [`env_templates`], with those keys in their places), else `None`. Reading a value
/// there, or writing one, needs no hashing of its key: a lookup of a 22-byte key such as
/// `rack.response_finished` hashes it every time (about 300 instructions), and walking the
/// entries with `st_foreach` costs about 40 instructions each.
///
/// # Safety
/// GVL held; `table` is the st table of a live Hash, not changed while the slice is used.
unsafe fn fixed_entries<'a>(
    table: *mut rb_sys::st_table,
    keys: &[VALUE; FIXED],
) -> Option<&'a mut [StEntry]> {
    // SAFETY: per the contract; the entries between `entries_start` and `entries_bound` are
    // allocated, and each is checked before the slice is handed out.
    unsafe {
        let t = &*table;
        let start = t.entries_start as usize;
        if t.entries.is_null() || (t.entries_bound as usize) < start + FIXED {
            return None;
        }
        let entries = std::slice::from_raw_parts_mut(t.entries.cast::<StEntry>().add(start), FIXED);
        entries
            .iter()
            .zip(keys)
            .all(|(entry, key)| entry.hash != DELETED_ENTRY && entry.key == *key)
            .then_some(entries)
    }
}

/// The table of an env being built, taken once (`rb_hash_tbl`). That leaves the env
/// write-barrier unprotected: the collector scans all its entries, so entries may be written
/// into its table directly. Each goes in with `st_insert` (the key hashed once, looked up,
/// stored; a key already there takes the new value): `rb_hash_bulk_insert` into a table that
/// already holds entries appends them and then rebuilds the whole index, about 580
/// instructions per entry for an env made from a template against about 250 here, and a store
/// through `Hash#[]=` costs about twice that.
struct Table(*mut rb_sys::st_table);

impl Table {
    fn of(env: VALUE) -> Table {
        // SAFETY: GVL held; `env` is a new, unfrozen Hash nothing else holds.
        Table(unsafe { rb_sys::rb_hash_tbl(env, c"env.rs".as_ptr(), line!() as c_int) })
    }

    /// Stores `value` under `key`, a frozen, interned String (a Hash stores such a key as it
    /// is).
    fn put(&self, key: VALUE, value: VALUE) {
        // SAFETY: GVL held; the table of a live env, which stays an st table (it never shrinks
        // back), with the key and value as above.
        unsafe {
            rb_sys::rb_st_insert(self.0, key as rb_sys::st_data_t, value as rb_sys::st_data_t)
        };
    }
}

/// Whether the app registered `rack.response_finished` callbacks (or put something else
/// than an Array there).
pub fn has_finish_callbacks(env: RHash) -> bool {
    let k = INTERNED.get().expect("env::init runs at load");
    let env = env.as_raw();
    // SAFETY: GVL held; `env` is a Hash (taking the table of a small one only changes how it
    // is stored). The value is read at once.
    let callbacks = unsafe {
        let table = rb_sys::rb_hash_tbl(env, c"env.rs".as_ptr(), line!() as c_int);
        match fixed_entries(table, &fixed_keys(k)) {
            Some(entries) => entries[FINISHED_AT].record,
            // The app deleted an entry of the first ones, or stored one again.
            None => rb_sys::rb_hash_lookup2(env, k.rack_response_finished, rb_sys::Qnil as VALUE),
        }
    };
    if callbacks == rb_sys::Qnil as VALUE {
        return false;
    }
    // SAFETY: GVL held; a value of the env, alive as long as the env.
    match RArray::from_value(unsafe { Value::from_raw(callbacks) }) {
        Some(array) => !array.is_empty(),
        None => true,
    }
}

fn new_str(bytes: &[u8]) -> VALUE {
    // SAFETY: GVL held; copies the bytes into a new (binary) String.
    unsafe { rb_sys::rb_str_new(bytes.as_ptr() as *const _, bytes.len() as _) }
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

/// Room in every env: the template's 7 entries, the 13 that the engine and the adapter add
/// to every request, and about 12 header fields. Ruby gives a table asked for 31 entries room
/// for 32 (768 bytes, served from the allocator's per-thread cache; asked for 32, it makes
/// room for 64). A request with more fields grows its env once, reusing the stored hashes.
const ENV_ROOM: usize = 31;

/// The per-server entries every env starts with, as frozen Hashes with room for a whole env,
/// one per scheme and protocol (see [`variant`]), each holding `rack.url_scheme` and
/// `SERVER_PROTOCOL` too (and, for HTTP/2, `rack.hijack?` false). Each env is a copy of one
/// (`rb_hash_dup`), which copies the table as it is, with the stored hash of every key: no
/// key of the template is hashed again, and a request with the usual number of fields adds
/// its own without the table growing.
pub fn env_templates(ruby: &Ruby, entries: RHash) -> Result<RArray, Error> {
    let k = INTERNED.get().expect("env::init runs at load");
    let mut base = Vec::with_capacity(FIXED * 2 + entries.len() * 2 + 6);
    for key in fixed_keys(k) {
        base.extend([key, rb_sys::Qnil as VALUE]);
    }
    entries.foreach(|key: Value, value: Value| {
        base.push(key.as_raw());
        base.push(value.as_raw());
        Ok(magnus::r_hash::ForEach::Continue)
    })?;
    let templates = ruby.ary_new_capa(6);
    // In the order `variant` indexes them.
    for scheme in [k.http, k.https] {
        for protocol in [k.http_1_0, k.http_1_1, k.http_2] {
            let mut pairs = base.clone();
            pairs.extend([k.rack_url_scheme, scheme, k.server_protocol, protocol]);
            if protocol == k.http_2 {
                // An HTTP/2 stream shares its connection: there is no socket to hand over.
                pairs.extend([k.rack_hijack_p, rb_sys::Qfalse as VALUE]);
            }
            let template = hash_with_capacity(ENV_ROOM.max(pairs.len() / 2));
            // SAFETY: GVL held (a method call); `template` is a new Hash and the pairs are
            // live: entries of `entries` (on this call's stack) and interned constants.
            unsafe {
                rb_sys::rb_hash_bulk_insert(pairs.len() as c_long, pairs.as_ptr(), template);
                rb_sys::rb_obj_freeze(template);
                templates.push(Value::from_raw(template))?;
            }
        }
    }
    templates.freeze();
    Ok(templates)
}

/// Which of [`env_templates`] an exchange's env starts from.
fn variant(ex: &Exchange) -> usize {
    let scheme = usize::from(ex.scheme() == "https");
    let protocol = match ex.head.version {
        _ if ex.is_h2() => 2,
        Version::Http11 => 1,
        Version::Http10 => 0,
    };
    scheme * 3 + protocol
}

/// Builds the env: the template's entries (the per-server constants) plus this request. Also
/// returns its `rack.input` when that must be closed after the response (a temp file or a
/// streamed body; a body in memory is a `StringIO`).
pub fn build(
    ruby: &Ruby,
    ex: &mut Exchange,
    templates: RArray,
    callables: &Callables,
) -> Result<(RHash, Option<Value>), Error> {
    let k = INTERNED.get().expect("env::init runs at load");
    let template: Value = templates.entry(variant(ex) as isize)?;
    if RHash::from_value(template).is_none() {
        return Err(Error::new(
            ruby.exception_arg_error(),
            "build_env needs the templates made by Hyperion::Native.env_templates",
        ));
    }
    // SAFETY: GVL held; a copy of a frozen Hash is a new, unfrozen Hash.
    let env = unsafe { rb_sys::rb_hash_dup(template.as_raw()) };
    let table = Table::of(env);
    let buf = &ex.head_bytes[..];
    let head = &ex.head;

    let mut fixed = Fixed {
        keys: fixed_keys(k),
        values: [rb_sys::Qnil as VALUE; FIXED],
    };
    let [method_v, path_v, query_v, uri_v, name_v, port_v, addr_v, input_v, finished_v, hints_v, host_v] =
        &mut fixed.values;
    *method_v = k.method(head.method.slice(buf));
    // An absolute-form target with no path ("http://host?q") means "/" (RFC 9112 3.2.2).
    let path = head.path.slice(buf);
    *path_v = new_str(if path.is_empty() { b"/" } else { path });
    // Without a query, the frozen empty String every env shares.
    let query = head.query.slice(buf);
    *query_v = if query.is_empty() {
        k.empty
    } else {
        new_str(query)
    };
    *uri_v = new_str(head.target.slice(buf));
    let scheme = ex.scheme();
    // Frozen and shared, as the default ports usually are in Rack servers.
    let default_port = if scheme == "https" {
        k.port_443
    } else {
        k.port_80
    };
    // SAFETY: GVL held; used only within this build.
    let recent = unsafe { recent() };
    // An empty Host is legal (a target without authority); SERVER_NAME must not be empty.
    match head.host.filter(|span| !span.is_empty()) {
        Some(span) => (*name_v, *port_v) = recent.host(span.slice(buf), default_port),
        None => {
            *name_v = new_str(ex.listener.server_name.as_bytes());
            *port_v = if ex.listener.server_port == 0 {
                default_port
            } else {
                new_str(ex.listener.server_port.to_string().as_bytes())
            };
        }
    }
    *addr_v = match ex.peer {
        Peer::Tcp(std::net::SocketAddr::V4(addr)) => {
            let mut text = [0u8; 15];
            recent.addr(ipv4_text(*addr.ip(), &mut text))
        }
        Peer::Tcp(addr) => recent.addr(addr.ip().to_string().as_bytes()),
        Peer::Unix => recent.addr(b"127.0.0.1"),
    };

    let mut key = Vec::new();
    let mut saw_length = false;
    // RFC 9112 3.2.2: with an absolute-form target the authority in the target is the host and
    // the Host header is ignored, so HTTP_HOST (which Rack::Request reads first) carries it.
    let absolute = head.target_form == TargetForm::Absolute;
    if let (true, Some(authority)) = (absolute, head.host) {
        *host_v = new_str(authority.slice(buf));
    }
    for (i, h) in head.headers.iter().enumerate() {
        let name = h.name.slice(buf);
        let value = h.value.slice(buf);
        if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            if absolute {
                continue;
            }
            // The parser refuses a second Host; should one come, it joins the first.
            if *host_v == rb_sys::Qnil as VALUE {
                *host_v = recent.http_host(value);
            } else {
                // Joined in a String of this env's own, never the shared one.
                // SAFETY: GVL held; a String made above.
                *host_v = unsafe { rb_sys::rb_str_dup(*host_v) };
                join_field(*host_v, value, false);
            }
            continue;
        }
        if is_content_type(name) {
            table.put(k.content_type, new_str(value));
            continue;
        }
        if is_content_length(name) {
            saw_length = true;
            table.put(k.content_length, new_str(value));
            continue;
        }
        let key_v = match k.usual_field(name) {
            Some(key_v) => key_v,
            None => {
                key.clear();
                if !cgi_header_key(name, &mut key) {
                    continue;
                }
                // The body handed to the app is already de-chunked (its length is set
                // below), and a client-sent `Proxy` header must never become HTTP_PROXY,
                // which CGI-style code reads as the outbound proxy setting ("httpoxy").
                if key == b"HTTP_TRANSFER_ENCODING" || key == b"HTTP_PROXY" {
                    continue;
                }
                intern(&key)
            }
        };
        // Names with '_' have no key, so the same key means the same name in another case.
        let repeated = head.headers[..i]
            .iter()
            .any(|earlier| earlier.name.slice(buf).eq_ignore_ascii_case(name));
        if repeated {
            add_header(
                env,
                &table,
                key_v,
                value,
                name.eq_ignore_ascii_case(b"cookie"),
            );
        } else {
            table.put(key_v, new_str(value));
        }
    }
    if !saw_length && (!ex.body.is_empty() || !ex.trailers.is_empty()) {
        table.put(
            k.content_length,
            new_str(ex.body.len().to_string().as_bytes()),
        );
    }
    if !ex.trailers.is_empty() {
        // Trailers never override a field of the head.
        for (name, value) in &ex.trailers {
            key.clear();
            if cgi_header_key(name, &mut key) {
                let key_v = intern(&key);
                // SAFETY: GVL held.
                let existing =
                    unsafe { rb_sys::rb_hash_lookup2(env, key_v, rb_sys::Qundef as VALUE) };
                if existing == rb_sys::Qundef as VALUE {
                    table.put(key_v, new_str(value));
                }
            }
        }
    }

    let closable = !matches!(ex.body, Body::Memory(_));
    let input: Value = match std::mem::replace(&mut ex.body, Body::Memory(Vec::new())) {
        // No body: the shared input that is always at its end.
        Body::Memory(bytes) if bytes.is_empty() => ruby.get_inner(&NULL_INPUT),
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
    *input_v = input.as_raw();
    // SAFETY: GVL held.
    *finished_v = unsafe { rb_sys::rb_ary_new() };
    *hints_v = add_callables(ruby, &table, env, callables);
    let no_host = *host_v == rb_sys::Qnil as VALUE;
    fixed.fill(&table);
    if no_host {
        // SAFETY: GVL held; `env` is the new, unfrozen Hash.
        unsafe { rb_sys::rb_hash_delete(env, k.http_host) };
    }
    // SAFETY: `env` is the Hash created above.
    let env = unsafe { RHash::from_value(Value::from_raw(env)).unwrap_unchecked() };
    Ok((env, closable.then_some(input)))
}

/// A field repeated in the request joins the value already stored (RFC 9110 5.3); cookies
/// with "; ".
fn add_header(env: VALUE, table: &Table, key_v: VALUE, value: &[u8], cookie: bool) {
    // SAFETY: GVL held.
    let existing = unsafe { rb_sys::rb_hash_lookup2(env, key_v, rb_sys::Qundef as VALUE) };
    if existing == rb_sys::Qundef as VALUE {
        table.put(key_v, new_str(value));
    } else {
        join_field(existing, value, cookie);
    }
}

/// Appends a repeated field's value to the String made for its first occurrence.
fn join_field(existing: VALUE, value: &[u8], cookie: bool) {
    let sep: &[u8] = if cookie { b"; " } else { b", " };
    // SAFETY: GVL held; `existing` is a fresh, unfrozen String made by `build`.
    unsafe {
        rb_sys::rb_str_cat(existing, sep.as_ptr() as *const _, sep.len() as _);
        rb_sys::rb_str_cat(existing, value.as_ptr() as *const _, value.len() as _);
    }
}
