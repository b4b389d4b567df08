//! Logging: `tracing` to stderr only (stdout belongs to the stdio transport).

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
