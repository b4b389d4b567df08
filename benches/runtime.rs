//! Runtime benchmarks, each against a baseline measured in the same process and run.
//!
//! Run with `cargo bench --bench runtime`. Phases, in this order:
//!
//! 1. `idle_memory` (no criterion): VmRSS of this process before and after creating 1,000
//!    shell sessions on a fresh runtime, divided by 1,000. Runs first so that heap freed by
//!    earlier work cannot hide the growth.
//! 2. `concurrent_1000` (no criterion): with those 1,000 sessions live, 64 callers on a separate
//!    2-worker tokio runtime each exec `true` round robin over their own sessions, 20,000 execs
//!    in all. Reports p50/p99 latency, throughput and the thread count of this process.
//!    The runtime of phases 1 and 2 is then shut down.
//! 3. `exec_true` (criterion, fresh runtime with the default config): `Handle::exec("true")` on
//!    a warm session vs. the same round trip written directly over pipes to one warm bare
//!    `bash --noprofile --norc` (`true; echo __M`, read until the `__M` line).
//! 4. `create_end` (criterion, same runtime): `Handle::create` + `Handle::end` vs. spawning a
//!    bare bash with piped stdio, closing its stdin and waiting.
//!
//! Reference rows (not the targets' baselines) explain the gaps: `bash -c true`, and a bare
//! interactive bash driven synchronously with the same marker protocol a shell session uses
//! (same start-up line, same exec line, both end markers awaited), so that what bash costs under
//! that protocol can be told apart from what the actor runtime adds.
//!
//! In each group the baseline and reference rows run before the stablehand row: every ended
//! session stays in the index for `retention_ms` (24 h by default) with its stdout and stderr
//! pipes still open, and every later spawn in this process pays for the inherited descriptor
//! table (fork copies it, exec closes it), so rows measured after it would be slowed too.
//!
//! Every criterion routine uses `iter_custom` and times each operation with `Instant`; those
//! per-operation times (criterion's warm-up included) also feed the summary printed at the end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use actix::{System, SystemRunner};
use criterion::Criterion;
use futures_util::future::join_all;
use stablehand::session::kind::{protocol_exec_line, protocol_startup_line, ProtocolLine};
use stablehand::session::messages::{CreateRequest, End, Exec};
use stablehand::{Config, Handle, Runtime, SessionId};

const SESSIONS: usize = 1000;
const CALLERS: usize = 64;
const TOTAL_EXECS: usize = 20_000;
/// Sessions created at once while filling the runtime.
const CREATE_PARALLEL: usize = 8;

// ---------------------------------------------------------------------------------------------
// Small helpers

/// One `/proc/self/status` field in KiB (VmRSS and friends).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Session records in the runtime's index, whatever their state.
fn records(h: &Handle) -> usize {
    h.counts().iter().map(|(_, n)| n).sum()
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// Per-operation durations, in the order taken.
#[derive(Debug, Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Median of the first and of the last `part` of the samples, in the order taken.
    fn drift(&self, part: f64) -> (Duration, Duration) {
        let k = ((self.0.len() as f64 * part) as usize)
            .max(1)
            .min(self.0.len());
        let first = Samples(self.0[..k].to_vec()).sorted().median();
        let last = Samples(self.0[self.0.len() - k..].to_vec())
            .sorted()
            .median();
        (first, last)
    }

    fn sorted(mut self) -> Sorted {
        self.0.sort_unstable();
        Sorted(self.0)
    }
}

/// Per-operation durations, sorted.
#[derive(Debug, Default)]
struct Sorted(Vec<Duration>);

