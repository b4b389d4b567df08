//! MCP over Streamable HTTP against its physical baselines, measured in one run.
//!
//! - no-op: legacy `ping` and modern `session_list` (empty owner) through stablehand, against a
//!   bare jsonrpsee HTTP server's no-op method, with 1, 16 and 64 keep-alive clients;
//! - exec `true` through MCP HTTP (1 client) against a bare pipe round trip to a warm bash plus
//!   the bare HTTP no-op round trip.
//!
//! Run: `cargo bench --bench http` (prints a Markdown table). `BENCH_SECS` sets seconds per
//! measurement (default 3).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stablehand::Config;

#[path = "mcp_client/mod.rs"]
mod mcp_client;
use mcp_client::{load, modern_call, request, secs, serve_http, start_runtime, two_workers, Run};

/// Round trip of `true; echo M` to a warm bash over bare pipes, per iteration (ns).
fn bare_pipe(n: usize) -> Vec<u64> {
    let mut bash = Command::new("bash")
        .args(["--noprofile", "--norc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = bash.stdin.take().unwrap();
    let mut out = BufReader::new(bash.stdout.take().unwrap());
    let mut line = String::new();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t = Instant::now();
        stdin.write_all(b"true; echo __M\n").unwrap();
        stdin.flush().unwrap();
        loop {
            line.clear();
            out.read_line(&mut line).unwrap();
            if line == "__M\n" {
                break;
            }
        }
        if i >= 200 {
            lat.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(stdin);
    let _ = bash.wait();
    lat
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / criterion-style probes: nothing to list
    }
    let (servers, clients) = (two_workers(), two_workers());

    // Bare jsonrpsee no-op.
    let bare_addr = servers.block_on(async {
        let server = jsonrpsee::server::Server::builder()
            .set_config(
                jsonrpsee::server::ServerConfig::builder()
                    .max_connections(10_000)
                    .build(),
            )
            .build("127.0.0.1:0")
            .await
            .unwrap();
        let mut module = jsonrpsee::RpcModule::new(());
        module
            .register_method("ping", |_, _, _| serde_json::json!({}))
            .unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.start(module);
        std::mem::forget(handle);
        addr
    });

    // stablehand: runtime in its own actix System, MCP HTTP on the server runtime.
    let mut config = Config::default();
    config.store.in_memory = true;
    config.session.idle_timeout_ms = 0;
    let handle = start_runtime(config);
    let lib_handle = handle.clone();
    let ours = serve_http(&servers, handle);

    let mut rows = Vec::new();
    for c in [1usize, 16, 64] {
        let bare = clients.block_on(load(bare_addr, c, move |conn| async move {
            (
                conn,
                request(
                    bare_addr,
                    "/",
                    &[],
                    &json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": []}),
                ),
            )
        }));
        let legacy = clients.block_on(load(ours, c, move |mut conn| async move {
            let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
            let (_, sid) = conn.round_trip(&request(ours, "/mcp", &[], &init)).await;
            let headers = [("Mcp-Session-Id", sid.unwrap()), ("MCP-Protocol-Version", "2025-11-25".to_owned())];
            (conn, request(ours, "/mcp", &headers, &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})))
        }));
        let modern = clients.block_on(load(ours, c, move |conn| async move {
            (conn, modern_call(ours, "session_list", json!({})))
        }));
        rows.push((c, bare, legacy, modern));
    }

    // Exec `true` through MCP HTTP, one client, one warm session created over the same
    // keep-alive connection (as a real client does).
    let exec = clients.block_on(load(ours, 1, move |mut conn| async move {
        conn.round_trip(&modern_call(ours, "session_create", json!({})))
            .await;
        let body = String::from_utf8(conn.body.clone()).unwrap();
        let id = serde_json::from_str::<Value>(&body).unwrap()["result"]["structuredContent"]
            ["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let req = modern_call(
            ours,
            "session_exec",
            json!({"session_id": id, "input": "true"}),
        );
        (conn, req)
    }));
    let pipe = Run {
        lat: bare_pipe(20_000),
        elapsed: Duration::from_secs(1),
    };
    // The same exec through the library API from the client runtime: the HTTP layer's share.
    let library = clients.block_on(async move {
        let h = lib_handle;
        let id = h.create(Default::default()).await.unwrap().session_id;
        let req = stablehand::session::messages::Exec {
            input: "true".into(),
            ..Default::default()
        };
        for _ in 0..200 {
            h.exec(id, req.clone()).await.unwrap();
        }
        let (dur, start) = (secs(), Instant::now());
        let mut lat = Vec::new();
        while start.elapsed() < dur {
            let t = Instant::now();
            h.exec(id, req.clone()).await.unwrap();
            lat.push(t.elapsed().as_nanos() as u64);
        }
        Run {
            lat,
            elapsed: start.elapsed(),
        }
    });

    println!("| clients | bare jsonrpsee req/s | p50 µs | p99 µs | MCP legacy ping req/s | p50 µs | p99 µs | ratio | MCP modern session_list req/s | p50 µs | p99 µs | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, b, l, m) in &rows {
        println!(
            "| {c} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {:.1} | {:.2} |",
            b.rps(), b.pct(0.5), b.pct(0.99),
            l.rps(), l.pct(0.5), l.pct(0.99), l.rps() / b.rps(),
            m.rps(), m.pct(0.5), m.pct(0.99), m.rps() / b.rps()
        );
    }
    let noop = rows[0].1.pct(0.5);
    let floor = pipe.pct(0.5) + noop;
    println!();
    println!("| measurement (1 client) | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!(
        "| bare pipe round trip to a warm bash (`true; echo`) | {:.1} | {:.1} |",
        pipe.pct(0.5),
        pipe.pct(0.99)
    );
    println!(
        "| bare jsonrpsee no-op over loopback HTTP | {:.1} | {:.1} |",
        noop,
        rows[0].1.pct(0.99)
    );
    println!("| floor = pipe + HTTP no-op | {floor:.1} | |");
    println!(
        "| stablehand exec `true` through MCP HTTP | {:.1} | {:.1} |",
        exec.pct(0.5),
        exec.pct(0.99)
    );
    println!(
        "| ratio exec / floor (target ≤ 1.5) | {:.2} | |",
        exec.pct(0.5) / floor
    );
    println!(
        "| same exec through the library API (no HTTP) | {:.1} | {:.1} |",
        library.pct(0.5),
        library.pct(0.99)
    );
    println!("| exec throughput, 1 client | {:.0} /s | |", exec.rps());
}
