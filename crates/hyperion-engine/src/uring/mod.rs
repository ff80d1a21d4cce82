//! The io_uring connection loop: the I/O thread submits accepts, receives and sends to one ring
//! and handles their completions, with no readiness step and, under load, one `io_uring_enter`
//! for many connections' work.
//!
//! - Listeners (TCP and Unix) take one multishot accept each.
//! - Each connection keeps one multishot receive armed, which picks a buffer from a
//!   provided-buffer ring ([`bufring`]) only when data arrives: an idle connection holds no
//!   buffer, and reading the next request needs no submission. It pauses (is cancelled) when
//!   too much arrives while the application answers, and ends before a hijack or close (see
//!   `conn.rs`).
//! - File bodies are read into the send buffer in 64 KiB chunks and sent: no pipe, no
//!   blocking `sendfile` on this thread, and reads of cached pages complete inline.
//! - Application threads answer through the same channel as with tokio; the ring learns of a
//!   message through a per-slot waker and an eventfd it always has a read pending on ([`wake`]).
//! - Timeouts are deadlines on the operation in flight, checked by a sweep that runs at the
//!   earliest deadline; an expired operation is cancelled and its completion takes the
//!   timeout path.

mod bufring;
mod conn;
mod wake;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use self::bufring::BufRing;
use self::conn::{Conn, End, Next};
use self::wake::{Wakeups, STOP};
use crate::engine::Shared;
use crate::exchange::{ListenerInfo, Peer};
use crate::listener::{BoundListener, Listening};
use crate::response::Hijacked;

const SQ_ENTRIES: u32 = 1024;
const CQ_ENTRIES: u32 = 8192;
/// Receive buffers (a power of two) and their size. Buffers go back to the kernel as soon as
/// their bytes are copied out, so this bounds reads completing in one batch, not connections.
const RECV_BUFFERS: u16 = 256;
const RECV_BUFFER_SIZE: u32 = 16 * 1024;
const BUF_GROUP: u16 = 0;
/// Timer sweeps run at most this often (deadlines may fire this much late).
const SWEEP_MIN: Duration = Duration::from_millis(10);
/// After an accept error such as EMFILE, wait this long before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// At exit, how long cancelled operations get to complete before their buffers are leaked
/// rather than freed under the kernel.
const EXIT_REAP: Duration = Duration::from_secs(1);
/// While stopping, how long an idle connection still waits for a request the client may
/// already have sent: it cannot know we are stopping, and closing under it would lose that
/// request, where answering it with `connection: close` does not. Same as the tokio loop.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

// What a completion is for: the low byte of its user data (the rest is a slot or listener
// index).
const ACCEPT: u8 = 1;
const WAKE: u8 = 2;
const CANCEL: u8 = 3;
const RECV: u8 = 4;
const SEND: u8 = 5;
const FILE_READ: u8 = 6;

fn user_data(index: u32, kind: u8) -> u64 {
    (index as u64) << 8 | kind as u64
}

/// A ring that passed the probe, with its receive buffers registered.
pub(crate) struct Ring {
    ring: IoUring,
    bufs: BufRing,
}

/// `EPERM` rather than "Operation not permitted (os error 1)", for the boot log.
fn errno_name(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EMFILE) => "EMFILE",
        Some(libc::ENFILE) => "ENFILE",
        _ => return e.to_string(),
    };
    name.to_string()
}

impl Ring {
    /// Creates the ring on the calling thread (the I/O thread, so after any fork) and checks
    /// everything the loop needs. The error is the reason it cannot be used.
    pub(crate) fn new() -> Result<Ring, String> {
        // Single issuer + deferred task run: completions are processed only when this thread
        // asks for them, in batches. Older kernels (before 6.1) get a plain ring.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(CQ_ENTRIES)
                    .build(SQ_ENTRIES)
            })
            .map_err(|e| format!("io_uring_setup failed: {}", errno_name(&e)))?;
        if !ring.params().is_feature_ext_arg() {
            return Err("kernel lacks IORING_FEAT_EXT_ARG (5.11)".into());
        }
        if !ring.params().is_feature_nodrop() {
            return Err("kernel lacks IORING_FEAT_NODROP (5.5)".into());
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("io_uring probe failed: {}", errno_name(&e)))?;
        let needed = [
            (opcode::AcceptMulti::CODE, "ACCEPT"),
            (opcode::Recv::CODE, "RECV"),
            (opcode::Send::CODE, "SEND"),
            (opcode::Read::CODE, "READ"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ];
        for (code, name) in needed {
            if !probe.is_supported(code) {
                return Err(format!("kernel lacks IORING_OP_{name}"));
            }
        }
        // Provided-buffer rings arrived in 5.19 together with multishot accept, which has no
        // opcode of its own to probe.
        let bufs = BufRing::register(&ring.submitter(), RECV_BUFFERS, RECV_BUFFER_SIZE, BUF_GROUP)
            .map_err(|e| {
                format!(
                    "provided buffer rings unavailable (5.19): {}",
                    errno_name(&e)
                )
            })?;
        Ok(Ring { ring, bufs })
    }

    pub(crate) fn describe(&self) -> String {
        "kernel supports multishot accept and provided-buffer recv".into()
    }
}

