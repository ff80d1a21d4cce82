//! Ruby bindings: `Hyperion::Native::Engine` and `Hyperion::Native::Exchange`.
//!
//! Ruby enters here to wait for work (with the GVL released), to build a request's env, and
//! to hand back a response; everything else happens on the engine's I/O thread.

mod env;
mod gvl;
mod input;
mod routes;
mod tls;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyperion_engine::{
    admin, log, metrics, AdminConfig, Direct, Engine, EngineConfig, Exchange, HeadBuilder, IoUring,
    ListenSpec, Pop, ResponseError, ResponseMsg, StatsSnapshot, WaitToken,
};
use magnus::prelude::*;
use magnus::rb_sys::AsRawValue;
use magnus::value::Lazy;
use magnus::IntoValue;
use magnus::{
    function, method, Error, ExceptionClass, RArray, RHash, RModule, RString, Ruby, Value,
};

/// A class defined under Hyperion::Native by `init`.
fn native_const(ruby: &Ruby, name: &str) -> ExceptionClass {
    ruby.class_object()
        .const_get::<_, RModule>("Hyperion")
        .and_then(|m| m.const_get::<_, RModule>("Native"))
        .and_then(|m| m.const_get(name))
        .expect("defined by init")
}

static INVALID_RESPONSE: Lazy<ExceptionClass> =
    Lazy::new(|ruby| native_const(ruby, "InvalidResponse"));

fn invalid(ruby: &Ruby, e: ResponseError) -> Error {
    Error::new(ruby.get_inner(&INVALID_RESPONSE), e.to_string())
}

fn runtime_error(ruby: &Ruby, msg: impl Into<String>) -> Error {
    Error::new(ruby.exception_runtime_error(), msg.into())
}

// ---------------------------------------------------------------------------------------------
// Engine

#[magnus::wrap(class = "Hyperion::Native::Engine", free_immediately, size)]
struct RbEngine {
    engine: Arc<Engine>,
}

fn opt<T: magnus::TryConvert>(ruby: &Ruby, opts: RHash, name: &str) -> Result<Option<T>, Error> {
    let value: Option<Value> = opts.get(ruby.to_symbol(name));
    match value {
        Some(v) if !v.is_nil() => Ok(Some(T::try_convert(v)?)),
        _ => Ok(None),
    }
}

fn seconds(ruby: &Ruby, opts: RHash, name: &str) -> Result<Option<Duration>, Error> {
    match opt::<f64>(ruby, opts, name)? {
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::new(
            ruby.exception_arg_error(),
            format!("{name} must be >= 0, got {s}"),
        )),
        None => Ok(None),
    }
}

/// `[["tcp", host, port] | ["unix", path] | ["fd", fd], ...]` as the engine's listen specs.
fn listen_specs(ruby: &Ruby, listeners: RArray) -> Result<Vec<ListenSpec>, Error> {
    let mut specs = Vec::with_capacity(listeners.len());
    for entry in listeners.into_iter() {
        let entry = RArray::try_convert(entry)?;
        let kind: String = entry.entry(0)?;
        specs.push(match kind.as_str() {
            "tcp" => ListenSpec::Tcp {
                host: entry.entry(1)?,
                port: entry.entry(2)?,
            },
            "unix" => ListenSpec::Unix {
                path: PathBuf::from(entry.entry::<String>(1)?),
            },
            "fd" => ListenSpec::Fd {
                fd: entry.entry(1)?,
            },
            other => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!("unknown listener kind {other:?}"),
                ))
            }
        });
    }
    Ok(specs)
}

fn describe_spec(spec: &ListenSpec) -> String {
    match spec {
        ListenSpec::Tcp { host, port } => format!("{host}:{port}"),
        ListenSpec::Unix { path } => format!("unix://{}", path.display()),
        ListenSpec::Fd { fd } => format!("descriptor {fd}"),
    }
}

