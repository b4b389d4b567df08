//! The HTTP front door against the real binary over real TCP: header and keep-alive timeouts,
//! a flood of held connections, busy connections and 503, slow bodies, and the open-file limit.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::wire::{header, last_message, HttpServer};

/// Upper bound for waiting on the server in these tests.
const BOUND: Duration = Duration::from_secs(10);

fn connect(s: &HttpServer) -> TcpStream {
    let c = TcpStream::connect(&s.addr).expect("connect");
    c.set_read_timeout(Some(BOUND)).unwrap();
    c
}

/// Reads until the server closes the connection (EOF or reset); returns what was read and when
/// the close was seen. Fails the test if the connection is still open after `BOUND`.
fn until_closed(c: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, Instant::now()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server kept the connection open for {BOUND:?}")
            }
            Err(_) => return (got, Instant::now()), // reset
        }
    }
}

/// A modern `ping` request with keep-alive, as raw bytes.
fn ping_bytes(addr: &str, id: u64) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "ping", "params": {"_meta": meta()}})
        .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: ping\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}})
}

/// Reads one response with a `Content-Length` body from a keep-alive connection.
fn read_response(c: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before a response");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body[..len].to_owned());
            }
        }
    }
}

/// A POST head announcing a 100-byte body that never comes; once the server answers
/// `100 Continue`, the request is in flight (the service is reading its body).
fn busy_connection(s: &HttpServer) -> Option<TcpStream> {
    let mut c = connect(s);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
        s.addr
    );
    c.write_all(head.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(n) if buf[..n].starts_with(b"HTTP/1.1 100") => Some(c),
        _ => None,
    }
}

/// A `session_create` or other tool call over a fresh connection; `None` when the connection
/// was refused, reset or answered with a non-200 status.
fn try_tool(s: &HttpServer, name: &str, args: Value) -> Option<Value> {
    // The tools declare session_id `x-mcp-header`: it travels in a header too.
    let routed = args["session_id"]
        .as_str()
        .map(|id| format!("Mcp-Param-Session-Id: {id}\r\n"))
        .unwrap_or_default();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": meta()}}).to_string();
    let mut c = TcpStream::connect(&s.addr).ok()?;
    c.set_read_timeout(Some(BOUND)).unwrap();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {name}\r\n{routed}Content-Length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| last_message(body)["result"].clone())
}

