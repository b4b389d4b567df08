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
//!   ends when the `PS1` marker is in on stderr): the ceiling for exec throughput at 64
//!   clients, whatever the server costs.
//! - `protocol_variants` (issue 19, `BENCH_VARIANTS`): `prompts`, the protocol as it ships
//!   (the same as `protocol_throughput`), and `full`, the protocol before issue 19 (a
//!   `PROMPT_COMMAND` function printing one marker on each stream, a per-exec token assigned on
//!   the exec line), with the variants of `full` that take one piece away at a time — `PS0`,
//!   the stderr marker, `eval`'s second parse, the `</dev/null`, interactive mode (markers
//!   printed by a function at the end of the line instead of by `PROMPT_COMMAND`) — and a
//!   minimal line (`true`, then both markers by `printf`), to see where bash's time goes.
//!   `custom` takes its lines from the environment, for trying a candidate without a build.
//!   Only `prompts` and `full` keep every semantic of the shell kind.
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
    /// Which pipes carry an end marker that a round trip waits for.
    wait: [bool; 2],
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
            wait: [true, stderr],
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
    /// line, from `stablehand::session::kind`), ended by the `PS1` marker on stderr
    /// (`TOKEN <number> <status> <cwd> TOKEN\n`; `PS0` is `TOKEN\n`, without the space).
    fn session_protocol() -> Self {
        use stablehand::session::kind::{protocol_exec_line, protocol_startup_line};
        let start = protocol_startup_line();
        let end = format!(" {}\n", start.token).into_bytes();
        let mut me = Self::new(&INTERACTIVE, true, start.bytes, end);
        me.wait = [false, true];
        me.block_round_trip();
        me.line = protocol_exec_line("true").bytes;
        me
    }

    /// An interactive bash under the protocol before issue 19, ended by its markers on
    /// stdout and stderr.
    fn previous_protocol() -> Self {
        interactive(startup_with("", ""), exec_with("", ""), true)
    }

    /// bash with `args` under `startup` (answered by `start_end` on both streams), then
    /// round trips of `exec`, each ended by `end` on stdout (and stderr when `stderr`).
    fn variant(
        args: &[&str],
        startup: Vec<u8>,
        start_end: &str,
        exec: Vec<u8>,
        end: &str,
        stderr: bool,
    ) -> Self {
        let marker = |token: &str| format!("{token}\n").into_bytes();
        let mut me = Self::new(args, stderr, startup, marker(start_end));
        me.block_round_trip();
        me.line = exec;
        me.end = marker(end);
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
        self.done = self.wait.map(|w| !w);
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
        if !self.wait[i] {
            return false;
        }
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

/// The interactive flags the shell kind adds.
const INTERACTIVE: [&str; 4] = ["--noprofile", "--norc", "--noediting", "-i"];

/// An exec token of the session's form (fixed: bash's cost does not depend on its value).
const VARIANT_TOKEN: &str = "__SH_0123456789abcdef0123456789abcdef";

/// The start-up token of the protocol before issue 19.
const PREVIOUS_START_TOKEN: &str = "__SH_00000000000000000000000000000001";

/// The start-up line of the protocol before issue 19, as the shell kind wrote it then (the
/// idle token fixed): `PROMPT_COMMAND` runs `__sh_p`, which prints the exec's token on stderr
/// and `TOKEN <status> <cwd> TOKEN` on stdout; `PS0` prints the idle token on stderr.
fn previous_startup_line() -> String {
    format!(
        "set +m +H; set +o history; PS1=; PS2=; PS0='$__sh_s\\n'; unset HISTFILE; \
exit() {{ builtin exit \"$@\" 2>/dev/null; }}; __sh_rc() {{ return $__sh_r; }}; \
__sh_p() {{ __sh_r=$?;if [ -n \"$__sh_n\" ];then printf \"%s\\n\" \"$__sh_n\" >&2;\
printf \"%s %s %s %s\\n\" \"$__sh_n\" \"$__sh_r\" \"$PWD\" \"$__sh_n\";__sh_n=;else printf \"%s %s\\n\" \"$__sh_s\" \"$__sh_r\";fi; }}; \
PROMPT_COMMAND=__sh_p; __sh_s=__SH_fedcba9876543210fedcba9876543210; __sh_n={PREVIOUS_START_TOKEN}\n"
    )
}

/// The previous start-up line with `from` replaced by `to` (which must be in it).
fn startup_with(from: &str, to: &str) -> (Vec<u8>, String) {
    let text = previous_startup_line();
    assert!(
        text.contains(from),
        "the start-up line has no {from:?}: {text}"
    );
    (
        text.replacen(from, to, 1).into_bytes(),
        PREVIOUS_START_TOKEN.to_owned(),
    )
}

/// The previous protocol's exec line of `true` (token [`VARIANT_TOKEN`]), with `from`
/// replaced by `to`.
fn exec_with(from: &str, to: &str) -> Vec<u8> {
    let text = format!("__sh_n={VARIANT_TOKEN};__sh_rc;eval $'true' </dev/null\n");
    assert!(text.contains(from), "the exec line has no {from:?}: {text}");
    text.replacen(from, to, 1).into_bytes()
}

const PS0: &str = "PS0='$__sh_s\\n'";
const STDERR_MARKER: &str = "printf \"%s\\n\" \"$__sh_n\" >&2;";

/// An interactive bash under `startup` (with its token) and `exec`, ended by
/// [`VARIANT_TOKEN`] on stdout (and on stderr when `stderr`).
fn interactive((startup, token): (Vec<u8>, String), exec: Vec<u8>, stderr: bool) -> Driven {
    Driven::variant(&INTERACTIVE, startup, &token, exec, VARIANT_TOKEN, stderr)
}

fn no_ps0() -> Driven {
    interactive(startup_with(PS0, "PS0="), exec_with("", ""), true)
}

fn no_stderr_marker() -> Driven {
    interactive(startup_with(STDERR_MARKER, ""), exec_with("", ""), false)
}

/// The stderr marker printed by the prompt itself (`PS1`, which interactive bash writes to
/// stderr after `PROMPT_COMMAND`): no `>&2` redirection.
fn ps1_marker() -> Driven {
    let text = previous_startup_line();
    let mut changed = text.clone();
    for (from, to) in [
        ("PS1=;", "PS1='${__sh_e}';"),
        (STDERR_MARKER, "__sh_e=$__sh_n$'\\n';"),
        (";else ", ";else __sh_e=;"),
    ] {
        assert!(changed.contains(from), "no {from:?} in {text}");
        changed = changed.replacen(from, to, 1);
    }
    Driven::variant(
        &INTERACTIVE,
        changed.into_bytes(),
        PREVIOUS_START_TOKEN,
        exec_with("", ""),
        VARIANT_TOKEN,
        true,
    )
}

fn no_eval() -> Driven {
    interactive(
        startup_with("", ""),
        exec_with("eval $'true'", "true"),
        true,
    )
}

fn no_devnull() -> Driven {
    interactive(startup_with("", ""), exec_with(" </dev/null", ""), true)
}

/// Not interactive: the same definitions, and `__sh_p` called at the end of the exec line
/// (what `PROMPT_COMMAND` does at the prompt). The start-up line ends with its own call.
fn non_interactive() -> Driven {
    let (startup, token) = startup_with("", "");
    let mut startup = String::from_utf8(startup).expect("ASCII");
    startup.insert_str(startup.len() - 1, "; __sh_p");
    let exec = exec_with("\n", "; __sh_p\n");
    let args = ["--noprofile", "--norc"];
    Driven::variant(
        &args,
        startup.into_bytes(),
        &token,
        exec,
        VARIANT_TOKEN,
        true,
    )
}

/// Not interactive, no functions, no eval: the command, then both markers by `printf`.
fn minimal() -> Driven {
    let marker = |t: &str| {
        format!("true </dev/null; printf '%s\\n' {t} >&2; printf '%s %s %s %s\\n' {t} $? \"$PWD\" {t}\n")
    };
    let args = ["--noprofile", "--norc"];
    let start = "__SH_fedcba9876543210fedcba9876543210";
    Driven::variant(
        &args,
        marker(start).into_bytes(),
        start,
        marker(VARIANT_TOKEN).into_bytes(),
        VARIANT_TOKEN,
        true,
    )
}

/// A candidate from the environment, for exploring: `BENCH_CUSTOM_START` (the start-up
/// line), `BENCH_CUSTOM_EXEC` (the exec line), `BENCH_CUSTOM_END` (what ends each on stderr;
/// stdout is drained, not waited on), `BENCH_CUSTOM_ARGS` (bash's arguments, default the
/// interactive ones).
fn custom() -> Driven {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let line = |k: &str| format!("{}\n", var(k)).into_bytes();
    let args = std::env::var("BENCH_CUSTOM_ARGS").unwrap_or_else(|_| INTERACTIVE.join(" "));
    let args: Vec<&str> = args.split_whitespace().collect();
    let end = var("BENCH_CUSTOM_END");
    let mut me = Driven::new(
        &args,
        true,
        line("BENCH_CUSTOM_START"),
        end.clone().into_bytes(),
    );
    me.wait = [false, true];
    me.block_round_trip();
    me.line = line("BENCH_CUSTOM_EXEC");
    me
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
    let variants = [
        ("prompts", Driven::session_protocol as fn() -> Driven),
        ("full", Driven::previous_protocol),
        ("no_ps0", no_ps0),
        ("no_stderr_marker", no_stderr_marker),
        ("ps1_marker", ps1_marker),
        ("no_eval", no_eval),
        ("no_devnull", no_devnull),
        ("non_interactive", non_interactive),
        ("minimal", minimal),
        ("custom", custom),
    ];
    let mut per_variant = serde_json::Map::new();
    // BENCH_VARIANTS=1 runs them all; a comma-separated list runs those, in that order, and
    // a name may repeat (alternating two variants puts a shared machine's drift on both).
    if let Some(wanted) = std::env::var("BENCH_VARIANTS")
        .ok()
        .filter(|w| !w.is_empty())
    {
        let names: Vec<&str> = match wanted.as_str() {
            "1" => variants.iter().map(|(n, _)| *n).collect(),
            list => list.split(',').collect(),
        };
        for (k, name) in names.iter().enumerate() {
            let (_, make) = variants
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no variant {name:?}"));
            let key = if names[..k].contains(name) {
                format!("{name}#{k}")
            } else {
                (*name).to_owned()
            };
            per_variant.insert(key, throughput(dur, *make));
        }
    }

    let out = json!({
        "spawn_wait_bash": spawn.summary(),
        "pipe_round_trip": pipe.summary(),
        "pipe_throughput": bare,
        "protocol_throughput": protocol,
        "protocol_variants": per_variant,
    });
    println!("{out}");
}