impl RbEngine {
    /// `Engine.start(listeners: [["tcp", host, port] | ["unix", path] | ["fd", fd]],
    /// idle_keepalive:, ...)`; `["fd", fd]` is an already listening socket (the engine
    /// accepts on a duplicate, the caller keeps `fd`). `admin_token:` enables the admin
    /// endpoints, `admin_listeners:` (same form) serves them on listeners of their own, and
    /// `admin_quit_pid:` is the process `/-/quit` sends SIGTERM to (without it the engine
    /// stops itself).
    fn start(ruby: &Ruby, opts: RHash) -> Result<Self, Error> {
        guard(ruby, || {
            let mut config = EngineConfig::default();
            if let Some(d) = seconds(ruby, opts, "idle_keepalive")? {
                config.idle_keepalive = d;
            }
            if let Some(d) = seconds(ruby, opts, "graceful_timeout")? {
                config.graceful_timeout = d;
            }
            if let Some(d) = seconds(ruby, opts, "request_read_timeout")? {
                config.request_read_timeout = d;
            }
            if let Some(n) = opt::<usize>(ruby, opts, "max_pending")? {
                config.max_pending = n.max(1);
            }
            if let Some(n) = opt::<u64>(ruby, opts, "max_body_bytes")? {
                config.limits.max_body_bytes = n;
            }
            if let Some(d) = seconds(ruby, opts, "write_timeout")? {
                config.write_timeout = d;
            }
            if let Some(n) = opt::<usize>(ruby, opts, "max_in_memory_body_bytes")? {
                config.max_in_memory_body_bytes = n;
            }
            if let Some(n) = opt::<usize>(ruby, opts, "max_headers")? {
                config.limits.max_headers = n.max(1);
            }
            if let Some(n) = opt::<usize>(ruby, opts, "max_uri_bytes")? {
                config.limits.max_uri_bytes = n.max(1);
            }
            if let Some(level) = opt::<String>(ruby, opts, "log_level")? {
                config.log.level = log::Level::parse(&level).ok_or_else(|| {
                    Error::new(
                        ruby.exception_arg_error(),
                        format!("unknown log level {level:?}"),
                    )
                })?;
            }
            if let Some(format) = opt::<String>(ruby, opts, "log_format")? {
                config.log.format = match format.as_str() {
                    "text" => log::Format::Text,
                    "json" => log::Format::Json,
                    other => {
                        return Err(Error::new(
                            ruby.exception_arg_error(),
                            format!("unknown log format {other:?}"),
                        ))
                    }
                };
            }
            config.log.access_log = opt::<bool>(ruby, opts, "access_log")?.unwrap_or(false);
            config.log.batch_writer = opt::<bool>(ruby, opts, "batch_log_writer")?.unwrap_or(false);
            config.metrics = Some(metrics::process());
            config.stop_notify_fd = opt::<i32>(ruby, opts, "stop_notify_fd")?;
            config.routes = routes::ROUTES.clone();
            if let Some(mode) = opt::<String>(ruby, opts, "io_uring")? {
                config.io_uring = IoUring::parse(&mode).ok_or_else(|| {
                    Error::new(
                        ruby.exception_arg_error(),
                        format!("io_uring must be off, auto or on, got {mode:?}"),
                    )
                })?;
            }
            if let Some(n) = opt::<usize>(ruby, opts, "max_header_bytes")? {
                config.limits.max_head_bytes = n;
            }
            config.tls = tls::config(ruby, opts)?;
            if let Some(on) = opt::<bool>(ruby, opts, "h2c")? {
                config.h2.h2c = on;
            }
            if let Some(n) = opt::<u32>(ruby, opts, "h2_max_concurrent_streams")? {
                config.h2.max_concurrent_streams = n;
            }
            if let Some(n) = opt::<u32>(ruby, opts, "h2_initial_window_size")? {
                config.h2.initial_window_size = n.min((1 << 31) - 1);
            }
            if let Some(n) = opt::<u32>(ruby, opts, "h2_max_frame_size")? {
                config.h2.max_frame_size = n.clamp(16_384, 16_777_215);
            }
            if let Some(n) = opt::<u32>(ruby, opts, "h2_max_header_list_size")? {
                config.h2.max_header_list_size = n;
            }
            // 0: unbounded.
            if let Some(n) = opt::<usize>(ruby, opts, "h2_max_total_streams")? {
                config.h2.max_total_streams = (n > 0).then_some(n);
            }
            let listeners: RArray = opt(ruby, opts, "listeners")?
                .ok_or_else(|| Error::new(ruby.exception_arg_error(), "listeners: is required"))?;
            let specs = listen_specs(ruby, listeners)?;
            if let Some(token) = opt::<RString>(ruby, opts, "admin_token")? {
                // SAFETY: the bytes are copied before any other Ruby call.
                let mut admin = AdminConfig::new(unsafe { token.as_slice() }.to_vec());
                if admin.token.len() < admin::MIN_TOKEN_LEN {
                    return Err(Error::new(
                        ruby.exception_arg_error(),
                        format!(
                            "admin_token must be at least {} characters",
                            admin::MIN_TOKEN_LEN
                        ),
                    ));
                }
                if let Some(listeners) = opt::<RArray>(ruby, opts, "admin_listeners")? {
                    admin.listen = listen_specs(ruby, listeners)?;
                }
                if let Some(pid) = opt::<i32>(ruby, opts, "admin_quit_pid")? {
                    admin.quit = Some(admin::terminate(pid));
                }
                config.admin = Some(admin);
            }
            let admin_specs: Vec<ListenSpec> = config
                .admin
                .as_ref()
                .map(|a| a.listen.clone())
                .unwrap_or_default();
            let engine = Engine::start(config, &specs).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    return tls::tls_error(ruby, e.to_string());
                }
                if e.kind() == std::io::ErrorKind::Unsupported {
                    return Error::new(ruby.get_inner(&BIND_ERROR), e.to_string());
                }
                let what: Vec<String> = specs
                    .iter()
                    .map(describe_spec)
                    .chain(
                        admin_specs
                            .iter()
                            .map(|s| format!("{} (admin listener)", describe_spec(s))),
                    )
                    .collect();
                Error::new(
                    ruby.get_inner(&BIND_ERROR),
                    format!("cannot listen on {}: {e}", what.join(", ")),
                )
            })?;
            Ok(RbEngine {
                engine: Arc::new(engine),
            })
        })
    }

    /// Blocks (GVL released) until a request is ready: returns the Exchange, nil once the
    /// engine has stopped and the queue is drained, or false when `timeout` seconds (nil =
    /// none) pass first. Thread#kill interrupts the wait. Signals are delivered to the main
    /// thread only when it wakes, so a main thread that must react to traps passes a timeout.
    fn next_exchange(ruby: &Ruby, rb_self: Value, timeout: Option<f64>) -> Result<Value, Error> {
        let rb_self: &Self = typed_of(ruby, rb_self, "not a Hyperion::Native::Engine")?;
        guard(ruby, || {
            let queue = rb_self.engine.queue().clone();
            let token = WaitToken::new();
            let limit = timeout.map(|t| Duration::from_secs_f64(t.max(0.0)));
            loop {
                if let Some(ex) = queue.try_pop() {
                    return Ok(RbExchange::new(ex).into_value_with(ruby));
                }
                let popped =
                    gvl::without_gvl(|| queue.pop(&token, limit), || queue.interrupt(&token));
                match popped {
                    Some(Pop::Exchange(ex)) => return Ok(RbExchange::new(ex).into_value_with(ruby)),
                    Some(Pop::Closed) => return Ok(ruby.qnil().as_value()),
                    Some(Pop::Interrupted) | None => {
                        ruby.thread_check_ints()?;
                        if limit.is_some() {
                            return Ok(ruby.qfalse().as_value());
                        }
                    }
                }
            }
        })
    }

    fn stop(&self) {
        self.engine.stop();
    }

    /// Waits up to `timeout` seconds (nil = forever) for the engine to stop; true if it has.
    /// Pending signal traps run while waiting.
    fn wait(ruby: &Ruby, rb_self: &Self, timeout: Option<f64>) -> Result<bool, Error> {
        guard(ruby, || {
            let engine = rb_self.engine.clone();
            let deadline =
                timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.max(0.0)));
            let token = WaitToken::new();
            loop {
                let remaining =
                    deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                let stopped = gvl::without_gvl(
                    || engine.wait_stopped(&token, remaining),
                    || engine.interrupt_wait(&token),
                );
                if stopped == Some(true) {
                    engine.join();
                    return Ok(true);
                }
                ruby.thread_check_ints()?;
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(false);
                }
            }
        })
    }

    fn is_stopping(&self) -> bool {
        self.engine.is_stopping()
    }

    fn is_stopped(&self) -> bool {
        self.engine.is_stopped()
    }

    fn addresses(&self) -> Vec<String> {
        self.engine.addresses().to_vec()
    }

    fn ports(&self) -> Vec<u16> {
        self.engine.ports().to_vec()
    }

    fn admin_addresses(&self) -> Vec<String> {
        self.engine.admin_addresses().to_vec()
    }

    fn admin_ports(&self) -> Vec<u16> {
        self.engine.admin_ports().to_vec()
    }

    /// `[name, reason]`: the connection loop that runs ("epoll" or "io_uring") and why.
    fn io_loop(&self) -> (String, String) {
        let (name, reason) = self.engine.io_loop();
        (name.to_string(), reason)
    }

    /// Reads the TLS certificate and key again for new handshakes; raises TlsError (and keeps
    /// the pair in use) when they are unusable.
    fn reload_tls(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        rb_self
            .engine
            .reload_tls()
            .map_err(|e| tls::tls_error(ruby, e.to_string()))
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        guard(ruby, || {
            let h = stats_hash(ruby, &rb_self.engine.stats(), rb_self.engine.metrics())?;
            h.aset(ruby.to_symbol("queue_length"), rb_self.engine.queue().len())?;
            let reasons = ruby.hash_new();
            for (reason, count) in rb_self.engine.rejections_by_reason() {
                reasons.aset(ruby.to_symbol(reason), count)?;
            }
            h.aset(ruby.to_symbol("rejections"), reasons)?;
            Ok(h)
        })
    }

    /// The whole server's metrics (every worker) in the Prometheus text format.
    fn metrics_text(&self) -> String {
        self.engine.metrics_text()
    }
}

