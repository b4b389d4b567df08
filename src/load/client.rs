//! One load client: a connection to an MCP server over Streamable HTTP (one keep-alive
//! HTTP/1.1 connection, JSON or SSE responses) or stdio (its own server process, JSON lines),
//! the protocol handshake, and one request at a time.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{Protocol, Target};

/// The newest handshake-era revision offered; servers answer with the one they speak.
pub const HANDSHAKE_VERSION: &str = "2025-11-25";
/// The stateless revision (`--protocol 2026-07-28`).
pub const MODERN_VERSION: &str = "2026-07-28";

/// Why one operation failed, by kind (the report counts them by [`OpError::kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// Short category: `connect`, `http_503`, `rpc_-32602`, `tool_error`, `timeout`, `protocol`, `io`.
    pub kind: String,
    /// What happened.
    pub detail: String,
}

impl OpError {
    pub(crate) fn new(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// The parts of an `http://host:port/path` URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path (with query).
    pub path: String,
    /// True when the host is a loopback name or address.
    pub loopback: bool,
}

impl HttpTarget {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https is not supported: point it at a plain-HTTP listener (or a local TLS-terminating proxy)".into())
            }
            _ => return Err(format!("{url:?} must start with http://")),
        }
        let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        Ok(Self {
            authority: format!("{host}:{port}"),
            path: uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_owned()),
            loopback,
        })
    }
}

#[derive(Debug)]
enum Transport {
    Http {
        target: HttpTarget,
        sender: Option<SendRequest<Full<Bytes>>>,
        session: Option<HeaderValue>,
    },
    Stdio(Box<StdioPipes>),
}

/// A stdio server process and its pipes.
#[derive(Debug)]
struct StdioPipes {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    transport: Transport,
    protocol: Protocol,
    /// The revision the server agreed to (handshake era).
    version: String,
    next_id: u64,
}

