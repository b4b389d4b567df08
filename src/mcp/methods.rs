//! The JSON-RPC methods, registered in jsonrpsee's `RpcModule`.

use std::sync::Arc;

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::dispatch::ConnState;
use super::params::{ctx, finish, invalid_params, page_offset, parse, rpc_error};
use super::protocol::{self, decorate, Cache};
use super::tasks::{self, TaskParam};
use super::tools::Outcome;
use super::{resources, subscriptions, ToolTable};

/// Tools per page of `tools/list`.
const TOOLS_PAGE: usize = 100;

type RpcResult = Result<Value, ErrorObjectOwned>;

/// Builds the method table.
pub(super) fn module(shared: ToolTable) -> RpcModule<ToolTable> {
    let mut m = RpcModule::new(shared);
    let reg = |m: &mut RpcModule<ToolTable>,
               name: &'static str,
               f: fn(
        Params<'static>,
        Arc<ToolTable>,
        Extensions,
    ) -> futures_util::future::BoxFuture<'static, RpcResult>| {
        m.register_async_method(name, f)
            .expect("method names are unique");
    };
    reg(&mut m, "initialize", |p, _, e| {
        Box::pin(async move { initialize(p, &e) })
    });
    reg(&mut m, "ping", |_, _, e| {
        Box::pin(async move { Ok(finish(&e, Map::new(), Cache::None)) })
    });
    reg(&mut m, "server/discover", |_, _, e| {
        Box::pin(async move { Ok(discover(&e)) })
    });
    reg(&mut m, "logging/setLevel", |p, _, e| {
        Box::pin(async move { set_level(p, &e) })
    });
    reg(&mut m, "tools/list", |p, s, e| {
        Box::pin(async move { tools_list(p, &s, &e) })
    });
    m.register_async_method("tools/call", tools_call)
        .expect("method names are unique");
    reg(&mut m, "resources/list", |p, _, e| {
        Box::pin(async move { resources::list(p, &e) })
    });
    reg(&mut m, "resources/templates/list", |_, _, e| {
        Box::pin(async move { Ok(resources::templates(&e)) })
    });
    reg(&mut m, "resources/read", |p, _, e| {
        Box::pin(resources::read(p, e))
    });
    reg(&mut m, "resources/subscribe", |p, _, e| {
        Box::pin(async move { subscriptions::subscribe(&p, &e) })
    });
    reg(&mut m, "resources/unsubscribe", |p, _, e| {
        Box::pin(async move { subscriptions::unsubscribe(&p, &e) })
    });
    reg(&mut m, "subscriptions/listen", |p, _, e| {
        Box::pin(subscriptions::listen(p, e))
    });
    tasks::register(&mut m);
    m
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: String,
}

fn initialize(params: Params<'static>, ext: &Extensions) -> RpcResult {
    let p: InitializeParams = parse(&params, "initialize")?;
    let version = protocol::negotiate(&p.protocol_version);
    if let Some(conn) = ext.get::<Arc<ConnState>>() {
        conn.set_version(version);
    }
    tracing::info!(requested = %p.protocol_version, negotiated = version, "client initialized");
    Ok(json!({
        "protocolVersion": version,
        "capabilities": protocol::capabilities(&protocol::Era::Legacy(version)),
        "serverInfo": protocol::server_info(),
        "instructions": protocol::INSTRUCTIONS,
    }))
}

fn discover(ext: &Extensions) -> Value {
    let mut versions: Vec<&str> = protocol::MODERN_VERSIONS.to_vec();
    versions.extend(protocol::LEGACY_VERSIONS.iter().rev());
    let result = json!({
        "supportedVersions": versions,
        "capabilities": protocol::capabilities(&protocol::Era::Modern(protocol::MODERN_VERSIONS[0])),
        "instructions": protocol::INSTRUCTIONS,
    });
    let mut result = object(result);
    decorate(
        &protocol::Era::Modern(protocol::MODERN_VERSIONS[0]),
        &mut result,
        Cache::Public,
    );
    let _ = ext;
    Value::Object(result)
}

#[derive(Deserialize)]
struct SetLevel {
    level: String,
}