/// The counters of a metrics slot as a Ruby Hash (what `Hyperion.stats` returns).
fn stats_hash(ruby: &Ruby, s: &StatsSnapshot, m: &metrics::Metrics) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    let counters = [
        ("connections_accepted", s.connections_accepted),
        ("connections_active", s.connections_active),
        ("requests_total", s.requests_total),
        ("requests_in_flight", s.requests_in_flight),
        ("parse_errors", s.parse_errors),
        ("app_errors", s.app_errors),
        ("read_timeouts", s.read_timeouts),
        ("rejected", s.rejected),
        ("bytes_written", s.bytes_written),
        ("dispatch_rack", s.dispatch_rack),
        ("dispatch_static", s.dispatch_static),
        ("dispatch_handler", s.dispatch_handler),
        ("dispatch_page_cache", s.dispatch_page_cache),
        ("dispatch_admin", s.dispatch_admin),
        ("access_log_dropped", s.access_log_dropped),
        ("tls_handshakes", s.tls_handshakes),
        ("tls_handshake_failures", s.tls_handshake_failures),
        ("tls_handshake_timeouts", s.tls_handshake_timeouts),
        ("tls_handshakes_rate_limited", s.tls_handshakes_rate_limited),
        ("h2_connections", s.h2_connections),
        ("h2_streams", s.h2_streams),
        ("h2_streams_refused", s.h2_streams_refused),
        ("h2_streams_reset", s.h2_streams_reset),
        ("h2_protocol_errors", s.h2_protocol_errors),
        ("h2_abuse", s.h2_abuse),
    ];
    for (name, value) in counters {
        h.aset(ruby.to_symbol(name), value)?;
    }
    let responses = ruby.hash_new();
    for (status, count) in m.slot().responses_by_status() {
        responses.aset(status, count)?;
    }
    h.aset(ruby.to_symbol("responses"), responses)?;
    let reasons = ruby.hash_new();
    for (reason, count) in m.reasons() {
        reasons.aset(ruby.to_symbol(reason.as_str()), count)?;
    }
    h.aset(ruby.to_symbol("rejections"), reasons)?;
    let custom = ruby.hash_new();
    for (name, count) in m.customs() {
        custom.aset(ruby.to_symbol(name.as_str()), count)?;
    }
    h.aset(ruby.to_symbol("custom"), custom)?;
    h.aset(ruby.to_symbol("worker_id"), m.slot_index())?;
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// Process-wide metrics (Hyperion::Native.metrics_*)

/// `Native.cpu_scheduling(mode)`: sets the calling thread's scheduling policy for `mode` ("batch" or "normal"; see
/// hyperion_engine::sched) and returns the policy now in effect, by name.
fn cpu_scheduling(ruby: &Ruby, mode: String) -> Result<String, Error> {
    let result = match mode.as_str() {
        "batch" => hyperion_engine::sched::prefer_batch(),
        "normal" => hyperion_engine::sched::prefer_normal(),
        other => {
            return Err(Error::new(
                ruby.exception_arg_error(),
                format!("unknown scheduling mode {other:?}"),
            ))
        }
    };
    result
        .map(|policy| policy.name().to_string())
        .map_err(|e| runtime_error(ruby, format!("cannot set the scheduling policy: {e}")))
}

/// `Native.metrics_setup(slots)`: maps the shared region a cluster master's workers inherit.
fn metrics_setup(ruby: &Ruby, slots: usize) -> Result<(), Error> {
    guard(ruby, || {
        metrics::init_process(slots)
            .map_err(|e| runtime_error(ruby, format!("cannot map the metrics region: {e}")))
    })
}

/// `Native.metrics_slot(index)`: this (forked worker) process writes slot `index`.
fn metrics_slot(ruby: &Ruby, index: usize) -> Result<(), Error> {
    guard(ruby, || {
        metrics::set_process_slot(index);
        Ok(())
    })
}

/// `Native.metrics_text`: every worker's metrics in the Prometheus text format.
fn metrics_text(ruby: &Ruby) -> Result<String, Error> {
    guard(ruby, || Ok(metrics::render_prometheus()))
}

