//! Backpressure gates (DESIGN.md section 7): byte budgets for work in flight.
//!
//! A [`Gate`] counts bytes that are in memory because of requests not yet answered
//! (produce data not yet committed, fetch responses not yet sent). Taking bytes is one
//! atomic check-and-increment, so a burst of concurrent requests cannot all slip past the
//! limit. The bytes come back when the [`Permit`] is dropped, whatever path the request
//! took: answered, failed, panicked or abandoned by a closed connection.
//!
//! The connection reader waits on the gate *before* reading a request's payload off the
//! socket, so when the gate is closed the kernel's buffers fill and TCP pushes back on the
//! client; the accept loop stops accepting while any gate is closed. Produce and fetch
//! have separate gates, so a fetch storm does not stall producers and vice versa.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::Notify;

/// Gauges a gate keeps current (one set per gate).
#[derive(Clone)]
pub struct GateGauges {
    pub inflight: IntGauge,
    pub waiting: IntGauge,
}

pub struct Gate {
    name: &'static str,
    limit: u64,
    inflight: AtomicU64,
    waiting: AtomicU64,
    released: Notify,
    gauges: Option<GateGauges>,
}

/// Bytes held in a gate; given back on drop.
#[must_use = "the bytes are released as soon as the permit is dropped"]
pub struct Permit {
    gate: Arc<Gate>,
    bytes: u64,
}

impl Gate {
    pub fn new(name: &'static str, limit: u64, gauges: Option<GateGauges>) -> Arc<Gate> {
        Arc::new(Gate {
            name,
            limit: limit.max(1),
            inflight: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            released: Notify::new(),
            gauges,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    /// Requests currently waiting for bytes.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Open while some bytes are free.
    pub fn is_open(&self) -> bool {
        self.inflight() < self.limit
    }

    /// Takes `bytes` if they fit now, atomically. A request bigger than the whole budget
    /// is let through when the gate is empty, so it is served alone instead of never.
    pub fn try_acquire(self: &Arc<Self>, bytes: u64) -> Option<Permit> {
        let taken = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let fits = cur.checked_add(bytes).is_some_and(|sum| sum <= self.limit);
                (fits || cur == 0).then(|| cur.saturating_add(bytes))
            })
            .is_ok();
        if !taken {
            return None;
        }
        if let Some(g) = &self.gauges {
            g.inflight.add(bytes as i64);
        }
        Some(Permit {
            gate: self.clone(),
            bytes,
        })
    }

    /// Waits until `bytes` fit, then takes them.
    pub async fn acquire(self: &Arc<Self>, bytes: u64) -> Permit {
        if let Some(p) = self.try_acquire(bytes) {
            return p;
        }
        let _waiting = WaitingGuard::new(self);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Register before checking, so a release between the check and the wait is
            // not missed.
            released.as_mut().enable();
            if let Some(p) = self.try_acquire(bytes) {
                return p;
            }
            released.await;
        }
    }

    /// Waits until the gate has free bytes (used to pause accepting connections).
    pub async fn wait_open(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.is_open() {
                return;
            }
            released.await;
        }
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.inflight.fetch_sub(bytes, Ordering::AcqRel);
        if let Some(g) = &self.gauges {
            g.inflight.sub(bytes as i64);
        }
        self.released.notify_waiters();
    }
}

/// Counts a waiter for as long as it waits (also when its future is dropped).
struct WaitingGuard<'a>(&'a Gate);

impl<'a> WaitingGuard<'a> {
    fn new(gate: &'a Gate) -> Self {
        gate.waiting.fetch_add(1, Ordering::AcqRel);
        if let Some(g) = &gate.gauges {
            g.waiting.inc();
        }
        WaitingGuard(gate)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(g) = &self.0.gauges {
            g.waiting.dec();
        }
    }
}

impl Permit {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back what is no longer needed (e.g. a fetch reserved its maximum and built a
    /// smaller response). Never grows.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.gate.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(self.bytes);
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({} bytes of {})", self.bytes, self.gate.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let waker = futures::task::noop_waker();
        f.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn check_and_increment_is_atomic_under_contention() {
        let gate = Gate::new("test", 1000, None);
        let granted = std::sync::atomic::AtomicU64::new(0);
        let permits = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Some(p) = gate.try_acquire(7) {
                            granted.fetch_add(7, Ordering::Relaxed);
                            permits.lock().unwrap().push(p);
                        }
                    }
                });
            }
        });
        // 142 × 7 = 994 fit; the 143rd would make 1001.
        assert_eq!(granted.load(Ordering::Relaxed), 994);
        assert_eq!(gate.inflight(), 994);
        drop(permits);
        assert_eq!(gate.inflight(), 0, "every permit gave its bytes back");
    }

    #[test]
    fn oversized_requests_pass_only_when_empty() {
        let gate = Gate::new("test", 100, None);
        let big = gate.try_acquire(500).expect("alone it may pass");
        assert!(gate.try_acquire(1).is_none());
        assert!(!gate.is_open());
        drop(big);
        let small = gate.try_acquire(60).unwrap();
        assert!(
            gate.try_acquire(500).is_none(),
            "not while others hold bytes"
        );
        drop(small);
    }

    #[test]
    fn release_on_every_path() {
        let gate = Gate::new("test", 100, None);
        // Normal drop.
        drop(gate.try_acquire(10).unwrap());
        // Unwinding drops the permit too.
        let g2 = gate.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _p = g2.try_acquire(50).unwrap();
            panic!("handler failed");
        }));
        assert!(r.is_err());
        // A permit owned by a task that is dropped (connection closed) is released.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let g3 = gate.clone();
        let fut = async move {
            let _p = g3.try_acquire(30).unwrap();
            std::future::pending::<()>().await;
        };
        let mut fut = Box::pin(fut);
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(gate.inflight(), 30);
        drop(fut);
        drop(rt);
        // Shrinking gives back the difference.
        let mut p = gate.try_acquire(80).unwrap();
        p.shrink_to(20);
        assert_eq!(gate.inflight(), 20);
        p.shrink_to(50);
        assert_eq!(p.bytes(), 20, "never grows");
        drop(p);
        assert_eq!(gate.inflight(), 0);
    }

    #[test]
    fn waiters_wake_when_bytes_come_back() {
        let gate = Gate::new("test", 100, None);
        let held = gate.try_acquire(90).unwrap();
        let mut waiting = pin!(gate.acquire(50));
        assert!(poll_once(waiting.as_mut()).is_pending());
        assert_eq!(gate.waiting(), 1);
        let mut open = pin!(gate.wait_open());
        assert!(
            poll_once(open.as_mut()).is_ready(),
            "10 bytes are still free"
        );
        drop(held);
        match poll_once(waiting.as_mut()) {
            Poll::Ready(p) => assert_eq!(p.bytes(), 50),
            Poll::Pending => panic!("released bytes must wake the waiter"),
        }
        assert_eq!(gate.waiting(), 0);
        assert_eq!(
            gate.inflight(),
            0,
            "the permit was dropped at the end of the match"
        );
    }

    #[test]
    fn a_cancelled_waiter_is_not_counted() {
        let gate = Gate::new("test", 10, None);
        let _held = gate.try_acquire(10).unwrap();
        {
            let mut w = pin!(gate.acquire(5));
            assert!(poll_once(w.as_mut()).is_pending());
            assert_eq!(gate.waiting(), 1);
        }
        assert_eq!(gate.waiting(), 0);
        let mut closed = pin!(gate.wait_open());
        assert!(
            poll_once(closed.as_mut()).is_pending(),
            "full gate: accepting pauses"
        );
    }
}
