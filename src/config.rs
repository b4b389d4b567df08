//! Configuration: a TOML file (`--config`) where every field has a default.
//!
//! Profiles name which programs each session kind may launch and which directories a session
//! may use as its cwd. They are a guardrail against mistakes, **not a security boundary**: a
//! shell that is allowed to start can run anything its user may run. Use the operating system
//! (a dedicated uid, a container, cgroups) as the boundary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::kind::Kind;
use crate::model::limits::{LimitMode, Limits};
use crate::process::Rlimits;

pub mod agents;
pub use agents::AgentProfile;

/// The most `session.terminal_scrollback_lines` may be.
pub const MAX_SCROLLBACK_LINES: usize = 100_000;

/// The default configuration as a documented TOML file (what `stablehand default-config`
/// prints). A test checks that it parses to [`Config::default`].
pub const DEFAULT_TOML: &str = include_str!("default_config.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Runtime-wide limits and timers.
    pub runtime: RuntimeConfig,
    /// Per-session defaults.
    pub session: SessionConfig,
    /// The default program of each kind (program and arguments).
    pub commands: Commands,
    /// The Streamable HTTP transport.
    pub http: HttpConfig,
    /// Snapshots of sessions in the embedded store (sled).
    pub store: StoreConfig,
    /// Tasks: long tool calls whose result is fetched later.
    pub tasks: TasksConfig,
    /// Name of the active profile in `profiles`.
    pub profile: String,
    /// Named profiles; `permissive` always exists unless redefined.
    pub profiles: BTreeMap<String, Profile>,
    /// Principals mapped to Unix users (`[principals.alice] user = "alice"`): their sessions
    /// run as that user. Needs a server running as root. `local` names the principal of
    /// requests without a token.
    pub principals: BTreeMap<String, PrincipalConfig>,
    /// Agent profiles: how an agent CLI's conversation is kept across resumes and forked
    /// (`claude` is built in; a file may redefine it or add others).
    pub agents: BTreeMap<String, AgentProfile>,
}

/// The Unix user a principal's sessions run as: by `user` name or by `uid` (with a password
/// database entry either way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrincipalConfig {
    /// The user's name.
    pub user: Option<String>,
    /// The user's id, instead of its name.
    pub uid: Option<u32>,
    /// The primary group, instead of the user's own.
    pub gid: Option<u32>,
    /// Allow this principal's sessions to run as root (uid 0); refused otherwise.
    pub allow_root: bool,
}

/// How long tasks are kept and how often clients should ask about them (`[tasks]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// How long a task is kept after it was created when the client names no ttl, in ms.
    pub default_ttl_ms: u64,
    /// The longest ttl a client may ask for, in ms.
    pub max_ttl_ms: u64,
    /// How often clients are told to poll a running task, in ms.
    pub poll_interval_ms: u64,
    /// 2026-07-28 clients that accept tasks: a call still running after this long becomes
    /// a task (one that finishes sooner answers at once), in ms; 0: a task from the start.
    pub task_after_ms: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            default_ttl_ms: 3_600_000,
            max_ttl_ms: 7 * 24 * 3_600_000,
            poll_interval_ms: 1000,
            task_after_ms: 1000,
        }
    }
}

/// Runtime-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of actix arbiters (threads) hosting sessions; 0 means one per available core.
    pub arbiters: usize,
    /// Maximum live sessions; at the limit the least-recently-used idle one is evicted.
    pub max_sessions: usize,
    /// How long Ended and Failed records (and Suspended ones, counted from their last
    /// activity) are kept before they are purged, in ms.
    pub retention_ms: u64,
    /// How often the registry checks idle timeouts and retention, in ms.
    pub sweep_interval_ms: u64,
    /// Make the server a child subreaper so orphaned grandchildren are reaped by it: a thread
    /// reaps each orphan (one in a live session's group at once, any other after a second),
    /// leaving alone the children the runtime waits for and those in the process's own
    /// process group.
    pub subreaper: bool,
    /// Run a guardian process that SIGKILLs every session's process group if the server dies
    /// without ending them (SIGKILL, crash, OOM).
    pub guardian: bool,
    /// Open-file descriptors kept free for connections and the store: `session_create` is
    /// refused when fewer than this plus the session's own four would be free.
    pub fd_reserve: u64,
    /// Where principals mapped to Unix users get their own 0700 directories (the default
    /// working directory of their sessions); default `<data dir>/principals`. Each mapped
    /// user must be able to reach it.
    pub principals_dir: Option<PathBuf>,
    /// This node's id: the prefix of every session handle, protocol session id and task id it
    /// hands out, so a proxy can route by it (a DNS label: lowercase letters, digits, '-').
    /// Default: the id the data dir remembers, else the host name's first label (under
    /// Kubernetes, the pod name).
    pub node_id: Option<String>,
}

