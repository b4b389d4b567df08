//! A persistent shell: `cd` and `export` in one exec, visible in the next.
//!
//! Run with `cargo run --example shell_session`.

use stablehand::session::messages::{CreateRequest, End, Exec};
use stablehand::{Config, Runtime};

#[actix::main]
async fn main() -> stablehand::Result<()> {
    stablehand::telemetry::init();
    // A temporary store keeps the demo self-contained; by default records (and Suspended
    // sessions) are kept in the XDG data directory and survive restarts.
    let mut config = Config::default();
    config.store.in_memory = true;
    let runtime = Runtime::start(config)?;
    let sh = runtime.handle();
    let session = sh.create(CreateRequest::default()).await?;
    println!(
        "session {} (pid {:?}) is {}",
        session.session_id, session.pid, session.state
    );

    let exec = |input: &str| Exec {
        input: input.into(),
        ..Default::default()
    };
    sh.exec(session.session_id, exec("cd /tmp && export A=1"))
        .await?;
    let out = sh
        .exec(
            session.session_id,
            exec("pwd; echo $A; echo oops >&2; exit 0"),
        )
        .await?;
    println!("stdout:    {:?}", out.stdout);
    println!("stderr:    {:?}", out.stderr);
    println!("exit code: {:?}", out.exit_code);
    println!("cwd:       {:?}", out.cwd);
    println!("session ended by the command: {}", out.session_ended);

    let end = sh.end(session.session_id, End::default()).await?;
    println!("end: {end:?}");
    runtime.shutdown().await;
    Ok(())
}
