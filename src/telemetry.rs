//! Logging: `tracing` to stderr only (stdout belongs to the stdio transport).

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber filtered by `RUST_LOG` (default `info`). Safe to call twice.
///
/// A closed stderr loses log lines but never stops the server (the default writer's error
/// path would panic).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr(io::stderr()))
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none() && io::IsTerminal::is_terminal(&io::stderr()),
        )
        .with_target(false)
        .try_init();
}

/// Stderr that reports every write as done, so a vanished reader cannot fail logging.
struct LossyStderr(io::Stderr);

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
