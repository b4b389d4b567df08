//! A persistent Python REPL: definitions stick between execs, the last expression's value and
//! any exception come back as fields, and the namespace can be saved to the store.
//!
//! Run with `cargo run --example repl_session` (needs `python3` on PATH).

use stablehand::session::messages::{CreateRequest, End, Exec};
use stablehand::session::snapshot::SnapshotNamespace;
use stablehand::session::Kind;
use stablehand::{Config, Runtime};

#[actix::main]
async fn main() -> stablehand::Result<()> {
    stablehand::telemetry::init();
    // A temporary store keeps the demo self-contained; by default records, Suspended sessions
    // and their namespaces are kept in the XDG data directory and survive restarts.
    let mut config = Config::default();
    config.store.in_memory = true;
    let runtime = Runtime::start(config)?;
    let py = runtime.handle();
    let session = py
        .create(CreateRequest {
            kind: Some(Kind::Repl),
            ..Default::default()
        })
        .await?;
    let id = session.session_id;
    println!("session {id} (pid {:?}) is {}", session.pid, session.state);

    let exec = |input: &str| Exec {
        input: input.into(),
        ..Default::default()
    };
    let r = py
        .exec(
            id,
            exec("import math\n\ndef area(r):\n    return math.pi * r ** 2\n\nprint('defined')"),
        )
        .await?;
    println!("stdout:    {:?}", r.stdout);
    let r = py.exec(id, exec("x = 41\nround(area(2), 3)")).await?;
    println!("value:     {:?}", r.value);
    let r = py.exec(id, exec("x + 1")).await?;
    println!("value:     {:?}", r.value);
    let r = py.exec(id, exec("1 / 0")).await?;
    if let Some(e) = &r.error {
        println!("error:     {}: {}", e.kind, e.message);
        print!("{}", e.traceback);
    }
    println!("exit code: {:?}", r.exit_code);

    // Save the namespace (also done on eviction and shutdown; a resume restores it).
    let snap = runtime
        .handle()
        .addr(id)?
        .send(SnapshotNamespace::default())
        .await
        .map_err(|_| stablehand::Error::ActorGone { id: id.to_string() })??;
    println!(
        "snapshot:  {} bytes ({}), saved {:?}, skipped {:?}",
        snap.bytes, snap.codec, snap.saved, snap.skipped
    );

    let end = py.end(id, End::default()).await?;
    println!("end: {end:?}");
    runtime.shutdown().await;
    Ok(())
}
