//! The `stablehand` binary: serves stdio, says so on stderr, and stops cleanly on a signal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_starts_stdio_and_exits_cleanly_on_sigterm_with_stdin_open() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stablehand"))
        .args(["serve", "--in-memory"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped()) // held open: only the signal may stop it
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let up = line.contains("serving MCP over stdio");
        seen.push(line);
        if up {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("runtime started")),
        "{seen:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    // stdin is still open, so only the signal can have stopped it, and the server says so.
    let rest: Vec<String> = stderr.map(|l| l.unwrap()).collect();
    assert!(
        rest.iter().any(|l| l.contains("signal received")),
        "{rest:?}"
    );
    // The server reaps its guardian itself rather than leaving a zombie for PID 1.
    assert!(
        rest.iter()
            .any(|l| l.contains("guardian stopped and reaped")),
        "{rest:?}"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "", "stdout stays clean for the stdio transport");
}

#[test]
fn a_bad_config_file_is_reported_with_the_offending_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[session]\nidle_timout_ms = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stablehand"))
        .args(["serve", "--in-memory", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("idle_timout_ms"), "{err}");
}
