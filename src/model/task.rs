//! Tasks: operations whose outcome outlives the call that started them (and the server), and
//! the states they go through.

use serde::{Deserialize, Serialize};

/// Where a task is. It starts `Working`; `Completed`, `Failed` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// The operation runs.
    Working,
    /// The operation finished with a result (which may report a failure of the work itself).
    Completed,
    /// The operation could not produce a result (an error instead), or died with the server.
    Failed,
    /// The caller cancelled it.
    Cancelled,
}

impl TaskStatus {
    /// True once the task cannot change any more.
    pub fn is_terminal(self) -> bool {
        self != TaskStatus::Working
    }

    /// The status as the protocol writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
