//! The shared nouns of the runtime: ids and owners, session kinds and their options, states
//! and events, exit statuses, signals, tasks, and what a session reports about itself.
//!
//! This is the bottom of the crate: it imports nothing from it (`tests/invariants.rs` checks),
//! and every other module may use it. A stored form that must stay stable on disk belongs to
//! `store/`; a tool's output schema to `mcp/`.

pub mod audit;
pub mod exit;
pub mod ids;
pub mod kind;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod signal;
pub mod state;
pub mod task;
