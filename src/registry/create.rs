//! Turning a create request into a checked, fully resolved [`SessionSpec`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::model::limits::Limits;
use crate::session::kind::KindOptions;
use crate::session::messages::CreateRequest;
use crate::session::{Kind, SessionSpec};
use crate::store::Record;
use crate::{Error, Result};

/// Longest session name.
const MAX_NAME: usize = 128;

/// Checks `req` against the config and its active profile and resolves the defaults.
pub(crate) fn resolve(
    config: &Config,
    base_env: &[(String, String)],
    req: &CreateRequest,
) -> Result<SessionSpec> {
    let kind = req.kind.unwrap_or(Kind::Shell);
    let argv = command(config, kind, req)?;
    let options = kind_options(kind, req)?;
    check_program(config, kind, &argv)?;
    let cwd = resolve_cwd(config, req, &options)?;
    check_name(req.name.as_deref())?;
    let mut env = merge_env(base_env, &req.env)?;
    if kind == Kind::Terminal && !req.env.contains_key("TERM") {
        // What the emulator understands, unless the caller says otherwise.
        env.retain(|(name, _)| name != "TERM");
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    Ok(SessionSpec {
        kind,
        argv,
        cwd,
        env,
        rlimits: config.session.rlimits.clone(),
        options,
        run_as: None,
        limits: config
            .session
            .limits
            .resolve(&req.limits.unwrap_or_default())
            .map_err(|e| Error::invalid("limits", e))?,
        agent: None,
    })
}

/// The program and arguments `req` runs: its own command, or the config's default for `kind`.
fn command(config: &Config, kind: Kind, req: &CreateRequest) -> Result<Vec<String>> {
    Ok(match (&req.command, kind) {
        (Some(cmd), _) => cmd.clone(),
        (None, Kind::Shell | Kind::Terminal) => config.commands.shell.clone(),
        (None, Kind::Repl) => config.commands.repl.clone(),
        (None, Kind::Debug) => config.commands.debug.clone(),
        (None, Kind::Process | Kind::Agent) => {
            return Err(Error::invalid(
                "command",
                format!("{kind} sessions need a command (program and arguments)"),
            ))
        }
    })
}

/// Refuses an empty program name, an argument with a NUL byte, and a program the active
/// profile does not allow for `kind`.
fn check_program(config: &Config, kind: Kind, argv: &[String]) -> Result<()> {
    let program = match argv.first() {
        Some(p) if !p.trim().is_empty() => p.clone(),
        _ => return Err(Error::invalid("command", "the program name is empty")),
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid("command", "an argument contains a NUL byte"));
    }
    let profile = config.active_profile();
    if !profile.allows(kind, &program) {
        return Err(Error::NotAllowed {
            program,
            kind,
            profile: config.profile.clone(),
            allowed: profile.programs(kind).join(", "),
        });
    }
    Ok(())
}

/// The working directory of `req` (default the server's), made absolute: it must be a
/// directory the active profile allows, holding a debug session's program.
fn resolve_cwd(config: &Config, req: &CreateRequest, options: &KindOptions) -> Result<PathBuf> {
    let cwd = match &req.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::invalid("cwd", format!("server cwd is unusable: {e}")))?,
    };
    check_cwd(&cwd)?;
    // Absolute (lexically), so the session's state shows where it runs from its start.
    let cwd = std::path::absolute(&cwd).unwrap_or(cwd);
    if let KindOptions::Debug(d) = options {
        let root = cwd
            .canonicalize()
            .map_err(|e| Error::invalid("cwd", format!("{}: {e}", cwd.display())))?;
        crate::session::debug::resolve_inside(&root, "debug.program", &d.program)?;
    }
    if !config.active_profile().allows_cwd(&cwd) {
        return Err(Error::invalid(
            "cwd",
            format!(
                "{} is outside the directories profile {:?} allows",
                cwd.display(),
                config.profile
            ),
        ));
    }
    Ok(cwd)
}

