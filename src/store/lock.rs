//! The data directory's lock: one server per directory. A second server fails at once with a
//! message naming the holder, instead of waiting on sled's own file lock.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::StoreError;

/// How long to wait for a lock whose recorded holder is dead.
const STRAGGLER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "stablehand.lock";

/// An exclusive `flock` on `<data_dir>/stablehand.lock`, released when dropped (or when the
/// process dies, whatever way it dies).
#[derive(Debug)]
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock without waiting, and records this process's pid in the file.
    pub(super) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let io = |e: std::io::Error| StoreError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // A server that was just killed may leave the lock to a child it was forking at that
        // moment (the child shares the descriptor until it exits, within milliseconds): when
        // the recorded holder is dead, wait a little for the lock instead of failing.
        let deadline = std::time::Instant::now() + STRAGGLER_WAIT;
        loop {
            // SAFETY: flock takes a descriptor we own and an integer operation.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(err));
            }
            let mut holder = String::new();
            file.rewind().map_err(io)?;
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().to_owned();
            // This process itself may be the holder: a runtime that just shut down releases
            // the lock when its last store handle drops, moments later.
            let holder_gone = holder
                .parse::<u32>()
                .is_ok_and(|pid| pid == std::process::id() || !crate::process::pid_alive(pid));
            if !holder_gone || std::time::Instant::now() >= deadline {
                return Err(StoreError::Locked {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

/// Where a quarantined store goes: `<data_dir>/quarantine-<UTC time>`.
pub(super) fn quarantine_dir(dir: &Path) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let mut path = dir.join(format!("quarantine-{stamp}"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("quarantine-{stamp}-{n}"));
    }
    path
}
