//! The `stablehand load` command line: arguments, a live progress line on stderr, and the
//! report on stdout (text, or one JSON object with `--json`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::client::HttpTarget;
use super::{run, Limit, LoadOptions, Progress, Protocol, Scenario, Target};

/// Arguments of `stablehand load`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  stablehand load --url http://127.0.0.1:8765/mcp --scenario exec --clients 64 --duration 30s
  stablehand load --url http://127.0.0.1:8765/mcp --tool session_list --args '{}' --count 10000 --json
  stablehand load --clients 4 --count 1000 --stdio -- stablehand serve --in-memory
  stablehand load --url http://127.0.0.1:8765/mcp --hold 10000 --duration 20s

Over stdio every client starts its own server process (the command after --).")]
pub struct LoadArgs {
    /// Streamable HTTP endpoint of the server (http://host:port/path).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "stdio",
        required_unless_present = "stdio"
    )]
    pub url: Option<String>,
    /// Start the server per client with the command after `--` and speak over its stdio.
    #[arg(long, requires = "command")]
    pub stdio: bool,
    /// What each client does over and over: noop (ping), state (session_state of its own
    /// shell), exec (session_exec of --command in its own shell), create-end, or tool (--tool).
    #[arg(long, value_enum, default_value_t = ScenarioArg::Noop)]
    pub scenario: ScenarioArg,
    /// Command line run by the exec scenario.
    #[arg(long = "command", value_name = "SHELL", default_value = "true")]
    pub exec_command: String,
    /// Tool called by the tool scenario (implies --scenario tool).
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Arguments of --tool, as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// Sessions each client creates for state and exec, used in turn (to hold many live
    /// sessions during the run).
    #[arg(long, default_value_t = 1)]
    pub sessions_per_client: usize,
    /// Arguments of session_create for state, exec and create-end, as a JSON object, e.g.
    /// '{"kind":"process","command":["cat"]}' (default: a shell).
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub create_args: String,
    /// Concurrent clients, each with its own connection (or server process over stdio).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// How long to measure (after the warm-up), e.g. 10s, 2m.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Stop after this many operations in all, instead of after a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Run this long before measuring, e.g. 1s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Longest wait for one request; a request that takes longer counts as a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// handshake (initialize first; any MCP server), 2026-07-28 (stateless), or raw (plain
    /// JSON-RPC ping, no MCP: for bare baseline servers).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Handshake)]
    pub protocol: ProtocolArg,
    /// Allow a URL whose host is not loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Open a new connection for every operation (HTTP), so its latency includes the connect:
    /// what a new client sees.
    #[arg(long, conflicts_with = "stdio")]
    pub reconnect: bool,
    /// Hold this many slow connections open during the run (each sends part of a request
    /// line, then nothing; one the server closes is opened again after --hold-reopen), to
    /// measure the clients' latency under a flood of idle connections. HTTP only.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub hold: usize,
    /// How long a held connection the server closed waits before it is opened again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub hold_reopen: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The server command for --stdio.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// `ping`.
    Noop,
    /// `session_state` of the client's own shell session.
    State,
    /// `session_exec` of `--command` in the client's own shell session.
    Exec,
    /// `session_create` + `session_end`.
    CreateEnd,
    /// `--tool` with `--args`.
    Tool,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// The `initialize` handshake.
    Handshake,
    /// The stateless 2026-07-28 revision.
    #[value(name = "2026-07-28")]
    Modern,
    /// Plain JSON-RPC.
    Raw,
}

