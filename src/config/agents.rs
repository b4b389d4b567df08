//! Agent profiles (`[agents.<name>]`): how stablehand keeps an agent CLI's own conversation —
//! where in its output the conversation id is, which arguments resume and fork it, and which
//! environment variable names the directory the CLI keeps its conversations in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The placeholder templates replace with the captured conversation id.
pub const PLACEHOLDER: &str = "{agent_session_id}";

/// One agent profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentProfile {
    /// Programs the profile applies to when a session names none (a bare name matches any
    /// path with that file name, a path must match exactly).
    pub programs: Vec<String>,
    /// JSON pointer to the conversation id in an output line; empty: none is captured.
    pub session_id_pointer: String,
    /// Only lines whose values at these pointers equal these values carry the id.
    pub session_id_when: BTreeMap<String, serde_json::Value>,
    /// Arguments added to the command when a session resumes its conversation; `{agent_session_id}` is
    /// replaced by the captured id. Empty: a resumed session starts a new conversation.
    pub resume_args: Vec<String>,
    /// Arguments added to the command of a session forked from another's conversation.
    /// Empty: the profile cannot fork.
    pub fork_args: Vec<String>,
    /// Environment variable naming the directory the agent keeps its conversations in; each
    /// session gets its own (`<data dir>/agents/<session id>`) unless `config_dir` is set or
    /// the session's environment already sets it.
    pub config_dir_env: Option<String>,
    /// One directory shared by every session of this profile, instead of one per session.
    pub config_dir: Option<PathBuf>,
}

impl AgentProfile {
    /// Claude Code (`claude -p --input-format stream-json --output-format stream-json
    /// --verbose`): the `session_id` of its `system`/`init` line, `--resume`,
    /// `--fork-session`, and `CLAUDE_CONFIG_DIR`.
    pub fn claude() -> Self {
        Self {
            programs: vec!["claude".into()],
            session_id_pointer: "/session_id".into(),
            session_id_when: BTreeMap::from([
                ("/type".into(), "system".into()),
                ("/subtype".into(), "init".into()),
            ]),
            resume_args: vec!["--resume".into(), PLACEHOLDER.into()],
            fork_args: vec![
                "--resume".into(),
                PLACEHOLDER.into(),
                "--fork-session".into(),
            ],
            config_dir_env: Some("CLAUDE_CONFIG_DIR".into()),
            config_dir: None,
        }
    }

    /// True when this profile applies to `program` by default.
    pub fn matches(&self, program: &str) -> bool {
        let base = Path::new(program)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(program);
        self.programs
            .iter()
            .any(|p| p == program || (!p.contains('/') && p == base))
    }

    /// True when the value at `session_id_when`'s pointers match in `line`.
    pub fn carries_id(&self, line: &serde_json::Value) -> Option<String> {
        if self.session_id_pointer.is_empty() {
            return None;
        }
        let when = self
            .session_id_when
            .iter()
            .all(|(p, v)| line.pointer(p) == Some(v));
        when.then(|| line.pointer(&self.session_id_pointer))
            .flatten()
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// Checks the profile named `name`, naming the setting that is wrong.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |field: &str| format!("agents.{name}.{field}");
        let pointer = |p: &str| p.is_empty() || p.starts_with('/');
        if !pointer(&self.session_id_pointer) {
            return Err(format!(
                "{} = {:?} is not a JSON pointer (RFC 6901): it must be empty or start with /",
                key("session_id_pointer"),
                self.session_id_pointer
            ));
        }
        if let Some(p) = self.session_id_when.keys().find(|p| !pointer(p)) {
            return Err(format!(
                "{}: the key {p:?} is not a JSON pointer (RFC 6901): it must start with /",
                key("session_id_when")
            ));
        }
        for field in ["resume_args", "fork_args"] {
            let args = if field == "resume_args" {
                &self.resume_args
            } else {
                &self.fork_args
            };
            for (i, a) in args.iter().enumerate() {
                render_arg(a, "x").map_err(|e| format!("{}[{i}] = {a:?}: {e}", key(field)))?;
            }
        }
        if let Some(var) = &self.config_dir_env {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(format!(
                    "{} = {var:?} is not an environment variable name",
                    key("config_dir_env")
                ));
            }
        }
        if let Some(dir) = &self.config_dir {
            if !dir.is_absolute() {
                return Err(format!(
                    "{} = {:?} must be an absolute path",
                    key("config_dir"),
                    dir.display()
                ));
            }
        }
        Ok(())
    }
}

/// The built-in profiles (`claude`); a config file may redefine or add to them.
pub fn builtin() -> BTreeMap<String, AgentProfile> {
    BTreeMap::from([("claude".to_owned(), AgentProfile::claude())])
}

/// `template` with `{agent_session_id}` replaced by `id` (`{{` and `}}` are literal braces).
pub fn render(template: &[String], id: &str) -> Vec<String> {
    template
        .iter()
        // Validated when the config was loaded.
        .map(|a| render_arg(a, id).unwrap_or_else(|_| a.clone()))
        .collect()
}

fn render_arg(arg: &str, id: &str) -> Result<String, String> {
    let mut out = String::with_capacity(arg.len() + id.len());
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix(PLACEHOLDER) {
            out.push_str(id);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{{") {
            out.push('{');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("}}") {
            out.push('}');
            rest = r;
        } else {
            let end = rest.find('}').map_or(rest.len(), |e| e + 1);
            return Err(format!(
                "{:?} is not a placeholder: the only one is {PLACEHOLDER} (write {{{{ and }}}} for literal braces)",
                &rest[..end.min(rest.len())]
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_and_bad_ones_are_named() {
        let t = vec![
            "--resume".into(),
            "id={agent_session_id}".into(),
            "{{x}}".into(),
        ];
        assert_eq!(render(&t, "abc"), ["--resume", "id=abc", "{x}"]);
        let mut p = AgentProfile::claude();
        assert_eq!(p.validate("claude"), Ok(()));
        p.resume_args = vec!["--resume".into(), "{session}".into()];
        let e = p.validate("claude").unwrap_err();
        assert!(
            e.starts_with("agents.claude.resume_args[1] = \"{session}\""),
            "{e}"
        );
        assert!(e.contains("{agent_session_id}"), "{e}");
        p.resume_args = vec!["{agent_session_id".into()];
        assert!(p.validate("claude").is_err());
        p.resume_args = vec!["a}".into()];
        assert!(p.validate("claude").is_err());
        let mut p = AgentProfile::claude();
        p.session_id_pointer = "session_id".into();
        let e = p.validate("c").unwrap_err();
        assert!(e.contains("agents.c.session_id_pointer"), "{e}");
    }

    #[test]
    fn the_id_comes_from_lines_that_pass_the_filter() {
        let p = AgentProfile::claude();
        let init = json!({"type": "system", "subtype": "init", "session_id": "s1"});
        assert_eq!(p.carries_id(&init).as_deref(), Some("s1"));
        let other = json!({"type": "assistant", "session_id": "s2"});
        assert_eq!(p.carries_id(&other), None);
        let empty = json!({"type": "system", "subtype": "init", "session_id": ""});
        assert_eq!(p.carries_id(&empty), None);
        assert!(p.matches("/opt/bin/claude") && p.matches("claude") && !p.matches("claudex"));
    }
}
