//! The CLI's one setting of the C allocator: glibc gives memory back to the system once more
//! than [`TRIM_THRESHOLD`] bytes are free at the top of a heap.
//!
//! Why: by default glibc raises its mmap and trim thresholds each time a large block is freed
//! (up to 32 and 64 MiB), so the pull's large short-lived buffers (an index being serialised,
//! HTTP receive buffers of ranges fetched ahead) come to be carved out of the per-thread heaps
//! and stay there once freed. Pulling the big bench image over the `wan` profile, the live heap
//! peaked at 44 MB (heaptrack) while peak RSS was 65–71 MB; with a fixed 1 MiB threshold, peak
//! RSS was 48–55 MB in the same setting at the same wall time (14.7 s, mean of three each), and
//! 41 MB against 57 MB over `lan` (`tests/bench/RESULTS.notes.md`). Fixing the trim threshold
//! also turns off glibc's raising of the mmap threshold, so blocks over 128 KiB are mapped on
//! their own and unmapped when freed; that half matters: a 1 MiB mmap threshold as well left
//! peak RSS at 65–69 MB.
//!
//! This is a process-wide choice, so only the binary makes it; programs embedding the library
//! keep their allocator as they set it (with glibc: `MALLOC_TRIM_THRESHOLD_=1048576`). An
//! explicit `MALLOC_TRIM_THRESHOLD_` in the environment wins.

/// Free bytes at the top of a heap beyond which glibc returns memory to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 20;

/// Apply the setting unless the environment sets glibc's own.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: `mallopt` only changes the allocator's parameters; it is called once, first
        // thing in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
