//! Endurance, bounded for CI: the real server on an on-disk store under sustained exec load
//! keeps its memory flat. The long version (30 minutes and more) is `scripts/soak.sh`, with its
//! figures in BENCHMARKS.md.

use std::process::Command;

use serde_json::Value;

use crate::wire::HttpServer;

/// Resident memory of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Runs `stablehand load` against `url` for `secs` seconds; returns the successful execs.
fn load(url: &str, clients: u32, secs: u32) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_stablehand"))
        .args(["load", "--url", url, "--scenario", "exec", "--json"])
        .args(["--clients", &clients.to_string()])
        .args(["--duration", &format!("{secs}s")])
        .output()
        .expect("the load generator runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        report["ops"], report["ok"],
        "every exec succeeded: {report}"
    );
    report["ok"].as_u64().unwrap()
}

/// What a regression looks like: the store before segment files grew about 2.3 KB per exec
/// (230 MB per 100,000). Allowed here: 8 MiB of slack plus 16 MiB per 100,000 execs.
#[test]
fn under_sustained_exec_load_the_servers_memory_stays_flat() {
    let data = tempfile::tempdir().unwrap();
    let server = HttpServer::start_with_args(
        Some("[store]\nflush_interval_ms = 100\n"),
        &["--data-dir", data.path().to_str().unwrap()],
    );
    let url = format!("http://{}/mcp", server.addr);
    let pid = server.child.id();
    load(&url, 32, 10); // warm-up: arenas, caches, thread-local buffers
    let before = rss(pid);
    let execs = load(&url, 32, 40);
    let after = rss(pid);
    let growth = after.saturating_sub(before);
    let allowed = (8 << 20) + (16 << 20) * execs / 100_000;
    eprintln!(
        "soak: {execs} execs, RSS {} -> {} KiB (+{} KiB; allowed {} KiB)",
        before >> 10,
        after >> 10,
        growth >> 10,
        allowed >> 10
    );
    assert!(execs > 5_000, "the load ran: {execs} execs");
    assert!(
        growth <= allowed,
        "RSS grew {} KiB over {execs} execs (allowed {} KiB)",
        growth >> 10,
        allowed >> 10
    );
}
