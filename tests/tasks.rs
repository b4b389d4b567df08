//! Tool calls as tasks, through the real binary: the 2025-11-25 experimental tasks over a
//! handshake, the 2026-07-28 tasks extension, durability across a SIGKILL, and bad input.
//! Work that must still be running when the test looks waits at a `Gate` the test opens when
//! it wants the work to end, so no outcome depends on timing.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::*;
use crate::wire::{HttpServer, StdioServer};

/// A stdio server that negotiated `version`.
fn stdio_at(version: &str, args: &[&str]) -> (StdioServer, Value) {
    let mut s = StdioServer::start_with(args);
    let init = s.call(
        0,
        "initialize",
        json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    (s, init["result"].clone())
}

fn shell_id(s: &mut StdioServer, id: u64) -> String {
    let created = s.tool(id, "session_create", json!({}));
    created["structuredContent"]["session_id"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

/// A `tools/call` of `session_exec` with `input`, as a 2025-11-25 task kept `ttl` ms.
fn exec_task(s: &mut StdioServer, id: u64, sid: &str, input: &str) -> Value {
    let r = s.call(
        id,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": sid, "input": input}, "task": {"ttl": 60000}}),
    );
    assert!(r.get("error").is_none(), "{r}");
    r["result"]["task"].clone()
}

fn error_of(r: &Value) -> (i64, String) {
    let e = &r["error"];
    (
        e["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {r}")),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_2025_11_25_task_answers_at_once_and_tasks_result_returns_what_the_call_would_have() {
    let gate = Gate::new();
    let (mut s, init) = stdio_at("2025-11-25", &["--in-memory"]);
    assert_eq!(
        init["capabilities"]["tasks"],
        json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}})
    );
    let tools = s.call(1, "tools/list", json!({}));
    let support = |name: &str| {
        let tools = tools["result"]["tools"].as_array().unwrap();
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        tool["execution"]["taskSupport"].clone()
    };
    assert_eq!(support("session_exec"), "optional");
    assert_eq!(support("session_state"), "forbidden");

    let sid = shell_id(&mut s, 2);
    let task = exec_task(&mut s, 3, &sid, &format!("{}; echo got-go", gate.wait()));
    let id = task["taskId"].as_str().unwrap().to_owned();
    // The node that holds it, a dot, 128 random bits.
    let hex = file_of(&id);
    assert!(
        id.len() > 33 && hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(task["status"], "working");
    assert_eq!(task["ttl"], 60000);
    assert!(task["pollInterval"].as_u64().unwrap() > 0);
    assert!(task["createdAt"].as_str().unwrap().ends_with('Z'), "{task}");
    let got = s.call(4, "tasks/get", json!({"taskId": id, "task": {}}));
    assert_eq!(got["result"]["status"], "working", "{got}");
    assert_eq!(got["result"]["taskId"], id.as_str());

    // tasks/result waits for the work, which the gate holds.
    s.send(&json!({"jsonrpc": "2.0", "id": 5, "method": "tasks/result", "params": {"taskId": id}}));
    gate.open_blocking();
    let (result, mut notes) = s.response(5);
    let result = &result["result"];
    assert_eq!(
        result["structuredContent"]["stdout"], "got-go\n",
        "{result}"
    );
    assert_eq!(result["isError"], false);
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        id.as_str()
    );
    // The status notification is sent when the task ends, before or after that answer.
    while !notes
        .iter()
        .any(|n| n["method"] == "notifications/tasks/status")
    {
        notes.push(s.recv());
    }
    let note = notes
        .iter()
        .find(|n| n["method"] == "notifications/tasks/status")
        .unwrap();
    assert_eq!(note["params"]["taskId"], id.as_str());
    assert_eq!(note["params"]["status"], "completed");

    let listed = s.call(6, "tasks/list", json!({}));
    let listed = listed["result"]["tasks"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["taskId"], id.as_str());
    assert_eq!(listed[0]["status"], "completed");
}

#[test]
fn cancelling_a_2025_11_25_task_interrupts_its_command_and_the_session_answers_next() {
    let (mut s, _) = stdio_at("2025-11-25", &["--in-memory"]);
    let sid = shell_id(&mut s, 1);
    let task = exec_task(&mut s, 2, &sid, "sleep 100");
    let id = task["taskId"].as_str().unwrap().to_owned();
    let cancelled = s.call(3, "tasks/cancel", json!({"taskId": id}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    let r = s.tool(
        4,
        "session_exec",
        json!({"session_id": sid, "input": "echo ok"}),
    );
    assert_eq!(r["structuredContent"]["stdout"], "ok\n", "{r}");
    let again = s.call(5, "tasks/cancel", json!({"taskId": id}));
    let (code, message) = error_of(&again);
    assert_eq!(code, -32602);
    assert!(
        message.contains("already in terminal status 'cancelled'"),
        "{message}"
    );
    let result = s.call(6, "tasks/result", json!({"taskId": id}));
    let (_, message) = error_of(&result);
    assert!(message.contains("was cancelled"), "{message}");
}

#[test]
fn cancelling_a_queued_task_leaves_the_running_one_alone() {
    let gate = Gate::new();
    let (mut s, _) = stdio_at("2025-11-25", &["--in-memory"]);
    let sid = shell_id(&mut s, 1);
    let input = format!("{}; echo first-done", gate.wait());
    let first = exec_task(&mut s, 2, &sid, &input)["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let queued = exec_task(&mut s, 3, &sid, "echo second")["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = s.call(4, "tasks/cancel", json!({"taskId": queued}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    let got = s.call(5, "tasks/get", json!({"taskId": first}));
    assert_eq!(got["result"]["status"], "working", "{got}");
    gate.open_blocking();
    let r = s.call(6, "tasks/result", json!({"taskId": first}));
    assert_eq!(
        r["result"]["structuredContent"]["stdout"], "first-done\n",
        "not interrupted: {r}"
    );
    let r = s.tool(
        7,
        "session_exec",
        json!({"session_id": sid, "input": "echo next"}),
    );
    assert_eq!(
        r["structuredContent"]["stdout"], "next\n",
        "the cancelled one never ran: {r}"
    );
}

#[test]
fn a_tool_error_fails_a_2025_11_25_task_and_bad_task_requests_are_refused_by_code() {
    let (mut s, _) = stdio_at("2025-11-25", &["--in-memory"]);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let task = exec_task(&mut s, 1, unknown, "true");
    let id = task["taskId"].as_str().unwrap().to_owned();
    let result = s.call(2, "tasks/result", json!({"taskId": id}));
    assert_eq!(result["result"]["isError"], true, "{result}");
    let got = s.call(3, "tasks/get", json!({"taskId": id}));
    assert_eq!(
        got["result"]["status"], "failed",
        "a tool error fails the task: {got}"
    );

    let sid = shell_id(&mut s, 4);
    for (n, (params, code, says)) in [
        (
            json!({"name": "session_state", "arguments": {"session_id": sid}, "task": {}}),
            -32601,
            "cannot run as a task",
        ),
        (
            json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "true"}, "task": {"ttl": 0}}),
            -32602,
            "invalid ttl",
        ),
        (
            json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "true"}, "task": {"ttl": 1u64 << 60}}),
            -32602,
            "tasks.max_ttl_ms",
        ),
        (
            json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "true"}, "task": {"ttl": "soon"}}),
            -32602,
            "invalid task",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.call(10 + n as u64, "tools/call", params);
        let (c, message) = error_of(&r);
        assert_eq!(c, code, "{r}");
        assert!(message.contains(says), "{message}");
    }
    for (n, (method, params, code, says)) in [
        (
            "tasks/get",
            json!({"taskId": "0123456789abcdef0123456789abcdef"}),
            -32602,
            "task not found",
        ),
        (
            "tasks/get",
            json!({"taskId": "../../etc/passwd"}),
            -32602,
            "task not found",
        ),
        ("tasks/result", json!({}), -32602, "taskId"),
        ("tasks/list", json!({"cursor": "nope"}), -32602, "cursor"),
        (
            "tasks/update",
            json!({"taskId": id}),
            -32601,
            "tasks/update",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.call(20 + n as u64, method, params);
        let (c, message) = error_of(&r);
        assert_eq!(c, code, "{method}: {r}");
        assert!(message.contains(says), "{method}: {message}");
    }
    let r = s.tool(
        30,
        "session_exec",
        json!({"session_id": sid, "input": "echo still"}),
    );
    assert_eq!(r["structuredContent"]["stdout"], "still\n", "{r}");
}

