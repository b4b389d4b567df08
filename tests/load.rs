//! `stablehand load` against the real server: every scenario over Streamable HTTP (both
//! protocol eras) and stdio, counts that stop the run exactly, errors counted by kind, and
//! refusals of bad arguments.

use std::process::{Command, Output};

use serde_json::Value;

use crate::wire::HttpServer;

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stablehand"))
        .arg("load")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("stablehand load runs")
}

/// Runs a load that must succeed and returns its JSON report.
fn report(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = load(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"))
}

fn url(server: &HttpServer) -> String {
    format!("http://{}/mcp", server.addr)
}

fn assert_all_ok(r: &Value, ops: u64) {
    assert_eq!(r["ops"], ops, "{r}");
    assert_eq!(r["ok"], ops, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let l = &r["latency_us"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{l}");
    assert!(r["throughput_per_s"].as_f64().unwrap() > 0.0);
    assert!(!r["percentiles"].as_array().unwrap().is_empty());
}

#[test]
fn exec_state_noop_and_create_end_over_http_count_exactly() {
    let server = HttpServer::start();
    let u = url(&server);
    let r = report(&[
        "--url",
        &u,
        "--scenario",
        "exec",
        "--command",
        "echo hi",
        "--clients",
        "3",
        "--count",
        "150",
    ]);
    assert_all_ok(&r, 150);
    assert_eq!(
        (r["scenario"].as_str(), r["clients"].as_u64()),
        (Some("exec"), Some(3))
    );
    assert!(
        r["protocol"].as_str().unwrap().starts_with("handshake 20"),
        "{r}"
    );

    let r = report(&[
        "--url",
        &u,
        "--scenario",
        "state",
        "--clients",
        "2",
        "--count",
        "100",
        "--protocol",
        "2026-07-28",
    ]);
    assert_all_ok(&r, 100);
    assert_eq!(r["protocol"], "2026-07-28");

    let r = report(&[
        "--url",
        &u,
        "--clients",
        "4",
        "--count",
        "400",
        "--warmup",
        "200ms",
    ]);
    assert_all_ok(&r, 400);
    assert_eq!(r["scenario"], "noop");

    let r = report(&["--url", &u, "--scenario", "create-end", "--count", "10"]);
    assert_all_ok(&r, 10);
}

#[test]
fn a_duration_bounds_the_run_and_the_text_report_names_the_figures() {
    let server = HttpServer::start();
    let out = load(&[
        "--url",
        &url(&server),
        "--duration",
        "300ms",
        "--clients",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "noop over http",
        "2 clients",
        "ops/s",
        "p50",
        "p99",
        "0 failed",
    ] {
        assert!(text.contains(want), "{want:?} missing in {text}");
    }
}

#[test]
fn over_stdio_each_client_runs_its_own_server() {
    let bin = env!("CARGO_BIN_EXE_stablehand");
    let r = report(&[
        "--clients",
        "2",
        "--count",
        "60",
        "--scenario",
        "exec",
        "--stdio",
        "--",
        bin,
        "serve",
        "--in-memory",
    ]);
    assert_all_ok(&r, 60);
    assert_eq!(r["transport"], "stdio");
}

#[test]
fn tool_errors_are_counted_by_kind_and_fail_the_run() {
    let server = HttpServer::start();
    let args = [
        "--url",
        &url(&server),
        "--tool",
        "session_state",
        "--args",
        r#"{"session_id":"nope"}"#,
        "--count",
        "7",
        "--json",
    ];
    let out = load(&args);
    assert!(!out.status.success(), "a run where nothing succeeded fails");
    let r: Value = serde_json::from_slice(&out.stdout).expect("the report is still printed");
    assert_eq!(r["errors"]["tool_error"], 7, "{r}");
    assert!(r["error_examples"]["tool_error"]
        .as_str()
        .unwrap()
        .contains("session not found"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operation succeeded"));

    // A custom tool that works.
    let r = report(&[
        "--url",
        &url(&server),
        "--tool",
        "session_list",
        "--args",
        "{}",
        "--count",
        "20",
    ]);
    assert_all_ok(&r, 20);
    assert_eq!(r["tool"], "session_list");
}

#[test]
fn bad_load_arguments_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 6] = [
        (&["--url", "http://10.9.8.7:80/mcp"], "--allow-remote"),
        (
            &["--url", "https://127.0.0.1/mcp"],
            "https is not supported",
        ),
        (
            &["--url", "http://127.0.0.1:1/mcp", "--scenario", "tool"],
            "--tool",
        ),
        (
            &[
                "--url",
                "http://127.0.0.1:1/mcp",
                "--tool",
                "x",
                "--args",
                "[1]",
            ],
            "JSON object",
        ),
        (
            &[
                "--url",
                "http://127.0.0.1:1/mcp",
                "--protocol",
                "raw",
                "--scenario",
                "exec",
            ],
            "only the noop",
        ),
        (
            &["--url", "http://127.0.0.1:1/mcp", "--count", "1"],
            "connecting to 127.0.0.1:1",
        ),
    ];
    for (args, want) in cases {
        let out = load(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(want), "{args:?}: {want:?} not in {stderr}");
    }
}

#[test]
fn clients_can_hold_several_sessions_of_any_kind() {
    let server = HttpServer::start();
    let u = url(&server);
    let create = r#"{"kind":"process","command":["cat"]}"#;
    let r = report(&[
        "--url",
        &u,
        "--scenario",
        "exec",
        "--command",
        "ping",
        "--clients",
        "2",
        "--sessions-per-client",
        "3",
        "--create-args",
        create,
        "--count",
        "60",
    ]);
    assert_all_ok(&r, 60);
    let out = load(&[
        "--url",
        &u,
        "--scenario",
        "exec",
        "--create-args",
        "[]",
        "--count",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--create-args must be a JSON object"));
}

#[test]
fn held_slow_connections_are_reported_and_the_clients_still_get_through() {
    // The flood is three times max_connections: the server closes the longest-idle ones.
    let server = HttpServer::start_with_config(Some(
        "[http]\nmax_connections = 32\nheader_timeout_ms = 60000\n",
    ));
    let u = url(&server);
    let r = report(&[
        "--url",
        &u,
        "--hold",
        "96",
        "--hold-reopen",
        "50ms",
        "--clients",
        "2",
        "--count",
        "200",
        "--timeout",
        "5s",
    ]);
    assert_all_ok(&r, 200);
    let h = &r["hold"];
    assert_eq!(h["connections"], 96, "{r}");
    assert!(h["closed_by_server"].as_u64().unwrap() >= 96 - 32, "{r}");
    assert!(h["open_max"].as_u64().unwrap() > 0, "{r}");
}
