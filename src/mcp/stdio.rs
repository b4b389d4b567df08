//! The stdio transport: newline-delimited JSON-RPC on stdin/stdout, one client.
//!
//! Requests run concurrently (a long exec does not hold up a `session_list`); responses and
//! notifications are written by one writer task, one message per line. The connection's era
//! is decided by its first request: `initialize` means the handshake era, a request carrying
//! `_meta` protocolVersion means the stateless era. On EOF every in-flight request is
//! cancelled and the function returns, so the caller can end every session.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::context::Notifier;
use super::dispatch::{classify, error_response, ConnState, Message, Origin, Received, Wire};
use super::protocol::{self, code, Era, WireError};
use super::McpServer;
use crate::runtime::Via;
use crate::Owner;

/// Longest accepted line (one JSON-RPC message).
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// Requests served at once; further lines wait.
const MAX_INFLIGHT: usize = 256;

/// Serves one client over `input`/`output` until `input` ends.
pub async fn serve<R, W>(server: McpServer, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(write_lines(rx, output));
    let conn = Arc::new(ConnState::with_sink(Notifier::new(tx.clone())));
    let era: Arc<Mutex<Option<Era>>> = Arc::default();
    let all = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(MAX_INFLIGHT));
    // The local principal, as every request without a token (ARCHITECTURE.md, Principals).
    let owner = Owner::default();
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        let wire = match next_message(&mut reader, &mut line, &tx).await? {
            Next::End => break,
            Next::Skip => continue,
            Next::Message(wire) => wire,
        };
        let ctx = Line {
            server: &server,
            conn: &conn,
            era: &era,
            tx: &tx,
            owner: &owner,
            all: &all,
        };
        match wire {
            Wire::Batch(batch) => ctx.batch(batch, &permits).await,
            Wire::One(single) => {
                let permit = Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .expect("never closed");
                if let Some(task) = ctx.message(single) {
                    tokio::spawn(async move {
                        let _permit = permit;
                        task.await;
                    });
                }
            }
        }
    }
    tracing::info!("stdin closed: cancelling in-flight requests");
    all.cancel();
    conn.end_subscriptions();
    // Wait for the in-flight requests to wind down (cancelled execs interrupt their command).
    let _ = permits.acquire_many(MAX_INFLIGHT as u32).await;
    drop(tx);
    writer.await.map_err(std::io::Error::other)?
}

/// What the next line of input holds.
enum Next {
    /// End of input.
    End,
    /// Nothing to serve: a blank line, or one already answered with a parse error.
    Skip,
    /// One message or batch.
    Message(Wire),
}

/// Reads the next line (at most [`MAX_LINE`] bytes) and parses it; a line that is too long,
/// not UTF-8 or not JSON is answered with a parse error on `tx` here.
async fn next_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    tx: &mpsc::UnboundedSender<String>,
) -> std::io::Result<Next> {
    line.clear();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(Next::End);
    }
    let parse_error = |message: String| {
        let err = WireError::new(code::PARSE_ERROR, message);
        let _ = tx.send(error_response(&Value::Null, &err));
        Next::Skip
    };
    if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
        let skipped = parse_error(format!("message longer than {MAX_LINE} bytes"));
        skip_line(reader).await?;
        return Ok(skipped);
    }
    let text = line.trim_ascii();
    if text.is_empty() {
        return Ok(Next::Skip);
    }
    Ok(match std::str::from_utf8(text) {
        Err(e) => parse_error(format!("message is not valid UTF-8: {e}")),
        Ok(s) => match Wire::parse(s.as_bytes()) {
            Ok(wire) => Next::Message(wire),
            Err(e) => parse_error(e.message),
        },
    })
}

/// Everything one line's handling needs.
struct Line<'a> {
    server: &'a McpServer,
    conn: &'a Arc<ConnState>,
    era: &'a Arc<Mutex<Option<Era>>>,
    tx: &'a mpsc::UnboundedSender<String>,
    owner: &'a Owner,
    all: &'a CancellationToken,
}

