//! The MCP front end over Streamable HTTP, at the wire level.

use serde_json::json;

use crate::wire::{header, sse_messages, HttpServer};

#[test]
fn legacy_sessions_are_issued_required_and_ended() {
    let s = HttpServer::start();
    let sid = s.initialize();
    let (status, _, _) = s.post(
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &[
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    assert_eq!(status, 202);
    let (status, r) = s.legacy(&sid, 2, "ping", json!({}));
    assert_eq!((status, r["result"].clone()), (200, json!({})));
    let (status, _, body) = s.post(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}), &[]);
    assert_eq!(status, 400, "no session id: {body}");
    let (status, _, _) = s.post(
        &json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
        &[("Mcp-Session-Id", "nope")],
    );
    assert_eq!(status, 404);
    let (status, _, _) = s.request(
        "GET",
        &[("Mcp-Session-Id", &sid), ("Accept", "application/json")],
        b"",
    );
    assert_eq!(
        status, 406,
        "GET opens an event stream (tests/subscriptions.rs)"
    );
    let (status, _, _) = s.request("DELETE", &[("Mcp-Session-Id", &sid)], b"");
    assert_eq!(status, 204);
    let (status, _) = s.legacy(&sid, 5, "ping", json!({}));
    assert_eq!(status, 404, "a deleted session is gone");
    let (status, _, _) = s.request(
        "GET",
        &[("Mcp-Session-Id", &sid), ("Accept", "text/event-stream")],
        b"",
    );
    assert_eq!(status, 404, "so is its event stream");
}

#[test]
fn modern_http_is_post_only_and_validates_its_headers() {
    let s = HttpServer::start();
    let (status, r) = s.modern(1, "tools/list", json!({}));
    assert_eq!(status, 200);
    assert_eq!(r["result"]["resultType"], "complete");
    for method in ["GET", "DELETE"] {
        let (status, _, _) = s.request(method, &[("MCP-Protocol-Version", "2026-07-28")], b"");
        assert_eq!(status, 405, "{method}");
    }
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let msg = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_list", "arguments": {}, "_meta": meta}});
    let (status, _, body) = s.post(
        &msg,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
            ("Mcp-Name", "session_list"),
        ],
    );
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"],
        -32020
    );
    let (status, _, body) = s.post(
        &msg,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "session_end"),
        ],
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("-32020") && body.contains("Mcp-Name"),
        "{body}"
    );
    let (status, _, body) = s.post(
        &msg,
        &[
            ("MCP-Protocol-Version", "2099-01-01"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "session_list"),
        ],
    );
    assert_eq!(status, 400);
    assert!(body.contains("-32022"), "{body}");
    let (status, _, _) = s.post(
        &json!([msg]),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
        ],
    );
    assert_eq!(status, 400, "batches are refused in the modern era");
    let (status, _, _) = s.post(
        &msg,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "session_list"),
        ],
    );
    assert_eq!(status, 200);
}

#[test]
fn origin_host_body_size_and_parse_errors_are_refused_at_the_door() {
    let s = HttpServer::start();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let (status, _, _) = s.post(&ping, &[("Origin", "http://evil.example.com")]);
    assert_eq!(status, 403);
    let (status, _, _) = s.post(&ping, &[("Host", "evil.example.com")]);
    assert_eq!(status, 403);
    let (status, _, _) = s.post(&ping, &[("Origin", "http://localhost:3000")]);
    assert_eq!(status, 200);
    // The declared size is refused before any of the body is read.
    let (status, _, body) = s.request_declaring(
        "POST",
        &[("Content-Type", "application/json")],
        b"",
        2 * 1024 * 1024,
    );
    assert_eq!(status, 413);
    assert!(body.contains("exceeds 1048576 bytes"), "{body}");
    let (status, _, body) = s.request("POST", &[("Content-Type", "application/json")], b"{nope");
    assert_eq!(status, 400);
    assert!(body.contains("-32700"), "{body}");
}

