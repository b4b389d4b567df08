//! Unix users a principal's sessions run as: looked up in the password and group databases
//! (`getpwnam_r`, `getpwuid_r`, `getgrouplist`) once, when the runtime starts.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// The identity a session's child takes before `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the primary one included).
    pub groups: Vec<u32>,
    /// Home directory, from the password database.
    pub home: PathBuf,
    /// The principal's own 0700 directory: the default working directory of its sessions.
    pub dir: PathBuf,
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The user named `name`, or the error naming it.
pub fn by_name(name: &str) -> io::Result<RunAs> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a user name with a NUL byte"))?;
    lookup(&|pwd, buf, len, out| {
        // SAFETY: every pointer is valid for the call; `buf` has `len` bytes.
        unsafe { libc::getpwnam_r(c.as_ptr(), pwd, buf, len, out) }
    })?
    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user named {name:?}")))
}

/// The user with id `uid`, or the error naming it.
pub fn by_uid(uid: u32) -> io::Result<RunAs> {
    lookup(&|pwd, buf, len, out| {
        // SAFETY: every pointer is valid for the call; `buf` has `len` bytes.
        unsafe { libc::getpwuid_r(uid, pwd, buf, len, out) }
    })?
    .ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("uid {uid} has no entry in the password database"),
        )
    })
}

type PwLookup<'a> = dyn Fn(*mut libc::passwd, *mut libc::c_char, libc::size_t, *mut *mut libc::passwd) -> libc::c_int
    + 'a;

fn lookup(call: &PwLookup<'_>) -> io::Result<Option<RunAs>> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut pwd = MaybeUninit::<libc::passwd>::zeroed();
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(pwd.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut out);
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if out.is_null() {
        return Ok(None);
    }
    // SAFETY: on success `out` points at `pwd`, whose strings live in `buf`.
    let pwd = unsafe { &*out };
    // SAFETY: the database returns NUL-terminated strings.
    let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    let name = name.to_string_lossy().into_owned();
    let groups = groups_of(&name, pwd.pw_gid)?;
    Ok(Some(RunAs {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        groups,
        home: PathBuf::from(std::ffi::OsStr::from_bytes(home.to_bytes())),
        dir: PathBuf::new(),
        name,
    }))
}

/// The groups `name` belongs to, its primary group `gid` included.
fn groups_of(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: `groups` has room for `n` entries; getgrouplist updates `n`.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        if n <= want {
            n = want * 2;
        }
        if n > 65_536 {
            return Err(io::Error::other(format!("{name} is in too many groups")));
        }
    }
}

/// Creates (or fixes) `dir` as `user`'s own directory: owned by it, mode 0700.
pub fn own_dir(dir: &Path, user: &RunAs) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_uid_and_strangers_are_named() {
        let root = by_name("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert_eq!(by_uid(0).unwrap().name, "root");
        let err = by_name("no-such-user-stablehand").unwrap_err().to_string();
        assert!(
            err.contains("no user named \"no-such-user-stablehand\""),
            "{err}"
        );
        let err = by_uid(3_999_999_999).unwrap_err().to_string();
        assert!(err.contains("uid 3999999999 has no entry"), "{err}");
    }
}
