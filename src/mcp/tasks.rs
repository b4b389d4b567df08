//! Tool calls as tasks, in both eras, over the runtime's durable [`Tasks`].
//!
//! 2025-11-25 (experimental tasks): a `tools/call` with `task {ttl}` answers at once with
//! `{task}`; `tasks/get`, `tasks/result` (waits, then returns exactly what the call would
//! have, with the related-task `_meta`), `tasks/list`, `tasks/cancel` (-32602 for a task that
//! is over); `notifications/tasks/status` on the connection when the task ends; a tool error
//! (`isError`) fails the task.
//!
//! 2026-07-28 (the `io.modelcontextprotocol/tasks` extension): only for a client that
//! declared the extension on the request; the server decides, and a call of a long tool that
//! is still running after `tasks.task_after_ms` becomes a task (`resultType: "task"`);
//! `tasks/get` carries the result or error inline; `tasks/update` and `tasks/cancel` only
//! acknowledge; `tasks/result` and `tasks/list` do not exist; a tool error completes the task.
//!
//! The outcome is stored as `{"result": …}` (the call's result, undecorated) or
//! `{"error": {code, message, data}}`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::Extensions;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::context::{CallCtx, Notifier};
use super::params::{ctx, finish, invalid_params, parse, rpc_error};
use super::protocol::{self, code, Cache, Era, WireError};
use super::tools::{Outcome, ToolDef};
use crate::model::task::TaskStatus;
use crate::session::shared::rfc3339;
use crate::tasks::{Task, Tasks, DIED_WITH_SERVER};
use crate::Error;

/// Tasks per page of `tasks/list`.
const TASKS_PAGE: usize = 100;

type RpcResult = Result<Value, ErrorObjectOwned>;

/// What a tool call's work produced, as its outcome is stored.
pub(super) type Work = Result<Outcome, WireError>;

/// A runtime error of a tasks method as a protocol error: an unknown task or a bad argument
/// is -32602, anything else internal.
fn task_error(e: Error) -> ErrorObjectOwned {
    let code = match e {
        Error::TaskNotFound { .. } | Error::InvalidArgument { .. } | Error::WrongNode { .. } => {
            code::INVALID_PARAMS
        }
        _ => code::INTERNAL_ERROR,
    };
    rpc_error(WireError::new(code, e.to_string()))
}

/// The `task` param of a 2025-11-25 `tools/call`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TaskParam {
    ttl: Option<u64>,
}

impl TaskParam {
    /// The param of `params` (`None` when absent), or what is wrong with it.
    pub(super) fn of(params: &Params<'_>) -> Result<Option<Self>, ErrorObjectOwned> {
        #[derive(Deserialize)]
        struct Only {
            task: Option<Value>,
        }
        let raw = params.as_str().unwrap_or("{}");
        let Ok(Only { task: Some(task) }) = serde_json::from_str::<Only>(raw) else {
            return Ok(None);
        };
        serde_json::from_value(task).map(Some).map_err(|e| {
            invalid_params(format!(
                "invalid task: {e} (expected {{\"ttl\": milliseconds}})"
            ))
        })
    }
}

/// Runs `tool` as a 2025-11-25 task: the task is stored, then its work starts; the answer
/// is `{task}` at once.
pub(super) async fn call_legacy(
    tool: &ToolDef,
    args: Box<serde_json::value::RawValue>,
    task: TaskParam,
    ext: &Extensions,
) -> RpcResult {
    let ctx = ctx(ext);
    if !tool.task_support {
        return Err(rpc_error(WireError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "{} cannot run as a task (its execution.taskSupport is \"forbidden\"); call it without task",
                tool.name
            ),
        )));
    }
    let mut work_ctx = ctx.clone();
    work_ctx.as_task = true;
    // The status notification goes where notifications outside requests go.
    let notify = ext
        .get::<Arc<super::dispatch::ConnState>>()
        .map_or_else(|| ctx.notify.detached(), |c| c.sink().clone());
    let task = start(tool, args, work_ctx, task.ttl, Some(notify)).await?;
    let result = json!({ "task": legacy_task(&task) });
    Ok(finish(ext, object(result), Cache::None))
}

