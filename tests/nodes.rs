//! Many nodes behind a proxy, seen from one node: handles carry the node id, a handle of
//! another node is named as such, the routing header must agree with the body, a data dir
//! keeps its node id, and a draining node takes no new sessions. (The proxy itself is
//! tested in tests/python/test_proxy.py.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use serde_json::{json, Value};

use crate::wire::{last_message, HttpServer, WAIT};

const META: &str = r#"{"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}"#;

fn node(id: &str) -> HttpServer {
    HttpServer::start_with_args(None, &["--in-memory", "--node-id", id])
}

/// A 2026-07-28 `tools/call` with exactly the headers given (beyond the required ones).
fn call(s: &HttpServer, name: &str, args: Value, extra: &[(&str, &str)]) -> (u16, Value) {
    let meta: Value = serde_json::from_str(META).unwrap();
    let mut headers = vec![
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", name),
    ];
    headers.extend_from_slice(extra);
    let (status, _, body) = s.post(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": meta}}),
        &headers,
    );
    (status, last_message(&body))
}

/// A GET of `path`: status and body.
fn get(s: &HttpServer, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: pod-ip:8765\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw.split_once("\r\n\r\n").unwrap().1.to_owned())
}

fn signal(s: &HttpServer, sig: i32) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(s.child.id() as i32, sig) }, 0);
}

/// Polls `/readyz` until it answers `want` (the signal is handled asynchronously).
fn until_ready_is(s: &HttpServer, want: u16) -> String {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = get(s, "/readyz");
        if status == want {
            return body;
        }
        assert!(start.elapsed() < WAIT, "/readyz stayed {status}: {body}");
        std::thread::sleep(std::time::Duration::from_millis(5)); // a poll interval
    }
}

#[test]
fn handles_carry_the_node_and_a_handle_of_another_node_is_named_as_such() {
    let s = node("n1");
    let id = s.modern_shell();
    assert!(id.starts_with("n1.") && id.len() == 3 + 36, "{id}");
    let (status, r) = call(
        &s,
        "session_exec",
        json!({"session_id": id, "input": "echo here"}),
        &[("Mcp-Param-Session-Id", &id)],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["structuredContent"]["stdout"], "here\n");

    // The same random part under another node's name: the request reached the wrong node.
    let elsewhere = id.replacen("n1.", "n2.", 1);
    let (_, r) = call(
        &s,
        "session_state",
        json!({"session_id": elsewhere}),
        &[("Mcp-Param-Session-Id", &elsewhere)],
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("is on node n2, not on this node (n1)"),
        "{text}"
    );

    // A fork runs where its parent is: one of another node is refused naming it.
    let fork = json!({"kind": "agent", "command": ["cat"], "agent": {"fork_from": elsewhere}});
    let (_, r) = call(&s, "session_create", fork, &[]);
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(message.contains("is on node n2"), "{message}");

    // The tools say which argument a proxy routes on.
    let (_, listed) = s.modern(2, "tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap();
    let exec = tools.iter().find(|t| t["name"] == "session_exec").unwrap();
    assert_eq!(
        exec["inputSchema"]["properties"]["session_id"]["x-mcp-header"],
        "Session-Id"
    );
    assert_eq!(
        exec["inputSchema"]["properties"]["session_id"]["type"],
        "string"
    );
    let create = tools
        .iter()
        .find(|t| t["name"] == "session_create")
        .unwrap();
    assert!(!create.to_string().contains("x-mcp-header"), "{create}");

    // Handshake era: protocol session ids carry the node; another node's is a 404 naming it.
    let sid = s.initialize();
    assert!(sid.starts_with("n1.") && sid.len() == 3 + 32, "{sid}");
    let legacy_id = s.legacy_shell(&sid);
    assert!(legacy_id.starts_with("n1."), "{legacy_id}");
    let other = sid.replacen("n1.", "n2.", 1);
    let (status, r) = s.legacy(&other, 3, "tools/list", json!({}));
    assert_eq!(status, 404, "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("issued by node n2"), "{message}");
}

#[test]
fn the_routing_header_must_agree_with_the_body() {
    let s = node("n1");
    let id = s.modern_shell();
    let other = s.modern_shell();
    let exec = json!({"session_id": id, "input": "echo hi"});
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "header is missing"),
        (&[("Mcp-Param-Session-Id", &other)], "does not match"),
        (
            &[("Mcp-Param-Session-Id", &id), ("Mcp-Param-Session-Id", &id)],
            "more than once",
        ),
        (&[("Mcp-Param-Session-Id", "n1.x")], "does not match"),
    ];
    for (headers, why) in cases {
        let (status, r) = call(&s, "session_exec", exec.clone(), headers);
        assert_eq!(status, 400, "{headers:?}: {r}");
        assert_eq!(r["error"]["code"], -32020, "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{headers:?}: {message}");
    }
    // A header for a call whose body has no session_id.
    let (status, r) = call(
        &s,
        "session_list",
        json!({}),
        &[("Mcp-Param-Session-Id", &id)],
    );
    // session_list takes no session_id: nothing to check, the header is not its.
    assert_eq!(status, 200, "{r}");
    let (status, r) = call(
        &s,
        "session_state",
        json!({}),
        &[("Mcp-Param-Session-Id", &id)],
    );
    assert_eq!(status, 400, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no session_id"));
    // Base64-wrapped values are decoded before the comparison.
    let wrapped = format!(
        "=?base64?{}?=",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, id.as_bytes())
    );
    let (status, r) = call(
        &s,
        "session_exec",
        exec,
        &[("Mcp-Param-Session-Id", &wrapped)],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["structuredContent"]["stdout"], "hi\n");
}

