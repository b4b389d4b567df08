//! The Streamable HTTP transport (POST carries messages; responses are JSON, or SSE when a
//! request reports progress or runs longer than a second).
//!
//! Checks, in order: path; `Host` when bound to loopback (DNS rebinding, 403); `Origin` (403);
//! bearer token when configured (401); method; body size (413) and pace (408); JSON (400 with
//! -32700). Then the era decides: **legacy** (no or a handshake-era `MCP-Protocol-Version`) issues
//! `Mcp-Session-Id` at `initialize`, wants it on every later request (400 without, 404 once
//! expired), ends it on DELETE, answers GET with 405, and lets a call finish when its client
//! disconnects; **modern** (2026-07-28) is POST only (GET/DELETE 405), validates `Mcp-Method`
//! and `Mcp-Name` against the body (400, -32020) and cancels a call whose client disconnects.
//!
//! Which connections are held, their timers and what happens at the limits is the front
//! door's (`door.rs`).

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

use super::context::Notifier;
use super::dispatch::{classify, error_response, ConnState, Message, Origin};
use super::door::{self, Admission, BodyError, Door, Ticket};
use super::protocol::{self, code, Era, WireError};
use super::McpServer;
use crate::config::HttpConfig;
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
    last_seen: AtomicU64,
}

struct State {
    server: McpServer,
    config: HttpConfig,
    door: Arc<Door>,
    loopback: bool,
    sessions: RwLock<HashMap<String, Arc<LegacySession>>>,
    epoch: Instant,
}

