//! TLS (rustls with the ring provider): the certificate store that can be reloaded while
//! serving, the session-ticket keys shared by every process of a cluster, and the handshake
//! that turns an accepted socket into an encrypted connection.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::conn::{Connection, Socket};
use crate::engine::Shared;
use crate::exchange::{ListenerInfo, Peer};
use crate::log::RateLimit;
use crate::stats::bump;

/// The application protocols offered in ALPN, most preferred first (see [`serve`]).
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Lifetime announced to clients for a session ticket. Tickets really stop resuming when the
/// key generation that issued them is two rotations old (USR2), so rotate more often than
/// this, e.g. daily.
const TICKET_LIFETIME_SECS: u32 = 24 * 60 * 60;

/// How many random bytes a ticket secret has.
pub const TICKET_SECRET_LEN: usize = 32;

/// TLS settings, given once at start.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_path: PathBuf,
    /// Secret the session-ticket keys are derived from; every process that shares it (and
    /// `ticket_generation`) resumes the others' sessions. `None`: a random one.
    pub ticket_secret: Option<[u8; TICKET_SECRET_LEN]>,
    /// Which ticket key is current; `None`: a private one starting at 0.
    pub ticket_generation: Option<Arc<TicketGeneration>>,
    /// A handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes started per second on this engine; past it, new connections are closed.
    pub handshake_rate_limit: Option<u32>,
}

impl TlsConfig {
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            ticket_secret: None,
            ticket_generation: None,
            handshake_timeout: Duration::from_secs(10),
            handshake_rate_limit: None,
        }
    }
}

/// A certificate or key that cannot be used; the message names the file and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.0)
    }
}

/// The crypto provider: ring, with its defaults, which are all AEAD suites with ECDHE key
/// exchange (rustls implements nothing weaker).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its private key.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    load_with(cert_path, key_path, &provider())
}

fn load_with(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(|e| {
        TlsError(format!(
            "cannot read TLS certificate {}: {e}",
            cert_path.display()
        ))
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "cannot parse TLS certificate {}: {e}",
                cert_path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "no PEM certificate (BEGIN CERTIFICATE) in {}",
            cert_path.display()
        )));
    }
    let key_pem = std::fs::read(key_path).map_err(|e| {
        TlsError(format!(
            "cannot read TLS private key {}: {e}",
            key_path.display()
        ))
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "no usable private key in {} (expected an unencrypted PKCS#8, PKCS#1 RSA or SEC1 EC PEM key): {e}",
            key_path.display()
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError(format!(
            "the private key {} does not belong to the certificate {}",
            key_path.display(),
            cert_path.display()
        )),
        e => TlsError(format!(
            "cannot use TLS key {} with certificate {}: {e}",
            key_path.display(),
            cert_path.display()
        )),
    })
}

/// The certificate every handshake gets; replaced whole on reload, so a handshake sees either
/// the old pair or the new one.
#[derive(Debug)]
struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The current session-ticket key generation, in memory shared by every process forked after
/// it was created: a cluster master creates it before forking, bumps it on USR2, and each
/// worker reads it on every ticket it issues or opens. A worker forked at any moment therefore
/// uses the current generation, with no message to miss.
pub struct TicketGeneration {
    cell: NonNull<AtomicU64>,
    shared: bool,
}

// SAFETY: the cell is an AtomicU64 that lives as long as this value and is only accessed
// atomically.
unsafe impl Send for TicketGeneration {}
// SAFETY: as above.
unsafe impl Sync for TicketGeneration {}

impl TicketGeneration {
    /// A counter in an anonymous shared mapping, inherited by child processes.
    pub fn shared() -> io::Result<TicketGeneration> {
        // SAFETY: a fresh anonymous mapping of one page; the kernel zero-fills it and page
        // alignment suits an AtomicU64.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(TicketGeneration {
            cell: NonNull::new(ptr as *mut AtomicU64).expect("mmap returned a mapping"),
            shared: true,
        })
    }

    /// A counter for this process only.
    pub fn private() -> TicketGeneration {
        let cell = Box::into_raw(Box::new(AtomicU64::new(0)));
        TicketGeneration {
            cell: NonNull::new(cell).expect("a box is never null"),
            shared: false,
        }
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the pointer stays valid until drop.
        unsafe { self.cell.as_ref() }
    }

    pub fn current(&self) -> u64 {
        self.cell().load(Ordering::Acquire)
    }

    /// Makes a new ticket key current; returns the new generation.
    pub fn bump(&self) -> u64 {
        self.cell().fetch_add(1, Ordering::AcqRel) + 1
    }
}

