//! Per-session memory and process limits: a cgroup per session where the server may create
//! one (cgroup v2, or the v1 `memory` and `pids` hierarchies), else rlimits on each process.
//!
//! A session's cgroup is made before its child is spawned; the child joins it before
//! `execve` (it writes `0` to the `cgroup.procs` descriptors the parent opened), so nothing
//! the program starts runs outside it. The limits count the whole session: a fork bomb stops
//! at `processes`, a memory hog is killed by the kernel at `memory_mib` (swap included) and
//! its neighbours do not notice. When the session's process ends, everything left in its
//! cgroup (processes that left its process group with `setsid`) is killed; an empty cgroup
//! is kept for the next spawn (up to [`POOL`]), the others removed. Each runtime keeps its cgroups under `stablehand-<pid>-<n>` next to the server's
//! own cgroup; those of a server that was killed are removed by the next one.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::model::limits::{LimitCounters, LimitMode, Limits, Mechanism};

const MIB: u64 = 1024 * 1024;

/// Creates each session's cgroup, or says which rlimits stand in for one.
#[derive(Debug)]
pub struct Enforcer {
    mechanism: Mechanism,
    /// This server's directories: `[unified]` (v2) or `[memory, pids]` (v1).
    roots: Vec<PathBuf>,
    /// Why cgroups are not used, when they are not.
    why_not: Option<String>,
    /// Empty cgroups of ended spawns, reused: making and removing a memory cgroup costs
    /// about 190 µs of a create + end (offlining it is kernel work), reusing one nothing.
    pool: parking_lot::Mutex<Vec<Cgroup>>,
}

/// Empty cgroups kept for reuse at most.
const POOL: usize = 64;

static NEXT: AtomicU64 = AtomicU64::new(1);

impl Enforcer {
    /// Decides how limits are enforced: `mode` `cgroup` fails when this server may not create
    /// cgroups, `auto` falls back to rlimits (and says why in [`Enforcer::describe`]).
    pub fn new(mode: LimitMode) -> Result<Self, String> {
        let fallback = |why: String| Self {
            mechanism: Mechanism::Rlimit,
            roots: Vec::new(),
            why_not: Some(why),
            pool: Default::default(),
        };
        match mode {
            LimitMode::Off => Ok(Self::off()),
            LimitMode::Rlimit => Ok(fallback("rlimit mode is configured".into())),
            LimitMode::Cgroup | LimitMode::Auto => match own_hierarchy() {
                Ok((mechanism, roots)) => Ok(Self {
                    mechanism,
                    roots,
                    why_not: None,
                    pool: Default::default(),
                }),
                Err(why) if mode == LimitMode::Auto => Ok(fallback(why)),
                Err(why) => Err(format!("limits: cgroups are unavailable: {why}")),
            },
        }
    }

    /// No limits.
    pub fn off() -> Self {
        Self {
            mechanism: Mechanism::Off,
            roots: Vec::new(),
            why_not: None,
            pool: Default::default(),
        }
    }

