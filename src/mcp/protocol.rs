//! MCP protocol eras, versions, the per-request `_meta` envelope, error codes, and the
//! decoration every result gets in each era.

use serde_json::{json, Map, Value};

/// Handshake-era revisions, oldest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest handshake-era revision (offered when a client asks for an unknown one).
pub const NEWEST_LEGACY: &str = LEGACY_VERSIONS[LEGACY_VERSIONS.len() - 1];
/// Stateless revisions (every request carries its version in `_meta`).
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];

/// `_meta` key of the protocol version (modern era).
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities (modern era).
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the per-request log level (modern era).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of the server's identity on results (modern era).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key tying a result to its task (2025-11-25 `tasks/result`).
pub const META_RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// The tasks extension of 2026-07-28 (a client declares it per request, in its capabilities'
/// `extensions`; the server advertises it in `server/discover`).
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// The first handshake-era revision with (experimental) tasks.
pub const TASKS_LEGACY_VERSION: &str = "2025-11-25";

/// JSON-RPC and MCP error codes used on the wire.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// Not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid params (also: unknown tool, schema-invalid arguments, modern resource not found).
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Legacy resource not found.
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
    /// HTTP header does not match the body (modern).
    pub const HEADER_MISMATCH: i32 = -32020;
    /// Unsupported protocol version (modern).
    pub const UNSUPPORTED_VERSION: i32 = -32022;
    /// The request needs a client capability it did not declare (modern).
    pub const MISSING_CAPABILITY: i32 = -32021;
}

/// Which generation of the protocol a request speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// `initialize` handshake; the negotiated version (or the newest, before a handshake).
    Legacy(&'static str),
    /// Stateless; the version carried by the request.
    Modern(&'static str),
}

impl Era {
    /// The protocol version string.
    pub fn version(&self) -> &'static str {
        match self {
            Era::Legacy(v) | Era::Modern(v) => v,
        }
    }

    /// True for the stateless era.
    pub fn is_modern(&self) -> bool {
        matches!(self, Era::Modern(_))
    }

    /// JSON-RPC batches are allowed only in 2024-11-05 and 2025-03-26.
    pub fn allows_batches(&self) -> bool {
        matches!(self, Era::Legacy("2024-11-05" | "2025-03-26"))
    }

    /// The resource-not-found code of this era.
    pub fn resource_not_found(&self) -> i32 {
        if self.is_modern() {
            code::INVALID_PARAMS
        } else {
            code::RESOURCE_NOT_FOUND
        }
    }
}

/// Negotiates a legacy version: echo a supported one, else offer the newest.
pub fn negotiate(requested: &str) -> &'static str {
    LEGACY_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(NEWEST_LEGACY)
}

/// The static string of a known legacy version.
pub fn known_legacy(v: &str) -> Option<&'static str> {
    LEGACY_VERSIONS.iter().find(|x| **x == v).copied()
}

/// The static string of a known modern version.
pub fn known_modern(v: &str) -> Option<&'static str> {
    MODERN_VERSIONS.iter().find(|x| **x == v).copied()
}

/// What a request's `params._meta` says about its era.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// No modern version key.
    None,
    /// A supported modern version, with the optional per-request log level.
    Modern {
        /// The version.
        version: &'static str,
        /// `io.modelcontextprotocol/logLevel`, if given.
        log_level: Option<String>,
        /// The client declared the tasks extension on this request.
        tasks: bool,
    },
}

/// A protocol-level refusal: code, message and optional data.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// JSON-RPC error code.
    pub code: i32,
    /// Human-readable message naming the problem.
    pub message: String,
    /// Extra data.
    pub data: Option<Value>,
}

impl WireError {
    /// An error without data.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// Reads the modern envelope from params' `_meta` (if any): a version key means modern, and
/// then client capabilities are required and the version must be supported.
pub fn envelope(meta: Option<&Value>) -> Result<Envelope, WireError> {
    let Some(meta) = meta.and_then(Value::as_object) else {
        return Ok(Envelope::None);
    };
    let Some(version) = meta.get(META_VERSION) else {
        return Ok(Envelope::None);
    };
    let requested = version.as_str().unwrap_or_default();
    let Some(version) = known_modern(requested) else {
        return Err(unsupported_version(requested));
    };
    if !meta.get(META_CAPABILITIES).is_some_and(Value::is_object) {
        return Err(WireError::new(
            code::INVALID_PARAMS,
            format!("params._meta must carry {META_CAPABILITIES} (an object) in protocol version {version}"),
        ));
    }
    let log_level = meta
        .get(META_LOG_LEVEL)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tasks = meta
        .get(META_CAPABILITIES)
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(TASKS_EXTENSION))
        .is_some_and(Value::is_object);
    Ok(Envelope::Modern {
        version,
        log_level,
        tasks,
    })
}

