//! The bounded hand-off between I/O threads and application threads.
//!
//! I/O threads push complete exchanges; application threads block in [`ExchangeQueue::pop`]
//! (outside the GVL). A waiter can be woken individually through its [`WaitToken`], which is how
//! Ruby interrupts (signals, `Thread#kill`) reach a thread parked here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::exchange::Exchange;

/// Why a push was refused.
#[derive(Debug)]
pub enum PushError {
    /// The queue holds `capacity` exchanges already.
    Full(Box<Exchange>),
    /// The engine is stopping; no application thread will take it.
    Closed(Box<Exchange>),
}

/// Outcome of a blocking pop.
pub enum Pop {
    Exchange(Box<Exchange>),
    /// The queue is closed and empty: the application thread should exit.
    Closed,
    /// The waiter's token was triggered (or the timeout passed); the caller checks for pending
    /// interrupts and calls again.
    Interrupted,
}

/// Per-waiter flag set by an unblocking function to wake exactly that waiter.
#[derive(Default)]
pub struct WaitToken {
    interrupted: AtomicBool,
}

impl WaitToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
    }

    pub(crate) fn take_interrupt(&self) -> bool {
        self.interrupted.swap(false, Ordering::AcqRel)
    }
}

struct State {
    items: VecDeque<Box<Exchange>>,
    closed: bool,
    /// Threads blocked in `pop` (or about to block: they count themselves under the lock).
    waiting: usize,
    /// Wake-ups sent to waiters that have not returned from their wait yet. A push wakes a
    /// thread only while some waiter has not been sent one: once every waiter is on its way,
    /// further pushes leave the queue for them (and for the thread finishing its response,
    /// which takes the next exchange with `try_pop`) without another wake-up system call.
    wakes_pending: usize,
}

pub struct ExchangeQueue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl ExchangeQueue {
    pub fn new(capacity: usize) -> Self {
        ExchangeQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
                waiting: 0,
                wakes_pending: 0,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&self, exchange: Box<Exchange>) -> Result<(), PushError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return Err(PushError::Closed(exchange));
        }
        if state.items.len() >= self.capacity {
            return Err(PushError::Full(exchange));
        }
        state.items.push_back(exchange);
        let wake = state.waiting > state.wakes_pending;
        if wake {
            state.wakes_pending += 1;
        }
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Blocks until an exchange is available, the queue closes, `token` is triggered, or
    /// `timeout` passes (None = no timeout).
    pub fn pop(&self, token: &WaitToken, timeout: Option<Duration>) -> Pop {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(ex) = state.items.pop_front() {
                return Pop::Exchange(ex);
            }
            if state.closed {
                return Pop::Closed;
            }
            if token.take_interrupt() {
                return Pop::Interrupted;
            }
            state.waiting += 1;
            state = match deadline {
                None => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        state.waiting -= 1;
                        return Pop::Interrupted;
                    }
                    self.ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            state.waiting -= 1;
            // Whichever wait ended (a push's wake-up, an interrupt, a timeout, a spurious
            // return), count one wake-up as arrived: if that undercounts those still on their
            // way, a later push only sends one more than needed.
            state.wakes_pending = state.wakes_pending.saturating_sub(1);
        }
    }

    /// Non-blocking pop: an application thread that just finished a response takes the next
    /// exchange without giving up its runtime lock (the GVL) when work is already waiting.
    pub fn try_pop(&self) -> Option<Box<Exchange>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .pop_front()
    }

    /// Wakes the waiter owning `token` (safe to call from an unblocking function: no allocation,
    /// a short lock).
    pub fn interrupt(&self, token: &WaitToken) {
        token.interrupt();
        let _guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.ready.notify_all();
    }

    /// After close, pushes fail and waiters drain what is left, then see `Pop::Closed`.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