    /// How limits are enforced.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// One line for the log and the metrics: the mechanism, where, and what it does not cover.
    pub fn describe(&self) -> String {
        match self.mechanism {
            Mechanism::CgroupV1 | Mechanism::CgroupV2 => {
                let dirs: Vec<String> = self.roots.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "a cgroup per session under {} (memory with swap, and processes, of the whole session)",
                    dirs.join(" and ")
                )
            }
            Mechanism::Rlimit => format!(
                "rlimits per process: memory as RLIMIT_DATA of each process, processes as RLIMIT_NPROC only for sessions running as a mapped user ({})",
                self.why_not.as_deref().unwrap_or("no cgroups")
            ),
            Mechanism::Off => "no memory or process limits".into(),
        }
    }

    /// An empty cgroup for a session that is about to (re)spawn, with `limits` written (a
    /// reused one, or a new one); `None` without cgroups. Its counters go on from where a
    /// reused one's were: compare, don't read them as totals.
    pub fn cgroup(&self, limits: &Limits) -> io::Result<Option<Cgroup>> {
        if !self.mechanism.is_cgroup() {
            return Ok(None);
        }
        let pooled = self.pool.lock().pop();
        if let Some(mut group) = pooled {
            if group.written == Some(*limits) || group.write_limits(limits).is_ok() {
                group.written = Some(*limits);
                return Ok(Some(group));
            }
            // Limits it cannot take (memory it still holds above them): a new one can.
            group.remove(None);
        }
        let name = format!("s{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut group = Cgroup {
            mechanism: self.mechanism,
            dirs: Vec::with_capacity(self.roots.len()),
            written: None,
        };
        for root in &self.roots {
            let dir = root.join(&name);
            if let Err(e) = fs::create_dir(&dir) {
                group.try_remove(None);
                return Err(e);
            }
            group.dirs.push(dir);
        }
        if let Err(e) = group.write_limits(limits) {
            group.try_remove(None);
            return Err(e);
        }
        group.written = Some(*limits);
        Ok(Some(group))
    }

    /// Takes back the cgroup of a spawn that is over: whatever is left in it is killed
    /// (except `leader`, a child its session has not reaped yet); an empty one is kept for
    /// reuse, the others removed once their processes have exited.
    pub fn release(&self, cgroup: Cgroup, leader: Option<u32>) {
        // Memory nothing can reclaim (tmpfs files a session left) would count against the
        // next session's limit: such a cgroup is not reused.
        if cgroup.kill_members(leader) == 0 && cgroup.pinned_memory() == 0 {
            let mut pool = self.pool.lock();
            if pool.len() < POOL {
                pool.push(cgroup);
                return;
            }
        }
        cgroup.remove(leader);
    }

    /// The rlimits that stand in for `limits` without cgroups: `(memory, processes)`, each
    /// `None` when not enforced this way. The process limit counts every process of the
    /// user, so it applies only to a session running as its own mapped user.
    pub fn rlimits(&self, limits: &Limits, own_user: bool) -> (Option<u64>, Option<u64>) {
        if self.mechanism != Mechanism::Rlimit {
            return (None, None);
        }
        (
            limits.memory_mib.map(|m| m.saturating_mul(MIB)),
            limits.processes.filter(|_| own_user),
        )
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        for group in self.pool.get_mut().drain(..) {
            group.try_remove(None);
        }
        for root in &self.roots {
            let _ = fs::remove_dir(root);
        }
    }
}

/// One session's cgroup (one directory per hierarchy).
#[derive(Debug)]
pub struct Cgroup {
    mechanism: Mechanism,
    dirs: Vec<PathBuf>,
    /// The limits its files hold.
    written: Option<Limits>,
}

