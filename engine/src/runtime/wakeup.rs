//! The engine's wakeup handle: an `eventfd` the host can put in its own event loop, plus a
//! blocking wait with a timeout.
//!
//! Workers signal it after producing output (one write per worker pass, coalesced by the kernel
//! counter). This is the only syscall a worker makes besides sleeping.

// Only Linux has eventfd (and the runtime's thread CPU clocks and priorities are Linux's): say so
// plainly rather than fail on a missing libc symbol.
#[cfg(not(target_os = "linux"))]
compile_error!("Trunkline runs on Linux only: the engine's wakeup handle is an eventfd");

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A level-triggered wakeup signal backed by a non-blocking eventfd.
#[derive(Debug)]
pub struct Wakeup {
    fd: OwnedFd,
}

impl Wakeup {
    /// Creates the eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a non-negative return is a fresh fd we now own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is valid, open and owned by nobody else.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The fd: readable when output is waiting. Owned by the engine; do not close it.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Signals the host. Never blocks (the counter saturating is harmless: it is already set).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own open eventfd.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Resets the signal; returns whether it was set.
    pub fn drain(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own open non-blocking eventfd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut value).cast(), 8) };
        n == 8
    }

    /// Blocks until signalled or `timeout` passes (`None`: forever). Resets the signal and
    /// returns true if it was signalled. A signal delivered to the thread meanwhile (a
    /// profiler's, say) does not end the wait early, nor make it start over: it goes on for the
    /// time left.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        // Or too far off to represent: no timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        loop {
            let ms = deadline.map_or(-1, |d| poll_ms(d.saturating_duration_since(Instant::now())));
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return r > 0 && self.drain();
        }
    }
}

/// `poll`'s timeout for `left`: whole milliseconds, rounded up, so that a wait shorter than a
/// millisecond blocks rather than spinning through `poll(0)` (zero stays zero: a check).
fn poll_ms(left: Duration) -> i32 {
    let ms = left.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_then_wait_returns_at_once_and_resets() {
        let w = Wakeup::new().unwrap();
        assert!(!w.wait(Some(Duration::ZERO)));
        w.notify();
        w.notify();
        assert!(w.wait(Some(Duration::from_secs(5))));
        assert!(!w.wait(Some(Duration::ZERO)));
    }

    #[test]
    fn a_wait_lasts_at_least_its_timeout_even_under_a_millisecond() {
        let w = Wakeup::new().unwrap();
        for timeout in [Duration::from_micros(300), Duration::from_micros(1_500)] {
            let start = Instant::now();
            assert!(!w.wait(Some(timeout)));
            assert!(start.elapsed() >= timeout, "{timeout:?}: returned after {:?}", start.elapsed());
        }
        assert_eq!(poll_ms(Duration::ZERO), 0);
        assert_eq!(poll_ms(Duration::from_nanos(1)), 1);
        assert_eq!(poll_ms(Duration::from_millis(2)), 2);
        assert_eq!(poll_ms(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn wait_from_another_thread_wakes_on_notify() {
        let w = std::sync::Arc::new(Wakeup::new().unwrap());
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait(Some(Duration::from_secs(10))));
        std::thread::sleep(Duration::from_millis(20));
        w.notify();
        assert!(t.join().unwrap());
    }
}
