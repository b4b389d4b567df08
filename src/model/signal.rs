//! Signal names accepted from callers.

use serde::{Deserialize, Serialize};

/// A signal a caller may send to a session's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// Interrupt (Ctrl-C).
    Int,
    /// Polite termination request.
    Term,
    /// Forced termination; cannot be caught.
    Kill,
    /// Hang-up.
    Hup,
    /// Quit (Ctrl-\).
    Quit,
    /// User-defined signal 1.
    Usr1,
    /// User-defined signal 2.
    Usr2,
    /// Stop (pause) the group.
    Stop,
    /// Continue a stopped group.
    Cont,
}

impl Signal {
    /// All accepted signals, in the order their names are listed in errors.
    pub const ALL: [Signal; 9] = [
        Signal::Int,
        Signal::Term,
        Signal::Kill,
        Signal::Hup,
        Signal::Quit,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Stop,
        Signal::Cont,
    ];

    /// The libc signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Hup => libc::SIGHUP,
            Signal::Quit => libc::SIGQUIT,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }

    /// The short upper-case name (`INT`, `TERM`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Hup => "HUP",
            Signal::Quit => "QUIT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }

    /// Name of a raw signal number, for reporting how a child died.
    pub fn name_of(number: i32) -> String {
        Self::ALL
            .iter()
            .find(|s| s.number() == number)
            .map(|s| format!("SIG{}", s.name()))
            .unwrap_or_else(|| format!("signal {number}"))
    }
}

impl std::str::FromStr for Signal {
    type Err = String;

    /// Parses `INT`, `SIGINT` or `sigint`; the error lists the accepted names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Self::ALL
            .iter()
            .copied()
            .find(|sig| sig.name() == bare)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.name()).collect();
                format!("unknown signal {s:?}; expected one of {}", names.join(", "))
            })
    }
}
