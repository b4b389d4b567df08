//! `stablehand load`: a load generator for MCP servers (this one or any other).
//!
//! N clients, each with its own connection (HTTP keep-alive) or its own server process
//! (stdio), run one scenario back to back until a duration or a count is reached; every
//! request has a timeout, so a run always ends by itself. Latencies of successful operations
//! go into one HDR histogram per client, merged at the end; failures are counted by kind.
//! With `--hold N`, N slow connections (part of a request line, then nothing) are held open
//! next to the clients for the whole run.
//! Files: `cli.rs` the command line and progress line, `client.rs` the connection and
//! handshake, `report.rs` the result, `hold.rs` the flood of held connections.

pub mod cli;
pub mod client;
pub mod hold;
pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

pub use self::client::{Client, OpError};
pub use self::report::Report;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Streamable HTTP at this URL (`http://host:port/path`).
    Http {
        /// The endpoint.
        url: String,
    },
    /// A server started per client, spoken to over its stdin and stdout.
    Stdio {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// How requests are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `initialize` handshake, then requests with the agreed revision (any MCP server).
    Handshake,
    /// The stateless 2026-07-28 revision: `_meta` and headers on every request.
    Modern,
    /// Plain JSON-RPC without MCP (only `noop`, i.e. `ping`): for bare baseline servers.
    Raw,
}

/// What each client does, over and over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// `ping`.
    Noop,
    /// `session_state` of the client's own shell session.
    State,
    /// `session_exec` of a command in the client's own shell session.
    Exec {
        /// The command line.
        command: String,
    },
    /// `session_create` then `session_end`, timed together.
    CreateEnd,
    /// Any tool with fixed arguments.
    Tool {
        /// The tool's name.
        name: String,
        /// Its arguments.
        args: Value,
    },
}

impl Scenario {
    /// The scenario's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Noop => "noop",
            Scenario::State => "state",
            Scenario::Exec { .. } => "exec",
            Scenario::CreateEnd => "create-end",
            Scenario::Tool { .. } => "tool",
        }
    }

    fn needs_session(&self) -> bool {
        matches!(self, Scenario::State | Scenario::Exec { .. })
    }
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this long (after the warm-up).
    Duration(Duration),
    /// After this many operations in all (after the warm-up).
    Count(u64),
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server.
    pub target: Target,
    /// The framing.
    pub protocol: Protocol,
    /// What each client does.
    pub scenario: Scenario,
    /// Concurrent clients (at least 1).
    pub clients: usize,
    /// When to stop.
    pub limit: Limit,
    /// Operations before measuring starts.
    pub warmup: Duration,
    /// Longest wait for one request.
    pub timeout: Duration,
    /// Sessions each client creates for `state` and `exec` (used in turn): for holding many
    /// live sessions during a run.
    pub sessions_per_client: usize,
    /// Arguments of `session_create` (default `{}`: a shell).
    pub create_args: Value,
    /// Open a new connection for every operation (HTTP; its connect time counts).
    pub reconnect: bool,
    /// Slow connections held open during the run (HTTP only; 0: none).
    pub hold: usize,
    /// How long a held connection the server closed waits before it is opened again.
    pub hold_reopen: Duration,
}

/// Live counters, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Successful operations measured so far.
    pub ok: AtomicU64,
    /// Failed operations measured so far.
    pub failed: AtomicU64,
    /// True once the warm-up is over.
    pub measuring: AtomicBool,
    /// Set to stop early (Ctrl-C); the run reports what it measured.
    pub stop: AtomicBool,
}

/// What one client measured.
struct ClientResult {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, (u64, String)>,
}