/// What a connection needs from the loop while it runs: submissions, buffers, the clock.
struct Io {
    ring: IoUring,
    bufs: BufRing,
    shared: Arc<Shared>,
    /// The time at the top of this loop turn.
    now: Instant,
    /// Connections whose receive found no free buffer; driven again after the batch.
    starved: Vec<u32>,
    next_sweep: Option<Instant>,
    /// Operations submitted and not yet completed (a multishot accept counts once).
    in_flight: usize,
    /// Set once stopping: until when an idle connection still waits for a request the client
    /// may already have sent (see `DRAIN_IDLE_GRACE`).
    drain_idle_until: Option<Instant>,
}

impl Io {
    /// Until when idle connections wait for a request while stopping. Fixed the first time a
    /// connection (or `begin_stop`) sees the engine draining: the flag flips on another thread
    /// before this loop notices, and a connection going idle in between must get the grace too.
    fn drain_idle_until(&mut self) -> Instant {
        let grace = DRAIN_IDLE_GRACE.min(self.shared.config.idle_keepalive);
        *self.drain_idle_until.get_or_insert(self.now + grace)
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points to is owned by a connection or the loop and
            // stays alive and unmoved until the entry's completion is reaped (or, at exit,
            // is leaked when it is not).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.in_flight += 1;
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    eprintln!("hyperion: io_uring submit failed: {e}");
                    return;
                }
            }
        }
    }

    fn note_deadline(&mut self, deadline: Instant) {
        if self.next_sweep.is_none_or(|next| deadline < next) {
            self.next_sweep = Some(deadline);
        }
    }

    fn cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(0, CANCEL));
        self.push(entry);
    }
}

struct Listener {
    fd: Option<OwnedFd>,
    info: Arc<ListenerInfo>,
    tcp: bool,
    unix_path: Option<PathBuf>,
    /// The multishot accept is armed.
    accepting: bool,
    retry_at: Option<Instant>,
}

struct Slot {
    conn: Option<Box<Conn>>,
    waker: Waker,
}

struct Loop {
    io: Io,
    listeners: Vec<Listener>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    wakeups: Arc<Wakeups>,
    /// Where the pending eventfd read lands.
    wake_buf: Box<u64>,
    /// Set once stopping: when the graceful timeout ends.
    graceful_deadline: Option<Instant>,
    ready: Vec<u32>,
    cqes: Vec<cqueue::Entry>,
}

/// Serves `listeners` on the ring until the engine stops.
pub(crate) fn serve(ring: Ring, listeners: Vec<Listening>, shared: Arc<Shared>) {
    let wakeups = match Wakeups::new() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("hyperion: cannot create an eventfd: {e}");
            return;
        }
    };
    *shared.io_waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(wakeups.waker(STOP));
    let listeners = listeners
        .into_iter()
        .map(|listening| {
            let info = Arc::new(listening.info());
            let (fd, tcp, unix_path) = match listening.bound {
                BoundListener::Tcp(l, _) => (OwnedFd::from(l), true, None),
                BoundListener::Unix {
                    listener,
                    path,
                    remove_on_close,
                } => (
                    OwnedFd::from(listener),
                    false,
                    remove_on_close.then_some(path),
                ),
            };
            // The descriptor's flags are left alone: in cluster mode the socket is shared with
            // the other workers and the master. A multishot accept waits on a non-blocking
            // listener on current kernels; where one answers EAGAIN instead, `on_accept` backs
            // off and accepts again.
            Listener {
                fd: Some(fd),
                info,
                tcp,
                unix_path,
                accepting: false,
                retry_at: None,
            }
        })
        .collect();
    let mut lp = Loop {
        io: Io {
            ring: ring.ring,
            bufs: ring.bufs,
            shared,
            now: Instant::now(),
            starved: Vec::new(),
            next_sweep: None,
            in_flight: 0,
            drain_idle_until: None,
        },
        listeners,
        slots: Vec::new(),
        free: Vec::new(),
        wakeups,
        wake_buf: Box::new(0),
        graceful_deadline: None,
        ready: Vec::new(),
        cqes: Vec::with_capacity(CQ_ENTRIES as usize),
    };
    lp.arm_wake();
    for index in 0..lp.listeners.len() {
        lp.arm_accept(index);
    }
    lp.run();
    lp.exit();
}