impl Client {
    /// Connects and, unless the protocol is raw, performs the MCP handshake.
    pub async fn connect(target: &Target, protocol: Protocol) -> Result<Self, OpError> {
        let transport = match target {
            Target::Http { url } => {
                let target = HttpTarget::parse(url).map_err(|e| OpError::new("connect", e))?;
                Transport::Http {
                    target,
                    sender: None,
                    session: None,
                }
            }
            Target::Stdio { argv } => {
                let (program, args) = argv
                    .split_first()
                    .ok_or_else(|| OpError::new("connect", "the stdio command is empty"))?;
                let mut child = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| OpError::new("connect", format!("starting {program:?}: {e}")))?;
                let stdin = child.stdin.take().expect("piped");
                let stdout = BufReader::new(child.stdout.take().expect("piped"));
                Transport::Stdio(Box::new(StdioPipes {
                    child,
                    stdin,
                    stdout,
                    line: String::new(),
                }))
            }
        };
        let mut client = Self {
            transport,
            protocol,
            version: match protocol {
                Protocol::Modern => MODERN_VERSION.into(),
                _ => HANDSHAKE_VERSION.into(),
            },
            next_id: 0,
        };
        if protocol == Protocol::Handshake {
            client.handshake().await?;
        }
        Ok(client)
    }

    async fn handshake(&mut self) -> Result<(), OpError> {
        let init = json!({
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "stablehand-load", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self.request("initialize", init).await?;
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str) {
            self.version = v.to_owned();
        }
        self.send("notifications/initialized", None, &json!({}), None, None)
            .await
            .map(drop)
    }

    /// The protocol revision in use (the one the server chose, after a handshake).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Calls a tool; a result with `isError: true` is a `tool_error`.
    pub async fn call_tool(&mut self, name: &str, arguments: &Value) -> Result<Value, OpError> {
        let raw = self.call_tool_raw(name, arguments).await?;
        let result = answer_result("tools/call", &raw)?;
        tool_error(name, &result)?;
        Ok(result)
    }

    /// Calls a tool for its outcome only, as the load loop does: the answer is checked for
    /// an error without being built into a tree of values (most of a client's own cost per
    /// call, with answers as large as an exec's).
    pub async fn call_tool_ok(&mut self, name: &str, arguments: &Value) -> Result<(), OpError> {
        let raw = self.call_tool_raw(name, arguments).await?;
        let reply: Outcome = serde_json::from_slice(&raw).map_err(|e| {
            OpError::new(
                "protocol",
                format!("{name}: the answer is not JSON-RPC: {e}"),
            )
        })?;
        match reply {
            Outcome { error: Some(_), .. }
            | Outcome {
                result: Some(ResultFlag { is_error: true }),
                ..
            } => {
                // Rare: built in full, for the message.
                let result = answer_result("tools/call", &raw)?;
                tool_error(name, &result)
            }
            Outcome {
                result: Some(_), ..
            } => Ok(()),
            Outcome { result: None, .. } => Err(OpError::new(
                "protocol",
                "tools/call: response without result".to_owned(),
            )),
        }
    }

    /// Sends a request and returns its result (a JSON-RPC error is an `rpc_<code>` error).
    pub async fn request(&mut self, method: &str, mut params: Value) -> Result<Value, OpError> {
        if self.protocol == Protocol::Modern {
            params["_meta"] = json!({
                META_VERSION: MODERN_VERSION,
                META_CAPABILITIES: {},
            });
        }
        let name = params.get("name").and_then(Value::as_str);
        let id = self.take_id();
        let raw = self.send(method, Some(id), &params, name, None).await?;
        answer_result(method, &expect_answer(method, raw)?)
    }

    /// Calls tool `name` and returns the text of its response. The message is written
    /// straight from its parts, as the load loop calls it for every operation.
    async fn call_tool_raw(&mut self, name: &str, arguments: &Value) -> Result<Bytes, OpError> {
        let params = ToolCall {
            name,
            arguments,
            meta: (self.protocol == Protocol::Modern).then_some(ModernMeta::default()),
        };
        let session = arguments.get("session_id").and_then(Value::as_str);
        let id = self.take_id();
        let raw = self
            .send("tools/call", Some(id), &params, Some(name), session)
            .await?;
        expect_answer("tools/call", raw)
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a request (with `id`) or a notification; returns the text of the response to a
    /// request. `name` is the tool (or other) name the modern era puts in `Mcp-Name`;
    /// `session` a tool call's `session_id` argument.
    async fn send(
        &mut self,
        method: &str,
        id: Option<u64>,
        params: &impl serde::Serialize,
        name: Option<&str>,
        session: Option<&str>,
    ) -> Result<Option<Bytes>, OpError> {
        let message = Outgoing {
            jsonrpc: "2.0",
            id,
            method,
            params,
        };
        let body = serde_json::to_vec(&message).expect("values serialise");
        match &mut self.transport {
            Transport::Http { .. } => self.send_http(method, (name, session), id, body).await,
            Transport::Stdio(_) => self.send_stdio(id, body).await,
        }
    }

    async fn send_http(
        &mut self,
        method: &str,
        (name, session_param): (Option<&str>, Option<&str>),
        id: Option<u64>,
        body: Vec<u8>,
    ) -> Result<Option<Bytes>, OpError> {
        let (protocol, version) = (self.protocol, self.version.as_str());
        let Transport::Http {
            target,
            sender,
            session,
        } = &mut self.transport
        else {
            unreachable!("http transport");
        };
        let ready = match sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            *sender = Some(open(target).await?);
        }
        let headers = Headers {
            protocol,
            version,
            method,
            name,
            session: session.as_ref(),
            session_param,
        };
        let req = http_request(target, &headers, body)?;
        let response = sender
            .as_mut()
            .expect("opened above")
            .send_request(req)
            .await
            .map_err(|e| {
                *sender = None;
                OpError::new("io", format!("sending {method}: {e}"))
            })?;
        let status = response.status();
        if let Some(s) = response.headers().get("mcp-session-id") {
            *session = Some(s.clone());
        }
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                *sender = None;
                OpError::new("io", format!("reading the answer to {method}: {e}"))
            })?
            .to_bytes();
        http_answer(method, id, status, sse, bytes)
    }

    async fn send_stdio(
        &mut self,
        id: Option<u64>,
        mut body: Vec<u8>,
    ) -> Result<Option<Bytes>, OpError> {
        let Transport::Stdio(pipes) = &mut self.transport else {
            unreachable!("stdio transport");
        };
        let StdioPipes {
            child,
            stdin,
            stdout,
            line,
        } = &mut **pipes;
        body.push(b'\n');
        stdin
            .write_all(&body)
            .await
            .map_err(|e| OpError::new("io", format!("writing to the server: {e}")))?;
        let Some(id) = id else { return Ok(None) };
        loop {
            line.clear();
            let n = stdout
                .read_line(line)
                .await
                .map_err(|e| OpError::new("io", format!("reading from the server: {e}")))?;
            if n == 0 {
                let status = child.try_wait().ok().flatten();
                return Err(OpError::new(
                    "io",
                    format!("the server closed its stdout (exit status {status:?}; its stderr is not shown: run the command by hand to see why)"),
                ));
            }
            let Ok(message) = serde_json::from_str::<Envelope>(line) else {
                continue;
            };
            if message.answers(id) {
                return Ok(Some(Bytes::copy_from_slice(line.as_bytes())));
            }
            if let (Some(req_id), Some(_)) = (&message.id, &message.method) {
                // A request from the server (roots, sampling): not supported by a load client.
                let reply = json!({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32601, "message": "not supported by stablehand load"}});
                let mut bytes = serde_json::to_vec(&reply).expect("values serialise");
                bytes.push(b'\n');
                let _ = stdin.write_all(&bytes).await;
            }
        }
    }

    /// Drops the connection so the next request opens a fresh one (after a timeout, a late
    /// answer must not be taken for the next request's).
    pub fn reset(&mut self) {
        if let Transport::Http { sender, .. } = &mut self.transport {
            *sender = None;
        }
    }
}