impl Drop for TicketGeneration {
    fn drop(&mut self) {
        if self.shared {
            // SAFETY: unmaps the page mapped in `shared`; nothing refers to it any more.
            unsafe { libc::munmap(self.cell.as_ptr() as *mut libc::c_void, 4096) };
        } else {
            // SAFETY: the box created in `private`.
            drop(unsafe { Box::from_raw(self.cell.as_ptr()) });
        }
    }
}

impl fmt::Debug for TicketGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketGeneration")
            .field("current", &self.current())
            .finish()
    }
}

/// Issues and opens session tickets with AES-256-GCM keys derived by HKDF-SHA256 from the
/// secret and the key generation. A ticket is `generation (8 bytes) | nonce (12) | sealed
/// state`; it opens while its generation is the current one or the one before, so tickets
/// issued just before a rotation still resume once, and none survives two rotations.
pub(crate) struct Ticketer {
    prk: hkdf::Prk,
    generation: Arc<TicketGeneration>,
    rng: SystemRandom,
}

const TICKET_HEADER: usize = 8 + NONCE_LEN;

impl Ticketer {
    pub(crate) fn new(secret: &[u8], generation: Arc<TicketGeneration>) -> Ticketer {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"hyperion session tickets");
        Ticketer {
            prk: salt.extract(secret),
            generation,
            rng: SystemRandom::new(),
        }
    }

    fn key(&self, generation: u64) -> Option<LessSafeKey> {
        let info = generation.to_be_bytes();
        let info = [&info[..]];
        let okm = self.prk.expand(&info, &aead::AES_256_GCM).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer")
            .field("generation", &self.generation)
            .finish()
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let generation = self.generation.current();
        let key = self.key(generation)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(TICKET_HEADER + plain.len() + aead::MAX_TAG_LEN);
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..TICKET_HEADER]),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < TICKET_HEADER + aead::MAX_TAG_LEN {
            return None;
        }
        let (header, sealed) = cipher.split_at(TICKET_HEADER);
        let generation = u64::from_be_bytes(header[..8].try_into().ok()?);
        let current = self.generation.current();
        if generation != current && generation.checked_add(1) != Some(current) {
            return None;
        }
        let key = self.key(generation)?;
        let nonce = Nonce::try_assume_unique_for_key(&header[8..]).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(header), &mut buf).ok()?;
        let len = plain.len();
        buf.truncate(len);
        Some(buf)
    }
}

/// The engine's TLS state: the server configuration every handshake uses and what reloading
/// needs.
pub(crate) struct TlsState {
    server_config: Arc<ServerConfig>,
    certs: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
    cert_path: PathBuf,
    key_path: PathBuf,
    pub(crate) handshake_timeout: Duration,
    rate_limit: Option<RateLimit>,
}

impl TlsState {
    pub(crate) fn new(config: &TlsConfig) -> Result<TlsState, TlsError> {
        let provider = provider();
        let key = load_with(&config.cert_path, &config.key_path, &provider)?;
        let certs = Arc::new(CertStore {
            current: RwLock::new(Arc::new(key)),
        });
        let secret = match config.ticket_secret {
            Some(secret) => secret,
            None => {
                let mut secret = [0u8; TICKET_SECRET_LEN];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| TlsError("no randomness for the ticket secret".into()))?;
                secret
            }
        };
        let generation = config
            .ticket_generation
            .clone()
            .unwrap_or_else(|| Arc::new(TicketGeneration::private()));
        let mut server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        // The server's suite order (strongest first) wins over the client's.
        server_config.ignore_client_order = true;
        server_config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        server_config.ticketer = Arc::new(Ticketer::new(&secret, generation));
        Ok(TlsState {
            server_config: Arc::new(server_config),
            certs,
            provider,
            cert_path: config.cert_path.clone(),
            key_path: config.key_path.clone(),
            handshake_timeout: config.handshake_timeout,
            rate_limit: config.handshake_rate_limit.map(RateLimit::new),
        })
    }

    /// Reads the certificate and key files again; new handshakes use them. On error the
    /// current pair stays in use.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let key = load_with(&self.cert_path, &self.key_path, &self.provider)?;
        *self
            .certs
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }
}