impl Cgroup {
    fn write_limits(&self, limits: &Limits) -> io::Result<()> {
        // A reused cgroup holds its last session's limits: `None` must lift them.
        let v2 = self.mechanism == Mechanism::CgroupV2;
        let unlimited = if v2 { "max" } else { "-1" };
        let memory = limits
            .memory_mib
            .map_or(unlimited.to_owned(), |m| m.saturating_mul(MIB).to_string());
        let pids = limits.processes.map_or("max".to_owned(), |p| p.to_string());
        // Swap counts: v1 limits memory and swap together, v2 gives the session no swap.
        let writes: Vec<(&Path, &str, String)> = if v2 {
            let swap = if limits.memory_mib.is_some() {
                "0"
            } else {
                "max"
            };
            vec![
                (&self.dirs[0], "memory.max", memory),
                (&self.dirs[0], "memory.swap.max", swap.to_owned()),
                (&self.dirs[0], "pids.max", pids),
            ]
        } else {
            // v1 refuses a memory limit above the memory+swap one: raise that one first.
            let now = self
                .written
                .map_or(u64::MAX, |w| w.memory_mib.unwrap_or(u64::MAX));
            let raising = limits.memory_mib.unwrap_or(u64::MAX) > now;
            let mut memory = vec![
                (
                    self.dirs[0].as_path(),
                    "memory.limit_in_bytes",
                    memory.clone(),
                ),
                (
                    self.dirs[0].as_path(),
                    "memory.memsw.limit_in_bytes",
                    memory,
                ),
            ];
            if raising {
                memory.reverse();
            }
            memory.push((&self.dirs[1], "pids.max", pids));
            memory
        };
        for (dir, file, value) in writes {
            let path = dir.join(file);
            match fs::write(&path, value) {
                Ok(()) => {}
                // Swap accounting is optional in the kernel: without it there is no swap to count.
                Err(e) if e.kind() == io::ErrorKind::NotFound && file.contains("sw") => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("writing {}: {e}", path.display()),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Descriptors of the `cgroup.procs` files a child writes `0` to, to join (close them
    /// once it is spawned).
    pub fn open_join(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// Its directory (the memory one under v1).
    pub fn dir(&self) -> &Path {
        &self.dirs[0]
    }

    /// What the limits have done so far.
    pub fn counters(&self) -> LimitCounters {
        let (memory_file, pids_dir) = match self.mechanism {
            Mechanism::CgroupV2 => ("memory.events", &self.dirs[0]),
            _ => ("memory.oom_control", &self.dirs[1]),
        };
        LimitCounters {
            memory_kills: counter(&self.dirs[0].join(memory_file), "oom_kill"),
            process_refusals: counter(&pids_dir.join("pids.events"), "max"),
        }
    }

    /// Process ids in the cgroup.
    fn members(&self) -> Vec<libc::pid_t> {
        let dir = self.dirs.last().expect("a cgroup has a directory");
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills what is left in the cgroup (sparing `leader`, whose reaping belongs to its
    /// session), reaps those that are the server's children, and removes the directories,
    /// retrying in the background while killed processes finish exiting.
    fn remove(self, leader: Option<u32>) {
        if self.try_remove(leader) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("stablehand-cgroup".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut pause = Duration::from_millis(1);
                while Instant::now() < deadline {
                    std::thread::sleep(pause);
                    if self.try_remove(leader) {
                        return;
                    }
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                tracing::warn!(cgroup = %self.dirs[0].display(), "a session's cgroup could not be removed: processes in it do not exit");
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread to remove a session's cgroup");
        }
    }

    /// SIGKILLs every member but `leader` and reaps those that are the server's children;
    /// returns how many members there were.
    fn kill_members(&self, leader: Option<u32>) -> usize {
        let members = self.members();
        for &pid in &members {
            if Some(pid as u32) == leader {
                continue;
            }
            // SAFETY: kill and waitpid touch no memory of ours; a pid in the session's cgroup
            // is one of the session's processes (or already gone: ESRCH/ECHILD).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
        members.len()
    }

    /// Bytes charged to it that reclaim cannot free: shared memory and unevictable pages.
    fn pinned_memory(&self) -> u64 {
        let stat = self.dirs[0].join("memory.stat");
        counter(&stat, "shmem") + counter(&stat, "unevictable")
    }

    /// Kills what is left and removes the directories; `false` while processes are still
    /// exiting.
    fn try_remove(&self, leader: Option<u32>) -> bool {
        self.kill_members(leader);
        let mut all = true;
        for dir in &self.dirs {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => all = false,
            }
        }
        all
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines); 0 when absent.
fn counter(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// This runtime's cgroup directories: `stablehand-<pid>-<n>` made beside its own cgroup in the
/// unified hierarchy (when it has the memory and pids controllers) or in the v1 memory and
/// pids hierarchies. Stale ones of servers that are gone are removed on the way.
fn own_hierarchy() -> Result<(Mechanism, Vec<PathBuf>), String> {
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let v1 = |controller: &str| -> Option<PathBuf> {
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then_some(path)
        })?;
        mount_dir(&mounts, "cgroup", Some(controller), path)
    };
    let parents = match (v1("memory"), v1("pids")) {
        (Some(memory), Some(pids)) => Some((Mechanism::CgroupV1, vec![memory, pids])),
        _ => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::"));
            path.and_then(|p| mount_dir(&mounts, "cgroup2", None, p))
                .filter(|dir| {
                    let ctrls =
                        fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                    ["memory", "pids"]
                        .iter()
                        .all(|c| ctrls.split_whitespace().any(|x| x == *c))
                })
                .map(|dir| (Mechanism::CgroupV2, vec![dir]))
        }
    };
    let (mechanism, parents) = parents.ok_or_else(|| {
        "no cgroup v2 with the memory and pids controllers, nor v1 memory and pids hierarchies, holds this process".to_owned()
    })?;
    let me = std::process::id();
    let mut roots = Vec::new();
    for parent in &parents {
        sweep_stale(parent);
        if mechanism == Mechanism::CgroupV2 {
            delegate_v2(parent, me)?;
        }
        // One per enforcer: two runtimes in one process must not remove each other's.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = parent.join(format!("stablehand-{me}-{n}"));
        match fs::create_dir(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for r in &roots {
                    let _ = fs::remove_dir(r);
                }
                return Err(format!("cannot create {}: {e}", root.display()));
            }
        }
        if mechanism == Mechanism::CgroupV2 {
            fs::write(root.join("cgroup.subtree_control"), "+memory +pids")
                .map_err(|e| format!("enabling memory and pids in {}: {e}", root.display()))?;
        }
        roots.push(root);
    }
    Ok((mechanism, roots))
}

/// Enables the memory and pids controllers for the children of `dir` (cgroup v2). A cgroup
/// with processes cannot have controllers for its children, so when the kernel says so this
/// server first moves itself into a leaf `stablehand-<pid>-server` beside its sessions.
fn delegate_v2(dir: &Path, me: u32) -> Result<(), String> {
    let control = dir.join("cgroup.subtree_control");
    let enable = || fs::write(&control, "+memory +pids");
    match enable() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let leaf = dir.join(format!("stablehand-{me}-server"));
            let _ = fs::create_dir(&leaf);
            fs::write(leaf.join("cgroup.procs"), me.to_string())
                .and_then(|()| enable())
                .map_err(|e| {
                    format!(
                        "{} has other processes, so its children cannot get the memory and pids controllers: {e}",
                        dir.display()
                    )
                })
        }
        Err(e) => Err(format!(
            "enabling memory and pids in {}: {e}",
            control.display()
        )),
    }
}

/// The directory of cgroup `path` in the mounted hierarchy of type `fstype` (with
/// `controller` among its options, for v1).
fn mount_dir(
    mountinfo: &str,
    fstype: &str,
    controller: Option<&str>,
    path: &str,
) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let (ty, _source, options) = (r.next()?, r.next()?, r.next().unwrap_or(""));
        if ty != fstype {
            return None;
        }
        if let Some(c) = controller {
            if !options.split(',').any(|o| o == c) {
                return None;
            }
        }
        let l: Vec<&str> = left.split_whitespace().collect();
        let (root, mount_point) = (*l.get(3)?, *l.get(4)?);
        let rel = path.strip_prefix(root)?.trim_start_matches('/');
        let dir = Path::new(mount_point).join(rel);
        dir.is_dir().then_some(dir)
    })
}

/// Removes the `stablehand-<pid>-…` directories under `parent` of servers that are gone,
/// killing anything still in them.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("stablehand-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
            continue;
        }
        let root = entry.path();
        let mut left: Vec<Cgroup> = fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|c| c.path().is_dir())
            .map(|child| Cgroup {
                mechanism: Mechanism::CgroupV1,
                dirs: vec![child.path()],
                written: None,
            })
            .collect();
        // SIGKILLed processes leave their cgroup as they exit, a moment later: wait for
        // that briefly, and leave the rest to the next start.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut pause = Duration::from_millis(1);
        loop {
            left.retain(|group| !group.try_remove(None));
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        if !left.is_empty() {
            tracing::warn!(cgroup = %root.display(), "the cgroups of a server that is gone hold processes that do not exit");
            continue;
        }
        if fs::remove_dir(&root).is_ok() {
            tracing::info!(cgroup = %root.display(), "removed the cgroups of a server that is gone");
        }
    }
}

/// Raw descriptors of `fds`, for the child to write to.
pub(crate) fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}
