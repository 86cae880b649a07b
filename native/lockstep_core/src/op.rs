//! The operations a process announces at a sync point, and what applying one hands back.

use crate::ids::{MonitorId, MsgId, NameId, NodeId, ProcId, TimerId};
use crate::message::{Reason, SendFate, Target};

/// An operation: what a process announces at a sync point, and what it then holds as its
/// *pending* operation until the strategy picks it and the session applies it. One enum for
/// both: the pending operation is the announced one as is (`sleep(0)`, a yield, is stored
/// as [`Op::Yield`]), plus [`Op::Start`], which a spawned process holds until it first runs
/// and which no process announces. The arguments of `Receive` and `Sleep` take effect when
/// announced (they set up the wait and its timer); applying those ignores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Freshly spawned, not yet started. Never announced ([`crate::Session::sync`] refuses
    /// it).
    Start,
    Send {
        to: Target,
    },
    /// Try to match a message in its own mailbox. `retry` is true after a match attempt
    /// found nothing: the process then waits for a new message (or its timeout) instead of
    /// being offered again at once. `timeout` is the `after` in virtual ms, given on the
    /// first attempt.
    Receive {
        retry: bool,
        timeout: Option<u64>,
    },
    /// An explicit sync point with no effect.
    Yield,
    /// `Lockstep.random(n)`.
    Random {
        n: u64,
    },
    /// Spawn a child (linked or not) on the caller's node; `monitor`: and monitor it in the
    /// same step (`spawn_monitor`, `spawn_opt` with `:monitor`).
    Spawn {
        link: bool,
        monitor: bool,
    },
    /// Spawn a child (linked or not, monitored or not) on `node`.
    SpawnOn {
        link: bool,
        monitor: bool,
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
    /// `monitor(:process, name)` (`node`: `None`) or `monitor(:process, {name, node})`: the
    /// name is looked up when the monitor is applied.
    MonitorName {
        name: NameId,
        node: Option<NodeId>,
    },
    /// `None`: a ref this run never handed out (OTP's `demonitor/1` returns true anyway).
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
    Sleep {
        ms: u64,
    },
    SendAfter {
        to: Target,
        ms: u64,
    },
    /// `notify`: `cancel_timer(ref, [{:async, true}, {:info, true}])`, whose result
    /// arrives as a message to the caller instead of being returned.
    CancelTimer {
        timer: Option<TimerId>,
        notify: bool,
    },
    /// `read_timer(ref)`: the ms left, without touching the timer; `notify` as for
    /// `CancelTimer` (`read_timer(ref, [{:async, true}])`).
    ReadTimer {
        timer: Option<TimerId>,
        notify: bool,
    },
    /// A shared-state operation (ETS, atomics, …) on `object` (a hash of table and key,
    /// which the trace shows and `:pos` races on); `access`, when the caller knows it, says
    /// precisely what it reads or writes (exhaustive search's dependency relation).
    Nif {
        object: Option<u64>,
        access: Option<SharedAccess>,
    },
    Cluster(ClusterOp),
}

/// What a shared-state operation touches: one key of a table (an ETS key, an atomics or
/// counters index, a persistent_term key) or, with `key: None`, the whole table. Tables and
/// keys are hashes of the terms naming them; `stable` says that those terms hold no
/// reference, pid or port, so the same object hashes alike in every iteration (a table
/// created anew in each iteration does not: then only this iteration may compare it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SharedAccess {
    pub table: u64,
    pub key: Option<u64>,
    pub write: bool,
    pub stable: bool,
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
    /// Nothing else of the run can happen and this process, blocked in a receive, sent to
    /// a process outside the run: wait (in wall time, up to the run's `:timeout`) for a
    /// message from outside.
    AwaitOutside,
    Yielded,
    Random(u64),
    Spawned {
        child: ProcId,
    },
    Done,
    MonitorSet {
        monitor: MonitorId,
    },
    /// `demonitor/2`'s `:info`: the monitor was active and is now removed (`false`: not
    /// found, already fired or delivered, or not the caller's).
    Demonitored(bool),
    WasTrapping(bool),
    Alive(bool),
    /// `register/2` / `unregister/1` succeeded (`false`: `ArgumentError`, like OTP).
    NameOk(bool),
    Found(Option<ProcId>),
    /// The adapter reads the names with [`crate::Session::registered_names`].
    Names,
    /// Like `Names`, for the given node.
    NamesOn(NodeId),
    Now(u64),
    TimerSet {
        timer: TimerId,
    },
    /// Milliseconds left, or `None` when the timer had fired or was cancelled. `notice`:
    /// the message to the caller that carries this result (`notify`), already in its
    /// mailbox; the adapter's caller puts the real `{:cancel_timer, ref, result}` there.
    Cancelled {
        left: Option<u64>,
        notice: Option<MsgId>,
    },
    /// `read_timer`: milliseconds left, or `None` when the timer had fired or was
    /// cancelled; `notice` as for `Cancelled`.
    TimerLeft {
        left: Option<u64>,
        notice: Option<MsgId>,
    },
    /// The adapter reads the nodes with [`crate::Session::nodes`].
    NodeList {
        up_only: bool,
    },
    /// The adapter reads the nodes with [`crate::Session::visible_nodes`].
    VisibleFrom(NodeId),
    NodeIs(NodeId),
    /// The adapter reads the names `node` sees with [`crate::Session::global_names`].
    GlobalList(NodeId),
}

/// A cluster operation, performed at the step the strategy picks it like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterOp {
    StartNode(NodeId),
    StopNode(NodeId),
    /// Activates a partition defined with [`crate::Session::define_partition`].
    Partition(u32),
    Heal,
    MonitorNode(NodeId),
    SetTicktime(u64),
    Nodes,
    NodesUp,
    /// `nodes()` as the caller's node sees them: the other nodes that are up and whose
    /// connection it has not declared lost.
    Visible,
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
