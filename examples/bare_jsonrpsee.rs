//! A bare jsonrpsee HTTP server with a single no-op method, `ping`, which returns `{}`: the
//! physical baseline that `scripts/compare.sh` sets stablehand's MCP no-op against.
//!
//! Usage: `cargo run --release --example bare_jsonrpsee -- [--addr ADDR]` (default
//! `127.0.0.1:0`). Once bound it prints exactly one line, `listening http://IP:PORT/`, on
//! stdout, then serves until it is killed or its stdin reaches end of file.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use jsonrpsee::server::{Server, ServerConfig};
use jsonrpsee::RpcModule;
use tokio::io::AsyncReadExt as _;

/// Parses `--addr ADDR` (or `--addr=ADDR`); anything else is an error.
fn parse_addr() -> Result<SocketAddr, String> {
    let mut addr = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            addr = args.next().ok_or("--addr needs a value")?;
        } else if let Some(value) = arg.strip_prefix("--addr=") {
            addr = value.to_owned();
        } else if arg == "-h" || arg == "--help" {
            return Err("usage: bare_jsonrpsee [--addr ADDR]".to_owned());
        } else {
            return Err(format!(
                "unexpected argument {arg:?}; usage: bare_jsonrpsee [--addr ADDR]"
            ));
        }
    }
    addr.parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))
}

/// Resolves once stdin is at end of file (or unreadable).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 512];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn main() -> ExitCode {
    let addr = match parse_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bare_jsonrpsee: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let config = ServerConfig::builder().max_connections(10_000).build();
        let server = Server::builder().set_config(config).build(addr).await?;
        let mut module = RpcModule::new(());
        module.register_method("ping", |_params, _ctx, _ext| serde_json::json!({}))?;
        let local = server.local_addr()?;
        let handle = server.start(module);
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening http://{local}/")?;
            out.flush()?;
        }
        tokio::select! {
            () = stdin_closed() => {}
            () = handle.clone().stopped() => {}
        }
        let _ = handle.stop();
        Ok(())
    });
    // A blocking stdin read may still be pending: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_jsonrpsee: {e:#}");
            ExitCode::FAILURE
        }
    }
}
