//! Pseudo-terminals: a master the server reads and writes (non-blocking, close-on-exec) and
//! the slave a child takes as its controlling terminal and stdio.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// Opens a pseudo-terminal of `size`: `(master, slave)`, both close-on-exec (no other child
/// of the server inherits them, so the master reads EOF once this terminal's processes have
/// closed the slave), the master non-blocking.
pub fn open(size: TermSize) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: open with a constant NUL-terminated path; the result is checked.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if master < 0 {
        return Err(io::Error::other(format!(
            "opening /dev/ptmx: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: `master` was just opened and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int; TIOCGPTPEER opens the slave with the flags given
    // (atomically close-on-exec, without a path lookup that could race).
    let slave = unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    resize(&master, size)?;
    Ok((master, slave))
}

/// Sets the terminal's size; the kernel sends SIGWINCH to its foreground process group.
pub fn resize(master: &OwnedFd, size: TermSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The process group in the terminal's foreground, if any (and not init's or the kernel's).
pub fn foreground_group(master: &OwnedFd) -> Option<u32> {
    // SAFETY: tcgetpgrp reads the terminal's foreground group from an open descriptor.
    let group = unsafe { libc::tcgetpgrp(master.as_raw_fd()) };
    u32::try_from(group).ok().filter(|g| *g > 1)
}
