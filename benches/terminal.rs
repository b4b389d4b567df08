//! Terminal sessions (issue 15) through the runtime, each figure against a bare
//! pseudo-terminal measured in the same run:
//!
//! - Keystroke round trip: `terminal_send` of one character to `cat` until the screen shows
//!   it (`wait_for`), against writing the byte to the master of a bare pty running `cat` and
//!   reading its echo back. Two modes. Cooked, the default: the line discipline echoes the
//!   character at once and `cat` only gets the line at Enter; this is what a user typing at
//!   a prompt sees. Raw (`stty raw -echo; exec cat`): `cat` reads the byte and writes it back,
//!   so the program is in the loop. Each keystroke waits for a new screen: the characters
//!   cycle through a-z and the pattern is the new character at the end of the row; the row
//!   is cleared (Ctrl-U, or Enter and `ESC [ K` in raw mode) every 100 characters.
//! - Throughput: `cat` of a large text file (lines of about 80 bytes, some UTF-8) typed into
//!   a terminal session's shell as `cat FILE; echo DONE-<n>`, until the marker shows on the
//!   screen, waited for with `wait_for` and, separately, by polling `terminal_screen`; against
//!   `cat FILE` on a bare pty whose master is read as fast as possible, and that same read
//!   fed to the emulator (alacritty_terminal, 120 x 40, 2,000 lines of scrollback, as the
//!   kind configures it) in this thread, and against the emulator alone, fed the same bytes
//!   from memory. Bytes are those read from the master (the line discipline turns each `\n`
//!   into `\r\n`).
//! - Runtime memory per idle terminal session (the configured shell, interactive, 120 x 40),
//!   heap and VmRSS growth, against a shell session; and with its scrollback full.
//!
//! The two sides alternate in rounds, so drift on a shared machine hits both alike.
//!
//! Run: `cargo bench --bench terminal` (prints Markdown tables). Knobs: `BENCH_KEYS` (default
//! 2000 timed keystrokes per mode and side), `BENCH_ROUNDS` (5), `BENCH_MB` (64, the file's
//! size in MB), `BENCH_SESSIONS` (200 idle sessions per row), `BENCH_FILLED_SESSIONS` (20
//! sessions with full scrollback, about 8 MiB of heap each).

use std::io::{ErrorKind, Write as _};
use std::time::{Duration, Instant};

use actix::SystemRunner;
use alacritty_terminal::event::VoidListener;
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::term::{Config as TermConfig, Term};
use alacritty_terminal::vte::ansi::Processor;
use stablehand::process::pty::TermSize;
use stablehand::process::{spawn, Rlimits, SpawnSpec, Spawned};
use stablehand::session::messages::{CreateRequest, TerminalScreen, TerminalSend};
use stablehand::session::Kind;
use stablehand::{Config, Handle, Runtime, SessionId};

mod common;
use common::{env, idle_memory};

const COLS: u16 = 120;
const ROWS: u16 = 40;
/// Lines of scrollback of a terminal session (`session::kind::terminal::SCROLLBACK`).
const SCROLLBACK: usize = 2000;
/// Characters typed on a row before it is cleared (well inside 120 columns: no wrap).
const ROW: usize = 100;
const WARM_UP: usize = 200;

/// How `cat` gets the keystrokes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The line discipline echoes; `cat` sleeps until Enter.
    Cooked,
    /// `stty raw -echo`: `cat` reads each byte and writes it back.
    Raw,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cooked => "cooked (line discipline echoes)",
            Mode::Raw => "raw (`cat` echoes)",
        }
    }

    fn argv(self) -> Vec<String> {
        match self {
            Mode::Cooked => vec!["cat".into()],
            Mode::Raw => vec!["sh".into(), "-c".into(), "stty raw -echo; exec cat".into()],
        }
    }

    /// Keys that clear the row, their bytes, and the last byte of what comes back.
    fn clear(self) -> (&'static [&'static str], &'static [u8], u8) {
        match self {
            // ECHOKE: the kill character is echoed as "\b \b" per character.
            Mode::Cooked => (&["ctrl-u"], b"\x15", b'\x08'),
            Mode::Raw => (&["enter", "escape", "[", "K"], b"\r\x1b[K", b'K'),
        }
    }
}

/// The `i`th character typed on a row: a-z in turn, so the row never ends as it did before.
fn key(i: usize) -> char {
    (b'a' + (i % 26) as u8) as char
}

