//! The process table's entries: symbolic names, states and pending operations.

use std::fmt;

/// Index of a process in one session's process table. Only meaningful inside that session;
/// anything that must survive across iterations (schedules, traces) uses [`ProcName`].
pub type ProcId = u32;

/// Index of a message in one session's message table (its send sequence number).
pub type MsgId = u32;

/// A process's stable symbolic name, following the spawn tree: the root is `P`, its n-th
/// child `P.n`, that child's m-th child `P.n.m`. A child's name depends only on its parent's
/// program order, so the same process has the same name in every interleaving.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcName(Vec<u32>);

impl ProcName {
    pub fn root() -> Self {
        ProcName(Vec::new())
    }

    pub fn child(&self, ordinal: u32) -> Self {
        let mut path = Vec::with_capacity(self.0.len() + 1);
        path.extend_from_slice(&self.0);
        path.push(ordinal);
        ProcName(path)
    }

    pub fn from_path(path: Vec<u32>) -> Self {
        ProcName(path)
    }

    pub fn path(&self) -> &[u32] {
        &self.0
    }

    /// Parses the printed form (`P`, `P.1`, `P.1.2`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        if parts.next()? != "P" {
            return None;
        }
        let path = parts
            .map(|p| match p.parse::<u32>() {
                Ok(n) if n > 0 && !p.starts_with('0') => Some(n),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()?;
        Some(ProcName(path))
    }
}

impl fmt::Display for ProcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for n in &self.0 {
            write!(f, ".{n}")?;
        }
        Ok(())
    }
}

/// Where a process stands with respect to the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Parked at a sync point with an operation the strategy may pick (or spawned and not
    /// yet started: that counts as able to run).
    Ready,
    /// The one process executing Erlang code right now.
    Running,
    /// Waiting in a receive with nothing new in its mailbox since its last failed match.
    Blocked,
    /// Finished, crashed or killed.
    Exited,
}

/// The operation a parked process will perform when the strategy picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingOp {
    /// Freshly spawned, not yet started.
    Start,
    /// Send to a managed process (`Some`) or to a pid outside the run (`None`).
    Send { to: Option<ProcId> },
    /// Try to match a message in its own mailbox.
    Receive,
    /// An explicit sync point with no effect.
    Yield,
    /// `Lockstep.random(n)`.
    Random { n: u64 },
    /// Spawn a child (linked or not).
    Spawn { link: bool },
}

/// How a process's own code ended, as classified by the Elixir wrapper around its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// Returned, or exited with `:normal`, `:shutdown` or `{:shutdown, _}`.
    Normal,
    /// Raised, threw or exited with any other reason.
    Abnormal,
}

/// Why a process is no longer running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCause {
    /// Its own code ended.
    Own(ExitClass),
    /// An exit signal through a link from this process.
    Linked { from: ProcId },
    /// Killed by something outside the run (noticed through the NIF's process monitor).
    External,
    /// Killed when the iteration ended while it was still blocked or ready.
    Teardown,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub name: ProcName,
    pub parent: Option<ProcId>,
    /// How many children it has spawned: the next child's ordinal is this plus one.
    pub children: u32,
    pub state: ProcState,
    /// Meaningful while `state` is `Ready` or `Blocked`.
    pub pending: PendingOp,
    /// Messages delivered to its mailbox and not yet consumed.
    pub mailbox: u32,
    /// Whether something arrived since its last failed match: a receiving process with no
    /// fresh message is blocked, so deadlock detection is exact.
    pub fresh: bool,
    pub links: Vec<ProcId>,
    pub exit: Option<ExitCause>,
}

impl Process {
    pub fn new(name: ProcName, parent: Option<ProcId>) -> Self {
        Process {
            name,
            parent,
            children: 0,
            state: ProcState::Ready,
            pending: PendingOp::Start,
            mailbox: 0,
            fresh: false,
            links: Vec::new(),
            exit: None,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.state != ProcState::Exited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_and_parse() {
        let name = ProcName::root().child(1).child(12);
        assert_eq!(name.to_string(), "P.1.12");
        assert_eq!(ProcName::parse("P.1.12"), Some(name));
        assert_eq!(ProcName::parse("P"), Some(ProcName::root()));
        for bad in ["", "Q", "P.", "P.0", "P.01", "P.x", "P..1"] {
            assert_eq!(ProcName::parse(bad), None, "{bad:?}");
        }
    }
}