/// Stores a task for `tool`, then starts its work under the task's cancellation; when the
/// work ends its outcome is recorded (and, with `notify`, a 2025-11-25 status notification
/// sent).
async fn start(
    tool: &ToolDef,
    args: Box<serde_json::value::RawValue>,
    mut work_ctx: CallCtx,
    ttl: Option<u64>,
    notify: Option<Notifier>,
) -> Result<Task, ErrorObjectOwned> {
    let tasks = Arc::clone(work_ctx.handle.tasks());
    let cancel = CancellationToken::new();
    let owner = work_ctx.handle.owner().clone();
    let task = tasks
        .create(&owner, tool.name, ttl, cancel.clone())
        .await
        .map_err(task_error)?;
    work_ctx.cancel = cancel;
    let work = tool.call(args, work_ctx);
    crate::runtime::spawn_here(async move {
        let done = work.await;
        record_end(&tasks, task.id, done);
        if let (Some(notify), Ok(t)) = (notify, tasks.get_any(task.id)) {
            notify.send("notifications/tasks/status", legacy_task(&t));
        }
    });
    Ok(task)
}

/// Runs `tool` for a 2026-07-28 client that accepts tasks: the result if the work ends
/// within `tasks.task_after_ms`, else a task (stored first) that the work continues under;
/// with `task_after_ms = 0`, a task from the start.
pub(super) async fn call_modern(
    tool: &ToolDef,
    args: Box<serde_json::value::RawValue>,
    ext: &Extensions,
) -> Result<Result<Work, Value>, ErrorObjectOwned> {
    let ctx = ctx(ext);
    let tasks = Arc::clone(ctx.handle.tasks());
    let cancel = CancellationToken::new();
    let mut work_ctx = ctx.clone();
    work_ctx.cancel = cancel.clone();
    // Progress and log messages belong to a request, not to a task.
    work_ctx.progress_token = None;
    work_ctx.notify = Notifier::none();
    work_ctx.as_task = true;
    if tasks.config().task_after_ms == 0 {
        let task = start(tool, args, work_ctx, None, None).await?;
        return Ok(Err(modern_created(&ctx.era, &task)));
    }
    let work = tool.call(args, work_ctx);
    let (tx, mut rx) = oneshot::channel();
    crate::runtime::spawn_here(async move {
        let _ = tx.send(work.await);
    });
    let after = Duration::from_millis(tasks.config().task_after_ms);
    tokio::select! {
        done = &mut rx => return Ok(Ok(done.unwrap_or_else(|_| Err(gone())))),
        () = tokio::time::sleep(after) => {}
        () = ctx.cancel.cancelled() => {
            cancel.cancel();
            return Ok(Ok(Ok(Outcome::Cancelled)));
        }
    }
    let created = tasks
        .create(ctx.handle.owner(), tool.name, None, cancel.clone())
        .await;
    let task = match created {
        Ok(t) => t,
        Err(e) => {
            cancel.cancel();
            return Err(task_error(e));
        }
    };
    let follower = Arc::clone(&tasks);
    crate::runtime::spawn_here(async move {
        let done = rx.await.unwrap_or_else(|_| Err(gone()));
        record_end(&follower, task.id, done);
    });
    Ok(Err(modern_created(&ctx.era, &task)))
}

/// The 2026-07-28 `CreateTaskResult`: the task, flat, with `resultType: "task"`.
fn modern_created(era: &Era, task: &Task) -> Value {
    let mut result = modern_task(task);
    protocol::decorate(era, &mut result, Cache::None);
    result.insert("resultType".into(), json!("task"));
    Value::Object(result)
}

fn gone() -> WireError {
    WireError::new(
        code::INTERNAL_ERROR,
        "the task's work stopped without a result",
    )
}

/// Stores how a task's work ended.
fn record_end(tasks: &Tasks, id: crate::ids::TaskId, done: Work) {
    let (status, tool_error, message, outcome) = match done {
        Ok(Outcome::Cancelled) => return,
        Ok(outcome) => {
            let tool_error = matches!(outcome, Outcome::Failed(_));
            let result = super::methods::call_result(outcome);
            let message = tool_error.then(|| "the tool reported an error (isError)".to_owned());
            let outcome = json!({ "result": result });
            (TaskStatus::Completed, tool_error, message, outcome)
        }
        Err(e) => {
            let message = Some(e.message.clone());
            let mut error = json!({ "code": e.code, "message": e.message });
            if let Some(data) = e.data {
                error["data"] = data;
            }
            (
                TaskStatus::Failed,
                false,
                message,
                json!({ "error": error }),
            )
        }
    };
    tasks.finish(id, status, tool_error, message, outcome.to_string());
}

/// Registers the tasks methods.
pub(super) fn register(m: &mut jsonrpsee::RpcModule<super::ToolTable>) {
    m.register_async_method("tasks/get", |p, _, e| async move { get(p, e).await })
        .expect("method names are unique");
    m.register_async_method("tasks/result", |p, _, e| async move { result(p, e).await })
        .expect("method names are unique");
    m.register_async_method("tasks/list", |p, _, e| async move { list(&p, &e) })
        .expect("method names are unique");
    m.register_async_method("tasks/cancel", |p, _, e| async move { cancel(&p, &e) })
        .expect("method names are unique");
    m.register_async_method("tasks/update", |p, _, e| async move { update(&p, &e) })
        .expect("method names are unique");
}