impl State {
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

/// Serves MCP over Streamable HTTP on `listener` until the task is dropped.
///
/// Every connection is accepted; the front door (`door.rs`) decides whether it is served,
/// makes room by closing the longest-idle connection, or is answered 503.
pub async fn serve(
    server: McpServer,
    listener: TcpListener,
    config: HttpConfig,
) -> std::io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let door = Door::new(&config, server.handle().config().runtime.fd_reserve);
    let state = Arc::new(State {
        server,
        config,
        door: Arc::clone(&door),
        loopback,
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
        let state = Arc::clone(&state);
        // Connections run on the session arbiters, round-robin, and sessions created over a
        // connection are placed on its arbiter: a client's requests to its own sessions then
        // never cross threads. The socket moves to that thread's reactor.
        let arbiters = state.server.handle().arbiters().to_vec();
        if arbiters.is_empty() {
            tokio::spawn(serve_conn(state, stream, peer, ticket));
        } else {
            let arbiter = &arbiters[next % arbiters.len()];
            next = next.wrapping_add(1);
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
    }
}

/// Serves one HTTP/1.1 connection with keep-alive, under the front door's timers, until it
/// ends or the door closes it to make room. A connection told to go while idle closes at once
/// (bytes it sent that this thread has not read yet are read first); one that has started a
/// request since it was chosen has shown itself a client and is kept (the door is over its
/// limit by one until the next admission makes room).
async fn serve_conn(state: Arc<State>, stream: TcpStream, peer: SocketAddr, ticket: Ticket) {
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

/// Drops legacy protocol sessions idle for longer than the configured time, ending the
/// stablehand sessions only they could reach.
async fn expire_sessions(state: std::sync::Weak<State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        let idle = state.config.session_idle_timeout_ms;
        let now = state.now_ms();
        let expired: Vec<Arc<LegacySession>> = {
            let mut sessions = state.sessions.write();
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) > idle)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for s in expired {
            tracing::info!(owner = %s.owner, "protocol session expired");
            end_owned(&state, &s.owner).await;
        }
    }
}

/// Ends every session of a principal that belonged only to a protocol session.
async fn end_owned(state: &State, owner: &Owner) {
    if !state.config.tokens.is_empty() {
        return; // sessions belong to the token's principal, which outlives the protocol session
    }
    let handle = state.server.handle().with_owner(owner.clone());
    if let Ok(list) = handle.list(&crate::registry::ListRequest {
        limit: Some(crate::registry::MAX_LIMIT),
        ..Default::default()
    }) {
        for s in list.sessions.iter().filter(|s| s.state.is_live()) {
            let _ = handle.end(s.session_id, Default::default()).await;
        }
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    match check(&state, &req) {
        Err(resp) => *resp,
        Ok(owner) => {
            let started = Instant::now();
            let method = req.method().clone();
            let resp = match method {
                Method::POST => post(&state, req, owner).await,
                Method::GET | Method::DELETE => get_or_delete(&state, &req, owner).await,
                _ => status(StatusCode::METHOD_NOT_ALLOWED, "use POST").with_allow(),
            };
            tracing::debug!(%peer, %method, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "http request");
            resp
        }
    }
}

/// Path, Host, Origin and bearer checks. Returns the token principal, if any.
fn check(state: &State, req: &Request<Incoming>) -> Result<Option<Owner>, Box<Response<Body>>> {
    if req.uri().path() != state.config.path {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            &format!("not found; the MCP endpoint is {}", state.config.path),
        )));
    }
    let headers = req.headers();
    if state.loopback {
        let host = header(headers, "host").unwrap_or("");
        if !host_allowed(host, &state.config.allowed_hosts) {
            return Err(Box::new(rpc_status(
                StatusCode::FORBIDDEN,
                code::INVALID_REQUEST,
                format!("Host {host:?} is not allowed (DNS-rebinding protection)"),
            )));
        }
    }
    if let Some(origin) = header(headers, "origin") {
        if !origin_allowed(origin, &state.config.allowed_origins) {
            return Err(Box::new(rpc_status(
                StatusCode::FORBIDDEN,
                code::INVALID_REQUEST,
                format!("Origin {origin:?} is not allowed"),
            )));
        }
    }
    if state.config.tokens.is_empty() {
        return Ok(None);
    }
    let presented = header(headers, "authorization")
        .and_then(bearer_token)
        .unwrap_or("");
    match state
        .config
        .tokens
        .iter()
        .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
    {
        Some(t) => Ok(Some(Owner::new(&t.name))),
        None => {
            let mut resp = rpc_status(
                StatusCode::UNAUTHORIZED,
                code::INVALID_REQUEST,
                "a valid bearer token is required".into(),
            );
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            Err(Box::new(resp))
        }
    }
}

async fn get_or_delete(
    state: &State,
    req: &Request<Incoming>,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let version = header(req.headers(), "mcp-protocol-version");
    if version.is_some_and(|v| protocol::known_legacy(v).is_none()) || req.method() == Method::GET {
        // Modern: POST only. Legacy GET: this server has no standalone SSE stream.
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST is supported here",
        )
        .with_allow();
    }
    let Some(sid) = header(req.headers(), "mcp-session-id") else {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "DELETE needs an Mcp-Session-Id header".into(),
        );
    };
    let removed = state.sessions.write().remove(sid);
    match removed {
        Some(s) => {
            if token_owner.is_none() {
                end_owned(state, &s.owner).await;
            }
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(empty())
                .expect("valid response")
        }
        None => rpc_status(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            format!("unknown or expired Mcp-Session-Id {sid:?}"),
        ),
    }
}

async fn post(
    state: &Arc<State>,
    req: Request<Incoming>,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let headers = req.headers().clone();
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
    let body = match door::read_body(req.into_body(), (&state.config).into()).await {
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
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return rpc_status(
                StatusCode::BAD_REQUEST,
                code::PARSE_ERROR,
                format!("invalid JSON: {e}"),
            )
        }
    };
    let header_version = header(&headers, "mcp-protocol-version").filter(|v| !v.is_empty());
    match header_version {
        Some(v) if protocol::known_legacy(v).is_none() => {
            modern(state, &headers, value, v, token_owner).await
        }
        _ => legacy(state, &headers, value, token_owner).await,
    }
}

