//! One step: the choices offered, the strategy's pick, taking it.
//!
//! The choices are, in this order: every `Ready` process (in id order), the oldest
//! in-flight message or signal of each sender→receiver pair (so order per pair is kept),
//! and, under `timers: :anytime`, the earliest pending timer. When nothing else can happen,
//! a process that sent outside the run and is blocked in an instrumented receive is picked
//! to wait for the outside (in wall time, SPEC §9); failing that the earliest timer fires
//! (`:on_idle`), unless the root has returned: then the iteration drains what can still run
//! and ends (under `blocked_at_end: :fail` timers still fire during that drain). With no
//! choice left the iteration ends: a pass if the root returned (or, under `blocked_at_end:
//! :fail`, a deadlock of the processes still blocked, if any), else a deadlock listing the
//! blocked processes. Reaching `max_steps` ends it too. Each decision is recorded, so the schedule can be exported by
//! name and replayed.
//!
//! The processes and messages offered are kept in `choices` as they change (`set_state`,
//! `in_flight`); a step only settles the timer offered, so it costs O(log n), not O(n).

use super::{Applied, Next, Outcome, RawDecision, Session};
use crate::config::BlockedAtEnd;
use crate::ids::ProcId;
use crate::process::ProcState;
use crate::strategy::{Choice, Strategy};
use crate::timer::TimerMode;

impl Session {
    /// Settles the timer offered at this step: the earliest pending one under `:anytime`,
    /// or when nothing else can happen; none once the root has returned (draining only runs
    /// what can still run), unless `blocked_at_end: :fail`, where timers fire during the
    /// drain so that only a process no timer can wake is left blocked. A process waiting
    /// for the outside is not idle: it goes before any timer fires over it.
    fn offer_timer(&mut self) {
        if !self.root_exited && !self.choices.has_work() {
            if let Some(p) = self.awaiting_outside() {
                self.procs[p as usize].outside_turn = true;
                self.set_state(p, ProcState::Ready);
            }
        }
        debug_assert!(self
            .procs
            .iter()
            .enumerate()
            .all(|(i, p)| (p.state == ProcState::Ready) == self.choices.has_run(i as ProcId)));
        let blocked_fail = self.config.blocked_at_end == BlockedAtEnd::Fail;
        let idle = !self.choices.has_work() && (!self.root_exited || blocked_fail);
        let anytime = self.config.timers == TimerMode::Anytime && !self.root_exited;
        let wanted = idle || anytime;
        let fire = if wanted { self.earliest_timer() } else { None };
        self.choices.set_fire(fire);
    }

    pub(super) fn decide(&mut self, caller: Option<ProcId>, strategy: &mut dyn Strategy) -> Next {
        debug_assert!(self.running.is_none());
        loop {
            if self.outcome.is_some() {
                return Next::Ended;
            }
            self.offer_timer();
            if self.choices.is_empty() {
                let blocked: Vec<ProcId> = (0..self.procs.len() as ProcId)
                    .filter(|&p| self.procs[p as usize].state == ProcState::Blocked)
                    .collect();
                let blocked_fail = self.config.blocked_at_end == BlockedAtEnd::Fail;
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
            let picked = strategy.pick(&self.view(), &self.choices);
            self.choices.picked();
            let choice = match picked {
                Ok(c) if self.choices.contains(c) => c,
                Ok(c) => {
                    debug_assert!(false, "strategy picked {c:?}, which is not offered");
                    self.choices.get(0)
                }
                Err(d) => {
                    self.outcome = Some(Outcome::Diverged(d));
                    return Next::Ended;
                }
            };
            match choice {
                Choice::Deliver(m) => {
                    self.decisions.push(RawDecision::Deliver(m));
                    let pair = self.pair_of(m);
                    self.in_flight.remove(m, pair, &mut self.choices);
                    self.arrive(m);
                }
                Choice::Fire(t) => {
                    self.decisions.push(RawDecision::Fire(t));
                    self.choices.set_fire(None);
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
