//! The `asyncstatus-api` binary; see `asyncstatus-api --help`.

fn main() -> anyhow::Result<()> {
    tune_allocator();
    asyncstatus_api::cli::run()
}

/// Keeps memory from piling up in glibc's malloc. Every login derives a Traffic Ops scrypt
/// key, which needs a 16 MiB buffer. glibc raises its mmap threshold after freeing such a
/// buffer, so later ones came from per-thread arenas and stayed resident: RSS grew by 16 MiB
/// for each thread that ever ran a login (96 MiB after a few). A fixed threshold keeps large
/// buffers in mmap, returned on free, and two arenas bound the fragmentation of the rest.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, and a refused setting (return 0) leaves glibc's defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