async fn legacy(
    state: &Arc<State>,
    headers: &HeaderMap,
    value: Value,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let is_initialize = value.get("method").and_then(Value::as_str) == Some("initialize");
    if is_initialize {
        return initialize(state, value, token_owner).await;
    }
    let Some(sid) = header(headers, "mcp-session-id") else {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "missing Mcp-Session-Id header: send initialize first and echo the id it returns"
                .into(),
        );
    };
    let Some(session) = state.sessions.read().get(sid).cloned() else {
        return rpc_status(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            format!("unknown or expired Mcp-Session-Id {sid:?}; initialize again"),
        );
    };
    session.last_seen.store(state.now_ms(), Ordering::Relaxed);
    let era = session.conn.legacy_era();
    let origin = |notify| Origin {
        owner: session.owner.clone(),
        conn: Some(Arc::clone(&session.conn)),
        era: era.clone(),
        notify,
        cancel: CancellationToken::new(),
    };
    match value {
        Value::Array(batch) if era.allows_batches() && !batch.is_empty() => {
            batch_response(state, batch, origin).await
        }
        Value::Array(_) => rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!(
                "JSON-RPC batches are not supported in protocol version {}",
                era.version()
            ),
        ),
        single => one(state, headers, single, origin, false).await,
    }
}

async fn initialize(
    state: &Arc<State>,
    value: Value,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let sid = uuid::Uuid::new_v4().simple().to_string();
    let owner = token_owner.unwrap_or_else(|| Owner::new(format!("http-session:{sid}")));
    let session = Arc::new(LegacySession {
        conn: Arc::new(ConnState::default()),
        owner,
        last_seen: AtomicU64::new(state.now_ms()),
    });
    let origin = Origin {
        owner: session.owner.clone(),
        conn: Some(Arc::clone(&session.conn)),
        era: Era::Legacy(protocol::NEWEST_LEGACY),
        notify: Notifier::none(),
        cancel: CancellationToken::new(),
    };
    let (id, method, params) = match classify(value) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(_) => return status(StatusCode::ACCEPTED, ""),
        Err((e, id)) => return json_response(StatusCode::BAD_REQUEST, error_response(&id, &e)),
    };
    let response = state
        .server
        .request(id, method, params, origin)
        .await
        .unwrap_or_default();
    let mut resp = json_response(StatusCode::OK, response);
    if session.conn.version().is_some() {
        state.sessions.write().insert(sid.clone(), session);
        resp.headers_mut().insert(
            "mcp-session-id",
            HeaderValue::from_str(&sid).expect("hex is a valid header"),
        );
    }
    resp
}

async fn modern(
    state: &Arc<State>,
    headers: &HeaderMap,
    value: Value,
    version: &str,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let Some(version) = protocol::known_modern(version) else {
        let err = protocol::unsupported_version(version);
        return json_response(
            StatusCode::BAD_REQUEST,
            error_response(value.get("id").unwrap_or(&Value::Null), &err),
        );
    };
    if value.is_array() {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("JSON-RPC batches are not supported in protocol version {version}"),
        );
    }
    if let Err(e) = check_modern_headers(headers, &value, version) {
        return json_response(
            StatusCode::BAD_REQUEST,
            error_response(value.get("id").unwrap_or(&Value::Null), &e),
        );
    }
    let origin = |notify| Origin {
        owner: token_owner.clone().unwrap_or_default(),
        conn: None,
        era: Era::Modern(version),
        notify,
        cancel: CancellationToken::new(),
    };
    one(state, headers, value, origin, true).await
}