impl ClientResult {
    /// Nothing measured yet.
    fn new() -> Self {
        Self {
            hist: histogram(),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Counts one measured operation here and in the live progress.
    fn record(&mut self, outcome: Result<(), OpError>, elapsed: Duration, progress: &Progress) {
        match outcome {
            Ok(()) => {
                let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
                let _ = self.hist.record(ns);
                self.ok += 1;
                progress.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let entry = self
                    .errors
                    .entry(e.kind.clone())
                    .or_insert((0, e.detail.clone()));
                entry.0 += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 hour, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

/// Runs the load and reports. Fails only when not even one client could connect (or set
/// up its session); failures during the run are counted in the report.
pub async fn run(opts: LoadOptions, progress: Arc<Progress>) -> anyhow::Result<Report> {
    check(&opts)?;
    // The flood first, so the clients connect into it.
    let mut flood = start_flood(&opts).await?;
    // Connect every client (and create its session) before the clock starts.
    let clients = connect_all(&opts).await?;
    let nodes = sessions_by_node(clients.iter().flat_map(|(_, s)| s));
    let version = clients
        .first()
        .map(|(c, _)| c.version().to_owned())
        .unwrap_or_default();
    let warmup_end = Instant::now() + opts.warmup;
    let tasks = spawn_drivers(clients, &opts, warmup_end, &progress);
    // The measured phase starts at the end of the warm-up.
    tokio::time::sleep_until(warmup_end.into()).await;
    progress.measuring.store(true, Ordering::Relaxed);
    if let Some(f) = &mut flood {
        f.start_sampling();
    }
    let started = Instant::now();
    let measured = merge(tasks).await?;
    let duration = started.elapsed().as_secs_f64().max(1e-9);
    let hold = match flood {
        Some(f) => Some(f.finish().await),
        None => None,
    };
    let mut report = build_report(&opts, &version, duration, measured, hold);
    report.sessions_by_node = nodes;
    Ok(report)
}

/// How many of `sessions` each node holds, by the node prefix of their handles (`<node>.…`);
/// handles without one count under `-`. Through a proxy, this shows how creates spread.
fn sessions_by_node<'a>(sessions: impl Iterator<Item = &'a String>) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for s in sessions {
        let node = crate::model::node::split(s).0.unwrap_or("-");
        *by.entry(node.to_owned()).or_insert(0) += 1;
    }
    by
}

/// Refuses options no run can use.
fn check(opts: &LoadOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.clients >= 1, "--clients must be at least 1");
    if opts.protocol == Protocol::Raw && opts.scenario != Scenario::Noop {
        anyhow::bail!(
            "--protocol raw speaks plain JSON-RPC: only the noop scenario (ping) works with it"
        );
    }
    Ok(())
}

/// Starts the flood of held connections, if `--hold` asks for one.
async fn start_flood(opts: &LoadOptions) -> anyhow::Result<Option<hold::Flood>> {
    Ok(match (&opts.target, opts.hold) {
        (_, 0) => None,
        (Target::Http { url }, n) => {
            let target = client::HttpTarget::parse(url).map_err(anyhow::Error::msg)?;
            let ready_within = Duration::from_secs(30);
            Some(hold::Flood::start(&target.authority, n, opts.hold_reopen, ready_within).await)
        }
        (Target::Stdio { .. }, _) => anyhow::bail!("--hold needs an HTTP target"),
    })
}

/// Connects every client at once (each with its sessions); fails if any one fails.
async fn connect_all(opts: &LoadOptions) -> anyhow::Result<Vec<(Client, Vec<String>)>> {
    let mut clients = Vec::with_capacity(opts.clients);
    let connects: Vec<_> = (0..opts.clients)
        .map(|_| {
            let opts = opts.clone();
            tokio::spawn(async move { setup(&opts).await })
        })
        .collect();
    for c in connects {
        match c.await {
            Ok(Ok(c)) => clients.push(c),
            Ok(Err(e)) => anyhow::bail!("a client could not start: {e}"),
            Err(e) => anyhow::bail!("a client task failed: {e}"),
        }
    }
    Ok(clients)
}

/// Starts one task per connected client, each running [`drive`].
fn spawn_drivers(
    clients: Vec<(Client, Vec<String>)>,
    opts: &LoadOptions,
    warmup_end: Instant,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<ClientResult>> {
    let issued = Arc::new(AtomicU64::new(0));
    clients
        .into_iter()
        .map(|(client, sessions)| {
            let (opts, progress, issued) = (opts.clone(), progress.clone(), issued.clone());
            tokio::spawn(async move {
                drive(client, sessions, &opts, warmup_end, &issued, &progress).await
            })
        })
        .collect()
}

/// Waits for every client and merges what they measured.
async fn merge(tasks: Vec<tokio::task::JoinHandle<ClientResult>>) -> anyhow::Result<ClientResult> {
    let mut total = ClientResult::new();
    for t in tasks {
        let r = t.await?;
        total.hist.add(&r.hist).expect("same bounds");
        total.ok += r.ok;
        for (kind, (n, example)) in r.errors {
            let e = total.errors.entry(kind).or_insert((0, example));
            e.0 += n;
        }
    }
    Ok(total)
}

/// The report of a finished run from what the clients (and the flood) measured.
fn build_report(
    opts: &LoadOptions,
    version: &str,
    duration: f64,
    measured: ClientResult,
    hold: Option<hold::HoldReport>,
) -> Report {
    let ClientResult { hist, ok, errors } = measured;
    let (latency, percentiles) = report::summarize(&hist);
    let failed: u64 = errors.values().map(|(n, _)| n).sum();
    Report {
        target: match &opts.target {
            Target::Http { url } => url.clone(),
            Target::Stdio { argv } => argv.join(" "),
        },
        transport: match opts.target {
            Target::Http { .. } => "http".into(),
            Target::Stdio { .. } => "stdio".into(),
        },
        protocol: match opts.protocol {
            Protocol::Handshake => format!("handshake {version}"),
            Protocol::Modern => client::MODERN_VERSION.into(),
            Protocol::Raw => "raw".into(),
        },
        scenario: opts.scenario.name().into(),
        tool: match &opts.scenario {
            Scenario::Tool { name, .. } => Some(name.clone()),
            _ => None,
        },
        clients: opts.clients,
        duration_s: duration,
        ops: ok + failed,
        ok,
        throughput_per_s: ok as f64 / duration,
        latency_us: latency,
        percentiles,
        error_examples: errors
            .iter()
            .map(|(k, (_, e))| (k.clone(), e.clone()))
            .collect(),
        errors: errors.into_iter().map(|(k, (n, _))| (k, n)).collect(),
        hold,
        sessions_by_node: BTreeMap::new(),
    }
}

/// Connects one client and creates its sessions if the scenario needs them.
async fn setup(opts: &LoadOptions) -> Result<(Client, Vec<String>), OpError> {
    let connect = Client::connect(&opts.target, opts.protocol);
    let mut client = tokio::time::timeout(opts.timeout, connect)
        .await
        .map_err(|_| OpError::new("timeout", "connecting and the handshake timed out"))??;
    let mut sessions = Vec::new();
    if opts.scenario.needs_session() {
        for _ in 0..opts.sessions_per_client.max(1) {
            sessions.push(create_session(&mut client, &opts.create_args).await?);
        }
    }
    Ok((client, sessions))
}

async fn create_session(client: &mut Client, args: &Value) -> Result<String, OpError> {
    let created = client.call_tool("session_create", args).await?;
    created
        .pointer("/structuredContent/session_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            OpError::new(
                "protocol",
                "session_create returned no structuredContent.session_id",
            )
        })
}

/// The arguments of the scenario's tool call on `session`: the same for every operation,
/// so built once (`Null` for a scenario that makes them per operation or takes none).
fn call_args(scenario: &Scenario, session: Option<&str>) -> Value {
    match scenario {
        Scenario::State => json!({"session_id": session}),
        Scenario::Exec { command } => json!({"session_id": session, "input": command}),
        Scenario::Noop | Scenario::CreateEnd | Scenario::Tool { .. } => Value::Null,
    }
}

/// One operation of the scenario; `args` are its [`call_args`].
async fn operate(client: &mut Client, opts: &LoadOptions, args: &Value) -> Result<(), OpError> {
    match &opts.scenario {
        Scenario::Noop => client.request("ping", json!({})).await.map(drop),
        Scenario::State => client.call_tool_ok("session_state", args).await,
        Scenario::Exec { .. } => client.call_tool_ok("session_exec", args).await,
        Scenario::CreateEnd => {
            let id = create_session(client, &opts.create_args).await?;
            client
                .call_tool_ok("session_end", &json!({"session_id": id}))
                .await
        }
        Scenario::Tool { name, args } => client.call_tool_ok(name, args).await,
    }
}

/// One client's loop: operations back to back until the limit, then its sessions end.
async fn drive(
    mut client: Client,
    sessions: Vec<String>,
    opts: &LoadOptions,
    warmup_end: Instant,
    issued: &AtomicU64,
    progress: &Progress,
) -> ClientResult {
    let mut r = ClientResult::new();
    let args: Vec<Value> = if sessions.is_empty() {
        vec![call_args(&opts.scenario, None)]
    } else {
        let session = |s: &String| call_args(&opts.scenario, Some(s));
        sessions.iter().map(session).collect()
    };
    let mut turn = 0usize;
    loop {
        if progress.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let measuring = now >= warmup_end;
        if measuring && limit_reached(opts.limit, now, warmup_end, issued) {
            break;
        }
        let (outcome, elapsed) = attempt(&mut client, opts, &args[turn % args.len()]).await;
        turn += 1;
        if !measuring {
            continue;
        }
        r.record(outcome, elapsed, progress);
    }
    for id in sessions {
        let args = json!({"session_id": id});
        let _ = tokio::time::timeout(opts.timeout, client.call_tool("session_end", &args)).await;
    }
    r
}

/// True once the measured phase is over: its duration has passed, or (for a count) every
/// operation is issued; a count takes a ticket from `issued` for the next operation.
fn limit_reached(limit: Limit, now: Instant, warmup_end: Instant, issued: &AtomicU64) -> bool {
    match limit {
        Limit::Duration(d) => now.duration_since(warmup_end) >= d,
        Limit::Count(n) => issued.fetch_add(1, Ordering::Relaxed) >= n,
    }
}

/// One operation within the timeout, timed (on a fresh connection with `--reconnect`); a
/// timeout drops the connection.
async fn attempt(
    client: &mut Client,
    opts: &LoadOptions,
    args: &Value,
) -> (Result<(), OpError>, Duration) {
    if opts.reconnect {
        client.reset();
    }
    let t0 = Instant::now();
    let outcome = tokio::time::timeout(opts.timeout, operate(client, opts, args)).await;
    let elapsed = t0.elapsed();
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) => {
            client.reset();
            Err(OpError::new(
                "timeout",
                format!("no answer within {:?}", opts.timeout),
            ))
        }
    };
    (outcome, elapsed)
}