/// Opens one HTTP/1.1 connection.
async fn open(target: &HttpTarget) -> Result<SendRequest<Full<Bytes>>, OpError> {
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(&target.authority),
    )
    .await
    .map_err(|_| {
        OpError::new(
            "connect",
            format!("connecting to {} timed out", target.authority),
        )
    })?
    .map_err(|e| {
        OpError::new(
            "connect",
            format!("connecting to {}: {e}", target.authority),
        )
    })?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            OpError::new(
                "connect",
                format!("HTTP handshake with {}: {e}", target.authority),
            )
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What a request's MCP headers depend on.
struct Headers<'a> {
    protocol: Protocol,
    version: &'a str,
    method: &'a str,
    name: Option<&'a str>,
    session: Option<&'a HeaderValue>,
    /// A tool call's `session_id` argument.
    session_param: Option<&'a str>,
}

/// The POST of one JSON-RPC message, with the headers its protocol asks for.
fn http_request(
    target: &HttpTarget,
    h: &Headers<'_>,
    body: Vec<u8>,
) -> Result<Request<Full<Bytes>>, OpError> {
    let mut req = Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream");
    if h.protocol != Protocol::Raw && h.method != "initialize" {
        req = req.header("MCP-Protocol-Version", h.version);
    }
    if let Some(s) = h.session {
        req = req.header("Mcp-Session-Id", s.clone());
    }
    if h.protocol == Protocol::Modern {
        req = req.header("Mcp-Method", h.method);
        if let Some(n) = h.name {
            req = req.header("Mcp-Name", n);
        }
        // stablehand's tools declare session_id `x-mcp-header` (a proxy routes on it);
        // another server ignores a parameter header its tools do not declare.
        if let Some(s) = h.session_param {
            req = req.header("Mcp-Param-Session-Id", s);
        }
    }
    req.body(Full::new(Bytes::from(body)))
        .map_err(|e| OpError::new("protocol", e.to_string()))
}

