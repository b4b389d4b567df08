//! What every JSON-RPC method shares: the call context, params parsing and paging, error
//! objects, and the era's decoration of results.

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::Extensions;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::context::CallCtx;
use super::protocol::{code, decorate, Cache, WireError};

/// The request context the dispatcher put in the extensions.
pub(super) fn ctx(ext: &Extensions) -> &CallCtx {
    ext.get::<CallCtx>()
        .expect("the dispatcher always inserts the call context")
}

/// A wire error as jsonrpsee's error object.
pub(super) fn rpc_error(e: WireError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(e.code, e.message, e.data)
}

/// Invalid params, naming the problem.
pub(super) fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    rpc_error(WireError::new(code::INVALID_PARAMS, message))
}

/// Parses params into `T`, or -32602 naming what was wrong.
pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    params: &Params<'_>,
    method: &str,
) -> Result<T, ErrorObjectOwned> {
    let raw = params.as_str().unwrap_or("{}");
    serde_json::from_str(raw)
        .map_err(|e| invalid_params(format!("invalid params for {method}: {e}")))
}

/// Decorates a result for the request's era.
pub(super) fn finish(ext: &Extensions, mut result: Map<String, Value>, cache: Cache) -> Value {
    decorate(&ctx(ext).era, &mut result, cache);
    Value::Object(result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Paged {
    cursor: Option<String>,
}

/// Offset of the page a paged list request asks for (no params or no cursor: the first).
pub(super) fn page_offset(params: &Params<'_>, method: &str) -> Result<usize, ErrorObjectOwned> {
    let p: Paged = if params.as_str().is_some() {
        parse(params, method)?
    } else {
        Paged::default()
    };
    match p.cursor.as_deref() {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            invalid_params(format!(
                "invalid cursor {c:?}: pass back a nextCursor you were given"
            ))
        }),
    }
}