/// `argv` under a new 120 x 40 pseudo-terminal, spawned as the runtime spawns a terminal
/// session's program.
fn bare(argv: Vec<String>) -> Spawned {
    spawn(&SpawnSpec {
        argv,
        cwd: std::env::temp_dir(),
        env: vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("TERM".into(), "xterm-256color".into()),
        ],
        rlimits: Rlimits::default(),
        run_as: None,
        join: Vec::new(),
        terminal: Some(TermSize {
            cols: COLS,
            rows: ROWS,
        }),
        batch: false,
    })
    .expect("spawns under a pty")
}

/// Closes the master (the program gets SIGHUP) and reaps the program.
async fn end_bare(p: Spawned) {
    let Spawned {
        child,
        stdin,
        stdout,
        stderr,
        terminal,
        ..
    } = p;
    drop((stdin, stdout, stderr, terminal));
    let _ = child.wait().await;
}

/// Writes `bytes` to the master, then reads until a read ends with `last`.
async fn bare_echo(p: &Spawned, bytes: &[u8], last: u8, buf: &mut [u8]) {
    let mut off = 0;
    while off < bytes.len() {
        match p.stdin.try_write(&bytes[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                p.stdin.writable().await.expect("master writable")
            }
            Err(e) => panic!("writing to the master: {e}"),
        }
    }
    loop {
        p.stdout.readable().await.expect("master readable");
        match p.stdout.try_read(buf) {
            Ok(0) => panic!("the program ended"),
            Ok(n) if buf[n - 1] == last => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the master: {e}"),
        }
    }
}

/// One side of the keystroke measurement: a bare pty or a terminal session, and where the
/// row is.
enum Typist {
    Bare(Spawned, Vec<u8>),
    Session(SessionId),
}

struct Keys {
    mode: Mode,
    typist: Typist,
    col: usize,
}

impl Keys {
    async fn bare(mode: Mode) -> Self {
        let p = bare(mode.argv());
        // Let `stty` run before the first keystroke.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self {
            mode,
            typist: Typist::Bare(p, vec![0; 64 * 1024]),
            col: 0,
        }
    }

    async fn session(h: &Handle, mode: Mode) -> Self {
        let req = CreateRequest {
            kind: Some(Kind::Terminal),
            command: Some(mode.argv()),
            ..Default::default()
        };
        let id = h.create(req).await.expect("create").session_id;
        // Settled (150 ms quiet): `stty` has run.
        h.terminal_send(id, TerminalSend::default())
            .await
            .expect("settle");
        Self {
            mode,
            typist: Typist::Session(id),
            col: 0,
        }
    }

    /// Types one character and waits until it shows.
    async fn type_one(&mut self, h: &Handle) {
        let c = key(self.col);
        match &mut self.typist {
            Typist::Bare(p, buf) => bare_echo(p, &[c as u8], c as u8, buf).await,
            Typist::Session(id) => {
                let req = TerminalSend {
                    text: Some(c.to_string()),
                    wait_for: Some(format!("{c}\n")),
                    timeout_ms: Some(5000),
                    ..Default::default()
                };
                let view = h.terminal_send(*id, req).await.expect("terminal_send");
                assert_eq!(view.waited, Some(true), "{c:?} never showed: {view:#?}");
            }
        }
        self.col += 1;
    }

    /// Clears the row once it is full (not timed).
    async fn clear_if_full(&mut self, h: &Handle) {
        if self.col < ROW {
            return;
        }
        let (keys, bytes, last) = self.mode.clear();
        match &mut self.typist {
            Typist::Bare(p, buf) => bare_echo(p, bytes, last, buf).await,
            Typist::Session(id) => {
                let req = TerminalSend {
                    keys: keys.iter().map(|k| k.to_string()).collect(),
                    wait_for: Some(r"\A\n".into()),
                    timeout_ms: Some(5000),
                    ..Default::default()
                };
                let view = h.terminal_send(*id, req).await.expect("clear");
                assert_eq!(
                    view.waited,
                    Some(true),
                    "the row was not cleared: {view:#?}"
                );
            }
        }
        self.col = 0;
    }

    /// `n` keystrokes, their latencies in µs appended to `lat`.
    async fn run(&mut self, h: &Handle, n: usize, lat: &mut Vec<f64>) {
        for _ in 0..n {
            self.clear_if_full(h).await;
            let t = Instant::now();
            self.type_one(h).await;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }

    async fn end(self, h: &Handle) {
        match self.typist {
            Typist::Bare(p, _) => end_bare(p).await,
            Typist::Session(id) => {
                h.end(id, Default::default()).await.expect("end");
            }
        }
    }
}

