//! Starting the runtime inside an actix System, and the cloneable [`Handle`] through which
//! callers (the MCP front end, embedding applications, tests) use it.

use std::sync::Arc;

use actix::prelude::*;
use actix::ArbiterHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::ids::{Owner, SessionId};
use crate::process::{self, Signal};
use crate::registry::{self, Create, Index, ListRequest, ListResult, Registry, Shutdown};
use crate::session::messages::{
    CreateRequest, End, EndResult, Exec, ExecResult, GetInfo, Read, ReadResult, SendInput,
    SendResult, SendSignal, SessionInfo, SignalResult,
};
use crate::session::{Session, StateKind};
use crate::{Error, Result};

/// A running runtime: the registry, the session arbiters, and a handle to use them.
#[derive(Debug)]
pub struct Runtime {
    handle: Handle,
    arbiters: Vec<Arbiter>,
}

impl Runtime {
    /// Starts the runtime in the current actix System: one arbiter per configured core for
    /// sessions, and the registry on the current arbiter.
    ///
    /// # Panics
    /// When called outside a running actix System.
    pub fn start(config: Config) -> Result<Self> {
        config
            .validate()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        if config.runtime.subreaper {
            if let Err(e) = process::become_subreaper() {
                warn!(error = %e, "cannot become a child subreaper; orphaned grandchildren are left to init");
            }
        }
        let n = config.arbiter_count();
        let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
        for (slot, arbiter) in arbiters.iter().enumerate() {
            arbiter.spawn(async move { CURRENT_ARBITER.set(Some(slot)) });
        }
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let config = Arc::new(config);
        let index = Arc::new(Index::default());
        let registry =
            Registry::new(Arc::clone(&config), Arc::clone(&index), handles.clone()).start();
        info!(
            arbiters = n,
            max_sessions = config.runtime.max_sessions,
            "stablehand runtime started"
        );
        Ok(Self {
            handle: Handle {
                registry,
                index,
                owner: Owner::default(),
                config,
                arbiters: handles.into(),
            },
            arbiters,
        })
    }

    /// A handle acting for the default local owner.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Ends every session (TERM, grace, KILL, reap) and stops the session arbiters.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// A cloneable, `Send` handle to the runtime, acting for one owner. Operations on existing
/// sessions go straight to the session's actor; only create and shutdown visit the registry.
#[derive(Debug, Clone)]
pub struct Handle {
    registry: Addr<Registry>,
    index: Arc<Index>,
    owner: Owner,
    config: Arc<Config>,
    arbiters: Arc<[ArbiterHandle]>,
}

thread_local! {
    /// The index of the session arbiter this thread is, if it is one.
    static CURRENT_ARBITER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Handle {
    /// The same runtime, acting for `owner`: it sees and touches only `owner`'s sessions.
    pub fn with_owner(&self, owner: Owner) -> Handle {
        Handle {
            owner,
            ..self.clone()
        }
    }

    /// The owner this handle acts for.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The configuration the runtime runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The session arbiters. Front ends may run connections on them, so that a client's
    /// requests to sessions created over that connection never cross threads.
    pub fn arbiters(&self) -> &[ArbiterHandle] {
        &self.arbiters
    }

    /// The registry actor, for callers that prefer messages.
    pub fn registry(&self) -> &Addr<Registry> {
        &self.registry
    }

    /// The address of one of this owner's sessions, for callers that prefer messages.
    pub fn addr(&self, id: SessionId) -> Result<Addr<Session>> {
        Ok(self.index.get(&self.owner, id)?.addr)
    }

    /// Creates a session (or returns the live one with the same name) and waits until it is
    /// Ready.
    pub async fn create(&self, req: CreateRequest) -> Result<SessionInfo> {
        self.registry
            .send(Create {
                owner: self.owner.clone(),
                req,
                // Called from a session arbiter (a front-end connection runs there): place the
                // session on the same thread.
                prefer_arbiter: CURRENT_ARBITER.get(),
            })
            .await
            .map_err(|_| Error::ShuttingDown)?
    }

    /// Runs a command (shell) or writes a line and collects what follows (process).
    pub async fn exec(&self, id: SessionId, req: Exec) -> Result<ExecResult> {
        self.call(id, req).await
    }

    /// Writes to the session's stdin.
    pub async fn send(&self, id: SessionId, req: SendInput) -> Result<SendResult> {
        self.call(id, req).await
    }

    /// Reads output by cursor, optionally long-polling.
    pub async fn read(&self, id: SessionId, req: Read) -> Result<ReadResult> {
        self.call(id, req).await
    }

    /// State, timings and metrics of a session.
    pub async fn state(&self, id: SessionId) -> Result<SessionInfo> {
        self.call(id, GetInfo).await
    }

    /// Sends a signal to the session's process group.
    pub async fn signal(&self, id: SessionId, signal: Signal) -> Result<SignalResult> {
        self.call(id, SendSignal { signal }).await
    }

    /// Ends a session: TERM to its process group, KILL after the grace period, reap.
    pub async fn end(&self, id: SessionId, req: End) -> Result<EndResult> {
        self.call(id, req).await
    }

    /// Lists this owner's sessions, newest first. Reads the index; no actor is asked.
    pub fn list(&self, req: &ListRequest) -> Result<ListResult> {
        registry::list(&self.index, &self.owner, req)
    }

    /// Number of sessions in each state, over all owners.
    pub fn counts(&self) -> Vec<(StateKind, usize)> {
        let all = self.index.all();
        StateKind::ALL
            .iter()
            .map(|&k| (k, all.iter().filter(|s| s.state() == k).count()))
            .collect()
    }

    /// Ends every session and refuses new ones.
    pub async fn shutdown(&self) {
        let _ = self.registry.send(Shutdown).await;
    }

    async fn call<M, R>(&self, id: SessionId, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Send + 'static,
        R: Send + 'static,
        Session: Handler<M>,
    {
        let entry = self.index.get(&self.owner, id)?;
        match entry.addr.send(msg).await {
            Ok(result) => result,
            Err(_) => {
                entry.shared.set_state(StateKind::Failed);
                Err(Error::ActorGone { id: id.to_string() })
            }
        }
    }
}