/// `Native.metrics_stats`: this process's counters as a Hash.
fn metrics_stats(ruby: &Ruby) -> Result<RHash, Error> {
    guard(ruby, || {
        let m = metrics::process();
        stats_hash(ruby, &StatsSnapshot::of_slot(m.slot()), &m)
    })
}

/// `Native.metrics_counter_id(name)`: the id of a custom counter (registered cluster-wide on
/// first use); nil when the table of names is full. Bad names raise ArgumentError.
fn metrics_counter_id(ruby: &Ruby, name: String) -> Result<Option<usize>, Error> {
    guard(ruby, || {
        metrics::check_custom_name(&name).map_err(|e| Error::new(ruby.exception_arg_error(), e))?;
        Ok(metrics::process()
            .region()
            .name_id(metrics::NameKind::Custom, &name))
    })
}

/// `Native.metrics_add(id, by)`: adds to a custom counter of this process's slot.
fn metrics_add(ruby: &Ruby, id: usize, by: u64) -> Result<(), Error> {
    guard(ruby, || {
        metrics::process().slot().add_named(id, by);
        Ok(())
    })
}

/// Adds a Rack headers Hash to `head`: String values, or Arrays of Strings (one line each);
/// `rack.*` keys are the server's business and skipped. Returns whether a `rack.hijack` field
/// (a partial hijack) was among them.
pub(crate) fn add_headers(
    ruby: &Ruby,
    head: &mut HeadBuilder,
    headers: RHash,
) -> Result<bool, Error> {
    let mut hijack = false;
    let mut failure: Option<Error> = None;
    headers.foreach(|name: Value, value: Value| {
        let Some(name) = RString::from_value(name) else {
            failure = Some(invalid(
                ruby,
                ResponseError::InvalidHeaderName(format!("{name:?}")),
            ));
            return Ok(magnus::r_hash::ForEach::Stop);
        };
        // SAFETY: the bytes are copied into the head before any Ruby code can run.
        let name_bytes = unsafe { name.as_slice() };
        if name_bytes.starts_with(b"rack.") {
            hijack |= name_bytes == b"rack.hijack";
            return Ok(magnus::r_hash::ForEach::Continue);
        }
        let result = if let Some(value) = RString::from_value(value) {
            // SAFETY: as above.
            head.header(name_bytes, unsafe { value.as_slice() })
        } else if let Some(values) = RArray::from_value(value) {
            let mut r = Ok(());
            for v in values.into_iter() {
                match RString::from_value(v) {
                    // SAFETY: as above.
                    Some(v) => r = head.header(name_bytes, unsafe { v.as_slice() }),
                    None => {
                        r = Err(ResponseError::InvalidHeaderValue(
                            String::from_utf8_lossy(name_bytes).into(),
                        ))
                    }
                }
                if r.is_err() {
                    break;
                }
            }
            r
        } else {
            Err(ResponseError::InvalidHeaderValue(
                String::from_utf8_lossy(name_bytes).into(),
            ))
        };
        match result {
            Ok(()) => Ok(magnus::r_hash::ForEach::Continue),
            Err(e) => {
                failure = Some(invalid(ruby, e));
                Ok(magnus::r_hash::ForEach::Stop)
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(hijack),
    }
}

/// Files up to this size are read and sent together with the head in one write.
const SMALL_FILE: u64 = 64 * 1024;

static BIND_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| native_const(ruby, "BindError"));

// ---------------------------------------------------------------------------------------------
// Exchange

#[derive(magnus::TypedData)]
#[magnus(
    class = "Hyperion::Native::Exchange",
    free_immediately,
    wb_protected,
    size,
    mark
)]
struct RbExchange {
    inner: RefCell<Option<Box<Exchange>>>,
    /// Set when the adapter asked to learn when the response is on the wire.
    written: RefCell<Option<std::sync::mpsc::Receiver<bool>>>,
    /// The application took the socket with `rack.hijack` (a full hijack).
    hijacked: Cell<bool>,
    /// The env's `rack.input` when it is a file or a stream that must be closed after the
    /// response (the one the env was built with, whatever the app put there since).
    input_to_close: Cell<Option<magnus::value::Opaque<Value>>>,
}

impl magnus::DataTypeFunctions for RbExchange {
    fn mark(&self, marker: &magnus::gc::Marker) {
        if let Some(input) = self.input_to_close.get() {
            marker.mark(input);
        }
    }
}

/// The exchange behind `value`. Converting `self` for a method is magnus's protected call
/// around `rb_check_typeddata` (about 200 instructions); the methods every request calls find
/// it with a check that cannot raise instead.
fn exchange_of<'a>(ruby: &Ruby, value: Value) -> Result<&'a RbExchange, Error> {
    typed_of(ruby, value, "not a Hyperion::Native::Exchange")
}

/// The Rust data behind `value`, an object of `T`'s class, found without magnus's protected
/// conversion.
fn typed_of<'a, T: magnus::TypedData>(
    ruby: &Ruby,
    value: Value,
    wrong_type: &'static str,
) -> Result<&'a T, Error> {
    let data_type = T::data_type();
    // `DataType` is a transparent wrapper of `rb_data_type_t`.
    let raw = (data_type as *const magnus::DataType).cast::<rb_sys::rb_data_type_t>();
    // SAFETY: GVL held (a method call). `rb_check_typeddata` raises only for an object of
    // another type, ruled out just before; the data lives as long as `value`, which the
    // caller's frame holds.
    unsafe {
        if rb_sys::rb_typeddata_is_kind_of(value.as_raw(), raw) == 0 {
            return Err(Error::new(ruby.exception_type_error(), wrong_type));
        }
        Ok(&*(rb_sys::rb_check_typeddata(value.as_raw(), raw) as *const T))
    }
}

impl RbExchange {
    fn new(ex: Box<Exchange>) -> Self {
        RbExchange {
            inner: RefCell::new(Some(ex)),
            written: RefCell::new(None),
            hijacked: Cell::new(false),
            input_to_close: Cell::new(None),
        }
    }

    fn with<R>(
        &self,
        ruby: &Ruby,
        f: impl FnOnce(&mut Exchange) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut guard = self
            .inner
            .try_borrow_mut()
            .map_err(|_| runtime_error(ruby, "exchange is in use by another call"))?;
        match guard.as_mut() {
            Some(ex) => f(ex),
            None => Err(runtime_error(ruby, "exchange already completed")),
        }
    }