/// Median and p99 of `lat`.
fn percentiles(lat: &mut [f64]) -> (f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let n = lat.len();
    (lat[n / 2], lat[(n * 99 / 100).min(n - 1)])
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Keystroke round trips of both modes, session against bare pty, alternating in rounds.
fn keystrokes(sys: &SystemRunner, h: &Handle, n: usize, rounds: usize) {
    const MODES: [Mode; 2] = [Mode::Cooked, Mode::Raw];
    // Per mode: [bare, session] latencies, and their medians per round.
    let mut lat: [[Vec<f64>; 2]; 2] = Default::default();
    let mut per_round: [[Vec<f64>; 2]; 2] = Default::default();
    sys.block_on(async {
        let mut typists = Vec::new();
        for mode in MODES {
            typists.push([Keys::bare(mode).await, Keys::session(h, mode).await]);
        }
        let mut ignored = Vec::new();
        for pair in &mut typists {
            for t in pair {
                t.run(h, WARM_UP, &mut ignored).await;
            }
        }
        for _ in 0..rounds {
            for (m, pair) in typists.iter_mut().enumerate() {
                for (side, t) in pair.iter_mut().enumerate() {
                    let mut round = Vec::with_capacity(n / rounds);
                    t.run(h, n / rounds, &mut round).await;
                    per_round[m][side].push(median(&round));
                    lat[m][side].extend(round);
                }
            }
        }
        for pair in typists {
            for t in pair {
                t.end(h).await;
            }
        }
    });
    println!(
        "\n| mode | path | median | p99 | median per round | ratio of medians to bare pty |\n|---|---|---|---|---|---|"
    );
    for (m, mode) in MODES.into_iter().enumerate() {
        let (b50, b99) = percentiles(&mut lat[m][0]);
        let (s50, s99) = percentiles(&mut lat[m][1]);
        let rounds = |r: &[f64]| {
            r.iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "| {} | bare pty: write the byte, read the echo | {b50:.1} µs | {b99:.1} µs | {} | 1.00 |",
            mode.name(),
            rounds(&per_round[m][0])
        );
        println!(
            "| {} | `terminal_send` with `wait_for` | {s50:.1} µs | {s99:.1} µs | {} | {:.2} |",
            mode.name(),
            rounds(&per_round[m][1]),
            s50 / b50
        );
    }
}

/// A file of `bytes` bytes of text: lines of about 80 bytes, words with some UTF-8.
fn text_file(bytes: usize) -> tempfile::NamedTempFile {
    const WORDS: &[&str] = &[
        "the",
        "session",
        "runtime",
        "warning:",
        "unused",
        "variable",
        "src/session/io.rs:118:9",
        "größe",
        "naïve",
        "café",
        "日本語",
        "→",
        "✓",
        "λx.x",
        "error[E0308]:",
        "mismatched",
        "types",
        "cargo",
        "build",
        "--release",
        "42",
        "0x7f3a",
        "Compiling",
        "alacritty_terminal",
        "v0.26.0",
        "ok",
        "fn",
        "main()",
        "{",
        "}",
    ];
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut written, mut line) = (0, String::with_capacity(128));
    while written < bytes {
        line.clear();
        while line.len() < 72 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            line.push_str(WORDS[(seed >> 33) as usize % WORDS.len()]);
            line.push(' ');
        }
        line.push('\n');
        out.write_all(line.as_bytes()).expect("write");
        written += line.len();
    }
    out.flush().expect("flush");
    drop(out);
    file
}

/// The emulator as the terminal kind configures it.
struct Emulator {
    term: Term<VoidListener>,
    parser: Processor,
}

struct Size;

impl Dimensions for Size {
    fn total_lines(&self) -> usize {
        ROWS.into()
    }
    fn screen_lines(&self) -> usize {
        ROWS.into()
    }
    fn columns(&self) -> usize {
        COLS.into()
    }
}

impl Emulator {
    fn new() -> Self {
        let config = TermConfig {
            scrolling_history: SCROLLBACK,
            ..TermConfig::default()
        };
        Self {
            term: Term::new(config, &Size, VoidListener),
            parser: Processor::new(),
        }
    }
}