/// Serves one accepted connection of a TLS listener: admission under the handshake rate
/// limit, the handshake (bounded by `handshake_timeout`), then the protocol ALPN chose.
pub(crate) async fn serve<S: Socket>(
    io: S,
    peer: Peer,
    shared: Arc<Shared>,
    info: Arc<ListenerInfo>,
) {
    let Some(tls) = shared.tls.as_ref() else {
        return;
    };
    if let Some(limit) = &tls.rate_limit {
        if limit.admit().is_none() {
            bump(&shared.stats.tls_handshakes_rate_limited);
            crate::dispatch::warn_refused(
                &shared,
                "TLS handshake refused",
                peer,
                None,
                "tls_handshake_rate_limit",
            );
            // Dropping the socket closes it before any TLS byte is exchanged.
            return;
        }
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
    let stream = match tokio::time::timeout(tls.handshake_timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => {
            bump(&shared.stats.tls_handshakes);
            stream
        }
        Ok(Err(_)) => {
            bump(&shared.stats.tls_handshake_failures);
            return;
        }
        Err(_) => {
            bump(&shared.stats.tls_handshake_timeouts);
            return;
        }
    };
    // The one place that picks the protocol from the negotiated ALPN; clients without ALPN
    // speak HTTP/1.1.
    match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => {
            let peer_info = info.clone();
            Box::pin(crate::h2::serve(
                stream,
                bytes::Bytes::new(),
                peer,
                shared.clone(),
                peer_info,
            ))
            .await
        }
        Some(b"http/1.1") | None => {
            Connection::new(stream, peer, shared.clone(), info)
                .run()
                .await
        }
        // rustls only agrees to a protocol listed in ALPN_PROTOCOLS.
        Some(_) => {}
    }
}

/// A TLS stream over a connected socket. The raw-descriptor operations of [`Socket`] are not
/// available (the kernel would send plaintext): the connection writes files through the
/// stream and refuses hijacking.
impl<S: Socket> Socket for tokio_rustls::server::TlsStream<S> {
    const RAW_FD: bool = false;

    async fn readable(&self) -> io::Result<()> {
        // rustls may already hold decrypted bytes the socket will never signal again, so the
        // connection always goes on to read.
        Ok(())
    }

    async fn writable(&self) -> io::Result<()> {
        self.get_ref().0.writable().await
    }

    fn try_write_with<R>(
        &self,
        _f: impl FnOnce(std::os::fd::RawFd) -> io::Result<R>,
    ) -> io::Result<R> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn into_blocking_fd(self) -> io::Result<std::os::fd::OwnedFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a TLS connection cannot be hijacked",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticketer() -> (Ticketer, Arc<TicketGeneration>) {
        let generation = Arc::new(TicketGeneration::private());
        (Ticketer::new(&[7u8; 32], generation.clone()), generation)
    }

    #[test]
    fn a_ticket_opens_until_two_rotations_later() {
        let (t, generation) = ticketer();
        let ticket = t.encrypt(b"session state").unwrap();
        assert_eq!(t.decrypt(&ticket).unwrap(), b"session state");
        generation.bump();
        assert_eq!(t.decrypt(&ticket).unwrap(), b"session state");
        generation.bump();
        assert_eq!(t.decrypt(&ticket), None);
    }

    #[test]
    fn tickets_open_in_another_ticketer_with_the_same_secret_and_generation() {
        let (a, generation) = ticketer();
        let b = Ticketer::new(&[7u8; 32], generation);
        let other = Ticketer::new(&[8u8; 32], Arc::new(TicketGeneration::private()));
        let ticket = a.encrypt(b"state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"state");
        assert_eq!(other.decrypt(&ticket), None);
    }

    #[test]
    fn tampered_or_short_tickets_do_not_open() {
        let (t, _) = ticketer();
        let mut ticket = t.encrypt(b"state").unwrap();
        assert_eq!(t.decrypt(&ticket[..10]), None);
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert_eq!(t.decrypt(&ticket), None);
        let mut ticket = t.encrypt(b"state").unwrap();
        // A forged generation changes the key and the authenticated header.
        ticket[7] ^= 1;
        assert_eq!(t.decrypt(&ticket), None);
    }

    #[test]
    fn the_shared_generation_is_seen_by_a_forked_child() {
        let generation = TicketGeneration::shared().unwrap();
        // SAFETY: the child only touches the atomic and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            generation.bump();
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(generation.current(), 1);
    }
}