/// The response to request `id` in an HTTP answer (JSON or SSE), or `None` for a
/// notification; a status other than success (notification) or 200 (request) is an error.
fn http_answer(
    method: &str,
    id: Option<u64>,
    status: StatusCode,
    sse: bool,
    bytes: Bytes,
) -> Result<Option<Bytes>, OpError> {
    if id.is_none() {
        return match status {
            s if s.is_success() => Ok(None),
            s => Err(OpError::new(
                format!("http_{}", s.as_u16()),
                format!("{method}: {}", String::from_utf8_lossy(&bytes)),
            )),
        };
    }
    if status != StatusCode::OK {
        return Err(OpError::new(
            format!("http_{}", status.as_u16()),
            format!("{method}: {}", String::from_utf8_lossy(&bytes).trim()),
        ));
    }
    let found = if sse {
        sse_data(&bytes)
            .find(|d| {
                serde_json::from_str::<Envelope>(d)
                    .is_ok_and(|m| id.is_some_and(|id| m.answers(id)))
            })
            .map(Bytes::from)
    } else {
        Some(bytes)
    };
    found.map(Some).ok_or_else(|| {
        OpError::new(
            "protocol",
            format!("{method}: no JSON-RPC response in the body"),
        )
    })
}

/// The `data:` of each event of an SSE body.
fn sse_data(body: &[u8]) -> impl Iterator<Item = String> + '_ {
    let text = std::str::from_utf8(body).unwrap_or("");
    text.split("\n\n").filter_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        (!data.is_empty()).then(|| data.join("\n"))
    })
}

/// The JSON messages in the `data:` fields of an SSE body.
#[cfg(test)]
fn sse_messages(body: &[u8]) -> impl Iterator<Item = Value> + '_ {
    sse_data(body).filter_map(|d| serde_json::from_str(&d).ok())
}

/// What tells a message apart: its id, and a method if it is a request or notification.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
}

impl Envelope {
    /// True for the response to request `id`.
    fn answers(&self, id: u64) -> bool {
        self.method.is_none() && self.id.as_ref().and_then(Value::as_u64) == Some(id)
    }
}

/// A tool call's response, read only as far as its outcome.
#[derive(serde::Deserialize)]
struct Outcome {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    result: Option<ResultFlag>,
}

/// `result.isError`; the rest of the result is skipped.
#[derive(serde::Deserialize)]
struct ResultFlag {
    #[serde(rename = "isError", default)]
    is_error: bool,
}

/// The result of the response `raw` to `method` (a JSON-RPC error is an `rpc_<code>` error).
fn answer_result(method: &str, raw: &[u8]) -> Result<Value, OpError> {
    let mut response: Value = serde_json::from_slice(raw)
        .map_err(|e| OpError::new("protocol", format!("{method}: the answer is not JSON: {e}")))?;
    if let Some(err) = response.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(OpError::new(
            format!("rpc_{code}"),
            format!("{method}: {message}"),
        ));
    }
    // Taken, not cloned: an exec's result is a tree of a few dozen values.
    response
        .get_mut("result")
        .map(Value::take)
        .ok_or_else(|| OpError::new("protocol", format!("{method}: response without result")))
}

/// The answer to a request: a missing one is a `protocol` error.
fn expect_answer(method: &str, raw: Option<Bytes>) -> Result<Bytes, OpError> {
    raw.ok_or_else(|| OpError::new("protocol", format!("no response to {method}")))
}

/// `_meta` keys of the 2026-07-28 era.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// One JSON-RPC message, written from its parts.
#[derive(serde::Serialize)]
struct Outgoing<'a, P> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    method: &'a str,
    params: P,
}

/// The params of a `tools/call`.
#[derive(serde::Serialize)]
struct ToolCall<'a> {
    name: &'a str,
    arguments: &'a Value,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<ModernMeta>,
}

/// The `_meta` every 2026-07-28 request carries: this revision, no client capabilities.
#[derive(serde::Serialize)]
struct ModernMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    version: &'static str,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    capabilities: serde_json::Map<String, Value>,
}