impl Sorted {
    fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    fn mean(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Sequential operations per second implied by a mean duration.
fn rate(mean: Duration) -> f64 {
    1.0 / mean.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Baselines: bare bash over std pipes

/// One bare, non-interactive bash kept warm; commands go in on stdin, a marker line comes back.
struct BareBash {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
}

impl BareBash {
    fn spawn() -> Self {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bash");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
            line: String::new(),
        }
    }

    /// `true`, then waits for the marker line.
    fn exec_true(&mut self) {
        self.stdin
            .write_all(b"true; echo __M\n")
            .expect("write to bash");
        loop {
            self.line.clear();
            let n = self
                .stdout
                .read_line(&mut self.line)
                .expect("read from bash");
            assert!(n > 0, "bare bash closed its stdout");
            if self.line == "__M\n" {
                return;
            }
        }
    }

    fn finish(self) {
        let BareBash {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let _ = child.wait();
    }
}

/// Spawn a bare bash with piped stdio (like a session), close its stdin, wait for it.
fn bare_spawn_close_wait() {
    let mut child = Command::new("bash")
        .args(["--noprofile", "--norc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash");
    drop(child.stdin.take());
    let status = child.wait().expect("wait bash");
    assert!(status.success());
}

/// `bash --noprofile --norc -c true` with null stdio.
fn bare_dash_c_true() {
    let status = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn bash");
    assert!(status.success());
}

/// A protocol line as text, with its token.
fn text(line: ProtocolLine) -> (String, String) {
    (
        String::from_utf8(line.bytes).expect("protocol lines are ASCII"),
        line.token,
    )
}

/// A bare interactive bash speaking the session marker protocol, driven synchronously with
/// poll(2) on its stdout and stderr. No actors, no threads.
struct ProtocolBash {
    child: Child,
    stdin: Option<ChildStdin>,
    out: ChildStdout,
    err: std::process::ChildStderr,
    bufs: [Vec<u8>; 2],
    /// The session's exec line for `true` and the session's prompt token.
    exec: (String, String),
}

impl ProtocolBash {
    /// Spawns bash with the session's flags in its own process group with a parent-death
    /// signal, sends the session's own start-up line
    /// (`stablehand::session::kind::protocol_startup_line`) and waits for its markers.
    fn start() -> Self {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "--noediting", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn bash");
        let mut me = Self {
            stdin: child.stdin.take(),
            out: child.stdout.take().unwrap(),
            err: child.stderr.take().unwrap(),
            child,
            bufs: [Vec::new(), Vec::new()],
            exec: text(protocol_exec_line("true")),
        };
        let (line, token) = text(protocol_startup_line());
        me.round_trip(&line, &token);
        me
    }

    fn exec_true(&mut self) {
        let (line, token) = std::mem::take(&mut self.exec);
        self.round_trip(&line, &token);
        self.exec = (line, token);
    }

    /// Writes `line`, then reads both pipes until the `PS1` marker of `token` is in on
    /// stderr (`TOKEN <number> <status> <cwd> TOKEN\n`; the session reads stdout dry at
    /// that point, which for `true` holds nothing).
    fn round_trip(&mut self, line: &str, token: &str) {
        use std::io::Read as _;
        use std::os::fd::AsRawFd as _;
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(line.as_bytes())
            .expect("write to bash");
        let end = format!(" {token}\n");
        let mut scratch = [0u8; 4096];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.out.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.err.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfd.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, 10_000) };
            assert!(rc > 0, "bash did not answer");
            if fds[0].revents != 0 {
                let n = self.out.read(&mut scratch).expect("read stdout");
                assert!(n > 0, "bash closed stdout");
                self.bufs[0].extend_from_slice(&scratch[..n]);
            }
            if fds[1].revents != 0 {
                let n = self.err.read(&mut scratch).expect("read stderr");
                assert!(n > 0, "bash closed stderr");
                self.bufs[1].extend_from_slice(&scratch[..n]);
                if self.bufs[1].ends_with(end.as_bytes()) {
                    break;
                }
            }
        }
        self.bufs[0].clear();
        self.bufs[1].clear();
    }

    /// Closes stdin (bash exits at EOF) and reaps it.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait bash");
        assert!(status.success(), "bash exited with {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Library operations

fn exec_true_req() -> Exec {
    Exec {
        input: "true".into(),
        ..Default::default()
    }
}

async fn lib_exec_true(h: &Handle, id: SessionId) -> bool {
    matches!(h.exec(id, exec_true_req()).await, Ok(r) if r.exit_code == Some(0))
}

async fn create_many(h: &Handle, n: usize) -> Vec<SessionId> {
    let per = n.div_ceil(CREATE_PARALLEL);
    let workers = (0..CREATE_PARALLEL).map(|w| {
        let h = h.clone();
        let count = per.min(n.saturating_sub(w * per));
        async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(
                    h.create(CreateRequest::default())
                        .await
                        .expect("create")
                        .session_id,
                );
            }
            ids
        }
    });
    join_all(workers).await.into_iter().flatten().collect()
}

async fn end_all(h: &Handle, ids: &[SessionId]) {
    for chunk in ids.chunks(64) {
        let ends = chunk.iter().map(|&id| h.end(id, End::default()));
        for r in join_all(ends).await {
            r.expect("end");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Phases 1 and 2: idle memory and 1,000 live sessions under 64 callers

#[derive(Debug, Default)]
struct ManyReport {
    create_wall: Duration,
    rss_before_kib: u64,
    rss_after_kib: u64,
    rss_after_execs_kib: u64,
    threads_before_runtime: usize,
    threads_runtime_idle: usize,
    caller_runtime_threads: usize,
    threads_max_during: usize,
    threads_samples: usize,
    latencies: Sorted,
    errors: usize,
    exec_wall: Duration,
}

fn many_sessions(sys: &SystemRunner, h: &Handle, threads_before_runtime: usize) -> ManyReport {
    let mut report = ManyReport {
        threads_before_runtime,
        threads_runtime_idle: threads(),
        ..Default::default()
    };

    // Warm up every arbiter (thread-local buffers, first allocations) before the baseline RSS.
    sys.block_on(async {
        let warm = create_many(h, 4).await;
        for &id in &warm {
            assert!(lib_exec_true(h, id).await, "warm-up exec failed");
        }
        end_all(h, &warm).await;
    });

    report.rss_before_kib = status_kib("VmRSS");
    let t = Instant::now();
    let ids = sys.block_on(create_many(h, SESSIONS));
    report.create_wall = t.elapsed();
    assert_eq!(ids.len(), SESSIONS);
    report.rss_after_kib = status_kib("VmRSS");

    // Callers run on their own 2-worker tokio runtime; its threads are counted separately.
    let before_callers = threads();
    let callers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("caller runtime");
    report.caller_runtime_threads = threads() - before_callers;

    let t = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let h = h.clone();
            // Caller c owns sessions c, c+64, c+128, ...: disjoint across callers.
            let own: Vec<SessionId> = ids.iter().skip(c).step_by(CALLERS).copied().collect();
            let count = TOTAL_EXECS / CALLERS + usize::from(c < TOTAL_EXECS % CALLERS);
            callers.spawn(async move {
                let mut lat = Vec::with_capacity(count);
                let mut errors = 0;
                for i in 0..count {
                    let id = own[i % own.len()];
                    let t = Instant::now();
                    let ok = lib_exec_true(&h, id).await;
                    lat.push(t.elapsed());
                    errors += usize::from(!ok);
                }
                (lat, errors)
            })
        })
        .collect();
    let (results, max_threads, samples) = sys.block_on(async {
        let mut max_threads = threads();
        let mut samples = 1;
        while !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            max_threads = max_threads.max(threads());
            samples += 1;
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("caller task"));
        }
        (results, max_threads, samples)
    });
    report.exec_wall = t.elapsed();
    report.threads_max_during = max_threads;
    report.threads_samples = samples;
    let mut all = Samples::default();
    for (lat, errors) in results {
        report.errors += errors;
        lat.into_iter().for_each(|d| all.push(d));
    }
    report.latencies = all.sorted();
    report.rss_after_execs_kib = status_kib("VmRSS");
    drop(callers);