/// Defaults and bounds for each session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Bytes of output kept per stream (half at the head, half at the tail).
    pub output_cap_bytes: usize,
    /// Idle time after which a session is evicted (Suspended), in ms; 0 disables.
    pub idle_timeout_ms: u64,
    /// Grace between TERM and KILL when ending, in ms.
    pub end_grace_ms: u64,
    /// Exec timeout when the caller gives none, in ms.
    pub default_exec_timeout_ms: u64,
    /// Largest exec timeout a caller may ask for, in ms.
    pub max_exec_timeout_ms: u64,
    /// Largest long-poll wait for reads, in ms.
    pub max_wait_ms: u64,
    /// Execs that may wait behind a running one.
    pub max_queue: usize,
    /// How long a new session may take to become Ready, in ms.
    pub startup_timeout_ms: u64,
    /// Server environment variables passed on to children (others are not).
    pub pass_env: Vec<String>,
    /// Resource limits for children.
    pub rlimits: Rlimits,
    /// Memory and process limits of each session as a whole.
    pub limits: LimitsConfig,
    /// Lines of scrollback a terminal session keeps (what scrolled off the top of its screen).
    pub terminal_scrollback_lines: usize,
    /// Run sessions' programs under `SCHED_BATCH` (no wakeup preemption of the server).
    pub batch_scheduling: bool,
}

/// Memory and process limits per session (`[session.limits]`): defaults, the most a
/// `session_create` may ask for, and how they are enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// `auto` (a cgroup per session where the server may create one, else rlimits),
    /// `cgroup` (refuse to start without), `rlimit` or `off`.
    pub mechanism: LimitMode,
    /// Memory of a session, MiB.
    pub memory_mib: u64,
    /// Processes and threads of a session at once.
    pub processes: u64,
    /// The most memory a session may ask for, MiB.
    pub max_memory_mib: u64,
    /// The most processes a session may ask for.
    pub max_processes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            mechanism: LimitMode::Auto,
            memory_mib: 4096,
            processes: 1024,
            max_memory_mib: 65536,
            max_processes: 16384,
        }
    }
}

impl LimitsConfig {
    /// The limits of a session that asks for `asked` (each within its maximum), or what is
    /// wrong with the request.
    pub fn resolve(&self, asked: &Limits) -> Result<Limits, String> {
        let pick = |name: &str, asked: Option<u64>, default: u64, max: u64| match asked {
            None => Ok(default),
            Some(0) => Err(format!("limits.{name} must be at least 1")),
            Some(v) if v > max => Err(format!(
                "limits.{name} {v} is above the maximum {max} (session.limits.max_{name})"
            )),
            Some(v) => Ok(v),
        };
        Ok(Limits {
            memory_mib: Some(pick(
                "memory_mib",
                asked.memory_mib,
                self.memory_mib,
                self.max_memory_mib,
            )?),
            processes: Some(pick(
                "processes",
                asked.processes,
                self.processes,
                self.max_processes,
            )?),
        })
    }
}

