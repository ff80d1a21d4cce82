//! Waking the ring from other threads: a response message for a connection, or a stop.
//!
//! Each connection slot has a [`Waker`] that records its slot number and, when the list was
//! empty, writes to an eventfd the ring always has a read pending on. The ring then polls only
//! the connections named in the list.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

/// The slot number that means "look at the engine's phase", not a connection.
pub(super) const STOP: u32 = u32::MAX;

pub(super) struct Wakeups {
    ready: Mutex<Vec<u32>>,
    eventfd: OwnedFd,
}

impl Wakeups {
    pub(super) fn new() -> std::io::Result<Arc<Wakeups>> {
        // Blocking on purpose: io_uring completes reads of a non-blocking file with EAGAIN
        // instead of waiting for it to become readable.
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(Wakeups {
            ready: Mutex::new(Vec::new()),
            // SAFETY: `fd` was just created and is owned by nobody else.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    pub(super) fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    pub(super) fn waker(self: &Arc<Self>, slot: u32) -> Waker {
        Waker::from(Arc::new(SlotWaker {
            slot,
            wakeups: self.clone(),
        }))
    }

    /// Moves the woken slots into `into` (which must be empty).
    pub(super) fn take(&self, into: &mut Vec<u32>) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *ready, into);
    }

    fn notify(&self, slot: u32) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let first = ready.is_empty();
        ready.push(slot);
        drop(ready);
        if first {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a local; the descriptor lives as long as `self`.
            unsafe {
                libc::write(
                    self.eventfd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

struct SlotWaker {
    slot: u32,
    wakeups: Arc<Wakeups>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wakeups.notify(self.slot);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakeups.notify(self.slot);
    }
}