#[test]
fn bearer_tokens_are_required_when_configured_and_name_the_owner() {
    let s = HttpServer::start_with_config(Some("[http]\ntokens = [{ name = \"alice\", token = \"s3cret-a\" }, { name = \"bob\", token = \"s3cret-b\" }]\n"));
    let (status, _) = s.modern(1, "tools/list", json!({}));
    assert_eq!(status, 401);
    for wrong in ["Bearer s3cret-", "Bearer s3cret-ab", "Basic s3cret-a"] {
        let (status, headers, _) = s.post(
            &json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {}}),
            &[("Authorization", wrong)],
        );
        assert_eq!(status, 401, "{wrong}");
        assert_eq!(
            header(&headers, "www-authenticate").as_deref(),
            Some("Bearer"),
            "{wrong}"
        );
    }
    let call = |token: &str, id: u64, name: &str, args: serde_json::Value| {
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
        let auth = format!("Bearer {token}");
        let routed = args["session_id"].as_str().unwrap_or_default().to_owned();
        let mut headers = vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", name),
            ("Authorization", &auth),
        ];
        if !routed.is_empty() {
            headers.push(("Mcp-Param-Session-Id", &routed));
        }
        let (status, _, body) = s.post(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": meta}}),
            &headers,
        );
        assert_eq!(status, 200, "{body}");
        crate::wire::last_message(&body)["result"].clone()
    };
    let created = call("s3cret-a", 2, "session_create", json!({}));
    let id = created["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs = call("s3cret-b", 3, "session_list", json!({}));
    assert_eq!(
        bobs["structuredContent"]["sessions"],
        json!([]),
        "bob does not see alice's session"
    );
    let r = call("s3cret-b", 4, "session_state", json!({"session_id": id}));
    assert_eq!(r["isError"], true);
    let alices = call("s3cret-a", 5, "session_list", json!({}));
    assert_eq!(
        alices["structuredContent"]["sessions"][0]["session_id"],
        id.as_str()
    );
}

#[test]
fn a_long_modern_exec_streams_progress_over_sse() {
    let s = HttpServer::start();
    let id = s.modern_shell();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": 7});
    let (status, headers, body) = s.post(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": id, "input": "sleep 2.2; echo done"}, "_meta": meta}}),
        &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "session_exec"), ("Mcp-Param-Session-Id", &id)],
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let msgs = sse_messages(&body);
    let progress = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(progress >= 2, "{body}");
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 2);
    assert_eq!(last["result"]["structuredContent"]["stdout"], "done\n");
}

/// When a test client walks away from a request it sent.
enum HangUp<'a> {
    /// Once the response has switched to an event stream (its headers say so).
    AfterSwitch,
    /// As soon as `ready()` holds. The request accepts JSON only, so its response cannot
    /// have switched to an event stream by then, however slow the machine.
    Before(&'a dyn Fn() -> bool),
}