/// Calls a tool until it is answered (the server may need a moment to free room), failing the
/// test after `BOUND`.
fn tool_eventually(s: &HttpServer, name: &str, args: Value) -> Value {
    let start = Instant::now();
    loop {
        if let Some(r) = try_tool(s, name, args.clone()) {
            return r;
        }
        assert!(start.elapsed() < BOUND, "{name} was never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User plus system CPU time of process `pid`, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn a_connection_that_sends_part_of_a_request_line_is_closed_after_the_header_timeout() {
    let s = HttpServer::start_with_config(Some("[http]\nheader_timeout_ms = 300\n"));
    let mut c = connect(&s);
    let start = Instant::now();
    c.write_all(b"POST /mc").unwrap();
    let (got, closed) = until_closed(&mut c);
    assert!(
        got.is_empty(),
        "no response: {:?}",
        String::from_utf8_lossy(&got)
    );
    let waited = closed - start;
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
}

#[test]
fn a_request_head_trickled_a_byte_at_a_time_is_closed_after_the_header_timeout() {
    let s = HttpServer::start_with_config(Some("[http]\nheader_timeout_ms = 400\n"));
    let mut c = connect(&s);
    let start = Instant::now();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nX-Padding: {}",
        s.addr,
        "a".repeat(200)
    );
    let mut writer = c.try_clone().unwrap();
    // Each byte arrives well within the timeout; together they never finish the head.
    let trickle = std::thread::spawn(move || {
        for b in head.bytes() {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (got, closed) = until_closed(&mut c);
    trickle.join().unwrap();
    assert!(
        got.is_empty(),
        "no response: {:?}",
        String::from_utf8_lossy(&got)
    );
    let waited = closed - start;
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "closed after {waited:?}; the head needed 4 s"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout_not_the_header_timeout() {
    let s = HttpServer::start_with_config(Some(
        "[http]\nheader_timeout_ms = 300\nkeepalive_timeout_ms = 1500\n",
    ));
    let mut c = connect(&s);
    for id in 1..=2 {
        c.write_all(&ping_bytes(&s.addr, id)).unwrap();
        let (status, body) = read_response(&mut c);
        assert_eq!(status, 200, "{body}");
        assert_eq!(last_message(&body)["id"], id);
    }
    let idle_from = Instant::now();
    let (got, closed) = until_closed(&mut c);
    assert!(
        got.is_empty(),
        "no response: {:?}",
        String::from_utf8_lossy(&got)
    );
    let idle = closed - idle_from;
    assert!(
        idle >= Duration::from_millis(1200),
        "closed after {idle:?}: the keep-alive timeout is 1.5 s (the header timeout, 0.3 s, must not apply)"
    );
}

#[test]
fn a_flood_of_held_connections_does_not_lock_out_a_new_client() {
    let s = HttpServer::start_with_config(Some(
        "[http]\nmax_connections = 64\nheader_timeout_ms = 60000\n",
    ));
    // 200 connections that send part of a request line and then nothing.
    let mut held: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"POST /mcp HTT").unwrap();
            c
        })
        .collect();
    let start = Instant::now();
    let pong = tool_eventually(&s, "session_list", json!({}));
    assert_eq!(pong["isError"], false, "{pong}");
    let mut c = connect(&s);
    c.write_all(&ping_bytes(&s.addr, 7)).unwrap();
    let (status, body) = read_response(&mut c);
    let pong = last_message(&body);
    assert_eq!((status, pong["id"].clone()), (200, json!(7)), "{body}");
    assert!(pong["result"].is_object(), "{body}");
    let created = tool_eventually(&s, "session_create", json!({}));
    assert_eq!(created["isError"], false, "{created}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a new client waited {took:?}"
    );
    // Room was made by closing the longest-idle connections: the oldest of the flood.
    for (i, c) in held.iter_mut().take(120).enumerate() {
        let (got, _) = until_closed(c);
        assert!(got.is_empty(), "connection {i} got a response");
    }
}

#[test]
fn when_every_connection_is_busy_a_new_one_gets_503_with_retry_after() {
    let s = HttpServer::start_with_config(Some(
        "[http]\nmax_connections = 4\nbody_timeout_ms = 60000\n",
    ));
    let mut busy: Vec<TcpStream> = (0..4)
        .map(|i| busy_connection(&s).unwrap_or_else(|| panic!("busy connection {i}")))
        .collect();
    let (status, headers, body) = s.request("GET", &[], b"");
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "retry-after").as_deref(), Some("1"));
    assert!(body.contains("every one is busy"), "{body}");
    // The busy connections were not touched.
    for c in &mut busy {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(c.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "a busy connection was answered or closed"
        );
    }
    drop(busy.pop());
    let r = tool_eventually(&s, "session_list", json!({}));
    assert_eq!(r["isError"], false, "{r}");
}

#[test]
fn a_request_body_slower_than_the_floor_rate_is_cut_off_with_408() {
    let s = HttpServer::start_with_config(Some(
        "[http]\nbody_timeout_ms = 300\nbody_min_rate = 1000\n",
    ));
    // Above the floor: 2,000 bytes over about 0.5 s (the first 300 ms are free, then
    // 1,000 bytes a second are earned) is read to the end.
    let padded = format!(
        "{}{}",
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": meta()}}),
        " ".repeat(2000)
    );
    let mut c = connect(&s);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: ping\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        padded.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    for chunk in padded.as_bytes().chunks(200) {
        c.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = read_response(&mut c);
    assert_eq!(status, 200, "a body above the floor is read: {body}");
    // Below the floor: 100 bytes of a 10,000-byte body and then nothing.
    let mut c = connect(&s);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{}",
        s.addr,
        "x".repeat(100)
    );
    c.write_all(head.as_bytes()).unwrap();
    let (got, _) = until_closed(&mut c);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request body too slow: 100 bytes"), "{text}");
}