/// `Mcp-Method` must equal the body's method; `Mcp-Name` the tool name or resource uri; the
/// version header the body's `_meta` version.
fn check_modern_headers(
    headers: &HeaderMap,
    value: &Value,
    version: &str,
) -> Result<(), WireError> {
    let mismatch = |m: String| WireError::new(code::HEADER_MISMATCH, m);
    let method = value.get("method").and_then(Value::as_str).unwrap_or("");
    match header(headers, "mcp-method") {
        None if !method.is_empty() => return Err(mismatch("missing Mcp-Method header".into())),
        Some(h) if h != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} does not match the body's method {method:?}"
            )))
        }
        _ => {}
    }
    let params = value.get("params");
    let named = match method {
        "tools/call" | "prompts/get" => params.and_then(|p| p.get("name")),
        "resources/read" => params.and_then(|p| p.get("uri")),
        _ => None,
    };
    if let Some(expected) = named.and_then(Value::as_str) {
        match header(headers, "mcp-name").map(decode_header_value) {
            None => return Err(mismatch("missing Mcp-Name header".into())),
            Some(h) if h != expected => {
                return Err(mismatch(format!(
                    "Mcp-Name header {h:?} does not match the body's {expected:?}"
                )))
            }
            _ => {}
        }
    }
    let body_version = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(protocol::META_VERSION))
        .and_then(Value::as_str);
    if let Some(bv) = body_version.filter(|bv| *bv != version) {
        return Err(mismatch(format!(
            "MCP-Protocol-Version header {version:?} does not match _meta version {bv:?}"
        )));
    }
    Ok(())
}

/// Decodes `=?base64?…?=` header values (used for non-ASCII names).
fn decode_header_value(v: &str) -> String {
    v.strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
        .and_then(crate::codec::base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| v.to_owned())
}

/// One message: notifications get 202; requests a JSON response, or SSE if they take long or
/// report progress. In the modern era a client that disconnects cancels its request.
async fn one(
    state: &Arc<State>,
    headers: &HeaderMap,
    value: Value,
    origin: impl FnOnce(Notifier) -> Origin,
    cancel_on_disconnect: bool,
) -> Response<Body> {
    let (id, method, params) = match classify(value) {
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
    let server = state.server.clone();
    let limit = Duration::from_millis(state.config.request_timeout_ms);
    let timeout_id = id.clone();
    let mut call = crate::runtime::spawn_here(async move {
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
    });
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
            // Notifications sent just before the call finished still go first.
            let mut pending = Vec::new();
            while let Ok(n) = nrx.try_recv() {
                pending.push(n);
            }
            match joined {
                Ok(Some(body)) if pending.is_empty() || !sse_ok => {
                    json_response(StatusCode::OK, body)
                }
                Ok(Some(body)) => {
                    pending.push(body);
                    let events: String = pending.iter().map(|m| sse_event(m)).collect();
                    Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "text/event-stream")
                        .header("cache-control", "no-store")
                        .body(BodyExt::boxed(Full::new(Bytes::from(events))))
                        .expect("valid response")
                }
                Ok(None) => status(StatusCode::ACCEPTED, ""),
                Err(e) => rpc_status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL_ERROR,
                    format!("request failed: {e}"),
                ),
            }
        }
        None => sse(call, nrx, None, cancel, guard),
    }
}