    sys.block_on(end_all(h, &ids));
    report
}

// ---------------------------------------------------------------------------------------------
// Phases 3 and 4: criterion

#[derive(Debug, Default)]
struct CriterionReport {
    exec_lib: Sorted,
    exec_base: Sorted,
    exec_ref: Sorted,
    exec_errors: usize,
    ce_lib: Sorted,
    ce_lib_create: Sorted,
    ce_lib_end: Sorted,
    ce_base: Sorted,
    ce_base_c: Sorted,
    ce_ref: Sorted,
    /// Median create+end over the first and the last 10% of iterations.
    ce_drift: (Duration, Duration),
    /// (records, open fds) when create_end started and when it finished.
    ce_records: ((usize, usize), (usize, usize)),
}

/// A criterion routine timing `op` once per iteration and recording every duration.
fn timed(samples: &mut Samples, iters: u64, mut op: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        op();
        let d = t.elapsed();
        samples.push(d);
        total += d;
    }
    total
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g
}

fn criterion_phase(c: &mut Criterion, sys: &SystemRunner, h: &Handle) -> CriterionReport {
    let mut out = CriterionReport::default();

    // exec_true: one warm session, one warm bare bash, one warm protocol bash.
    let id = sys.block_on(async {
        let id = h
            .create(CreateRequest::default())
            .await
            .expect("create")
            .session_id;
        for _ in 0..100 {
            assert!(lib_exec_true(h, id).await, "warm-up exec failed");
        }
        id
    });
    let mut bare = BareBash::spawn();
    let mut proto = ProtocolBash::start();
    for _ in 0..100 {
        bare.exec_true();
        proto.exec_true();
    }
    let (mut lib, mut base, mut reference, mut errors) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        0,
    );
    {
        let mut g = group(c, "exec_true");
        g.bench_function("baseline_bare_bash_pipes", |b| {
            b.iter_custom(|iters| timed(&mut base, iters, || bare.exec_true()))
        });
        g.bench_function("reference_bare_bash_session_protocol", |b| {
            b.iter_custom(|iters| timed(&mut reference, iters, || proto.exec_true()))
        });
        g.bench_function("stablehand", |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let ok = lib_exec_true(h, id).await;
                        let d = t.elapsed();
                        errors += usize::from(!ok);
                        lib.push(d);
                        total += d;
                    }
                    total
                })
            })
        });
        g.finish();
    }
    bare.finish();
    proto.finish();
    sys.block_on(async { h.end(id, End::default()).await.expect("end") });
    out.exec_lib = lib.sorted();
    out.exec_base = base.sorted();
    out.exec_ref = reference.sorted();
    out.exec_errors = errors;

    // create_end
    let mut lib = Samples::default();
    let (mut lib_create, mut lib_end) = (Samples::default(), Samples::default());
    let (mut base, mut base_c, mut reference) =
        (Samples::default(), Samples::default(), Samples::default());
    {
        out.ce_records.0 = (records(h), fds());
        let mut g = group(c, "create_end");
        g.bench_function("baseline_spawn_close_stdin_wait", |b| {
            b.iter_custom(|iters| timed(&mut base, iters, bare_spawn_close_wait))
        });
        g.bench_function("reference_bash_c_true", |b| {
            b.iter_custom(|iters| timed(&mut base_c, iters, bare_dash_c_true))
        });
        g.bench_function("reference_bare_bash_session_protocol", |b| {
            b.iter_custom(|iters| timed(&mut reference, iters, || ProtocolBash::start().finish()))
        });
        g.bench_function("stablehand", |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let info = h.create(CreateRequest::default()).await.expect("create");
                        let created = t.elapsed();
                        h.end(info.session_id, End::default()).await.expect("end");
                        let d = t.elapsed();
                        lib_create.push(created);
                        lib_end.push(d - created);
                        lib.push(d);
                        total += d;
                    }
                    total
                })
            })
        });
        g.finish();
    }
    out.ce_records.1 = (records(h), fds());
    out.ce_drift = lib.drift(0.1);
    out.ce_lib = lib.sorted();
    out.ce_lib_create = lib_create.sorted();
    out.ce_lib_end = lib_end.sorted();
    out.ce_base = base.sorted();
    out.ce_base_c = base_c.sorted();
    out.ce_ref = reference.sorted();
    out
}

