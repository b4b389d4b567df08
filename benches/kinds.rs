//! Session kinds side by side: exec round trip of a no-op (`pass` in a REPL against `true` in
//! a shell, and an echo turn of the test suite's fake agent), and runtime memory per idle
//! session of each kind: the heap bytes the runtime holds for them (a counting allocator;
//! exact, whatever the allocator reuses) and VmRSS growth (coarse). The children are separate
//! processes and are not counted.
//!
//! A debug session's step round trip (`debug_step` over, the stop looked up with the top
//! frame's locals) and its runtime memory are measured on the interpreter `BENCH_PYTHON`
//! names (default `.venv/bin/python`, which scripts/test.sh creates with debugpy).
//!
//! Run: `cargo bench --bench kinds` (prints a Markdown table). `BENCH_EXECS` (default 3000),
//! `BENCH_SESSIONS` (default 200) and `BENCH_DEBUG_SESSIONS` (default 40; each one is three
//! Python processes) size it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use actix::SystemRunner;
use stablehand::session::kind::DebugOptions;
use stablehand::session::messages::{CreateRequest, DebugStatus, Exec, Step};
use stablehand::session::Kind;
use stablehand::{Config, Handle, Runtime};

/// Live heap bytes of this process.
static HEAP: AtomicIsize = AtomicIsize::new(0);

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

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn request(kind: Kind) -> CreateRequest {
    let command = match kind {
        Kind::Agent => Some(vec![
            "python3".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py").into(),
        ]),
        Kind::Process => Some(vec!["cat".into()]),
        Kind::Debug => Some(vec![python(), "-m".into(), "debugpy.adapter".into()]),
        _ => None,
    };
    let debug = (kind == Kind::Debug).then(|| DebugOptions {
        program: "spinner.py".into(),
        ..DebugOptions::default()
    });
    CreateRequest {
        kind: Some(kind),
        command,
        debug,
        cwd: (kind == Kind::Debug)
            .then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures").into()),
        ..CreateRequest::default()
    }
}

/// The interpreter with debugpy.
fn python() -> String {
    std::env::var("BENCH_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").into())
}

/// Median and p99 of `debug_step` over, in µs, on a program paused at its first line.
fn step_round_trip(sys: &SystemRunner, h: &Handle, n: usize) -> (f64, f64) {
    sys.block_on(async {
        let id = h
            .create(request(Kind::Debug))
            .await
            .expect("create")
            .session_id;
        let step = Step::default();
        for _ in 0..n / 10 {
            h.debug_step(id, step).await.expect("warm-up step");
        }
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = h.debug_step(id, step).await.expect("step");
            assert_eq!(r.status, DebugStatus::Stopped);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        h.end(id, Default::default()).await.expect("end");
        lat.sort_by(|a, b| a.total_cmp(b));
        (lat[n / 2], lat[n * 99 / 100])
    })
}

/// Median and p99 round trip of `input`, in µs.
fn round_trip(sys: &SystemRunner, h: &Handle, kind: Kind, input: &str, n: usize) -> (f64, f64) {
    sys.block_on(async {
        let id = h.create(request(kind)).await.expect("create").session_id;
        let exec = || Exec {
            input: input.into(),
            ..Exec::default()
        };
        for _ in 0..n / 10 {
            h.exec(id, exec()).await.expect("warm-up exec");
        }
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = h.exec(id, exec()).await.expect("exec");
            assert!(!r.timed_out);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        h.end(id, Default::default()).await.expect("end");
        lat.sort_by(|a, b| a.total_cmp(b));
        (lat[n / 2], lat[n * 99 / 100])
    })
}

/// Runtime memory per idle session of `kind`, in KiB: (heap, VmRSS growth).
fn idle_memory(sys: &SystemRunner, h: &Handle, kind: Kind, n: usize) -> (f64, f64) {
    sys.block_on(async {
        // The store's pending set is written once per flush interval (1 s); settle first.
        let settle = Duration::from_millis(1500);
        tokio::time::sleep(settle).await;
        let (rss, heap) = (rss_kib(), HEAP.load(Relaxed));
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(h.create(request(kind)).await.expect("create").session_id);
        }
        tokio::time::sleep(settle).await;
        let (rss_after, heap_after) = (rss_kib(), HEAP.load(Relaxed));
        for id in ids {
            h.end(id, Default::default()).await.expect("end");
        }
        let heap_kib = (heap_after - heap) as f64 / 1024.0 / n as f64;
        let rss_kib = rss_after.saturating_sub(rss) as f64 / n as f64;
        (heap_kib, rss_kib)
    })
}

fn main() {
    let execs = env("BENCH_EXECS", 3000);
    let sessions = env("BENCH_SESSIONS", 200);
    let sys = actix::System::new();
    let mut config = Config::default();
    config.store.in_memory = true;
    config.runtime.max_sessions = sessions + 10;
    let rt = sys
        .block_on(async { Runtime::start(config) })
        .expect("runtime");
    let h = rt.handle();
    // Memory first, after one throw-away round that grows the runtime's own structures
    // (index, store, allocator arenas), so the first kind measured does not pay for them.
    idle_memory(&sys, &h, Kind::Process, sessions);
    println!("| kind | sessions | runtime heap per idle session | VmRSS growth per session |\n|---|---|---|---|");
    let debug_sessions = env("BENCH_DEBUG_SESSIONS", 40);
    for (kind, n) in [
        (Kind::Shell, sessions),
        (Kind::Process, sessions),
        (Kind::Repl, sessions),
        (Kind::Agent, sessions),
        (Kind::Debug, debug_sessions),
    ] {
        let (heap, rss) = idle_memory(&sys, &h, kind, n);
        println!("| {kind} | {n} | {heap:.2} KiB | {rss:.2} KiB |");
    }
    let shell = round_trip(&sys, &h, Kind::Shell, "true", execs);
    let repl = round_trip(&sys, &h, Kind::Repl, "pass", execs);
    let agent = round_trip(&sys, &h, Kind::Agent, "hi", execs / 3);
    let step = step_round_trip(&sys, &h, execs / 3);
    println!("\n| measure | median | p99 | ratio to shell `true` |\n|---|---|---|---|");
    for (name, (p50, p99)) in [
        ("shell exec `true`", shell),
        ("repl exec `pass`", repl),
        ("agent turn (fake agent echo, 3 lines)", agent),
        ("debug step over (debugpy; stop, stack, locals)", step),
    ] {
        println!(
            "| {name} | {p50:.1} µs | {p99:.1} µs | {:.2} |",
            p50 / shell.0
        );
    }
    sys.block_on(rt.shutdown());
}
