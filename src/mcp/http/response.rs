//! Responses: JSON, server-sent event streams (notifications, keep-alives, then the
//! result), and the status replies of the checks.

use super::*;

/// Streams notifications, keep-alives and finally the response as server-sent events.
pub(super) fn sse(
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
    event_stream_response(rx)
}

/// A `text/event-stream` response whose body is what arrives on `rx`.
pub(super) fn event_stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .header("x-accel-buffering", "no")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// One server-sent event carrying `data`, one `data:` line per line of it.
pub(super) fn sse_event(data: &str) -> String {
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

pub(super) fn empty() -> Body {
    BodyExt::boxed(Full::new(Bytes::new()))
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body))))
        .expect("valid response")
}

pub(super) fn status(status: StatusCode, text: &str) -> Response<Body> {
    let mut b = Response::builder().status(status);
    if !text.is_empty() {
        b = b.header("content-type", "text/plain; charset=utf-8");
    }
    b.body(BodyExt::boxed(Full::new(Bytes::from(text.to_owned()))))
        .expect("valid response")
}

/// A transport-level refusal with a JSON-RPC error body.
pub(super) fn rpc_status(status: StatusCode, code: i32, message: String) -> Response<Body> {
    json_response(
        status,
        error_response(&Value::Null, &WireError::new(code, message)),
    )
}

pub(super) fn too_large(max: usize) -> Response<Body> {
    rpc_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::INVALID_REQUEST,
        format!("request body exceeds {max} bytes"),
    )
}

/// 408 for a body slower than the floor; the connection is closed after it.
pub(super) fn too_slow(config: &HttpConfig, received: usize, elapsed_ms: u64) -> Response<Body> {
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

pub(super) trait WithAllow {
    fn with_allow(self) -> Self;
}

impl WithAllow for Response<Body> {
    fn with_allow(mut self) -> Self {
        self.headers_mut()
            .insert("allow", HeaderValue::from_static("POST, DELETE"));
        self
    }
}

/// The response to a call that finished before its response had to switch to a stream: JSON,
/// or (when notifications came first and the client takes a stream) the notifications and
/// then the result as one event stream.
pub(super) fn finished(
    joined: Result<Option<String>, tokio::task::JoinError>,
    notes: &mut mpsc::UnboundedReceiver<String>,
    sse_ok: bool,
) -> Response<Body> {
    // Notifications sent just before the call finished still go first.
    let mut pending = Vec::new();
    while let Ok(n) = notes.try_recv() {
        pending.push(n);
    }
    match joined {
        Ok(Some(body)) if pending.is_empty() || !sse_ok => json_response(StatusCode::OK, body),
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
