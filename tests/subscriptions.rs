//! Live updates through the real binary: `resources/subscribe` over stdio and over HTTP (the
//! standalone GET stream, resumed with `Last-Event-ID`), and the 2026-07-28
//! `subscriptions/listen` over both transports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::wire::{HttpServer, StdioServer, WAIT};

/// A command that prints for about a second, a line every 50 ms.
const PRINTS: &str = "for i in $(seq 1 20); do echo line-$i; sleep 0.05; done";

fn stdio_legacy() -> StdioServer {
    let mut s = StdioServer::start();
    let init = s.call(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    assert_eq!(
        init["result"]["capabilities"]["resources"]["subscribe"],
        true
    );
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    s
}

fn updates_of<'a>(notes: &'a [Value], uri: &str) -> Vec<&'a Value> {
    notes
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated" && n["params"]["uri"] == uri)
        .collect()
}

#[test]
fn a_subscriber_gets_coalesced_updates_while_a_command_prints_and_none_after_unsubscribing() {
    let mut s = stdio_legacy();
    let sid = s.tool(1, "session_create", json!({}))["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("stablehand://sessions/{sid}/transcript");
    let r = s.call(2, "resources/subscribe", json!({"uri": uri}));
    assert_eq!(r["result"], json!({}), "{r}");
    let started = Instant::now();
    s.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": sid, "input": PRINTS}}}));
    let (done, mut notes) = s.response(3);
    assert_eq!(done["result"]["isError"], false, "{done}");
    // The last change is reported after the pause that follows the one before it.
    while updates_of(&notes, &uri).is_empty() {
        notes.push(s.recv());
    }
    let elapsed = started.elapsed();
    let n = updates_of(&notes, &uri).len();
    assert!(n >= 2, "updates while it printed: {n}");
    // 20 lines arrive one by one; coalescing allows one update per 100 ms.
    let most = elapsed.as_millis() as usize / 100 + 2;
    assert!(
        n <= most,
        "{n} updates in {elapsed:?}: not coalesced (at most {most})"
    );

    let r = s.call(4, "resources/unsubscribe", json!({"uri": uri}));
    assert_eq!(r["result"], json!({}), "{r}");
    let (r, after) = {
        s.send(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "session_exec", "arguments": {"session_id": sid, "input": "echo more"}}}));
        s.response(5)
    };
    assert_eq!(r["result"]["structuredContent"]["stdout"], "more\n");
    // Nothing can arrive after unsubscribing: the watcher ended before the answer. An
    // update would come within one coalescing pause of the change; look well past it.
    std::thread::sleep(Duration::from_millis(300));
    let (_, later) = {
        s.send(&json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}));
        s.response(6)
    };
    assert!(
        updates_of(&after, &uri).is_empty() && updates_of(&later, &uri).is_empty(),
        "{after:?} {later:?}"
    );

    for (n, (params, says)) in [
        (
            json!({"uri": "stablehand://metrics"}),
            "only stablehand://sessions/",
        ),
        (
            json!({"uri": "stablehand://sessions/00000000-0000-4000-8000-000000000000/state"}),
            "no such session",
        ),
        (
            json!({"uri": format!("stablehand://sessions/{sid}/other")}),
            "not a session's transcript or state",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.call(10 + n as u64, "resources/subscribe", params);
        assert_eq!(r["error"]["code"], -32002, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
    }
}

/// An HTTP response read as it arrives: an event stream.
struct Events {
    reader: BufReader<TcpStream>,
    buf: String,
    pub status: u16,
}

impl Events {
    fn open(addr: &str, method: &str, headers: &[(&str, &str)], body: &str) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = format!(
            "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Events {
            reader,
            buf: String::new(),
            status,
        }
    }

    /// Reads one more chunk of the chunked body.
    fn fill(&mut self) {
        let mut size = String::new();
        self.reader
            .read_line(&mut size)
            .expect("the stream went on in time");
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        assert!(n > 0, "the stream ended");
        let mut chunk = vec![0; n + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }

    /// The next event that carries a message: its id (if any) and the message.
    fn next(&mut self) -> (Option<u64>, Value) {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let id = event
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .map(|v| v.parse().unwrap());
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return (id, serde_json::from_str(&data.join("\n")).unwrap());
                }
            }
            self.fill();
        }
    }

    /// Reads until the stream ends (its last chunk).
    fn until_end(&mut self) {
        loop {
            let mut size = String::new();
            self.reader
                .read_line(&mut size)
                .expect("the stream ended in time");
            let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            if n == 0 {
                return;
            }
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).unwrap();
        }
    }

    /// Reads events until one satisfies `want`.
    fn until(&mut self, want: impl Fn(&Value) -> bool) -> (Option<u64>, Value) {
        loop {
            let (id, msg) = self.next();
            if want(&msg) {
                return (id, msg);
            }
        }
    }
}

