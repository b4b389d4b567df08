//! The JSON-RPC envelope, shared by every transport: parse, validate, resolve the era, call
//! the method through jsonrpsee's method table with the request's context, and render the
//! response (or nothing, for notifications and cancelled requests).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use jsonrpsee::core::server::MethodCallback;
use jsonrpsee::types::{Id, Params as RpcParams};
use jsonrpsee::{ConnectionId, Extensions};
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::{CallCtx, Notifier};
use super::protocol::{self, code, envelope, Envelope, Era, WireError};
use super::McpServer;
use crate::runtime::Via;
use crate::Owner;

/// What a transport read: one message, or a batch of them.
#[derive(Debug)]
pub(crate) enum Wire {
    /// One message.
    One(Received),
    /// A JSON array of messages (answered as one array, where the era allows batches).
    Batch(Vec<Received>),
}

impl Wire {
    /// Parses one transport message (an HTTP body, a stdio line). Only the envelope is
    /// parsed: `params` stay text, which the method parses once into its own types (a
    /// `serde_json::Value` tree of them, built and serialized again for jsonrpsee, was
    /// most of the envelope's cost per call). Malformed JSON is a parse error (-32700).
    pub(crate) fn parse(text: &[u8]) -> Result<Self, WireError> {
        let parse_error =
            |e: serde_json::Error| WireError::new(code::PARSE_ERROR, format!("invalid JSON: {e}"));
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_slice(text).map_err(parse_error)?;
                Ok(Self::Batch(
                    items.into_iter().map(|i| Received::of(i.get())).collect(),
                ))
            }
            _ => {
                let one: &RawValue = serde_json::from_slice(text).map_err(parse_error)?;
                Ok(Self::One(Received::of(one.get())))
            }
        }
    }
}

/// One JSON-RPC message as it arrived: the members of its envelope, and its params as text.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Why it cannot be a JSON-RPC message (it is not an object, or a member has a shape
    /// no message has), if so.
    malformed: Option<String>,
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Box<RawValue>>,
    /// The members of `params` the envelope reads, parsed once, on arrival (boxed: most of
    /// a message's size, and a message without params has none).
    head: Option<Box<ParamsHead>>,
    /// It has `result` or `error`: a response.
    answer: bool,
}

/// The members of a message, as serde reads them; a member that is present stays `Some`,
/// even when it is `null`.
#[derive(Deserialize)]
struct Members {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    error: Option<serde::de::IgnoredAny>,
}

/// `Some` for a member that is present, `null` included.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl Received {
    /// The message in `text`, which is valid JSON.
    fn of(text: &str) -> Self {
        if !text.starts_with('{') {
            return Self::malformed("a JSON-RPC message must be an object".into());
        }
        match serde_json::from_str::<Members>(text) {
            Ok(m) => Self {
                malformed: None,
                jsonrpc: m.jsonrpc,
                id: m.id,
                method: m.method,
                head: m.params.as_deref().map(|p| Box::new(ParamsHead::of(p))),
                params: m.params,
                answer: m.result.is_some() || m.error.is_some(),
            },
            // Valid JSON of a shape no message has (a member given twice).
            Err(e) => Self::malformed(e.to_string()),
        }
    }

    fn malformed(why: String) -> Self {
        Self {
            malformed: Some(why),
            ..Self::default()
        }
    }

    /// Its method, if it names one.
    pub(crate) fn method(&self) -> Option<&str> {
        self.method.as_ref().and_then(Value::as_str)
    }

    /// Its id as sent (`null` when it has none), for an error that refuses it before it
    /// is classified.
    pub(crate) fn id(&self) -> &Value {
        self.id.as_ref().unwrap_or(&Value::Null)
    }

    /// The members of its params that the envelope reads (none when they are not an
    /// object).
    pub(crate) fn head(&self) -> &ParamsHead {
        static NONE: ParamsHead = ParamsHead {
            meta: None,
            name: None,
            uri: None,
            task_id: None,
            request_id: None,
            protocol_version: None,
            arguments: ArgumentsHead { session_id: None },
        };
        self.head.as_deref().unwrap_or(&NONE)
    }
}

/// A message's params: the text, handed to the method as it came, and the members the
/// envelope reads, parsed from it once.
#[derive(Debug)]
pub(crate) struct Params {
    raw: Box<RawValue>,
    /// The members the envelope reads.
    pub(crate) head: ParamsHead,
}

