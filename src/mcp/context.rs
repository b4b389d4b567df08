//! What a method or tool call knows about its request: who asks, in which era, how to send
//! notifications back on the request's channel, and whether the client cancelled it.

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
}

/// Sends JSON-RPC notifications to the transport that carries the request.
#[derive(Debug, Clone)]
pub(crate) struct Notifier(Option<mpsc::UnboundedSender<String>>);

impl Notifier {
    /// A notifier delivering to `tx`.
    pub(crate) fn new(tx: mpsc::UnboundedSender<String>) -> Self {
        Self(Some(tx))
    }

    /// A notifier that drops everything (no channel back to the client).
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// Sends one notification; false when the client is gone.
    pub(crate) fn send(&self, method: &str, params: Value) -> bool {
        let Some(tx) = &self.0 else { return false };
        let msg = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        tx.send(msg.to_string()).is_ok()
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
