//! What travels between processes: messages and signals, their bookkeeping (never their
//! payload: the adapter holds it), where a send goes, the exit reasons signals carry, and
//! what became of a send. Shared by the session, the strategies (which look at messages
//! through `View`) and the trace.

use crate::ids::{MonitorId, NameId, NodeId, ProcId, TimerId};

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
    /// As `Given`, a reason that is `:shutdown` or `{:shutdown, _}`: it kills like any
    /// reason but `:normal`, yet it is no crash, even under `crash: :strict`.
    Shutdown(u32),
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

/// What travels from one process to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    /// A user message; the adapter holds the payload.
    User,
    /// An exit signal (`link` true when it comes from a link).
    Exit { reason: Reason, link: bool },
    /// A monitor's `:DOWN` notification.
    Down { monitor: MonitorId, reason: Reason },
    /// A `{:nodedown, node}` message for a node monitor.
    NodeDown { node: NodeId },
}

/// Bookkeeping for one sent message or signal (never its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: ProcId,
    /// `None` for a pid outside the run.
    pub to: Option<ProcId>,
    pub state: MsgState,
    pub kind: MsgKind,
    /// Sent to this alias of `to`: dropped if the alias is no longer active on arrival.
    pub alias: Option<u32>,
    /// Sent by this `send_after` timer when it fired: the adapter holds the payload under
    /// the timer, and delivers it with [`crate::Effect::DeliverTimer`].
    pub timer: Option<TimerId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgState {
    InFlight,
    InMailbox,
    Consumed,
    Dropped,
    /// A signal that took effect without becoming a message (ignored, or killed its target).
    Acted,
    /// Sent to a pid outside the run.
    External,
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
    /// Lost to a partition (`:drop`).
    Cut,
    /// Held back by a partition (`:defer`) until it heals.
    Deferred,
}
