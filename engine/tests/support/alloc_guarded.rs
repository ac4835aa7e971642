//! The global allocator of a test binary that runs sessions: `assert_no_alloc`'s, so the engine's
//! allocation guard (`trunkline::alloc_guard`, on in the tests' debug builds) holds there too: a
//! session step that allocates or frees, on a worker or inline, aborts the binary. The binaries
//! that count allocations (`thread_allocations`) allocate through the same guard.

#[global_allocator]
static ALLOCATOR: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;