/// Settings of the Streamable HTTP transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Path of the MCP endpoint.
    pub path: String,
    /// Origins accepted besides loopback ones (`http://localhost:*`, `http://127.0.0.1:*`,
    /// `http://[::1]:*`); a request with any other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides loopback names (DNS-rebinding protection, on every bind
    /// address); a request with any other `Host` gets 403. A server bound to a non-loopback
    /// address needs the names its clients use here.
    pub allowed_hosts: Vec<String>,
    /// Bearer tokens; when any is set, every request needs `Authorization: Bearer <token>`
    /// (401 otherwise) and the token's name is the principal that owns its sessions.
    pub tokens: Vec<Token>,
    /// Who owns the sessions of a request without a token.
    pub anonymous: Anonymous,
    /// Serve a non-loopback address without tokens: anyone who can reach it runs commands as
    /// the server's user. Refused at start unless this is set (`--allow-unauthenticated`).
    pub allow_unauthenticated: bool,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest a request may take, in ms, before it is answered with an error.
    pub request_timeout_ms: u64,
    /// Idle time after which a handshake-era protocol session expires (404 after), in ms.
    pub session_idle_timeout_ms: u64,
    /// Connections held at once. Beyond it a new connection is admitted by closing the
    /// connection that has been idle (no request in flight) the longest, a served one counting
    /// as idle for `header_timeout_ms` less; when every one is busy, the new one gets 503 with
    /// `Retry-After` and is closed.
    pub max_connections: usize,
    /// Time a request's head (request line and headers) may take, in ms: from the accept for
    /// a connection's first request, from the first byte of a later one. The connection is
    /// closed after it.
    pub header_timeout_ms: u64,
    /// Time a keep-alive connection may sit idle (no request in flight, no byte of a next
    /// one) before it is closed, in ms.
    pub keepalive_timeout_ms: u64,
    /// Time a request body may take before the floor rate applies, in ms: a body of `n` bytes
    /// must be in within `body_timeout_ms` plus `n / body_min_rate` seconds, else 408.
    pub body_timeout_ms: u64,
    /// Floor rate of a request body, bytes per second (0: the whole body must be in within
    /// `body_timeout_ms`).
    pub body_min_rate: u64,
    /// Open-file descriptors connections leave free for sessions being started and the
    /// store: when fewer would be free, a new connection is admitted only by closing an idle
    /// one (else 503).
    pub fd_reserve: u64,
}

/// Settings of the embedded store, where session records and transcripts are snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the store; default `$XDG_DATA_HOME/stablehand` (or
    /// `~/.local/share/stablehand`). Only one server may use a directory at a time.
    pub data_dir: Option<PathBuf>,
    /// Run on a temporary store that is deleted at exit (nothing survives a restart).
    pub in_memory: bool,
    /// How often changed sessions are written, as one batch, in ms.
    pub flush_interval_ms: u64,
    /// `batched`: changes are written every `flush_interval_ms` and at once on create, end,
    /// eviction and terminal transitions. `always`: every acknowledged call that changes a
    /// session waits until its change is on disk before it answers.
    pub durability: Durability,
    /// Transcript bytes kept per session (the most recent ones), at least 4096.
    pub transcript_cap_bytes: u64,
    /// Largest transcript segment file, in bytes (at most a quarter of the transcript cap is
    /// used): the unit in which old transcript bytes are deleted.
    pub segment_bytes: u64,
    /// Cap on the stored bytes (records, transcripts, blobs); beyond it the oldest Ended and
    /// Failed sessions are purged first. 0 disables. The files on disk can be larger (sled is
    /// log-structured and reclaims space lazily).
    pub max_bytes: u64,
    /// Cache of sled (session records and blobs), in bytes as sled counts them (on-disk
    /// sizes; its memory use is a small multiple). Transcripts are not cached by the server:
    /// their reads go through the operating system's page cache.
    pub cache_bytes: u64,
}

/// Smallest `store.transcript_cap_bytes`.
pub const MIN_TRANSCRIPT_CAP: u64 = 4096;
/// Smallest `store.segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest `store.segment_bytes` (a frame's length is 32 bits, and a segment is read whole).
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// When a change becomes durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Written in batches every `flush_interval_ms`, and at once on lifecycle events.
    #[default]
    Batched,
    /// Every acknowledged change is flushed to disk before the call answers.
    Always,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            in_memory: false,
            flush_interval_ms: 1000,
            durability: Durability::Batched,
            transcript_cap_bytes: 1024 * 1024,
            segment_bytes: 256 * 1024,
            max_bytes: 1024 * 1024 * 1024,
            cache_bytes: 8 * 1024 * 1024,
        }
    }
}

impl StoreConfig {
    /// The data directory to use: the configured one, else the XDG default.
    pub fn resolved_data_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
        Some(base.join("stablehand"))
    }
}

