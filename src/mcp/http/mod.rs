//! The Streamable HTTP transport (POST carries messages; responses are JSON, or SSE when a
//! request reports progress or runs longer than a second).
//!
//! Checks, in order: path; `Host` (loopback names and `allowed_hosts`; DNS rebinding, 403); `Origin` (403);
//! bearer token when configured (401); method; body size (413) and pace (408); JSON (400 with
//! -32700). Then the era decides: **legacy** (no or a handshake-era `MCP-Protocol-Version`) issues
//! `Mcp-Session-Id` at `initialize`, wants it on every later request (400 without, 404 once
//! expired), ends it on DELETE, answers GET with 405, and lets a call finish when its client
//! disconnects; **modern** (2026-07-28) is POST only (GET/DELETE 405), validates `Mcp-Method`
//! and `Mcp-Name` against the body (400, -32020) and cancels a call whose client disconnects.
//!
//! Which connections are held, their timers and what happens at the limits is the front
//! door's (`door.rs`). Here: `mod.rs` the accept loop, connections, POST and one message;
//! `guard.rs` the checks before any message is read; `legacy.rs` and `modern.rs` the two eras'
//! rules; `response.rs` JSON and event-stream responses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod guard;
mod legacy;
mod modern;
mod response;

use guard::*;
use legacy::*;
use modern::*;
use response::*;

use super::context::Notifier;
use super::dispatch::{
    classify, error_response, ConnState, Message, Origin, Params, Received, Wire,
};
use super::door::{self, Admission, BodyError, Door, Ticket};
use super::protocol::{self, code, Era, WireError};
use super::McpServer;
use crate::config::{Anonymous, HttpConfig};
use crate::runtime::Via;
use crate::Owner;

type Body = BoxBody<Bytes, Infallible>;

/// How long a request may run before its response switches from JSON to an SSE stream.
const SSE_AFTER: Duration = Duration::from_secs(1);

/// Length of the listen queue asked for by [`bind`] (the kernel caps it at
/// `net.core.somaxconn`): a burst of connections waits there instead of being dropped.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A handshake-era protocol session (`Mcp-Session-Id`).
#[derive(Debug)]
struct LegacySession {
    conn: Arc<ConnState>,
    owner: Owner,
    /// The owner is this protocol session itself (`http.anonymous = "per-connection"`, no
    /// token): its stablehand sessions end with it.
    own_principal: bool,
    last_seen: AtomicU64,
}

/// The access rules of a serving HTTP transport — `tokens`, `allowed_hosts`,
/// `allowed_origins` and `anonymous` — which [`Access::reload`] replaces while it serves,
/// without dropping a connection or a session (the binary does on SIGHUP). The other
/// `[http]` settings are fixed at start.
#[derive(Debug, Clone)]
pub struct Access(Arc<RwLock<Arc<HttpConfig>>>);

impl Access {
    /// Access rules taken from `config`.
    pub fn new(config: HttpConfig) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The rules in force.
    fn current(&self) -> Arc<HttpConfig> {
        Arc::clone(&self.0.read())
    }

    /// Takes the access rules of `new` for a server bound to `addr`; refused (the old rules
    /// stay) when `new` would leave a non-loopback address without a token
    /// ([`check_bind`]). Returns the number of tokens now in force.
    pub fn reload(&self, new: &HttpConfig, addr: SocketAddr) -> Result<usize, String> {
        let mut next = (*self.current()).clone();
        next.tokens = new.tokens.clone();
        next.allowed_hosts = new.allowed_hosts.clone();
        next.allowed_origins = new.allowed_origins.clone();
        next.anonymous = new.anonymous;
        next.allow_unauthenticated = new.allow_unauthenticated;
        check_bind(addr, &next)?;
        let tokens = next.tokens.len();
        *self.0.write() = Arc::new(next);
        Ok(tokens)
    }
}

/// What every connection of the HTTP transport shares.
struct HttpState {
    server: McpServer,
    /// The settings at start (the access rules among them may have been reloaded since:
    /// read those from `access`).
    config: HttpConfig,
    access: Access,
    door: Arc<Door>,
    sessions: RwLock<HashMap<String, Arc<LegacySession>>>,
    epoch: Instant,
}

