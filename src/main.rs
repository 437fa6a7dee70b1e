//! The `cpwatch` binary: all of it is in the library (`cpwatch::cli::main`).

/// mimalloc rather than the system allocator: a pass allocates and frees millions of small
/// values (events, notices, keys) on several threads, and glibc's malloc and free were a third of
/// its CPU time (`perf`, benches/PASS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cpwatch::cli::main()
}
