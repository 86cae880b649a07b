//! The process table's entries: states, pending operations, how a process ended.

use crate::ids::{MonitorId, NameId, NodeId, ProcId, ProcName, TimerId};
use crate::message::Reason;
use crate::op::Op;

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
    pub pending: Op,
    /// Messages delivered to its mailbox and not yet consumed.
    pub mailbox: u32,
    /// Whether something arrived since its last failed match: a receiving process with no
    /// fresh message is blocked, so deadlock detection is exact.
    pub fresh: bool,
    /// Messages its current receive has not tried yet: the whole mailbox when the receive
    /// starts, none after a failed match, one more per arrival. When it is exactly one, the
    /// adapter may hand that message over with the wake-up instead of delivering it first.
    pub untested: u32,
    /// Something reached its mailbox while it was the running process: during a receive
    /// attempt, only a process killed from outside the run meanwhile (its `:DOWN` or
    /// `:EXIT`, applied by another BEAM process's call) can do that, and the attempt may
    /// not have seen it, so a retry does not block on it.
    pub arrived_running: bool,
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
    pub aliases: Vec<Alias>,
    /// It sent to a process outside the run and receives in code that can take a message
    /// from outside (`Session::await_outside`), until it takes one (SPEC §9).
    pub awaits_outside: bool,
    /// Picked to wait for the outside: its next receive attempt does, in wall time.
    pub outside_turn: bool,
}

/// An active alias of a process (erlang(3) alias/1, monitor/3's `alias` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alias {
    /// Its number, chosen by the process that owns it.
    pub id: u32,
    /// `reply` / `reply_demonitor`: deactivated by the first message that reaches the
    /// mailbox through it (OTP does it when the message arrives, not when it is received).
    pub reply: bool,
    /// `demonitor` / `reply_demonitor`: the monitor it belongs to; removing the monitor
    /// (demonitor, or its `:DOWN` reaching the mailbox) deactivates it, and a reply through
    /// a `reply_demonitor` alias removes the monitor.
    pub monitor: Option<MonitorId>,
}

impl Process {
    pub fn new(name: ProcName, parent: Option<ProcId>) -> Self {
        Process {
            name,
            parent,
            children: 0,
            state: ProcState::Ready,
            pending: Op::Start,
            mailbox: 0,
            fresh: false,
            untested: 0,
            arrived_running: false,
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
            awaits_outside: false,
            outside_turn: false,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.state != ProcState::Exited
    }
}