// ---------------------------------------------------------------------------------------------
// Summary

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn line_us(label: &str, s: &Sorted) {
    println!(
        "  {label:<34} median {:>9}  p99 {:>9}  mean {:>9}  n={}",
        us(s.median()),
        us(s.quantile(0.99)),
        us(s.mean()),
        s.len()
    );
}

fn line_ms(label: &str, s: &Sorted) {
    println!(
        "  {label:<34} median {:>8}  p99 {:>8}  {:>5.0} ops/s (1/mean)  n={}",
        ms(s.median()),
        ms(s.quantile(0.99)),
        rate(s.mean()),
        s.len()
    );
}

fn print_summary(m: &ManyReport, r: &CriterionReport, cores: usize, load: (&str, &str)) {
    println!();
    println!("==================== stablehand bench summary ====================");
    println!("per-operation times recorded with Instant inside the iter_custom loops");
    println!("(criterion's warm-up iterations included)");
    println!("loadavg at start: {}   at end: {}", load.0, load.1);
    println!();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let exec_ratio = ratio(r.exec_lib.median(), r.exec_base.median());
    println!("exec_true (errors={})", r.exec_errors);
    line_us("stablehand Handle::exec", &r.exec_lib);
    line_us("baseline bare bash (true; echo)", &r.exec_base);
    line_us("reference bare bash, same protocol", &r.exec_ref);
    println!(
        "  ratio median stablehand/baseline {exec_ratio:.2}  target <= 1.5  {}",
        met(exec_ratio <= 1.5)
    );
    println!(
        "  ratio median stablehand/reference {:.2}  (runtime overhead over bash under the same protocol)",
        ratio(r.exec_lib.median(), r.exec_ref.median())
    );
    println!();

    let ce_ratio = rate(r.ce_lib.mean()) / rate(r.ce_base.mean());
    println!("create_end");
    line_ms("stablehand create+end", &r.ce_lib);
    line_ms("  of which create", &r.ce_lib_create);
    line_ms("  of which end", &r.ce_lib_end);
    line_ms("baseline spawn, close stdin, wait", &r.ce_base);
    line_ms("reference bash -c true", &r.ce_base_c);
    line_ms("reference bare bash, same protocol", &r.ce_ref);
    println!(
        "  ratio ops/s stablehand/baseline {ce_ratio:.2}  target >= 0.8  {}  (median-based {:.2})",
        met(ce_ratio >= 0.8),
        ratio(r.ce_base.median(), r.ce_lib.median())
    );
    println!(
        "  ratio ops/s stablehand/reference same protocol {:.2};  stablehand/bash -c true {:.2}",
        rate(r.ce_lib.mean()) / rate(r.ce_ref.mean()),
        rate(r.ce_lib.mean()) / rate(r.ce_base_c.mean())
    );
    println!(
        "  drift: median create+end {} over the first 10% of iterations, {} over the last 10%",
        ms(r.ce_drift.0),
        ms(r.ce_drift.1)
    );
    println!(
        "  session records in the index {} -> {}, open fds of this process {} -> {}",
        r.ce_records.0 .0, r.ce_records.1 .0, r.ce_records.0 .1, r.ce_records.1 .1
    );
    println!();

    let per = (m.rss_after_kib as f64 - m.rss_before_kib as f64) / SESSIONS as f64;
    let per_after = (m.rss_after_execs_kib as f64 - m.rss_before_kib as f64) / SESSIONS as f64;
    println!(
        "idle_memory ({SESSIONS} sessions created in {:.2} s)",
        m.create_wall.as_secs_f64()
    );
    println!(
        "  VmRSS before {} KiB, after create {} KiB, after the concurrent run {} KiB",
        m.rss_before_kib, m.rss_after_kib, m.rss_after_execs_kib
    );
    println!(
        "  {per:.2} KiB per idle session  target <= 16  {}",
        met(per <= 16.0)
    );
    println!("  ({per_after:.2} KiB per session after {TOTAL_EXECS} execs, no target)");
    println!();

    let limit = 2 * cores + 8;
    println!(
        "concurrent_1000 ({SESSIONS} sessions, {CALLERS} callers, {TOTAL_EXECS} execs, errors={})",
        m.errors
    );
    println!(
        "  latency p50 {}  p99 {}  max {}",
        us(m.latencies.median()),
        us(m.latencies.quantile(0.99)),
        us(m.latencies.quantile(1.0))
    );
    println!(
        "  throughput {:.0} execs/s (wall {:.2} s)",
        m.latencies.len() as f64 / m.exec_wall.as_secs_f64(),
        m.exec_wall.as_secs_f64()
    );
    println!(
        "  threads: {} before the runtime, {} with the runtime idle, max {} during the run ({} samples)",
        m.threads_before_runtime, m.threads_runtime_idle, m.threads_max_during, m.threads_samples
    );
    println!(
        "  of which {} are the bench's caller-runtime workers; without them {}",
        m.caller_runtime_threads,
        m.threads_max_during - m.caller_runtime_threads
    );
    println!(
        "  threads (whole process) {}  target <= {limit}  {}",
        m.threads_max_during,
        met(m.threads_max_during <= limit)
    );
    println!("==================================================================");
}

