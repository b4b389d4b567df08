//! An agent session's own conversation: what one launch does with it (resume, fork, start
//! fresh), the id captured from the agent's output, and the directory the agent keeps its
//! conversations in.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::AgentProfile;
use crate::process::RunAs;
use crate::session::messages::{ExecError, ExecResult};
use crate::store::AgentRecord;

/// How one launch of an agent session treats its conversation (resolved by the registry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentLaunch {
    /// The agent profile's name.
    pub profile: String,
    /// The profile as the config had it.
    pub rules: AgentProfile,
    /// Arguments added to the command for this launch only (a resume's or a fork's).
    pub args: Vec<String>,
    /// The setting `args` come from (`agents.<name>.resume_args`), for errors.
    pub args_from: Option<String>,
    /// The conversation the launch starts with, and what it does with it.
    pub record: AgentRecord,
    /// The environment variable naming the agent's directory, and the directory, when
    /// stablehand provides it.
    pub config_dir: Option<(String, PathBuf)>,
    /// Copy this directory into `config_dir` before the first launch (a fork).
    pub copy_from: Option<PathBuf>,
}

/// The actor's view of its agent's conversation.
#[derive(Debug)]
pub(crate) struct AgentState {
    /// What is stored.
    pub record: AgentRecord,
    /// Set while this launch continues a conversation and no turn has ended yet: the setting
    /// and arguments it was started with. An exit now means the agent refused them.
    pub pending: Option<String>,
    /// Why the agent's exit left the session Suspended (for the running exec's error).
    pub refusal: Option<String>,
    /// The profile captures the conversation id (else a turn's end shows the resume took).
    captures: bool,
}

impl AgentState {
    /// The state a launch starts in.
    pub(crate) fn new(launch: &AgentLaunch) -> Self {
        let pending = launch
            .args_from
            .as_ref()
            .map(|from| format!("{from} ({})", launch.args.join(" ")));
        Self {
            record: launch.record.clone(),
            pending,
            refusal: None,
            captures: !launch.rules.session_id_pointer.is_empty(),
        }
    }

    /// A turn's result: a turn that ended shows a resume took (when no id says so), and a
    /// turn the agent's refusal cut short says why.
    pub(crate) fn turn_ended(&mut self, result: &mut ExecResult) {
        if result.result.is_some() && !self.captures {
            self.pending = None;
        }
        if let (Some(with), Some(_), None) = (&self.pending, &result.result, &result.error) {
            // The turn ended without the line that names the conversation: a CLI that
            // could not open the conversation answers that way (Claude Code's error result
            // line) before it exits. Probation goes on: its exit suspends the session.
            result.error = Some(ExecError {
                kind: "AgentResumeFailed".into(),
                message: format!(
                    "the turn ended without the agent reporting its conversation, after it was \
                     started with {with}: it did not continue it (its last line is the result)"
                ),
                traceback: String::new(),
            });
        }
        if let (Some(why), Some(e)) = (&self.refusal, &mut result.error) {
            if e.kind == "AgentExited" {
                e.kind = "AgentResumeFailed".into();
                e.message = why.clone();
            }
        }
    }

    /// A conversation id the agent reported; true when it is new.
    pub(crate) fn captured(&mut self, id: String) -> bool {
        // The agent reported its conversation: it took the arguments that continue it.
        self.pending = None;
        if self.record.session_id.as_deref() == Some(id.as_str()) {
            return false;
        }
        self.record.session_id = Some(id);
        self.record.fork_of = None;
        true
    }

    /// Why the session is Suspended rather than Ended when the agent exited before its first
    /// turn: the arguments that continue the conversation were refused.
    pub(crate) fn refused(&mut self, status: &str, stderr: &str) -> Option<String> {
        let with = self.pending.as_ref()?;
        let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
        let said = said.map_or_else(String::new, |l| format!(": {}", l.trim()));
        let id = self
            .record
            .session_id
            .as_ref()
            .or(self.record.fork_of.as_ref());
        self.record.note = format!(
            "conversation {} was not continued: the agent exited before its first turn",
            id.map_or("-", String::as_str)
        );
        Some(format!(
            "the agent exited ({status}) before its first turn when started with {with}{said}; \
             the conversation is kept; a resume with fresh starts the agent without it"
        ))
    }
}

/// Makes the agent's directory (owned by `run_as` when sessions run as another user), first
/// filled with a copy of `copy_from` when given and the directory is new.
pub(crate) fn prepare_dir(
    dir: &Path,
    copy_from: Option<&Path>,
    run_as: Option<&RunAs>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let owner = run_as.filter(|u| u.uid != crate::process::users::effective_uid());
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
        if owner.is_some() {
            // Another user must pass through, without listing the other sessions' dirs.
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
        }
    }
    let new = match std::fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if new {
        if let Some(from) = copy_from.filter(|f| f.is_dir()) {
            copy_tree(from, dir)?;
        }
    }
    if let Some(u) = owner {
        chown_tree(dir, u.uid, u.gid)?;
    }
    Ok(())
}

/// Copies the files, directories and symbolic links under `from` into `to` (which exists).
/// Sockets and FIFOs are skipped. `from` may belong to a live agent that writes it while
/// it is copied: an entry that vanishes between listing and copying (a temporary file
/// renamed into place, a lock released) is skipped, as if listed a moment later. Any other
/// failure names the entry.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        copy_listed(&entry?, to)?;
    }
    Ok(())
}

