//! What the benches that measure memory per session share: a counting global allocator (live
//! heap bytes of the process, exact whatever the allocator reuses), VmRSS, size knobs from
//! the environment, and the idle-memory measurement itself.

// Each bench that includes this module uses a part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use actix::SystemRunner;
use stablehand::session::messages::CreateRequest;
use stablehand::Handle;

/// Live heap bytes of this process.
pub static HEAP: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A size knob: the environment variable `name` as a number, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// VmRSS of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runtime memory per idle session, in KiB: (heap, VmRSS growth), over `n` sessions each
/// created from `request()` and left alone for the settle time.
pub fn idle_memory(
    sys: &SystemRunner,
    h: &Handle,
    n: usize,
    request: impl Fn() -> CreateRequest,
) -> (f64, f64) {
    sys.block_on(async {
        // The store's pending set is written once per flush interval (1 s); settle first.
        let settle = Duration::from_millis(1500);
        tokio::time::sleep(settle).await;
        let (rss, heap) = (rss_kib(), HEAP.load(Relaxed));
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(h.create(request()).await.expect("create").session_id);
        }
        tokio::time::sleep(settle).await;
        let (rss_after, heap_after) = (rss_kib(), HEAP.load(Relaxed));
        // All at once: a session whose program ignores SIGTERM (an interactive shell under a
        // terminal) takes the whole grace (3 s) to end.
        let ends = ids.into_iter().map(|id| h.end(id, Default::default()));
        for ended in futures_util::future::join_all(ends).await {
            ended.expect("end");
        }
        let heap_kib = (heap_after - heap) as f64 / 1024.0 / n as f64;
        let rss_kib = rss_after.saturating_sub(rss) as f64 / n as f64;
        (heap_kib, rss_kib)
    })
}
