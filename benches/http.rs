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
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stablehand::config::HttpConfig;
use stablehand::mcp::{http, McpServer};
use stablehand::{Config, Runtime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    )
}

/// Latencies (ns) and count of one measurement.
struct Run {
    lat: Vec<u64>,
    elapsed: Duration,
}

impl Run {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.lat.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i] as f64 / 1000.0
    }
    fn rps(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// A keep-alive HTTP/1.1 connection sending one fixed request over and over.
struct Conn {
    r: TokioBufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (r, w) = s.into_split();
        Self {
            r: TokioBufReader::new(r),
            w,
            line: String::new(),
            body: Vec::new(),
        }
    }

    /// Sends `req`, reads one response; returns status, the session id header, and the body.
    async fn round_trip(&mut self, req: &[u8]) -> (u16, Option<String>) {
        self.w.write_all(req).await.unwrap();
        self.line.clear();
        self.r.read_line(&mut self.line).await.unwrap();
        let status: u16 = match self.line.split_whitespace().nth(1) {
            Some(s) => s.parse().unwrap(),
            None => panic!(
                "bad status line {:?} after {:?}",
                self.line,
                String::from_utf8_lossy(&self.body)
            ),
        };
        let (mut len, mut sid, mut chunked) = (0usize, None, false);
        loop {
            self.line.clear();
            self.r.read_line(&mut self.line).await.unwrap();
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.trim().eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("mcp-session-id") {
                sid = Some(v.trim().to_owned());
            }
        }
        if chunked {
            self.body.clear();
            loop {
                self.line.clear();
                self.r.read_line(&mut self.line).await.unwrap();
                let size = usize::from_str_radix(self.line.trim(), 16).unwrap();
                let at = self.body.len();
                self.body.resize(at + size + 2, 0); // chunk plus CRLF
                self.r.read_exact(&mut self.body[at..]).await.unwrap();
                self.body.truncate(at + size);
                if size == 0 {
                    break;
                }
            }
        } else {
            self.body.resize(len, 0);
            self.r.read_exact(&mut self.body).await.unwrap();
        }
        (status, sid)
    }
}

fn request(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

/// Drives `clients` connections for the configured time; `setup` prepares each connection and
/// returns the request it will repeat.
async fn load<F, Fut>(addr: SocketAddr, clients: usize, setup: F) -> Run
where
    F: Fn(Conn) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Conn, Vec<u8>)> + Send,
{
    let dur = secs();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let setup = setup.clone();
            tokio::spawn(async move {
                let (mut c, req) = setup(Conn::open(addr).await).await;
                for _ in 0..50 {
                    c.round_trip(&req).await; // warm-up
                }
                let mut lat = Vec::with_capacity(100_000);
                let begin = Instant::now();
                while begin.elapsed() < dur {
                    let t = Instant::now();
                    let (status, _) = c.round_trip(&req).await;
                    assert_eq!(status, 200);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    Run {
        lat,
        elapsed: start.elapsed(),
    }
}

fn modern_meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}})
}

fn modern_call(addr: SocketAddr, name: &str, args: Value) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": modern_meta()}});
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28".to_owned()),
        ("Mcp-Method", "tools/call".to_owned()),
        ("Mcp-Name", name.to_owned()),
    ];
    request(addr, "/mcp", &headers, &body)
}

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
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

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
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix::System::new();
        sys.block_on(async move {
            let mut config = Config::default();
            config.store.in_memory = true;
            config.session.idle_timeout_ms = 0;
            let rt = Runtime::start(config).unwrap();
            tx.send(rt.handle()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let handle = rx.recv().unwrap();
    let lib_handle = handle.clone();
    let ours = servers.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(http::serve(
            McpServer::new(handle),
            listener,
            HttpConfig::default(),
        ));
        addr
    });

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