/// Sends a request on a fresh connection and closes it at `when`, reading no response body.
fn post_and_hang_up(
    s: &HttpServer,
    msg: &serde_json::Value,
    headers: &[(&str, &str)],
    when: HangUp<'_>,
) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
    let body = msg.to_string();
    let accept = match when {
        HangUp::AfterSwitch => "application/json, text/event-stream",
        HangUp::Before(_) => "application/json",
    };
    let mut req = format!("POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {}\r\n", s.addr, body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).unwrap();
    match when {
        HangUp::AfterSwitch => {
            stream.set_read_timeout(Some(crate::wire::WAIT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).expect("response headers");
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            assert!(head.contains("text/event-stream"), "{head}");
        }
        HangUp::Before(ready) => {
            let start = std::time::Instant::now();
            while !ready() {
                assert!(
                    start.elapsed() < crate::wire::WAIT,
                    "never ready to hang up"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    drop(stream);
}

fn wait_for_state(
    s: &HttpServer,
    state: &dyn Fn() -> serde_json::Value,
    want: &str,
) -> serde_json::Value {
    let _ = s;
    let start = std::time::Instant::now();
    loop {
        let st = state();
        if st["state"] == want {
            return st;
        }
        assert!(
            start.elapsed() < crate::wire::WAIT,
            "never became {want}: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_modern_client_that_disconnects_cancels_its_exec_and_the_session_stays_usable() {
    let s = HttpServer::start();
    let id = s.modern_shell();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let msg = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": id, "input": "sleep 60; echo never"}, "_meta": meta}});
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "session_exec"),
        ("Mcp-Param-Session-Id", id.as_str()),
    ];
    let state = || {
        s.modern(
            3,
            "tools/call",
            json!({"name": "session_state", "arguments": {"session_id": id}}),
        )
        .1["result"]["structuredContent"]
            .clone()
    };
    let busy = || state()["state"] == "Busy";
    for (n, when) in [HangUp::Before(&busy), HangUp::AfterSwitch]
        .into_iter()
        .enumerate()
    {
        let msg = {
            let mut m = msg.clone();
            m["id"] = json!(10 + n);
            m
        };
        post_and_hang_up(&s, &msg, &headers, when);
        wait_for_state(&s, &state, "Ready");
    }
    // Both execs (hang-up before and after the switch to SSE) were interrupted: two
    // interrupted execs plus two signals are all the operations there were.
    let st = wait_for_state(&s, &state, "Ready");
    assert_eq!(st["metrics"]["ops"].as_u64(), Some(4), "{st}");
    let (_, r) = s.modern(
        4,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": id, "input": "echo usable"}}),
    );
    assert_eq!(r["result"]["structuredContent"]["stdout"], "usable\n");
}

#[test]
fn a_legacy_client_that_disconnects_lets_its_exec_complete() {
    let s = HttpServer::start();
    let sid = s.initialize();
    let id = s.legacy_shell(&sid);
    let gate = crate::util::Gate::new();
    let input = format!("{}; echo finished", gate.wait());
    let msg = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": id, "input": input}}});
    let state = || {
        s.legacy(
            &sid,
            4,
            "tools/call",
            json!({"name": "session_state", "arguments": {"session_id": id}}),
        )
        .1["result"]["structuredContent"]
            .clone()
    };
    let busy = || state()["state"] == "Busy";
    post_and_hang_up(
        &s,
        &msg,
        &[
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        HangUp::Before(&busy),
    );
    // The command goes on only after its client has gone.
    gate.open_blocking();
    wait_for_state(&s, &state, "Ready");
    let (_, page) = s.legacy(
        &sid,
        5,
        "tools/call",
        json!({"name": "session_read", "arguments": {"session_id": id, "cursor": 0}}),
    );
    assert_eq!(
        page["result"]["structuredContent"]["data"], "finished\n",
        "the call ran to completion"
    );
}

#[test]
fn a_request_over_the_time_limit_gets_an_error_and_the_server_keeps_serving() {
    let s = HttpServer::start_with_config(Some("[http]\nrequest_timeout_ms = 300\n"));
    let id = s.modern_shell();
    let (status, r) = s.modern(2, "tools/call", json!({"name": "session_exec", "arguments": {"session_id": id, "input": "sleep 2", "timeout_ms": 10000}}));
    assert_eq!(status, 200);
    assert_eq!(r["error"]["code"], -32603, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time limit of 300 ms"),
        "{r}"
    );
    let (_, r) = s.modern(
        3,
        "tools/call",
        json!({"name": "session_list", "arguments": {}}),
    );
    assert_eq!(r["result"]["isError"], false);
}

#[test]
fn sessions_of_a_server_started_with_interrupts_ignored_can_still_be_interrupted() {
    let s = HttpServer::start_ignoring_interrupts();
    let id = s.modern_shell();
    let call = |id_: u64, name: &str, args: serde_json::Value| {
        s.modern(id_, "tools/call", json!({"name": name, "arguments": args}))
            .1
    };
    let r = call(
        2,
        "session_exec",
        json!({"session_id": id, "input": "sleep 100; echo not-reached", "timeout_ms": 200}),
    );
    assert_eq!(r["result"]["structuredContent"]["timed_out"], true, "{r}");
    let r = call(
        3,
        "session_signal",
        json!({"session_id": id, "signal": "INT"}),
    );
    assert_eq!(r["result"]["structuredContent"]["delivered"], true, "{r}");
    let state = || {
        call(4, "session_state", json!({"session_id": id}))["result"]["structuredContent"].clone()
    };
    wait_for_state(&s, &state, "Ready");
    let r = call(
        5,
        "session_exec",
        json!({"session_id": id, "input": "trap -p; echo ok"}),
    );
    assert_eq!(
        r["result"]["structuredContent"]["stdout"], "ok\n",
        "no signal is ignored: {r}"
    );
}
