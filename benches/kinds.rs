//! Session kinds side by side: exec round trip of a no-op (`pass` in a REPL against `true` in
//! a shell, and an echo turn of the test suite's fake agent), and runtime memory per idle
//! session of each kind: the heap bytes the runtime holds for them (a counting allocator;
//! exact, whatever the allocator reuses) and VmRSS growth (coarse). The children are separate
//! processes and are not counted. A terminal session (the default: the configured shell,
//! interactive, under a 120 x 40 screen) is measured idle, its scrollback (2,000 lines) still
//! empty; `benches/terminal.rs` measures one whose scrollback is full, its worst case.
//!
//! A debug session's step round trip (`debug_step` over, the stop looked up with the top
//! frame's locals) and its runtime memory are measured on the interpreter `BENCH_PYTHON`
//! names (default `.venv/bin/python`, which scripts/test.sh creates with debugpy).
//!
//! Run: `cargo bench --bench kinds` (prints a Markdown table). `BENCH_EXECS` (default 3000),
//! `BENCH_SESSIONS` (default 200) and `BENCH_DEBUG_SESSIONS` (default 40; each one is three
//! Python processes) size it.

use std::time::Instant;

use actix::SystemRunner;
use stablehand::session::kind::DebugOptions;
use stablehand::session::messages::{CreateRequest, DebugStatus, Exec, Step};
use stablehand::session::Kind;
use stablehand::{Config, Handle, Runtime};

mod common;
use common::{env, idle_memory};

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
    idle_memory(&sys, &h, sessions, || request(Kind::Process));
    println!("| kind | sessions | runtime heap per idle session | VmRSS growth per session |\n|---|---|---|---|");
    let debug_sessions = env("BENCH_DEBUG_SESSIONS", 40);
    for (kind, n) in [
        (Kind::Shell, sessions),
        (Kind::Process, sessions),
        (Kind::Repl, sessions),
        (Kind::Agent, sessions),
        (Kind::Terminal, sessions),
        (Kind::Debug, debug_sessions),
    ] {
        let (heap, rss) = idle_memory(&sys, &h, n, || request(kind));
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