/// `cat path` on a bare pty, the master read until its end (and fed to an emulator when
/// `emulate`): (bytes, seconds, reads).
async fn bare_cat(path: &str, emulate: bool) -> (u64, f64, u64) {
    let mut emulator = emulate.then(Emulator::new);
    let mut buf = vec![0; 64 * 1024];
    let t = Instant::now();
    let p = bare(vec!["cat".into(), path.into()]);
    let (mut total, mut reads) = (0u64, 0u64);
    loop {
        if p.stdout.readable().await.is_err() {
            break;
        }
        match p.stdout.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                reads += 1;
                if let Some(e) = &mut emulator {
                    e.parser.advance(&mut e.term, &buf[..n]);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => break, // EIO: the program has closed the terminal
        }
    }
    let secs = t.elapsed().as_secs_f64();
    end_bare(p).await;
    (total, secs, reads)
}

/// The emulator alone: `stream` fed in `chunk`-byte pieces, from memory. Seconds.
fn emulate_only(stream: &[u8], chunk: usize) -> f64 {
    let mut e = Emulator::new();
    let t = Instant::now();
    for piece in stream.chunks(chunk) {
        e.parser.advance(&mut e.term, piece);
    }
    t.elapsed().as_secs_f64()
}

/// `cat path; echo DONE-<marker>` typed into a terminal session's shell, until the marker
/// shows: with `wait_for`, or by polling `terminal_screen` every 5 ms. (bytes, seconds).
async fn session_cat(
    h: &Handle,
    id: SessionId,
    path: &str,
    marker: usize,
    poll: bool,
) -> (u64, f64) {
    let before = h
        .terminal_screen(id, TerminalScreen::default())
        .await
        .expect("screen")
        .cursor_out;
    // The typed line shows `$((...))`, the output the number: only the output matches.
    let text = format!("cat {path}; echo DONE-$(({marker}+0))");
    let done = format!("DONE-{marker}");
    let t = Instant::now();
    let after = if poll {
        let req = TerminalSend {
            text: Some(text),
            keys: vec!["enter".into()],
            timeout_ms: Some(0),
            ..Default::default()
        };
        h.terminal_send(id, req).await.expect("terminal_send");
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let view = h
                .terminal_screen(id, TerminalScreen::default())
                .await
                .expect("screen");
            if view.screen.contains(&done) {
                break view.cursor_out;
            }
        }
    } else {
        let req = TerminalSend {
            text: Some(text),
            keys: vec!["enter".into()],
            wait_for: Some(format!("(?m)^{done}$")),
            timeout_ms: Some(600_000),
            ..Default::default()
        };
        let view = h.terminal_send(id, req).await.expect("terminal_send");
        assert_eq!(view.waited, Some(true), "{done} never showed: {view:#?}");
        view.cursor_out
    };
    (after - before, t.elapsed().as_secs_f64())
}

fn throughput(sys: &SystemRunner, h: &Handle, mb: usize, rounds: usize) {
    let file = text_file(mb * 1_000_000);
    let path = file.path().to_str().expect("UTF-8 path").to_owned();
    let size = file.as_file().metadata().expect("metadata").len();
    // What the master reads: the line discipline turns each "\n" into "\r\n".
    let mut stream = Vec::with_capacity(size as usize * 103 / 100);
    for &b in &std::fs::read(&path).expect("read the file") {
        if b == b'\n' {
            stream.push(b'\r');
        }
        stream.push(b);
    }
    // [raw, raw + emulator, emulator alone, session wait_for, session polled]: MB/s per round.
    let mut rates: [Vec<f64>; 5] = Default::default();
    let mut bytes = [0u64; 5];
    let mut reads = 0;
    sys.block_on(async {
        let req = CreateRequest {
            kind: Some(Kind::Terminal),
            ..Default::default()
        };
        let id = h.create(req).await.expect("create").session_id;
        h.terminal_send(id, TerminalSend::default())
            .await
            .expect("the prompt");
        let mut marker = 1000;
        for _ in 0..rounds {
            for (i, rate) in rates.iter_mut().enumerate() {
                progress(&format!("throughput: path {i}"));
                let (n, secs) = match i {
                    0 | 1 => {
                        let (n, secs, r) = bare_cat(&path, i == 1).await;
                        if i == 0 {
                            reads = r;
                        }
                        (n, secs)
                    }
                    // In pieces of the size the bare pty's reads returned, on average.
                    2 => {
                        let chunk = (bytes[0] / reads.max(1)).max(1) as usize;
                        (stream.len() as u64, emulate_only(&stream, chunk))
                    }
                    _ => {
                        marker += 1;
                        session_cat(h, id, &path, marker, i == 4).await
                    }
                };
                bytes[i] = n;
                rate.push(n as f64 / 1e6 / secs);
            }
        }
        h.end(id, Default::default()).await.expect("end");
    });
    println!(
        "\n`cat` of {:.1} MB of text ({size} bytes; {} bytes through the master, in {} reads of \
         {} bytes on average on the bare pty)\n",
        size as f64 / 1e6,
        bytes[0],
        reads,
        bytes[0] / reads.max(1),
    );
    println!("| path | MB/s per round | median | ratio to raw pty |\n|---|---|---|---|");
    let raw = median(&rates[0]);
    for (name, r) in [
        "bare pty, master read to the end",
        "bare pty + the emulator in this thread",
        "the emulator alone, fed from memory in pieces of that average read",
        "terminal session, `terminal_send` with `wait_for` the marker",
        "terminal session, `terminal_screen` polled every 5 ms",
    ]
    .into_iter()
    .zip(&rates)
    {
        let per_round = r
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let m = median(r);
        println!("| {name} | {per_round} | {m:.1} | {:.2} |", m / raw);
    }
}