/// Who owns the sessions of a request that carries no token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anonymous {
    /// The local principal, as over stdio and in every protocol revision: a client that
    /// reconnects, or a server that restarts, finds its sessions by list, name or id.
    #[default]
    Local,
    /// Each handshake-era protocol session (`Mcp-Session-Id`) is a principal of its own: other
    /// clients cannot see its sessions, they end when it is deleted or expires, and after a
    /// restart no one finds them. 2026-07-28 requests, which have no protocol session, stay
    /// the local principal.
    PerConnection,
}

/// A named bearer token. The secret comes from exactly one of `token` (inline), `token_file`
/// (the file's content, surrounding whitespace trimmed) or `token_env` (an environment
/// variable of the server); files and variables are read when the config is loaded or
/// reloaded.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The principal's name (owns the sessions created with this token).
    pub name: String,
    /// The secret, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The secret, resolved from whichever source is set.
    #[serde(skip)]
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: configs end up in logs.
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A token with an inline secret.
    pub fn new(name: impl Into<String>, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        Self {
            name: name.into(),
            token: Some(secret.clone()),
            token_file: None,
            token_env: None,
            secret,
        }
    }

    /// The secret (empty until the config is loaded or [`Config::resolve_secrets`] ran).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Reads the secret from its one source.
    fn resolve(&mut self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let name = &self.name;
        self.secret = match (&self.token, &self.token_file, &self.token_env) {
            (Some(t), None, None) => t.clone(),
            (None, Some(path), None) => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().to_owned(),
                Err(e) => {
                    return bad(format!(
                        "http.tokens {name:?}: cannot read token_file {}: {e}",
                        path.display()
                    ))
                }
            },
            (None, None, Some(var)) => match std::env::var(var) {
                Ok(value) => value.trim().to_owned(),
                Err(e) => return bad(format!("http.tokens {name:?}: token_env {var}: {e}")),
            },
            _ => {
                return bad(format!(
                    "http.tokens {name:?} needs exactly one of token, token_file and token_env"
                ))
            }
        };
        Ok(())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            path: "/mcp".into(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            tokens: Vec::new(),
            anonymous: Anonymous::Local,
            allow_unauthenticated: false,
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 10 * 60 * 1000,
            session_idle_timeout_ms: 30 * 60 * 1000,
            max_connections: 4096,
            header_timeout_ms: 10_000,
            keepalive_timeout_ms: 60_000,
            body_timeout_ms: 10_000,
            body_min_rate: 1024,
            fd_reserve: 64,
        }
    }
}

/// Default command line of each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Commands {
    /// Shell sessions: must be bash (any path, version 4.4 or newer).
    pub shell: Vec<String>,
    /// REPL sessions: a Python 3 interpreter (a virtualenv's python works).
    pub repl: Vec<String>,
    /// Debug sessions: a Debug Adapter Protocol adapter speaking over its stdio.
    pub debug: Vec<String>,
}

/// Which programs each kind may launch and where sessions may live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Programs shell sessions may start (name or absolute path; `*` allows any).
    pub shell: Vec<String>,
    /// Programs process sessions may start (`*` allows any).
    pub process: Vec<String>,
    /// Interpreters REPL sessions may start (`*` allows any).
    pub repl: Vec<String>,
    /// Programs agent sessions may start (`*` allows any).
    pub agent: Vec<String>,
    /// Debug adapters debug sessions may start (`*` allows any).
    pub debug: Vec<String>,
    /// Programs terminal sessions may start (`*` allows any).
    pub terminal: Vec<String>,
    /// Directories a session's cwd must be inside; empty allows any.
    pub cwd_roots: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert("permissive".to_owned(), Profile::default());
        Self {
            runtime: RuntimeConfig::default(),
            session: SessionConfig::default(),
            commands: Commands::default(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            tasks: TasksConfig::default(),
            profile: "permissive".to_owned(),
            profiles,
            principals: BTreeMap::new(),
            agents: agents::builtin(),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            arbiters: 0,
            max_sessions: 1000,
            retention_ms: 24 * 3600 * 1000,
            sweep_interval_ms: 1000,
            subreaper: true,
            guardian: true,
            fd_reserve: 256,
            principals_dir: None,
            node_id: None,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            output_cap_bytes: 1024 * 1024,
            idle_timeout_ms: 30 * 60 * 1000,
            end_grace_ms: 3000,
            default_exec_timeout_ms: 30_000,
            max_exec_timeout_ms: 24 * 3600 * 1000,
            max_wait_ms: 10 * 60 * 1000,
            max_queue: 16,
            startup_timeout_ms: 10_000,
            pass_env: [
                "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
            ]
            .map(String::from)
            .to_vec(),
            rlimits: Rlimits::default(),
            limits: LimitsConfig::default(),
            terminal_scrollback_lines: 2000,
            batch_scheduling: true,
        }
    }
}

