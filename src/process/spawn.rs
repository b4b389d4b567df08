//! Spawning a child into its own process group, with PR_SET_PDEATHSIG and rlimits, watched by
//! the guardian.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::net::unix::pipe;

use super::guardian;

/// Resource limits applied to a child before it executes its program. `None` keeps the
/// server's own limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rlimits {
    /// Maximum number of open file descriptors (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Maximum number of processes for the user (RLIMIT_NPROC).
    pub nproc: Option<u64>,
    /// Maximum virtual memory in bytes (RLIMIT_AS).
    pub address_space_bytes: Option<u64>,
    /// Maximum CPU time in seconds (RLIMIT_CPU).
    pub cpu_seconds: Option<u64>,
    /// Maximum size of a file the child may write, in bytes (RLIMIT_FSIZE).
    pub file_size_bytes: Option<u64>,
    /// Maximum core dump size in bytes (RLIMIT_CORE).
    pub core_bytes: Option<u64>,
}

impl Rlimits {
    fn pairs(&self) -> Vec<(libc::__rlimit_resource_t, u64)> {
        [
            (libc::RLIMIT_NOFILE, self.nofile),
            (libc::RLIMIT_NPROC, self.nproc),
            (libc::RLIMIT_AS, self.address_space_bytes),
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (libc::RLIMIT_FSIZE, self.file_size_bytes),
            (libc::RLIMIT_CORE, self.core_bytes),
        ]
        .into_iter()
        .filter_map(|(r, v)| v.map(|v| (r, v)))
        .collect()
    }
}

/// Everything needed to start a child.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Program and arguments; the program is looked up on `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// Working directory; must exist.
    pub cwd: PathBuf,
    /// The complete environment of the child (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub rlimits: Rlimits,
}

/// A running child and the parent ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// The child; awaiting `wait()` reaps it.
    pub child: tokio::process::Child,
    /// Process id, which is also the id of its process group.
    pub pid: u32,
    /// Writable end of the child's stdin.
    pub stdin: pipe::Sender,
    /// Readable end of the child's stdout.
    pub stdout: pipe::Receiver,
    /// Readable end of the child's stderr.
    pub stderr: pipe::Receiver,
}

/// Spawns `spec` in a new process group whose id is the child's pid, and asks the
/// [`guardian`] to watch that group.
///
/// Must be called on a long-lived thread that runs a tokio reactor: the pipes are registered
/// with the current runtime, and the parent-death signal fires when this *thread* exits.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Spawned> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "command is empty"))?;
    let (stdin_r, stdin_w) = io::pipe()?;
    let (stdout_r, stdout_w) = io::pipe()?;
    let (stderr_r, stderr_w) = io::pipe()?;

    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(OwnedFd::from(stdin_r))
        .stdout(OwnedFd::from(stdout_w))
        .stderr(OwnedFd::from(stderr_w))
        .process_group(0);
    let limits = spec.rlimits.pairs();
    let announcer = guardian::announcer();
    // SAFETY: getpid is async-signal-safe; read before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, getpid, send, setrlimit); it allocates nothing (`limits` and
    // `announcer` were built before).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody will signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // PDEATHSIG covers only this process; the guardian covers its group. Announced
            // before exec, so the program never runs unwatched.
            announcer.announce_self();
            for &(resource, value) in &limits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = tokio::process::Command::from(cmd).spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    // Again from the server, which (unlike the child) can log a failure; a duplicate is
    // harmless.
    guardian::watch(pid);
    Ok(Spawned {
        child,
        pid,
        stdin: pipe::Sender::from_owned_fd(OwnedFd::from(stdin_w))?,
        stdout: pipe::Receiver::from_owned_fd(OwnedFd::from(stdout_r))?,
        stderr: pipe::Receiver::from_owned_fd(OwnedFd::from(stderr_r))?,
    })
}
