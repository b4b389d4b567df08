//! What a method or tool call knows about its request: who asks, in which era, how to send
//! notifications back on the request's channel, and whether the client cancelled it.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events::EventStream;
use super::protocol::{log_rank, Era};
use crate::Handle;

/// Per-request context, handed to methods through jsonrpsee's `Extensions`.
#[derive(Debug, Clone)]
pub(crate) struct CallCtx {
    /// The runtime, scoped to the caller's principal.
    pub(crate) handle: Handle,
    /// The era of this request.
    pub(crate) era: Era,
    /// Notifications for the client, delivered before the response.
    pub(crate) notify: Notifier,
    /// `params._meta.progressToken`, if the client wants progress.
    pub(crate) progress_token: Option<Value>,
    /// Least severe log level the client wants (`None`: no log messages).
    pub(crate) log_level: Option<usize>,
    /// Fires when the client cancels the request.
    pub(crate) cancel: CancellationToken,
    /// The client declared the 2026-07-28 tasks extension on this request.
    pub(crate) client_tasks: bool,
    /// The call runs as a task (or may become one): nobody waits on the request.
    pub(crate) as_task: bool,
    /// The request's JSON-RPC id.
    pub(crate) request_id: Value,
}

/// Sends JSON-RPC notifications to the transport that carries the request, or to a
/// connection's stream of its own.
#[derive(Debug, Clone)]
pub(crate) struct Notifier(Sink);

#[derive(Debug, Clone)]
enum Sink {
    None,
    Channel(mpsc::UnboundedSender<String>),
    /// A channel this notifier does not keep open (its holder outlives the request).
    Weak(mpsc::WeakUnboundedSender<String>),
    /// A handshake-era HTTP session's event stream (the GET stream).
    Stream(Arc<EventStream>),
}

impl Default for Notifier {
    fn default() -> Self {
        Self::none()
    }
}

impl Notifier {
    /// A notifier delivering to `tx`.
    pub(crate) fn new(tx: mpsc::UnboundedSender<String>) -> Self {
        Self(Sink::Channel(tx))
    }

    /// A notifier that drops everything (no channel back to the client).
    pub(crate) fn none() -> Self {
        Self(Sink::None)
    }

    /// A notifier appending to a session's event stream.
    pub(crate) fn stream(events: Arc<EventStream>) -> Self {
        Self(Sink::Stream(events))
    }

    /// The same destination without keeping a channel open: for what outlives the request
    /// (a task's end, a subscription), so that a closing connection is not held up.
    pub(crate) fn detached(&self) -> Self {
        match &self.0 {
            Sink::Channel(tx) => Self(Sink::Weak(tx.downgrade())),
            other => Self(other.clone()),
        }
    }

    /// The event stream this notifier appends to, if it is one.
    pub(crate) fn events(&self) -> Option<&Arc<EventStream>> {
        match &self.0 {
            Sink::Stream(s) => Some(s),
            _ => None,
        }
    }

    /// Sends one notification; false when the client is gone.
    pub(crate) fn send(&self, method: &str, params: Value) -> bool {
        let msg = || json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string();
        match &self.0 {
            Sink::None => false,
            Sink::Channel(tx) => tx.send(msg()).is_ok(),
            Sink::Weak(tx) => tx.upgrade().is_some_and(|tx| tx.send(msg()).is_ok()),
            Sink::Stream(s) => {
                s.push(msg());
                true
            }
        }
    }
}

impl CallCtx {
    /// Reports progress if the client asked for it.
    pub(crate) fn progress(&self, progress: u64, total: Option<u64>, message: String) -> bool {
        let Some(token) = &self.progress_token else {
            return true;
        };
        let mut params =
            json!({ "progressToken": token, "progress": progress, "message": message });
        if let Some(total) = total {
            params["total"] = json!(total);
        }
        self.notify.send("notifications/progress", params)
    }

    /// Sends a log message if the client's level admits it.
    pub(crate) fn log(&self, level: &str, data: Value) {
        let admitted =
            matches!((self.log_level, log_rank(level)), (Some(min), Some(rank)) if rank >= min);
        if admitted {
            self.notify.send(
                "notifications/message",
                json!({ "level": level, "logger": "stablehand", "data": data }),
            );
        }
    }
}
