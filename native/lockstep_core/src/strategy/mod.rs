//! Strategies decide, at every step, which choice happens next. Mechanism (the session) is
//! kept apart from policy (this module): a strategy sees the pending choices (a
//! [`ChoiceSet`], kept up to date by the session, with the choices added since the last
//! pick) and a read-only view of the session, and returns one of the choices, nothing more.
//! Every strategy here costs O(log n) per step in the number of choices, or O(1), plus
//! what the step added (a new process, a new message): none scans all the choices.
//!
//! Each strategy lives in its own file and cites the paper it implements.

mod dependency;
mod exhaustive;
mod exhaustive_parallel;
mod fair_pct;
mod idpct;
mod metered;
mod pct;
mod pos;
mod priorities;
mod random;
#[cfg(test)]
mod reference;
mod replay;

pub use dependency::{dependent, Access, Footprint, Obj};
pub use exhaustive::{Dpor, Exhaustive};
pub use exhaustive_parallel::{spin_lock, Follower, ParallelSearch, ParallelStats, Stop, Take};
pub use fair_pct::FairPct;
pub use idpct::IdPct;
pub use metered::{IterationMetrics, Metered};
pub use pct::Pct;
pub use pos::Pos;
pub use random::RandomWalk;
pub use replay::Replay;

pub use crate::choices::{Choice, ChoiceSet};
use crate::ids::{MsgId, ProcId, ProcName, TimerId};
use crate::message::{Message, Target};
use crate::op::Op;
use crate::process::Process;
use crate::schedule::Decision;
use crate::timer::{Timer, TimerKind};
use crate::trace::Event;
use std::fmt;

/// The shared object a choice touches; two choices on the same object race (POS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaceObject {
    Mailbox(ProcId),
    /// A registered name (register / whereis / send-to-name race on it).
    Name(u32),
    /// Shared state outside processes (an ETS table and key, an atomics index…), hashed.
    Shared(u64),
}

/// What a strategy may look at when it decides.
pub struct View<'a> {
    /// The step being decided (1-based).
    pub step: u64,
    pub(crate) procs: &'a [Process],
    pub(crate) msgs: &'a [Message],
    pub(crate) timers: &'a [Timer],
    /// The iteration's trace so far: what each step did, which an exhaustive search reads
    /// to learn a step's footprint (a receive's message is only known once it ran).
    pub(crate) events: &'a [Event],
    /// The run's delivery mode (under `:delayed` a send to a live process puts a message in
    /// flight, to a dead one drops it: a send then depends on the target's death).
    pub(crate) delivery: crate::config::DeliveryMode,
}

impl<'a> View<'a> {
    /// The whole process table, read-only (wrappers use it to check the session's invariants).
    pub fn procs(&self) -> &'a [Process] {
        self.procs
    }

    pub fn proc_name(&self, id: ProcId) -> &'a ProcName {
        &self.procs[id as usize].name
    }

    pub fn pending(&self, id: ProcId) -> Op {
        self.procs[id as usize].pending
    }

    pub fn message(&self, id: MsgId) -> &'a Message {
        &self.msgs[id as usize]
    }

    /// Every message and signal sent so far, in send order (ids grow with send order).
    pub fn messages(&self) -> &'a [Message] {
        self.msgs
    }

    /// The events recorded so far in this iteration, in order.
    pub fn events(&self) -> &'a [Event] {
        self.events
    }

    /// The decision that taking `choice` would record.
    pub fn decision_for(&self, choice: Choice) -> Decision {
        match choice {
            Choice::Run(p) => Decision::Run(self.proc_name(p).clone()),
            Choice::Deliver(m) => {
                let msg = self.message(m);
                Decision::Deliver {
                    from: self.proc_name(msg.from).clone(),
                    to: self
                        .proc_name(msg.to.expect("in-flight messages have a managed target"))
                        .clone(),
                }
            }
            Choice::Fire(t) => {
                let timer = self.timer(t);
                Decision::Fire {
                    owner: self.proc_name(timer.owner).clone(),
                    ordinal: timer.ordinal,
                }
            }
        }
    }

    pub fn timer(&self, id: TimerId) -> &'a Timer {
        &self.timers[id as usize]
    }

    /// The object whose state taking `choice` reads or changes, if any.
    pub fn race_object(&self, choice: Choice) -> Option<RaceObject> {
        match choice {
            Choice::Run(p) => match self.pending(p) {
                Op::Send {
                    to: Target::Proc(to),
                } => Some(RaceObject::Mailbox(to)),
                Op::Send {
                    to: Target::Name(n) | Target::NameAt(n, _),
                } => Some(RaceObject::Name(n)),
                Op::Receive { .. } => Some(RaceObject::Mailbox(p)),
                // alive?/monitor/link first deliver the caller's in-flight signals to `to`.
                Op::ExitSignal { to, .. }
                | Op::Link { to }
                | Op::Monitor { target: to }
                | Op::Alive { of: to } => Some(RaceObject::Mailbox(to)),
                Op::Register { name, .. }
                | Op::Unregister { name }
                | Op::Whereis { name }
                | Op::MonitorName { name, .. } => Some(RaceObject::Name(name)),
                Op::Nif {
                    object: Some(o), ..
                } => Some(RaceObject::Shared(o)),
                _ => None,
            },
            Choice::Deliver(m) => self.message(m).to.map(RaceObject::Mailbox),
            Choice::Fire(t) => {
                let timer = self.timer(t);
                match timer.kind {
                    TimerKind::SendAfter {
                        to: Target::Proc(to),
                    } => Some(RaceObject::Mailbox(to)),
                    _ => Some(RaceObject::Mailbox(timer.owner)),
                }
            }
        }
    }
}