impl Default for ModernMeta {
    fn default() -> Self {
        Self {
            version: MODERN_VERSION,
            capabilities: serde_json::Map::new(),
        }
    }
}

/// A tool result with `isError: true` as a `tool_error` naming the tool.
fn tool_error(name: &str, result: &Value) -> Result<(), OpError> {
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let text = result
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or("(no text)");
        return Err(OpError::new("tool_error", format!("{name}: {text}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_loopback_is_recognised() {
        let t = HttpTarget::parse("http://127.0.0.1:8765/mcp").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str(), t.loopback),
            ("127.0.0.1:8765", "/mcp", true)
        );
        assert!(HttpTarget::parse("http://localhost/").unwrap().loopback);
        assert!(HttpTarget::parse("http://[::1]:9/x").unwrap().loopback);
        assert!(
            !HttpTarget::parse("http://10.0.0.5:80/mcp")
                .unwrap()
                .loopback
        );
        assert!(HttpTarget::parse("https://127.0.0.1/")
            .unwrap_err()
            .contains("https"));
        assert!(HttpTarget::parse("ftp://x/").is_err());
    }

    #[test]
    fn an_answer_is_told_by_its_id_and_its_outcome_read_without_the_rest() {
        let answer: Envelope =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).unwrap();
        assert!(answer.answers(7) && !answer.answers(8));
        let request: Envelope = serde_json::from_str(r#"{"id":7,"method":"roots/list"}"#).unwrap();
        assert!(
            !request.answers(7),
            "a request from the server with the same id"
        );
        let ok: Outcome = serde_json::from_str(
            r#"{"id":1,"result":{"content":[{"type":"text","text":"x"}],"structuredContent":{"exit_code":0}}}"#,
        )
        .unwrap();
        assert!(matches!(
            ok,
            Outcome {
                error: None,
                result: Some(ResultFlag { is_error: false })
            }
        ));
        let failed: Outcome =
            serde_json::from_str(r#"{"id":1,"result":{"isError":true,"content":[]}}"#).unwrap();
        assert!(matches!(failed.result, Some(ResultFlag { is_error: true })));
        let err =
            answer_result("m", br#"{"id":1,"error":{"code":-32602,"message":"bad"}}"#).unwrap_err();
        assert_eq!(
            (err.kind.as_str(), err.detail.as_str()),
            ("rpc_-32602", "m: bad")
        );
        let tool =
            tool_error("t", &json!({"isError": true, "content": [{"text": "why"}]})).unwrap_err();
        assert_eq!(tool.detail, "t: why");
    }

    #[test]
    fn a_tool_call_is_written_from_its_parts_with_the_era_s_meta() {
        let arguments = json!({"session_id": "s-1", "input": "echo \"hi\""});
        let message = |meta| {
            let params = ToolCall {
                name: "session_exec",
                arguments: &arguments,
                meta,
            };
            let m = Outgoing {
                jsonrpc: "2.0",
                id: Some(7),
                method: "tools/call",
                params: &params,
            };
            serde_json::to_value(&m).unwrap()
        };
        assert_eq!(
            message(None),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "session_exec", "arguments": arguments}})
        );
        assert_eq!(
            message(Some(ModernMeta::default()))["params"]["_meta"],
            json!({META_VERSION: MODERN_VERSION, META_CAPABILITIES: {}})
        );
        let note = Outgoing {
            jsonrpc: "2.0",
            id: None,
            method: "notifications/initialized",
            params: json!({}),
        };
        assert!(serde_json::to_value(&note).unwrap().get("id").is_none());
    }

    #[test]
    fn sse_bodies_yield_their_json_messages() {
        let body = b"event: message\ndata: {\"id\":1,\"result\":{}}\n\ndata: {\"id\":2,\ndata: \"result\":3}\n\n";
        let got: Vec<Value> = sse_messages(body).collect();
        assert_eq!(
            got,
            vec![
                json!({"id": 1, "result": {}}),
                json!({"id": 2, "result": 3})
            ]
        );
    }
}