fn main() {
    let load_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_before_runtime = threads();
    let sys = System::new();

    // Phases 1 and 2 on their own runtime, shut down afterwards: ended sessions stay in the
    // index (and keep resources) for `retention_ms`, which would otherwise weigh on phase 4.
    let mut config = Config::default();
    config.store.in_memory = true;
    config.runtime.guardian = std::env::var_os("BENCH_NO_GUARDIAN").is_none();
    config.runtime.max_sessions = SESSIONS + 100;
    let rt = sys
        .block_on(async { Runtime::start(config) })
        .expect("start runtime");
    let many = many_sessions(&sys, &rt.handle(), threads_before_runtime);
    sys.block_on(rt.shutdown());

    // Phases 3 and 4 on a fresh runtime with the default configuration.
    let rt = sys
        .block_on(async {
            let mut config = Config::default();
            config.store.in_memory = true;
            config.runtime.guardian = std::env::var_os("BENCH_NO_GUARDIAN").is_none();
            Runtime::start(config)
        })
        .expect("start runtime");
    let h = rt.handle();
    let mut c = Criterion::default().configure_from_args();
    let report = criterion_phase(&mut c, &sys, &h);
    c.final_summary();
    sys.block_on(rt.shutdown());

    print_summary(&many, &report, cores, (&load_start, &loadavg()));
}
