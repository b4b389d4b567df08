//! Tasks and subscriptions through MCP over HTTP (handshake era), each against a reference
//! measured in the same run:
//!
//! - task creation: `tools/call` of `session_exec true` with `task {}` (answered once the task
//!   is on disk), against the same exec without a task; 1 client;
//! - `tasks/get` of a finished task with 64 clients, against `ping` with 64 clients;
//! - 1,000 tasks working at once (`sleep` execs, one running and 16 queued per session):
//!   runtime heap and VmRSS per task, the sessions' own cost subtracted;
//! - update latency: from a `session_send` to a `cat` session until its transcript's
//!   `notifications/resources/updated` arrives on the GET stream, against the send's own
//!   round trip (sends 150 ms apart, past the 100 ms coalescing).
//!
//! Run: `cargo bench --bench tasks`. `BENCH_SECS` (default 3) per throughput measurement,
//! `BENCH_CREATES` (default 2000), `BENCH_TASKS` (default 1000), `BENCH_UPDATES` (default 100).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stablehand::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

mod common;
#[path = "mcp_client/mod.rs"]
mod mcp_client;
use common::{env, rss_kib, HEAP};
use mcp_client::{load, request, serve_http, start_runtime, two_workers, Conn, Run};

/// A handshake-era protocol session on `conn`: the headers its requests carry.
async fn initialize(conn: &mut Conn, addr: SocketAddr) -> Vec<(&'static str, String)> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let (_, sid) = conn.round_trip(&request(addr, "/mcp", &[], &init)).await;
    vec![
        ("Mcp-Session-Id", sid.expect("a protocol session")),
        ("MCP-Protocol-Version", "2025-11-25".to_owned()),
    ]
}

