//! The process table's entries: symbolic names, states and pending operations.

use std::fmt;

/// Index of a process in one session's process table. Only meaningful inside that session;
/// anything that must survive across iterations (schedules, traces) uses [`ProcName`].
pub type ProcId = u32;

/// Index of a message in one session's message table (its send sequence number).
pub type MsgId = u32;

/// Index of a monitor in one session's monitor table.
pub type MonitorId = u32;

/// Index of a timer in one session's timer table.
pub type TimerId = u32;

/// A registered name, interned by the adapter (the engine never sees the atom).
pub type NameId = u32;

/// A simulated node; 0 is `:nonode@nohost`.
pub type NodeId = u32;

/// An exit reason, as far as the engine needs to know it. Reason *terms* stay with the
/// adapter, which can rebuild each one from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Normal,
    /// Only as the reason of `exit(pid, :kill)`: untrappable, the target dies `Killed`.
    Kill,
    Killed,
    NoProc,
    NoConnection,
    /// The (abnormal) reason process `p` exited with.
    ExitOf(ProcId),
    /// The reason given to the n-th `exit/2` call of the session.
    Given(u32),
}

/// Where a send goes, resolved when the send is performed (not when announced), so a name
/// registered in between is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Proc(ProcId),
    /// A pid outside the run: a plain send.
    External,
    /// A name registered on the sender's node.
    Name(NameId),
    /// A name registered on a given node (`{name, node}`).
    NameAt(NameId, NodeId),
    /// A name in the global registry.
    Global(u32),
    /// An alias of a process (OTP's `alias/0`): once deactivated, messages to it are
    /// dropped instead of reaching the mailbox — how a late `call` reply is discarded.
    Alias(ProcId, u32),
}

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
    Send {
        to: Target,
    },
    /// Try to match a message in its own mailbox.
    Receive,
    /// An explicit sync point with no effect.
    Yield,
    /// `Lockstep.random(n)`.
    Random {
        n: u64,
    },
    /// Spawn a child (linked or not) on a node (`None`: the parent's).
    Spawn {
        link: bool,
        node: Option<NodeId>,
    },
    Link {
        to: ProcId,
    },
    Unlink {
        to: ProcId,
    },
    Monitor {
        target: ProcId,
    },
    Demonitor {
        monitor: Option<MonitorId>,
    },
    TrapExit {
        on: bool,
    },
    /// `exit(pid, reason)`.
    ExitSignal {
        to: ProcId,
        reason: Reason,
    },
    Alive {
        of: ProcId,
    },
    Register {
        name: NameId,
        proc: ProcId,
    },
    Unregister {
        name: NameId,
    },
    Whereis {
        name: NameId,
    },
    Registered,
    Now,
    /// Parked until its sleep timer fires.
    Sleep,
    SendAfter {
        to: Target,
        ms: u64,
    },
    CancelTimer {
        timer: Option<TimerId>,
    },
    /// A shared-state operation (ETS, atomics, …) on `object` (a hash of table and key).
    Nif {
        object: Option<u64>,
    },
    Cluster(crate::cluster::ClusterOp),
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
    /// An exit signal from `exit(pid, reason)` (or a link) that the process did not trap.
    Signal { from: ProcId, reason: Reason },
    /// Killed by something outside the run (noticed through the NIF's process monitor).
    External,
    /// Its simulated node was stopped.
    NodeDown,
    /// Killed (`exit(pid, :kill)`) by the global registry's resolution of a name it held
    /// on one side of a healed partition, the other side's holder being kept.
    NameConflict,
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
    /// Messages its current receive has not tried yet: the whole mailbox when the receive
    /// starts, none after a failed match, one more per arrival. When it is exactly one, the
    /// adapter may hand that message over with the wake-up instead of delivering it first.
    pub untested: u32,
    pub links: Vec<ProcId>,
    pub exit: Option<ExitCause>,
    /// The reason linked and monitoring processes see.
    pub exit_reason: Reason,
    pub node: NodeId,
    pub trap_exit: bool,
    /// Its pending `receive … after` timer, while it waits in one.
    pub receive_timer: Option<TimerId>,
    /// Its current receive's timeout has passed: one last match attempt, then the `after`.
    pub timed_out: bool,
    /// It made that last attempt: unless it reports a match, its `after` clause ran, which
    /// the trace records at its next call.
    pub last_attempt: bool,
    /// Its pending sleep timer.
    pub sleep_timer: Option<TimerId>,
    /// Timers it has created: names timers stably (owner name, ordinal).
    pub timers_created: u32,
    pub registered: Option<NameId>,
    /// Its active aliases.
    pub aliases: Vec<u32>,
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
            untested: 0,
            links: Vec::new(),
            exit: None,
            exit_reason: Reason::Normal,
            node: 0,
            trap_exit: false,
            receive_timer: None,
            timed_out: false,
            last_attempt: false,
            sleep_timer: None,
            timers_created: 0,
            registered: None,
            aliases: Vec::new(),
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