/// Streams notifications, keep-alives and finally the response as server-sent events.
fn sse(
    call: tokio::task::JoinHandle<Option<String>>,
    mut notes: mpsc::UnboundedReceiver<String>,
    first: Option<String>,
    cancel: CancellationToken,
    guard: Option<tokio_util::sync::DropGuard>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let cancel_on_close = guard.is_some();
        if let Some(g) = guard {
            g.disarm();
        }
        let event = |data: &str| Bytes::from(sse_event(data));
        if let Some(n) = first {
            if tx.send(event(&n)).await.is_err() && cancel_on_close {
                cancel.cancel();
            }
        }
        let mut call = call;
        let mut keepalive = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                r = &mut call => {
                    while let Ok(n) = notes.try_recv() {
                        let _ = tx.send(event(&n)).await;
                    }
                    if let Ok(Some(body)) = r {
                        let _ = tx.send(event(&body)).await;
                    }
                    return;
                }
                Some(n) = notes.recv() => {
                    if tx.send(event(&n)).await.is_err() && cancel_on_close {
                        cancel.cancel();
                    }
                }
                _ = keepalive.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() && cancel_on_close {
                        cancel.cancel();
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// A legacy batch: every request answered, in one JSON array.
async fn batch_response(
    state: &Arc<State>,
    batch: Vec<Value>,
    origin: impl Fn(Notifier) -> Origin,
) -> Response<Body> {
    let mut parts = Vec::new();
    for value in batch {
        match classify(value) {
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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True if the `Accept` header value lets the client take `media` (`type/subtype`, lower
/// case): a media range naming it, or `type/*`, or (with `wildcard`) `*/*`, with a non-zero
/// `q`. Parameters other than `q` are ignored.
fn accepts(accept: &str, media: &str, wildcard: bool) -> bool {
    let main_type = media.split('/').next().unwrap_or(media);
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let matches = name == media
            || name.strip_suffix("/*") == Some(main_type)
            || (wildcard && name == "*/*");
        matches && quality > 0.0
    })
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// One server-sent event carrying `data`, one `data:` line per line of it.
fn sse_event(data: &str) -> String {
    let mut event = String::with_capacity(data.len() + 24);
    event.push_str("event: message\n");
    for line in data.split('\n') {
        event.push_str("data: ");
        event.push_str(line.strip_suffix('\r').unwrap_or(line));
        event.push('\n');
    }
    event.push('\n');
    event
}

/// Loopback names (any port) and the configured extra hosts.
fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = strip_port(host);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "::1")
        || extra.iter().any(|h| h == host || h == name)
}

fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        return hostport
            .split_once(']')
            .map_or(hostport, |(h, _)| &hostport[..h.len() + 1]);
    }
    hostport.rsplit_once(':').map_or(hostport, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            hostport
        }
    })
}

fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    if extra.iter().any(|o| o == origin) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    matches!(strip_port(rest), "localhost" | "127.0.0.1" | "[::1]")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn empty() -> Body {
    BodyExt::boxed(Full::new(Bytes::new()))
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body))))
        .expect("valid response")
}

fn status(status: StatusCode, text: &str) -> Response<Body> {
    let mut b = Response::builder().status(status);
    if !text.is_empty() {
        b = b.header("content-type", "text/plain; charset=utf-8");
    }
    b.body(BodyExt::boxed(Full::new(Bytes::from(text.to_owned()))))
        .expect("valid response")
}

/// A transport-level refusal with a JSON-RPC error body.
fn rpc_status(status: StatusCode, code: i32, message: String) -> Response<Body> {
    json_response(
        status,
        error_response(&Value::Null, &WireError::new(code, message)),
    )
}

fn too_large(max: usize) -> Response<Body> {
    rpc_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::INVALID_REQUEST,
        format!("request body exceeds {max} bytes"),
    )
}

/// 408 for a body slower than the floor; the connection is closed after it.
fn too_slow(config: &HttpConfig, received: usize, elapsed_ms: u64) -> Response<Body> {
    let mut resp = rpc_status(
        StatusCode::REQUEST_TIMEOUT,
        code::INVALID_REQUEST,
        format!(
            "request body too slow: {received} bytes in {elapsed_ms} ms; a body must arrive within {} ms plus one second per {} bytes",
            config.body_timeout_ms, config.body_min_rate
        ),
    );
    resp.headers_mut()
        .insert("connection", HeaderValue::from_static("close"));
    resp
}

trait WithAllow {
    fn with_allow(self) -> Self;
}

impl WithAllow for Response<Body> {
    fn with_allow(mut self) -> Self {
        self.headers_mut()
            .insert("allow", HeaderValue::from_static("POST, DELETE"));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