fn terminal_request(command: Option<Vec<String>>) -> CreateRequest {
    CreateRequest {
        kind: Some(Kind::Terminal),
        command,
        ..Default::default()
    }
}

/// Fills a terminal's scrollback, then waits for `cat` (the session stays idle).
fn filling() -> Option<Vec<String>> {
    Some(vec![
        "sh".into(),
        "-c".into(),
        "seq 1 5000; exec cat".into(),
    ])
}

fn memory(sys: &SystemRunner, h: &Handle, sessions: usize, filled: usize) {
    // One throw-away round grows the runtime's own structures first.
    idle_memory(sys, h, sessions, || CreateRequest {
        kind: Some(Kind::Shell),
        ..Default::default()
    });
    let shell = idle_memory(sys, h, sessions, || CreateRequest {
        kind: Some(Kind::Shell),
        ..Default::default()
    });
    progress("memory: shell sessions measured");
    let idle = idle_memory(sys, h, sessions, || terminal_request(None));
    progress("memory: idle terminal sessions measured");
    let full = idle_memory(sys, h, filled, || terminal_request(filling()));
    progress("memory: terminal sessions with full scrollback measured");
    // That `seq 1 5000` does fill the scrollback.
    let held = sys.block_on(async {
        let id = h
            .create(terminal_request(filling()))
            .await
            .expect("create")
            .session_id;
        let req = TerminalSend {
            wait_for: Some(r"(?m)^5000$".into()),
            ..Default::default()
        };
        h.terminal_send(id, req).await.expect("terminal_send");
        let view = h
            .terminal_screen(
                id,
                TerminalScreen {
                    scrollback: SCROLLBACK as u32,
                },
            )
            .await
            .expect("screen");
        h.end(id, Default::default()).await.expect("end");
        view.scrollback.len()
    });
    println!(
        "\n| session | sessions | runtime heap per idle session | VmRSS growth per session | heap ratio to shell |\n|---|---|---|---|---|"
    );
    for (name, n, (heap, rss)) in [
        ("shell", sessions, shell),
        (
            "terminal (shell, 120 x 40), idle at its prompt",
            sessions,
            idle,
        ),
        (
            "terminal after `seq 1 5000` (scrollback full)",
            filled,
            full,
        ),
    ] {
        println!(
            "| {name} | {n} | {heap:.2} KiB | {rss:.2} KiB | {:.1} |",
            heap / shell.0
        );
    }
    println!("\n(scrollback lines held after `seq 1 5000`: {held})");
}

/// A line on stderr with the time since the first call, to follow a run.
fn progress(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {what}", start.elapsed().as_secs_f64());
}

fn main() {
    let keys = env("BENCH_KEYS", 2000);
    let rounds = env("BENCH_ROUNDS", 5).max(1);
    let mb = env("BENCH_MB", 64);
    let sessions = env("BENCH_SESSIONS", 200);
    let filled = env("BENCH_FILLED_SESSIONS", 20);
    let sys = actix::System::new();
    let mut config = Config::default();
    config.store.in_memory = true;
    config.runtime.max_sessions = sessions.max(filled) + 10;
    let rt = sys
        .block_on(async { Runtime::start(config) })
        .expect("runtime");
    let h = rt.handle();
    progress("start");
    // Memory first, before the throughput rounds churn the allocator.
    memory(&sys, &h, sessions, filled);
    progress("memory measured");
    // Let the ended sessions' programs go before timing anything.
    sys.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    keystrokes(&sys, &h, keys, rounds);
    progress("keystrokes measured");
    throughput(&sys, &h, mb, rounds);
    progress("throughput measured");
    sys.block_on(rt.shutdown());
}
