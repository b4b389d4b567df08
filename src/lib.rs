//! stablehand: many long-lived, stateful child-process sessions — persistent shells, plain
//! processes, Python REPLs, agent CLIs and debuggers (DAP) — kept alive by an actor runtime
//! for many clients at once, with their records snapshotted to an embedded store.
//!
//! Layout, top to bottom (see ARCHITECTURE.md):
//! - [`runtime`]: start the runtime inside an actix System; [`Handle`] is the typed API.
//! - [`registry`]: the registry actor (create, limits, eviction, supervision, sweep) and the
//!   shared index that keeps it off the hot path.
//! - [`session`]: the session actor — child, state machine, output logs — and its kind drivers.
//! - [`store`]: sled trees of session records, transcripts and blobs; restore at start.
//! - [`tasks`]: operations whose outcome outlives their call and the server.
//! - [`process`]: spawning into process groups, signals, TERM/grace/KILL/reap, the guardian.
//! - [`config`]: the TOML configuration and profiles.
//! - [`ids`]: session ids and owners.
//! - [`error`]: the error every operation returns.
//! - [`telemetry`]: tracing to stderr.
//! - [`load`]: the load generator behind `stablehand load` (for any MCP server).
//!
//! ```no_run
//! # async fn demo() -> stablehand::Result<()> {
//! use stablehand::{Config, Runtime, session::messages::{CreateRequest, Exec}};
//! let runtime = Runtime::start(Config::default())?; // inside an actix System
//! let handle = runtime.handle();
//! let shell = handle.create(CreateRequest::default()).await?;
//! let out = handle.exec(shell.session_id, Exec { input: "echo hi".into(), ..Default::default() }).await?;
//! assert_eq!(out.stdout, "hi\n");
//! # Ok(()) }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub(crate) mod codec;
pub mod config;
pub mod error;
pub mod load;
pub mod mcp;
pub mod model;
pub mod process;
pub mod registry;
pub mod runtime;
pub mod session;
pub mod store;
pub mod tasks;
pub mod telemetry;

pub use model::ids;

pub use config::Config;
pub use error::{Error, Result};
pub use ids::{Owner, SessionId};
pub use runtime::{Handle, Runtime};

/// The README's examples are compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
