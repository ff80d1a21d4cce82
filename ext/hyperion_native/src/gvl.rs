//! Running Rust code with the GVL released.

use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

struct Call<F, R> {
    func: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn call<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` on `without_gvl`'s stack, alive for this whole call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(func) = call.func.take() {
        // A panic must not unwind through Ruby's C frames; it is carried out and resumed.
        call.result = Some(catch_unwind(AssertUnwindSafe(func)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock<U: Fn()>(data: *mut c_void) {
    // SAFETY: `data` is the `U` on `without_gvl`'s stack; Ruby only calls the unblocking
    // function while the blocking call is running.
    let ubf = unsafe { &*(data as *const U) };
    let _ = catch_unwind(AssertUnwindSafe(ubf));
}

/// Runs `func` without the GVL so other Ruby threads (and signal traps) run meanwhile.
/// `unblock` is called from another thread when Ruby needs this thread back (a signal,
/// `Thread#kill`, shutdown): it must make `func` return promptly. `None` if Ruby skipped the
/// call because an interrupt was already pending.
pub fn without_gvl<F, R, U>(func: F, unblock_fn: U) -> Option<R>
where
    F: FnOnce() -> R,
    U: Fn(),
{
    let mut data = Call {
        func: Some(func),
        result: None,
    };
    // SAFETY: both pointers refer to locals that outlive the call; the callbacks match the
    // signatures Ruby expects.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(call::<F, R>),
            &mut data as *mut Call<F, R> as *mut c_void,
            Some(unblock::<U>),
            &unblock_fn as *const U as *mut c_void,
        );
    }
    match data.result {
        Some(Ok(value)) => Some(value),
        Some(Err(panic)) => resume_unwind(panic),
        None => None,
    }
}
