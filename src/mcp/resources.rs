//! Resources: each session's transcript and state, and runtime metrics.
//!
//! `stablehand://sessions/{id}/transcript` (stdout and stderr as text),
//! `stablehand://sessions/{id}/state` (the session_state result as JSON),
//! `stablehand://metrics` (sessions per state, as JSON).

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::Extensions;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::context::CallCtx;
use super::params::{ctx, finish, invalid_params, page_offset, parse, rpc_error};
use super::protocol::{Cache, WireError};
use crate::registry::ListRequest;
use crate::session::messages::Read;
use crate::session::Stream;
use crate::SessionId;

const PREFIX: &str = "stablehand://sessions/";
const METRICS: &str = "stablehand://metrics";
/// Sessions per page of `resources/list` (two resources each).
const PAGE: usize = 50;
/// Bytes of each stream a transcript read returns (the most recent ones).
const TRANSCRIPT_BYTES: usize = 1024 * 1024;

type RpcResult = Result<Value, ErrorObjectOwned>;

pub(super) fn list(params: Params<'static>, ext: &Extensions) -> RpcResult {
    let start = page_offset(&params, "resources/list")?;
    let handle = &ctx(ext).handle;
    let all = handle
        .list(&ListRequest {
            limit: Some(crate::registry::MAX_LIMIT),
            ..Default::default()
        })
        .map_err(|e| invalid_params(e.to_string()))?;
    let mut resources = Vec::new();
    if start == 0 {
        resources.push(json!({
            "uri": METRICS, "name": "metrics", "title": "Runtime metrics",
            "description": "Sessions per state.", "mimeType": "application/json"
        }));
    }
    let page = all.sessions.iter().skip(start).take(PAGE);
    for s in page {
        let label = s.name.clone().unwrap_or_else(|| s.session_id.to_string());
        resources.push(json!({
            "uri": format!("{PREFIX}{}/transcript", s.session_id),
            "name": format!("{label} transcript"),
            "description": format!("Output of {} session {} ({}).", s.kind, s.session_id, s.state),
            "mimeType": "text/plain"
        }));
        resources.push(json!({
            "uri": format!("{PREFIX}{}/state", s.session_id),
            "name": format!("{label} state"),
            "mimeType": "application/json"
        }));
    }
    let mut result = Map::new();
    result.insert("resources".into(), Value::Array(resources));
    if start + PAGE < all.sessions.len() {
        result.insert("nextCursor".into(), json!((start + PAGE).to_string()));
    }
    Ok(finish(ext, result, Cache::Private))
}

pub(super) fn templates(ext: &Extensions) -> Value {
    let templates = json!([
        { "uriTemplate": format!("{PREFIX}{{session_id}}/transcript"), "name": "transcript",
          "description": "A session's stdout and stderr (most recent 1 MiB each).", "mimeType": "text/plain" },
        { "uriTemplate": format!("{PREFIX}{{session_id}}/state"), "name": "state",
          "description": "A session's state, timings and metrics.", "mimeType": "application/json" }
    ]);
    let mut result = Map::new();
    result.insert("resourceTemplates".into(), templates);
    finish(ext, result, Cache::Public)
}

#[derive(Deserialize)]
struct ReadParams {
    uri: String,
}

pub(super) async fn read(params: Params<'static>, ext: Extensions) -> RpcResult {
    let p: ReadParams = parse(&params, "resources/read")?;
    let c = ctx(&ext);
    let not_found = || {
        let code = c.era.resource_not_found();
        rpc_error(
            WireError::new(code, format!("resource not found: {}", p.uri))
                .with_data(json!({ "uri": p.uri })),
        )
    };
    let contents = if p.uri == METRICS {
        let mut counts: Map<String, Value> = c
            .handle
            .counts()
            .into_iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect();
        counts.insert("store".into(), json!(c.handle.store_stats()));
        counts.insert("limits".into(), json!(c.handle.limits()));
        json!([{ "uri": p.uri, "mimeType": "application/json", "text": Value::Object(counts).to_string() }])
    } else {
        let rest = p.uri.strip_prefix(PREFIX).ok_or_else(not_found)?;
        let (id, what) = rest.split_once('/').ok_or_else(not_found)?;
        if let Some(e) = crate::Error::wrong_node(id) {
            let code = c.era.resource_not_found();
            return Err(rpc_error(
                WireError::new(code, e.to_string()).with_data(json!({ "uri": p.uri })),
            ));
        }
        let id: SessionId = id.parse().map_err(|_| not_found())?;
        match what {
            "state" => {
                let info = c.handle.state(id).await.map_err(|_| not_found())?;
                let text = serde_json::to_string(&info).expect("infos serialize");
                json!([{ "uri": p.uri, "mimeType": "application/json", "text": text }])
            }
            "transcript" => transcript(c, id, &p.uri).await.ok_or_else(not_found)?,
            _ => return Err(not_found()),
        }
    };
    let mut result = Map::new();
    result.insert("contents".into(), contents);
    Ok(finish(&ext, result, Cache::Private))
}

/// A session's transcript resource: the first [`TRANSCRIPT_BYTES`] of stdout (at `uri`) and of
/// stderr (at `uri#stderr`); `None` for a session the caller cannot read.
async fn transcript(c: &CallCtx, id: SessionId, uri: &str) -> Option<Value> {
    let mut out = Vec::new();
    for stream in [Stream::Stdout, Stream::Stderr] {
        let read = Read {
            stream,
            cursor: Some(0),
            max_bytes: Some(TRANSCRIPT_BYTES),
            wait_ms: None,
        };
        let page = c.handle.read(id, read).await.ok()?;
        let uri = if stream == Stream::Stdout {
            uri.to_owned()
        } else {
            format!("{uri}#stderr")
        };
        out.push(json!({ "uri": uri, "mimeType": "text/plain", "text": page.data }));
    }
    Some(Value::Array(out))
}