    /// The env, with `rack.early_hints` and, when `hijack` allows it (not TLS) and the
    /// exchange is not an HTTP/2 stream, `rack.hijack`.
    fn build_env(
        ruby: &Ruby,
        rb_self: Value,
        templates: RArray,
        logger: Value,
        hijack: bool,
    ) -> Result<RHash, Error> {
        let exchange = rb_self.as_raw();
        let rb_self = exchange_of(ruby, rb_self)?;
        guard(ruby, || {
            let (env, input_to_close) = rb_self.with(ruby, |ex| {
                let callables = env::Callables {
                    exchange,
                    logger: logger.as_raw(),
                    // Neither an HTTP/2 stream nor a TLS connection can hand its socket over.
                    hijack: hijack && !ex.is_h2(),
                };
                env::build(ruby, ex, templates, &callables)
            })?;
            if let Some(input) = input_to_close {
                // The exchange is write-barrier protected: a reference stored after its
                // creation is announced to the collector.
                // SAFETY: GVL held; both are live objects.
                unsafe { rb_sys::rb_gc_writebarrier(exchange, input.as_raw()) };
            }
            rb_self.input_to_close.set(input_to_close.map(Into::into));
            Ok(env)
        })
    }

    /// The env's original `rack.input` when it must be closed after the response (a file or
    /// a stream), else nil.
    fn input_to_close(ruby: &Ruby, rb_self: Value) -> Result<Value, Error> {
        Ok(exchange_of(ruby, rb_self)?
            .input_to_close
            .get()
            .map_or_else(|| ruby.qnil().as_value(), |input| ruby.get_inner(input)))
    }

    fn is_hijacked(ruby: &Ruby, rb_self: Value) -> Result<bool, Error> {
        Ok(exchange_of(ruby, rb_self)?.hijacked.get())
    }

    /// The usual Rack response in one call: an Integer status, a Hash of headers without
    /// `rack.hijack`, a plain Array body, no `rack.response_finished` callbacks and no input
    /// to close. Sends it like #respond and returns true; returns false, having done nothing,
    /// for any other response (the adapter then takes its general path).
    fn serve_array(
        ruby: &Ruby,
        rb_self: Value,
        env: RHash,
        status: Value,
        headers: Value,
        body: Value,
    ) -> Result<bool, Error> {
        let rb_self = exchange_of(ruby, rb_self)?;
        if rb_self.hijacked.get() || rb_self.input_to_close.get().is_some() {
            return Ok(false);
        }
        let (Some(status), Some(headers), Some(body)) = (
            magnus::Fixnum::from_value(status),
            RHash::from_value(headers),
            RArray::from_value(body),
        ) else {
            return Ok(false);
        };
        // SAFETY: GVL held; `body` is a live Array.
        let plain = unsafe { rb_sys::rb_obj_class(body.as_raw()) == rb_sys::rb_cArray };
        if !plain || env::has_finish_callbacks(env) {
            return Ok(false);
        }
        let (head, hijack_header) = guard(ruby, || {
            Self::head_noting_hijack(ruby, rb_self, status.to_i64(), headers)
        })?;
        if hijack_header {
            return Ok(false);
        }
        Self::respond_with(ruby, rb_self, head, body)?;
        Ok(true)
    }

    fn is_h2(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        rb_self.with(ruby, |ex| Ok(ex.is_h2()))
    }

    fn is_head(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        rb_self.with(ruby, |ex| Ok(ex.response.is_head_request()))
    }

    fn is_started(&self) -> bool {
        match self.inner.try_borrow() {
            Ok(guard) => guard.as_ref().is_none_or(|ex| ex.response.is_started()),
            Err(_) => true,
        }
    }

    /// Sends `msg`; when the connection's buffer is full, waits for room with the GVL
    /// released. Returns false if the client is gone.
    fn send(&self, ruby: &Ruby, msg: ResponseMsg) -> Result<bool, Error> {
        let pending = self.with(ruby, |ex| match ex.response.try_send(msg) {
            Ok(()) => Ok(None),
            Err(Ok(msg)) => Ok(Some((ex.response.sender(), msg))),
            Err(Err(_)) => Ok(Some((ex.response.sender(), ResponseMsg::Abort))),
        })?;
        match pending {
            None => Ok(true),
            Some((_, ResponseMsg::Abort)) => Ok(false),
            Some((sender, msg)) => {
                // No unblocking function can cut a channel send short; the connection task
                // always makes progress or drops the channel, which ends the wait.
                let sent = gvl::without_gvl(move || sender.send_blocking(msg), || {});
                Ok(matches!(sent, Some(Ok(()))))
            }
        }
    }

    fn head_from(
        ruby: &Ruby,
        rb_self: &Self,
        status: i64,
        headers: RHash,
    ) -> Result<HeadBuilder, Error> {
        Ok(Self::head_noting_hijack(ruby, rb_self, status, headers)?.0)
    }

    /// The head, in the form the exchange's protocol sends, and whether the headers hold
    /// `rack.hijack` (a partial hijack).
    fn head_noting_hijack(
        ruby: &Ruby,
        rb_self: &Self,
        status: i64,
        headers: RHash,
    ) -> Result<(HeadBuilder, bool), Error> {
        // A completed exchange refuses the response that follows; any form does until then.
        let made = rb_self
            .with(ruby, |ex| Ok(ex.response.new_head(status, 256)))
            .unwrap_or_else(|_| HeadBuilder::new(status, 256));
        let mut head = made.map_err(|e| invalid(ruby, e))?;
        let hijack = add_headers(ruby, &mut head, headers)?;
        Ok((head, hijack))
    }

    /// The whole response at once: an Array body becomes one write with the head.
    fn respond(
        ruby: &Ruby,
        rb_self: &Self,
        status: i64,
        headers: RHash,
        body: RArray,
    ) -> Result<bool, Error> {
        let head = guard(ruby, || Self::head_from(ruby, rb_self, status, headers))?;
        Self::respond_with(ruby, rb_self, head, body)
    }