/// The JSON of the last response on `conn` (a plain JSON body).
fn body(conn: &Conn) -> Value {
    serde_json::from_slice(&conn.body).expect("a JSON response")
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn call(name: &str, args: Value) -> Value {
    rpc("tools/call", json!({"name": name, "arguments": args}))
}

/// A session created over `conn`; `args` as for `session_create`.
async fn session(conn: &mut Conn, addr: SocketAddr, h: &[(&str, String)], args: Value) -> String {
    conn.round_trip(&request(addr, "/mcp", h, &call("session_create", args)))
        .await;
    body(conn)["result"]["structuredContent"]["session_id"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

/// Median and p99 (µs) of task creation and of the plain exec, on one connection.
async fn creation(addr: SocketAddr, n: usize) -> (Run, Run) {
    let mut conn = Conn::open(addr).await;
    let h = initialize(&mut conn, addr).await;
    let sid = session(&mut conn, addr, &h, json!({})).await;
    let exec = call("session_exec", json!({"session_id": sid, "input": "true"}));
    let mut as_task = exec.clone();
    as_task["params"]["task"] = json!({});
    let (plain_req, task_req) = (
        request(addr, "/mcp", &h, &exec),
        request(addr, "/mcp", &h, &as_task),
    );
    let (mut plain, mut task) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let start = Instant::now();
    for i in 0..n + 100 {
        let t = Instant::now();
        conn.round_trip(&task_req).await;
        let created = t.elapsed().as_nanos() as u64;
        let id = body(&conn)["result"]["task"]["taskId"]
            .as_str()
            .expect("a task")
            .to_owned();
        // Its result, so the session is free for the next one.
        let result = rpc("tasks/result", json!({"taskId": id}));
        conn.round_trip(&request(addr, "/mcp", &h, &result)).await;
        let t = Instant::now();
        conn.round_trip(&plain_req).await;
        if i >= 100 {
            task.push(created);
            plain.push(t.elapsed().as_nanos() as u64);
        }
    }
    let elapsed = start.elapsed();
    (
        Run { lat: task, elapsed },
        Run {
            lat: plain,
            elapsed,
        },
    )
}

/// `tasks/get` of a finished task of each client's own, with `clients` clients.
async fn polling(addr: SocketAddr, clients: usize) -> Run {
    load(addr, clients, move |mut conn| async move {
        let h = initialize(&mut conn, addr).await;
        let sid = session(&mut conn, addr, &h, json!({})).await;
        let mut exec = call("session_exec", json!({"session_id": sid, "input": "true"}));
        exec["params"]["task"] = json!({});
        conn.round_trip(&request(addr, "/mcp", &h, &exec)).await;
        let id = body(&conn)["result"]["task"]["taskId"].clone();
        let result = rpc("tasks/result", json!({"taskId": id}));
        conn.round_trip(&request(addr, "/mcp", &h, &result)).await;
        let get = request(addr, "/mcp", &h, &rpc("tasks/get", json!({"taskId": id})));
        (conn, get)
    })
    .await
}

async fn pinging(addr: SocketAddr, clients: usize) -> Run {
    load(addr, clients, move |mut conn| async move {
        let h = initialize(&mut conn, addr).await;
        let ping = request(addr, "/mcp", &h, &rpc("ping", json!({})));
        (conn, ping)
    })
    .await
}

/// Heap and VmRSS per working task (KiB), `n` tasks in sessions of one running and 16
/// queued execs; then the same after cancelling them all.
async fn working(addr: SocketAddr, n: usize) -> [(f64, f64); 2] {
    let settle = || tokio::time::sleep(Duration::from_millis(1500));
    let mut conn = Conn::open(addr).await;
    let h = initialize(&mut conn, addr).await;
    let per_session = 17;
    let mut sessions = Vec::new();
    for _ in 0..n.div_ceil(per_session) {
        sessions.push(session(&mut conn, addr, &h, json!({})).await);
    }
    settle().await;
    let (heap0, rss0) = (HEAP.load(Relaxed), rss_kib());
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let sid = &sessions[i / per_session];
        let mut exec = call(
            "session_exec",
            json!({"session_id": sid, "input": "sleep 600"}),
        );
        exec["params"]["task"] = json!({});
        conn.round_trip(&request(addr, "/mcp", &h, &exec)).await;
        ids.push(body(&conn)["result"]["task"]["taskId"].clone());
    }
    settle().await;
    let get = rpc("tasks/get", json!({"taskId": ids[n - 1]}));
    conn.round_trip(&request(addr, "/mcp", &h, &get)).await;
    assert_eq!(
        body(&conn)["result"]["status"],
        "working",
        "the last task still works"
    );
    let (heap1, rss1) = (HEAP.load(Relaxed), rss_kib());
    for id in &ids {
        let cancel = rpc("tasks/cancel", json!({"taskId": id}));
        conn.round_trip(&request(addr, "/mcp", &h, &cancel)).await;
    }
    settle().await;
    let (heap2, rss2) = (HEAP.load(Relaxed), rss_kib());
    let per = |heap: isize, rss: u64| {
        (
            (heap - heap0) as f64 / 1024.0 / n as f64,
            rss.saturating_sub(rss0) as f64 / n as f64,
        )
    };
    [per(heap1, rss1), per(heap2, rss2)]
}

/// Latency (ns) from a `session_send` to the update on the GET stream, and of the send.
async fn updates(addr: SocketAddr, n: usize) -> (Run, Run) {
    let mut conn = Conn::open(addr).await;
    let h = initialize(&mut conn, addr).await;
    let cat = json!({"kind": "process", "command": ["cat"]});
    let sid = session(&mut conn, addr, &h, cat).await;
    let uri = format!("stablehand://sessions/{sid}/transcript");
    let sub = rpc("resources/subscribe", json!({"uri": uri}));
    conn.round_trip(&request(addr, "/mcp", &h, &sub)).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut get = format!("GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in &h {
        get.push_str(&format!("{k}: {v}\r\n"));
    }
    get.push_str("\r\n");
    w.write_all(get.as_bytes()).await.unwrap();
    let mut lines = tokio::io::BufReader::new(r).lines();
    let send = request(
        addr,
        "/mcp",
        &h,
        &call("session_send", json!({"session_id": sid, "data": "x\n"})),
    );
    let (mut update, mut round_trip) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..n + 10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t = Instant::now();
        conn.round_trip(&send).await;
        let sent = t.elapsed().as_nanos() as u64;
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the stream is open");
            if line.contains("notifications/resources/updated") {
                break;
            }
        }
        if i >= 10 {
            update.push(t.elapsed().as_nanos() as u64);
            round_trip.push(sent);
        }
    }
    let elapsed = start.elapsed();
    (
        Run {
            lat: update,
            elapsed,
        },
        Run {
            lat: round_trip,
            elapsed,
        },
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (creates, tasks, updates_n) = (
        env("BENCH_CREATES", 2000),
        env("BENCH_TASKS", 1000),
        env("BENCH_UPDATES", 100),
    );
    let (servers, clients) = (two_workers(), two_workers());
    let mut config = Config::default();
    config.store.in_memory = true; // a temporary directory: writes and syncs are real
    config.session.idle_timeout_ms = 0;
    config.runtime.max_sessions = 2000;
    let addr = serve_http(&servers, start_runtime(config));

    let (task, plain) = clients.block_on(creation(addr, creates));
    let get = clients.block_on(polling(addr, 64));
    let ping = clients.block_on(pinging(addr, 64));
    let [held, cancelled] = clients.block_on(working(addr, tasks));
    let (update, send) = clients.block_on(updates(addr, updates_n));

    println!("| measure | median | p99 | reference (same run) | median | p99 | ratio of medians |");
    println!("|---|---:|---:|---|---:|---:|---:|");
    println!(
        "| task creation: `session_exec true` with `task {{}}`, 1 client | {:.1} µs | {:.1} µs | the same exec, no task | {:.1} µs | {:.1} µs | {:.2} |",
        task.pct(0.5), task.pct(0.99), plain.pct(0.5), plain.pct(0.99), task.pct(0.5) / plain.pct(0.5)
    );
    println!(
        "| update latency: `session_send` to a `cat` session until `notifications/resources/updated` on the GET stream | {:.1} µs | {:.1} µs | the `session_send` round trip | {:.1} µs | {:.1} µs | {:.2} |",
        update.pct(0.5), update.pct(0.99), send.pct(0.5), send.pct(0.99), update.pct(0.5) / send.pct(0.5)
    );
    println!();
    println!("| 64 clients | req/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (name, r) in [("`tasks/get` of a finished task", &get), ("`ping`", &ping)] {
        println!(
            "| {name} | {:.0} | {:.1} µs | {:.1} µs |",
            r.rps(),
            r.pct(0.5),
            r.pct(0.99)
        );
    }
    println!("| ratio | {:.2} | | |", get.rps() / ping.rps());
    println!();
    println!("| {tasks} tasks | runtime heap per task | VmRSS growth per task |");
    println!("|---|---:|---:|");
    println!(
        "| working (`sleep 600`: one running, 16 queued per session) | {:.2} KiB | {:.2} KiB |",
        held.0, held.1
    );
    println!(
        "| after `tasks/cancel` of each (kept until their ttl) | {:.2} KiB | {:.2} KiB |",
        cancelled.0, cancelled.1
    );
}
