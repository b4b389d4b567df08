//! A child under a pseudo-terminal (process::spawn with `terminal`): a controlling terminal
//! of the size asked for, its own session, no echo of a password, EOF when it is gone.

use std::time::Instant;

use stablehand::process::pty::TermSize;
use stablehand::process::{spawn, Rlimits, SpawnSpec};

use crate::util::*;

const PROGRAM: &str = r#"
import getpass, os, sys
print("tty", os.isatty(0), os.isatty(1), os.isatty(2))
print("size", tuple(os.get_terminal_size()))
print("leader", os.getsid(0) == os.getpid() == os.getpgrp() == os.tcgetpgrp(0))
print("env", os.environ.get("TERM"))
pw = getpass.getpass("pw: ")
print("got", len(pw), pw[::-1])
"#;

#[test]
fn a_child_under_a_terminal_owns_it_and_a_password_is_not_echoed() {
    with_runtime(config(), |rt| async move {
        let python = std::env::var("STABLEHAND_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let spec = SpawnSpec {
            argv: vec![python, "-c".into(), PROGRAM.into()],
            cwd: std::env::temp_dir(),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap()),
                ("TERM".into(), "xterm-256color".into()),
            ],
            rlimits: Rlimits::default(),
            run_as: None,
            join: Vec::new(),
            terminal: Some(TermSize { cols: 97, rows: 31 }),
            batch: false,
        };
        let spawned = spawn(&spec).expect("spawns under a terminal");
        assert!(spawned.terminal.is_some());
        let mut out = Vec::new();
        let mut typed = false;
        let start = Instant::now();
        // Read until the master reports the end (EIO once the child's side is closed).
        loop {
            assert!(start.elapsed() < LIMIT, "{}", String::from_utf8_lossy(&out));
            if spawned.stdout.readable().await.is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            match spawned.stdout.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
            if !typed && out.ends_with(b"pw: ") {
                spawned.stdin.writable().await.unwrap();
                spawned.stdin.try_write(b"secret\n").unwrap();
                typed = true;
            }
        }
        let status = spawned.child.wait().await.unwrap();
        let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
        assert_eq!(status.code, Some(0), "{text}");
        assert_eq!(
            text,
            "tty True True True\nsize (97, 31)\nleader True\nenv xterm-256color\npw: \ngot 6 terces\n"
        );
        rt
    });
}
