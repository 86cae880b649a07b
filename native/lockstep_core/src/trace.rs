//! Compact trace events: recorded on every iteration (a few words each), turned into
//! readable terms by the adapter only when a failing iteration is reported.

use crate::process::{ExitCause, MsgId, ProcId};

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

/// What became of a sent message at the moment it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFate {
    /// Put in the target's mailbox at once (`delivery: :instant`, or an unmanaged target).
    Delivered,
    /// In flight until the strategy delivers it.
    InFlight,
    /// The target had exited: silently dropped, like `send/2` to a dead pid.
    Dropped,
}
