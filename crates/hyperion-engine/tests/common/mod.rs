//! What the engine's integration tests share: running each test on both connection loops, and
//! the listener they bind.

use hyperion_engine::{Engine, EngineConfig, IoUring, ListenSpec};

/// Every test runs once per connection loop: `epoll::name` and `io_uring::name` (the latter
/// passes without running where the kernel forbids io_uring).
#[macro_export]
macro_rules! both_loops {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $(#[test]
            fn $name() {
                super::$name(hyperion_engine::IoUring::Off);
            })*
        }
        mod io_uring {
            $(#[test]
            fn $name() {
                if $crate::common::io_uring_available() {
                    super::$name(hyperion_engine::IoUring::On);
                }
            })*
        }
    };
}

/// Whether this kernel lets the engine run its io_uring loop; asked once.
pub fn io_uring_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let config = EngineConfig {
            io_uring: IoUring::On,
            ..EngineConfig::default()
        };
        match Engine::start(config, &tcp()) {
            Ok(engine) => engine.io_loop().0 == "io_uring",
            Err(e) => {
                eprintln!("io_uring tests skipped: {e}");
                false
            }
        }
    })
}

/// The default engine configuration on the given connection loop.
pub fn with_loop(mode: IoUring) -> EngineConfig {
    EngineConfig {
        io_uring: mode,
        ..EngineConfig::default()
    }
}

/// One TCP listener on a free port of 127.0.0.1.
pub fn tcp() -> Vec<ListenSpec> {
    vec![ListenSpec::Tcp {
        host: "127.0.0.1".into(),
        port: 0,
    }]
}

/// Starts `threads` application threads that answer every exchange of `engine` with
/// `handler`, until its queue closes.
pub fn app_threads<H>(engine: &Engine, threads: usize, handler: H)
where
    H: Fn(&mut hyperion_engine::Exchange) + Clone + Send + 'static,
{
    for _ in 0..threads {
        let queue = engine.queue().clone();
        let handler = handler.clone();
        std::thread::spawn(move || {
            let token = hyperion_engine::WaitToken::new();
            loop {
                match queue.pop(&token, None) {
                    hyperion_engine::Pop::Exchange(mut ex) => handler(&mut ex),
                    hyperion_engine::Pop::Closed => break,
                    hyperion_engine::Pop::Interrupted => {}
                }
            }
        });
    }
}
