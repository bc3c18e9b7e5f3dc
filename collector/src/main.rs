//! The `collector` command: serve, check a configuration, print challenge answers, tail, status,
//! replay dead letters, set up Fastly (see `cli`).

mod cli;

/// Keeps the memory of large buffers (request bodies, PutRecords calls) returnable to the
/// system: glibc otherwise raises its mmap threshold as such buffers are freed and then keeps
/// them in per-thread arenas, which is where peak RSS came from under load (scripts/bench).
/// (glibc only: the static musl build has its own allocator.)
#[cfg(target_env = "gnu")]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(target_env = "gnu"))]
fn tune_allocator() {}

fn main() -> std::process::ExitCode {
    tune_allocator();
    cli::main()
}
