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
    /// Wake-ups sent to waiters that have not returned from their wait yet. One is in
    /// flight at a time: a push wakes a waiter only when none is on its way, and the woken
    /// thread, once it has taken its exchange, wakes the next if more are queued (see
    /// [`State::pass_wake`]). A burst of pushes thus wakes threads one after the other, as
    /// each finds work left, and not all at once: on a shared core the threads woken at once
    /// mostly found the queue already emptied by the first (which takes the next exchange
    /// with `try_pop` when its response is done, without giving up the runtime lock), each
    /// at the price of two thread switches.
    wakes_pending: usize,
}

impl State {
    /// Whether a waiter should be woken now (and counts the wake-up): exchanges are queued, a
    /// thread is waiting, and no wake-up is on its way already.
    fn pass_wake(&mut self) -> bool {
        let wake = !self.items.is_empty() && self.waiting > 0 && self.wakes_pending == 0;
        if wake {
            self.wakes_pending += 1;
        }
        wake
    }
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
        let wake = state.pass_wake();
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
                // More work than this thread: pass the wake-up on.
                if state.pass_wake() {
                    drop(state);
                    self.ready.notify_one();
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Body, Direct, ListenerInfo, Peer, Protocol};
    use crate::response::Response;
    use std::sync::atomic::AtomicBool;
    use std::sync::{mpsc, Arc, Barrier};

    fn exchange(path: &str) -> Box<Exchange> {
        let text = format!("GET {path} HTTP/1.1\r\nhost: h\r\n\r\n");
        let head_bytes = bytes::Bytes::from(text.into_bytes());
        let head = match hyperion_http::parse_request_head(&head_bytes, &Default::default()) {
            Ok(hyperion_http::HeadStatus::Complete { head, .. }) => head,
            other => panic!("not a head: {other:?}"),
        };
        let (tx, _rx) = crate::chan::channel(1);
        Box::new(Exchange {
            head,
            head_bytes,
            body: Body::Memory(Vec::new()),
            trailers: Vec::new(),
            protocol: Protocol::Http1,
            peer: Peer::Unix,
            listener: Arc::new(ListenerInfo {
                server_name: "localhost".into(),
                server_port: 80,
                scheme: "http",
                admin_only: false,
            }),
            response: Response::new(
                tx,
                false,
                hyperion_http::Version::Http11,
                true,
                Arc::new(AtomicBool::new(false)),
            ),
            direct: Direct::None,
        })
    }

    /// Threads that each take one exchange and then keep it (a slow handler) must still
    /// between them take every exchange of a burst pushed while they all waited: the
    /// wake-up is passed on while work is left.
    #[test]
    fn a_burst_reaches_every_waiting_thread_while_each_holds_its_exchange() {
        const THREADS: usize = 4;
        let queue = Arc::new(ExchangeQueue::new(64));
        let all_holding = Arc::new(Barrier::new(THREADS + 1));
        let (taken_tx, taken_rx) = mpsc::channel();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let queue = queue.clone();
                let all_holding = all_holding.clone();
                let taken_tx = taken_tx.clone();
                std::thread::spawn(move || {
                    let token = WaitToken::new();
                    loop {
                        match queue.pop(&token, None) {
                            Pop::Exchange(ex) => {
                                taken_tx.send(ex.path().to_vec()).unwrap();
                                // Held until every thread has one.
                                all_holding.wait();
                                drop(ex);
                                return;
                            }
                            Pop::Closed => return,
                            Pop::Interrupted => {}
                        }
                    }
                })
            })
            .collect();
        // Every thread waits before the burst.
        while queue.state.lock().unwrap().waiting < THREADS {
            std::thread::yield_now();
        }
        for i in 0..THREADS {
            queue.push(exchange(&format!("/{i}"))).unwrap();
        }
        let mut taken: Vec<Vec<u8>> = (0..THREADS)
            .map(|_| {
                taken_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("every exchange taken while the others are held")
            })
            .collect();
        taken.sort();
        let expected: Vec<Vec<u8>> = (0..THREADS).map(|i| format!("/{i}").into_bytes()).collect();
        assert_eq!(taken, expected);
        all_holding.wait();
        for t in threads {
            t.join().unwrap();
        }
        assert!(queue.is_empty());
    }

    /// A burst wakes one waiter; that thread wakes one more once it has taken its exchange
    /// and sees work left. The others stay asleep.
    #[test]
    fn a_burst_sends_one_wake_up_at_a_time() {
        let queue = ExchangeQueue::new(64);
        queue.state.lock().unwrap().waiting = 3;
        for i in 0..5 {
            queue.push(exchange(&format!("/{i}"))).unwrap();
        }
        assert_eq!(queue.state.lock().unwrap().wakes_pending, 1);
        // The woken thread returns (as `pop` counts it) and takes an exchange: it passes the
        // wake-up on, since four are left.
        {
            let mut state = queue.state.lock().unwrap();
            state.waiting -= 1;
            state.wakes_pending -= 1;
        }
        let token = WaitToken::new();
        assert!(matches!(queue.pop(&token, None), Pop::Exchange(_)));
        assert_eq!(queue.state.lock().unwrap().wakes_pending, 1);
        // Exchanges taken without waiting (`try_pop`) wake nobody.
        while queue.try_pop().is_some() {}
        assert_eq!(queue.state.lock().unwrap().wakes_pending, 1);
    }
}
