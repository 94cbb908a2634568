//! Keeping the forward pass's activation memory between layers and batches (glibc only).
//!
//! Every layer of a CPU forward pass allocates tensors of several to tens of MiB (the feed-forward
//! activations of 32 chunks of ~208 tokens are 41 MiB) and frees them a moment later. glibc serves
//! blocks above its mmap threshold (at most 32 MiB, moved at run time) with fresh mappings and gives
//! freed memory at the top of a heap back to the kernel above its trim threshold, so each layer paid
//! for page faults and for zeroing new pages: about 20% of a pass on 2 cores (`perf`: page faults,
//! `memset`, `unmap_page_range`). With the mmap threshold at 64 MiB and the trim threshold at
//! 128 MiB, that memory stays in the heap and is reused: +25% texts/s on short texts and +11% on
//! 208-token chunks (`benches/peers/run`'s corpora, criterion, one run each side). The price is up to 128 MiB of freed memory an
//! arena may keep instead of returning it. Elsewhere than glibc this does nothing.

/// Sets the two thresholds once for the process; later calls do nothing.
pub fn keep_activation_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_thresholds);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_thresholds() {
    const MMAP_THRESHOLD: libc::c_int = 64 << 20;
    const TRIM_THRESHOLD: libc::c_int = 128 << 20;
    // SAFETY: mallopt only sets allocator parameters from two plain integers, and glibc takes its
    // arena locks, so it is sound while other threads allocate. A value it does not accept is
    // refused (returns 0) and changes nothing.
    let (mmap, trim) = unsafe {
        (libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD), libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    };
    if mmap != 1 || trim != 1 {
        tracing::debug!(mmap, trim, "glibc refused a malloc threshold; activations use fresh mappings");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() {}
