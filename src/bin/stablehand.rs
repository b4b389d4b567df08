//! The `stablehand` binary: parses arguments, sets up logging, builds the config and calls
//! the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stablehand::mcp::{http, stdio, McpServer};
use stablehand::{telemetry, Config, Runtime};
use tracing::{error, info};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "stablehand",
    version,
    about = "Long-lived, stateful child-process sessions behind one MCP endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP: over stdio (the default, for one local client) or Streamable HTTP.
    /// Stops on SIGINT, SIGTERM or (stdio) end of input, ending every session first.
    Serve {
        /// Configuration file (TOML); every field has a default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve Streamable HTTP on this address instead of stdio (path /mcp).
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8765")]
        http: Option<SocketAddr>,
        /// Directory of the store (session records and transcripts survive restarts there);
        /// default $XDG_DATA_HOME/stablehand, else ~/.local/share/stablehand. One server per
        /// directory.
        #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
        data_dir: Option<PathBuf>,
        /// Run on a temporary store: nothing survives a restart.
        #[arg(long)]
        in_memory: bool,
        /// This node's id (runtime.node_id): the prefix of every handle it hands out, for a
        /// proxy to route by. Default: what the data dir remembers, else the host name.
        #[arg(long, value_name = "ID")]
        node_id: Option<String>,
        /// Serve a non-loopback --http address without a token. Anyone who can reach it can
        /// then run commands as this user; without this flag such a start is refused.
        #[arg(long, requires = "http")]
        allow_unauthenticated: bool,
    },
    /// Print the default configuration, documented, as TOML.
    DefaultConfig,
    /// Load-test an MCP server (this one or any other) with N concurrent clients over
    /// Streamable HTTP or stdio, then report throughput, latency percentiles and errors.
    Load(Box<stablehand::load::cli::LoadArgs>),
}

fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            http,
            data_dir,
            in_memory,
            node_id,
            allow_unauthenticated,
        } => serve(
            config,
            http,
            data_dir,
            in_memory,
            node_id,
            allow_unauthenticated,
        ),
        Command::Load(args) => stablehand::load::cli::main(&args),
        Command::DefaultConfig => {
            print!("{}", stablehand::config::DEFAULT_TOML);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration `serve` runs with: the file's (or the defaults), then the flags.
fn serve_config(
    config_path: Option<&PathBuf>,
    data_dir: Option<PathBuf>,
    in_memory: bool,
) -> anyhow::Result<Config> {
    let mut config = match config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if data_dir.is_some() {
        config.store.data_dir = data_dir;
        config.store.in_memory = false;
    }
    config.store.in_memory |= in_memory;
    Ok(config)
}

fn serve(
    config_path: Option<PathBuf>,
    http_addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    in_memory: bool,
    node_id: Option<String>,
    allow_unauthenticated: bool,
) -> anyhow::Result<()> {
    let mut config = serve_config(config_path.as_ref(), data_dir, in_memory)?;
    if let Some(id) = node_id {
        stablehand::model::node::check(&id).map_err(|e| anyhow::anyhow!("--node-id: {e}"))?;
        config.runtime.node_id = Some(id);
    }
    config.http.allow_unauthenticated |= allow_unauthenticated;
    if let Some(addr) = http_addr {
        // Before anything starts: a refused bind must not open the store or spawn sessions.
        http::check_bind(addr, &config.http).map_err(anyhow::Error::msg)?;
    }
    match stablehand::process::raise_open_files_limit() {
        Ok(n) => info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // Sessions live on actix arbiters; the MCP front end runs on its own tokio runtime and
    // reaches sessions through their addresses. One worker is enough: HTTP connections are
    // handed to the session arbiters, so this thread only accepts them (or serves the one
    // stdio client), and every thread counts at thousands of sessions.
    let front = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stablehand-mcp")
        .enable_all()
        .build()
        .context("starting the front-end runtime")?;
    let system = actix::System::new();
    let front_ref = &front;
    system.block_on(async move {
        let front = front_ref;
        // Handlers first: a signal that arrives during start-up must still end sessions cleanly.
        let stop = stop_signals()?;
        let http_config = config.http.clone();
        let grace = config.session.end_grace_ms;
        let runtime = Runtime::start(config).context("starting the runtime")?;
        actix::spawn(drain_on_signals(runtime.handle())?);
        let server = McpServer::new(runtime.handle());
        let reload = Reload {
            config_path,
            allow_unauthenticated,
        };
        let transport = start_transport(front, server, http_addr, http_config, reload)?;
        tokio::select! {
            () = stop => info!("signal received: ending every session"),
            result = transport => match result {
                Ok(Ok(())) => info!("client disconnected: ending every session"),
                Ok(Err(e)) => error!("transport failed: {e}; ending every session"),
                Err(e) => error!("transport task failed: {e}; ending every session"),
            },
        }
        let bounded = Duration::from_millis(grace + 5000);
        if tokio::time::timeout(bounded, runtime.shutdown()).await.is_err() {
            error!("sessions did not end within {bounded:?}; exiting anyway (children receive SIGKILL from PR_SET_PDEATHSIG)");
        }
        info!("stopped");
        anyhow::Ok(())
    })?;
    front.shutdown_timeout(Duration::from_secs(1));
    // Reaped here: a guardian left to exit on its own would be a zombie until PID 1 reaps it.
    // Normally a millisecond; the bound is for a machine too loaded to schedule it soon.
    if stablehand::process::guardian::stop(Duration::from_secs(10)) {
        info!("guardian stopped and reaped");
    }
    Ok(())
}

/// Starts serving MCP on the front-end runtime: over HTTP at `http_addr`, else over stdio.
fn start_transport(
    front: &tokio::runtime::Runtime,
    server: McpServer,
    http_addr: Option<SocketAddr>,
    http_config: stablehand::config::HttpConfig,
    reload: Reload,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    Ok(match http_addr {
        Some(addr) => {
            let (listener, hangup) = {
                let _in_front = front.enter();
                let listener = http::bind(addr).with_context(|| format!("binding {addr}"))?;
                let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    .context("installing the SIGHUP handler")?;
                (listener, hangup)
            };
            let local = listener.local_addr()?;
            info!(address = %local, "serving MCP over Streamable HTTP at http://{local}/mcp");
            let access = http::Access::new(http_config);
            front.spawn(reload_on_hangup(hangup, reload, access.clone(), local));
            front.spawn(async move { http::serve_with(server, listener, access).await })
        }
        None => {
            info!("serving MCP over stdio");
            front.spawn(async move {
                stdio::serve(server, tokio::io::stdin(), tokio::io::stdout()).await
            })
        }
    })
}

/// What a SIGHUP reload needs from the command line.
struct Reload {
    /// The `--config` file, if any.
    config_path: Option<PathBuf>,
    /// `--allow-unauthenticated` (holds across reloads).
    allow_unauthenticated: bool,
}

/// On each SIGHUP, reads the config file again and takes its HTTP access rules (tokens,
/// allowed hosts and origins, `anonymous`): a revoked token is refused from the next request
/// on, and no connection or session is dropped. A file that does not load, or rules that
/// would leave a public bind without a token, are logged and change nothing.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    reload: Reload,
    access: http::Access,
    addr: SocketAddr,
) {
    while hangup.recv().await.is_some() {
        let Some(path) = &reload.config_path else {
            info!("SIGHUP: no --config file to reload");
            continue;
        };
        let loaded = Config::load(path).map_err(|e| e.to_string());
        match loaded.and_then(|mut c| {
            c.http.allow_unauthenticated |= reload.allow_unauthenticated;
            access.reload(&c.http, addr)
        }) {
            Ok(tokens) => {
                info!(config = %path.display(), tokens, "SIGHUP: HTTP access rules reloaded")
            }
            Err(e) => {
                error!(config = %path.display(), "SIGHUP: reload refused, the previous rules stay: {e}")
            }
        }
    }
}

/// SIGUSR1 drains the node (no new sessions; its own keep working, `/readyz` answers 503),
/// SIGUSR2 makes it ready again. Handlers are installed now; the future runs them.
fn drain_on_signals(
    handle: stablehand::Handle,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut drain =
        signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?;
    let mut ready =
        signal(SignalKind::user_defined2()).context("installing the SIGUSR2 handler")?;
    Ok(async move {
        loop {
            tokio::select! {
                Some(()) = drain.recv() => handle.set_draining(true),
                Some(()) = ready.recv() => handle.set_draining(false),
                else => return,
            }
        }
    })
}

/// Installs SIGTERM and SIGINT handlers now; the returned future resolves on either.
fn stop_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
