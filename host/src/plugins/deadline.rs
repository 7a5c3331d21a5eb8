//! Time limits of plugin calls: the wall-clock deadline of one call, checked at
//! every epoch tick, and the epoch ticker, which runs only while a call is in
//! flight.
//!
//! A call's deadline is its arrival at the plugin plus the manifest's `time-ms`,
//! whatever else the host runs meanwhile: the time it waits for a free slot
//! ([`super::loaded`]), for an instance, for the async worker (other looping
//! calls included) and for its host imports all counts. The epoch callback only
//! reads the clock: before the deadline it yields, after it the call traps
//! (`Trap::Interrupt`, the `timeout` fault). Counting ticks instead made a call
//! that yields behind other looping calls last its budget times their number
//! (issue 10: 441 ms for 20 ms under 50 concurrent sends).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::UpdateDeadline;

/// One epoch tick: how often a running call checks its deadline (and yields).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// What the epoch callback of a call with `deadline` answers at a tick: trap once
/// the deadline has passed, else yield, then run one more tick.
///
/// The yield is tokio's `yield_now`, not wasmtime's plain self-wake: tokio puts
/// the call back only after the worker has run its other ready tasks and polled
/// the I/O driver. With a self-wake a looping call was runnable at every poll, so
/// a worker busy with looping calls polled sockets only every 61st task (tokio's
/// event interval), about 61 ms of looping.
pub fn on_tick(deadline: Instant) -> UpdateDeadline {
    if Instant::now() >= deadline {
        UpdateDeadline::Interrupt
    } else {
        UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
    }
}

/// The epoch ticker: a thread that advances the engines' epochs every
/// [`EPOCH_TICK`] while at least one [`Ticking`] guard is alive, and sleeps
/// (parked) otherwise, so an idle host does not wake up a thousand times a second.
pub struct EpochTicker {
    /// Calls and instantiations in flight: the ticker runs while this is above 0.
    in_flight: AtomicUsize,
    /// Set when the ticker should exit.
    stop: AtomicBool,
    /// The ticker thread, to unpark it (set once, right after it is spawned).
    thread: OnceLock<Thread>,
}

impl EpochTicker {
    /// Starts the ticker thread; `tick` advances every engine's epoch by one.
    pub fn start(tick: impl Fn() + Send + 'static) -> anyhow::Result<Arc<Self>> {
        let ticker = Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let this = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !this.stop.load(Ordering::Acquire) {
                    // A guard taken between this load and `park` leaves the unpark
                    // token, so `park` returns at once.
                    if this.in_flight.load(Ordering::Acquire) == 0 {
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    tick();
                }
            })
            .context("starting the epoch ticker")?;
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// Keeps the ticker running until the guard is dropped: hold one while wasm
    /// runs (a call, an instantiation).
    pub fn ticking(self: &Arc<Self>) -> Ticking {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.unpark();
        }
        Ticking(self.clone())
    }

    /// Ends the ticker thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.unpark();
    }

    fn unpark(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// Keeps the epoch ticker running while it lives (see [`EpochTicker::ticking`]).
pub struct Ticking(Arc<EpochTicker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn the_ticker_ticks_only_while_a_guard_is_held() {
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = ticks.clone();
        let ticker = EpochTicker::start(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "idle: no tick");

        let guard = ticker.ticking();
        let started = Instant::now();
        while ticks.load(Ordering::Relaxed) < 5 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "ticks while held"
            );
            std::thread::sleep(EPOCH_TICK);
        }
        drop(guard);
        // The tick in progress when the guard went may still land.
        std::thread::sleep(Duration::from_millis(20));
        let after = ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            after,
            "released: no more ticks"
        );
        ticker.stop();
    }

    #[test]
    fn the_callback_yields_before_the_deadline_and_traps_after_it() {
        let soon = Instant::now() + Duration::from_secs(60);
        assert!(matches!(on_tick(soon), UpdateDeadline::YieldCustom(1, _)));
        assert!(matches!(on_tick(Instant::now()), UpdateDeadline::Interrupt));
    }
}
