//! POS — Partial Order Sampling.
//!
//! Yuan, Yang, Gu, "Partial Order Aware Concurrency Sampling", CAV 2018. Random walk samples
//! interleavings very unevenly: a bug that needs one process to win several races in a row
//! is found with probability that shrinks exponentially in the number of races. POS gives
//! every *event* (here: a pending choice) its own random priority and always takes the
//! highest; after each step it re-draws the priorities of the pending events that race with
//! the executed one. A choice that does not race keeps its priority, so a process whose
//! next steps touch nothing contested is not re-rolled against at every step, and one that
//! lost a race gets a fresh chance instead of losing forever (the bias of plain random
//! priorities that the paper's "BasicPOS" suffers from). No depth parameter.
//!
//! Control flow: `pick` first settles the previous step — the executed choice is a consumed
//! event, so its process's next operation is a new event with a fresh priority, and every
//! pending choice on the same [`RaceObject`](super::RaceObject) is re-drawn — then draws
//! priorities for choices seen for the first time and returns the highest. The settling
//! happens at the next `pick` because the trait has no after-step hook; nothing can change
//! a pending choice's race object in between.

use super::{Choice, Divergence, RaceObject, Strategy, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

pub struct Pos {
    rng: ChaCha8Rng,
    /// Priorities of events seen and not yet executed or re-drawn.
    priorities: HashMap<Choice, u64>,
    /// The choice taken at the previous step and what it touched.
    last: Option<(Choice, Option<RaceObject>)>,
}

impl Pos {
    pub fn new() -> Self {
        Pos {
            rng: ChaCha8Rng::seed_from_u64(0),
            priorities: HashMap::new(),
            last: None,
        }
    }

    /// Forgets the priorities the previous step invalidated.
    fn settle_last_step(&mut self, view: &View<'_>, choices: &[Choice]) {
        let Some((executed, object)) = self.last.take() else {
            return;
        };
        self.priorities.remove(&executed);
        if let Some(object) = object {
            for &c in choices {
                if view.race_object(c) == Some(object) {
                    self.priorities.remove(&c);
                }
            }
        }
    }
}

impl Default for Pos {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for Pos {
    fn name(&self) -> &'static str {
        "pos"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.priorities.clear();
        self.last = None;
    }

    fn pick(&mut self, view: &View<'_>, choices: &[Choice]) -> Result<usize, Divergence> {
        self.settle_last_step(view, choices);
        let mut best = 0;
        let mut best_priority = 0;
        for (i, &c) in choices.iter().enumerate() {
            let rng = &mut self.rng;
            let p = *self.priorities.entry(c).or_insert_with(|| rng.random());
            if i == 0 || p > best_priority {
                best = i;
                best_priority = p;
            }
        }
        let chosen = choices[best];
        self.last = Some((chosen, view.race_object(chosen)));
        Ok(best)
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.rng.random_range(0..n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProcName;
    use crate::message::Target;
    use crate::op::Op;
    use crate::process::Process;

    fn parked(pending: Op) -> Process {
        Process {
            pending,
            ..Process::new(ProcName::root(), None)
        }
    }

    /// P0 and P1 send to P3, P2 yields, P3 receives: the sends and the receive all touch
    /// P3's mailbox, the yield touches nothing.
    #[test]
    fn after_a_step_only_the_choices_racing_with_it_are_redrawn() {
        let procs = vec![
            parked(Op::Send {
                to: Target::Proc(3),
            }),
            parked(Op::Send {
                to: Target::Proc(3),
            }),
            parked(Op::Yield),
            parked(Op::Receive {
                retry: false,
                timeout: None,
            }),
        ];
        let view = View {
            step: 1,
            procs: &procs,
            msgs: &[],
            timers: &[],
        };
        let choices: Vec<Choice> = (0..4).map(Choice::Run).collect();
        let mut executed = [false; 4];
        for seed in 0..50 {
            let mut pos = Pos::new();
            pos.begin_iteration(seed);
            let first = choices[pos.pick(&view, &choices).unwrap()];
            let before = pos.priorities.clone();
            // The same choices are pending at the next step (the executed one announced the
            // same kind of operation again).
            pos.pick(&view, &choices).unwrap();
            if let Choice::Run(p) = first {
                executed[p as usize] = true;
            }
            let executed_races = view.race_object(first).is_some();
            for &c in &choices {
                let races = executed_races && view.race_object(c) == view.race_object(first);
                let redrawn = pos.priorities[&c] != before[&c];
                assert_eq!(
                    redrawn,
                    c == first || races,
                    "seed {seed}: {first:?} then {c:?}"
                );
            }
        }
        assert_eq!(
            executed, [true; 4],
            "every kind of step was the executed one"
        );
    }

    #[test]
    fn the_highest_priority_choice_is_taken() {
        let procs = vec![parked(Op::Yield), parked(Op::Yield)];
        let view = View {
            step: 1,
            procs: &procs,
            msgs: &[],
            timers: &[],
        };
        let choices = [Choice::Run(0), Choice::Run(1)];
        for seed in 0..20 {
            let mut pos = Pos::new();
            pos.begin_iteration(seed);
            let picked = pos.pick(&view, &choices).unwrap();
            let best = if pos.priorities[&choices[0]] > pos.priorities[&choices[1]] {
                0
            } else {
                1
            };
            assert_eq!(picked, best);
        }
    }
}
