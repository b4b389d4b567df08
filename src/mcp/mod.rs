//! The MCP front end: the only module that knows JSON-RPC.
//!
//! jsonrpsee's [`RpcModule`] is the method table for both transports.
//! One envelope implementation (`dispatch.rs`) parses messages, resolves the protocol era,
//! validates what the era requires and calls the method with a per-request context in
//! jsonrpsee's `Extensions`; the transports ([`stdio`], [`http`]) only move bytes and add
//! what their medium requires (sessions, headers, SSE).
//!
//! Files: `protocol.rs` eras, versions, codes, result decoration; `dispatch.rs` the envelope;
//! `methods.rs` the JSON-RPC methods; `params.rs` what they share; `tools/` one file per tool; `resources.rs` resources;
//! `context.rs` the per-request context; `stdio.rs` and `http/` the transports; `door.rs` the
//! HTTP front door (connection table, timers, admission at the limits, accept errors).

mod context;
mod dispatch;
mod door;
mod events;
pub mod http;
mod methods;
mod params;
pub mod protocol;
mod resources;
pub mod stdio;
mod subscriptions;
mod tasks;
mod tools;

use std::collections::HashMap;
use std::sync::Arc;

use jsonrpsee::RpcModule;

pub use dispatch::ConnState;

use crate::Handle;

/// The MCP server: method table, tool table and the runtime handle. Cheap to clone.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    module: RpcModule<ToolTable>,
}

/// What methods share: the tool table.
pub(crate) struct ToolTable {
    tools: Vec<tools::ToolDef>,
    tool_index: HashMap<&'static str, usize>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").finish_non_exhaustive()
    }
}

impl McpServer {
    /// An MCP server over `handle`'s runtime.
    pub fn new(handle: Handle) -> Self {
        let tools = tools::all();
        let tool_index = tools.iter().enumerate().map(|(i, t)| (t.name, i)).collect();
        let module = methods::module(ToolTable { tools, tool_index });
        Self {
            inner: Arc::new(Inner { handle, module }),
        }
    }

    /// The runtime handle (acting for the default owner).
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }
}