#[test]
fn at_the_open_file_limit_the_accept_loop_neither_spins_nor_stalls_and_serves_again() {
    let config = "[runtime]\nfd_reserve = 0\n[http]\nfd_reserve = 0\nmax_connections = 10000\nbody_timeout_ms = 60000\n";
    let s = HttpServer::start_with_nofile(Some(config), &["--in-memory"], Some(128));
    let pid = s.child.id();
    // Busy connections until the server has no descriptor left for another.
    let mut held = Vec::new();
    while let Some(c) = busy_connection(&s) {
        held.push(c);
        assert!(
            held.len() < 128,
            "the server held more connections than its limit allows"
        );
    }
    assert!(held.len() > 50, "only {} connections were held", held.len());
    // A second of connection attempts at the limit: each is closed (or answered 503) at once
    // instead of waiting in the listen queue, and the accept loop does not spin.
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    let (mut attempts, mut refused) = (0, 0);
    let ping = String::from_utf8(ping_bytes(&s.addr, 1)).unwrap().replacen(
        "\r\n",
        "\r\nConnection: close\r\n",
        1,
    );
    while start.elapsed() < Duration::from_secs(1) {
        // Four at once: a descriptor freed for a moment (by another thread, say) may serve
        // one, not all of them.
        let mut burst: Vec<TcpStream> = (0..4).map(|_| connect(&s)).collect();
        let asked = Instant::now();
        for c in &mut burst {
            let _ = c.write_all(ping.as_bytes());
        }
        for c in &mut burst {
            let (got, closed) = until_closed(c);
            let text = String::from_utf8_lossy(&got);
            assert!(
                got.is_empty()
                    || text.starts_with("HTTP/1.1 503")
                    || text.starts_with("HTTP/1.1 200"),
                "{text}"
            );
            if !text.starts_with("HTTP/1.1 200") {
                refused += 1;
            }
            assert!(
                closed - asked < Duration::from_secs(2),
                "a client waited {:?} to be told",
                closed - asked
            );
            attempts += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        refused > 0,
        "none of {attempts} attempts was refused: the server was not at its limit"
    );
    let cpu = cpu_time(pid) - cpu_before;
    let wall = start.elapsed();
    assert!(
        cpu < wall / 2,
        "the server used {cpu:?} of CPU in {wall:?} at the limit ({attempts} attempts)"
    );
    // Connections close: the server serves again.
    drop(held);
    let r = tool_eventually(&s, "session_list", json!({}));
    assert_eq!(r["isError"], false, "{r}");
}

#[test]
fn session_create_near_the_open_file_limit_is_refused_naming_the_limit_and_sessions_keep_working() {
    let config = "[runtime]\nfd_reserve = 8\n[http]\nfd_reserve = 4\n";
    let s = HttpServer::start_with_nofile(Some(config), &["--in-memory"], Some(96));
    let mut ids = Vec::new();
    let refusal = loop {
        let r = tool_eventually(&s, "session_create", json!({}));
        if r["isError"] == true {
            break r["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        ids.push(
            r["structuredContent"]["session_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        assert!(ids.len() < 30, "96 descriptors cannot hold 30 sessions");
    };
    assert!(
        ids.len() >= 3,
        "only {} sessions before the refusal: {refusal}",
        ids.len()
    );
    assert!(
        refusal.contains("open-file limit nearly reached")
            && refusal.contains("of 96 descriptors in use")
            && refusal.contains("a session needs 4"),
        "{refusal}"
    );
    // Nothing half-created: exactly the sessions that were confirmed exist, and each works.
    let list = tool_eventually(&s, "session_list", json!({}));
    let listed = list["structuredContent"]["sessions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, ids.len(), "{list}");
    for id in &ids {
        let r = tool_eventually(
            &s,
            "session_exec",
            json!({"session_id": id, "input": "echo still-here"}),
        );
        assert_eq!(r["structuredContent"]["stdout"], "still-here\n", "{r}");
    }
    // Ending one gives its descriptors back (its pipes close just after the end is
    // confirmed): a new session starts again.
    let r = tool_eventually(&s, "session_end", json!({"session_id": ids[0]}));
    assert_eq!(r["isError"], false, "{r}");
    let start = Instant::now();
    loop {
        let r = tool_eventually(&s, "session_create", json!({}));
        if r["isError"] == false {
            break;
        }
        assert!(start.elapsed() < BOUND, "no session after one ended: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
