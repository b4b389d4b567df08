//! The open-file budget: how many descriptors this process holds against its
//! `RLIMIT_NOFILE`, cheaply enough to ask on every session create and every accepted
//! connection.
//!
//! Linux 6.2 and newer report the number of open descriptors as the size of `/proc/self/fd`,
//! so one `stat` (about 1 µs at any count) answers. Older kernels report 0 there; then the
//! directory is counted (about 6 ms at 19,000 descriptors), at most once per
//! [`RECOUNT_AFTER`], and the count is reused in between.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Descriptors a live session holds: its stdin, stdout and stderr pipes and its pidfd.
pub const SESSION_FDS: u64 = 4;

/// On kernels that cannot `stat` the count, how long a directory count is reused.
pub const RECOUNT_AFTER: Duration = Duration::from_millis(20);

/// Descriptors in use and the limit they count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// Open descriptors of this process (all threads).
    pub in_use: u64,
    /// The soft `RLIMIT_NOFILE`.
    pub limit: u64,
}

impl OpenFiles {
    /// Descriptors that can still be opened.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.in_use)
    }
}

/// Not enough descriptors are free to start a session and keep the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdShortage {
    /// The count when the check was made.
    pub open: OpenFiles,
    /// Descriptors the session needs.
    pub needed: u64,
    /// Descriptors kept free for connections and the store.
    pub reserved: u64,
}

/// The open descriptors of this process and its soft limit.
pub fn open_files() -> io::Result<OpenFiles> {
    Ok(OpenFiles {
        in_use: count_open()?,
        limit: soft_limit()?,
    })
}

/// Checks that a session's [`SESSION_FDS`] descriptors can be opened with `reserve` left
/// free. When the count cannot be read (no `/proc`), the session is let through: its spawn
/// then fails with the operating system's own error if descriptors run out.
pub fn check_session_room(reserve: u64) -> Result<(), FdShortage> {
    let Ok(open) = open_files() else {
        return Ok(());
    };
    if open.free() >= SESSION_FDS + reserve {
        Ok(())
    } else {
        Err(FdShortage {
            open,
            needed: SESSION_FDS,
            reserved: reserve,
        })
    }
}

/// The soft `RLIMIT_NOFILE` of this process.
pub fn soft_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to the pointer we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// The number of open descriptors: `stat` where the kernel reports it, else a directory count
/// reused for [`RECOUNT_AFTER`].
fn count_open() -> io::Result<u64> {
    static STAT_COUNTS: AtomicBool = AtomicBool::new(true);
    if STAT_COUNTS.load(Ordering::Relaxed) {
        let size = std::fs::metadata("/proc/self/fd")?.len();
        if size > 0 {
            return Ok(size);
        }
        // Kernels before 6.2 report 0; this process always holds a descriptor or more.
        STAT_COUNTS.store(false, Ordering::Relaxed);
    }
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static LAST: AtomicU64 = AtomicU64::new(0);
    static LAST_AT_US: AtomicU64 = AtomicU64::new(u64::MAX);
    let now_us = EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64;
    let at = LAST_AT_US.load(Ordering::Relaxed);
    if at != u64::MAX && now_us.saturating_sub(at) < RECOUNT_AFTER.as_micros() as u64 {
        return Ok(LAST.load(Ordering::Relaxed));
    }
    // The directory's own descriptor is counted too, so the count is one high (on the safe side).
    let n = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    LAST.store(n, Ordering::Relaxed);
    LAST_AT_US.store(now_us, Ordering::Relaxed);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_within_the_limit_and_the_directory_agrees() {
        let open = open_files().unwrap();
        assert!(open.in_use >= 3 && open.limit >= open.in_use, "{open:?}");
        assert_eq!(open.free(), open.limit - open.in_use);
        // Other test threads open and close files meanwhile, hence the tolerance.
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        assert!(
            open.in_use.abs_diff(listed) < 64,
            "{open:?} vs {listed} listed"
        );
    }

    #[test]
    fn a_shortage_names_what_is_missing() {
        let huge = u64::MAX / 2;
        let err = check_session_room(huge).unwrap_err();
        assert_eq!((err.needed, err.reserved), (SESSION_FDS, huge));
        assert!(err.open.in_use > 0);
        assert!(check_session_room(0).is_ok());
    }
}
