//! Timers in virtual time. Nothing here waits: a timer is a deadline on the session's
//! virtual clock, and firing one is a scheduling decision like any other (under
//! `timers: :on_idle` only when nothing else can happen; under `:anytime` the earliest
//! pending timer is always one of the choices). Firing jumps the clock to the deadline, so
//! a one-hour sleep costs no wall time.

use crate::ids::ProcId;
use crate::message::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// Timers fire only when no process can run and nothing is in flight.
    OnIdle,
    /// Firing the earliest pending timer is a choice at every step.
    Anytime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Wakes its owner from `sleep/1`.
    Sleep,
    /// Ends its owner's `receive … after`.
    ReceiveAfter,
    /// Delivers the adapter-held payload to `to` (`send_after/3`).
    SendAfter { to: Target },
    /// A partition's `net_ticktime` has passed.
    Tick { partition: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    Fired,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub owner: ProcId,
    /// 1-based count of the timers its owner created: with the owner's name, a stable
    /// identity for schedules.
    pub ordinal: u32,
    pub deadline: u64,
    pub kind: TimerKind,
    pub state: TimerState,
}