impl HttpState {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Binds a listener on `addr` with a listen queue of [`LISTEN_BACKLOG`]. Call it inside the
/// tokio runtime that will accept on it.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Refuses to serve a non-loopback `addr` without tokens, unless
/// [`HttpConfig::allow_unauthenticated`] says to: anyone who could reach it would run commands
/// as this user. Warns when a non-loopback bind names no allowed hosts (only loopback `Host`
/// names would be accepted). [`serve`] checks this too; call it earlier to fail before
/// starting anything.
pub fn check_bind(addr: SocketAddr, config: &HttpConfig) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if config.tokens.is_empty() {
        if !config.allow_unauthenticated {
            return Err(format!(
                "refusing to serve {addr} without a token: anyone who can reach it could run \
                 commands as this user. Add one to the config file (--config), e.g. \
                 [http] tokens = [{{ name = \"me\", token = \"<a long random secret>\" }}], \
                 or bind to 127.0.0.1, or pass --allow-unauthenticated to accept the risk"
            ));
        }
        tracing::warn!(address = %addr, "serving a non-loopback address without a token (--allow-unauthenticated): anyone who can reach it can run commands as this user");
    }
    if config.allowed_hosts.is_empty() {
        tracing::warn!(address = %addr, "http.allowed_hosts is empty: only requests whose Host is a loopback name are accepted; add the names clients use to reach {addr}");
    }
    Ok(())
}

/// Serves MCP over Streamable HTTP on `listener` until the task is dropped.
///
/// Every connection is accepted; the front door (`door.rs`) decides whether it is served,
/// makes room by closing the longest-idle connection, or is answered 503.
pub async fn serve(
    server: McpServer,
    listener: TcpListener,
    config: HttpConfig,
) -> std::io::Result<()> {
    serve_with(server, listener, Access::new(config)).await
}

