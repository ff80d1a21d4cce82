//! The channel one exchange's response travels on, from an application thread to the task
//! that writes it: bounded, one receiver, one sender per exchange plus the clones made to
//! send while the application's runtime lock is released.
//!
//! A channel costs one small allocation; a message waiting alone (most responses are one
//! message) needs no other, a second one queued behind it does. (A general asynchronous
//! channel allocated about 2.8 KiB per exchange, in two blocks too large for the allocator's
//! per-thread caches.)

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Waiting messages, oldest first: the oldest in place, the rest in a deque allocated only
/// when a second message waits.
struct Messages<T> {
    first: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Messages<T> {
    fn new() -> Self {
        Messages {
            first: None,
            rest: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, msg: T) {
        // `first` is empty only when nothing waits at all, or when it was just taken and the
        // deque holds the messages after it (which stay in order there).
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(msg);
        } else {
            self.rest.push_back(msg);
        }
    }

    fn pop_front(&mut self) -> Option<T> {
        self.first.take().or_else(|| self.rest.pop_front())
    }
}

struct State<T> {
    queue: Messages<T>,
    senders: usize,
    receiver: bool,
    /// The receiver's task, when it found the queue empty.
    waker: Option<Waker>,
    /// Senders waiting in `blocking_send` for room. A wake-up is a system call even when
    /// nobody waits, so `room` is signalled only when someone does.
    blocked: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when a message leaves a full queue, or the receiver goes.
    room: Condvar,
    capacity: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned lock still holds a sound state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sender<T>(Arc<Shared<T>>);

pub struct Receiver<T>(Arc<Shared<T>>);

#[derive(Debug)]
pub enum TrySendError<T> {
    /// `capacity` messages are waiting: send it with [`Sender::blocking_send`].
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    /// Every sender is gone and nothing is waiting.
    Disconnected,
}

/// A channel holding at most `capacity` messages (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: Messages::new(),
            senders: 1,
            receiver: true,
            waker: None,
            blocked: 0,
        }),
        room: Condvar::new(),
        capacity: capacity.max(1),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let state = self.0.lock();
        if !state.receiver {
            return Err(TrySendError::Closed(msg));
        }
        if state.queue.len() >= self.0.capacity {
            return Err(TrySendError::Full(msg));
        }
        push(state, msg);
        Ok(())
    }

    /// Waits for room, blocking the calling thread: never call it on the receiver's runtime.
    /// `Err` gives the message back when the receiver is gone.
    pub fn blocking_send(&self, msg: T) -> Result<(), T> {
        let mut state = self.0.lock();
        loop {
            if !state.receiver {
                return Err(msg);
            }
            if state.queue.len() < self.0.capacity {
                push(state, msg);
                return Ok(());
            }
            state.blocked += 1;
            state = self.0.room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.blocked -= 1;
        }
    }
}

/// Queues `msg` and wakes the receiver, after letting go of the lock.
fn push<T>(mut state: MutexGuard<'_, State<T>>, msg: T) {
    state.queue.push_back(msg);
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders -= 1;
        if state.senders == 0 {
            // The receiver learns that nothing more will come.
            let waker = state.waker.take();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.lock();
        match self.take(&mut state) {
            Ok(msg) => Poll::Ready(Some(msg)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => state.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.0.lock();
        self.take(&mut state)
    }

    fn take(&self, state: &mut State<T>) -> Result<T, TryRecvError> {
        let was_full = state.queue.len() >= self.0.capacity;
        match state.queue.pop_front() {
            Some(msg) => {
                if was_full && state.blocked > 0 {
                    // A sender is waiting for exactly this room.
                    self.0.room.notify_one();
                }
                Ok(msg)
            }
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver = false;
        let left = std::mem::replace(&mut state.queue, Messages::new());
        let blocked = state.blocked > 0;
        drop(state);
        if blocked {
            self.0.room.notify_all();
        }
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_waker::counting;

    #[test]
    fn messages_arrive_in_order_and_a_waiting_receiver_is_woken() {
        let (tx, mut rx) = channel(4);
        let (woken, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(woken.get(), 1, "one wake until it polls again");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn messages_keep_their_order_across_the_first_slot_and_the_rest() {
        let (tx, mut rx) = channel(1024);
        let mut want = Vec::new();
        let mut got = Vec::new();
        let mut next = 0;
        // Every interleaving of up to three sends and takes, in a row.
        for round in 0..64u32 {
            for _ in 0..round % 4 {
                tx.try_send(next).unwrap();
                want.push(next);
                next += 1;
            }
            for _ in 0..(round / 4) % 4 {
                if let Ok(n) = rx.try_recv() {
                    got.push(n);
                }
            }
        }
        while let Ok(n) = rx.try_recv() {
            got.push(n);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn a_full_channel_refuses_until_the_receiver_takes_one() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).unwrap();
    }

    #[test]
    fn a_blocked_sender_goes_on_when_room_is_made() {
        let (tx, mut rx) = channel(1);
        tx.try_send(0).unwrap();
        let sender = std::thread::spawn(move || {
            for i in 1..=50 {
                tx.blocking_send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 51 {
            match rx.try_recv() {
                Ok(n) => got.push(n),
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        sender.join().unwrap();
        assert_eq!(got, (0..=50).collect::<Vec<_>>());
    }

    #[test]
    fn the_receiver_sees_the_end_once_every_sender_is_gone() {
        let (tx, mut rx) = channel(4);
        let second = tx.clone();
        let (woken, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        tx.try_send(7).unwrap();
        drop(tx);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(7)));
        assert!(
            rx.poll_recv(&mut cx).is_pending(),
            "a clone still holds it open"
        );
        drop(second);
        assert_eq!(woken.get(), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn senders_learn_the_receiver_is_gone_even_while_blocked() {
        let (tx, rx) = channel(1);
        tx.try_send(1).unwrap();
        let blocked = std::thread::spawn(move || tx.blocking_send(2));
        // Whether the thread is already waiting or not, it must come back with its message.
        drop(rx);
        assert_eq!(blocked.join().unwrap(), Err(2));
    }

    #[test]
    fn try_send_after_the_receiver_is_gone_is_closed() {
        let (tx, rx) = channel(1);
        drop(rx);
        assert!(matches!(tx.try_send(1), Err(TrySendError::Closed(1))));
    }
}