impl Default for Commands {
    fn default() -> Self {
        Self {
            shell: vec!["bash".into(), "--noprofile".into(), "--norc".into()],
            repl: vec!["python3".into()],
            debug: vec!["python3".into(), "-m".into(), "debugpy.adapter".into()],
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            shell: vec!["*".into()],
            process: vec!["*".into()],
            repl: vec!["*".into()],
            agent: vec!["*".into()],
            debug: vec!["*".into()],
            terminal: vec!["*".into()],
            cwd_roots: Vec::new(),
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The values are inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text, reading token files and variables.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.resolve_secrets()?;
        for (name, profile) in agents::builtin() {
            config.agents.entry(name).or_insert(profile);
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads every token's secret from its source (inline, file or environment variable).
    /// [`Config::load`] and [`Config::from_toml`] do this; call it after building tokens
    /// by hand from other sources than [`Token::new`].
    pub fn resolve_secrets(&mut self) -> Result<(), ConfigError> {
        self.http.tokens.iter_mut().try_for_each(Token::resolve)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !self.profiles.contains_key(&self.profile) {
            return Err(ConfigError::Invalid(format!(
                "profile {:?} is not defined (defined: {})",
                self.profile,
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        for (name, profile) in &self.agents {
            profile.validate(name).map_err(ConfigError::Invalid)?;
        }
        if let Some(node) = &self.runtime.node_id {
            crate::model::node::check(node)
                .map_err(|e| ConfigError::Invalid(format!("runtime.node_id: {e}")))?;
        }
        if self.runtime.max_sessions == 0 {
            return bad("runtime.max_sessions must be at least 1");
        }
        if self.session.output_cap_bytes < 2 {
            return bad("session.output_cap_bytes must be at least 2");
        }
        if self.session.terminal_scrollback_lines > MAX_SCROLLBACK_LINES {
            return bad(&format!(
                "session.terminal_scrollback_lines ({}) is above the most, {MAX_SCROLLBACK_LINES} (a line costs about 1.5 KB at 120 columns)",
                self.session.terminal_scrollback_lines
            ));
        }
        let t = &self.tasks;
        if t.default_ttl_ms == 0 || t.default_ttl_ms > t.max_ttl_ms {
            return bad(&format!(
                "tasks.default_ttl_ms ({}) must be at least 1 and at most tasks.max_ttl_ms ({})",
                t.default_ttl_ms, t.max_ttl_ms
            ));
        }
        if t.poll_interval_ms == 0 {
            return bad("tasks.poll_interval_ms must be at least 1");
        }
        if self.commands.shell.is_empty() {
            return bad("commands.shell must name a program");
        }
        if self.runtime.sweep_interval_ms == 0 {
            return bad("runtime.sweep_interval_ms must be at least 1");
        }
        let l = &self.session.limits;
        for (name, value, max) in [
            ("memory_mib", l.memory_mib, l.max_memory_mib),
            ("processes", l.processes, l.max_processes),
        ] {
            if value == 0 || max == 0 {
                return bad(&format!(
                    "session.limits.{name} and max_{name} must be at least 1 (mechanism = \"off\" turns limits off)"
                ));
            }
            if value > max {
                return bad(&format!(
                    "session.limits.{name} ({value}) is above session.limits.max_{name} ({max})"
                ));
            }
        }
        for (name, p) in &self.principals {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(ConfigError::Invalid(format!(
                    "principals: {name:?} is not a usable principal name (letters, digits, '.', '_' and '-')"
                )));
            }
            if p.user.is_some() == p.uid.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "principals.{name} needs exactly one of user and uid"
                )));
            }
        }
        self.validate_http()?;
        self.validate_store()
    }

    /// The `[http]` checks of [`Config::validate`].
    fn validate_http(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !self.http.path.starts_with('/') {
            return bad("http.path must start with /");
        }
        if let Some(t) = self
            .http
            .tokens
            .iter()
            .find(|t| t.secret.is_empty() || t.name.is_empty())
        {
            return bad(&format!(
                "http.tokens entries need a non-empty name and secret ({:?} has none)",
                t.name
            ));
        }
        let tokens = &self.http.tokens;
        for (i, t) in tokens.iter().enumerate() {
            if tokens[..i].iter().any(|u| u.secret == t.secret) {
                return bad(&format!(
                    "http.tokens: the token of {:?} is also another entry's (each principal needs its own)",
                    t.name
                ));
            }
            if tokens[..i].iter().any(|u| u.name == t.name) {
                return bad(&format!(
                    "http.tokens: the name {:?} is given twice (one entry per principal)",
                    t.name
                ));
            }
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections must be at least 1");
        }
        if self.http.header_timeout_ms == 0
            || self.http.keepalive_timeout_ms == 0
            || self.http.body_timeout_ms == 0
        {
            return bad("http.header_timeout_ms, keepalive_timeout_ms and body_timeout_ms must be at least 1");
        }
        if self.http.fd_reserve > self.runtime.fd_reserve {
            return bad("http.fd_reserve must not exceed runtime.fd_reserve (sessions would lock connections out)");
        }
        Ok(())
    }

    /// The `[store]` checks of [`Config::validate`].
    fn validate_store(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.store.flush_interval_ms == 0 {
            return bad("store.flush_interval_ms must be at least 1");
        }
        if self.store.transcript_cap_bytes < MIN_TRANSCRIPT_CAP {
            return bad(&format!(
                "store.transcript_cap_bytes must be at least {MIN_TRANSCRIPT_CAP} (it was {})",
                self.store.transcript_cap_bytes
            ));
        }
        if self.store.segment_bytes < MIN_SEGMENT_BYTES
            || self.store.segment_bytes > MAX_SEGMENT_BYTES
        {
            return bad(&format!(
                "store.segment_bytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES} (it was {})",
                self.store.segment_bytes
            ));
        }
        Ok(())
    }

    /// The active profile.
    pub fn active_profile(&self) -> &Profile {
        &self.profiles[&self.profile]
    }

    /// Number of session arbiters to run.
    pub fn arbiter_count(&self) -> usize {
        match self.runtime.arbiters {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Profile {
    /// The allowlist for a kind.
    pub fn programs(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::Shell => &self.shell,
            Kind::Process => &self.process,
            Kind::Repl => &self.repl,
            Kind::Agent => &self.agent,
            Kind::Debug => &self.debug,
            Kind::Terminal => &self.terminal,
        }
    }

    /// True when `program` may start a `kind` session.
    pub fn allows(&self, kind: Kind, program: &str) -> bool {
        let base = Path::new(program)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(program);
        self.programs(kind)
            .iter()
            .any(|p| p == "*" || p == program || (!p.contains('/') && p == base))
    }

    /// True when `cwd` is inside one of `cwd_roots` (or there are none).
    pub fn allows_cwd(&self, cwd: &Path) -> bool {
        self.cwd_roots.is_empty() || self.cwd_roots.iter().any(|root| cwd.starts_with(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn a_terminal_scrollback_above_the_most_is_refused_naming_the_field() {
        let err = Config::from_toml("[session]\nterminal_scrollback_lines = 100001")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("session.terminal_scrollback_lines (100001) is above the most, 100000"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_default_file_is_the_default() {
        assert_eq!(Config::from_toml(DEFAULT_TOML).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[session]\nidle_timeout = 5\n").unwrap_err();
        assert!(err.to_string().contains("idle_timeout"), "{err}");
    }

    #[test]
    fn a_transcript_cap_or_segment_size_out_of_range_is_refused_naming_both_bounds() {
        let err = Config::from_toml("[store]\ntranscript_cap_bytes = 0\n").unwrap_err();
        assert!(
            err.to_string().contains("at least 4096 (it was 0)"),
            "{err}"
        );
        for bad in ["1", "1000000000"] {
            let err = Config::from_toml(&format!("[store]\nsegment_bytes = {bad}\n")).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("segment_bytes") && text.contains(bad),
                "{text}"
            );
        }
    }

    /// The error `text` is refused with.
    fn refusal(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn duplicated_or_empty_tokens_are_refused_and_anonymous_is_parsed() {
        let dup_token =
            "[http]\ntokens = [{ name = \"a\", token = \"t\" }, { name = \"b\", token = \"t\" }]\n";
        let err = refusal(dup_token);
        assert!(
            err.contains("token of \"b\" is also another entry's"),
            "{err}"
        );
        let dup_name =
            "[http]\ntokens = [{ name = \"a\", token = \"t\" }, { name = \"a\", token = \"u\" }]\n";
        let err = refusal(dup_name);
        assert!(err.contains("name \"a\" is given twice"), "{err}");
        let empty = "[http]\ntokens = [{ name = \"a\", token = \"\" }]\n";
        assert!(Config::from_toml(empty).is_err());
        let per = Config::from_toml("[http]\nanonymous = \"per-connection\"\n").unwrap();
        assert_eq!(per.http.anonymous, Anonymous::PerConnection);
        assert_eq!(Config::default().http.anonymous, Anonymous::Local);
        let err = Config::from_toml("[http]\nanonymous = \"nobody\"\n").unwrap_err();
        assert!(err.to_string().contains("per-connection"), "{err}");
    }

    #[test]
    fn a_token_comes_from_exactly_one_of_inline_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alice.token");
        std::fs::write(&file, "from-a-file\n").unwrap();
        // A variable every test process has (setting one would race other test threads).
        let path = std::env::var("PATH").unwrap();
        let text = format!(
            "[http]\ntokens = [{{ name = \"a\", token_file = {:?} }}, {{ name = \"b\", token_env = \"PATH\" }}, {{ name = \"c\", token = \"inline\" }}]\n",
            file.display().to_string()
        );
        let config = Config::from_toml(&text).unwrap();
        let secrets: Vec<_> = config.http.tokens.iter().map(Token::secret).collect();
        assert_eq!(secrets, ["from-a-file", path.trim(), "inline"]);
        assert!(
            !format!("{config:?}").contains("from-a-file"),
            "secrets stay out of Debug"
        );

        let both = "[http]\ntokens = [{ name = \"a\", token = \"x\", token_env = \"HOME\" }]\n";
        let err = refusal(both);
        assert!(
            err.contains("exactly one of token, token_file and token_env"),
            "{err}"
        );
        let missing = "[http]\ntokens = [{ name = \"a\", token_file = \"/nonexistent/t\" }]\n";
        let err = refusal(missing);
        assert!(
            err.contains("cannot read token_file /nonexistent/t"),
            "{err}"
        );
        let unset =
            "[http]\ntokens = [{ name = \"a\", token_env = \"STABLEHAND_TEST_UNSET_VAR\" }]\n";
        let err = refusal(unset);
        assert!(err.contains("token_env STABLEHAND_TEST_UNSET_VAR"), "{err}");
    }

    #[test]
    fn undefined_profile_is_refused() {
        let err = Config::from_toml("profile = \"strict\"\n").unwrap_err();
        assert!(err.to_string().contains("strict"), "{err}");
    }

    #[test]
    fn profile_matches_by_name_or_path() {
        let p = Profile {
            shell: vec!["bash".into()],
            process: vec!["/bin/cat".into()],
            cwd_roots: vec!["/tmp".into()],
            ..Profile::default()
        };
        assert!(p.allows(Kind::Shell, "/usr/bin/bash"));
        assert!(!p.allows(Kind::Shell, "zsh"));
        assert!(p.allows(Kind::Process, "/bin/cat"));
        assert!(!p.allows(Kind::Process, "cat"));
        assert!(p.allows_cwd(Path::new("/tmp/x")));
        assert!(!p.allows_cwd(Path::new("/etc")));
    }
}
