//! Task records as files: `tasks/<id>`, one small file per task, written whole (staged as
//! `<id>.tmp` and synced, then renamed), removed when the task expires. They live outside sled for the reason final session records do: a key per task
//! would grow sled's bookkeeping with every task ever made.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::ids::TaskId;

/// Name of the directory of task files inside the data directory.
pub(crate) const TASKS_DIR: &str = "tasks";
/// Suffix of a task file being written.
const STAGED: &str = ".tmp";

/// Where task records live.
#[derive(Debug, Clone)]
pub(crate) struct TaskFiles {
    root: PathBuf,
}

impl TaskFiles {
    /// Task files under `root`.
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory of all task files.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory.
    pub(crate) fn create_root(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    fn path(&self, id: TaskId, suffix: &str) -> PathBuf {
        self.root.join(format!("{}{suffix}", id.0.simple()))
    }

    /// Writes a task's record beside the current one, durably (its own fsync: a sync of
    /// the whole file system would wait for every other program's writes too);
    /// [`TaskFiles::commit`] makes it the current one. Until the rename is on disk, a reader
    /// falls back to the staged file.
    pub(crate) fn stage(&self, id: TaskId, value: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(id, STAGED))?;
        f.write_all(value)?;
        f.sync_data()
    }

    /// Makes a staged (and synced) record the current one.
    pub(crate) fn commit(&self, id: TaskId) -> io::Result<()> {
        fs::rename(self.path(id, STAGED), self.path(id, ""))
    }

    /// Removes a task's files; missing ones are fine.
    pub(crate) fn remove(&self, id: TaskId) -> io::Result<()> {
        for suffix in ["", STAGED] {
            match fs::remove_file(self.path(id, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// A task's record, if it has one (the staged one if a crash came between its sync and
    /// its rename).
    pub(crate) fn read(&self, id: TaskId) -> io::Result<Option<Vec<u8>>> {
        for suffix in ["", STAGED] {
            match fs::read(self.path(id, suffix)) {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Every task's record: (its id, the file's bytes). Files whose names are not task ids
    /// are left alone; unreadable ones are reported as errors.
    pub(crate) fn all(&self) -> io::Result<Vec<(TaskId, io::Result<Vec<u8>>)>> {
        let mut ids: Vec<TaskId> = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let id = name.strip_suffix(STAGED).unwrap_or(name);
            if let Ok(id) = id.parse() {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids
            .into_iter()
            .filter_map(|id| match self.read(id) {
                Ok(Some(v)) => Some((id, Ok(v))),
                Ok(None) => None,
                Err(e) => Some((id, Err(e))),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_record_is_read_until_committed_and_removal_takes_both() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path().join(TASKS_DIR));
        files.create_root().unwrap();
        let id = TaskId::new();
        files.stage(id, b"one").unwrap();
        assert_eq!(files.read(id).unwrap().as_deref(), Some(&b"one"[..]));
        files.commit(id).unwrap();
        files.stage(id, b"two").unwrap();
        assert_eq!(files.read(id).unwrap().as_deref(), Some(&b"one"[..]));
        fs::write(files.root().join("not-a-task"), b"x").unwrap();
        let all = files.all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, id);
        files.remove(id).unwrap();
        assert_eq!(files.read(id).unwrap(), None);
        assert!(files.all().unwrap().is_empty());
    }
}