#[test]
fn the_get_stream_carries_updates_and_task_status_and_resumes_after_last_event_id() {
    let s = HttpServer::start();
    let sid = s.initialize();
    let session = s.legacy_shell(&sid);
    let get = |last: Option<&str>| {
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", sid.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        if let Some(l) = last {
            headers.push(("Last-Event-ID", l));
        }
        Events::open(&s.addr, "GET", &headers, "")
    };
    let mut stream = get(None);
    assert_eq!(stream.status, 200);
    let uri = format!("stablehand://sessions/{session}/transcript");
    let (_, r) = s.legacy(&sid, 3, "resources/subscribe", json!({"uri": uri}));
    assert_eq!(r["result"], json!({}), "{r}");
    let (_, r) = s.legacy(
        &sid,
        4,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": session, "input": "echo one"}}),
    );
    assert_eq!(r["result"]["structuredContent"]["stdout"], "one\n");
    let is_update = |m: &Value| {
        m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri.as_str()
    };
    let (first, _) = stream.until(is_update);
    let first = first.expect("events carry ids");
    // A task's status goes to this stream too.
    let (_, r) = s.legacy(&sid, 5, "tools/call", json!({"name": "session_exec", "arguments": {"session_id": session, "input": "echo two"}, "task": {}}));
    let task = r["result"]["task"]["taskId"].as_str().unwrap().to_owned();
    let (_, note) = stream.until(|m| m["method"] == "notifications/tasks/status");
    assert_eq!(note["params"]["taskId"], task.as_str());
    assert_eq!(note["params"]["status"], "completed");
    drop(stream);

    // While no stream is open, events wait; a stream that resumes gets those after its id.
    let (_, r) = s.legacy(&sid, 6, "tools/call", json!({"name": "session_exec", "arguments": {"session_id": session, "input": "echo three"}}));
    assert_eq!(r["result"]["structuredContent"]["stdout"], "three\n");
    let mut resumed = get(Some(&first.to_string()));
    let (id, _) = resumed.next();
    assert_eq!(
        id,
        Some(first + 1),
        "replay starts right after Last-Event-ID"
    );
    let (later, _) = resumed.until(is_update);
    assert!(later.unwrap() > first);

    // Ending the protocol session ends its stream.
    let (status, _, _) = s.request("DELETE", &[("Mcp-Session-Id", &sid)], b"");
    assert_eq!(status, 204);
    resumed.until_end();

    let (status, _, body) = s.request("GET", &[("Accept", "text/event-stream")], b"");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = s.request(
        "GET",
        &[("Accept", "application/json"), ("Mcp-Session-Id", &sid)],
        b"",
    );
    assert_eq!(status, 406);
    let (status, _, _) = s.request(
        "GET",
        &[("Accept", "text/event-stream"), ("Mcp-Session-Id", "nope")],
        b"",
    );
    assert_eq!(status, 404);
}

const TASKS_EXT: &str = "io.modelcontextprotocol/tasks";

fn modern_meta(tasks: bool) -> Value {
    let caps = if tasks {
        json!({"extensions": {TASKS_EXT: {}}})
    } else {
        json!({})
    };
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps})
}

#[test]
fn subscriptions_listen_acknowledges_first_then_sends_tagged_updates_over_http_and_stdio() {
    let s = HttpServer::start();
    let session = s.modern_shell();
    let uri = format!("stablehand://sessions/{session}/transcript");
    let listen = json!({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen", "params": {"notifications": {"resourceSubscriptions": [uri], "toolsListChanged": true}, "_meta": modern_meta(false)}}).to_string();
    let mut stream = Events::open(
        &s.addr,
        "POST",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        &listen,
    );
    assert_eq!(stream.status, 200);
    let (_, ack) = stream.next();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": [uri]}),
        "list changes are not offered"
    );
    let (_, r) = s.modern(
        2,
        "tools/call",
        json!({"name": "session_exec", "arguments": {"session_id": session, "input": "echo hi"}}),
    );
    assert_eq!(r["result"]["structuredContent"]["stdout"], "hi\n");
    let (_, update) = stream.until(|m| m["method"] == "notifications/resources/updated");
    assert_eq!(update["params"]["uri"], uri.as_str());
    assert_eq!(
        update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );

    // Over stdio, with a task followed too; the client ends the listen by cancelling it.
    let mut io = StdioServer::start();
    let call = |io: &mut StdioServer, id: u64, method: &str, mut params: Value, tasks: bool| {
        params["_meta"] = modern_meta(tasks);
        io.call(id, method, params)
    };
    let created = call(
        &mut io,
        1,
        "tools/call",
        json!({"name": "session_create", "arguments": {}}),
        false,
    );
    let sid = created["result"]["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = call(
        &mut io,
        2,
        "subscriptions/listen",
        json!({"notifications": {"taskIds": ["0123456789abcdef0123456789abcdef"]}}),
        false,
    );
    assert_eq!(refused["error"]["code"], -32021, "{refused}");
    let refused = call(
        &mut io,
        3,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": ["stablehand://nothing"]}}),
        false,
    );
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let refused = call(
        &mut io,
        4,
        "resources/subscribe",
        json!({"uri": "stablehand://metrics"}),
        false,
    );
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
    let state_uri = format!("stablehand://sessions/{sid}/state");
    io.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": {"notifications": {"resourceSubscriptions": [state_uri]}, "_meta": modern_meta(true)}}));
    let ack = io.recv();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    let exec = json!({"name": "session_exec", "arguments": {"session_id": sid, "input": "echo x"}, "_meta": modern_meta(false)});
    io.send(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": exec}));
    // The update may come before the exec's answer or after it.
    let (r, mut notes) = io.response(10);
    assert_eq!(r["result"]["structuredContent"]["stdout"], "x\n");
    let update = loop {
        let found = notes
            .iter()
            .position(|m| m["method"] == "notifications/resources/updated");
        if let Some(i) = found {
            break notes.swap_remove(i);
        }
        notes.push(io.recv());
    };
    assert_eq!(update["params"]["uri"], state_uri.as_str());
    assert_eq!(
        update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    io.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}),
    );
    let pong = io.call(11, "ping", json!({"_meta": modern_meta(false)}));
    assert!(pong.get("result").is_some(), "{pong}");
}