/// `{taskId}`, with anything else a client adds (the TypeScript SDK adds `task`) ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ById {
    task_id: String,
}

/// In the modern era a tasks method needs the extension declared on the request.
fn needs_extension(ext: &Extensions, method: &str) -> Result<(), ErrorObjectOwned> {
    let ctx = ctx(ext);
    if ctx.era.is_modern() && !ctx.client_tasks {
        return Err(rpc_error(protocol::tasks_extension_required(method)));
    }
    Ok(())
}

/// -32601 for a tasks method the era does not have.
fn not_in_era(ext: &Extensions, method: &str, instead: &str) -> ErrorObjectOwned {
    rpc_error(WireError::new(
        code::METHOD_NOT_FOUND,
        format!(
            "method not found: {method} is not part of protocol {} ({instead})",
            ctx(ext).era.version()
        ),
    ))
}

async fn get(params: Params<'static>, ext: Extensions) -> RpcResult {
    needs_extension(&ext, "tasks/get")?;
    let p: ById = parse(&params, "tasks/get")?;
    let ctx = ctx(&ext);
    if !ctx.era.is_modern() {
        let tasks = ctx.handle.tasks();
        let task = tasks
            .get(ctx.handle.owner(), &p.task_id)
            .map_err(task_error)?;
        return Ok(finish(&ext, object(legacy_task(&task)), Cache::None));
    }
    let result = detailed(&ctx.handle, ctx.handle.owner(), &p.task_id).await?;
    Ok(finish(&ext, result, Cache::None))
}

/// `owner`'s task `id` as 2026-07-28 shows it (`tasks/get`, `notifications/tasks`): with
/// the result or the error once it is over.
pub(super) async fn detailed(
    handle: &crate::Handle,
    owner: &crate::Owner,
    id: &str,
) -> Result<Map<String, Value>, ErrorObjectOwned> {
    let tasks = handle.tasks();
    let task = tasks.get(owner, id).map_err(task_error)?;
    let mut result = modern_task(&task);
    if !task.status.is_terminal() {
        return Ok(result);
    }
    let (_, outcome) = tasks.outcome(owner, id).await.map_err(task_error)?;
    match (task.status, outcome.map(|o| decode(&o))) {
        (TaskStatus::Completed | TaskStatus::Failed, Some(Ok(result_or_error))) => {
            result.extend(result_or_error);
        }
        (TaskStatus::Failed, None) => {
            let message = task
                .message
                .clone()
                .unwrap_or_else(|| DIED_WITH_SERVER.into());
            result.insert(
                "error".into(),
                json!({ "code": code::INTERNAL_ERROR, "message": message }),
            );
        }
        _ => {}
    }
    Ok(result)
}

/// The stored outcome as `{"result": …}` or `{"error": …}`.
fn decode(outcome: &str) -> Result<Map<String, Value>, ErrorObjectOwned> {
    match serde_json::from_str(outcome) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(rpc_error(WireError::new(
            code::INTERNAL_ERROR,
            "the task's stored outcome cannot be read",
        ))),
    }
}

async fn result(params: Params<'static>, ext: Extensions) -> RpcResult {
    if ctx(&ext).era.is_modern() {
        return Err(not_in_era(
            &ext,
            "tasks/result",
            "poll tasks/get: it carries the result",
        ));
    }
    let p: ById = parse(&params, "tasks/result")?;
    let ctx = ctx(&ext);
    let (task, outcome) = ctx
        .handle
        .tasks()
        .outcome(ctx.handle.owner(), &p.task_id)
        .await
        .map_err(task_error)?;
    let related = json!({ protocol::META_RELATED_TASK: { "taskId": task.id.handle() } });
    let Some(outcome) = outcome else {
        let message = match task.status {
            TaskStatus::Cancelled => format!("task {} was cancelled: it has no result", task.id),
            _ => task
                .message
                .clone()
                .unwrap_or_else(|| DIED_WITH_SERVER.into()),
        };
        return Err(ErrorObjectOwned::owned(
            code::INTERNAL_ERROR,
            message,
            Some(json!({ "_meta": related })),
        ));
    };
    let mut stored = decode(&outcome)?;
    if let Some(Value::Object(error)) = stored.remove("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(-32603) as i32;
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(ErrorObjectOwned::owned(
            code,
            message.to_owned(),
            error.get("data").cloned(),
        ));
    }
    let mut result = match stored.remove("result") {
        Some(Value::Object(r)) => r,
        _ => return Err(decode("").unwrap_err()),
    };
    result.insert("_meta".into(), related);
    Ok(finish(&ext, result, Cache::None))
}

