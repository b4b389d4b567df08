//! The `stablehand` binary: parses arguments, sets up logging, builds the config and calls
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use stablehand::{telemetry, Config, Runtime};
use tracing::{error, info};

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
    /// Run the server until SIGINT or SIGTERM, then end every session and exit.
    Serve {
        /// Configuration file (TOML); every field has a default.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the default configuration, documented, as TOML.
    DefaultConfig,
}

fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
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

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let system = actix::System::new();
    system.block_on(async move {
        // Handlers first: a signal that arrives during start-up must still end sessions cleanly.
        let stop = stop_signals()?;
        let runtime = Runtime::start(config).context("starting the runtime")?;
        info!("stablehand runtime is up; the MCP front end is not part of this build yet — send SIGINT or SIGTERM to stop");
        stop.await;
        info!("signal received: ending every session");
        let bounded = Duration::from_millis(runtime.handle().config().session.end_grace_ms + 5000);
        if tokio::time::timeout(bounded, runtime.shutdown()).await.is_err() {
            error!("sessions did not end within {bounded:?}; exiting anyway (children receive SIGKILL from PR_SET_PDEATHSIG)");
        }
        info!("stopped");
        anyhow::Ok(())
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
