//! The JSON-RPC envelope, shared by every transport: parse, validate, resolve the era, call
//! the method through jsonrpsee's method table with the request's context, and render the
//! response (or nothing, for notifications and cancelled requests).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use jsonrpsee::core::server::MethodCallback;
use jsonrpsee::types::{Id, Params};
use jsonrpsee::{ConnectionId, Extensions};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::{CallCtx, Notifier};
use super::protocol::{self, code, envelope, Envelope, Era, WireError};
use super::McpServer;
use crate::runtime::Via;
use crate::Owner;

/// One parsed JSON-RPC message.
#[derive(Debug)]
pub(crate) enum Message {
    /// A request, to be answered.
    Request {
        /// Its id (string or non-negative integer).
        id: Value,
        /// The method.
        method: String,
        /// Its params, if any.
        params: Option<Value>,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: String,
        /// Its params, if any.
        params: Option<Value>,
    },
    /// A response from the client (to a request we never send): ignored.
    Response,
}

/// State of one protocol connection: a stdio client, or a legacy HTTP session.
#[derive(Debug, Default)]
pub struct ConnState {
    /// The negotiated legacy version, once `initialize` ran.
    version: Mutex<Option<&'static str>>,
    /// Least severe level for log notifications (index into the level list), +1; 0 = none.
    log_level: AtomicUsize,
    /// Requests in flight, by id, for `notifications/cancelled`.
    inflight: Mutex<HashMap<String, CancellationToken>>,
    /// Where notifications that belong to no request go (resource updates, task status):
    /// the stdio connection (not held open by this), or an HTTP session's event stream.
    sink: Notifier,
    /// Live resource subscriptions (`resources/subscribe`), by uri.
    subscriptions: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.end_subscriptions();
    }
}

impl ConnState {
    /// A connection whose notifications outside requests go to `sink`.
    pub(crate) fn with_sink(sink: Notifier) -> Self {
        let mut conn = Self::default();
        conn.sink = sink.detached();
        conn
    }

    /// Where notifications outside requests go.
    pub(crate) fn sink(&self) -> &Notifier {
        &self.sink
    }

    /// Keeps the task `watcher` of a subscription to `uri` (ending one it replaces).
    pub(crate) fn subscribe(&self, uri: String, watcher: tokio::task::AbortHandle) {
        if let Some(old) = self.subscriptions.lock().insert(uri, watcher) {
            old.abort();
        }
    }

    /// Ends the subscription to `uri`; false when there was none.
    pub(crate) fn unsubscribe(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .remove(uri)
            .map(|w| w.abort())
            .is_some()
    }

    /// Ends every subscription (the connection closes).
    pub(crate) fn end_subscriptions(&self) {
        for (_, w) in self.subscriptions.lock().drain() {
            w.abort();
        }
    }

    /// The negotiated version, if the handshake happened.
    pub fn version(&self) -> Option<&'static str> {
        *self.version.lock()
    }

    /// The handshake era at the negotiated version, or the newest before a handshake.
    pub(crate) fn legacy_era(&self) -> Era {
        Era::Legacy(self.version().unwrap_or(protocol::NEWEST_LEGACY))
    }

    pub(crate) fn set_version(&self, v: &'static str) {
        *self.version.lock() = Some(v);
    }

    pub(crate) fn set_log_level(&self, rank: usize) {
        self.log_level.store(rank + 1, Ordering::Relaxed);
    }

    fn log_level(&self) -> Option<usize> {
        self.log_level.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Cancels the in-flight request `id`; false when there is none.
    pub(crate) fn cancel(&self, id: &Value) -> bool {
        match self.inflight.lock().remove(&id_key(id)) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Where a request comes from and how to answer it.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The principal.
    pub(crate) owner: Owner,
    /// The transport, named in sessions' audit trails.
    pub(crate) via: Via,
    /// The connection (stdio) or legacy HTTP session, if any.
    pub(crate) conn: Option<Arc<ConnState>>,
    /// The era the transport resolved (HTTP resolves from headers; stdio from the connection).
    pub(crate) era: Era,
    /// Notifications back to the client.
    pub(crate) notify: Notifier,
    /// Cancels this request (a modern HTTP client that disconnects).
    pub(crate) cancel: CancellationToken,
}

/// Parses one JSON value into a message, or the error to answer with (and the id, if known).
pub(crate) fn classify(value: Value) -> Result<Message, (WireError, Value)> {
    let Value::Object(mut obj) = value else {
        return Err((
            WireError::new(
                code::INVALID_REQUEST,
                "a JSON-RPC message must be an object",
            ),
            Value::Null,
        ));
    };
    let id = obj.remove("id");
    let id_for_error = id.clone().filter(valid_id).unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        let msg = "\"jsonrpc\" must be \"2.0\"";
        return Err((WireError::new(code::INVALID_REQUEST, msg), id_for_error));
    }
    let params = obj.remove("params");
    if params
        .as_ref()
        .is_some_and(|p| !p.is_object() && !p.is_array())
    {
        return Err((
            WireError::new(code::INVALID_REQUEST, "\"params\" must be an object"),
            id_for_error,
        ));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err((
                WireError::new(code::INVALID_REQUEST, "\"method\" must be a string"),
                id_for_error,
            ))
        }
        None if obj.contains_key("result") || obj.contains_key("error") => {
            return Ok(Message::Response)
        }
        None => {
            return Err((
                WireError::new(code::INVALID_REQUEST, "missing \"method\""),
                id_for_error,
            ))
        }
    };
    match id {
        None => Ok(Message::Notification { method, params }),
        Some(id) if valid_id(&id) => Ok(Message::Request { id, method, params }),
        Some(_) => Err((
            WireError::new(
                code::INVALID_REQUEST,
                "\"id\" must be a string or a non-negative integer",
            ),
            Value::Null,
        )),
    }
}

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.as_u64().is_some()
}

fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders an error response.
pub(crate) fn error_response(id: &Value, err: &WireError) -> String {
    let mut error = json!({ "code": err.code, "message": err.message });
    if let Some(data) = &err.data {
        error["data"] = data.clone();
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error }).to_string()
}

impl McpServer {
    /// Handles a notification from the client.
    pub(crate) fn notification(
        &self,
        method: &str,
        params: Option<&Value>,
        conn: Option<&ConnState>,
    ) {
        match method {
            "notifications/cancelled" => {
                if let (Some(conn), Some(id)) = (conn, params.and_then(|p| p.get("requestId"))) {
                    if conn.cancel(id) {
                        tracing::debug!(request = %id, "request cancelled by the client");
                    }
                }
            }
            "notifications/initialized"
            | "notifications/progress"
            | "notifications/roots/list_changed" => {}
            other => tracing::debug!(method = other, "ignoring notification"),
        }
    }

    /// Runs one request; `None` when no response may be sent (the client cancelled it).
    pub(crate) async fn request(
        &self,
        id: Value,
        method: String,
        params: Option<Value>,
        origin: Origin,
    ) -> Option<String> {
        if origin.era.is_modern() && method == "initialize" {
            // A stateless connection does not take a handshake.
            let requested = params
                .as_ref()
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Some(error_response(
                &id,
                &protocol::unsupported_version(requested),
            ));
        }
        let (era, log_level, client_tasks) = match request_era(&origin, &method, params.as_ref()) {
            Ok(resolved) => resolved,
            Err(e) => return Some(error_response(&id, &e)),
        };
        let progress_token = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .cloned();
        let cancel = origin.cancel.child_token();
        let key = id_key(&id);
        if let Some(conn) = &origin.conn {
            conn.inflight.lock().insert(key.clone(), cancel.clone());
        }
        let ctx = CallCtx {
            handle: self
                .handle()
                .with_owner(origin.owner.clone())
                .with_via(origin.via),
            era,
            notify: origin.notify.clone(),
            progress_token,
            log_level,
            cancel: cancel.clone(),
            client_tasks,
            as_task: false,
            request_id: id.clone(),
        };
        let response = self
            .call_method(&id, &method, params, ctx, origin.conn.clone())
            .await;
        if let Some(conn) = &origin.conn {
            conn.inflight.lock().remove(&key);
        }
        (!cancel.is_cancelled()).then_some(response)
    }

    /// Calls `method` from jsonrpsee's method table with the context in its extensions.
    async fn call_method(
        &self,
        id: &Value,
        method: &str,
        params: Option<Value>,
        ctx: CallCtx,
        conn: Option<Arc<ConnState>>,
    ) -> String {
        let Some(callback) = self.inner.module.method(method) else {
            return error_response(
                id,
                &WireError::new(
                    code::METHOD_NOT_FOUND,
                    format!("method not found: {method}"),
                ),
            );
        };
        let rpc_id = match id {
            Value::String(s) => Id::Str(s.clone().into()),
            other => Id::Number(other.as_u64().unwrap_or_default()),
        };
        let raw = params.map(|p| p.to_string());
        let mut ext = Extensions::new();
        ext.insert(ctx);
        if let Some(conn) = conn {
            ext.insert(conn);
        }
        let response = match callback {
            MethodCallback::Async(cb) => {
                let params = Params::new(raw.as_deref()).into_owned();
                cb(rpc_id, params, ConnectionId(0), usize::MAX, ext).await
            }
            MethodCallback::Sync(cb) => cb(rpc_id, Params::new(raw.as_deref()), usize::MAX, ext),
            _ => {
                return error_response(
                    id,
                    &WireError::new(
                        code::METHOD_NOT_FOUND,
                        format!("method not found: {method}"),
                    ),
                )
            }
        };
        // The response is already one JSON string: taken as it is, not copied.
        String::from(Box::<str>::from(response.into_json()))
    }
}

/// The era a request runs in, its log level, and whether the client declared the tasks
/// extension on it: from its `_meta` envelope on a modern connection (which must carry one,
/// except for `server/discover`), from the connection on a legacy one (which must not).
fn request_era(
    origin: &Origin,
    method: &str,
    params: Option<&Value>,
) -> Result<(Era, Option<usize>, bool), WireError> {
    let envelope = envelope(params)?;
    match (&origin.era, envelope) {
        (
            Era::Modern(_),
            Envelope::Modern {
                version,
                log_level,
                tasks,
            },
        ) => {
            let rank = log_level.as_deref().and_then(protocol::log_rank);
            Ok((Era::Modern(version), rank, tasks))
        }
        (Era::Modern(v), Envelope::None) if method != "server/discover" => {
            let msg = format!(
                "protocol version {v} requires params._meta with {} and {}",
                protocol::META_VERSION,
                protocol::META_CAPABILITIES
            );
            Err(WireError::new(code::INVALID_PARAMS, msg))
        }
        (Era::Legacy(_), Envelope::Modern { .. }) if method != "server/discover" => {
            let msg = "this connection negotiated a handshake-era protocol; _meta protocolVersion is not accepted here";
            Err(WireError::new(code::INVALID_REQUEST, msg))
        }
        (era, _) => Ok((
            era.clone(),
            origin.conn.as_ref().and_then(|c| c.log_level()),
            false,
        )),
    }
}