const TASKS_EXT: &str = "io.modelcontextprotocol/tasks";

/// A 2026-07-28 request over stdio, declaring the tasks extension when `tasks`.
fn modern(s: &mut StdioServer, id: u64, method: &str, mut params: Value, tasks: bool) -> Value {
    let caps = if tasks {
        json!({"extensions": {TASKS_EXT: {}}})
    } else {
        json!({})
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    s.call(id, method, params)
}

/// A stdio server whose `[tasks]` section is `tasks`.
fn stdio_with_tasks(dir: &Path, tasks: &str) -> StdioServer {
    let config = dir.join("config.toml");
    std::fs::write(&config, format!("[tasks]\n{tasks}\n")).unwrap();
    StdioServer::start_with(&["--in-memory", "--config", config.to_str().unwrap()])
}

/// Polls `tasks/get` (as the protocol has clients do) until the task is over.
fn poll_until_over(s: &mut StdioServer, id: &str, first_request: u64) -> Value {
    let start = std::time::Instant::now();
    for n in first_request.. {
        let got = modern(s, n, "tasks/get", json!({"taskId": id}), true);
        let status = got["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status != "working" {
            return got["result"].clone();
        }
        assert!(start.elapsed() < LIMIT, "task {id} never ended: {got}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unreachable!()
}

#[test]
fn a_2026_07_28_client_that_accepts_tasks_gets_one_for_long_work_and_polls_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::new();
    // Every long call becomes a task at once: what is checked does not race the window.
    let mut s = stdio_with_tasks(dir.path(), "task_after_ms = 0");
    let discovered = modern(&mut s, 1, "server/discover", json!({}), false);
    let caps = &discovered["result"]["capabilities"];
    assert_eq!(caps["extensions"][TASKS_EXT], json!({}), "{discovered}");
    assert!(
        caps.get("tasks").is_none(),
        "no 2025-11-25 capability here: {caps}"
    );
    let created = modern(
        &mut s,
        2,
        "tools/call",
        json!({"name": "session_create", "arguments": {}}),
        false,
    );
    let sid = created["result"]["structuredContent"]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();

    let input = format!("{}; echo got-go", gate.wait());
    let call = json!({"name": "session_exec", "arguments": {"session_id": sid, "input": input}});
    let r = modern(&mut s, 3, "tools/call", call, true);
    let task = &r["result"];
    assert_eq!(task["resultType"], "task", "{r}");
    assert_eq!(task["status"], "working");
    assert!(task["ttlMs"].as_u64().unwrap() > 0 && task["pollIntervalMs"].as_u64().is_some());
    assert!(
        task.get("task").is_none() && task.get("ttl").is_none(),
        "flat, renamed: {task}"
    );
    let id = task["taskId"].as_str().unwrap().to_owned();
    let got = modern(&mut s, 4, "tasks/get", json!({"taskId": id}), true);
    assert_eq!(got["result"]["resultType"], "complete");
    assert_eq!(got["result"]["status"], "working");
    assert!(got["result"].get("result").is_none());
    // Its notifications come through subscriptions/listen only: its state now, then its end.
    s.send(&json!({"jsonrpc": "2.0", "id": 50, "method": "subscriptions/listen", "params": {
        "notifications": {"taskIds": [id]},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXT: {}}}}}}));
    let ack = s.recv();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(ack["params"]["notifications"]["taskIds"], json!([id]));
    let now = s.recv();
    assert_eq!(now["method"], "notifications/tasks", "{now}");
    assert_eq!(now["params"]["status"], "working");
    assert_eq!(
        now["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        50
    );
    gate.open_blocking();
    let end = s.recv();
    assert_eq!(end["params"]["status"], "completed", "{end}");
    assert_eq!(
        end["params"]["result"]["structuredContent"]["stdout"],
        "got-go\n"
    );
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 50}}));
    let done = poll_until_over(&mut s, &id, 100);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["structuredContent"]["stdout"], "got-go\n");
    assert!(done["result"].get("_meta").is_none(), "{done}");

    // A tool error completes the task in this revision.
    let call = json!({"name": "session_exec", "arguments": {"session_id": "00000000-0000-4000-8000-000000000000", "input": "true"}});
    let r = modern(&mut s, 5, "tools/call", call, true);
    let failed_call = r["result"]["taskId"].as_str().unwrap().to_owned();
    let done = poll_until_over(&mut s, &failed_call, 200);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["isError"], true);

    // Cancellation is acknowledged, then seen; the session answers next.
    let call =
        json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "sleep 100"}});
    let r = modern(&mut s, 6, "tools/call", call, true);
    let sleeping = r["result"]["taskId"].as_str().unwrap().to_owned();
    for n in [7, 8] {
        let ack = modern(&mut s, n, "tasks/cancel", json!({"taskId": sleeping}), true);
        assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
        assert!(
            ack["result"].get("status").is_none(),
            "only an acknowledgement: {ack}"
        );
    }
    assert_eq!(
        poll_until_over(&mut s, &sleeping, 300)["status"],
        "cancelled"
    );
    let call =
        json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "echo ok"}});
    let r = modern(&mut s, 9, "tools/call", call, false);
    assert_eq!(r["result"]["structuredContent"]["stdout"], "ok\n", "{r}");

    let ack = modern(
        &mut s,
        10,
        "tasks/update",
        json!({"taskId": id, "inputResponses": {}}),
        true,
    );
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    for (n, (method, params, tasks, code)) in [
        ("tasks/result", json!({"taskId": id}), true, -32601),
        ("tasks/list", json!({}), true, -32601),
        (
            "tasks/get",
            json!({"taskId": "0123456789abcdef0123456789abcdef"}),
            true,
            -32602,
        ),
        (
            "tasks/update",
            json!({"taskId": "0123456789abcdef0123456789abcdef"}),
            true,
            -32602,
        ),
        ("tasks/get", json!({"taskId": id}), false, -32021),
        ("tasks/cancel", json!({"taskId": id}), false, -32021),
    ]
    .into_iter()
    .enumerate()
    {
        let r = modern(&mut s, 20 + n as u64, method, params, tasks);
        assert_eq!(error_of(&r).0, code, "{method}: {r}");
        if code == -32021 {
            let data = &r["error"]["data"]["requiredCapabilities"]["extensions"][TASKS_EXT];
            assert_eq!(*data, json!({}), "{r}");
        }
    }
    // Without the extension a call is answered, never a task (the old `task` param is
    // not an opt-in in this revision).
    let call = json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "echo plain"}, "task": {"ttl": 1000}});
    let r = modern(&mut s, 40, "tools/call", call, false);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(r["result"]["structuredContent"]["stdout"], "plain\n");
}

