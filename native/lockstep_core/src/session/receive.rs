//! Mailboxes and receives.
//!
//! A mailbox here is a count: the adapter holds the messages themselves, in the real BEAM
//! mailbox (or in hand, see `handoff.rs` in the adapter). A receive is announced
//! (`start_receive`), then applied as one *attempt*: the process looks at its mailbox and
//! either reports what it matched (`consumed`, not a sync point) or announces a retry. A
//! process whose attempt matched nothing is `Blocked` until something new reaches its
//! mailbox (`add_to_mailbox`) or its `after` timer fires, so a blocked process is never
//! offered and deadlock detection is exact.
//!
//! `after` follows OTP's `receive … after`: the timeout counts from the first attempt,
//! `after 0` has always expired, and when the timer fires the process gets one last
//! attempt (`ReceiveAttempt { last: true }`) before its `after` clause runs — which the
//! trace records as `receive_timeout` at its next call. A match cancels the timer.

use super::{EngineError, Session};
use crate::ids::{MsgId, ProcId};
use crate::message::MsgState;
use crate::op::{Op, OpResult};
use crate::process::ProcState;
use crate::timer::{TimerKind, TimerState};
use crate::trace::EventKind;

impl Session {
    /// `caller` announces a receive: a first attempt looks at the whole mailbox and starts
    /// its `after` timer; a retry (the last attempt matched nothing) waits for something
    /// new. Returns whether it is blocked.
    pub(super) fn start_receive(
        &mut self,
        caller: ProcId,
        retry: bool,
        timeout: Option<u64>,
    ) -> bool {
        if retry {
            let proc = &mut self.procs[caller as usize];
            if proc.arrived_running {
                // A message it may not have seen: it tries again, over the whole mailbox.
                proc.arrived_running = false;
                proc.fresh = true;
                proc.untested = proc.mailbox;
            } else {
                proc.fresh = false;
                proc.untested = 0;
            }
        } else {
            if let Some(old) = self.procs[caller as usize].receive_timer.take() {
                self.timers[old as usize].state = TimerState::Cancelled;
            }
            let proc = &mut self.procs[caller as usize];
            proc.timed_out = false;
            proc.arrived_running = false;
            proc.fresh = proc.mailbox > 0;
            proc.untested = proc.mailbox;
            match timeout {
                Some(0) => self.procs[caller as usize].timed_out = true,
                Some(ms) => {
                    let t = self.add_timer(caller, ms, TimerKind::ReceiveAfter);
                    self.procs[caller as usize].receive_timer = Some(t);
                    self.record(caller, EventKind::TimerStarted { timer: t, ms });
                }
                None => {}
            }
        }
        let proc = &self.procs[caller as usize];
        !proc.fresh && !proc.timed_out
    }

    /// `p`'s receive was picked: it goes and tries to match; `last` when its timeout has
    /// passed.
    pub(super) fn receive_attempt(&mut self, p: ProcId) -> OpResult {
        let proc = &mut self.procs[p as usize];
        if proc.outside_turn {
            proc.outside_turn = false;
            return OpResult::AwaitOutside;
        }
        let last = proc.timed_out;
        proc.timed_out = false;
        proc.last_attempt = last;
        proc.arrived_running = false;
        OpResult::ReceiveAttempt { last }
    }

    /// The running process matched message `msg` in its mailbox. Not a sync point: it
    /// goes on running.
    pub fn consumed(&mut self, caller: ProcId, msg: MsgId) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        let m = self
            .msgs
            .get_mut(msg as usize)
            .ok_or(EngineError::UnknownMessage(msg))?;
        if m.to != Some(caller) || m.state != MsgState::InMailbox {
            return Err(EngineError::NotInMailbox { proc: caller, msg });
        }
        m.state = MsgState::Consumed;
        let from = m.from;
        let proc = &mut self.procs[caller as usize];
        debug_assert!(proc.mailbox > 0);
        proc.mailbox -= 1;
        proc.timed_out = false;
        proc.last_attempt = false;
        if let Some(t) = proc.receive_timer.take() {
            self.timers[t as usize].state = TimerState::Cancelled;
        }
        self.record(caller, EventKind::Receive { msg, from });
        Ok(())
    }

    /// The running process took a message sent from outside the run (its real mailbox
    /// holds it; the engine never saw it). Not a sync point.
    pub fn external_received(&mut self, caller: ProcId) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.awaiting_outside.remove(&caller);
        let proc = &mut self.procs[caller as usize];
        proc.awaits_outside = false;
        proc.timed_out = false;
        proc.last_attempt = false;
        if let Some(t) = proc.receive_timer.take() {
            self.timers[t as usize].state = TimerState::Cancelled;
        }
        self.record(caller, EventKind::ReceiveExternal);
        Ok(())
    }

    /// The running process, which sent to a process outside the run, is about to receive
    /// in code that can take a message from outside (an instrumented receive): when it
    /// blocks and nothing else can happen, it waits for the outside. Not a sync point.
    pub fn await_outside(&mut self, caller: ProcId) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.procs[caller as usize].awaits_outside = true;
        self.awaiting_outside.insert(caller);
        Ok(())
    }

    /// The lowest blocked process whose receive may be waiting for the outside. Looks at
    /// the processes that said they may (`Session::awaiting_outside`), not at every process:
    /// this runs at every step on which nothing else can happen.
    pub(super) fn awaiting_outside(&self) -> Option<ProcId> {
        self.awaiting_outside.iter().copied().find(|&p| {
            let p = &self.procs[p as usize];
            debug_assert!(p.awaits_outside);
            p.state == ProcState::Blocked && matches!(p.pending, Op::Receive { .. })
        })
    }

    /// A process that made its last receive attempt and did not report a match ran its
    /// `after` clause: record that now, at the step it happened in.
    pub(super) fn note_timeout(&mut self, caller: ProcId) {
        let proc = &mut self.procs[caller as usize];
        if proc.last_attempt {
            proc.last_attempt = false;
            self.record(caller, EventKind::ReceiveTimeout);
        }
    }

    /// Something reached `to`'s mailbox: it is fresh, and a receive blocked on it may run.
    pub(super) fn add_to_mailbox(&mut self, to: ProcId) {
        let target = &mut self.procs[to as usize];
        target.mailbox += 1;
        target.fresh = true;
        target.untested += 1;
        if target.state == ProcState::Running {
            target.arrived_running = true;
        }
        if target.state == ProcState::Blocked && matches!(target.pending, Op::Receive { .. }) {
            self.set_state(to, ProcState::Ready);
        }
    }
}