fn set_blocking(fd: RawFd) {
    // SAFETY: fcntl flag changes on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
}

impl Loop {
    fn run(&mut self) {
        loop {
            self.io.now = Instant::now();
            self.wake_ready();
            if self.graceful_deadline.is_none() && self.io.shared.is_draining() {
                self.begin_stop();
            }
            if let Some(deadline) = self.graceful_deadline {
                let idle = self.listeners.iter().all(|l| l.fd.is_none())
                    && self
                        .io
                        .shared
                        .stats
                        .connections_active
                        .load(Ordering::Acquire)
                        == 0;
                if idle || self.io.now >= deadline {
                    return;
                }
            }
            if self.io.next_sweep.is_some_and(|at| at <= self.io.now) {
                self.sweep();
            }
            self.retry_accepts();
            let wake_at = [
                self.io.next_sweep,
                self.graceful_deadline,
                self.listeners.iter().filter_map(|l| l.retry_at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            if let Err(e) = self.wait(wake_at) {
                eprintln!("hyperion: io_uring wait failed: {e}");
                return;
            }
            self.io.now = Instant::now();
            self.reap();
            for slot in std::mem::take(&mut self.io.starved) {
                self.drive(slot);
            }
        }
    }

    /// Submits what is queued and waits for at least one completion, or until `until`.
    fn wait(&mut self, until: Option<Instant>) -> std::io::Result<()> {
        let submitter = self.io.ring.submitter();
        let result = match until {
            Some(at) => {
                let d = at.saturating_duration_since(Instant::now());
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.io.ring.completion());
        for cqe in cqes.drain(..) {
            let data = cqe.user_data();
            let kind = (data & 0xff) as u8;
            let index = (data >> 8) as u32;
            match kind {
                ACCEPT => self.on_accept(index as usize, cqe.result(), cqe.flags()),
                WAKE => {
                    self.io.in_flight -= 1;
                    self.arm_wake();
                    self.wake_ready();
                }
                CANCEL => self.io.in_flight -= 1,
                _ => self.on_conn(index, kind, cqe.result(), cqe.flags()),
            }
        }
        self.cqes = cqes;
    }

    fn arm_wake(&mut self) {
        let entry = opcode::Read::new(
            types::Fd(self.wakeups.fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(user_data(0, WAKE));
        self.io.push(entry);
    }

    /// Drives the connections whose response channel has news.
    fn wake_ready(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        self.wakeups.take(&mut ready);
        for &slot in &ready {
            let awaiting = self
                .slots
                .get(slot as usize)
                .and_then(|s| s.conn.as_ref())
                .is_some_and(|c| c.is_awaiting());
            if slot != STOP && awaiting {
                self.drive(slot);
            }
        }
        ready.clear();
        self.ready = ready;
    }

    fn arm_accept(&mut self, index: usize) {
        let listener = &mut self.listeners[index];
        let Some(fd) = &listener.fd else { return };
        let entry = opcode::AcceptMulti::new(types::Fd(fd.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(index as u32, ACCEPT));
        listener.accepting = true;
        listener.retry_at = None;
        self.io.push(entry);
    }

    fn retry_accepts(&mut self) {
        for index in 0..self.listeners.len() {
            if self.listeners[index]
                .retry_at
                .is_some_and(|at| at <= self.io.now)
            {
                self.arm_accept(index);
            }
        }
    }

    fn on_accept(&mut self, index: usize, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.io.in_flight -= 1;
            self.listeners[index].accepting = false;
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            // Accepted while stopping, it is served like any other (with `connection: close`):
            // its client has already sent or is sending its request.
            self.add_conn(fd, index);
        }
        if more {
            return;
        }
        if self.graceful_deadline.is_some() {
            self.close_listener(index);
            return;
        }
        let transient = res >= 0
            || matches!(
                -res,
                libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::ECANCELED
            );
        // EAGAIN (a kernel that does not wait on a non-blocking listener), EMFILE, ENOMEM:
        // back off briefly instead of spinning on accept.
        if transient {
            self.arm_accept(index);
        } else {
            self.listeners[index].retry_at = Some(self.io.now + ACCEPT_BACKOFF);
        }
    }

    /// Closes a listener at stop. Connections that completed their handshake but were not
    /// accepted yet would be reset by the close (or, on a socket shared with other workers,
    /// wait for another process): they are accepted and served here, like the tokio loop does.
    fn close_listener(&mut self, index: usize) {
        let listener = &mut self.listeners[index];
        listener.retry_at = None;
        let Some(fd) = listener.fd.take() else {
            return;
        };
        let mut queued = Vec::new();
        // Non-blocking, so the loop below ends with the queue. On a socket shared with other
        // workers this changes their copy too, which is harmless: the tokio loop needs it
        // anyway and the ring accepts either way.
        // SAFETY: fcntl on the listener we own.
        let nonblocking = unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if nonblocking {
            loop {
                // SAFETY: accept4 on the listener we own; the descriptor is owned at once.
                let conn = unsafe {
                    libc::accept4(
                        fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if conn < 0 {
                    break;
                }
                // SAFETY: accept4 returned a new descriptor nobody else owns.
                queued.push(unsafe { OwnedFd::from_raw_fd(conn) });
            }
        }
        drop(fd);
        if let Some(path) = &self.listeners[index].unix_path {
            let _ = std::fs::remove_file(path);
        }
        for conn in queued {
            self.add_conn(conn, index);
        }
    }

    fn add_conn(&mut self, fd: OwnedFd, listener: usize) {
        let shared = &self.io.shared;
        shared.stats.connection_opened();
        let listener = &self.listeners[listener];
        let peer = if listener.tcp {
            let sock = socket2::SockRef::from(&fd);
            // Small responses must not wait for the peer's delayed ACK (Nagle).
            let _ = sock.set_tcp_nodelay(true);
            match sock.peer_addr().ok().and_then(|a| a.as_socket()) {
                Some(addr) => Peer::Tcp(addr),
                None => Peer::Tcp(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            }
        } else {
            Peer::Unix
        };
        let conn = Box::new(Conn::new(fd, peer, listener.info.clone()));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize].conn = Some(conn);
                slot
            }
            None => {
                let slot = self.slots.len() as u32;
                self.slots.push(Slot {
                    conn: Some(conn),
                    waker: self.wakeups.waker(slot),
                });
                slot
            }
        };
        self.drive(slot);
    }

    fn on_conn(&mut self, slot: u32, kind: u8, res: i32, flags: u32) {
        // A multishot receive stays in flight until its last completion.
        if !cqueue::more(flags) {
            self.io.in_flight -= 1;
        }
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(conn) = s.conn.as_mut() else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.io.bufs.recycle(bid);
            }
            return;
        };
        let next = conn.complete(&mut self.io, slot, kind, res, flags, &s.waker);
        self.after(slot, next);
    }

    fn drive(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let Some(conn) = s.conn.as_mut() else { return };
        let next = conn.advance(&mut self.io, slot, &s.waker);
        self.after(slot, next);
    }

    fn after(&mut self, slot: u32, next: Next) {
        let hijack = match next {
            Next::Keep => return,
            Next::End(End::Close) => None,
            Next::End(End::Hijack(tx)) => Some(tx),
            Next::End(End::Http2) => {
                let conn = self.slots[slot as usize].conn.take().expect("live slot");
                self.free.push(slot);
                let peer = conn.peer();
                let listener = conn.listener().clone();
                let (fd, buffered) = conn.into_hijacked();
                // Still an open connection of this engine (graceful stop waits for it): its
                // count moves to the HTTP/2 runtime.
                crate::h2::hand_off(&self.io.shared, fd, buffered, peer, listener);
                return;
            }
        };
        let conn = self.slots[slot as usize].conn.take().expect("live slot");
        self.free.push(slot);
        self.io.shared.stats.connection_closed();
        match hijack {
            // Dropping the connection closes the socket.
            None => drop(conn),
            Some(tx) => {
                let (fd, buffered) = conn.into_hijacked();
                set_blocking(fd.as_raw_fd());
                // If the application is gone, dropping the descriptor closes it.
                let _ = tx.send(Hijacked { fd, buffered });
            }
        }
    }

    /// Handles the waits whose deadline passed: a wait for bytes takes the timeout path at
    /// once; a write-side operation is cancelled and its completion takes it.
    fn sweep(&mut self) {
        let now = self.io.now;
        // Deadlines set while handling expired waits below are noted afresh.
        self.io.next_sweep = None;
        let mut next: Option<Instant> = None;
        let mut cancel = Vec::new();
        let mut stalled = Vec::new();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let Some(conn) = s.conn.as_mut() else {
                continue;
            };
            let Some((op, deadline)) = conn.timed_wait() else {
                continue;
            };
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            match op {
                Some(op) => {
                    conn.expire();
                    cancel.push(user_data(slot as u32, op));
                }
                None => stalled.push(slot as u32),
            }
        }
        for target in cancel {
            self.io.cancel(target);
        }
        for slot in stalled {
            let s = &mut self.slots[slot as usize];
            if let Some(conn) = s.conn.as_mut() {
                let next = conn.read_timed_out(&mut self.io, slot, &s.waker);
                self.after(slot, next);
            }
        }
        let earliest = match (next, self.io.next_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.io.next_sweep = earliest.map(|n| n.max(now + SWEEP_MIN));
    }

    /// Stop accepting, close idle connections; the rest finish their request and close.
    fn begin_stop(&mut self) {
        self.graceful_deadline = Some(self.io.now + self.io.shared.config.graceful_timeout);
        self.io.drain_idle_until();
        for index in 0..self.listeners.len() {
            if self.listeners[index].accepting {
                self.io.cancel(user_data(index as u32, ACCEPT));
            } else {
                self.close_listener(index);
            }
        }
        let idle: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.as_ref().is_some_and(|c| c.is_idle()))
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in idle {
            // Seeing the engine draining with nothing read, the connection waits out the
            // drain grace, then closes.
            self.drive(slot);
        }
    }

    /// Cuts whatever is left: cancels every operation and waits (briefly) for their
    /// completions, so that no buffer is freed while the kernel may still write to it.
    fn exit(mut self) {
        *self
            .io
            .shared
            .io_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        let mut targets = vec![user_data(0, WAKE)];
        for (index, listener) in self.listeners.iter().enumerate() {
            if listener.accepting {
                targets.push(user_data(index as u32, ACCEPT));
            }
        }
        for (slot, s) in self.slots.iter().enumerate() {
            if let Some(conn) = &s.conn {
                targets.extend(conn.ops().map(|op| user_data(slot as u32, op)));
            }
        }
        for target in targets {
            self.io.cancel(target);
        }
        let until = Instant::now() + EXIT_REAP;
        while self.io.in_flight > 0 && Instant::now() < until {
            if self.wait(Some(until)).is_err() {
                break;
            }
            let mut cqes = std::mem::take(&mut self.cqes);
            cqes.extend(self.io.ring.completion());
            for cqe in cqes.drain(..) {
                let kind = (cqe.user_data() & 0xff) as u8;
                if (kind == ACCEPT || kind == RECV) && cqueue::more(cqe.flags()) {
                    if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                        self.io.bufs.recycle(bid);
                    }
                    continue;
                }
                if kind == ACCEPT && cqe.result() >= 0 {
                    // SAFETY: an accepted descriptor nobody owns yet; closed at once.
                    drop(unsafe { OwnedFd::from_raw_fd(cqe.result()) });
                }
                if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                    self.io.bufs.recycle(bid);
                }
                self.io.in_flight -= 1;
            }
            self.cqes = cqes;
        }
        // Listeners still open here (a wait failure ended the loop) are closed without taking
        // their queue: nothing would serve it.
        for listener in &mut self.listeners {
            if listener.fd.take().is_some() {
                if let Some(path) = &listener.unix_path {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let stats = &self.io.shared.stats;
        for s in &mut self.slots {
            if let Some(conn) = s.conn.take() {
                stats.connection_closed();
                if self.io.in_flight > 0 {
                    // The kernel may still write into its buffers: leak them rather than
                    // free them under it.
                    std::mem::forget(conn);
                }
            }
        }
        if self.io.in_flight > 0 {
            std::mem::forget(self.wake_buf);
            let Io { ring, bufs, .. } = self.io;
            drop(ring);
            std::mem::forget(bufs);
        }
    }
}