/// A replayed schedule that the program no longer follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub step: u64,
    /// What the schedule said; `None` when the schedule ran out.
    pub expected: Option<Decision>,
    /// What the program offered instead (empty when it ended early).
    pub got: Vec<Decision>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let got: Vec<String> = self.got.iter().map(|d| d.to_string()).collect();
        match &self.expected {
            Some(e) if self.got.is_empty() => write!(
                f,
                "step {}: the schedule says `{e}` but the program ended",
                self.step
            ),
            Some(e) => write!(
                f,
                "step {}: the schedule says `{e}` but the program offers [{}]",
                self.step,
                got.join(", ")
            ),
            None => write!(
                f,
                "step {}: the schedule ran out while the program offers [{}]",
                self.step,
                got.join(", ")
            ),
        }
    }
}

/// How far a systematic search has got (`Exhaustive`); randomised strategies have none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Iterations run so far (each an interleaving, also when cut short).
    pub explored: u64,
    /// Iterations that reached a state where every choice was asleep (source DPOR's
    /// redundant explorations; optimal DPOR has none unless it fell back, `restarted`).
    pub sleep_blocked: u64,
    /// Decisions on the search stack: how deep the tree still to explore reaches.
    pub depth: u64,
    /// Whether the whole tree (within the preemption bound, if any) has been explored.
    pub exhausted: bool,
    /// Iterations run before the search fell back from DPOR to depth-first search with
    /// sleep sets alone (a step disabled another: see `strategy/exhaustive.rs`); the
    /// search started over then, so `explored` counts them on top of the fallback's own.
    pub restarted: u64,
}

/// A scheduling policy. The session calls `begin_iteration` once per iteration, then `pick`
/// at every step (also when only one choice exists: a replay must check it), `random` for
/// `Lockstep.random/1`, and `end_iteration` when the iteration is over.
pub trait Strategy: Send {
    fn name(&self) -> &'static str;

    fn begin_iteration(&mut self, seed: u64);

    /// Returns one of `choices` (never empty). `choices.added()` lists what was added since
    /// the previous pick of this iteration (everything, at the first).
    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence>;

    /// Returns a value in `0..n` (`n > 0`).
    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence>;

    /// `completed` is false when the iteration was cut short by a failure or `max_steps`.
    fn end_iteration(&mut self, _view: &View<'_>, _completed: bool) -> Result<(), Divergence> {
        Ok(())
    }

    /// A systematic search's progress; `None` for randomised strategies.
    fn search_stats(&self) -> Option<SearchStats> {
        None
    }

    /// Whether the strategy reads the iteration's events (`View::events`): an adapter
    /// that drops events nobody will read (`Session::forget_events`) must keep them.
    fn reads_events(&self) -> bool {
        false
    }
}

/// Derives an iteration's seed from the run's seed (SplitMix64 over seed and iteration), so
/// iteration `i` of a run is reproducible on its own.
pub fn iteration_seed(run_seed: u64, iteration: u64) -> u64 {
    let mut z = run_seed
        .wrapping_add(iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_seeds_are_stable_and_distinct() {
        assert_eq!(iteration_seed(42, 1), iteration_seed(42, 1));
        assert_ne!(iteration_seed(42, 1), iteration_seed(42, 2));
        assert_ne!(iteration_seed(42, 1), iteration_seed(43, 1));
    }
}