/// [`serve`] with access rules that `access` can replace while it serves.
pub async fn serve_with(
    server: McpServer,
    listener: TcpListener,
    access: Access,
) -> std::io::Result<()> {
    let config = (*access.current()).clone();
    check_bind(listener.local_addr()?, &config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let door = Door::new(&config, server.handle().config().runtime.fd_reserve);
    let state = Arc::new(HttpState {
        server,
        config,
        access,
        door: Arc::clone(&door),
        sessions: RwLock::default(),
        epoch: Instant::now(),
    });
    tokio::spawn(expire_sessions(Arc::downgrade(&state)));
    let mut errors = door::AcceptErrors::default();
    let mut next = 0usize;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => {
                errors.recovered();
                x
            }
            Err(e) => {
                errors.failed(e, &listener, &door).await;
                continue;
            }
        };
        let ticket = match door.admit() {
            Admission::Admit(ticket) => ticket,
            Admission::Refuse => {
                door.refuse(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        place_conn(Arc::clone(&state), stream, peer, ticket, next);
        next = next.wrapping_add(1);
    }
}

/// Hands connection number `n` to a session arbiter, round-robin, to be served there.
/// Sessions created over a connection are placed on its arbiter: a client's requests to its
/// own sessions then never cross threads. The socket moves to that thread's reactor.
fn place_conn(
    state: Arc<HttpState>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    n: usize,
) {
    let arbiters = state.server.handle().arbiters().to_vec();
    if arbiters.is_empty() {
        tokio::spawn(serve_conn(state, stream, peer, ticket));
        return;
    }
    let arbiter = &arbiters[n % arbiters.len()];
    match stream.into_std() {
        Ok(std_stream) => {
            arbiter.spawn(async move {
                match TcpStream::from_std(std_stream) {
                    Ok(stream) => serve_conn(state, stream, peer, ticket).await,
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot adopt connection"),
                }
            });
        }
        Err(e) => tracing::warn!(%peer, error = %e, "cannot move connection"),
    }
}

/// Serves one HTTP/1.1 connection with keep-alive, under the front door's timers, until it
/// ends or the door closes it to make room. A connection told to go while idle closes at once
/// (bytes it sent that this thread has not read yet are read first); one that has started a
/// request since it was chosen has shown itself a client and is kept (the door is over its
/// limit by one until the next admission makes room).
async fn serve_conn(state: Arc<HttpState>, stream: TcpStream, peer: SocketAddr, ticket: Ticket) {
    let raw_fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let io = state.door.watch(stream, &ticket);
    let ticket = Arc::new(ticket);
    let slot = Arc::clone(ticket.slot());
    let kept = Arc::clone(&ticket);
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        let busy = ticket.busy();
        async move {
            let resp = handle(state, req, peer).await;
            Ok::<_, Infallible>(resp.map(|body| door::Guarded::new(body, busy)))
        }
    });
    // The door's timers replace hyper's header timeout (see door.rs).
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = 'serve: loop {
        tokio::select! {
            // The connection first: bytes that arrived before the door's word are read, and a
            // head they complete makes the connection busy.
            biased;
            r = conn.as_mut() => break r,
            () = slot.evict.notified() => {
                // FIONREAD (`pipe_unread`) counts a socket's received, unread bytes too.
                // SAFETY: `conn` owns the stream and is alive for this whole scope.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw_fd) };
                if !slot.busy() && crate::process::pipe_unread(fd) > 0 {
                    // Bytes this thread has not read yet (it was starved, or the connection is
                    // new): let the reactor see them and hyper read them, once.
                    tokio::task::yield_now().await;
                    tokio::select! {
                        biased;
                        r = conn.as_mut() => break 'serve r,
                        () = std::future::ready(()) => {}
                    }
                }
                if !slot.busy() {
                    tracing::debug!(%peer, "idle connection closed to make room");
                    return;
                }
                // It has started a request since it was chosen: a client after all.
                kept.spare();
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn handle(state: Arc<HttpState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if let Some(resp) = probe(&state, &req) {
        return resp;
    }
    match check(&state, &req) {
        Err(resp) => *resp,
        Ok(owner) => {
            let started = Instant::now();
            let method = req.method().clone();
            let resp = match method {
                Method::POST => post(&state, req, owner).await,
                Method::GET | Method::DELETE => Box::pin(get_or_delete(&state, &req)).await,
                _ => status(StatusCode::METHOD_NOT_ALLOWED, "use POST").with_allow(),
            };
            tracing::debug!(%peer, %method, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "http request");
            resp
        }
    }
}

async fn post(
    state: &Arc<HttpState>,
    req: Request<Incoming>,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if let Some(accept) = header(&headers, "accept") {
        if !accepts(accept, "application/json", true) && !accepts(accept, "text/event-stream", true)
        {
            return status(
                StatusCode::NOT_ACCEPTABLE,
                "Accept must allow application/json or text/event-stream",
            );
        }
    }
    let max = state.config.max_body_bytes;
    let declared = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(max);
    }
    let body = match door::read_body(body, (&state.config).into()).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(max),
        Err(BodyError::TooSlow {
            received,
            elapsed_ms,
        }) => return too_slow(&state.config, received, elapsed_ms),
        Err(BodyError::Read(e)) => {
            return rpc_status(
                StatusCode::BAD_REQUEST,
                code::PARSE_ERROR,
                format!("could not read the body: {e}"),
            )
        }
    };
    let wire = match Wire::parse(&body) {
        Ok(w) => w,
        Err(e) => return rpc_status(StatusCode::BAD_REQUEST, e.code, e.message),
    };
    if let Some(resp) = refused_while_draining(state, &wire) {
        return resp;
    }
    let header_version = header(&headers, "mcp-protocol-version").filter(|v| !v.is_empty());
    match header_version {
        Some(v) if protocol::known_legacy(v).is_none() => {
            modern(state, &headers, wire, v, token_owner).await
        }
        _ => legacy(state, &headers, wire, token_owner).await,
    }
}

/// `GET /healthz` (200 while the process serves) and `GET /readyz` (200 while it takes new
/// sessions, 503 while it drains), for a proxy's and an orchestrator's probes. They say
/// nothing about sessions, so they need neither a token nor an allowed Host.
fn probe(state: &HttpState, req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.method() != Method::GET {
        return None;
    }
    let node = crate::model::node::id();
    match req.uri().path() {
        "/healthz" => Some(status(StatusCode::OK, &format!("ok: node {node}\n"))),
        "/readyz" if state.server.handle().draining() => Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("draining: node {node} takes no new sessions\n"),
        )),
        "/readyz" => Some(status(StatusCode::OK, &format!("ready: node {node}\n"))),
        _ => None,
    }
}

