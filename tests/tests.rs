//! Integration tests: one binary, real child processes, every await bounded by a timeout.

mod util;
mod wire;

mod agent_kind;
mod bad_input;
mod binary;
mod debug_kind;
mod ending;
mod front_door;
mod guardian;
mod invariants;
mod limits;
mod load;
mod mcp_http;
mod mcp_stdio;
mod nodes;
mod persistence;
mod process_kind;
mod pty;
mod registry;
mod repl_kind;
mod shell;
mod soak;
mod state_machine;
mod store;
mod subscriptions;
mod supervision;
mod tasks;
mod terminal_kind;
