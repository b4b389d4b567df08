//! Physical baselines for `scripts/compare.sh`, without stablehand in the path:
//!
//! - `spawn_wait_bash`: spawn `bash --noprofile --norc -c true` and wait for it, per iteration;
//! - `pipe_round_trip`: write `true; echo __M` to one warm `bash --noprofile --norc` over a
//!   pipe and read its stdout until the `__M` line, per iteration.
//! - `pipe_throughput`: the same round trip, closed loop, on 64 warm bashes at once, driven by
//!   one thread with poll(2): the most `true` round trips per second this machine's bash and
//!   pipes can do, with no server in the way.
//! - `protocol_throughput`: the same with 64 interactive bashes under a shell session's own
//!   protocol (the start-up and exec lines come from `stablehand::session::kind`; a round trip
//!   ends when both end markers, stdout and stderr, are in): the ceiling for exec throughput
//!   at 64 clients, whatever the server costs.
//!
//! Run: `cargo bench --bench baselines`. `BENCH_SECS` sets seconds per measurement (default 3).
//! Prints one JSON object on stdout and nothing else:
//! `{"spawn_wait_bash": S, "pipe_round_trip": S, "pipe_throughput": S, "protocol_throughput": S}`
//! with
//! `S = {"n", "p50_us", "p90_us", "p99_us", "max_us", "mean_us", "per_s"}` (the throughput
//! rows add `"bashes"`; their latencies are of single round trips under that load).

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

/// Spawns bash with `args` and piped stdin and stdout (and stderr when `stderr`).
fn bash(args: &[&str], stderr: bool) -> std::process::Child {
    Command::new("bash")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .expect("spawning bash")
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
        let mut child = bash(&["--noprofile", "--norc"], false);
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

/// Bashes driven at once by the throughput rows, like the 64 clients of the exec scenario.
const PARALLEL: usize = 64;

/// One bash of a throughput row: its stdin, the pipes it answers on, and what ends a round
/// trip on each of them.
struct Driven {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::process::ChildStdout,
    /// stderr, for the session protocol (its end marker comes on both streams).
    errs: Option<std::process::ChildStderr>,
    bufs: [Vec<u8>; 2],
    done: [bool; 2],
    line: Vec<u8>,
    end: Vec<u8>,
    sent: Instant,
}

impl Driven {
    /// bash with `args`, whose round trip writes `line` and ends with `end` on stdout (and on
    /// stderr when `stderr`).
    fn new(args: &[&str], stderr: bool, line: Vec<u8>, end: Vec<u8>) -> Self {
        let mut child = bash(args, stderr);
        Self {
            stdin: child.stdin.take().expect("piped"),
            out: child.stdout.take().expect("piped"),
            errs: child.stderr.take(),
            child,
            bufs: Default::default(),
            done: [false, !stderr],
            line,
            end,
            sent: Instant::now(),
        }
    }

    /// A bare `bash --noprofile --norc` answering `true; echo __M` with `__M`.
    fn bare() -> Self {
        let (line, end) = (b"true; echo __M\n".to_vec(), b"__M\n".to_vec());
        Self::new(&["--noprofile", "--norc"], false, line, end)
    }

    /// An interactive bash under a shell session's own protocol (its start-up line and exec
    /// line, from `stablehand::session::kind`), ended by the markers on stdout and stderr.
    fn session_protocol() -> Self {
        use stablehand::session::kind::{protocol_exec_line, protocol_startup_line};
        let marker = |token: &str| format!("{token}\n").into_bytes();
        let start = protocol_startup_line();
        let args = ["--noprofile", "--norc", "--noediting", "-i"];
        let mut me = Self::new(&args, true, start.bytes, marker(&start.token));
        me.block_round_trip();
        let exec = protocol_exec_line("true");
        me.end = marker(&exec.token);
        me.line = exec.bytes;
        me
    }

    fn fds(&self) -> [std::os::fd::RawFd; 2] {
        use std::os::fd::AsRawFd as _;
        [
            self.out.as_raw_fd(),
            self.errs.as_ref().map_or(-1, |e| e.as_raw_fd()),
        ]
    }

    fn send(&mut self) {
        self.done = [false, self.errs.is_none()];
        self.sent = Instant::now();
        self.stdin.write_all(&self.line).expect("writing to bash");
    }

    /// Reads what pipe `i` has; true when the round trip is complete.
    fn read(&mut self, i: usize, scratch: &mut [u8]) -> bool {
        use std::io::Read as _;
        let got = match i {
            0 => self.out.read(scratch),
            _ => self.errs.as_mut().expect("polled").read(scratch),
        }
        .expect("reading bash");
        assert!(got > 0, "bash closed a pipe");
        self.bufs[i].extend_from_slice(&scratch[..got]);
        if self.bufs[i].ends_with(&self.end) {
            self.bufs[i].clear();
            self.done[i] = true;
        }
        self.done == [true, true]
    }

    /// One round trip, waiting with poll (warm-up and start-up).
    fn block_round_trip(&mut self) {
        let mut scratch = [0u8; 4096];
        self.send();
        loop {
            let mut fds = self.fds().map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: `fds` is a valid array of two pollfd structures.
            assert!(
                unsafe { libc::poll(fds.as_mut_ptr(), 2, 5000) } > 0,
                "bash stopped answering"
            );
            for (i, fd) in fds.iter().enumerate() {
                if fd.revents != 0 && self.read(i, &mut scratch) {
                    return;
                }
            }
        }
    }

    fn finish(self) {
        drop(self.stdin);
        let mut child = self.child;
        let _ = child.wait();
    }
}

/// `PARALLEL` warm bashes, each with one round trip in flight at all times for `dur`, driven
/// by this one thread with poll(2).
fn throughput(dur: Duration, make: fn() -> Driven) -> Value {
    let mut bashes: Vec<Driven> = (0..PARALLEL).map(|_| make()).collect();
    for b in &mut bashes {
        for _ in 0..20 {
            b.block_round_trip();
        }
    }
    let mut fds: Vec<libc::pollfd> = bashes
        .iter()
        .flat_map(|b| b.fds())
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut lat_ns = Vec::with_capacity(1 << 18);
    let mut scratch = [0u8; 4096];
    let start = Instant::now();
    bashes.iter_mut().for_each(Driven::send);
    let mut in_flight = PARALLEL;
    while in_flight > 0 {
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 5000) };
        assert!(n > 0, "bash stopped answering");
        for k in 0..fds.len() {
            if fds[k].revents == 0 {
                continue;
            }
            fds[k].revents = 0;
            let b = &mut bashes[k / 2];
            if b.read(k % 2, &mut scratch) {
                lat_ns.push(b.sent.elapsed().as_nanos() as u64);
                if start.elapsed() < dur {
                    b.send();
                } else {
                    // Done: poll ignores negative descriptors.
                    fds[k - k % 2].fd = -1;
                    fds[k - k % 2 + 1].fd = -1;
                    in_flight -= 1;
                }
            }
        }
    }
    let wall = start.elapsed();
    bashes.into_iter().for_each(Driven::finish);
    let mut summary = Sample { lat_ns, wall }.summary();
    summary["bashes"] = json!(PARALLEL);
    summary
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

    let bare = throughput(dur, Driven::bare);
    let protocol = throughput(dur, Driven::session_protocol);

    let out = json!({
        "spawn_wait_bash": spawn.summary(),
        "pipe_round_trip": pipe.summary(),
        "pipe_throughput": bare,
        "protocol_throughput": protocol,
    });
    println!("{out}");
}
