//! TLS settings from Ruby: the engine's `tls_*` options, the session-ticket generation a
//! cluster master shares with its workers, and checking a certificate pair at boot.

use std::sync::Arc;

use hyperion_engine::tls::{load_certified_key, TICKET_SECRET_LEN};
use hyperion_engine::{TicketGeneration, TlsConfig};
use magnus::value::Lazy;
use magnus::{typed_data::Obj, Error, ExceptionClass, RHash, RString, Ruby};

pub(crate) static TLS_ERROR: Lazy<ExceptionClass> =
    Lazy::new(|ruby| crate::native_const(ruby, "TlsError"));

pub(crate) fn tls_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.get_inner(&TLS_ERROR), message.into())
}

/// `Hyperion::Native::TicketGeneration`: which session-ticket key is current, in memory
/// shared with every process forked after it was created.
#[magnus::wrap(class = "Hyperion::Native::TicketGeneration", free_immediately, size)]
pub(crate) struct RbTicketGeneration(Arc<TicketGeneration>);

impl RbTicketGeneration {
    fn new(ruby: &Ruby) -> Result<Self, Error> {
        TicketGeneration::shared()
            .map(|g| RbTicketGeneration(Arc::new(g)))
            .map_err(|e| tls_error(ruby, format!("cannot map the ticket generation: {e}")))
    }

    /// Makes the next ticket key current; returns its generation.
    fn bump(&self) -> u64 {
        self.0.bump()
    }

    fn current(&self) -> u64 {
        self.0.current()
    }
}

/// The engine's TLS settings, when `tls_cert` is given.
pub(crate) fn config(ruby: &Ruby, opts: RHash) -> Result<Option<TlsConfig>, Error> {
    let Some(cert) = crate::opt::<String>(ruby, opts, "tls_cert")? else {
        return Ok(None);
    };
    let key = crate::opt::<String>(ruby, opts, "tls_key")?.ok_or_else(|| {
        Error::new(
            ruby.exception_arg_error(),
            "tls_key: is required with tls_cert:",
        )
    })?;
    let mut tls = TlsConfig::new(cert, key);
    if let Some(secret) = crate::opt::<RString>(ruby, opts, "tls_ticket_secret")? {
        // SAFETY: copied before any Ruby code runs.
        let bytes = unsafe { secret.as_slice() };
        tls.ticket_secret = Some(bytes.try_into().map_err(|_| {
            Error::new(
                ruby.exception_arg_error(),
                format!("tls_ticket_secret must be {TICKET_SECRET_LEN} bytes"),
            )
        })?);
    }
    if let Some(generation) =
        crate::opt::<Obj<RbTicketGeneration>>(ruby, opts, "tls_ticket_generation")?
    {
        tls.ticket_generation = Some(generation.0.clone());
    }
    if let Some(d) = crate::seconds(ruby, opts, "tls_handshake_timeout")? {
        tls.handshake_timeout = d;
    }
    if let Some(n) = crate::opt::<u32>(ruby, opts, "tls_handshake_rate_limit")? {
        tls.handshake_rate_limit = Some(n.max(1));
    }
    Ok(Some(tls))
}

/// `Hyperion::Native.check_tls(cert_path, key_path)`: raises TlsError saying what is wrong
/// with the pair, so a cluster master refuses to boot before forking workers that would fail.
fn check_tls(ruby: &Ruby, cert: String, key: String) -> Result<(), Error> {
    load_certified_key(cert.as_ref(), key.as_ref())
        .map(|_| ())
        .map_err(|e| tls_error(ruby, e.0))
}

pub(crate) fn init(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
    use magnus::{function, method, Module, Object};
    native.define_error("TlsError", ruby.exception_runtime_error())?;
    let generation = native.define_class("TicketGeneration", ruby.class_object())?;
    generation.define_singleton_method("new", function!(RbTicketGeneration::new, 0))?;
    generation.define_method("bump", method!(RbTicketGeneration::bump, 0))?;
    generation.define_method("current", method!(RbTicketGeneration::current, 0))?;
    native.define_singleton_method("check_tls", function!(check_tls, 2))?;
    Ok(())
}
