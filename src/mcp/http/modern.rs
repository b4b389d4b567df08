//! The 2026-07-28 era over HTTP: `Mcp-Method` and `Mcp-Name` must match the body.

use super::*;
use crate::mcp::dispatch::ParamsHead;

pub(super) async fn modern(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    wire: Wire,
    version: &str,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let Some(version) = protocol::known_modern(version) else {
        let id = match &wire {
            Wire::One(message) => message.id(),
            Wire::Batch(_) => &Value::Null,
        };
        let err = protocol::unsupported_version(version);
        return json_response(StatusCode::BAD_REQUEST, error_response(id, &err));
    };
    let Wire::One(message) = wire else {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("JSON-RPC batches are not supported in protocol version {version}"),
        );
    };
    if let Err(e) = check_modern_headers(headers, &message, version) {
        return json_response(StatusCode::BAD_REQUEST, error_response(message.id(), &e));
    }
    let origin = |notify| Origin {
        via: Via::Http,
        owner: token_owner.clone().unwrap_or_default(),
        conn: None,
        era: Era::Modern(version),
        notify,
        cancel: CancellationToken::new(),
    };
    one(state, headers, message, origin, true).await
}

/// `Mcp-Method` must equal the body's method; `Mcp-Name` the tool name, resource uri or task
/// id; the
/// version header the body's `_meta` version.
pub(super) fn check_modern_headers(
    headers: &HeaderMap,
    message: &Received,
    version: &str,
) -> Result<(), WireError> {
    let mismatch = |m: String| WireError::new(code::HEADER_MISMATCH, m);
    let method = message.method().unwrap_or("");
    match header(headers, "mcp-method") {
        None if !method.is_empty() => return Err(mismatch("missing Mcp-Method header".into())),
        Some(h) if h != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} does not match the body's method {method:?}"
            )))
        }
        _ => {}
    }
    let head = message.head();
    let named = match method {
        "tools/call" | "prompts/get" => head.name.as_ref(),
        "resources/read" => head.uri.as_ref(),
        "tasks/get" | "tasks/update" | "tasks/cancel" => head.task_id.as_ref(),
        _ => None,
    };
    if let Some(expected) = named.and_then(Value::as_str) {
        match header(headers, "mcp-name").map(decode_header_value) {
            None => return Err(mismatch("missing Mcp-Name header".into())),
            Some(h) if h != expected => {
                return Err(mismatch(format!(
                    "Mcp-Name header {h:?} does not match the body's {expected:?}"
                )))
            }
            _ => {}
        }
    }
    if method == "tools/call" {
        check_param_headers(headers, head)?;
    }
    let body_version = head.meta(protocol::META_VERSION).and_then(Value::as_str);
    if let Some(bv) = body_version.filter(|bv| *bv != version) {
        return Err(mismatch(format!(
            "MCP-Protocol-Version header {version:?} does not match _meta version {bv:?}"
        )));
    }
    Ok(())
}

/// A tool that takes `session_id` declares it `x-mcp-header`: its `Mcp-Param-Session-Id`
/// header must carry the body's value, and be absent when the body has none.
fn check_param_headers(headers: &HeaderMap, head: &ParamsHead) -> Result<(), WireError> {
    let tool = head.name.as_ref().and_then(Value::as_str).unwrap_or("");
    if !crate::mcp::tools::takes_session(tool) {
        return Ok(());
    }
    let name = format!("Mcp-Param-{}", crate::mcp::tools::SESSION_HEADER);
    let mismatch = |m: String| Err(WireError::new(code::HEADER_MISMATCH, m));
    let mut values = headers.get_all(name.as_str()).iter();
    let sent = values.next().map(|v| v.to_str().map(decode_header_value));
    if values.next().is_some() {
        return mismatch(format!("{name} appears more than once"));
    }
    let body = head.arguments.session_id.as_ref().filter(|v| !v.is_null());
    match (sent, body) {
        (None, None) => Ok(()),
        (None, Some(Value::String(_))) => mismatch(format!(
            "{name} header is missing, and the body's session_id is set: tools/list declares it \
             (x-mcp-header) so that a proxy can route the call"
        )),
        (None, Some(_)) => Ok(()), // not a string: the tool refuses its arguments
        (Some(_), None) => mismatch(format!(
            "{name} header is present, and the body has no session_id"
        )),
        (Some(Err(_)), Some(_)) => mismatch(format!("{name} header is not visible ASCII")),
        (Some(Ok(h)), Some(b)) if b.as_str() == Some(h.as_str()) => Ok(()),
        (Some(Ok(h)), Some(b)) => mismatch(format!(
            "{name} header {h:?} does not match the body's session_id {b}"
        )),
    }
}

/// Decodes `=?base64?…?=` header values (used for non-ASCII names).
pub(super) fn decode_header_value(v: &str) -> String {
    v.strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
        .and_then(crate::codec::base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| v.to_owned())
}
