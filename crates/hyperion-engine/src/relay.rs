//! Wake-ups from application threads to the tasks of an I/O thread, coalesced.
//!
//! A task on a current-thread tokio runtime that is woken from another thread costs the waking
//! thread a write to the runtime's eventfd, one per wake-up, even when the I/O thread is busy
//! and would find the task anyway. An application thread answering a burst of requests would
//! make one such system call per response.
//!
//! Tasks that wait for messages from application threads poll their receivers with a relayed
//! waker ([`RelayCache`]) instead. Woken from another thread, it adds the task's own waker to
//! a list and wakes the runtime's relay task only when the list was empty; the relay task,
//! running on the I/O thread, wakes every task listed, which on that thread needs no system
//! call. However many responses an application thread produces while the I/O thread is busy,
//! the I/O thread is signalled once. Woken on the I/O thread itself, a relayed waker wakes its
//! task directly.

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};

thread_local! {
    /// The relay of the runtime running on this thread, if one was started here.
    static CURRENT: RefCell<Option<Arc<Relay>>> = const { RefCell::new(None) };
}

struct Relay {
    /// Tasks woken from other threads since the relay task last ran.
    woken: Mutex<Vec<Waker>>,
    /// Set by the wake-up that found the list empty and signalled the relay task; cleared by
    /// the relay task before it takes the list.
    armed: AtomicBool,
    /// The relay task's own waker, once it has run.
    task: Mutex<Option<Waker>>,
}

/// Starts the relay for the runtime whose thread calls this, from within that runtime (it
/// spawns the relay task). Tasks on this thread then get relayed wakers from [`RelayCache`].
pub(crate) fn start() {
    let relay = Arc::new(Relay {
        woken: Mutex::new(Vec::new()),
        armed: AtomicBool::new(false),
        task: Mutex::new(None),
    });
    CURRENT.with(|current| *current.borrow_mut() = Some(relay.clone()));
    tokio::spawn(run(relay));
}

async fn run(relay: Arc<Relay>) {
    let mut taken: Vec<Waker> = Vec::new();
    poll_fn(|cx| {
        {
            let mut task = relay.task.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        // Cleared before the list is taken: a wake-up that lands after the take finds the
        // flag clear and signals again.
        relay.armed.store(false, Ordering::SeqCst);
        std::mem::swap(
            &mut *relay.woken.lock().unwrap_or_else(|e| e.into_inner()),
            &mut taken,
        );
        for waker in taken.drain(..) {
            waker.wake();
        }
        Poll::<()>::Pending
    })
    .await
}

struct Relayed {
    target: Waker,
    relay: Arc<Relay>,
}

impl Relayed {
    fn on_own_thread(&self) -> bool {
        CURRENT.with(|current| {
            current
                .borrow()
                .as_ref()
                .is_some_and(|r| Arc::ptr_eq(r, &self.relay))
        })
    }
}

impl Wake for Relayed {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.on_own_thread() {
            self.target.wake_by_ref();
            return;
        }
        self.relay
            .woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.target.clone());
        if !self.relay.armed.swap(true, Ordering::SeqCst) {
            // Before the relay task's first run there is no waker yet; that run takes the list.
            let task = self.relay.task.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(task) = task.as_ref() {
                task.wake_by_ref();
            }
        }
    }
}

/// One task's relayed waker, rebuilt only when the task's waker changes. Where no relay runs
/// on the current thread (a runtime that did not start one), the task's own waker is used.
#[derive(Default)]
pub(crate) struct RelayCache {
    cached: Option<(Waker, Waker)>,
}

impl RelayCache {
    pub(crate) fn waker(&mut self, task: &Waker) -> &Waker {
        let fresh = match &self.cached {
            Some((target, _)) => !target.will_wake(task),
            None => true,
        };
        if fresh {
            let relay = CURRENT.with(|current| current.borrow().clone());
            let relayed = match relay {
                Some(relay) => Waker::from(Arc::new(Relayed {
                    target: task.clone(),
                    relay,
                })),
                None => task.clone(),
            };
            self.cached = Some((task.clone(), relayed));
        }
        &self.cached.as_ref().expect("set above").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_waker::counting;

    #[test]
    fn wakes_from_other_threads_reach_the_task_through_one_relay_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            start();
            // Let the relay task run once and register its waker.
            tokio::task::yield_now().await;
            let (count, task) = counting();
            let mut cache = RelayCache::default();
            let relayed = cache.waker(&task).clone();
            assert!(
                !relayed.will_wake(&task),
                "a relay runs here: the waker is wrapped"
            );
            // The same task waker gives the same relayed waker.
            assert!(cache.waker(&task).will_wake(&relayed));

            let from_other = relayed.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    from_other.wake_by_ref();
                }
            })
            .join()
            .unwrap();
            assert_eq!(count.get(), 0, "not until the relay task runs");
            tokio::task::yield_now().await;
            assert_eq!(count.get(), 5, "each wake-up reaches the task");

            // On the I/O thread itself a relayed waker wakes its task at once.
            relayed.wake_by_ref();
            assert_eq!(count.get(), 6);
        });
    }

    #[test]
    fn without_a_relay_the_task_waker_is_used() {
        let (_, task) = counting();
        let mut cache = RelayCache::default();
        assert!(cache.waker(&task).will_wake(&task));
    }
}