fn list(params: &Params<'static>, ext: &Extensions) -> RpcResult {
    if ctx(ext).era.is_modern() {
        return Err(not_in_era(
            ext,
            "tasks/list",
            "keep the ids tools/call returned",
        ));
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Paged {
        cursor: Option<String>,
    }
    let p: Paged = if params.as_str().is_some() {
        parse(params, "tasks/list")?
    } else {
        Paged::default()
    };
    let ctx = ctx(ext);
    let (page, next) = ctx
        .handle
        .tasks()
        .list(ctx.handle.owner(), p.cursor.as_deref(), TASKS_PAGE)
        .map_err(task_error)?;
    let mut result = Map::new();
    result.insert(
        "tasks".into(),
        page.iter().map(legacy_task).collect::<Vec<_>>().into(),
    );
    if let Some(next) = next {
        result.insert("nextCursor".into(), json!(next));
    }
    Ok(finish(ext, result, Cache::None))
}

fn cancel(params: &Params<'static>, ext: &Extensions) -> RpcResult {
    needs_extension(ext, "tasks/cancel")?;
    let p: ById = parse(params, "tasks/cancel")?;
    let ctx = ctx(ext);
    let outcome = ctx
        .handle
        .tasks()
        .cancel(ctx.handle.owner(), &p.task_id)
        .map_err(task_error)?;
    if ctx.era.is_modern() {
        // Acknowledged, whatever the task's state: cancellation is cooperative.
        return Ok(finish(ext, Map::new(), Cache::None));
    }
    match outcome {
        Ok(task) => Ok(finish(ext, object(legacy_task(&task)), Cache::None)),
        Err(over) => Err(invalid_params(format!(
            "cannot cancel task {}: already in terminal status '{}'",
            over.id,
            legacy_status(&over)
        ))),
    }
}

fn update(params: &Params<'static>, ext: &Extensions) -> RpcResult {
    if !ctx(ext).era.is_modern() {
        return Err(not_in_era(
            ext,
            "tasks/update",
            "it arrived with 2026-07-28",
        ));
    }
    needs_extension(ext, "tasks/update")?;
    let p: ById = parse(params, "tasks/update")?;
    let ctx = ctx(ext);
    // No task of this server asks for input: the update is acknowledged and has nothing to
    // answer.
    ctx.handle
        .tasks()
        .get(ctx.handle.owner(), &p.task_id)
        .map_err(task_error)?;
    Ok(finish(ext, Map::new(), Cache::None))
}

/// A 2025-11-25 `Task`: a tool error fails the task, as that revision says.
fn legacy_status(task: &Task) -> &'static str {
    if task.status == TaskStatus::Completed && task.tool_error {
        "failed"
    } else {
        task.status.as_str()
    }
}

/// The 2025-11-25 form of a task.
fn legacy_task(task: &Task) -> Value {
    let mut t = json!({
        "taskId": task.id.handle(),
        "status": legacy_status(task),
        "createdAt": time(task.created_ms),
        "lastUpdatedAt": time(task.updated_ms),
        "ttl": task.ttl_ms,
        "pollInterval": task.poll_ms,
    });
    if let Some(m) = &task.message {
        t["statusMessage"] = json!(m);
    }
    t
}

/// The 2026-07-28 form of a task (without `result`/`error`).
fn modern_task(task: &Task) -> Map<String, Value> {
    let mut t = object(json!({
        "taskId": task.id.handle(),
        "status": task.status.as_str(),
        "createdAt": time(task.created_ms),
        "lastUpdatedAt": time(task.updated_ms),
        "ttlMs": task.ttl_ms,
        "pollIntervalMs": task.poll_ms,
    }));
    if let Some(m) = &task.message {
        t.insert("statusMessage".into(), json!(m));
    }
    t
}

fn time(ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// True when `era` and the request ask `tool` to run as a task (the legacy `task` param
/// counts only in the revision that has tasks).
pub(super) fn legacy_task_asked(era: &Era, task: Option<&TaskParam>) -> bool {
    task.is_some() && *era == Era::Legacy(protocol::TASKS_LEGACY_VERSION)
}

/// Whether a modern call of `tool` may become a task.
pub(super) fn modern_task_allowed(ctx: &CallCtx, tool: &ToolDef) -> bool {
    ctx.era.is_modern() && ctx.client_tasks && tool.task_support
}