/// Copies one listed entry into `to`, unless it has vanished since it was listed.
fn copy_listed(entry: &std::fs::DirEntry, to: &Path) -> io::Result<()> {
    let source = entry.path();
    match copy_entry(entry, &to.join(entry.file_name())) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !exists(&source) => Ok(()),
        other => other.map_err(|e| named(&source, e)),
    }
}

fn copy_entry(entry: &std::fs::DirEntry, target: &Path) -> io::Result<()> {
    let kind = entry.file_type()?;
    if kind.is_dir() {
        let mode = entry.metadata()?.permissions();
        std::fs::create_dir(target)?;
        std::fs::set_permissions(target, mode)?;
        copy_tree(&entry.path(), target)
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, target)
    } else if kind.is_file() {
        std::fs::copy(entry.path(), target).map(drop)
    } else {
        Ok(())
    }
}

/// Whether `path` names anything (a dangling link included).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// `e`, saying which path it is about (once: a nested copy has named it already).
fn named(path: &Path, e: io::Error) -> io::Error {
    let shown = path.display().to_string();
    if e.to_string().starts_with(&shown) {
        return e;
    }
    io::Error::new(e.kind(), format!("{shown}: {e}"))
}

/// Gives everything under `dir` (itself included) to `uid`:`gid`, links not followed.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), uid, gid)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_copies_the_tree_once_and_keeps_links() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("from");
        std::fs::create_dir_all(from.join("projects/p")).unwrap();
        std::fs::write(from.join("projects/p/c.jsonl"), "turn\n").unwrap();
        std::os::unix::fs::symlink("projects", from.join("link")).unwrap();
        let to = tmp.path().join("agents/s1");
        prepare_dir(&to, Some(&from), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("projects/p/c.jsonl")).unwrap(),
            "turn\n"
        );
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("projects")
        );
        // A second launch keeps what the agent wrote since.
        std::fs::write(to.join("projects/p/c.jsonl"), "turn\nturn\n").unwrap();
        prepare_dir(&to, Some(&from), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("projects/p/c.jsonl")).unwrap(),
            "turn\nturn\n"
        );
    }

    #[test]
    fn an_entry_that_vanishes_while_a_live_directory_is_copied_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("from");
        std::fs::create_dir_all(from.join("dir")).unwrap();
        std::fs::write(from.join(".config.json.tmp"), "{}").unwrap();
        let to = tmp.path().join("to");
        std::fs::create_dir(&to).unwrap();
        let listed: Vec<_> = std::fs::read_dir(&from)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // The agent renames its temporary file and removes a directory after the listing.
        std::fs::rename(from.join(".config.json.tmp"), from.join(".config.json")).unwrap();
        std::fs::remove_dir(from.join("dir")).unwrap();
        for entry in &listed {
            copy_listed(entry, &to).unwrap();
        }
        assert_eq!(std::fs::read_dir(&to).unwrap().count(), 0);
    }

    #[test]
    fn a_copy_that_fails_names_the_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("from");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("sub/f"), "x").unwrap();
        let to = tmp.path().join("to");
        std::fs::create_dir_all(to.join("sub")).unwrap();
        let e = copy_tree(&from, &to).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(
            e.to_string()
                .starts_with(&from.join("sub").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_turn_that_ends_without_the_conversation_after_a_resume_fails() {
        let launch = AgentLaunch {
            rules: crate::config::AgentProfile::claude(),
            args: vec!["--resume".into(), "abc".into()],
            args_from: Some("agents.claude.resume_args".into()),
            ..AgentLaunch::default()
        };
        let mut state = AgentState::new(&launch);
        state.record.session_id = Some("abc".into());
        let mut r = ExecResult {
            result: Some(serde_json::json!({"type": "result", "is_error": true})),
            ..ExecResult::default()
        };
        state.turn_ended(&mut r);
        let e = r.error.expect("an error");
        assert_eq!(e.kind, "AgentResumeFailed");
        assert!(
            e.message
                .contains("agents.claude.resume_args (--resume abc)"),
            "{}",
            e.message
        );
        assert!(
            state.pending.is_some(),
            "its exit still suspends the session"
        );
        // Once the agent names its conversation (the same one), turns are plain turns.
        assert!(!state.captured("abc".into()));
        let mut r = ExecResult {
            result: Some(serde_json::json!({"type": "result"})),
            ..ExecResult::default()
        };
        state.turn_ended(&mut r);
        assert!(r.error.is_none());
    }

    #[test]
    fn a_refused_resume_names_the_setting_and_what_the_agent_said() {
        let launch = AgentLaunch {
            args: vec!["--resume".into(), "abc".into()],
            args_from: Some("agents.claude.resume_args".into()),
            ..AgentLaunch::default()
        };
        let mut state = AgentState::new(&launch);
        let why = state
            .refused(
                "exit code 1",
                "\nNo conversation found with session ID: abc\n\n",
            )
            .unwrap();
        assert!(
            why.contains("agents.claude.resume_args (--resume abc)")
                && why.contains(": No conversation found with session ID: abc;")
                && why.contains("resume with fresh"),
            "{why}"
        );
        assert!(state.refusal.is_none());
        assert!(
            state.record.note.contains("was not continued"),
            "{:?}",
            state.record
        );
        assert!(state.captured("abc".into()));
        assert!(!state.captured("abc".into()));
        assert_eq!(state.refused("exit code 1", ""), None);
        assert_eq!(
            AgentState::new(&AgentLaunch::default()).refused("x", ""),
            None
        );
    }
}