fn set_level(params: Params<'static>, ext: &Extensions) -> RpcResult {
    let p: SetLevel = parse(&params, "logging/setLevel")?;
    let rank = protocol::log_rank(&p.level).ok_or_else(|| {
        invalid_params(format!(
            "unknown log level {:?}; expected one of {}",
            p.level,
            protocol::LOG_LEVELS.join(", ")
        ))
    })?;
    if let Some(conn) = ext.get::<Arc<ConnState>>() {
        conn.set_log_level(rank);
    }
    Ok(finish(ext, Map::new(), Cache::None))
}

fn tools_list(params: Params<'static>, shared: &ToolTable, ext: &Extensions) -> RpcResult {
    let start = page_offset(&params, "tools/list")?;
    let end = (start + TOOLS_PAGE).min(shared.tools.len());
    let tools: Vec<Value> = shared
        .tools
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|t| t.listing.clone())
        .collect();
    let mut result = object(json!({ "tools": tools }));
    if end < shared.tools.len() {
        result.insert("nextCursor".into(), json!(end.to_string()));
    }
    Ok(finish(ext, result, Cache::Public))
}

#[derive(Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<Box<RawValue>>,
}

async fn tools_call(
    params: Params<'static>,
    shared: Arc<ToolTable>,
    ext: Extensions,
) -> Result<CallReply, ErrorObjectOwned> {
    let p: CallParams = parse(&params, "tools/call")?;
    let Some(&index) = shared.tool_index.get(p.name.as_str()) else {
        let names: Vec<&str> = shared.tools.iter().map(|t| t.name).collect();
        return Err(invalid_params(format!(
            "unknown tool {:?}; available: {}",
            p.name,
            names.join(", ")
        )));
    };
    // Parsed once, by the tool, straight into its argument type.
    let args = match p.arguments {
        Some(raw) if !raw.get().trim_start().starts_with('{') => {
            return Err(invalid_params("tools/call arguments must be an object"));
        }
        Some(raw) => raw,
        None => RawValue::from_string("{}".to_owned()).expect("valid JSON"),
    };
    let tool = &shared.tools[index];
    let ctx = ctx(&ext);
    let task = TaskParam::of(&params)?;
    if tasks::legacy_task_asked(&ctx.era, task.as_ref()) {
        let task = task.unwrap_or_default();
        return tasks::call_legacy(tool, args, task, &ext)
            .await
            .map(CallReply::Task);
    }
    let outcome = if tasks::modern_task_allowed(ctx, tool) {
        match tasks::call_modern(tool, args, &ext).await? {
            Ok(work) => work.map_err(rpc_error)?,
            Err(task) => return Ok(CallReply::Task(task)),
        }
    } else {
        tool.call(args, ctx.clone()).await.map_err(rpc_error)?
    };
    let mut result = call_result(outcome);
    decorate(&ctx.era, &mut result.era, Cache::None);
    Ok(CallReply::Done(result))
}

/// A `tools/call` answer: the result, or (for a call run as a task) the task.
#[derive(Clone, Serialize)]
#[serde(untagged)]
enum CallReply {
    Done(CallResult),
    Task(Value),
}

/// The result of a finished call, without the era's decoration.
pub(super) fn call_result(outcome: Outcome) -> CallResult {
    let (content, structured, is_error) = match outcome {
        Outcome::Done { structured, text } => {
            (vec![TextContent::new(text)], Some(structured), false)
        }
        Outcome::Failed(message) => (vec![TextContent::new(message)], None, true),
        Outcome::Cancelled => (Vec::new(), None, true),
    };
    CallResult {
        content,
        structured,
        is_error,
        era: Map::new(),
    }
}

/// A `tools/call` result. The structured content was serialized once, by the tool, and is
/// copied into the response as it is.
#[derive(Clone, Serialize)]
pub(super) struct CallResult {
    content: Vec<TextContent>,
    #[serde(rename = "structuredContent", skip_serializing_if = "Option::is_none")]
    structured: Option<Box<RawValue>>,
    #[serde(rename = "isError")]
    is_error: bool,
    /// What the era adds (`resultType`, `_meta`).
    #[serde(flatten)]
    era: Map<String, Value>,
}

/// One text content block.
#[derive(Clone, Serialize)]
struct TextContent {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

impl TextContent {
    fn new(text: String) -> Self {
        Self { kind: "text", text }
    }
}
