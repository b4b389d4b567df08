//! Physical baselines for `scripts/compare.sh`, without stablehand in the path:
//!
//! - `spawn_wait_bash`: spawn `bash --noprofile --norc -c true` and wait for it, per iteration;
//! - `pipe_round_trip`: write `true; echo __M` to one warm `bash --noprofile --norc` over a
//!   pipe and read its stdout until the `__M` line, per iteration.
//!
//! Run: `cargo bench --bench baselines`. `BENCH_SECS` sets seconds per measurement (default 3).
//! Prints one JSON object on stdout and nothing else:
//! `{"spawn_wait_bash": S, "pipe_round_trip": S}` with
//! `S = {"n", "p50_us", "p90_us", "p99_us", "max_us", "mean_us", "per_s"}`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Iterations run before measuring, so caches, page tables and bash itself are warm.
const WARMUP_SPAWNS: usize = 20;
const WARMUP_ROUND_TRIPS: usize = 500;

/// Seconds per measurement, from `BENCH_SECS` (default 3).
fn secs() -> Duration {
    let s = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// Latencies of one measurement (nanoseconds) and the wall time it took.
struct Sample {
    lat_ns: Vec<u64>,
    wall: Duration,
}

impl Sample {
    /// Runs `op` repeatedly for `dur`, timing each call.
    fn measure(dur: Duration, mut op: impl FnMut()) -> Self {
        let mut lat_ns = Vec::with_capacity(1 << 16);
        let start = Instant::now();
        loop {
            let t = Instant::now();
            op();
            lat_ns.push(t.elapsed().as_nanos() as u64);
            if start.elapsed() >= dur {
                break;
            }
        }
        Self {
            lat_ns,
            wall: start.elapsed(),
        }
    }

    /// Summary as the JSON object `scripts/compare_report.py` reads.
    fn summary(mut self) -> Value {
        self.lat_ns.sort_unstable();
        let v = &self.lat_ns;
        let n = v.len();
        // Nearest rank: the smallest value with at least p% of the sample at or below it.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            v[rank.clamp(1, n) - 1] as f64 / 1000.0
        };
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0;
        json!({
            "n": n,
            "p50_us": pct(50.0),
            "p90_us": pct(90.0),
            "p99_us": pct(99.0),
            "max_us": v[n - 1] as f64 / 1000.0,
            "mean_us": mean,
            "per_s": n as f64 / self.wall.as_secs_f64(),
        })
    }
}

/// Spawns `bash --noprofile --norc -c true` and waits for it to exit.
fn spawn_wait() {
    let status = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", "true"])
        .status()
        .expect("spawning bash");
    assert!(status.success(), "bash -c true failed: {status}");
}

/// One warm `bash --noprofile --norc` driven over its stdin and stdout pipes.
struct WarmBash {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    line: String,
}

impl WarmBash {
    fn start() -> Self {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning bash");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
            line: String::new(),
        }
    }

    /// Writes `true; echo __M` and reads until the `__M` line.
    fn round_trip(&mut self) {
        self.stdin
            .write_all(b"true; echo __M\n")
            .expect("writing to bash");
        self.stdin.flush().expect("flushing bash's stdin");
        loop {
            self.line.clear();
            let n = self.stdout.read_line(&mut self.line).expect("reading bash");
            assert!(n > 0, "bash closed its stdout");
            if self.line == "__M\n" {
                break;
            }
        }
    }

    fn finish(self) {
        drop(self.stdin);
        let mut child = self.child;
        let _ = child.wait();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and harness probes: nothing to list or test
    }
    let dur = secs();

    for _ in 0..WARMUP_SPAWNS {
        spawn_wait();
    }
    let spawn = Sample::measure(dur, spawn_wait);

    let mut bash = WarmBash::start();
    for _ in 0..WARMUP_ROUND_TRIPS {
        bash.round_trip();
    }
    let pipe = Sample::measure(dur, || bash.round_trip());
    bash.finish();

    let out = json!({
        "spawn_wait_bash": spawn.summary(),
        "pipe_round_trip": pipe.summary(),
    });
    println!("{out}");
}
