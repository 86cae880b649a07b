//! One step: the choices offered, the strategy's pick, taking it.
//!
//! The choices are, in this order: every `Ready` process (in id order), the oldest
//! in-flight message or signal of each sender→receiver pair (so order per pair is kept),
//! and, under `timers: :anytime`, the earliest pending timer. When nothing else can happen,
//! a process that sent outside the run and is blocked in a receive is picked to wait for
//! the outside (in wall time, SPEC §9); failing that the earliest timer fires (`:on_idle`), unless the root has returned: then the
//! iteration drains what can still run and ends (under `blocked_at_end: :fail` timers
//! still fire during that drain). With no choice left the iteration ends: a pass if the
//! root returned (or, under `blocked_at_end: :fail`, a deadlock of the processes still
//! blocked, if any), else a deadlock listing the blocked processes. Reaching
//! `max_steps` ends it too. Each decision is recorded, so the schedule can be exported by
//! name and replayed.

use super::{Applied, Next, Outcome, RawDecision, Session};
use crate::config::BlockedAtEnd;
use crate::ids::ProcId;
use crate::process::ProcState;
use crate::strategy::{Choice, Strategy};
use crate::timer::TimerMode;

impl Session {
    pub(super) fn collect_choices(&mut self) {
        self.choices.clear();
        debug_assert!(self
            .procs
            .iter()
            .enumerate()
            .all(|(i, p)| (p.state == ProcState::Ready) == self.ready.contains(&(i as ProcId))));
        self.choices
            .extend(self.ready.iter().map(|&p| Choice::Run(p)));
        // The oldest in-flight message of each sender→receiver pair.
        self.pairs_seen.clear();
        for &m in &self.in_flight {
            let msg = &self.msgs[m as usize];
            if self.pairs_seen.insert((msg.from, msg.to)) {
                self.choices.push(Choice::Deliver(m));
            }
        }
        if self.config.timers == TimerMode::Anytime && !self.root_exited {
            if let Some(t) = self.earliest_timer() {
                self.choices.push(Choice::Fire(t));
            }
        }
    }

    pub(super) fn decide(&mut self, caller: Option<ProcId>, strategy: &mut dyn Strategy) -> Next {
        debug_assert!(self.running.is_none());
        loop {
            if self.outcome.is_some() {
                return Next::Ended;
            }
            self.collect_choices();
            let blocked_fail = self.config.blocked_at_end == BlockedAtEnd::Fail;
            if self.choices.is_empty() && !self.root_exited {
                // A process that sent outside the run and waits in a receive is not idle:
                // before any timer fires over it, it waits for the outside (SPEC §9).
                if let Some(p) = self.awaiting_outside() {
                    self.procs[p as usize].outside_turn = true;
                    self.set_state(p, ProcState::Ready);
                    self.choices.push(Choice::Run(p));
                }
            }
            if self.choices.is_empty() && (!self.root_exited || blocked_fail) {
                // Idle: the earliest timer fires. Once the root has returned, draining
                // only runs what can still run (`blocked_at_end: :kill`), or (`:fail`)
                // fires timers too, so that only a process no timer can wake is blocked.
                if let Some(t) = self.earliest_timer() {
                    self.choices.push(Choice::Fire(t));
                }
            }
            if self.choices.is_empty() {
                let blocked: Vec<ProcId> = (0..self.procs.len() as ProcId)
                    .filter(|&p| self.procs[p as usize].state == ProcState::Blocked)
                    .collect();
                self.outcome = Some(if !self.root_exited {
                    Outcome::Deadlock { blocked }
                } else if blocked_fail && !blocked.is_empty() {
                    Outcome::BlockedAtEnd { blocked }
                } else {
                    Outcome::Pass
                });
                return Next::Ended;
            }
            if self.step >= self.config.max_steps {
                self.outcome = Some(Outcome::MaxSteps);
                return Next::Ended;
            }
            self.step += 1;
            let index = match strategy.pick(&self.view(), &self.choices) {
                Ok(i) if i < self.choices.len() => i,
                Ok(i) => {
                    debug_assert!(false, "strategy picked {i} of {}", self.choices.len());
                    0
                }
                Err(d) => {
                    self.outcome = Some(Outcome::Diverged(d));
                    return Next::Ended;
                }
            };
            match self.choices[index] {
                Choice::Deliver(m) => {
                    self.decisions.push(RawDecision::Deliver(m));
                    self.in_flight.retain(|&x| x != m);
                    self.arrive(m);
                }
                Choice::Fire(t) => {
                    self.decisions.push(RawDecision::Fire(t));
                    self.fire(t);
                }
                Choice::Run(p) => {
                    debug_assert_eq!(self.procs[p as usize].state, ProcState::Ready);
                    self.decisions.push(RawDecision::Run(p));
                    match self.apply(p, strategy) {
                        Applied::Run(result) if Some(p) == caller => return Next::Continue(result),
                        Applied::Run(result) => return Next::Wake(p, result),
                        Applied::Skip => {}
                        Applied::Ended => {
                            debug_assert!(self.running.is_none(), "running at the end");
                            return Next::Ended;
                        }
                    }
                }
            }
        }
    }
}
