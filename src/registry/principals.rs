//! Which Unix user a principal's sessions run as (`[principals]` in the config), resolved
//! once when the runtime starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::process::users::{self, RunAs};
use crate::session::SessionSpec;
use crate::{Error, Result};

/// The principals mapped to users, and whether an unmapped one must be refused.
#[derive(Debug, Default)]
pub(crate) struct Principals {
    users: HashMap<String, RunAs>,
    /// The server runs as root and maps principals: an unmapped principal's sessions would
    /// run as root, so they are refused.
    strict: bool,
}

impl Principals {
    /// Looks up every mapped user and makes each principal's own 0700 directory under
    /// `base` (`<base>/<name>`). Refuses users that do not exist, root without
    /// `allow_root`, and any mapping when the server cannot switch users.
    pub(crate) fn resolve(config: &Config, base: &Path) -> Result<Self> {
        if config.principals.is_empty() {
            return Ok(Self::default());
        }
        let me = users::effective_uid();
        let mut map = HashMap::new();
        for (name, p) in &config.principals {
            let bad = |m: String| Error::invalid("config", format!("principals.{name}: {m}"));
            let found = match (&p.user, p.uid) {
                (Some(user), _) => users::by_name(user),
                (None, Some(uid)) => users::by_uid(uid),
                (None, None) => unreachable!("validated: one of user and uid"),
            };
            let mut run_as = found.map_err(|e| bad(e.to_string()))?;
            if let Some(gid) = p.gid {
                run_as.gid = gid;
                if !run_as.groups.contains(&gid) {
                    run_as.groups.push(gid);
                }
            }
            if run_as.uid == 0 && !p.allow_root {
                return Err(bad(
                    "maps to root; set allow_root = true if its sessions are really to run as root"
                        .into(),
                ));
            }
            if me != 0 && run_as.uid != me {
                return Err(bad(format!(
                    "running sessions as {} (uid {}) needs a server running as root (this one runs as uid {me})",
                    run_as.name, run_as.uid
                )));
            }
            run_as.dir = base.join(name);
            std::fs::create_dir_all(base)
                .map_err(|e| bad(format!("cannot make {}: {e}", base.display())))?;
            if let Some((blocking, mode)) = unreachable_ancestor(&run_as.dir, &run_as) {
                return Err(bad(format!(
                    "{} cannot reach its directory {}: {} (mode {mode:o}) is not searchable by it; \
                     set runtime.principals_dir to a directory its users can reach",
                    run_as.name,
                    run_as.dir.display(),
                    blocking.display()
                )));
            }
            users::own_dir(&run_as.dir, &run_as).map_err(|e| {
                bad(format!(
                    "cannot make its directory {}: {e}",
                    run_as.dir.display()
                ))
            })?;
            tracing::info!(principal = %name, user = %run_as.name, uid = run_as.uid, gid = run_as.gid, dir = %run_as.dir.display(), "principal mapped to a Unix user");
            map.insert(name.clone(), run_as);
        }
        Ok(Self {
            users: map,
            strict: me == 0,
        })
    }

    /// The user `owner`'s sessions run as: `None` for the server's own user; an error when
    /// that would be root for a principal the config does not map.
    pub(crate) fn run_as(&self, owner: &str) -> Result<Option<RunAs>> {
        match self.users.get(owner) {
            Some(u) => Ok(Some(u.clone())),
            None if self.strict => Err(Error::invalid(
                "owner",
                format!(
                    "principal {owner:?} is not mapped to a Unix user ([principals.{owner}] in the config), \
                     and its sessions would run as root; map it, or map it to root with allow_root = true"
                ),
            )),
            None => Ok(None),
        }
    }

    /// Gives `spec` the user `owner`'s sessions run as: its identity, its `HOME`, `USER` and
    /// `LOGNAME`, and (when the request named no directory) its own directory as the
    /// working directory.
    pub(crate) fn apply(
        &self,
        owner: &str,
        spec: &mut SessionSpec,
        default_cwd: bool,
    ) -> Result<()> {
        let Some(user) = self.run_as(owner)? else {
            return Ok(());
        };
        let home = user.home.display().to_string();
        for (key, value) in [
            ("HOME", home),
            ("USER", user.name.clone()),
            ("LOGNAME", user.name.clone()),
        ] {
            spec.env.retain(|(k, _)| k != key);
            spec.env.push((key.to_owned(), value));
        }
        if default_cwd {
            spec.cwd = user.dir.clone();
        }
        spec.run_as = Some(user);
        Ok(())
    }
}

/// Where principals' own directories go: `runtime.principals_dir`, else `principals` in the
/// store's data directory (the temporary directory's `stablehand` for a store in memory).
pub(crate) fn base_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.runtime.principals_dir {
        return dir.clone();
    }
    match config.store.resolved_data_dir() {
        Some(dir) if !config.store.in_memory => dir.join("principals"),
        _ => std::env::temp_dir().join("stablehand").join("principals"),
    }
}

/// The first directory above `dir` that `user` cannot search, if any.
fn unreachable_ancestor(dir: &Path, user: &RunAs) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    dir.ancestors().skip(1).find_map(|a| {
        let m = std::fs::metadata(a).ok()?;
        let mode = m.mode();
        let ok = mode & 0o001 != 0
            || (m.uid() == user.uid && mode & 0o100 != 0)
            || (user.groups.contains(&m.gid()) && mode & 0o010 != 0);
        (!ok).then(|| (a.to_owned(), mode & 0o7777))
    })
}