/// While the node drains, what would start something new here — a `session_create`, a
/// handshake-era `initialize` — is answered 503 with `Retry-After: 1`, so that a proxy
/// tries another node.
fn refused_while_draining(state: &HttpState, wire: &Wire) -> Option<Response<Body>> {
    if !state.server.handle().draining() {
        return None;
    }
    let Wire::One(message) = wire else {
        return None;
    };
    let method = message.method()?;
    let head = message.head();
    let tool = head.name.as_ref().and_then(Value::as_str);
    if method != "initialize" && !(method == "tools/call" && tool == Some("session_create")) {
        return None;
    }
    let e = crate::Error::Draining {
        node: crate::model::node::id().to_owned(),
    };
    let mut resp = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        error_response(
            message.id(),
            &WireError::new(code::INTERNAL_ERROR, e.to_string()),
        ),
    );
    resp.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    Some(resp)
}

/// One message: notifications get 202; requests a JSON response, or SSE if they take long or
/// report progress. In the modern era a client that disconnects cancels its request.
async fn one(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    message: Received,
    origin: impl FnOnce(Notifier) -> Origin,
    cancel_on_disconnect: bool,
) -> Response<Body> {
    let (id, method, params) = match classify(message) {
        Err((e, id)) => return json_response(StatusCode::BAD_REQUEST, error_response(&id, &e)),
        Ok(Message::Response) => return status(StatusCode::ACCEPTED, ""),
        Ok(Message::Notification { method, params }) => {
            let o = origin(Notifier::none());
            state
                .server
                .notification(&method, params.as_ref(), o.conn.as_deref());
            return status(StatusCode::ACCEPTED, "");
        }
        Ok(Message::Request { id, method, params }) => (id, method, params),
    };
    let (ntx, mut nrx) = mpsc::unbounded_channel::<String>();
    let origin = origin(Notifier::new(ntx));
    let cancel = origin.cancel.clone();
    let guard = cancel_on_disconnect.then(|| cancel.clone().drop_guard());
    let mut call = spawn_call(state, id, method, params, origin);
    // Only a client that names the event stream gets one (`*/*` alone keeps plain JSON).
    let sse_ok = header(headers, "accept").is_some_and(|a| accepts(a, "text/event-stream", false));
    // Fast path: the response is ready before any notification and within a second.
    let first = tokio::select! {
        biased;
        r = &mut call => Some(r),
        _ = tokio::time::sleep(SSE_AFTER), if sse_ok => None,
        // `None` (the call's task dropped its notifier) disables this branch; the call
        // branch then completes.
        Some(n) = nrx.recv(), if sse_ok => return sse(call, nrx, Some(n), cancel, guard),
    };
    match first {
        Some(joined) => {
            if let Some(g) = guard {
                g.disarm();
            }
            finished(joined, &mut nrx, sse_ok)
        }
        None => sse(call, nrx, None, cancel, guard),
    }
}

/// Runs one request on this runtime under the server's request time limit (past it, the
/// answer is an error naming the limit).
fn spawn_call(
    state: &Arc<HttpState>,
    id: Value,
    method: String,
    params: Option<Params>,
    origin: Origin,
) -> tokio::task::JoinHandle<Option<String>> {
    let server = state.server.clone();
    // A subscription lasts as long as its client keeps the stream open.
    let limit = if method == "subscriptions/listen" {
        Duration::MAX
    } else {
        Duration::from_millis(state.config.request_timeout_ms)
    };
    let timeout_id = id.clone();
    crate::runtime::spawn_here(async move {
        match tokio::time::timeout(limit, server.request(id, method, params, origin)).await {
            Ok(r) => r,
            Err(_) => {
                let err = WireError::new(
                    code::INTERNAL_ERROR,
                    format!(
                        "the request exceeded the server's time limit of {} ms",
                        limit.as_millis()
                    ),
                );
                Some(error_response(&timeout_id, &err))
            }
        }
    })
}

