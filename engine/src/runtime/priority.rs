//! Scheduling priority of the worker threads.
//!
//! A worker is asleep most of the time and must run within a fraction of a millisecond of being
//! woken; the host's threads (a bot's event loop, its LLM and TTS clients) are busy for long
//! stretches. Under the default scheduler a woken worker can wait a few milliseconds behind them
//! for a core. Measured with loadbench at 1,000 calls on two cores (single runs, so indicative):
//! with the harness's own busy threads and other jobs on the machine, latency p99 4.6 ms at the
//! default priority and 0.98 ms at nice −10; on a quiet machine p99 0.40 → 0.35 ms and p99.9
//! 1.34 → 0.86 ms; against two CPU-bound processes taking both cores it makes no difference
//! (p99 3.5 ms either way: the scheduler lets the running task finish its slice). A higher
//! priority costs nothing when the workers are idle, and their total CPU is bounded by the
//! audio they are given.

use std::io;

/// Sets the calling thread's nice value (Linux: `setpriority` on the thread id, which affects
/// only this thread). `0` leaves the thread as it is.
///
/// A nice value below the process's needs `CAP_SYS_NICE` or a large enough `RLIMIT_NICE`; the
/// error (`EPERM`/`EACCES`) is returned and the thread keeps its priority.
pub(crate) fn set_current_thread_nice(nice: i32) -> io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions and returns this thread's id.
        let tid = unsafe { libc::gettid() };
        // SAFETY: `setpriority` reads only its integer arguments; the id is this thread's.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(io::ErrorKind::Unsupported, "per-thread nice values need Linux"))
    }
}

/// The calling thread's nice value.
#[cfg(test)]
fn current_thread_nice() -> io::Result<i32> {
    // SAFETY: as above; `getpriority` can return -1 legitimately, so errno is cleared first.
    unsafe {
        *libc::__errno_location() = 0;
        let value = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        let errno = *libc::__errno_location();
        if value == -1 && errno != 0 { Err(io::Error::from_raw_os_error(errno)) } else { Ok(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_nice_applies_to_this_thread_only() {
        // Raising the nice value (lowering the priority) is always allowed, so this runs
        // unprivileged too; lowering it back may not be, which is why it runs on its own thread.
        let main_before = current_thread_nice().unwrap();
        let worker = std::thread::spawn(move || {
            let before = current_thread_nice().unwrap();
            set_current_thread_nice(before + 3).unwrap();
            (before, current_thread_nice().unwrap())
        });
        let (before, after) = worker.join().unwrap();
        assert_eq!(after, (before + 3).min(19));
        assert_eq!(current_thread_nice().unwrap(), main_before);
    }

    #[test]
    fn zero_leaves_the_thread_alone() {
        let before = current_thread_nice().unwrap();
        set_current_thread_nice(0).unwrap();
        assert_eq!(current_thread_nice().unwrap(), before);
    }
}
