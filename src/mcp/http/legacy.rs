//! The handshake era over HTTP: `initialize` issues an `Mcp-Session-Id`, later requests
//! must carry it, DELETE ends it, idle ones expire and take their sessions along.

use super::*;

/// Drops legacy protocol sessions idle for longer than the configured time, ending the
/// stablehand sessions only they could reach.
pub(super) async fn expire_sessions(state: std::sync::Weak<HttpState>) {
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
            close_stream(&s);
            tracing::info!(owner = %s.owner, "protocol session expired");
            end_owned(&state, &s).await;
        }
    }
}

/// Ends the GET stream of a protocol session that is gone.
fn close_stream(session: &LegacySession) {
    if let Some(events) = session.conn.sink().events() {
        events.close();
    }
}

/// Ends every session of a protocol session that is its own principal. Other owners (a
/// token's principal, the local principal) outlive their protocol sessions.
pub(super) async fn end_owned(state: &HttpState, session: &LegacySession) {
    if !session.own_principal {
        return;
    }
    let handle = state.server.handle().with_owner(session.owner.clone());
    if let Ok(list) = handle.list(&crate::registry::ListRequest {
        limit: Some(crate::registry::MAX_LIMIT),
        ..Default::default()
    }) {
        for s in list.sessions.iter().filter(|s| s.state.is_live()) {
            let _ = handle.end(s.session_id, Default::default()).await;
        }
    }
}

pub(super) async fn get_or_delete(
    state: &Arc<HttpState>,
    req: &Request<Incoming>,
) -> Response<Body> {
    let version = header(req.headers(), "mcp-protocol-version");
    if version.is_some_and(|v| protocol::known_legacy(v).is_none()) {
        // Modern: POST only (a subscription is a subscriptions/listen POST).
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
            format!("{} needs an Mcp-Session-Id header", req.method()),
        );
    };
    if req.method() == Method::GET {
        return get_stream(state, req.headers(), sid);
    }
    let removed = state.sessions.write().remove(sid);
    match removed {
        Some(s) => {
            close_stream(&s);
            end_owned(state, &s).await;
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(empty())
                .expect("valid response")
        }
        None => unknown_sid(sid),
    }
}

/// The standalone GET stream of protocol session `sid`: its notifications outside requests
/// (resource updates, task status) as numbered events, first those after `Last-Event-ID`
/// that are still kept, then live ones. A new stream takes over from an older one.
fn get_stream(state: &Arc<HttpState>, headers: &HeaderMap, sid: &str) -> Response<Body> {
    if !header(headers, "accept").is_some_and(|a| accepts(a, "text/event-stream", false)) {
        return rpc_status(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "GET opens an event stream: send Accept: text/event-stream".into(),
        );
    }
    let Some(session) = state.sessions.read().get(sid).cloned() else {
        return unknown_sid(sid);
    };
    let Some(events) = session.conn.sink().events().cloned() else {
        return status(StatusCode::METHOD_NOT_ALLOWED, "no event stream here").with_allow();
    };
    let resume = header(headers, "last-event-id").and_then(|v| v.trim().parse::<u64>().ok());
    let ticket = events.attach();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let state = Arc::clone(state);
    crate::runtime::spawn_here(async move {
        // A client that loses the stream should come back soon, with Last-Event-ID.
        if tx
            .send(Bytes::from_static(b"retry: 3000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut cursor = resume;
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        loop {
            let changed = events.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !events.is_attached(ticket) {
                return; // a newer stream took over
            }
            for (id, message) in events.after(cursor) {
                let event = format!("id: {id}\n{}", sse_event(&message));
                if tx.send(Bytes::from(event)).await.is_err() {
                    return;
                }
                cursor = Some(id);
            }
            // An open stream keeps its protocol session alive.
            session.last_seen.store(state.now_ms(), Ordering::Relaxed);
            tokio::select! {
                () = &mut changed => {}
                _ = keepalive.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    event_stream_response(rx)
}

pub(super) async fn legacy(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    wire: Wire,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let wire = match wire {
        Wire::One(m) if m.method() == Some("initialize") => {
            // Boxed, as the other rare branches: an exec's request future stays small, and it
            // is moved into place on every request.
            return Box::pin(initialize(state, m, token_owner)).await;
        }
        other => other,
    };
    let Some(sid) = header(headers, "mcp-session-id") else {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "missing Mcp-Session-Id header: send initialize first and echo the id it returns"
                .into(),
        );
    };
    let Some(session) = state.sessions.read().get(sid).cloned() else {
        return unknown_sid(sid);
    };
    session.last_seen.store(state.now_ms(), Ordering::Relaxed);
    let era = session.conn.legacy_era();
    let origin = |notify| Origin {
        via: Via::Http,
        owner: session.owner.clone(),
        conn: Some(Arc::clone(&session.conn)),
        era: era.clone(),
        notify,
        cancel: CancellationToken::new(),
    };
    match wire {
        Wire::Batch(batch) if era.allows_batches() && !batch.is_empty() => {
            Box::pin(batch_response(state, batch, origin)).await
        }
        Wire::Batch(_) => rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!(
                "JSON-RPC batches are not supported in protocol version {}",
                era.version()
            ),
        ),
        Wire::One(single) => one(state, headers, single, origin, false).await,
    }
}

/// 404 for an `Mcp-Session-Id` this node does not hold (a handshake-era client initializes
/// again), naming the node that issued it when it is another one.
fn unknown_sid(sid: &str) -> Response<Body> {
    let message = match crate::model::node::elsewhere(sid) {
        Some(node) => format!(
            "Mcp-Session-Id {sid:?} was issued by node {node}, not by this node ({}): requests \
             with it go to node {node} (a proxy routes them by its prefix); or initialize again",
            crate::model::node::id()
        ),
        None => format!("unknown or expired Mcp-Session-Id {sid:?}; initialize again"),
    };
    rpc_status(StatusCode::NOT_FOUND, code::INVALID_REQUEST, message)
}

pub(super) async fn initialize(
    state: &Arc<HttpState>,
    message: Received,
    token_owner: Option<Owner>,
) -> Response<Body> {
    // The node first, so a proxy can route the protocol session's requests by prefix.
    let sid = crate::model::node::prefixed(uuid::Uuid::new_v4().simple());
    let anonymous = state.access.current().anonymous;
    let own_principal = token_owner.is_none() && anonymous == Anonymous::PerConnection;
    let owner = match token_owner {
        Some(owner) => owner,
        None if own_principal => Owner::new(format!("http-session:{sid}")),
        None => Owner::default(),
    };
    let session = Arc::new(LegacySession {
        conn: Arc::new(ConnState::with_sink(Notifier::stream(Arc::default()))),
        owner,
        own_principal,
        last_seen: AtomicU64::new(state.now_ms()),
    });
    let origin = Origin {
        via: Via::Http,
        owner: session.owner.clone(),
        conn: Some(Arc::clone(&session.conn)),
        era: Era::Legacy(protocol::NEWEST_LEGACY),
        notify: Notifier::none(),
        cancel: CancellationToken::new(),
    };
    let (id, method, params) = match classify(message) {
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