#[test]
fn a_2026_07_28_call_that_ends_within_the_window_is_answered_directly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stdio_with_tasks(dir.path(), "task_after_ms = 30000");
    let created = modern(
        &mut s,
        1,
        "tools/call",
        json!({"name": "session_create", "arguments": {}}),
        true,
    );
    assert_eq!(created["result"]["resultType"], "complete", "{created}");
    let sid = created["result"]["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let call =
        json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "echo quick"}});
    let r = modern(&mut s, 2, "tools/call", call, true);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(r["result"]["structuredContent"]["stdout"], "quick\n");
}

#[test]
fn tasks_outlive_a_sigkill_finished_ones_with_their_results_running_ones_failed() {
    let data = tempfile::tempdir().unwrap();
    let gate = Gate::new();
    let dir = data.path().join("data");
    let dir = dir.to_str().unwrap();
    let (mut s, _) = stdio_at("2025-11-25", &["--data-dir", dir]);
    let sid = shell_id(&mut s, 1);
    let finished = exec_task(&mut s, 2, &sid, "echo kept")["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s.call(3, "tasks/result", json!({"taskId": finished}));
    assert_eq!(r["result"]["structuredContent"]["stdout"], "kept\n", "{r}");
    let input = gate.wait();
    let running = exec_task(&mut s, 4, &sid, &input)["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The finished task's record is written once its result is known; a durable call
    // (create) flushes everything queued before it.
    let other = shell_id(&mut s, 5);
    let _ = exec_task(&mut s, 6, &other, "true");
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let (mut s, _) = stdio_at("2025-11-25", &["--data-dir", dir]);
    let got = s.call(1, "tasks/get", json!({"taskId": finished}));
    assert_eq!(got["result"]["status"], "completed", "{got}");
    let r = s.call(2, "tasks/result", json!({"taskId": finished}));
    assert_eq!(r["result"]["structuredContent"]["stdout"], "kept\n", "{r}");
    let got = s.call(3, "tasks/get", json!({"taskId": running}));
    assert_eq!(got["result"]["status"], "failed", "{got}");
    let says = got["result"]["statusMessage"].as_str().unwrap();
    assert!(says.contains("server stopped"), "{says}");
    let r = s.call(4, "tasks/result", json!({"taskId": running}));
    assert!(error_of(&r).1.contains("server stopped"), "{r}");
}

#[test]
fn a_task_is_its_principals_alone_and_mcp_name_must_be_its_id() {
    let s = HttpServer::start_with_config(Some(
        "[http]\ntokens = [{ name = \"alice\", token = \"a-token\" }, { name = \"bob\", token = \"b-token\" }]\n[tasks]\ntask_after_ms = 0\n",
    ));
    let call = |token: &str, id: u64, method: &str, params: Value, name: Option<&str>| {
        let mut params = params;
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXT: {}}}});
        let auth = format!("Bearer {token}");
        let mut headers = vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
            ("Authorization", auth.as_str()),
        ];
        if let Some(n) = name {
            headers.push(("Mcp-Name", n));
        }
        let routed = crate::wire::session_param(method, &params);
        if let Some(r) = &routed {
            headers.push(("Mcp-Param-Session-Id", r));
        }
        let (status, _, body) = s.post(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &headers,
        );
        (status, crate::wire::last_message(&body))
    };
    let (_, created) = call(
        "a-token",
        1,
        "tools/call",
        json!({"name": "session_create", "arguments": {}}),
        Some("session_create"),
    );
    let task = created["result"]["taskId"]
        .as_str()
        .expect("a task (task_after_ms = 0)")
        .to_owned();
    let (_, got) = call(
        "b-token",
        2,
        "tasks/get",
        json!({"taskId": task}),
        Some(&task),
    );
    let (code, message) = error_of(&got);
    assert_eq!(code, -32602);
    assert!(message.contains("task not found"), "{message}");
    let (_, got) = call(
        "a-token",
        3,
        "tasks/get",
        json!({"taskId": task}),
        Some(&task),
    );
    assert!(got["result"]["status"].is_string(), "{got}");
    let (status, got) = call(
        "a-token",
        4,
        "tasks/get",
        json!({"taskId": task}),
        Some("0123456789abcdef0123456789abcdef"),
    );
    assert_eq!(status, 400);
    assert_eq!(error_of(&got).0, -32020, "{got}");
    let (status, got) = call("a-token", 5, "tasks/get", json!({"taskId": task}), None);
    assert_eq!(status, 400);
    assert!(error_of(&got).1.contains("Mcp-Name"), "{got}");
}

