//! Live updates: a session's transcript and state resources, and tasks, as they change.
//!
//! Handshake era: `resources/subscribe` and `resources/unsubscribe` of
//! `stablehand://sessions/{id}/transcript` or `/state`; `notifications/resources/updated`
//! goes where the connection's notifications outside requests go (stdio, or an HTTP
//! session's GET stream). 2026-07-28: `subscriptions/listen` names the resources (and, with
//! the tasks extension, the tasks) to follow; the first message on its stream is
//! `notifications/subscriptions/acknowledged`, every one is tagged with the listen request's
//! id, and the stream lasts until the client closes it.
//!
//! Updates are coalesced: at most one per resource per [`COALESCE`]; the change that comes
//! during the pause is reported at its end, so the last change is never lost.

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::Extensions;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::context::Notifier;
use super::dispatch::ConnState;
use super::params::{ctx, finish, parse, rpc_error};
use super::protocol::{self, code, Cache, Era, WireError};
use crate::ids::{Owner, TaskId};
use crate::{Handle, SessionId};

/// At most one update per resource in this time.
pub(super) const COALESCE: Duration = Duration::from_millis(100);

/// `_meta` key tagging a notification with its `subscriptions/listen` request.
const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

type RpcResult = Result<Value, ErrorObjectOwned>;

/// The changes of the session a subscribable resource names (watched from now on: a change
/// right after this returns is seen), or the era's not-found error.
fn session_of(handle: &Handle, uri: &str, era: &Era) -> Result<Changes, WireError> {
    let not_found = |why: &str| {
        WireError::new(
            era.resource_not_found(),
            format!("cannot subscribe to {uri}: {why}"),
        )
        .with_data(json!({ "uri": uri }))
    };
    let rest = uri.strip_prefix("stablehand://sessions/").ok_or_else(|| {
        not_found("only stablehand://sessions/{session_id}/transcript and /state can be followed")
    })?;
    if let Some(e) = rest
        .split_once('/')
        .and_then(|(id, _)| crate::Error::wrong_node(id))
    {
        return Err(not_found(&e.to_string()));
    }
    let id = match rest.split_once('/') {
        Some((id, "transcript" | "state")) => id.parse::<SessionId>().ok(),
        _ => None,
    }
    .ok_or_else(|| not_found("not a session's transcript or state"))?;
    handle
        .changes(id)
        .map_err(|_| not_found("no such session of yours"))
}

/// A session's change counter (see `Handle::changes`).
type Changes = tokio::sync::watch::Receiver<u64>;

/// Calls `emit` after each change seen on `changes` — at most once per [`COALESCE`] — until
/// the session is purged or `emit` says the client is gone.
async fn follow_session(mut changes: Changes, mut emit: impl FnMut() -> bool) {
    let mut last: Option<Instant> = None;
    while changes.changed().await.is_ok() {
        if let Some(at) = last {
            tokio::time::sleep_until(at + COALESCE).await;
        }
        // Changes during the pause are part of this update.
        changes.borrow_and_update();
        if !emit() {
            return;
        }
        last = Some(Instant::now());
    }
}

/// Sends task `id` of `owner` (as `tasks/get` would show it) now and each time `status`
/// changes, tagged for listen request `listen`, until it is over (or purged).
async fn follow_task(
    handle: Handle,
    owner: Owner,
    (id, mut status): (
        TaskId,
        tokio::sync::watch::Receiver<crate::model::task::TaskStatus>,
    ),
    notify: Notifier,
    listen: Value,
) {
    loop {
        let now = *status.borrow_and_update();
        match super::tasks::detailed(&handle, &owner, &id.to_string()).await {
            Ok(task) => {
                let sent = notify.send("notifications/tasks", tagged(&listen, Value::Object(task)));
                if !sent {
                    return;
                }
            }
            Err(_) => return,
        }
        if now.is_terminal() || status.changed().await.is_err() {
            return;
        }
    }
}

/// `params` tagged with the `subscriptions/listen` request they belong to.
fn tagged(listen: &Value, mut params: Value) -> Value {
    params["_meta"] = json!({ META_SUBSCRIPTION: listen });
    params
}

#[derive(Deserialize)]
struct UriParams {
    uri: String,
}

/// `resources/subscribe` (handshake era).
pub(super) fn subscribe(params: &Params<'static>, ext: &Extensions) -> RpcResult {
    let c = ctx(ext);
    if c.era.is_modern() {
        return Err(removed(&c.era, "resources/subscribe"));
    }
    let p: UriParams = parse(params, "resources/subscribe")?;
    let changes = session_of(&c.handle, &p.uri, &c.era).map_err(rpc_error)?;
    let Some(conn) = ext.get::<Arc<ConnState>>() else {
        return Err(rpc_error(WireError::new(
            code::INVALID_REQUEST,
            "subscriptions need a connection (stdio) or an Mcp-Session-Id",
        )));
    };
    let sink = conn.sink().clone();
    let uri = p.uri.clone();
    let watcher = crate::runtime::spawn_here(follow_session(changes, move || {
        sink.send("notifications/resources/updated", json!({ "uri": uri }))
    }));
    conn.subscribe(p.uri, watcher.abort_handle());
    Ok(finish(ext, Map::new(), Cache::None))
}

