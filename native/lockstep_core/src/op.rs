//! The operations a process announces at a sync point, and what applying one hands back.

use crate::ids::{MonitorId, MsgId, NameId, NodeId, ProcId, TimerId};
use crate::message::{Reason, Target};
use crate::trace::SendFate;

/// The operation a process announces at a sync point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Send {
        to: Target,
    },
    /// `retry` is true after a match attempt found nothing: the process then waits for a
    /// new message (or its timeout) instead of being offered again at once. `timeout` is
    /// the `after` in virtual ms, given on the first attempt.
    Receive {
        retry: bool,
        timeout: Option<u64>,
    },
    Yield,
    Random {
        n: u64,
    },
    Spawn {
        link: bool,
    },
    SpawnOn {
        link: bool,
        node: NodeId,
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
    /// `None`: a ref this run never handed out (OTP's `demonitor/1` returns true anyway).
    Demonitor {
        monitor: Option<MonitorId>,
    },
    TrapExit {
        on: bool,
    },
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
    Sleep {
        ms: u64,
    },
    SendAfter {
        to: Target,
        ms: u64,
    },
    CancelTimer {
        timer: Option<TimerId>,
    },
    Nif {
        object: Option<u64>,
    },
    Cluster(ClusterOp),
}

/// What applying a pending operation produced; handed to the process that performed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    Started,
    Sent {
        msg: MsgId,
        fate: SendFate,
    },
    /// A send to a name nobody has registered: the sender raises `ArgumentError`.
    Unregistered,
    /// `link/1` to a process that no longer exists: the caller raises `noproc`.
    NoProc,
    /// Go and try to match against the mailbox; `last` means the receive's timeout has
    /// passed: if nothing matches now, run the `after` clause.
    ReceiveAttempt {
        last: bool,
    },
    Yielded,
    Random(u64),
    Spawned {
        child: ProcId,
    },
    Done,
    MonitorSet {
        monitor: MonitorId,
    },
    WasTrapping(bool),
    Alive(bool),
    /// `register/2` / `unregister/1` succeeded (`false`: `ArgumentError`, like OTP).
    NameOk(bool),
    Found(Option<ProcId>),
    /// The adapter reads the names with [`Session::registered_names`].
    Names,
    /// Like `Names`, for the given node.
    NamesOn(NodeId),
    Now(u64),
    TimerSet {
        timer: TimerId,
    },
    /// Milliseconds left, or `None` when the timer had fired or was cancelled.
    Cancelled(Option<u64>),
    /// The adapter reads the nodes with [`Session::nodes`].
    NodeList {
        up_only: bool,
    },
    NodeIs(NodeId),
    /// The adapter reads the names `node` sees with [`Session::global_names`].
    GlobalList(NodeId),
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
    Cluster(ClusterOp),
}

/// A cluster operation, performed at the step the strategy picks it like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterOp {
    StartNode(NodeId),
    StopNode(NodeId),
    /// Activates a partition defined with `Session::define_partition`.
    Partition(u32),
    Heal,
    MonitorNode(NodeId),
    SetTicktime(u64),
    Nodes,
    NodesUp,
    NodeOf(ProcId),
    GlobalRegister {
        name: u32,
        proc: ProcId,
    },
    GlobalUnregister(u32),
    GlobalWhereis(u32),
    GlobalNames,
    /// `whereis` on a given node's registry.
    WhereisOn {
        name: u32,
        node: NodeId,
    },
    /// The names registered on a given node.
    NamesOn(NodeId),
}
