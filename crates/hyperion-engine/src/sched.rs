//! The scheduling policy of the server's threads.
//!
//! The I/O thread and the application threads hand work to each other all the time: a parsed
//! request wakes an application thread, a finished response wakes the I/O thread. Under the
//! default Linux policy (`SCHED_OTHER`) the woken thread usually preempts the one that woke it
//! when they share a core, so a busy server switches threads once or twice per request and
//! each thread handles one item per turn. Under `SCHED_BATCH` a wake-up never preempts: the
//! running thread finishes what it has queued (every response it can produce, every ready
//! socket) and the other thread then takes a whole batch. Time slices and fairness between
//! threads and processes are unchanged; only the wake-up preemption goes.

/// A thread's scheduling policy, as far as the server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Normal,
    Batch,
    Idle,
    /// A real-time or deadline policy.
    RealTime,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Normal => "normal",
            Policy::Batch => "batch",
            Policy::Idle => "idle",
            Policy::RealTime => "real-time",
        }
    }
}

/// The calling thread's policy.
pub fn current() -> std::io::Result<Policy> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscall on the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(match policy & !libc::SCHED_RESET_ON_FORK {
            libc::SCHED_OTHER => Policy::Normal,
            libc::SCHED_BATCH => Policy::Batch,
            libc::SCHED_IDLE => Policy::Idle,
            _ => Policy::RealTime,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(Policy::Normal)
    }
}

/// Moves the calling thread from the normal policy to `SCHED_BATCH`; threads it starts from
/// then on (and processes it forks) inherit it. A thread already under another policy (set by
/// the operator with `chrt`, for instance) is left alone. Returns the policy now in effect. On
/// systems without the policy, nothing changes.
pub fn prefer_batch() -> std::io::Result<Policy> {
    switch(Policy::Normal, Policy::Batch)
}

/// Moves the calling thread back from `SCHED_BATCH` to the normal policy (other policies are
/// left alone). Returns the policy now in effect.
pub fn prefer_normal() -> std::io::Result<Policy> {
    switch(Policy::Batch, Policy::Normal)
}

/// Sets the calling thread's policy to `to` if it is `from`; returns the policy in effect.
fn switch(from: Policy, to: Policy) -> std::io::Result<Policy> {
    let policy = current()?;
    #[cfg(target_os = "linux")]
    if policy == from {
        let target = match to {
            Policy::Batch => libc::SCHED_BATCH,
            _ => libc::SCHED_OTHER,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
        if unsafe { libc::sched_setscheduler(0, target, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return current();
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, to);
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_inherited_by_new_threads_and_can_be_undone() {
        // A fresh thread, so the test runner's own threads keep their policy.
        std::thread::spawn(|| {
            // Started under another policy (chrt): nothing to observe.
            if current().unwrap() != Policy::Normal {
                return;
            }
            let now = prefer_batch().unwrap();
            if cfg!(target_os = "linux") {
                assert_eq!(now, Policy::Batch);
                let child = std::thread::spawn(|| current().unwrap()).join().unwrap();
                assert_eq!(child, Policy::Batch);
                assert_eq!(prefer_normal().unwrap(), Policy::Normal);
            } else {
                assert_eq!(now, Policy::Normal);
            }
        })
        .join()
        .unwrap();
    }
}