#[test]
fn a_task_is_purged_from_memory_and_disk_once_its_ttl_has_run_out() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let (mut s, _) = stdio_at("2025-11-25", &["--data-dir", dir.to_str().unwrap()]);
    let sid = shell_id(&mut s, 1);
    let r = s.call(
        2,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "echo brief"}, "task": {"ttl": 300}}),
    );
    let id = r["result"]["task"]["taskId"].as_str().unwrap().to_owned();
    assert_eq!(r["result"]["task"]["ttl"], 300);
    let done = s.call(3, "tasks/result", json!({"taskId": id}));
    assert_eq!(
        done["result"]["structuredContent"]["stdout"], "brief\n",
        "{done}"
    );
    assert!(
        dir.join("tasks").join(file_of(&id)).exists(),
        "stored while it lives"
    );
    let start = std::time::Instant::now();
    for n in 4.. {
        let got = s.call(n, "tasks/get", json!({"taskId": id}));
        if got.get("error").is_some() {
            assert_eq!(error_of(&got).0, -32602, "{got}");
            break;
        }
        assert!(start.elapsed() < LIMIT, "the task outlived its ttl: {got}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The file goes with the next write of the store (at most a flush interval later).
    let gone = dir.join("tasks").join(file_of(&id));
    while gone.exists() {
        assert!(start.elapsed() < LIMIT, "the task's file outlived its ttl");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The file name of a task: its id without the node prefix.
fn file_of(id: &str) -> &str {
    id.rsplit_once('.').map_or(id, |(_, hex)| hex)
}
