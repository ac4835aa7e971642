//! Per-session counters: everything dropped, filled or late is counted here.
