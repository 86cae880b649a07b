//! Virtual time: sleeps, `receive … after`, `send_after`, partition ticks.
//!
//! A timer is a deadline on the session's clock (`now`, virtual ms from 0), never a wait.
//! Firing one is a decision like any other (`Choice::Fire`): under `timers: :on_idle` only
//! when nothing else can happen, under `:anytime` the earliest pending timer is always one
//! of the choices; firing jumps the clock to its deadline, so a one-hour sleep costs no
//! wall time. Ties go to the older timer. Once the root has returned no timer fires.
//!
//! As in OTP: `sleep(ms)` blocks until its timer fires (`sleep(0)` is a yield);
//! `send_after(dest, msg, ms)` resolves `dest` when it fires and sends from the timer's
//! node as `send/2` would — to a dead or unregistered target the message is lost, to
//! another node it travels like any message between nodes, to a pid outside the run it is
//! a real send; `cancel_timer/1` answers the ms
//! left, or `false` for a timer that fired or was cancelled, and `read_timer/1` the same
//! without cancelling. `erlang:start_timer/3` is a `send_after` whose payload the adapter
//! wraps as `{timeout, Ref, Msg}`: the engine never sees payloads. `cancel_timer/2`'s
//! `{info, false}` only changes what the adapter returns; `{async, true}` with info (and
//! `read_timer/2`'s `{async, true}`) makes the result a message to the caller (`notify`). A partition's tick is a timer too
//! (`cluster.rs`).

use super::{Effect, Session};
use crate::ids::{MsgId, ProcId, TimerId};
use crate::message::{Message, MsgKind, MsgState, SendFate, Target};
use crate::op::{Op, OpResult};
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

    /// The pending timer with the earliest deadline (the older on a tie).
    pub(super) fn earliest_timer(&mut self) -> Option<TimerId> {
        while let Some(&Reverse((_, t))) = self.timer_queue.peek() {
            if self.timers[t as usize].state == TimerState::Pending {
                return Some(t);
            }
            self.timer_queue.pop();
        }
        None
    }

    /// `caller` announces `sleep(ms)`, `ms > 0`: it is blocked until its sleep timer fires.
    pub(super) fn start_sleep(&mut self, caller: ProcId, ms: u64) -> bool {
        let t = self.add_timer(caller, ms, TimerKind::Sleep);
        self.procs[caller as usize].sleep_timer = Some(t);
        self.record(caller, EventKind::Sleep { timer: t, ms });
        true
    }

    /// `now()` by `p`.
    pub(super) fn clock(&mut self, p: ProcId) -> OpResult {
        self.record(p, EventKind::Now { ms: self.now });
        OpResult::Now(self.now)
    }

    /// `send_after(to, msg, ms)` by `p`: the adapter keeps the payload under the timer.
    pub(super) fn send_after(&mut self, p: ProcId, to: Target, ms: u64) -> OpResult {
        let timer = self.add_timer(p, ms, TimerKind::SendAfter { to });
        self.record(p, EventKind::TimerStarted { timer, ms });
        OpResult::TimerSet { timer }
    }

    /// `cancel_timer(ref)` by `p` (`None`: a ref this run never handed out). With
    /// `notify` (OTP's `[{async, true}, {info, true}]`) the result travels as a message
    /// from the timer service to `p`: one to oneself, in the mailbox when the call returns
    /// (OTP sends it asynchronously; at once is one of the orders it allows).
    pub(super) fn cancel_timer(
        &mut self,
        p: ProcId,
        timer: Option<TimerId>,
        notify: bool,
    ) -> OpResult {
        let left = match self.pending_timer(timer) {
            Some((t, deadline)) => {
                self.timers[t as usize].state = TimerState::Cancelled;
                let left = deadline.saturating_sub(self.now);
                self.record(
                    p,
                    EventKind::TimerCancelled {
                        timer: t,
                        left: Some(left),
                    },
                );
                Some(left)
            }
            None => None,
        };
        let notice = notify.then(|| self.notice(p));
        OpResult::Cancelled { left, notice }
    }

    /// `read_timer(ref)` by `p`: the ms left of a pending timer, else `None`. Nothing
    /// changes, but it is a sync point: whether the timer fired first is a race.
    pub(super) fn read_timer(
        &mut self,
        p: ProcId,
        timer: Option<TimerId>,
        notify: bool,
    ) -> OpResult {
        let left = self
            .pending_timer(timer)
            .map(|(_, deadline)| deadline.saturating_sub(self.now));
        self.record(p, EventKind::TimerRead { timer, left });
        let notice = notify.then(|| self.notice(p));
        OpResult::TimerLeft { left, notice }
    }

    /// The message that carries an asynchronous timer answer to `p` (the adapter holds
    /// its payload): from `p` to itself, so in the mailbox at once under any delivery.
    fn notice(&mut self, p: ProcId) -> MsgId {
        let m = self.msgs.len() as MsgId;
        self.msgs.push(Message {
            from: p,
            to: Some(p),
            state: MsgState::InMailbox,
            kind: MsgKind::User,
            alias: None,
            timer: None,
        });
        self.add_to_mailbox(p);
        self.record(
            p,
            EventKind::Send {
                to: Some(p),
                msg: m,
                fate: SendFate::Delivered,
            },
        );
        m
    }

    /// `timer` and its deadline, if it is a timer of this run still pending.
    fn pending_timer(&self, timer: Option<TimerId>) -> Option<(TimerId, u64)> {
        let t = timer?;
        let x = self.timers.get(t as usize)?;
        (x.state == TimerState::Pending).then_some((t, x.deadline))
    }

    /// Fires pending timer `t`: the clock jumps to its deadline and its owner is woken, or
    /// its message sent, or its partition declared lost.
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
            TimerKind::SendAfter { to } => self.send_after_fired(t, owner, to),
        }
    }

    /// `send_after` timer `t` of `owner` fired: it sends its message to `to`.
    fn send_after_fired(&mut self, t: TimerId, owner: ProcId, to: Target) {
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
            // To a pid outside the run: a real send, as `send/2` to it is.
            None if to == Target::External => {
                self.msgs[m as usize].state = MsgState::External;
                self.effects.push(Effect::SendTimerOutside { timer: t });
            }
            // To a name nobody holds when it fires: lost, as in OTP.
            None => {}
        }
    }
}