/// Refuses a session name that is blank or longer than [`MAX_NAME`].
fn check_name(name: Option<&str>) -> Result<()> {
    if let Some(name) = name {
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(Error::invalid(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
    }
    Ok(())
}

/// `base_env` with the request's variables `vars` added (replacing ones of the same name),
/// each checked for a usable name and value.
fn merge_env(
    base_env: &[(String, String)],
    vars: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let mut env = base_env.to_vec();
    for (k, v) in vars {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(Error::invalid(
                "env",
                format!("variable name {k:?} is empty or contains '=' or NUL"),
            ));
        }
        if v.contains('\0') {
            return Err(Error::invalid(
                "env",
                format!("value of {k:?} contains a NUL byte"),
            ));
        }
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

/// The kind-specific options of `req`, checked against its kind.
fn kind_options(kind: Kind, req: &CreateRequest) -> Result<KindOptions> {
    if req.agent.is_some() && kind != Kind::Agent {
        return Err(Error::invalid(
            "agent",
            format!("only agent sessions take agent options, not {kind}"),
        ));
    }
    if req.terminal.is_some() && kind != Kind::Terminal {
        return Err(Error::invalid(
            "terminal",
            format!("only terminal sessions take terminal options, not {kind}"),
        ));
    }
    if req.debug.is_some() && kind != Kind::Debug {
        return Err(Error::invalid(
            "debug",
            format!("only debug sessions take debug options, not {kind}"),
        ));
    }
    Ok(match kind {
        Kind::Agent => {
            let agent = req.agent.clone().unwrap_or_default();
            let p = &agent.turn_end_pointer;
            if !p.is_empty() && !p.starts_with('/') {
                return Err(Error::invalid(
                    "agent.turn_end_pointer",
                    format!(
                        "{p:?} is not a JSON pointer (RFC 6901): it must be empty or start with /"
                    ),
                ));
            }
            KindOptions::Agent(agent)
        }
        Kind::Debug => match &req.debug {
            Some(d) if !d.program.trim().is_empty() => KindOptions::Debug(d.clone()),
            _ => {
                return Err(Error::invalid(
                    "debug.program",
                    "debug sessions need the program to debug (a path relative to cwd)",
                ))
            }
        },
        Kind::Terminal => {
            let t = req.terminal.unwrap_or_default();
            t.check().map_err(|e| Error::invalid("terminal", e))?;
            KindOptions::Terminal(t)
        }
        _ => KindOptions::None,
    })
}

fn check_cwd(cwd: &Path) -> Result<()> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid(
            "cwd",
            format!("{} is not a directory", cwd.display()),
        )),
        Err(e) => Err(Error::invalid("cwd", format!("{}: {e}", cwd.display()))),
    }
}

/// The server environment variables listed in `pass_env`, plus `TERM=dumb` unless set.
pub(crate) fn base_env(config: &Config) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = config
        .session
        .pass_env
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "dumb".into()));
    }
    env
}

/// The spec a stored session resumes with: the one it was created with, in the working
/// directory it last had when that still exists, checked against the current profile.
pub(crate) fn respec(config: &Config, record: &Record) -> Result<SessionSpec> {
    let spec = &record.spec;
    let program = spec.argv.first().cloned().unwrap_or_default();
    let profile = config.active_profile();
    if !profile.allows(spec.kind, &program) {
        return Err(Error::NotAllowed {
            program,
            kind: spec.kind,
            profile: config.profile.clone(),
            allowed: profile.programs(spec.kind).join(", "),
        });
    }
    let last = record
        .live
        .cwd
        .as_deref()
        .map(std::path::PathBuf::from)
        .filter(|c| check_cwd(c).is_ok() && profile.allows_cwd(c));
    let cwd = match last {
        Some(c) => c,
        None => {
            check_cwd(&spec.cwd)?;
            spec.cwd.clone()
        }
    };
    Ok(SessionSpec {
        kind: spec.kind,
        argv: spec.argv.clone(),
        cwd,
        env: spec.env.clone(),
        rlimits: spec.rlimits.clone(),
        options: spec.options.clone(),
        run_as: None,
        // Within today's maxima: a record from a laxer config is clamped, not refused.
        limits: {
            let l = &config.session.limits;
            let stored = spec.limits.unwrap_or_default();
            let clamp = |v: Option<u64>, max: u64| v.map(|v| v.min(max));
            l.resolve(&Limits {
                memory_mib: clamp(stored.memory_mib, l.max_memory_mib),
                processes: clamp(stored.processes, l.max_processes),
            })
            .map_err(|e| Error::invalid("limits", e))?
        },
        agent: None,
    })
}
