//! ARCHITECTURE.md's invariants about what each module may touch, checked on the source: a
//! change that breaks one fails here, and must change the document (and this test) with a
//! reason instead.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its text minus comment lines.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let rel = path
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap()
                    .to_path_buf();
                out.push((rel, code));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    assert!(out.len() > 50, "found the sources");
    out
}

/// Files outside `allowed` (path prefixes) whose code contains any of `needles`.
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, _)| !allowed.iter().any(|a| path.starts_with(a)))
        .flat_map(|(path, code)| {
            needles
                .iter()
                .filter(|n| code.contains(*n))
                .map(|n| format!("{} uses {n}", path.display()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_model_imports_nothing_from_the_crate() {
    let found = offenders(
        &["crate::", "stablehand::"],
        &["src/lib.rs", "src/bin", "src/codec.rs"],
    )
    .into_iter()
    .filter(|o| o.starts_with("src/model/"))
    .collect::<Vec<_>>();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_store_config_and_errors_do_not_depend_on_sessions() {
    let found: Vec<String> = sources()
        .into_iter()
        .filter(|(p, _)| {
            p.starts_with("src/store") || p.starts_with("src/model") || {
                let p = p.to_string_lossy();
                p == "src/config.rs" || p == "src/error.rs"
            }
        })
        .filter(|(_, code)| code.contains("crate::session") || code.contains("crate::registry"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn sessions_do_not_depend_on_the_registry_or_the_protocol() {
    let found: Vec<String> = sources()
        .into_iter()
        .filter(|(p, _)| p.starts_with("src/session"))
        .filter(|(_, code)| code.contains("crate::registry") || code.contains("crate::mcp"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_the_store_touches_sled() {
    let found = offenders(&["sled::"], &["src/store/"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_process_signals_reaps_forks_or_spawns() {
    // load/ is an MCP client, not the runtime: it starts the server under test over stdio
    // with tokio (ARCHITECTURE.md says so).
    let found = offenders(
        &[
            "libc::kill(",
            "libc::killpg(",
            "libc::waitpid(",
            "libc::waitid(",
            "libc::fork(",
            "libc::clone(",
            "libc::prctl(",
            "std::process::Command",
            "tokio::process",
        ],
        &["src/process/", "src/load/"],
    );
    assert!(found.is_empty(), "{found:#?}");
    let load = offenders(
        &["libc::kill(", "libc::fork(", "libc::clone("],
        &["src/process/"],
    );
    assert!(load.is_empty(), "{load:#?}");
}

#[test]
fn only_mcp_knows_json_rpc() {
    let found = offenders(&["jsonrpsee", "\"jsonrpc\""], &["src/mcp/", "src/load/"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn every_state_change_comes_from_the_state_machine() {
    // A state is set from the result of `State::apply` / `StateKind::apply`, never written
    // as a literal: Session::transition for a session with an actor, the crash paths and the
    // registry (a Suspended record ended without an actor) through `StateKind::apply`.
    let found = offenders(
        &[
            "set_state(StateKind::",
            ".state = StateKind::",
            "state = State::",
        ],
        &["src/model/"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_mcp_names_the_tools() {
    // The runtime speaks of its own operations (Handle::exec, Handle::resume, …); the tool
    // names are the MCP layer's (the debug_* names are Handle's methods as well).
    let tools = [
        "session_create",
        "session_exec",
        "session_send",
        "session_read",
        "session_state",
        "session_list",
        "session_end",
        "session_signal",
        "session_resume",
        "session_snapshot",
    ];
    let allowed = ["src/mcp/", "src/load/", "src/bin/"];
    let word = |code: &str, name: &str| {
        code.match_indices(name).any(|(at, _)| {
            let next = code[at + name.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    };
    let found: Vec<String> = sources()
        .into_iter()
        .filter(|(p, _)| !allowed.iter().any(|a| p.starts_with(a)))
        .flat_map(|(p, code)| {
            tools
                .iter()
                .filter(|t| word(&code, t))
                .map(|t| format!("{} names {t}", p.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn stored_forms_are_not_schemas() {
    // The store's forms are the disk format; tool schemas are derived elsewhere, so a field
    // renamed for a schema does not silently change what data dirs hold.
    let found = offenders(
        &["schemars", "JsonSchema"],
        &[
            "src/model/",
            "src/session/",
            "src/mcp/",
            "src/registry/",
            "src/runtime.rs",
            "src/config.rs",
            "src/lib.rs",
            "src/bin/",
            "src/load/",
            "src/process/",
            "src/error.rs",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_code_map_names_every_file() {
    // A `mod.rs` is named by its directory; the tools are "one file per tool" in `mcp/tools/`.
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let missing: Vec<String> = sources()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.starts_with("src/mcp/tools/"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let named = if name == "mod.rs" {
                let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
                format!("{dir}/")
            } else {
                format!("`{name}`")
            };
            !map.contains(&named) && !map.contains(&format!("{}", p.display()))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map misses {missing:#?}"
    );
}
