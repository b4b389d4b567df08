//! Requests to the debug adapter and their responses. The link lives on the session's arbiter
//! (it is `Rc`, not `Send`): a request registers its sequence number, writes its frame to the
//! adapter's stdin without blocking (one frame at a time), and resolves when the session's
//! reader hands over the response.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::rc::Rc;

use serde_json::{json, Value};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::session::kind::dap_frame;
use crate::{Error, Result};

/// The request side of the Debug Adapter Protocol.
#[derive(Debug, Default)]
pub(crate) struct Link {
    stdin: RefCell<Option<Rc<pipe::Sender>>>,
    seq: Cell<i64>,
    pending: RefCell<HashMap<i64, oneshot::Sender<Value>>>,
    writing: tokio::sync::Mutex<()>,
    written: Cell<u64>,
}

impl Link {
    /// Connects the link to the adapter's stdin.
    pub(crate) fn attach(&self, stdin: Rc<pipe::Sender>) {
        *self.stdin.borrow_mut() = Some(stdin);
    }

    /// Lets go of stdin (so the adapter sees end of file) and fails every waiting request.
    pub(crate) fn detach(&self) {
        self.stdin.borrow_mut().take();
        self.pending.borrow_mut().clear();
    }

    /// Bytes written since the last call.
    pub(crate) fn take_written(&self) -> u64 {
        self.written.replace(0)
    }

    /// Hands a response to the request waiting for it.
    pub(crate) fn deliver(&self, response: Value) {
        let Some(seq) = response.get("request_seq").and_then(Value::as_i64) else {
            tracing::debug!(%response, "debug adapter response without request_seq; ignored");
            return;
        };
        if let Some(tx) = self.pending.borrow_mut().remove(&seq) {
            let _ = tx.send(response);
        }
    }

    /// Sends `command` and resolves to the response's body, or to an error carrying the
    /// adapter's message. The sequence number is taken now, so requests go out in call order.
    pub(crate) fn request(
        self: &Rc<Self>,
        command: &str,
        arguments: Value,
    ) -> impl Future<Output = Result<Value>> + 'static {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(seq, tx);
        let bytes = dap_frame(&json!({
            "seq": seq,
            "type": "request",
            "command": command,
            "arguments": arguments,
        }));
        let link = Rc::clone(self);
        let command = command.to_owned();
        async move {
            if let Err(e) = link.write(&bytes).await {
                link.pending.borrow_mut().remove(&seq);
                return Err(e);
            }
            let response = rx.await.map_err(|_| {
                Error::Debug(format!(
                    "the debug adapter exited before answering {command}"
                ))
            })?;
            if response.get("success").and_then(Value::as_bool) == Some(true) {
                Ok(response.get("body").cloned().unwrap_or(Value::Null))
            } else {
                Err(Error::Debug(format!(
                    "{command} failed: {}",
                    failure_message(&response)
                )))
            }
        }
    }

    /// Answers a request the adapter sent (reverse requests are not supported).
    pub(crate) fn refuse(
        self: &Rc<Self>,
        request: &Value,
    ) -> impl Future<Output = Result<()>> + 'static {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let command = request.get("command").and_then(Value::as_str).unwrap_or("");
        let bytes = dap_frame(&json!({
            "seq": seq,
            "type": "response",
            "request_seq": request.get("seq").cloned().unwrap_or(Value::Null),
            "command": command,
            "success": false,
            "message": format!("stablehand does not support the reverse request {command:?}"),
        }));
        let link = Rc::clone(self);
        async move { link.write(&bytes).await }
    }

    /// Writes one frame, whole, without blocking the thread.
    async fn write(&self, bytes: &[u8]) -> Result<()> {
        let _one_frame_at_a_time = self.writing.lock().await;
        let stdin = self
            .stdin
            .borrow()
            .clone()
            .ok_or_else(|| Error::Io("the debug adapter's stdin is closed".into()))?;
        let mut off = 0;
        while off < bytes.len() {
            match stdin.try_write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => stdin
                    .writable()
                    .await
                    .map_err(|e| Error::Io(format!("writing to the debug adapter: {e}")))?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(format!("writing to the debug adapter: {e}"))),
            }
        }
        self.written.set(self.written.get() + bytes.len() as u64);
        Ok(())
    }
}

/// The most useful text of a failed response.
fn failure_message(response: &Value) -> String {
    let formatted = response
        .pointer("/body/error/format")
        .and_then(Value::as_str);
    let message = response.get("message").and_then(Value::as_str);
    let text = formatted
        .or(message)
        .unwrap_or("the adapter gave no reason")
        .trim();
    // A Python traceback: its last line names the exception.
    match text.strip_prefix("Traceback") {
        Some(_) => text.lines().last().unwrap_or(text).trim().to_owned(),
        None => text.to_owned(),
    }
}