#[test]
fn a_node_id_a_proxy_cannot_match_is_refused_and_a_data_dir_keeps_its_node() {
    let bin = env!("CARGO_BIN_EXE_stablehand");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--in-memory", "--node-id", "Node_1"]);
    assert!(!ok, "{err}");
    assert!(err.contains("--node-id") && err.contains("'N'"), "{err}");

    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    {
        let s = HttpServer::start_with_args(None, &["--data-dir", dir, "--node-id", "n1"]);
        assert!(s.modern_shell().starts_with("n1."));
    }
    crate::util::wait_until_unlocked(data.path());
    let (ok, err) = run(&["--data-dir", dir, "--node-id", "n2"]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("belongs to node \"n1\"") && err.contains("--node-id n1"),
        "{err}"
    );
    // Without --node-id the data dir's own is used: its sessions' handles stay valid.
    let s = HttpServer::start_with_args(None, &["--data-dir", dir]);
    let (_, listed) = call(&s, "session_list", json!({}), &[]);
    let row = &listed["result"]["structuredContent"]["sessions"][0];
    assert!(
        row["session_id"].as_str().unwrap().starts_with("n1."),
        "{listed}"
    );
    assert_eq!(row["state"], "Suspended");
}

#[test]
fn a_draining_node_keeps_its_sessions_and_takes_no_new_ones() {
    let s = node("n1");
    let (status, body) = get(&s, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok: node n1\n"));
    assert_eq!(get(&s, "/readyz").0, 200);
    let id = s.modern_shell();
    let sid = s.initialize();

    signal(&s, libc::SIGUSR1);
    let body = until_ready_is(&s, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(get(&s, "/healthz").0, 200, "alive while draining");
    // A create is a 503 a proxy retries elsewhere, naming why.
    let (status, r) = call(&s, "session_create", json!({}), &[]);
    assert_eq!(status, 503, "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("node n1 is draining"), "{message}");
    // So is a handshake-era initialize; an existing protocol session keeps working.
    let (status, _, _) = s.post(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
        &[],
    );
    assert_eq!(status, 503);
    let (_, r) = s.legacy(&sid, 2, "tools/list", json!({}));
    assert!(r["result"]["tools"].is_array(), "{r}");
    // Its own sessions keep working.
    let (status, r) = call(
        &s,
        "session_exec",
        json!({"session_id": id, "input": "echo still"}),
        &[("Mcp-Param-Session-Id", &id)],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["structuredContent"]["stdout"], "still\n");

    signal(&s, libc::SIGUSR2);
    until_ready_is(&s, 200);
    assert!(s.modern_shell().starts_with("n1."));
}
