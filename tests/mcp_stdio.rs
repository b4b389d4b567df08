//! The MCP front end over stdio, at the wire level.

use serde_json::json;

use crate::wire::StdioServer;

#[test]
fn legacy_handshake_negotiates_and_lists_tools_in_stable_order() {
    let mut s = StdioServer::start();
    let r = s.call(1, "initialize", json!({"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}));
    assert_eq!(
        r["result"]["protocolVersion"], "2025-11-25",
        "an unknown version gets the newest"
    );
    assert!(r["result"]["capabilities"]["tools"].is_object());
    assert_eq!(r["result"]["serverInfo"]["name"], "stablehand");
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_eq!(s.call(2, "ping", json!({}))["result"], json!({}));
    let names: Vec<String> = s.call(3, "tools/list", json!({}))["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "session_create",
            "session_exec",
            "session_send",
            "session_read",
            "session_state",
            "session_list",
            "session_signal",
            "session_end",
            "session_resume",
            "session_snapshot",
            "debug_set_breakpoints",
            "debug_continue",
            "debug_step",
            "debug_pause",
            "debug_evaluate",
            "terminal_send",
            "terminal_screen",
            "terminal_resize"
        ]
    );
    let tools = s.call(4, "tools/list", json!({}))["result"]["tools"].clone();
    for t in tools.as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{}", t["name"]);
        assert_eq!(t["outputSchema"]["type"], "object", "{}", t["name"]);
        assert!(t["description"].as_str().unwrap().len() > 40);
    }
    let exec = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "session_exec")
        .unwrap();
    let timeout_doc = exec["inputSchema"]["properties"]["timeout_ms"]["description"]
        .as_str()
        .unwrap();
    assert!(
        timeout_doc.contains("keeps running"),
        "field doc comments become descriptions: {timeout_doc}"
    );
}

#[test]
fn malformed_messages_get_precise_errors_and_the_connection_survives() {
    let mut s = StdioServer::start();
    s.initialize();
    s.send_raw(b"{not json\n");
    assert_eq!(s.recv()["error"]["code"], -32700);
    s.send_raw(b"\xff\xfe{}\n");
    let r = s.recv();
    assert_eq!(r["error"]["code"], -32700);
    assert!(r["error"]["message"].as_str().unwrap().contains("UTF-8"));
    s.send(&json!({"jsonrpc": "1.0", "id": 5, "method": "ping"}));
    let r = s.recv();
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    s.send(&json!({"jsonrpc": "2.0", "id": 6}));
    assert_eq!(s.recv()["error"]["code"], -32600);
    assert_eq!(
        s.call(7, "no/such/method", json!({}))["error"]["code"],
        -32601
    );
    assert_eq!(
        s.call(8, "tools/call", json!({"name": 42}))["error"]["code"],
        -32602
    );
    let r = s.call(
        9,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no_such_tool"));
    let r = s.call(
        10,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": "x"}}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert!(
        r["error"]["message"].as_str().unwrap().contains("input"),
        "names the missing field: {r}"
    );
    let r = s.call(
        11,
        "tools/call",
        json!({"name": "session_signal", "arguments": {"session_id": "x", "signal": "BOGUS"}}),
    );
    assert_eq!(r["error"]["code"], -32602);
    // A batch is refused in 2025-06-18 (batches were removed in that revision).
    s.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}]\n");
    assert_eq!(s.recv()["error"]["code"], -32600);
    // Tool failures are results with isError, naming the problem.
    let r = s.tool(
        13,
        "session_exec",
        json!({"session_id": "3c4fd0a8-8a4e-4c8a-9c35-1f3d7f0e9a11", "input": "true"}),
    );
    assert_eq!(r["isError"], true);
    assert!(r["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("not found"));
    assert_eq!(s.call(14, "ping", json!({}))["result"], json!({}));
}

#[test]
fn a_shell_session_round_trip_returns_structured_and_text_content() {
    let mut s = StdioServer::start();
    s.initialize();
    let created = s.tool(1, "session_create", json!({}));
    let id = created["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s.tool(
        2,
        "session_exec",
        json!({"session_id": id, "input": "cd /tmp && echo out && echo err >&2 && (exit 3)"}),
    );
    assert_eq!(r["isError"], false);
    let sc = &r["structuredContent"];
    assert_eq!(
        (
            sc["stdout"].as_str(),
            sc["stderr"].as_str(),
            sc["exit_code"].as_i64(),
            sc["cwd"].as_str()
        ),
        (Some("out\n"), Some("err\n"), Some(3), Some("/tmp"))
    );
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("out") && text.contains("[exit code 3, cwd /tmp]"),
        "{text}"
    );
}