/// A legacy batch: every request answered, in one JSON array.
async fn batch_response(
    state: &Arc<HttpState>,
    batch: Vec<Received>,
    origin: impl Fn(Notifier) -> Origin,
) -> Response<Body> {
    let mut parts = Vec::new();
    for message in batch {
        match classify(message) {
            Err((e, id)) => parts.push(error_response(&id, &e)),
            Ok(Message::Response) => {}
            Ok(Message::Notification { method, params }) => {
                let o = origin(Notifier::none());
                state
                    .server
                    .notification(&method, params.as_ref(), o.conn.as_deref());
            }
            Ok(Message::Request { id, method, params }) => {
                if let Some(r) = state
                    .server
                    .request(id, method, params, origin(Notifier::none()))
                    .await
                {
                    parts.push(r);
                }
            }
        }
    }
    if parts.is_empty() {
        return status(StatusCode::ACCEPTED, "");
    }
    json_response(StatusCode::OK, format!("[{}]", parts.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_whatever_the_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        for other in [
            &b""[..],
            b"s",
            b"secre",
            b"secreT",
            b"secrets",
            b"secretsecret",
        ] {
            assert!(!constant_time_eq(b"secret", other), "{other:?}");
        }
        assert!(
            !constant_time_eq(b"", b""),
            "an empty secret matches nothing"
        );
    }

    #[test]
    fn a_reload_takes_the_access_rules_and_keeps_a_public_bind_guarded() {
        let public: SocketAddr = "0.0.0.0:7990".parse().unwrap();
        let access = Access::new(HttpConfig {
            tokens: vec![crate::config::Token::new("alice", "a-secret")],
            max_connections: 7,
            ..Default::default()
        });
        let next = HttpConfig {
            tokens: vec![crate::config::Token::new("bob", "b-secret")],
            allowed_hosts: vec!["box.example.com".into()],
            max_connections: 99,
            ..Default::default()
        };
        assert_eq!(access.reload(&next, public), Ok(1));
        let now = access.current();
        assert_eq!(now.tokens[0].name, "bob");
        assert_eq!(now.allowed_hosts, ["box.example.com"]);
        assert_eq!(now.max_connections, 7, "only the access rules are reloaded");
        let err = access.reload(&HttpConfig::default(), public).unwrap_err();
        assert!(err.contains("without a token"), "{err}");
        assert_eq!(
            access.current().tokens[0].name,
            "bob",
            "a refused reload changes nothing"
        );
    }

    #[test]
    fn a_public_bind_needs_a_token_or_the_explicit_override() {
        let public: SocketAddr = "0.0.0.0:7990".parse().unwrap();
        let mut config = HttpConfig::default();
        assert_eq!(
            check_bind("127.0.0.1:7990".parse().unwrap(), &config),
            Ok(())
        );
        assert_eq!(check_bind("[::1]:7990".parse().unwrap(), &config), Ok(()));
        let err = check_bind(public, &config).unwrap_err();
        assert!(
            err.contains("0.0.0.0:7990") && err.contains("--allow-unauthenticated"),
            "{err}"
        );
        config.allow_unauthenticated = true;
        assert_eq!(check_bind(public, &config), Ok(()));
        config.allow_unauthenticated = false;
        config.tokens = vec![crate::config::Token::new("me", "secret")];
        assert_eq!(check_bind(public, &config), Ok(()));
    }

    #[test]
    fn accept_is_parsed_as_media_ranges() {
        assert!(accepts(
            "application/json, text/event-stream",
            "application/json",
            true
        ));
        assert!(accepts("text/event-stream", "text/event-stream", false));
        assert!(accepts(
            "Application/JSON;charset=utf-8",
            "application/json",
            true
        ));
        assert!(accepts("application/*", "application/json", true));
        assert!(accepts("*/*", "application/json", true));
        assert!(
            !accepts("*/*", "text/event-stream", false),
            "only when named"
        );
        assert!(!accepts("application/jsonx", "application/json", true));
        assert!(!accepts("text/html", "application/json", true));
        assert!(!accepts("application/json;q=0", "application/json", true));
        assert!(accepts("application/json; q=0.5", "application/json", true));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn an_sse_event_has_one_data_line_per_line() {
        assert_eq!(sse_event("{}"), "event: message\ndata: {}\n\n");
        assert_eq!(
            sse_event("a\nb\r\nc"),
            "event: message\ndata: a\ndata: b\ndata: c\n\n"
        );
    }

    #[test]
    fn hosts_and_origins_accept_loopback_only_by_default() {
        assert!(host_allowed("127.0.0.1:8765", &[]));
        assert!(host_allowed("localhost", &[]));
        assert!(host_allowed("[::1]:80", &[]));
        assert!(!host_allowed("evil.example.com:8765", &[]));
        assert!(host_allowed("mcp.internal:8765", &["mcp.internal".into()]));
        assert!(origin_allowed("http://localhost:3000", &[]));
        assert!(!origin_allowed("http://evil.example.com", &[]));
        assert!(!origin_allowed("null", &[]));
    }

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(decode_header_value("=?base64?w6lsYW4=?="), "élan");
        assert_eq!(decode_header_value("plain"), "plain");
    }
}
