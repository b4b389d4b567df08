//! The 2026-07-28 era over HTTP: `Mcp-Method` and `Mcp-Name` must match the body.

use super::*;

pub(super) async fn modern(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    value: Value,
    version: &str,
    token_owner: Option<Owner>,
) -> Response<Body> {
    let Some(version) = protocol::known_modern(version) else {
        let err = protocol::unsupported_version(version);
        return json_response(
            StatusCode::BAD_REQUEST,
            error_response(value.get("id").unwrap_or(&Value::Null), &err),
        );
    };
    if value.is_array() {
        return rpc_status(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("JSON-RPC batches are not supported in protocol version {version}"),
        );
    }
    if let Err(e) = check_modern_headers(headers, &value, version) {
        return json_response(
            StatusCode::BAD_REQUEST,
            error_response(value.get("id").unwrap_or(&Value::Null), &e),
        );
    }
    let origin = |notify| Origin {
        via: Via::Http,
        owner: token_owner.clone().unwrap_or_default(),
        conn: None,
        era: Era::Modern(version),
        notify,
        cancel: CancellationToken::new(),
    };
    one(state, headers, value, origin, true).await
}

/// `Mcp-Method` must equal the body's method; `Mcp-Name` the tool name, resource uri or task
/// id; the
/// version header the body's `_meta` version.
pub(super) fn check_modern_headers(
    headers: &HeaderMap,
    value: &Value,
    version: &str,
) -> Result<(), WireError> {
    let mismatch = |m: String| WireError::new(code::HEADER_MISMATCH, m);
    let method = value.get("method").and_then(Value::as_str).unwrap_or("");
    match header(headers, "mcp-method") {
        None if !method.is_empty() => return Err(mismatch("missing Mcp-Method header".into())),
        Some(h) if h != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} does not match the body's method {method:?}"
            )))
        }
        _ => {}
    }
    let params = value.get("params");
    let named = match method {
        "tools/call" | "prompts/get" => params.and_then(|p| p.get("name")),
        "resources/read" => params.and_then(|p| p.get("uri")),
        "tasks/get" | "tasks/update" | "tasks/cancel" => params.and_then(|p| p.get("taskId")),
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
    let body_version = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(protocol::META_VERSION))
        .and_then(Value::as_str);
    if let Some(bv) = body_version.filter(|bv| *bv != version) {
        return Err(mismatch(format!(
            "MCP-Protocol-Version header {version:?} does not match _meta version {bv:?}"
        )));
    }
    Ok(())
}

/// Decodes `=?base64?…?=` header values (used for non-ASCII names).
pub(super) fn decode_header_value(v: &str) -> String {
    v.strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
        .and_then(crate::codec::base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| v.to_owned())
}
