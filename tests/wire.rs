//! Helpers for wire-level tests: the real `stablehand` binary over stdio and HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// Upper bound for waiting on the server.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server speaking over its stdin/stdout.
pub struct StdioServer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl StdioServer {
    pub fn start() -> Self {
        Self::start_with(&["--in-memory"])
    }

    /// Starts `stablehand serve ARGS` (give `--in-memory` or `--data-dir`: tests run in
    /// parallel and one data dir serves one server).
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stablehand"))
            .arg("serve")
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("STABLEHAND_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("STABLEHAND_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// The next line from the server, parsed.
    pub fn recv(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("server answered in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads until the response with `id`, returning it and the notifications before it.
    pub fn response(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut notes = Vec::new();
        loop {
            let msg = self.recv();
            if msg.get("id") == Some(&json!(id)) {
                return (msg, notes);
            }
            notes.push(msg);
        }
    }

    pub fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(id).0
    }

    pub fn initialize(&mut self) {
        let r = self.call(0, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}));
        assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    pub fn tool(&mut self, id: u64, name: &str, args: Value) -> Value {
        let r = self.call(id, "tools/call", json!({"name": name, "arguments": args}));
        r["result"].clone()
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit, returning its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < WAIT, "server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on Streamable HTTP, on an ephemeral loopback port.
pub struct HttpServer {
    pub child: Child,
    pub addr: String,
}

impl HttpServer {
    pub fn start() -> Self {
        Self::start_with_config(None)
    }

    pub fn start_with_config(config: Option<&str>) -> Self {
        Self::start_with_args(config, &["--in-memory"])
    }

    pub fn start_with_args(config: Option<&str>, args: &[&str]) -> Self {
        Self::start_with_nofile(config, args, None)
    }

    /// Like [`HttpServer::start_with_args`]; with `nofile`, the server's RLIMIT_NOFILE (soft
    /// and hard: the server raises its soft limit to the hard one) is set to it.
    pub fn start_with_nofile(config: Option<&str>, args: &[&str], nofile: Option<u64>) -> Self {
        Self::start_cmd(config, args, nofile, false)
    }

    /// A server started as `nohup stablehand serve &` from a script starts: with SIGHUP,
    /// SIGINT and SIGQUIT ignored.
    pub fn start_ignoring_interrupts() -> Self {
        Self::start_cmd(None, &["--in-memory"], None, true)
    }

    fn start_cmd(config: Option<&str>, args: &[&str], nofile: Option<u64>, ignore: bool) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stablehand"));
        if ignore {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: signal(2) is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                        libc::signal(sig, libc::SIG_IGN);
                    }
                    Ok(())
                });
            }
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.args(["serve", "--http", "127.0.0.1:0"]).args(args);
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = config {
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(at) = line.find("http://") {
                        let addr = line[at + 7..].split('/').next().unwrap().to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("server reported its address");
        Self { child, addr }
    }

    /// One HTTP/1.1 request on a fresh connection; returns status, headers (lower-case) and body.
    pub fn request(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        self.request_declaring(method, headers, body, body.len())
    }

    /// Like [`HttpServer::request`], but `Content-Length` says `declared` bytes.
    pub fn request_declaring(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        declared: usize,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = format!(
            "{method} /mcp HTTP/1.1\r\nConnection: close\r\nContent-Length: {declared}\r\n"
        );
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        parse_response(&raw)
    }

    /// POST of a JSON message with the usual MCP headers plus `extra`.
    pub fn post(
        &self,
        msg: &Value,
        extra: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        headers.extend_from_slice(extra);
        self.request("POST", &headers, msg.to_string().as_bytes())
    }

    /// A modern request: `_meta` envelope and matching headers.
    pub fn modern(&self, id: u64, method: &str, mut params: Value) -> (u16, Value) {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let routed = session_param(method, &params);
        let mut extra = vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(n) = &name {
            extra.push(("Mcp-Name", n));
        }
        if let Some(s) = &routed {
            extra.push(("Mcp-Param-Session-Id", s));
        }
        let (status, _, body) = self.post(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &extra,
        );
        (status, last_message(&body))
    }

    /// A shell session created over the modern era; returns its id.
    pub fn modern_shell(&self) -> String {
        let (_, created) = self.modern(
            1,
            "tools/call",
            json!({"name": "session_create", "arguments": {}}),
        );
        created["result"]["structuredContent"]["session_id"]
            .as_str()
            .expect("a session id")
            .to_owned()
    }

    /// Legacy initialize; returns the session id.
    pub fn initialize(&self) -> String {
        let (status, headers, body) = self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
            &[],
        );
        assert_eq!(status, 200, "{body}");
        header(&headers, "mcp-session-id").expect("a session id is issued at initialize")
    }

    /// A shell session created over protocol session `sid`; returns its id.
    pub fn legacy_shell(&self, sid: &str) -> String {
        let call = json!({"name": "session_create", "arguments": {}});
        let (_, created) = self.legacy(sid, 1, "tools/call", call);
        created["result"]["structuredContent"]["session_id"]
            .as_str()
            .expect("a session id")
            .to_owned()
    }

    pub fn legacy(&self, sid: &str, id: u64, method: &str, params: Value) -> (u16, Value) {
        let (status, _, body) = self.post(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &[
                ("Mcp-Session-Id", sid),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
        );
        (status, last_message(&body))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = std::time::Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn parse_response(raw: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if header(&headers, "transfer-encoding").as_deref() == Some("chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The JSON body, or the last `data:` event of an SSE body.
pub fn last_message(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str(body) {
        return v;
    }
    sse_messages(body).pop().unwrap_or(Value::Null)
}

/// Every `data:` payload of an SSE body.
pub fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// The `session_id` argument of a `tools/call`, which 2026-07-28 clients mirror into
/// `Mcp-Param-Session-Id` (the tools declare it `x-mcp-header`).
pub fn session_param(method: &str, params: &Value) -> Option<String> {
    (method == "tools/call")
        .then(|| params.pointer("/arguments/session_id"))
        .flatten()
        .and_then(Value::as_str)
        .map(str::to_owned)
}
