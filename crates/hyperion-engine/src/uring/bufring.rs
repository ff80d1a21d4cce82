//! Receive buffers shared by every connection: a provided-buffer ring. A receive picks a buffer
//! only when data arrives, and the loop hands it back as soon as the bytes are copied out, so a
//! connection waiting for its next request holds no buffer at all.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

pub(super) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    mem: NonNull<u8>,
    mem_bytes: usize,
    entries: u16,
    buf_size: u32,
    tail: u16,
}

fn map(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(ptr.cast()).expect("mmap returned null"))
}

fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: `ptr` and `len` come from one successful `map`.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

impl BufRing {
    /// Maps `entries` (a power of two) buffers of `buf_size` bytes and registers them as group
    /// `bgid`. Fails on kernels before 5.19.
    pub(super) fn register(
        submitter: &Submitter<'_>,
        entries: u16,
        buf_size: u32,
        bgid: u16,
    ) -> io::Result<BufRing> {
        debug_assert!(entries.is_power_of_two());
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        let mem_bytes = entries as usize * buf_size as usize;
        let ring = map(ring_bytes)?;
        let mem = match map(mem_bytes) {
            Ok(mem) => mem,
            Err(e) => {
                unmap(ring, ring_bytes);
                return Err(e);
            }
        };
        // SAFETY: the ring memory is page aligned, `entries` long, and stays mapped until this
        // BufRing is dropped, which the loop does only after the io_uring is gone.
        let registered = unsafe {
            submitter.register_buf_ring_with_flags(ring.as_ptr() as u64, entries, bgid, 0)
        };
        if let Err(e) = registered {
            unmap(ring, ring_bytes);
            unmap(mem, mem_bytes);
            return Err(e);
        }
        let mut bufs = BufRing {
            ring: ring.cast(),
            ring_bytes,
            mem,
            mem_bytes,
            entries,
            buf_size,
            tail: 0,
        };
        for bid in 0..entries {
            bufs.push(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// The first `len` bytes of buffer `bid`, as filled by a completed receive.
    pub(super) fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size as usize);
        // SAFETY: in bounds (checked above); the kernel wrote this buffer before posting the
        // completion and will not touch it again until it is recycled.
        unsafe {
            std::slice::from_raw_parts(
                self.mem.as_ptr().add(bid as usize * self.buf_size as usize),
                len,
            )
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let index = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: `index` is within the ring; the entry past the published tail belongs to us.
        let entry = unsafe { &mut *self.ring.as_ptr().add(index) };
        // SAFETY: `bid < entries`, so the address is inside the buffer mapping.
        let addr = unsafe { self.mem.as_ptr().add(bid as usize * self.buf_size as usize) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail lives in the ring's first entry, which stays mapped; the kernel
        // reads it with acquire ordering.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        unmap(self.ring.cast(), self.ring_bytes);
        unmap(self.mem, self.mem_bytes);
    }
}
