//! An HTTP/1.1 MCP client for the benches: keep-alive connections repeating one request, and
//! latency statistics. Shared by `benches/http.rs` and `benches/tasks.rs`.

// Each bench that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

/// Seconds per measurement (`BENCH_SECS`, default 3).
pub fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    )
}

/// Latencies (ns) and count of one measurement.
pub struct Run {
    /// Latencies, ns.
    pub lat: Vec<u64>,
    /// Wall time of the measurement.
    pub elapsed: Duration,
}

impl Run {
    /// Percentile `p` (0..1) of the latencies, in µs.
    pub fn pct(&self, p: f64) -> f64 {
        let mut v = self.lat.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i] as f64 / 1000.0
    }
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// A keep-alive HTTP/1.1 connection sending one fixed request over and over.
pub struct Conn {
    r: TokioBufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
    /// The body of the last response.
    pub body: Vec<u8>,
}

impl Conn {
    /// Connects (TCP_NODELAY).
    pub async fn open(addr: SocketAddr) -> Self {
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
    pub async fn round_trip(&mut self, req: &[u8]) -> (u16, Option<String>) {
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

/// A POST of `body` to `path` with the MCP headers and `headers`.
pub fn request(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &Value) -> Vec<u8> {
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
pub async fn load<F, Fut>(addr: SocketAddr, clients: usize, setup: F) -> Run
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

/// The 2026-07-28 `_meta` envelope.
pub fn modern_meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}})
}

/// A 2026-07-28 `tools/call` of `name` with its headers.
pub fn modern_call(addr: SocketAddr, name: &str, args: Value) -> Vec<u8> {
    let routed = args
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": modern_meta()}});
    let mut headers = vec![
        ("MCP-Protocol-Version", "2026-07-28".to_owned()),
        ("Mcp-Method", "tools/call".to_owned()),
        ("Mcp-Name", name.to_owned()),
    ];
    if let Some(id) = routed {
        // The tools declare session_id `x-mcp-header`: 2026-07-28 clients mirror it.
        headers.push(("Mcp-Param-Session-Id", id));
    }
    request(addr, "/mcp", &headers, &body)
}

/// A tokio runtime with two workers (the server runs on one, the clients on another).
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts the session runtime with `config` in an actix System on a thread of its own;
/// returns its handle.
pub fn start_runtime(config: stablehand::Config) -> stablehand::Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix::System::new();
        sys.block_on(async move {
            let rt = stablehand::Runtime::start(config).unwrap();
            tx.send(rt.handle()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Serves MCP over HTTP for `handle` on `servers`, on a loopback port the OS picks.
pub fn serve_http(servers: &tokio::runtime::Runtime, handle: stablehand::Handle) -> SocketAddr {
    servers.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(stablehand::mcp::http::serve(
            stablehand::mcp::McpServer::new(handle),
            listener,
            stablehand::config::HttpConfig::default(),
        ));
        addr
    })
}