    fn respond_with(
        ruby: &Ruby,
        rb_self: &Self,
        head: HeadBuilder,
        body: RArray,
    ) -> Result<bool, Error> {
        guard(ruby, || {
            // SAFETY: no Ruby code runs while the slice is in use.
            let parts = unsafe { body.as_slice() };
            let mut total: u64 = 0;
            for part in parts {
                match RString::from_value(*part) {
                    Some(s) => total += s.len() as u64,
                    None => {
                        return Err(Error::new(
                            ruby.exception_type_error(),
                            format!("response body element is not a String: {}", part.inspect()),
                        ))
                    }
                }
            }
            let msg = rb_self.with(ruby, |ex| {
                ex.response
                    .encode_full(head, total, |buf| {
                        for part in parts {
                            // SAFETY: checked to be Strings above; the GVL is held.
                            buf.extend_from_slice(unsafe {
                                RString::from_value(*part).unwrap_unchecked().as_slice()
                            });
                        }
                    })
                    .map_err(|e| invalid(ruby, e))
            })?;
            let sent = rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(sent)
        })
    }

    /// Starts a streamed response (the body is written with #write, ended with #finish).
    fn start(ruby: &Ruby, rb_self: &Self, status: i64, headers: RHash) -> Result<bool, Error> {
        guard(ruby, || {
            let head = Self::head_from(ruby, rb_self, status, headers)?;
            let msg = rb_self.with(ruby, |ex| {
                ex.response
                    .encode_stream_head(head)
                    .map_err(|e| invalid(ruby, e))
            })?;
            rb_self.send(ruby, msg)
        })
    }