/// -32022 with the supported and requested versions.
pub fn unsupported_version(requested: &str) -> WireError {
    WireError::new(
        code::UNSUPPORTED_VERSION,
        format!("unsupported protocol version {requested:?}"),
    )
    .with_data(json!({ "supported": MODERN_VERSIONS, "requested": requested }))
}

/// How a result is cached by modern clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Not a list or read result.
    None,
    /// The same for every client (tool and template lists).
    Public,
    /// Depends on the caller (their sessions).
    Private,
}

/// Adds what the era requires to a result object: in the modern era `resultType`, the
/// server's identity in `_meta`, and `ttlMs`/`cacheScope` on list and read results.
pub fn decorate(era: &Era, result: &mut Map<String, Value>, cache: Cache) {
    if !era.is_modern() {
        return;
    }
    result.insert("resultType".into(), json!("complete"));
    if cache != Cache::None {
        result.insert("ttlMs".into(), json!(0));
        let scope = if cache == Cache::Public {
            "public"
        } else {
            "private"
        };
        result.insert("cacheScope".into(), json!(scope));
    }
    let meta = result.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER_INFO.into(), server_info());
    }
}

/// `{name, version}` of this server.
pub fn server_info() -> Value {
    json!({ "name": "stablehand", "version": env!("CARGO_PKG_VERSION") })
}

/// Capabilities this server offers in `era`: tasks as the 2025-11-25 capability, or as the
/// 2026-07-28 extension.
pub fn capabilities(era: &Era) -> Value {
    let mut caps = json!({
        "tools": { "listChanged": false },
        "resources": { "subscribe": true, "listChanged": false },
        "logging": {}
    });
    match era {
        Era::Modern(_) => caps["extensions"] = json!({ TASKS_EXTENSION: {} }),
        Era::Legacy(TASKS_LEGACY_VERSION) => {
            caps["tasks"] =
                json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } });
        }
        Era::Legacy(_) => {}
    }
    caps
}

/// -32021: the request needs the tasks extension, which the client did not declare on it.
pub fn tasks_extension_required(method: &str) -> WireError {
    WireError::new(
        code::MISSING_CAPABILITY,
        format!(
            "{method} needs the client capability extensions.{TASKS_EXTENSION} in this request's _meta {META_CAPABILITIES}"
        ),
    )
    .with_data(json!({ "requiredCapabilities": { "extensions": { TASKS_EXTENSION: {} } } }))
}

/// What the server tells agents about itself.
pub const INSTRUCTIONS: &str = "stablehand keeps long-lived sessions of five kinds: shell (a persistent \
bash: cd, exported variables and functions persist between calls), repl (a Python interpreter whose \
variables persist; exec returns the value of the last expression), debug (a program under a Debug \
Adapter Protocol debugger, debugpy by default: breakpoints, stepping, evaluation), agent (an agent \
CLI that speaks JSON lines; exec sends one message and returns the turn) and process (any program, \
stdin in, output by cursor). Create one with session_create; it returns a session_id (an opaque \
uuid) that you pass to every other tool. A session lives until you call session_end, until it has \
been idle for its idle timeout (30 minutes by default; it is then Suspended, and session_resume \
brings it back), or until the server evicts it for room; ended sessions are forgotten after the \
retention period (24 hours by default). Run commands with session_exec (stdout, stderr, exit code \
and cwd come back separately); a command that outlives timeout_ms keeps running and session_read \
pages the rest of its output; session_signal INT interrupts it.";

/// Log levels in increasing severity.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Severity rank of a level name.
pub fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_known_versions_and_offers_the_newest_otherwise() {
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("1999-01-01"), "2025-11-25");
    }

    #[test]
    fn a_modern_envelope_needs_capabilities_and_a_known_version() {
        let ok = json!({"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}}});
        assert!(matches!(
            envelope(ok.get("_meta")),
            Ok(Envelope::Modern { tasks: false, .. })
        ));
        let tasks = json!({"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {"extensions": {TASKS_EXTENSION: {}}}}});
        assert!(matches!(
            envelope(tasks.get("_meta")),
            Ok(Envelope::Modern { tasks: true, .. })
        ));
        let missing = json!({"_meta": {META_VERSION: "2026-07-28"}});
        assert_eq!(
            envelope(missing.get("_meta")).unwrap_err().code,
            code::INVALID_PARAMS
        );
        let future = json!({"_meta": {META_VERSION: "2099-01-01", META_CAPABILITIES: {}}});
        let err = envelope(future.get("_meta")).unwrap_err();
        assert_eq!(err.code, code::UNSUPPORTED_VERSION);
        assert_eq!(err.data.unwrap()["requested"], "2099-01-01");
        assert_eq!(envelope(None).unwrap(), Envelope::None);
    }
}
