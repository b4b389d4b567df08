//! A Python program under a debugger, driven over the Debug Adapter Protocol: a breakpoint,
//! continue, the locals where it stopped, a step, an evaluation, and the run to the end.
//!
//! Run with `cargo run --example debug_session`. It needs debugpy in the interpreter
//! `STABLEHAND_PYTHON` names (default `python3`): `python3 -m pip install debugpy`, or point
//! it at the test environment, `STABLEHAND_PYTHON=.venv/bin/python`.

use stablehand::session::kind::DebugOptions;
use stablehand::session::messages::{
    Continue, CreateRequest, DebugOutcome, Evaluate, SetBreakpoints, Step, StepKind,
};
use stablehand::session::Kind;
use stablehand::{Config, Runtime};

const PROGRAM: &str = "\
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

print('fib(10) =', fib(10))
";

fn show(what: &str, o: &DebugOutcome) {
    match &o.stopped {
        Some(s) => {
            let locals: Vec<String> = s
                .locals
                .iter()
                .map(|v| format!("{}={}", v.name, v.value))
                .collect();
            println!(
                "{what}: stopped ({}) at {}:{} in {}; locals {}",
                s.reason,
                s.file.as_deref().unwrap_or("?"),
                s.line.unwrap_or(0),
                s.function.as_deref().unwrap_or("?"),
                locals.join(", ")
            );
        }
        None => println!("{what}: {:?} {:?}", o.status, o.completed),
    }
}

#[actix::main]
async fn main() -> stablehand::Result<()> {
    stablehand::telemetry::init();
    let dir = std::env::temp_dir().join(format!("stablehand-debug-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("fib.py"), PROGRAM).expect("write the program");

    // A relative path would be looked up from the session's cwd: make it absolute.
    let python = std::env::var("STABLEHAND_PYTHON").map_or_else(
        |_| "python3".into(),
        // (not canonicalised: a virtualenv's python is a symlink that must stay one)
        |p| std::path::absolute(&p).map_or(p, |p| p.to_string_lossy().into_owned()),
    );
    let mut config = Config::default();
    config.store.in_memory = true;
    config.commands.debug = vec![python, "-m".into(), "debugpy.adapter".into()];
    let runtime = Runtime::start(config)?;
    let dbg = runtime.handle();

    // The program starts paused at its first line.
    let session = dbg
        .create(CreateRequest {
            kind: Some(Kind::Debug),
            cwd: Some(dir.clone()),
            debug: Some(DebugOptions {
                program: "fib.py".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let id = session.session_id;
    println!("session {id} is {}", session.state);

    // Line 4 has code; line 6 is blank, so that breakpoint is not verified.
    let set = dbg
        .debug_set_breakpoints(
            id,
            SetBreakpoints {
                file: "fib.py".into(),
                lines: vec![4, 6],
                condition: Some("a > 10".into()),
            },
        )
        .await?;
    for b in &set.breakpoints {
        println!(
            "breakpoint line {}: verified {} {}",
            b.line,
            b.verified,
            b.message.as_deref().unwrap_or("")
        );
    }

    show(
        "continue",
        &dbg.debug_continue(id, Continue::default()).await?,
    );
    let step = Step {
        granularity: StepKind::Over,
        ..Default::default()
    };
    show("step", &dbg.debug_step(id, step).await?);
    let value = dbg
        .debug_evaluate(
            id,
            Evaluate {
                expression: "a + b".into(),
                frame: None,
            },
        )
        .await?;
    println!("a + b = {} ({:?})", value.value, value.kind);
    let state = dbg.state(id).await?;
    println!("last stop: {:?}", state.last_stop);

    dbg.debug_set_breakpoints(
        id,
        SetBreakpoints {
            file: "fib.py".into(),
            ..Default::default()
        },
    )
    .await?;
    show(
        "run to the end",
        &dbg.debug_continue(id, Continue::default()).await?,
    );
    let out = dbg.read(id, Default::default()).await?;
    print!("program output: {}", out.data);

    runtime.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
