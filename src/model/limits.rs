//! Per-session memory and process limits: what a session asks for, how the server enforces
//! them, and what a session reports when one is reached.

use serde::{Deserialize, Serialize};

/// Memory and process limits of one session (all its processes together, where cgroups
/// enforce them). `None` leaves the configured default (in a request) or no limit.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory of the session, in MiB (1 to the configured maximum).
    pub memory_mib: Option<u64>,
    /// Processes and threads of the session at once (1 to the configured maximum).
    pub processes: Option<u64>,
}

/// How the server is asked to enforce limits (`[session.limits] mechanism`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    /// A cgroup per session where the server may create them, else rlimits.
    #[default]
    Auto,
    /// A cgroup per session; the server refuses to start without them.
    Cgroup,
    /// Rlimits per process (`RLIMIT_DATA`, and `RLIMIT_NPROC` for sessions that run as a
    /// mapped user).
    Rlimit,
    /// No limits.
    Off,
}

/// How limits are enforced in this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// A cgroup v2 per session (`memory.max`, `pids.max`).
    CgroupV2,
    /// A cgroup per session in the v1 `memory` and `pids` hierarchies.
    CgroupV1,
    /// Rlimits per process.
    Rlimit,
    /// None.
    Off,
}

impl Mechanism {
    /// The name shown in metrics, the log and a session's state.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::CgroupV1 => "cgroup-v1",
            Mechanism::Rlimit => "rlimit",
            Mechanism::Off => "off",
        }
    }

    /// Whether the whole session is counted together (a cgroup), not each process.
    pub fn is_cgroup(self) -> bool {
        matches!(self, Mechanism::CgroupV2 | Mechanism::CgroupV1)
    }
}

/// How often a session's cgroup has stopped it so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounters {
    /// Processes the kernel killed at the memory limit.
    pub memory_kills: u64,
    /// Forks (and clones) refused at the process limit.
    pub process_refusals: u64,
}

impl LimitCounters {
    /// What changed from `before` to `self`, in words ("memory limit 512 MiB reached: 1
    /// process killed"), or `None` when no limit was reached in between.
    pub fn reached_since(&self, before: &LimitCounters, limits: &Limits) -> Option<String> {
        let mut parts = Vec::new();
        let killed = self.memory_kills.saturating_sub(before.memory_kills);
        if killed > 0 {
            let mib = limits.memory_mib.unwrap_or_default();
            let s = if killed == 1 { "" } else { "es" };
            parts.push(format!(
                "memory limit {mib} MiB reached: {killed} process{s} killed"
            ));
        }
        let refused = self
            .process_refusals
            .saturating_sub(before.process_refusals);
        if refused > 0 {
            let n = limits.processes.unwrap_or_default();
            let s = if refused == 1 { "" } else { "s" };
            parts.push(format!(
                "process limit {n} reached: {refused} fork{s} refused"
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// A session's limits as its state shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LimitsInfo {
    /// How they are enforced: `cgroup-v2`, `cgroup-v1` (the whole session together),
    /// `rlimit` (each process) or `off`.
    pub mechanism: String,
    /// Memory limit, MiB.
    pub memory_mib: Option<u64>,
    /// Process limit.
    pub processes: Option<u64>,
    /// Processes killed at the memory limit so far (cgroups only).
    pub memory_kills: u64,
    /// Forks refused at the process limit so far (cgroups only).
    pub process_refusals: u64,
    /// The last limit reached, in words.
    pub reached: Option<String>,
    /// The session's cgroup directory (the memory one under v1), while it runs in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reached_names_the_limit_and_what_it_did() {
        let limits = Limits {
            memory_mib: Some(64),
            processes: Some(32),
        };
        let zero = LimitCounters::default();
        assert_eq!(zero.reached_since(&zero, &limits), None);
        let after = LimitCounters {
            memory_kills: 1,
            process_refusals: 3,
        };
        assert_eq!(
            after.reached_since(&zero, &limits).as_deref(),
            Some("memory limit 64 MiB reached: 1 process killed; process limit 32 reached: 3 forks refused")
        );
        assert_eq!(after.reached_since(&after, &limits), None);
    }
}