/// `resources/unsubscribe` (handshake era): idempotent.
pub(super) fn unsubscribe(params: &Params<'static>, ext: &Extensions) -> RpcResult {
    let c = ctx(ext);
    if c.era.is_modern() {
        return Err(removed(&c.era, "resources/unsubscribe"));
    }
    let p: UriParams = parse(params, "resources/unsubscribe")?;
    if let Some(conn) = ext.get::<Arc<ConnState>>() {
        conn.unsubscribe(&p.uri);
    }
    Ok(finish(ext, Map::new(), Cache::None))
}

fn removed(era: &Era, method: &str) -> ErrorObjectOwned {
    rpc_error(WireError::new(
        code::METHOD_NOT_FOUND,
        format!(
            "method not found: {method} is not part of protocol {} (use subscriptions/listen)",
            era.version()
        ),
    ))
}

/// What a `subscriptions/listen` asks to follow (list changes, which never happen here, are
/// not acknowledged; other fields are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Filter {
    resource_subscriptions: Option<Vec<String>>,
    task_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ListenParams {
    #[serde(default)]
    notifications: Filter,
}

/// `subscriptions/listen` (2026-07-28): acknowledges what it will follow, then sends tagged
/// notifications on the request's stream until the client closes it.
pub(super) async fn listen(params: Params<'static>, ext: Extensions) -> RpcResult {
    let c = ctx(&ext).clone();
    if !c.era.is_modern() {
        return Err(rpc_error(WireError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "method not found: subscriptions/listen arrived with 2026-07-28; this connection speaks {} (use resources/subscribe)",
                c.era.version()
            ),
        )));
    }
    let p: ListenParams = parse(&params, "subscriptions/listen")?;
    let filter = p.notifications;
    if filter.task_ids.is_some() && !c.client_tasks {
        return Err(rpc_error(protocol::tasks_extension_required(
            "subscriptions/listen with taskIds",
        )));
    }
    let uris = filter.resource_subscriptions.unwrap_or_default();
    let mut sessions = Vec::with_capacity(uris.len());
    for uri in &uris {
        sessions.push(session_of(&c.handle, uri, &c.era).map_err(rpc_error)?);
    }
    let owner = c.handle.owner().clone();
    let mut tasks = Vec::new();
    for id in filter.task_ids.iter().flatten() {
        let unknown =
            |e: crate::Error| rpc_error(WireError::new(code::INVALID_PARAMS, e.to_string()));
        let task = c.handle.tasks().get(&owner, id).map_err(unknown)?;
        // Watched from now on, before the acknowledgement: no change is missed.
        let status = c
            .handle
            .tasks()
            .watch(&owner, task.id)
            .ok_or_else(|| unknown(crate::Error::TaskNotFound { id: id.clone() }))?;
        tasks.push((task.id, status));
    }
    let listen = c.request_id.clone();
    let mut agreed = Map::new();
    if !uris.is_empty() {
        agreed.insert("resourceSubscriptions".into(), json!(uris));
    }
    if !tasks.is_empty() {
        let ids: Vec<String> = tasks.iter().map(|(id, _)| id.to_string()).collect();
        agreed.insert("taskIds".into(), json!(ids));
    }
    // Only what is supported is acknowledged: lists never change here, so list-change
    // requests are left out.
    let notify = c.notify.clone();
    notify.send(
        "notifications/subscriptions/acknowledged",
        tagged(&listen, json!({ "notifications": agreed })),
    );
    let mut followers = Vec::new();
    for (uri, session) in uris.into_iter().zip(sessions) {
        let (notify, params) = (notify.clone(), tagged(&listen, json!({ "uri": uri })));
        followers.push(crate::runtime::spawn_here(follow_session(
            session,
            move || notify.send("notifications/resources/updated", params.clone()),
        )));
    }
    for task in tasks {
        let follow = follow_task(
            c.handle.clone(),
            owner.clone(),
            task,
            notify.clone(),
            listen.clone(),
        );
        followers.push(crate::runtime::spawn_here(follow));
    }
    // The stream lasts until the client closes it (over HTTP) or cancels the request.
    c.cancel.cancelled().await;
    for f in followers {
        f.abort();
    }
    Ok(finish(&ext, Map::new(), Cache::None))
}
