//! A REPL's namespace in the store: saved on request ([`SnapshotNamespace`]), before the
//! session is evicted or suspended at shutdown, and restored when a resumed session starts.
//!
//! A snapshot is an exec whose input is the driver's snapshot operation
//! (`kind::repl::snapshot_input`): it queues behind a running exec like any other, and its
//! report comes back in `ExecResult::result`. The pickled namespace is kept as the session's
//! `namespace` blob; each snapshot replaces the last one, so a resume restores the latest.
//! Before eviction or shutdown the snapshot is bounded by [`SNAPSHOT_ON_END_MS`]; a REPL that
//! is busy then is suspended without one (its last snapshot, if any, stays). A resumed REPL
//! reads the blob off the arbiter (a blocking task), hands it to the driver, and the driver
//! sends the restore in place of its start-up hello: the session is Ready once it is loaded.

use std::collections::BTreeMap;
use std::time::Instant;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};

use super as repl;
use crate::session::messages::{End, EndMode, EndResult, Exec, ExecResult};
use crate::session::{elapsed_ms, Kind, Session, StateKind};
use crate::store::When;
use crate::{Error, Result};

/// Name of the store blob holding a REPL's namespace.
pub const NAMESPACE_BLOB: &str = "namespace";
/// Most pickled bytes one snapshot keeps; names beyond it are skipped as too large.
pub const SNAPSHOT_LIMIT_BYTES: u64 = 64 << 20;
/// How long eviction and shutdown wait for a snapshot, in ms.
pub const SNAPSHOT_ON_END_MS: u64 = 5_000;
/// Default wait for a snapshot asked for by a caller, in ms.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Save a REPL session's namespace to the store now (it queues behind a running exec).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Message,
    schemars::JsonSchema,
)]
#[rtype(result = "Result<NamespaceSnapshot>")]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotNamespace {
    /// How long to wait, in ms (default 30000). On timeout the snapshot goes on running and
    /// is not stored.
    pub timeout_ms: Option<u64>,
}

/// What a namespace snapshot kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NamespaceSnapshot {
    /// Size of the stored blob.
    pub bytes: u64,
    /// `dill` when the session's Python could import it, else `pickle`.
    pub codec: String,
    /// Names kept (modules are kept by name and imported again).
    pub saved: Vec<String>,
    /// Names that could not be kept.
    pub skipped: Vec<String>,
    /// Why each skipped name was not kept.
    pub reasons: BTreeMap<String, String>,
    /// Wall time of the snapshot in ms.
    pub duration_ms: u64,
}

impl Handler<SnapshotNamespace> for Session {
    type Result = ResponseActFuture<Self, Result<NamespaceSnapshot>>;

    fn handle(&mut self, msg: SnapshotNamespace, ctx: &mut Self::Context) -> Self::Result {
        if self.spec.kind != Kind::Repl {
            return self.refuse(Error::Unsupported {
                op: "namespace snapshot",
                kind: self.spec.kind,
            });
        }
        if self.persist.is_none() {
            return self.refuse(Error::Store("the runtime runs without a store".into()));
        }
        let started = Instant::now();
        let run = self.snapshot_exec(msg.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS), ctx);
        Box::pin(run.map(move |res, act, _| act.save_namespace(res?, started)))
    }
}