type Task = futures_util::future::BoxFuture<'static, ()>;

impl Line<'_> {
    /// Handles one message; returns the work to run for a request.
    fn message(&self, message: Received) -> Option<Task> {
        let tx = self.tx.clone();
        match classify(message) {
            Err((err, id)) => {
                let _ = tx.send(error_response(&id, &err));
                None
            }
            Ok(Message::Response) => None,
            Ok(Message::Notification { method, params }) => {
                self.server
                    .notification(&method, params.as_ref(), Some(self.conn));
                None
            }
            Ok(Message::Request { id, method, params }) => {
                let meta = params.as_ref().and_then(|p| p.head.meta.as_ref());
                let era = self.era_for(&method, meta);
                let origin = Origin {
                    via: Via::Stdio,
                    owner: self.owner.clone(),
                    conn: Some(Arc::clone(self.conn)),
                    era,
                    notify: Notifier::new(tx.clone()),
                    cancel: self.all.child_token(),
                };
                let server = self.server.clone();
                Some(Box::pin(async move {
                    if let Some(response) = server.request(id, method, params, origin).await {
                        let _ = tx.send(response);
                    }
                }))
            }
        }
    }

    /// The connection's era, decided by its first request.
    fn era_for(&self, method: &str, meta: Option<&Value>) -> Era {
        let mut era = self.era.lock();
        if let Some(Era::Legacy(_)) = *era {
            return self.conn.legacy_era();
        }
        if let Some(e) = era.clone() {
            return e;
        }
        let modern = meta.and_then(|m| m.get(protocol::META_VERSION)).is_some();
        let decided = if method != "initialize" && modern {
            Era::Modern(protocol::MODERN_VERSIONS[0])
        } else {
            Era::Legacy(protocol::NEWEST_LEGACY)
        };
        *era = Some(decided.clone());
        decided
    }

    /// A JSON-RPC batch: allowed only where the era allows it; answered as one array.
    async fn batch(&self, batch: Vec<Received>, permits: &Arc<Semaphore>) {
        let era = match self.era.lock().clone() {
            Some(modern @ Era::Modern(_)) => modern,
            _ => self.conn.legacy_era(),
        };
        if batch.is_empty() || !era.allows_batches() {
            let why = if batch.is_empty() {
                "an empty batch is not a valid request".to_string()
            } else {
                format!(
                    "JSON-RPC batches are not supported in protocol version {}",
                    era.version()
                )
            };
            let _ = self.tx.send(error_response(
                &Value::Null,
                &WireError::new(code::INVALID_REQUEST, why),
            ));
            return;
        }
        let _permit = permits.acquire().await.expect("never closed");
        let (btx, mut brx) = mpsc::unbounded_channel();
        let inner = Line { tx: &btx, ..*self };
        let tasks: Vec<Task> = batch.into_iter().filter_map(|v| inner.message(v)).collect();
        futures_util::future::join_all(tasks).await;
        drop(btx);
        let mut parts = Vec::new();
        while let Some(p) = brx.recv().await {
            // Notifications emitted during the batch go out on their own.
            if p.contains("\"id\"") {
                parts.push(p);
            } else {
                let _ = self.tx.send(p);
            }
        }
        if !parts.is_empty() {
            let _ = self.tx.send(format!("[{}]", parts.join(",")));
        }
    }
}

/// Discards input up to and including the next newline.
async fn skip_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Writes each message as one line; flushes when the queue is drained.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<String>,
    mut out: W,
) -> std::io::Result<()> {
    while let Some(msg) = rx.recv().await {
        out.write_all(msg.as_bytes()).await?;
        out.write_all(b"\n").await?;
        while let Ok(more) = rx.try_recv() {
            out.write_all(more.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
    }
    Ok(())
}
