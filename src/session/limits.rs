//! A session's memory and process limits: its cgroup (or the rlimits standing in for one) and
//! what the limits have done to it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tracing::warn;

use crate::model::limits::{LimitCounters, Limits, LimitsInfo};
use crate::process::limits::{Cgroup, Enforcer};
use crate::process::Rlimits;

/// The limits of one session across its spawns.
#[derive(Debug)]
pub(super) struct Bounds {
    enforcer: Arc<Enforcer>,
    limits: Limits,
    /// The cgroup of the running child, and the child's pid (its reaping is the session's).
    cgroup: Option<(Cgroup, Option<u32>)>,
    /// Counters when the cgroup was taken (a reused cgroup's go on from its last use).
    base: LimitCounters,
    /// Counters at the last look.
    seen: LimitCounters,
    /// Counters of earlier spawns' cgroups, removed since.
    before: LimitCounters,
    /// The last limit reached, in words.
    reached: Option<String>,
    /// A limit reached that no exec result has reported yet.
    unreported: Option<String>,
}

impl Bounds {
    pub(super) fn new(enforcer: Arc<Enforcer>, limits: Limits) -> Self {
        Self {
            enforcer,
            limits,
            cgroup: None,
            base: LimitCounters::default(),
            seen: LimitCounters::default(),
            before: LimitCounters::default(),
            reached: None,
            unreported: None,
        }
    }

    /// Before a spawn: makes the cgroup (returning the descriptors the child joins it
    /// through) or lowers `rlimits` to the limits where rlimits stand in for a cgroup.
    pub(super) fn prepare(
        &mut self,
        rlimits: &mut Rlimits,
        own_user: bool,
    ) -> std::io::Result<Vec<OwnedFd>> {
        self.release(false);
        let (memory, processes) = self.enforcer.rlimits(&self.limits, own_user);
        let lower = |current: Option<u64>, limit: Option<u64>| match (current, limit) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        };
        rlimits.data_bytes = lower(rlimits.data_bytes, memory);
        rlimits.nproc = lower(rlimits.nproc, processes);
        let Some(cgroup) = self.enforcer.cgroup(&self.limits)? else {
            return Ok(Vec::new());
        };
        let join = cgroup.open_join();
        self.base = cgroup.counters();
        self.seen = self.base;
        self.cgroup = Some((cgroup, None));
        join
    }

    /// The child that joined the cgroup was spawned (`Some`), or the spawn failed (`None`).
    pub(super) fn spawned(&mut self, pid: Option<u32>) {
        match pid {
            Some(pid) => {
                if let Some((_, leader)) = &mut self.cgroup {
                    *leader = Some(pid);
                }
            }
            None => self.release(false),
        }
    }

    /// Looks at the counters: the limit reached since the last look, in words (kept for
    /// the next exec result too).
    pub(super) fn check(&mut self) -> Option<String> {
        let now = self.cgroup.as_ref()?.0.counters();
        let reached = now.reached_since(&self.seen, &self.limits);
        self.seen = now;
        if let Some(r) = &reached {
            warn!(limit = %r, "a session reached its limit");
            self.reached = Some(r.clone());
            self.unreported = Some(r.clone());
        }
        reached
    }

    /// The limit reached that no exec result has reported yet.
    pub(super) fn take_unreported(&mut self) -> Option<String> {
        self.unreported.take()
    }

    /// After the child was reaped (`leader_reaped`) or when the session goes away: removes
    /// the cgroup, killing whatever is left in it (a child not yet reaped is left to its
    /// session, which reaps it).
    pub(super) fn release(&mut self, leader_reaped: bool) {
        if self.cgroup.is_some() {
            self.check();
        }
        if let Some((cgroup, leader)) = self.cgroup.take() {
            self.before = self.total(self.seen);
            self.base = LimitCounters::default();
            self.seen = LimitCounters::default();
            self.enforcer
                .release(cgroup, if leader_reaped { None } else { leader });
        }
    }

    /// The session's counters over all its spawns, with `now` this spawn's cgroup's.
    fn total(&self, now: LimitCounters) -> LimitCounters {
        LimitCounters {
            memory_kills: self.before.memory_kills
                + now.memory_kills.saturating_sub(self.base.memory_kills),
            process_refusals: self.before.process_refusals
                + now
                    .process_refusals
                    .saturating_sub(self.base.process_refusals),
        }
    }

    /// As `session_state` shows them.
    pub(super) fn info(&self) -> LimitsInfo {
        let now = self
            .cgroup
            .as_ref()
            .map_or(self.seen, |(c, _)| c.counters());
        let total = self.total(now);
        LimitsInfo {
            mechanism: self.enforcer.mechanism().as_str().into(),
            memory_mib: self.limits.memory_mib,
            processes: self.limits.processes,
            memory_kills: total.memory_kills,
            process_refusals: total.process_refusals,
            reached: now
                .reached_since(&self.seen, &self.limits)
                .or_else(|| self.reached.clone()),
            cgroup: self
                .cgroup
                .as_ref()
                .map(|(c, _)| c.dir().display().to_string()),
        }
    }
}

impl Drop for Bounds {
    fn drop(&mut self) {
        self.release(false);
    }
}