#[test]
fn modern_requests_need_the_envelope_and_get_result_type_and_cache_fields() {
    let mut s = StdioServer::start();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let r = s.call(1, "tools/list", json!({"_meta": meta}));
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["ttlMs"], 0);
    assert!(r["result"]["cacheScope"].is_string());
    assert_eq!(
        r["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stablehand"
    );
    let r = s.call(
        2,
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
    );
    assert_eq!(r["error"]["code"], -32602, "clientCapabilities is required");
    let r = s.call(3, "tools/list", json!({}));
    assert_eq!(
        r["error"]["code"], -32602,
        "every modern request carries the envelope"
    );
    let r = s.call(4, "tools/list", json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}));
    assert_eq!(r["error"]["code"], -32022);
    assert_eq!(r["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(r["error"]["data"]["supported"], json!(["2026-07-28"]));
    let r = s.call(5, "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}));
    assert_eq!(
        r["error"]["code"], -32022,
        "a modern connection does not take a handshake"
    );
    let r = s.call(6, "server/discover", json!({"_meta": meta}));
    assert!(r["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    let r = s.call(
        7,
        "resources/read",
        json!({"uri": "stablehand://nope", "_meta": meta}),
    );
    assert_eq!(r["error"]["code"], -32602, "modern resource-not-found code");
}

#[test]
fn legacy_resource_not_found_uses_its_own_code() {
    let mut s = StdioServer::start();
    s.initialize();
    let r = s.call(
        1,
        "resources/read",
        json!({"uri": "stablehand://sessions/3c4fd0a8-8a4e-4c8a-9c35-1f3d7f0e9a11/state"}),
    );
    assert_eq!(r["error"]["code"], -32002);
    assert_eq!(
        r["error"]["data"]["uri"],
        "stablehand://sessions/3c4fd0a8-8a4e-4c8a-9c35-1f3d7f0e9a11/state"
    );
    let r = s.call(2, "resources/read", json!({"uri": "stablehand://metrics"}));
    let text = r["result"]["contents"][0]["text"].as_str().unwrap();
    let metrics: serde_json::Value = serde_json::from_str(text).unwrap();
    assert!(metrics["Ready"].is_u64(), "{metrics}");
    assert!(metrics["store"]["batches"].is_u64(), "{metrics}");
    let r = s.call(3, "logging/setLevel", json!({"level": "verbose"}));
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(
        s.call(4, "logging/setLevel", json!({"level": "debug"}))["result"],
        json!({})
    );
}

#[test]
fn a_cancelled_exec_is_interrupted_unanswered_and_its_session_stays_usable() {
    let mut s = StdioServer::start();
    s.initialize();
    let id = s.tool(1, "session_create", json!({}))["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": id, "input": "sleep 30; echo never", "timeout_ms": 60000}}}));
    // A state call proves the exec is running (and that other calls are not blocked by it).
    let busy = loop {
        let st = s.tool(3, "session_state", json!({"session_id": id}));
        if st["structuredContent"]["state"] == "Busy" {
            break st;
        }
    };
    assert_eq!(busy["isError"], false);
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2, "reason": "test"}}));
    let r = s.tool(
        4,
        "session_exec",
        json!({"session_id": id, "input": "echo again"}),
    );
    assert_eq!(r["structuredContent"]["stdout"], "again\n");
    // The cancelled request was never answered: the next line is the answer to a new ping.
    assert_eq!(s.call(5, "ping", json!({}))["id"], 5);
}

#[test]
fn progress_is_reported_at_least_every_second_during_a_long_exec() {
    let mut s = StdioServer::start();
    s.initialize();
    let id = s.tool(1, "session_create", json!({}))["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "session_exec", "arguments": {"session_id": id, "input": "sleep 2.5; echo done"}, "_meta": {"progressToken": "p1"}}}));
    let (resp, notes) = s.response(2);
    assert_eq!(resp["result"]["structuredContent"]["stdout"], "done\n");
    let progress: Vec<_> = notes
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(
        progress.len() >= 2,
        "a 2.5 s exec reports at least twice: {notes:?}"
    );
    assert!(progress
        .iter()
        .all(|p| p["params"]["progressToken"] == "p1"));
    let values: Vec<u64> = progress
        .iter()
        .map(|p| p["params"]["progress"].as_u64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {values:?}"
    );
}

#[test]
fn end_of_input_ends_every_session_and_exits_cleanly() {
    let mut s = StdioServer::start();
    s.initialize();
    let created = s.tool(
        1,
        "session_create",
        json!({"kind": "process", "command": ["sh", "-c", "trap '' TERM; sleep 1000"]}),
    );
    let pid = created["structuredContent"]["pid"].as_u64().unwrap() as u32;
    assert!(crate::util::alive(pid));
    s.close_stdin();
    assert!(s.wait_exit().success());
    assert!(
        !crate::util::alive(pid),
        "the session's process ended with the server"
    );
}

#[test]
fn ended_sessions_keep_no_file_descriptors_open_in_the_server() {
    let mut s = StdioServer::start();
    s.initialize();
    let fds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let pid = s.child.id();
    // Warm up (first session, runtime structures), then measure over many create/end cycles.
    let id = s.tool(1, "session_create", json!({}))["structuredContent"]["session_id"].clone();
    s.tool(2, "session_end", json!({"session_id": id}));
    let before = fds(pid);
    for i in 0..30 {
        let id =
            s.tool(10 + i, "session_create", json!({}))["structuredContent"]["session_id"].clone();
        let end = s.tool(100 + i, "session_end", json!({"session_id": id}));
        assert_eq!(end["structuredContent"]["ended"], true);
    }
    // The store's writer may still hold a file of the last sessions it writes: wait for the
    // count to come back (a leak never does).
    let start = std::time::Instant::now();
    let mut after = fds(pid);
    while after > before + 2 && start.elapsed() < crate::wire::WAIT {
        std::thread::sleep(std::time::Duration::from_millis(20));
        after = fds(pid);
    }
    assert!(
        after <= before + 2,
        "descriptors grew from {before} to {after} over 30 ended sessions"
    );
}
