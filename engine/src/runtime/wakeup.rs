//! The engine's wakeup handle: an `eventfd` the host can put in its own event loop, plus a
//! blocking wait with a timeout.
//!
//! Workers signal it after producing output (one write per worker pass, coalesced by the kernel
//! counter). This is the only syscall a worker makes besides sleeping.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

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
    /// returns true if it was signalled.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        loop {
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return r > 0 && self.drain();
        }
    }
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
    fn wait_from_another_thread_wakes_on_notify() {
        let w = std::sync::Arc::new(Wakeup::new().unwrap());
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait(Some(Duration::from_secs(10))));
        std::thread::sleep(Duration::from_millis(20));
        w.notify();
        assert!(t.join().unwrap());
    }
}