/// The members of params that the protocol layer reads (the method parses the rest).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ParamsHead {
    /// `_meta`: the 2026-07-28 envelope, a progress token.
    #[serde(rename = "_meta", default)]
    pub(crate) meta: Option<Value>,
    /// A tool or prompt name.
    #[serde(default)]
    pub(crate) name: Option<Value>,
    /// A resource uri.
    #[serde(default)]
    pub(crate) uri: Option<Value>,
    /// A task id.
    #[serde(rename = "taskId", default)]
    pub(crate) task_id: Option<Value>,
    /// The request a `notifications/cancelled` cancels.
    #[serde(rename = "requestId", default)]
    pub(crate) request_id: Option<Value>,
    /// The revision an `initialize` asks for.
    #[serde(rename = "protocolVersion", default)]
    pub(crate) protocol_version: Option<Value>,
    /// A tool call's `session_id` argument.
    #[serde(default)]
    pub(crate) arguments: ArgumentsHead,
}

impl ParamsHead {
    fn of(raw: &RawValue) -> Self {
        if !raw.get().starts_with('{') {
            return Self::default();
        }
        // Whatever its members hold, params that are an object have a head: a member of
        // another type than expected reads as absent, as the method will then say.
        serde_json::from_str(raw.get()).unwrap_or_default()
    }

    /// `_meta.<key>`.
    pub(crate) fn meta(&self, key: &str) -> Option<&Value> {
        self.meta.as_ref().and_then(|m| m.get(key))
    }
}

/// A tool call's `session_id` argument, read from `arguments` whatever they hold (the tool
/// refuses arguments that are not an object).
#[derive(Debug, Default)]
pub(crate) struct ArgumentsHead {
    /// `arguments.session_id`, when `arguments` is an object that has one.
    pub(crate) session_id: Option<Value>,
}

impl<'de> Deserialize<'de> for ArgumentsHead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ArgumentsHead;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ArgumentsHead, A::Error> {
                let mut head = ArgumentsHead::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "session_id" {
                        head.session_id = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(head)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ArgumentsHead, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(ArgumentsHead::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
            fn visit_unit<E>(self) -> Result<ArgumentsHead, E> {
                Ok(ArgumentsHead::default())
            }
        }
        d.deserialize_any(Visit)
    }
}

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
        params: Option<Params>,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: String,
        /// Its params, if any.
        params: Option<Params>,
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