    /// Writes one body chunk; false once the client is gone.
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RString) -> Result<bool, Error> {
        guard(ruby, || {
            // SAFETY: copied before any Ruby code runs.
            let msg = rb_self.with(ruby, |ex| {
                ex.response
                    .encode_chunk(unsafe { chunk.as_slice() })
                    .map_err(|e| invalid(ruby, e))
            })?;
            match msg {
                Some(msg) => rb_self.send(ruby, msg),
                None => Ok(true),
            }
        })
    }

    fn finish(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, || {
            let msg = rb_self.with(ruby, |ex| {
                ex.response.encode_end().map_err(|e| invalid(ruby, e))
            })?;
            let sent = rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(sent)
        })
    }

    /// Ends a streamed response with the body's trailers (a Hash of String values): trailing
    /// HEADERS on HTTP/2, the chunked trailer section on HTTP/1.1.
    fn finish_trailers(ruby: &Ruby, rb_self: &Self, trailers: RHash) -> Result<bool, Error> {
        guard(ruby, || {
            let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            trailers.foreach(|name: RString, value: RString| {
                // SAFETY: copied before any Ruby code runs.
                unsafe { fields.push((name.as_slice().to_vec(), value.as_slice().to_vec())) };
                Ok(magnus::r_hash::ForEach::Continue)
            })?;
            let map = hyperion_engine::trailer_map(&fields).map_err(|e| invalid(ruby, e))?;
            let msg = rb_self.with(ruby, |ex| {
                ex.response
                    .encode_end_with_trailers(map)
                    .map_err(|e| invalid(ruby, e))
            })?;
            let sent = rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(sent)
        })
    }

    /// The app failed: answer 500 if nothing was sent yet, otherwise cut the connection (a
    /// half-sent response cannot be repaired).
    fn fail(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, || {
            if rb_self.is_completed() {
                return Ok(false);
            }
            let msg = rb_self.with(ruby, |ex| {
                if ex.response.is_started() {
                    return Ok(ex.response.abort_msg());
                }
                let mut head = HeadBuilder::new(500, 128).map_err(|e| invalid(ruby, e))?;
                head.header(b"content-type", b"text/plain; charset=utf-8")
                    .map_err(|e| invalid(ruby, e))?;
                let body = b"Internal Server Error\n";
                ex.response
                    .encode_full(head, body.len() as u64, |buf| buf.extend_from_slice(body))
                    .map_err(|e| invalid(ruby, e))
            })?;
            metrics::process()
                .slot()
                .app_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(sent)
        })
    }

    /// Closes the connection without completing the response.
    fn abort(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        guard(ruby, || {
            if rb_self.is_completed() {
                return Ok(());
            }
            let msg = rb_self.with(ruby, |ex| Ok(ex.response.abort_msg()))?;
            rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(())
        })
    }

    /// Sends a 103 Early Hints response with `headers` (validated like any response header)
    /// ahead of the real response. Returns false when it cannot be sent: HTTP/1.0 client, or
    /// the response has started.
    fn early_hints(ruby: &Ruby, rb_self: &Self, headers: RHash) -> Result<bool, Error> {
        guard(ruby, || {
            let head = Self::head_from(ruby, rb_self, 103, headers)?;
            let msg = rb_self.with(ruby, |ex| Ok(ex.response.encode_informational(head)))?;
            match msg {
                Some(msg) => rb_self.send(ruby, msg),
                None => Ok(false),
            }
        })
    }

    /// Takes the socket over (Rack full hijack): `[fd, buffered, unix]` with the descriptor
    /// (blocking, now owned by the caller), the bytes already read past the request, and
    /// whether it is a Unix-domain socket. Raises if the connection is gone.
    fn hijack(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        guard(ruby, || {
            let socket = rb_self.take_socket(ruby)?;
            rb_self.hijacked.set(true);
            Ok(socket)
        })
    }

    /// Partial hijack: writes the head (status and headers as given, no body framing), then
    /// hands the socket over like #hijack.
    fn upgrade(ruby: &Ruby, rb_self: &Self, status: i64, headers: RHash) -> Result<RArray, Error> {
        guard(ruby, || {
            let head = Self::head_from(ruby, rb_self, status, headers)?;
            let msg = rb_self.with(ruby, |ex| {
                ex.response
                    .encode_upgrade_head(head)
                    .map_err(|e| invalid(ruby, e))
            })?;
            if !rb_self.send(ruby, msg)? {
                return Err(Error::new(
                    ruby.exception_io_error(),
                    "client disconnected before the upgrade",
                ));
            }
            rb_self.take_socket(ruby)
        })
    }

    fn take_socket(&self, ruby: &Ruby) -> Result<RArray, Error> {
        let (msg, rx, unix) = self.with(ruby, |ex| {
            let (msg, rx) = ex.response.hijack().map_err(|e| invalid(ruby, e))?;
            Ok((msg, rx, ex.peer == hyperion_engine::Peer::Unix))
        })?;
        let sent = self.send(ruby, msg)?;
        self.release();
        let got = if sent {
            gvl::without_gvl(move || rx.recv().ok(), || {}).flatten()
        } else {
            None
        };
        let Some(got) = got else {
            return Err(Error::new(
                ruby.exception_io_error(),
                "client disconnected before the hijack",
            ));
        };
        let fd = std::os::fd::IntoRawFd::into_raw_fd(got.fd);
        let out = ruby.ary_new_capa(3);
        out.push(fd)?;
        out.push(ruby.str_from_slice(&got.buffered))?;
        out.push(unix)?;
        Ok(out)
    }

    /// A body that is a file on disk: up to 64 KiB it is read and sent with the head in one
    /// write; larger, the I/O thread sends it with sendfile. Returns nil (nothing sent) when
    /// the path is not a regular file or the app declared a different content-length (a
    /// range, say): the caller then streams the body itself.
    fn send_file(
        ruby: &Ruby,
        rb_self: &Self,
        status: i64,
        headers: RHash,
        path: RString,
    ) -> Result<Option<bool>, Error> {
        guard(ruby, || {
            let head = Self::head_from(ruby, rb_self, status, headers)?;
            let path = PathBuf::from(path.to_string()?);
            let Ok(mut file) = std::fs::File::open(&path) else {
                return Ok(None);
            };
            let len = match file.metadata() {
                Ok(meta) if meta.is_file() => meta.len(),
                _ => return Ok(None),
            };
            if head
                .content_length()
                .is_some_and(|declared| declared != len)
            {
                return Ok(None);
            }
            let msg = if len <= SMALL_FILE {
                let mut bytes = Vec::with_capacity(len as usize);
                if std::io::Read::read_to_end(&mut file, &mut bytes).is_err()
                    || bytes.len() as u64 != len
                {
                    return Ok(None);
                }
                rb_self.with(ruby, |ex| {
                    ex.response
                        .encode_full(head, len, |buf| buf.extend_from_slice(&bytes))
                        .map_err(|e| invalid(ruby, e))
                })?
            } else {
                rb_self.with(ruby, |ex| {
                    ex.response
                        .encode_file(head, file, len)
                        .map_err(|e| invalid(ruby, e))
                })?
            };
            let sent = rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(Some(sent))
        })
    }

    /// Asks to be told when the response is completely written; see #wait_written.
    fn request_written_notice(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        let rx = rb_self.with(ruby, |ex| Ok(ex.response.request_written_notice()))?;
        *rb_self.written.borrow_mut() = Some(rx);
        Ok(())
    }

    /// Waits (GVL released) until the response requested with #request_written_notice has
    /// been written: true, or false if it failed (client gone, connection aborted).
    /// nil when no notice was requested.
    fn wait_written(ruby: &Ruby, rb_self: &Self) -> Result<Option<bool>, Error> {
        guard(ruby, || {
            let Some(rx) = rb_self.written.borrow_mut().take() else {
                return Ok(None);
            };
            let got = gvl::without_gvl(move || rx.recv().ok(), || {}).flatten();
            Ok(Some(got == Some(true)))
        })
    }

    /// nil for the Rack app, the handler id of a `handle` route, or :static for a static
    /// route observed by request hooks.
    fn direct(ruby: &Ruby, rb_self: Value) -> Result<Value, Error> {
        exchange_of(ruby, rb_self)?.with(ruby, |ex| {
            Ok(match &ex.direct {
                Direct::None => ruby.qnil().as_value(),
                Direct::Handler(id) => id.into_value_with(ruby),
                Direct::Static { .. } => ruby.to_symbol("static").as_value(),
            })
        })
    }

    /// Answers an observed static route with its prebuilt response; returns its status.
    fn respond_static(ruby: &Ruby, rb_self: &Self) -> Result<u16, Error> {
        guard(ruby, || {
            let msg = rb_self.with(ruby, |ex| {
                let Direct::Static {
                    response,
                    head_only,
                } = ex.direct.clone()
                else {
                    return Err(runtime_error(ruby, "not a static route"));
                };
                let msg = ex
                    .response
                    .encode_static(&response, head_only)
                    .map_err(|e| invalid(ruby, e))?;
                Ok((msg, response.status()))
            })?;
            let (msg, status) = msg;
            rb_self.send(ruby, msg)?;
            rb_self.release();
            Ok(status)
        })
    }

    /// The request as plain values, for `Hyperion::Request`: [method, path, query_string,
    /// http_version, headers (lowercase name => value, repeats joined with ", "), body].
    fn request_parts(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        guard(ruby, || {
            rb_self.with(ruby, |ex| {
                let buf = &ex.head_bytes[..];
                let head = &ex.head;
                let out = ruby.ary_new_capa(6);
                out.push(ruby.str_from_slice(head.method.slice(buf)))?;
                let path = head.path.slice(buf);
                out.push(ruby.str_from_slice(if path.is_empty() { b"/" } else { path }))?;
                out.push(ruby.str_from_slice(head.query.slice(buf)))?;
                out.push(match head.version {
                    _ if ex.is_h2() => "HTTP/2",
                    hyperion_http::Version::Http11 => "HTTP/1.1",
                    hyperion_http::Version::Http10 => "HTTP/1.0",
                })?;
                let headers = ruby.hash_new();
                for h in &head.headers {
                    let name = h.name.slice(buf).to_ascii_lowercase();
                    let value = h.value.slice(buf);
                    let key = ruby.str_from_slice(&name);
                    match headers.get(key) {
                        Some(existing) => {
                            let existing = RString::try_convert(existing)?;
                            existing.cat(b", ");
                            existing.cat(value);
                        }
                        None => headers.aset(key, ruby.str_from_slice(value))?,
                    }
                }
                out.push(headers)?;
                let body = match &mut ex.body {
                    hyperion_engine::Body::Memory(bytes) => ruby.str_from_slice(bytes),
                    hyperion_engine::Body::File { file, len } => {
                        let mut bytes = Vec::with_capacity(*len as usize);
                        std::io::Read::read_to_end(file, &mut bytes)
                            .map_err(|e| Error::new(ruby.exception_io_error(), e.to_string()))?;
                        ruby.str_from_slice(&bytes)
                    }
                    // Still arriving: only `rack.input` reads it, as it comes.
                    hyperion_engine::Body::Stream(_) => ruby.str_new(""),
                };
                out.push(body)?;
                Ok(out)
            })
        })
    }

    /// The response is complete (or the socket was handed over) and the request freed.
    fn is_completed(&self) -> bool {
        self.inner.try_borrow().is_ok_and(|guard| guard.is_none())
    }

    /// Frees the request (head and body) as soon as the response is complete.
    fn release(&self) {
        if let Ok(mut guard) = self.inner.try_borrow_mut() {
            if guard.as_ref().is_some_and(|ex| ex.response.is_done()) {
                *guard = None;
            }
        }
    }
}

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    env::init();
    let hyperion = ruby.define_module("Hyperion")?;
    let native = hyperion.define_module("Native")?;
    native.define_error("InvalidResponse", ruby.exception_arg_error())?;
    native.define_error("BindError", ruby.exception_runtime_error())?;
    native.define_error("InternalError", ruby.exception_runtime_error())?;

    let engine = native.define_class("Engine", ruby.class_object())?;
    engine.define_singleton_method("start", function!(RbEngine::start, 1))?;
    engine.define_method("next_exchange", method!(RbEngine::next_exchange, 1))?;
    engine.define_method("stop", method!(RbEngine::stop, 0))?;
    engine.define_method("wait", method!(RbEngine::wait, 1))?;
    engine.define_method("stopping?", method!(RbEngine::is_stopping, 0))?;
    engine.define_method("stopped?", method!(RbEngine::is_stopped, 0))?;
    engine.define_method("addresses", method!(RbEngine::addresses, 0))?;
    engine.define_method("ports", method!(RbEngine::ports, 0))?;
    engine.define_method("admin_addresses", method!(RbEngine::admin_addresses, 0))?;
    engine.define_method("admin_ports", method!(RbEngine::admin_ports, 0))?;
    engine.define_method("io_loop", method!(RbEngine::io_loop, 0))?;
    engine.define_method("stats", method!(RbEngine::stats, 0))?;
    engine.define_method("metrics_text", method!(RbEngine::metrics_text, 0))?;
    engine.define_method("reload_tls", method!(RbEngine::reload_tls, 0))?;
    tls::init(ruby, native)?;
    input::init(ruby, native)?;

    env::define_callables(ruby, native)?;
    let exchange = native.define_class("Exchange", ruby.class_object())?;
    exchange.define_method("build_env", method!(RbExchange::build_env, 3))?;
    exchange.define_method("hijacked?", method!(RbExchange::is_hijacked, 0))?;
    exchange.define_method("input_to_close", method!(RbExchange::input_to_close, 0))?;
    exchange.define_method("serve_array", method!(RbExchange::serve_array, 4))?;
    exchange.define_method("head?", method!(RbExchange::is_head, 0))?;
    exchange.define_method("h2?", method!(RbExchange::is_h2, 0))?;
    exchange.define_method("finish_trailers", method!(RbExchange::finish_trailers, 1))?;
    exchange.define_method("started?", method!(RbExchange::is_started, 0))?;
    exchange.define_method("respond", method!(RbExchange::respond, 3))?;
    exchange.define_method("start", method!(RbExchange::start, 2))?;
    exchange.define_method("write", method!(RbExchange::write, 1))?;
    exchange.define_method("finish", method!(RbExchange::finish, 0))?;
    exchange.define_method("fail", method!(RbExchange::fail, 0))?;
    exchange.define_method("abort", method!(RbExchange::abort, 0))?;
    exchange.define_method("early_hints", method!(RbExchange::early_hints, 1))?;
    exchange.define_method("hijack", method!(RbExchange::hijack, 0))?;
    exchange.define_method("upgrade", method!(RbExchange::upgrade, 2))?;
    exchange.define_method("send_file", method!(RbExchange::send_file, 3))?;
    exchange.define_method(
        "request_written_notice",
        method!(RbExchange::request_written_notice, 0),
    )?;
    exchange.define_method("wait_written", method!(RbExchange::wait_written, 0))?;
    exchange.define_method("direct", method!(RbExchange::direct, 0))?;
    exchange.define_method("respond_static", method!(RbExchange::respond_static, 0))?;
    exchange.define_method("request_parts", method!(RbExchange::request_parts, 0))?;

    native.define_singleton_method("add_static_route", function!(routes::add_static_route, 5))?;
    native.define_singleton_method("add_handler_route", function!(routes::add_handler_route, 3))?;
    native.define_singleton_method(
        "add_page_cache_file",
        function!(routes::add_page_cache_file, 4),
    )?;
    native.define_singleton_method("env_templates", function!(env::env_templates, 1))?;
    native.define_singleton_method("observe_routes", function!(routes::observe_routes, 1))?;
    native.define_singleton_method("cpu_scheduling", function!(cpu_scheduling, 1))?;
    native.define_singleton_method("metrics_setup", function!(metrics_setup, 1))?;
    native.define_singleton_method("metrics_slot", function!(metrics_slot, 1))?;
    native.define_singleton_method("metrics_text", function!(metrics_text, 0))?;
    native.define_singleton_method("metrics_stats", function!(metrics_stats, 0))?;
    native.define_singleton_method("metrics_counter_id", function!(metrics_counter_id, 1))?;
    native.define_singleton_method("metrics_add", function!(metrics_add, 2))?;
    Ok(())
}

/// Runs a method body so that a Rust panic becomes a Ruby exception the caller can rescue
/// (the request fails, the server lives on) instead of Ruby's `fatal`, which would end the
/// process.
fn guard<T>(ruby: &Ruby, body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::new(
                ruby.get_inner(&INTERNAL_ERROR),
                format!("internal error in the native extension: {detail}"),
            ))
        }
    }
}

static INTERNAL_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| native_const(ruby, "InternalError"));