impl LoadArgs {
    /// The run these arguments describe, checked.
    pub fn options(&self) -> anyhow::Result<LoadOptions> {
        let target = self.checked_target()?;
        let scenario = self.checked_scenario()?;
        anyhow::ensure!(self.clients >= 1, "--clients must be at least 1");
        anyhow::ensure!(
            self.sessions_per_client >= 1,
            "--sessions-per-client must be at least 1"
        );
        let create_args: serde_json::Value = serde_json::from_str(&self.create_args)
            .with_context(|| format!("--create-args is not JSON: {}", self.create_args))?;
        anyhow::ensure!(
            create_args.is_object(),
            "--create-args must be a JSON object"
        );
        anyhow::ensure!(self.count != Some(0), "--count must be at least 1");
        anyhow::ensure!(!self.timeout.is_zero(), "--timeout must be positive");
        let limit = match (self.count, self.duration) {
            (Some(n), _) => Limit::Count(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        Ok(LoadOptions {
            target,
            protocol: match self.protocol {
                ProtocolArg::Handshake => Protocol::Handshake,
                ProtocolArg::Modern => Protocol::Modern,
                ProtocolArg::Raw => Protocol::Raw,
            },
            scenario,
            clients: self.clients,
            limit,
            warmup: self.warmup,
            timeout: self.timeout,
            sessions_per_client: self.sessions_per_client,
            create_args,
            reconnect: self.reconnect,
            hold: self.hold,
            hold_reopen: self.hold_reopen,
        })
    }

    /// The server from `--url` (loopback unless `--allow-remote`) or `--stdio`, checked.
    fn checked_target(&self) -> anyhow::Result<Target> {
        Ok(match (&self.url, self.stdio) {
            (Some(url), _) => {
                let t = HttpTarget::parse(url).map_err(anyhow::Error::msg)?;
                anyhow::ensure!(
                    t.loopback || self.allow_remote,
                    "{url} is not on loopback; pass --allow-remote to load a remote server"
                );
                Target::Http { url: url.clone() }
            }
            (None, _) => {
                anyhow::ensure!(
                    !self.command.is_empty(),
                    "--stdio needs the server command after --"
                );
                Target::Stdio {
                    argv: self.command.clone(),
                }
            }
        })
    }

    /// The scenario from `--scenario`, `--tool` and `--args`, checked.
    fn checked_scenario(&self) -> anyhow::Result<Scenario> {
        Ok(match (self.tool.as_ref(), self.scenario) {
            (Some(name), ScenarioArg::Tool | ScenarioArg::Noop) => {
                let args: serde_json::Value = serde_json::from_str(&self.args)
                    .with_context(|| format!("--args is not JSON: {}", self.args))?;
                anyhow::ensure!(args.is_object(), "--args must be a JSON object");
                Scenario::Tool {
                    name: name.clone(),
                    args,
                }
            }
            (Some(_), other) => anyhow::bail!("--tool goes with --scenario tool, not {other:?}"),
            (None, ScenarioArg::Tool) => anyhow::bail!("--scenario tool needs --tool NAME"),
            (None, ScenarioArg::Noop) => Scenario::Noop,
            (None, ScenarioArg::State) => Scenario::State,
            (None, ScenarioArg::Exec) => Scenario::Exec {
                command: self.exec_command.clone(),
            },
            (None, ScenarioArg::CreateEnd) => Scenario::CreateEnd,
        })
    }
}

/// Runs `stablehand load`: the load on a multi-threaded runtime, progress on stderr, the
/// report on stdout.
pub fn main(args: &LoadArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    if opts.hold > 0 {
        // Every held connection is a descriptor of this process.
        let limit =
            crate::process::raise_open_files_limit().context("raising the open-file limit")?;
        anyhow::ensure!(
            opts.hold as u64 + opts.clients as u64 + 64 <= limit,
            "--hold {} needs more descriptors than the open-file limit of {limit} allows",
            opts.hold
        );
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("stablehand-load")
        .enable_all()
        .build()
        .context("starting the load runtime")?;
    let report = rt.block_on(async {
        let progress = Arc::new(Progress::default());
        let bar = progress_bar(&opts);
        let ticker = tokio::spawn(tick(bar.clone(), progress.clone(), opts.limit));
        let interrupted = progress.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.stop.store(true, Ordering::Relaxed);
            }
        });
        let report = run(opts, progress).await;
        ticker.abort();
        bar.finish_and_clear();
        report
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("reports serialise")
        );
    } else {
        print!("{}", report.render());
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    anyhow::ensure!(
        report.ok > 0 || report.ops == 0,
        "no operation succeeded ({} failed)",
        report.ops
    );
    Ok(())
}

fn progress_bar(opts: &LoadOptions) -> ProgressBar {
    let bar = match opts.limit {
        Limit::Count(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("valid template"),
        ),
        Limit::Duration(d) => ProgressBar::new(d.as_millis() as u64)
            .with_style(ProgressStyle::with_template("{bar:30} {msg}").expect("valid template")),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar.set_message(format!("connecting {} clients", opts.clients));
    bar
}

/// Updates the progress line four times a second.
async fn tick(bar: ProgressBar, progress: Arc<Progress>, limit: Limit) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let mut started = None;
    loop {
        every.tick().await;
        if !progress.measuring.load(Ordering::Relaxed) {
            continue;
        }
        let since = *started.get_or_insert_with(std::time::Instant::now);
        let secs = since.elapsed().as_secs_f64().max(1e-3);
        let ok = progress.ok.load(Ordering::Relaxed);
        let failed = progress.failed.load(Ordering::Relaxed);
        match limit {
            Limit::Count(_) => bar.set_position(ok + failed),
            Limit::Duration(_) => bar.set_position((secs * 1000.0) as u64),
        }
        bar.set_message(format!(
            "{secs:.1} s  {ok} ok  {:.0} ops/s  {failed} errors",
            ok as f64 / secs
        ));
    }
}
