//! Helpers shared by the integration tests.

use std::future::Future;
use std::time::{Duration, Instant};

use stablehand::session::messages::{CreateRequest, Exec, ExecResult};
use stablehand::session::{Kind, StateKind};
use stablehand::{Config, Handle, Runtime, SessionId};

/// Upper bound for any single await in a test (generous: the suite must pass on a machine
/// loaded several times over).
pub const LIMIT: Duration = Duration::from_secs(60);

/// A config for tests: two arbiters, short grace, fast sweeps.
pub fn config() -> Config {
    let mut c = Config::default();
    c.runtime.arbiters = 2;
    c.runtime.sweep_interval_ms = 20;
    c.session.end_grace_ms = 500;
    c.store.in_memory = true;
    // Start-up time is not what these tests measure; a debugger or interpreter starting on a
    // heavily loaded machine can take longer than the default 10 s.
    c.session.startup_timeout_ms = 45_000;
    c
}

/// Runs `f` with a fresh runtime inside its own actix System, then shuts it down.
pub fn with_runtime<F, Fut>(config: Config, f: F)
where
    F: FnOnce(Runtime) -> Fut,
    Fut: Future<Output = Runtime>,
{
    let sys = actix::System::new();
    sys.block_on(async move {
        let rt = Runtime::start(config).expect("runtime starts");
        let rt = bounded(Duration::from_secs(90), f(rt)).await;
        bounded(LIMIT, rt.shutdown()).await;
    });
}

/// Awaits `fut`, failing the test if it takes longer than `limit`.
pub async fn bounded<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("operation timed out")
}

/// A shell session.
pub async fn shell(h: &Handle) -> SessionId {
    bounded(LIMIT, h.create(CreateRequest::default()))
        .await
        .expect("shell starts")
        .session_id
}

