//! stablehand embedded in a small actix application.
//!
//! The application has its own actor, `Builder`, that owns a shell session and drives it with
//! messages sent straight to the session's `Addr` (no registry hop), while `main` uses the
//! cloneable `Handle` for lifecycle. Run with `cargo run --example embed_actix`.

use actix::prelude::*;
use stablehand::registry::ListRequest;
use stablehand::session::messages::{CreateRequest, End, Exec, ExecResult};
use stablehand::session::Session;
use stablehand::{Config, Runtime};

/// Ask the builder to run one build step.
#[derive(Message)]
#[rtype(result = "Result<ExecResult, String>")]
struct Step(&'static str);

/// An application actor that keeps one persistent shell as its workspace.
struct Builder {
    shell: Addr<Session>,
    steps: usize,
}

impl Actor for Builder {
    type Context = Context<Self>;
}

impl Handler<Step> for Builder {
    type Result = ResponseFuture<Result<ExecResult, String>>;

    fn handle(&mut self, step: Step, _: &mut Self::Context) -> Self::Result {
        self.steps += 1;
        let exec = Exec {
            input: step.0.into(),
            ..Default::default()
        };
        let request = self.shell.send(exec);
        Box::pin(async move {
            match request.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(mailbox) => Err(mailbox.to_string()),
            }
        })
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    stablehand::telemetry::init();
    // The runtime joins the System this program already runs.
    // A temporary store keeps the demo self-contained; by default records (and Suspended
    // sessions) are kept in the XDG data directory and survive restarts.
    let mut config = Config::default();
    config.store.in_memory = true;
    let runtime = Runtime::start(config)?;
    let handle = runtime.handle();

    let workspace = std::env::temp_dir().join("stablehand-embed-demo");
    std::fs::create_dir_all(&workspace)?;
    let info = handle
        .create(CreateRequest {
            name: Some("builder".into()),
            cwd: Some(workspace.clone()),
            ..Default::default()
        })
        .await?;
    let builder = Builder {
        shell: handle.addr(info.session_id)?,
        steps: 0,
    }
    .start();

    for step in [
        "export GREETING=hello",
        "mkdir -p out && cd out",
        "echo \"$GREETING from $(basename \"$PWD\")\" | tee result.txt",
    ] {
        let r = builder.send(Step(step)).await??;
        println!(
            "$ {step}\n  exit={:?} cwd={:?} stdout={:?}",
            r.exit_code, r.cwd, r.stdout
        );
    }

    let listed = handle.list(&ListRequest::default())?;
    println!(
        "sessions: {:?}",
        listed
            .sessions
            .iter()
            .map(|s| (&s.name, s.state))
            .collect::<Vec<_>>()
    );
    handle.end(info.session_id, End::default()).await?;
    runtime.shutdown().await;
    std::fs::remove_dir_all(&workspace)?;
    Ok(())
}
