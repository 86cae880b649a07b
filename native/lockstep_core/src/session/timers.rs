//! Timers.

use super::Session;
use crate::ids::{MsgId, ProcId, TimerId};
use crate::message::{Message, MsgKind, MsgState};
use crate::op::Op;
use crate::process::ProcState;
use crate::timer::{Timer, TimerKind, TimerState};
use crate::trace::EventKind;
use std::cmp::Reverse;

impl Session {
    pub(super) fn add_timer(&mut self, owner: ProcId, ms: u64, kind: TimerKind) -> TimerId {
        let proc = &mut self.procs[owner as usize];
        proc.timers_created += 1;
        let t = self.timers.len() as TimerId;
        let deadline = self.now.saturating_add(ms);
        self.timers.push(Timer {
            owner,
            ordinal: proc.timers_created,
            deadline,
            kind,
            state: TimerState::Pending,
        });
        self.timer_queue.push(Reverse((deadline, t)));
        t
    }

    pub(super) fn earliest_timer(&mut self) -> Option<TimerId> {
        while let Some(&Reverse((_, t))) = self.timer_queue.peek() {
            if self.timers[t as usize].state == TimerState::Pending {
                return Some(t);
            }
            self.timer_queue.pop();
        }
        None
    }

    pub(super) fn fire(&mut self, t: TimerId) {
        let timer = self.timers[t as usize];
        debug_assert_eq!(timer.state, TimerState::Pending);
        self.timers[t as usize].state = TimerState::Fired;
        self.now = self.now.max(timer.deadline);
        let owner = timer.owner;
        self.record(
            owner,
            EventKind::TimerFired {
                timer: t,
                now: self.now,
            },
        );
        match timer.kind {
            TimerKind::Sleep => {
                let proc = &mut self.procs[owner as usize];
                proc.sleep_timer = None;
                if proc.state == ProcState::Blocked && matches!(proc.pending, Op::Sleep { .. }) {
                    self.set_state(owner, ProcState::Ready);
                }
            }
            TimerKind::ReceiveAfter => {
                let proc = &mut self.procs[owner as usize];
                proc.receive_timer = None;
                proc.timed_out = true;
                if proc.state == ProcState::Blocked && matches!(proc.pending, Op::Receive { .. }) {
                    self.set_state(owner, ProcState::Ready);
                }
            }
            TimerKind::Tick { partition } => self.tick(partition),
            TimerKind::SendAfter { to } => {
                let m = self.msgs.len() as MsgId;
                let target = self.resolve(owner, to);
                self.msgs.push(Message {
                    from: owner,
                    to: target,
                    state: MsgState::Dropped,
                    kind: MsgKind::User,
                    alias: None,
                    timer: Some(t),
                });
                match target {
                    // OTP: erlang:send_after/3 sends the message when the timer expires,
                    // from the timer's node as `erlang:send/2` would, so to a process on
                    // another node it crosses the network like any message: in flight, and
                    // lost or held back by a partition. On its own node it is in the
                    // mailbox at once.
                    Some(to) if self.alive(to) && self.node_of(to) != self.node_of(owner) => {
                        self.route(m, owner, to);
                    }
                    Some(to) if self.alive(to) => self.arrive(m),
                    Some(to) => self.record(
                        to,
                        EventKind::Drop {
                            msg: m,
                            from: owner,
                        },
                    ),
                    None => {}
                }
            }
        }
    }

    /// `caller` announces `sleep(ms)`, `ms > 0`: it is blocked until its sleep timer fires.
    pub(super) fn start_sleep(&mut self, caller: ProcId, ms: u64) -> bool {
        let t = self.add_timer(caller, ms, TimerKind::Sleep);
        self.procs[caller as usize].sleep_timer = Some(t);
        self.record(caller, EventKind::Sleep { timer: t, ms });
        true
    }
}
