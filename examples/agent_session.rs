//! An agent CLI as a session: each exec is one turn (a user message in, the turn's messages,
//! final result and token usage out), and the agent keeps its conversation between turns.
//!
//! Run with `cargo run --example agent_session` (a fake agent, no network), or with a real one:
//!
//! ```text
//! cargo run --example agent_session -- claude -p --input-format stream-json \
//!     --output-format stream-json --verbose
//! ```

use stablehand::session::messages::{CreateRequest, End, Exec};
use stablehand::session::Kind;
use stablehand::{Config, Runtime};

#[actix::main]
async fn main() -> stablehand::Result<()> {
    stablehand::telemetry::init();
    let mut command: Vec<String> = std::env::args().skip(1).collect();
    if command.is_empty() {
        command = vec![
            "python3".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py").into(),
        ];
    }
    // A temporary store keeps the demo self-contained.
    let mut config = Config::default();
    config.store.in_memory = true;
    let runtime = Runtime::start(config)?;
    let h = runtime.handle();
    let session = h
        .create(CreateRequest {
            kind: Some(Kind::Agent),
            command: Some(command),
            // The default turn end: a line whose `type` is `result`.
            agent: None,
            ..Default::default()
        })
        .await?;
    println!("session {} (pid {:?})", session.session_id, session.pid);

    for prompt in ["Say hello in five words.", "Now say it backwards."] {
        let turn = h
            .exec(
                session.session_id,
                Exec {
                    input: prompt.into(),
                    timeout_ms: Some(120_000),
                    ..Default::default()
                },
            )
            .await?;
        println!("> {prompt}");
        for m in turn.messages.iter().flatten() {
            println!("  message: {}", m["type"].as_str().unwrap_or("?"));
        }
        if let Some(result) = &turn.result {
            println!("  result:  {}", result["result"]);
        }
        println!("  usage:   {:?}", turn.usage);
        if let Some(e) = &turn.error {
            println!("  error:   {}: {}", e.kind, e.message);
        }
        if turn.timed_out {
            println!("  (timed out: the turn goes on; session_read pages the rest)");
        }
    }

    let info = h.state(session.session_id).await?;
    println!(
        "metrics: {} messages, {} input tokens, {} output tokens",
        info.metrics.messages, info.metrics.input_tokens, info.metrics.output_tokens
    );
    h.end(session.session_id, End::default()).await?;
    runtime.shutdown().await;
    Ok(())
}
