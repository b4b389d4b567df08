//! Agent sessions' own conversations: which agent profile keeps one, and what a create, a
//! fork and a resume do with it (the arguments added for that launch, the agent's directory,
//! and a note saying what happened).

use std::path::PathBuf;

use crate::config::agents::{self, AgentProfile};
use crate::config::Config;
use crate::ids::SessionId;
use crate::session::agent::AgentLaunch;
use crate::session::kind::KindOptions;
use crate::session::messages::CreateRequest;
use crate::session::{Kind, SessionSpec};
use crate::store::{AgentRecord, Record};
use crate::{Error, Result};

/// Gives a new agent session its profile (the one it names, else the one whose `programs`
/// holds its program) and its directory (`dir`: the session's own, when there is a store).
pub(crate) fn for_create(
    config: &Config,
    spec: &mut SessionSpec,
    dir: Option<PathBuf>,
) -> Result<()> {
    let KindOptions::Agent(options) = &mut spec.options else {
        return Ok(());
    };
    let name = match &options.profile {
        Some(name) => {
            if !config.agents.contains_key(name) {
                return Err(Error::invalid(
                    "agent.profile",
                    format!(
                        "no agent profile {name:?} in the config (defined: {})",
                        config.agents.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            name.clone()
        }
        None => {
            let program = spec.argv.first().map_or("", String::as_str);
            match config.agents.iter().find(|(_, p)| p.matches(program)) {
                Some((name, _)) => name.clone(),
                None => return Ok(()),
            }
        }
    };
    options.profile = Some(name.clone());
    let rules = config.agents[&name].clone();
    spec.agent = Some(AgentLaunch {
        config_dir: config_dir(&rules, &spec.env, dir),
        profile: name,
        rules,
        record: AgentRecord {
            note: "a new conversation".into(),
            ..AgentRecord::default()
        },
        ..AgentLaunch::default()
    });
    Ok(())
}

/// Fills a fork's request from the session it forks (`parent`): its command, working
/// directory and profile unless the request names others. Returns the environment the fork
/// starts from (the parent's).
pub(crate) fn fork_request(
    req: &mut CreateRequest,
    parent: &Record,
) -> Result<Vec<(String, String)>> {
    let spec = &parent.spec;
    let from = spec.id;
    if spec.kind != Kind::Agent {
        return Err(Error::invalid(
            "agent.fork_from",
            format!("session {from} is a {} session, not an agent", spec.kind),
        ));
    }
    if req.command.is_none() {
        req.command = Some(spec.argv.clone());
    }
    if req.cwd.is_none() {
        let last = parent.live.cwd.as_deref().map(PathBuf::from);
        req.cwd = Some(
            last.filter(|c| c.is_dir())
                .unwrap_or_else(|| spec.cwd.clone()),
        );
    }
    if let (Some(options), KindOptions::Agent(theirs)) = (&mut req.agent, &spec.options) {
        if options.profile.is_none() {
            options.profile.clone_from(&theirs.profile);
        }
    }
    Ok(spec.env.clone())
}

/// Makes a resolved fork continue a copy of `parent`'s conversation: the profile's
/// `fork_args`, and a copy of the parent's directory (`parent_dir`, when it had its own).
pub(crate) fn for_fork(
    spec: &mut SessionSpec,
    parent: &Record,
    parent_dir: Option<PathBuf>,
) -> Result<()> {
    let from = parent.spec.id;
    let bad = |m: String| Error::invalid("agent.fork_from", m);
    let Some(launch) = &mut spec.agent else {
        return Err(bad(format!(
            "no agent profile keeps the conversation of {:?} (set agent.profile, or add an [agents.<name>] profile whose programs name it)",
            spec.argv.first().map_or("", String::as_str)
        )));
    };
    let key = |field: &str| format!("agents.{}.{field}", launch.profile);
    let stored = parent.live.agent.clone().unwrap_or_default();
    let Some(id) = stored.session_id.or(stored.fork_of) else {
        return Err(bad(format!(
            "session {from} has no conversation to fork yet: its agent has not reported a \
             conversation id ({} = {:?}); run a turn in it first",
            key("session_id_pointer"),
            launch.rules.session_id_pointer
        )));
    };
    if launch.rules.fork_args.is_empty() {
        return Err(bad(format!(
            "{} is empty: agent profile {:?} cannot fork a conversation",
            key("fork_args"),
            launch.profile
        )));
    }
    launch.args = agents::render(&launch.rules.fork_args, &id);
    launch.args_from = Some(key("fork_args"));
    launch.record = AgentRecord {
        session_id: None,
        fork_of: Some(id.clone()),
        note: format!(
            "a copy of conversation {id} of session {from} ({})",
            key("fork_args")
        ),
    };
    // The parent's own directory holds the conversation: the fork starts from a copy.
    let parent_own = !parent
        .spec
        .env
        .iter()
        .any(|(k, _)| Some(k) == launch.rules.config_dir_env.as_ref())
        && launch.rules.config_dir.is_none();
    if parent_own {
        launch.copy_from = parent_dir;
    }
    Ok(())
}

/// What a resumed agent session does with its conversation: continue it with the profile's
/// `resume_args` (or a fork's `fork_args` before its first turn), or start a new one —
/// because `fresh` asks, or because there is nothing to continue with, saying why.
pub(crate) fn for_resume(
    config: &Config,
    spec: &mut SessionSpec,
    record: &Record,
    dir: Option<PathBuf>,
    fresh: bool,
) {
    let KindOptions::Agent(options) = &spec.options else {
        return;
    };
    let Some(name) = options.profile.clone() else {
        return;
    };
    let Some(rules) = config.agents.get(&name).cloned() else {
        // The profile left the config: a plain agent, as one without a profile.
        return;
    };
    let key = |field: &str| format!("agents.{name}.{field}");
    let stored = record.live.agent.clone().unwrap_or_default();
    let mut launch = AgentLaunch {
        config_dir: config_dir(&rules, &spec.env, dir),
        profile: name.clone(),
        ..AgentLaunch::default()
    };
    let (args, from, note) = match (&stored.session_id, &stored.fork_of) {
        _ if fresh => (
            Vec::new(),
            None,
            "a new conversation, as asked (fresh)".to_owned(),
        ),
        (Some(id), _) if rules.resume_args.is_empty() => (
            Vec::new(),
            None,
            format!(
                "a new conversation: {} is empty, so conversation {id} is not continued",
                key("resume_args")
            ),
        ),
        (Some(id), _) => (
            agents::render(&rules.resume_args, id),
            Some(key("resume_args")),
            format!("continues conversation {id} ({})", key("resume_args")),
        ),
        (None, Some(id)) => (
            agents::render(&rules.fork_args, id),
            Some(key("fork_args")),
            format!("a copy of conversation {id} ({})", key("fork_args")),
        ),
        (None, None) => (
            Vec::new(),
            None,
            format!(
                "a new conversation: no conversation id was reported before the session stopped \
                 (no output line matched {} = {:?})",
                key("session_id_pointer"),
                rules.session_id_pointer
            ),
        ),
    };
    launch.args = args;
    launch.args_from = from;
    launch.record = if fresh {
        AgentRecord::default()
    } else {
        stored
    };
    launch.record.note = note;
    launch.rules = rules;
    spec.agent = Some(launch);
}

/// The agent's directory: none when the session's environment names one itself, else the
/// profile's shared one, else the session's own.
fn config_dir(
    rules: &AgentProfile,
    env: &[(String, String)],
    own: Option<PathBuf>,
) -> Option<(String, PathBuf)> {
    let var = rules.config_dir_env.as_ref()?;
    if env.iter().any(|(k, _)| k == var) {
        return None;
    }
    let dir = rules.config_dir.clone().or(own)?;
    Some((var.clone(), dir))
}

/// The session a create forks from, if any.
pub(crate) fn fork_source(req: &CreateRequest) -> Option<SessionId> {
    req.agent.as_ref().and_then(|a| a.fork_from)
}
