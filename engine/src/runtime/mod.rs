//! Threads, rings and the session handle.
