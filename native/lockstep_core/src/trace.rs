//! Compact trace events: recorded on every iteration (a few words each), turned into
//! readable terms by the adapter only when a failing iteration is reported (an adapter
//! that keeps no trace drops them as it reads them: `Session::forget_events`).

use crate::ids::{MonitorId, MsgId, NameId, NodeId, ProcId, TimerId};
use crate::message::{Reason, SendFate};
use crate::process::ExitCause;

/// One thing that happened, at a given step, to or by `proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The scheduling step (1-based decision count) during which it happened.
    pub step: u64,
    pub proc: ProcId,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `proc` started running its body.
    Start,
    Spawn {
        child: ProcId,
        link: bool,
    },
    /// `proc` sent message `msg`; `to` is `None` for a pid outside the run.
    Send {
        to: Option<ProcId>,
        msg: MsgId,
        fate: SendFate,
    },
    /// `proc` sent to a registered name nobody holds: `send/2` raises `ArgumentError`.
    /// `global`: the name is one of the global registry's.
    SendToUnregistered {
        name: NameId,
        global: bool,
    },
    /// `proc` sent message `msg` to `{name, node}` and nobody holds the name there: like
    /// OTP, the message is silently dropped.
    SendToNobody {
        name: NameId,
        node: NodeId,
        msg: MsgId,
    },
    Link {
        to: ProcId,
    },
    Unlink {
        to: ProcId,
    },
    Monitor {
        target: ProcId,
        monitor: MonitorId,
    },
    Demonitor {
        monitor: MonitorId,
    },
    TrapExit {
        on: bool,
    },
    /// `proc` called `exit(to, reason)`; the signal is message `msg`.
    ExitSent {
        to: ProcId,
        msg: MsgId,
        reason: Reason,
        fate: SendFate,
    },
    /// An exit signal reached `proc`, which traps exits: it became an `{:EXIT, …}` message.
    ExitTrapped {
        msg: MsgId,
        from: ProcId,
        reason: Reason,
    },
    /// An exit signal with reason `:normal` reached `proc`, which does not trap exits.
    ExitIgnored {
        from: ProcId,
    },
    /// A `:DOWN` message reached `proc`'s mailbox.
    Down {
        msg: MsgId,
        monitor: MonitorId,
        from: ProcId,
        reason: Reason,
    },
    Alive {
        of: ProcId,
        alive: bool,
    },
    Register {
        name: NameId,
        target: ProcId,
        ok: bool,
    },
    Unregister {
        name: NameId,
        ok: bool,
    },
    Whereis {
        name: NameId,
        found: Option<ProcId>,
    },
    Now {
        ms: u64,
    },
    /// `proc` sleeps until `timer` fires.
    Sleep {
        timer: TimerId,
        ms: u64,
    },
    /// `proc` started `timer` (a `send_after` or a `receive … after`).
    TimerStarted {
        timer: TimerId,
        ms: u64,
    },
    /// `timer` (owned by `proc`) fired at virtual time `now`.
    TimerFired {
        timer: TimerId,
        now: u64,
    },
    TimerCancelled {
        timer: TimerId,
        left: Option<u64>,
    },
    /// `proc` read `timer` (`read_timer`): `left` ms to go, `None` when it had fired or
    /// was cancelled (or was never handed out: then `timer` is `None`).
    TimerRead {
        timer: Option<TimerId>,
        left: Option<u64>,
    },
    /// `proc`'s receive timed out.
    ReceiveTimeout,
    /// `proc` took a message sent by a process outside the run.
    ReceiveExternal,
    /// A shared-state operation on `object`.
    Nif {
        object: Option<u64>,
    },
    /// A message or signal to `proc` crossed a partition: lost, or held until heal.
    Cut {
        msg: MsgId,
        from: ProcId,
        deferred: bool,
    },
    NodeStarted {
        node: NodeId,
    },
    NodeStopped {
        node: NodeId,
    },
    Partitioned {
        partition: u32,
    },
    /// The partitions healed; `delivered` deferred messages were delivered.
    Healed {
        delivered: u32,
    },
    /// A partition's `net_ticktime` passed: connections across it are declared lost.
    Tick {
        partition: u32,
    },
    /// A `{:nodedown, node}` message reached `proc`.
    NodeDownMsg {
        msg: MsgId,
        node: NodeId,
    },
    MonitorNode {
        node: NodeId,
    },
    SetTicktime {
        ms: u64,
    },
    GlobalRegister {
        name: u32,
        target: ProcId,
        ok: bool,
    },
    GlobalUnregister {
        name: u32,
    },
    GlobalWhereis {
        name: u32,
        found: Option<ProcId>,
    },
    /// `proc` waits for `global`'s lock to register or unregister global name `name`: a
    /// node it reaches is cut off and not yet declared down.
    GlobalLockWait {
        name: u32,
    },
    /// A heal (by `proc`) found global name `name` registered on both sides of the
    /// partition: `kept` keeps it and `killed` is killed, as `global:random_exit_name/3`
    /// does.
    GlobalConflict {
        name: u32,
        kept: ProcId,
        killed: ProcId,
    },
    /// An in-flight message reached `proc`'s mailbox.
    Deliver {
        msg: MsgId,
        from: ProcId,
    },
    /// A message to `proc` was discarded because `proc` had exited.
    Drop {
        msg: MsgId,
        from: ProcId,
    },
    /// `proc` consumed `msg` from its mailbox.
    Receive {
        msg: MsgId,
        from: ProcId,
    },
    /// `proc` looked at its mailbox, found nothing matching and now waits.
    Block,
    Yield,
    Random {
        n: u64,
        value: u64,
    },
    Exit {
        cause: ExitCause,
    },
}