/// A process session running `argv`.
pub async fn process(h: &Handle, argv: &[&str]) -> SessionId {
    let req = CreateRequest {
        kind: Some(Kind::Process),
        command: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    bounded(LIMIT, h.create(req))
        .await
        .expect("process starts")
        .session_id
}

/// Runs `cmd` with a 10 s timeout and expects success of the call.
pub async fn exec(h: &Handle, id: SessionId, cmd: &str) -> ExecResult {
    exec_with(h, id, cmd, 10_000).await
}

/// Runs `cmd` with `timeout_ms`.
pub async fn exec_with(h: &Handle, id: SessionId, cmd: &str, timeout_ms: u64) -> ExecResult {
    let req = Exec {
        input: cmd.into(),
        timeout_ms: Some(timeout_ms),
        interactive: false,
    };
    bounded(LIMIT, h.exec(id, req))
        .await
        .expect("exec succeeds")
}

/// Polls the (lock-free) state until it is `want`, failing after `LIMIT`. State changes have
/// no subscription API, so this observes them; it never stands in for a fixed sleep.
pub async fn until_state(h: &Handle, id: SessionId, want: StateKind) {
    let start = Instant::now();
    loop {
        let info = h.state(id).await.expect("state");
        if info.state == want {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "session never became {want:?}; it is {}; its processes: {}",
            info.state_detail,
            info.pid.map(describe_group).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Each process of group `pgid` with its name, state, parent and signal masks, for failures.
pub fn describe_group(pgid: u32) -> String {
    let (live, zombies) = group_members(pgid);
    let mut text = format!("zombies {zombies:?}");
    for pid in live {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let fields: Vec<&str> = status
            .lines()
            .filter(|l| {
                [
                    "Name", "State", "PPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
                ]
                .iter()
                .any(|k| l.starts_with(&format!("{k}:")))
            })
            .collect();
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let call = syscall.split_whitespace().next().unwrap_or("?");
        text.push_str(&format!("; {pid}: {} syscall {call}", fields.join(" ")));
    }
    text
}

/// Pids of live (non-zombie) processes in process group `pgid`, and of zombies, from /proc.
pub fn group_members(pgid: u32) -> (Vec<u32>, Vec<u32>) {
    let mut live = Vec::new();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            if fields[0] == "Z" {
                zombies.push(pid);
            } else {
                live.push(pid);
            }
        }
    }
    (live, zombies)
}

/// True while process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Everything `stream` holds, from cursor 0.
pub async fn read_all(
    h: &Handle,
    id: SessionId,
    stream: stablehand::session::Stream,
) -> stablehand::session::messages::ReadResult {
    let req = stablehand::session::messages::Read {
        stream,
        cursor: Some(0),
        ..Default::default()
    };
    bounded(LIMIT, h.read(id, req)).await.expect("read")
}

/// Long-polls `stream` from `cursor` until what it read contains `want`; returns that text
/// and the cursor after it. Fails naming `want` if the stream ends or `LIMIT` passes first.
pub async fn read_until(
    h: &Handle,
    id: SessionId,
    stream: stablehand::session::Stream,
    cursor: u64,
    want: &str,
) -> (String, u64) {
    read_until_checked(h, id, stream, cursor, want, |_| {}).await
}

/// [`read_until`], with `check` asserting on every page read (that the session is still
/// busy, say).
pub async fn read_until_checked(
    h: &Handle,
    id: SessionId,
    stream: stablehand::session::Stream,
    mut cursor: u64,
    want: &str,
    mut check: impl FnMut(&stablehand::session::messages::ReadResult),
) -> (String, u64) {
    let mut text = String::new();
    let start = Instant::now();
    while !text.contains(want) {
        assert!(
            start.elapsed() < LIMIT,
            "{want:?} never arrived on {stream:?}; read {text:?}"
        );
        let req = stablehand::session::messages::Read {
            stream,
            cursor: Some(cursor),
            wait_ms: Some(5000),
            ..Default::default()
        };
        let page = bounded(LIMIT, h.read(id, req)).await.expect("read");
        check(&page);
        assert!(
            !page.data.is_empty() || !page.eof,
            "{stream:?} ended without {want:?}; read {text:?}"
        );
        text.push_str(&page.data);
        cursor = page.cursor;
    }
    (text, cursor)
}

/// The next stdout output after the default cursor, waiting up to 5 s for it.
pub async fn read_next(h: &Handle, id: SessionId) -> stablehand::session::messages::ReadResult {
    let req = stablehand::session::messages::Read {
        wait_ms: Some(5000),
        ..Default::default()
    };
    bounded(LIMIT, h.read(id, req)).await.expect("read")
}

/// A named pipe a command can wait on (`read _ < PATH`) until the test opens it: the event a
/// test controls, where a fixed `sleep` in the command would only guess how long is enough.
pub struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = std::ffi::CString::new(dir.path().join("gate").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads one NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        Self { dir }
    }

    /// Shell text that blocks until [`Gate::open`].
    pub fn wait(&self) -> String {
        format!("read _ < '{}'", self.path().display())
    }

    /// The pipe's path, for code in another language to open.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("gate")
    }

    /// Lets the waiting command go on, once it is waiting (fails the test after `LIMIT`).
    pub async fn open(&self) {
        let start = Instant::now();
        while !self.try_open() {
            assert!(start.elapsed() < LIMIT, "nobody waited at the gate");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`Gate::open`] for tests outside an async runtime.
    pub fn open_blocking(&self) {
        let start = Instant::now();
        while !self.try_open() {
            assert!(start.elapsed() < LIMIT, "nobody waited at the gate");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Opens the gate if someone waits at it (a non-blocking open of a FIFO fails with
    /// ENXIO while it has no reader).
    fn try_open(&self) -> bool {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path())
        {
            Ok(mut f) => {
                f.write_all(b"go\n").expect("write the gate");
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => false,
            Err(e) => panic!("open the gate: {e}"),
        }
    }
}

/// Waits until the main thread of `pid` is blocked in `clock_nanosleep` (a `sleep` or
/// Python's `time.sleep`), as `/proc/PID/syscall` shows.
pub async fn until_sleeping(pid: u32) {
    let start = Instant::now();
    let want = libc::SYS_clock_nanosleep.to_string();
    loop {
        let now = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if now.split_whitespace().next() == Some(want.as_str()) {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{pid} never slept; it is in {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until no runtime holds the data dir: the first one's arbiter threads drop their
/// store handles (and with the last, the lock) shortly after its shutdown returns.
pub fn wait_until_unlocked(dir: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir.join(stablehand::store::LOCK_FILE)).unwrap();
    let start = std::time::Instant::now();
    // SAFETY: flock on a descriptor this function owns.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(
            start.elapsed() < LIMIT,
            "the first runtime never released its data dir"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above; closing the file would release it too.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// Opens the sled database of a data dir once the runtime that used it has let it go: sled
/// closes its files (and its lock) from its own threads shortly after the last handle drops.
pub fn open_sled_when_free(path: &std::path::Path) -> sled::Db {
    let start = Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                assert!(start.elapsed() < LIMIT, "sled never let {path:?} go: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("opening {path:?}: {e}"),
        }
    }
}

/// Waits (bounded) until `done` holds, polling every few ms: for conditions nothing announces
/// (a process that is not ours exiting, a cgroup emptying).
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When process `pid` started (`/proc/PID/stat` field 22), while it exists, zombie or not:
/// with the pid, it names one process even after the pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether process `pid`, which started at `started` ([`start_time`]), has been reaped.
pub fn reaped(pid: u32, started: u64) -> bool {
    start_time(pid) != Some(started)
}

/// Whether process `pid` has exited (gone, or a zombie waiting for its parent).
pub fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}
