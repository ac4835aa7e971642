//! Worker threads run at the requested nice value, read back from the kernel's own view of
//! each thread (`/proc/self/task/<tid>/stat`), not from what the engine reports. A test binary of
//! its own: the threads are told apart by name, so no other test's engine may run beside it.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

use trunkline::{Engine, EngineConfig};

/// Nice values of this process's threads whose name starts with `prefix`.
fn thread_nices(prefix: &str) -> Vec<i32> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        // Fields after the parenthesised name: state is field 3, nice is field 19.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        nices.push(after_name.split(' ').nth(19 - 3).unwrap().parse().unwrap());
    }
    nices
}

/// Drops `engine` and waits until its workers have left `/proc/self/task`: a thread that has
/// been told to stop can still be listed for a moment, and would be taken for the next engine's.
fn drop_and_wait(engine: Engine) {
    drop(engine);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !thread_nices("trunkline-worke").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped engine's workers are still there after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn process_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19 - 3).unwrap().parse().unwrap()
}

#[test]
fn workers_take_the_requested_nice_value() {
    // One engine at a time: the threads are told apart by name only.
    let base = process_nice();
    // A higher nice value is granted to anyone, so this holds unprivileged too.
    let wanted = (base + 4).min(19);
    let engine =
        Engine::new(EngineConfig { workers: Some(2), worker_nice: wanted, ..Default::default() }).unwrap();
    assert_eq!(engine.prioritised_workers(), 2);
    assert_eq!(thread_nices("trunkline-worke"), vec![wanted; 2]);
    drop_and_wait(engine);

    let engine =
        Engine::new(EngineConfig { workers: Some(2), worker_nice: 0, ..Default::default() }).unwrap();
    assert_eq!(engine.prioritised_workers(), 2);
    assert_eq!(thread_nices("trunkline-worke"), vec![base; 2]);
    drop_and_wait(engine);

    // The default asks for -10: granted with CAP_SYS_NICE (as root here), refused without, and
    // then the workers stay at the process's value and the engine says so.
    let engine = Engine::new(EngineConfig { workers: Some(2), ..Default::default() }).unwrap();
    let nices = thread_nices("trunkline-worke");
    match engine.prioritised_workers() {
        2 => assert_eq!(nices, vec![-10; 2]),
        0 => assert_eq!(nices, vec![base; 2]),
        n => panic!("{n} of 2 workers prioritised"),
    }
    // The host's own thread is never touched.
    assert_eq!(process_nice(), base);
}