impl Session {
    /// Runs the driver's snapshot operation as an exec.
    fn snapshot_exec(
        &mut self,
        timeout_ms: u64,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ExecResult>> {
        let exec = Exec {
            input: repl::snapshot_input(SNAPSHOT_LIMIT_BYTES),
            timeout_ms: Some(timeout_ms),
            interactive: false,
        };
        <Self as Handler<Exec>>::handle(self, exec, ctx)
    }

    /// Stores the blob a finished snapshot operation returned.
    fn save_namespace(&mut self, r: ExecResult, started: Instant) -> Result<NamespaceSnapshot> {
        let report = snapshot_report(r)?;
        let (blob, snapshot) = read_report(&report, started)?;
        let store = self
            .persist
            .as_ref()
            .map(|p| p.store().clone())
            .ok_or_else(|| Error::Store("the runtime runs without a store".into()))?;
        store.put_blob(self.shared.id, NAMESPACE_BLOB, Some(blob), When::Now);
        info!(
            session = %self.shared.id,
            bytes = snapshot.bytes,
            codec = %snapshot.codec,
            saved = snapshot.saved.len(),
            skipped = ?snapshot.skipped,
            "namespace saved"
        );
        Ok(snapshot)
    }

    /// Before a REPL is evicted or suspended at shutdown: saves its namespace (bounded by
    /// [`SNAPSHOT_ON_END_MS`]), then ends it. `None` when there is nothing to save first.
    pub(in crate::session) fn snapshot_before_end(
        &mut self,
        msg: End,
        ctx: &mut Context<Self>,
    ) -> Option<ResponseActFuture<Self, Result<EndResult>>> {
        if msg.mode == EndMode::End || self.spec.kind != Kind::Repl || self.persist.is_none() {
            return None;
        }
        match (self.state.kind(), msg.mode) {
            (StateKind::Ready, _) => {}
            // Eviction refuses a busy session anyway.
            (StateKind::Busy, EndMode::Evict) => return None,
            (state @ (StateKind::Busy | StateKind::Paused), _) => {
                warn!(
                    session = %self.shared.id,
                    %state,
                    "the REPL is not idle: it is suspended without a namespace snapshot (a \
                     resume restores its last one, if any)"
                );
                return None;
            }
            _ => return None,
        }
        let started = Instant::now();
        let run = self.snapshot_exec(SNAPSHOT_ON_END_MS, ctx);
        Some(Box::pin(run.then(move |res, act, _| {
            let unfinished = matches!(&res, Ok(r) if r.timed_out);
            if let Err(e) = res.and_then(|r| act.save_namespace(r, started)) {
                warn!(
                    session = %act.shared.id,
                    error = %e,
                    "the namespace was not saved before the session was suspended"
                );
            }
            if unfinished {
                // The snapshot still runs; the process is about to end, so stop waiting.
                act.complete_running(None, None, None);
            }
            act.end_now(msg)
        })))
    }

    /// When a resumed REPL starts: loads its namespace blob off the arbiter, hands it to the
    /// driver, then starts up. Returns false when there is nothing to restore (start up now).
    pub(in crate::session) fn restore_namespace(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.spec.kind != Kind::Repl {
            return false;
        }
        let Some(store) = self
            .persist
            .as_ref()
            .filter(|p| p.is_resume())
            .map(|p| p.store().clone())
        else {
            return false;
        };
        let id = self.shared.id;
        let load = tokio::task::spawn_blocking(move || store.blob(id, NAMESPACE_BLOB));
        ctx.spawn(load.into_actor(self).map(move |res, act, ctx| {
            if act.state.kind() != StateKind::Starting {
                return; // ended while loading
            }
            match res {
                Ok(Ok(Some(blob))) => {
                    // Leave the rest of the start-up time for Python itself.
                    let budget = act.config.startup_timeout_ms / 2;
                    let input = repl::restore_input(&blob, budget, &id.to_string());
                    if let Err(e) = act.driver.begin_exec(&input, false) {
                        warn!(session = %id, error = %e, "cannot restore the namespace");
                    }
                }
                Ok(Ok(None)) => debug!(session = %id, "no namespace snapshot to restore"),
                Ok(Err(e)) => warn!(
                    session = %id,
                    error = %e,
                    "reading the namespace snapshot failed; the session starts empty"
                ),
                Err(e) => warn!(
                    session = %id,
                    error = %e,
                    "loading the namespace snapshot failed; the session starts empty"
                ),
            }
            act.start_up(ctx);
        }));
        true
    }
}

/// The report of a snapshot operation that finished; an error when it timed out, failed, or
/// the REPL ended first.
fn snapshot_report(r: ExecResult) -> Result<Value> {
    if r.timed_out {
        return Err(Error::Io(
            "the namespace snapshot did not finish in time; it goes on running and will \
             not be stored"
                .into(),
        ));
    }
    if let Some(e) = r.error {
        return Err(Error::Io(format!(
            "the namespace snapshot failed: {}: {}",
            e.kind, e.message
        )));
    }
    let Some(report) = r.result else {
        return Err(Error::Io(
            "the REPL ended before its namespace snapshot finished".into(),
        ));
    };
    Ok(report)
}

/// The pickled blob a snapshot `report` carries, and what the snapshot kept.
fn read_report(report: &Value, started: Instant) -> Result<(Vec<u8>, NamespaceSnapshot)> {
    let blob = report
        .get("blob")
        .and_then(Value::as_str)
        .and_then(crate::codec::base64_decode)
        .ok_or_else(|| Error::Io("the namespace snapshot returned no blob".into()))?;
    let reasons = report
        .get("reasons")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let snapshot = NamespaceSnapshot {
        bytes: blob.len() as u64,
        codec: report
            .get("codec")
            .and_then(Value::as_str)
            .unwrap_or("pickle")
            .to_owned(),
        saved: report_names(report, "saved"),
        skipped: report_names(report, "skipped"),
        reasons,
        duration_ms: elapsed_ms(started),
    };
    Ok((blob, snapshot))
}

/// The list of names under `key` in a snapshot report (empty when absent).
fn report_names(report: &Value, key: &str) -> Vec<String> {
    report
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