/// Validates one message's envelope: the message, or the error to answer with (and the
/// id, if known).
pub(crate) fn classify(message: Received) -> Result<Message, (WireError, Value)> {
    if let Some(why) = message.malformed {
        return Err((WireError::new(code::INVALID_REQUEST, why), Value::Null));
    }
    let id = message.id;
    let id_for_error = id.clone().filter(valid_id).unwrap_or(Value::Null);
    if message.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        let msg = "\"jsonrpc\" must be \"2.0\"";
        return Err((WireError::new(code::INVALID_REQUEST, msg), id_for_error));
    }
    let params = message.params;
    if params
        .as_ref()
        .is_some_and(|p| !p.get().starts_with('{') && !p.get().starts_with('['))
    {
        return Err((
            WireError::new(code::INVALID_REQUEST, "\"params\" must be an object"),
            id_for_error,
        ));
    }
    let params = params.map(|raw| Params {
        raw,
        head: message.head.map(|h| *h).unwrap_or_default(),
    });
    let method = match message.method {
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err((
                WireError::new(code::INVALID_REQUEST, "\"method\" must be a string"),
                id_for_error,
            ))
        }
        None if message.answer => return Ok(Message::Response),
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
        params: Option<&Params>,
        conn: Option<&ConnState>,
    ) {
        match method {
            "notifications/cancelled" => {
                let id = params.and_then(|p| p.head.request_id.as_ref());
                if let (Some(conn), Some(id)) = (conn, id) {
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
        params: Option<Params>,
        origin: Origin,
    ) -> Option<String> {
        let head = params.as_ref().map(|p| &p.head);
        if origin.era.is_modern() && method == "initialize" {
            // A stateless connection does not take a handshake.
            let requested = head
                .and_then(|h| h.protocol_version.as_ref())
                .and_then(Value::as_str)
                .unwrap_or("");
            return Some(error_response(
                &id,
                &protocol::unsupported_version(requested),
            ));
        }
        let meta = head.and_then(|h| h.meta.as_ref());
        let (era, log_level, client_tasks) = match request_era(&origin, &method, meta) {
            Ok(resolved) => resolved,
            Err(e) => return Some(error_response(&id, &e)),
        };
        let progress_token = head.and_then(|h| h.meta("progressToken")).cloned();
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
        params: Option<Params>,
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
        // The params as they came: jsonrpsee hands them to the method, which parses them.
        let raw = params.map(|p| p.raw);
        let raw = raw.as_deref().map(RawValue::get);
        let mut ext = Extensions::new();
        ext.insert(ctx);
        if let Some(conn) = conn {
            ext.insert(conn);
        }
        let response = match callback {
            MethodCallback::Async(cb) => {
                let params = RpcParams::new(raw).into_owned();
                cb(rpc_id, params, ConnectionId(0), usize::MAX, ext).await
            }
            MethodCallback::Sync(cb) => cb(rpc_id, RpcParams::new(raw), usize::MAX, ext),
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
    meta: Option<&Value>,
) -> Result<(Era, Option<usize>, bool), WireError> {
    let envelope = envelope(meta)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Message, (WireError, Value)> {
        match Wire::parse(text.as_bytes()).expect("valid JSON") {
            Wire::One(m) => classify(m),
            Wire::Batch(_) => panic!("not a batch: {text}"),
        }
    }

    #[test]
    fn a_request_keeps_its_params_as_text_and_reads_the_envelope_s_members() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":
            {"name":"session_exec","arguments":{"session_id":"s-1","input":"echo {\"a\"}"},
             "_meta":{"progressToken":3}}}"#;
        let Ok(Message::Request { id, method, params }) = one(text) else {
            panic!("a request");
        };
        assert_eq!((id, method.as_str()), (json!(7), "tools/call"));
        let params = params.expect("params");
        let back: Value = serde_json::from_str(params.raw.get()).unwrap();
        assert_eq!(
            back["arguments"]["input"], "echo {\"a\"}",
            "handed on as sent"
        );
        assert_eq!(params.head.name, Some(json!("session_exec")));
        assert_eq!(params.head.arguments.session_id, Some(json!("s-1")));
        assert_eq!(params.head.meta("progressToken"), Some(&json!(3)));
    }

    #[test]
    fn malformed_envelopes_are_refused_naming_what_is_wrong() {
        let refused = |text: &str| one(text).map(|_| ()).unwrap_err();
        let (e, id) = refused("5");
        assert_eq!((e.code, id), (code::INVALID_REQUEST, Value::Null));
        assert!(e.message.contains("must be an object"), "{}", e.message);
        let (e, id) = refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":null}"#);
        assert!(e.message.contains("params"), "{}", e.message);
        assert_eq!(id, json!(1), "the id is kept for the answer");
        let (e, _) = refused(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert!(e.message.contains("\"id\""), "{}", e.message);
        let (e, _) = refused(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#);
        assert!(e.message.contains("2.0"), "{}", e.message);
        let (e, _) = refused(r#"{"jsonrpc":"2.0","id":1,"method":5}"#);
        assert!(e.message.contains("method"), "{}", e.message);
        let (e, _) = refused(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#);
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Message::Response)
        ));
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Message::Notification { params: None, .. })
        ));
        let err = Wire::parse(b"{\"jsonrpc\":").unwrap_err();
        assert_eq!(err.code, code::PARSE_ERROR);
        assert_eq!(Wire::parse(b"{} x").unwrap_err().code, code::PARSE_ERROR);
    }

    #[test]
    fn params_of_any_shape_have_a_head_and_a_batch_keeps_its_order() {
        let head = |params: &str| {
            let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{params}}}"#);
            match one(&text) {
                Ok(Message::Request { params, .. }) => params.expect("params").head,
                other => panic!("{other:?}"),
            }
        };
        assert!(
            head(r#"["a", {"name": "x"}]"#).name.is_none(),
            "an array has no members"
        );
        let h = head(r#"{"name": 5, "arguments": "not an object", "_meta": []}"#);
        assert_eq!(h.name, Some(json!(5)), "the method refuses it, naming it");
        assert!(h.arguments.session_id.is_none());
        assert!(h.meta("progressToken").is_none());
        let Ok(Wire::Batch(batch)) = Wire::parse(br#" [{"id":1}, 2, {"id":3}] "#) else {
            panic!("a batch");
        };
        let ids: Vec<Value> = batch.iter().map(|m| m.id().clone()).collect();
        assert_eq!(ids, [json!(1), Value::Null, json!(3)]);
    }
}
