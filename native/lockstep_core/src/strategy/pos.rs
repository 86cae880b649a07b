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

use super::priorities::{Highest, Priorities};
use super::{Choice, ChoiceSet, Divergence, RaceObject, Strategy, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

pub struct Pos {
    rng: ChaCha8Rng,
    /// Priorities of events seen and not yet executed or re-drawn.
    priorities: Priorities,
    /// The offered choices by priority (invariant: every offered choice has an entry with
    /// its current priority).
    highest: Highest,
    /// Choices by the object they touched when they were offered: every offered choice is
    /// in the list of its object (a choice's object cannot change while it stays offered);
    /// entries no longer offered are pruned when their object is next raced on.
    racers: HashMap<RaceObject, Vec<Choice>>,
    /// The choice taken at the previous step and what it touched.
    last: Option<(Choice, Option<RaceObject>)>,
    /// Scratch: choices whose priority `settle_last_step` forgot.
    redrawn: Vec<Choice>,
}

impl Pos {
    pub fn new() -> Self {
        Pos {
            rng: ChaCha8Rng::seed_from_u64(0),
            priorities: Priorities::default(),
            highest: Highest::default(),
            racers: HashMap::new(),
            last: None,
            redrawn: Vec::new(),
        }
    }

    /// Forgets the priorities the previous step invalidated: the executed event's, and
    /// those of the offered choices on the object it touched (O(those choices)).
    fn settle_last_step(&mut self, view: &View<'_>, choices: &ChoiceSet) {
        let Some((executed, object)) = self.last.take() else {
            return;
        };
        self.priorities.forget(executed);
        self.redrawn.push(executed);
        if let Some(object) = object {
            if let Some(list) = self.racers.get_mut(&object) {
                list.retain(|&c| choices.contains(c) && view.race_object(c) == Some(object));
                list.sort_unstable();
                list.dedup();
                for &c in list.iter() {
                    self.priorities.forget(c);
                    self.redrawn.push(c);
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
        self.highest.clear();
        self.racers.clear();
        self.last = None;
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        for &c in choices.added() {
            if choices.contains(c) {
                if let Some(object) = view.race_object(c) {
                    self.racers.entry(object).or_default().push(c);
                }
            }
        }
        self.settle_last_step(view, choices);
        // What changed since the last pick, offered: new events and re-drawn ones draw a
        // priority, in the order choices are offered; all get a current heap entry.
        let mut changed = std::mem::take(&mut self.redrawn);
        changed.extend_from_slice(choices.added());
        changed.retain(|&c| choices.contains(c));
        changed.sort_unstable();
        changed.dedup();
        for &c in &changed {
            let priority = match self.priorities.get(c) {
                Some(p) => p,
                None => {
                    let p = self.rng.random();
                    self.priorities.set(c, p);
                    p
                }
            };
            self.highest.push(c, priority);
        }
        changed.clear();
        self.redrawn = changed;
        let chosen = self
            .highest
            .top(choices, &self.priorities)
            .expect("every offered choice has a priority");
        self.last = Some((chosen, view.race_object(chosen)));
        Ok(chosen)
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
            events: &[],
            delivery: crate::config::DeliveryMode::Instant,
        };
        let choices: Vec<Choice> = (0..4).map(Choice::Run).collect();
        let mut executed = [false; 4];
        for seed in 0..50 {
            let mut pos = Pos::new();
            pos.begin_iteration(seed);
            let mut set = ChoiceSet::from_choices(&choices);
            let first = pos.pick(&view, &set).unwrap();
            let before = pos.priorities.clone();
            // The same choices are pending at the next step (the executed one ran and
            // announced the same kind of operation again).
            set.picked();
            if let Choice::Run(p) = first {
                set.remove_run(p);
                set.insert_run(p);
            }
            pos.pick(&view, &set).unwrap();
            if let Choice::Run(p) = first {
                executed[p as usize] = true;
            }
            let executed_races = view.race_object(first).is_some();
            for &c in &choices {
                let races = executed_races && view.race_object(c) == view.race_object(first);
                let redrawn = pos.priorities.get(c) != before.get(c);
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
            events: &[],
            delivery: crate::config::DeliveryMode::Instant,
        };
        let choices = [Choice::Run(0), Choice::Run(1)];
        let set = ChoiceSet::from_choices(&choices);
        for seed in 0..20 {
            let mut pos = Pos::new();
            pos.begin_iteration(seed);
            let picked = pos.pick(&view, &set).unwrap();
            let best = if pos.priorities.get(choices[0]) > pos.priorities.get(choices[1]) {
                0
            } else {
                1
            };
            assert_eq!(picked, choices[best]);
        }
    }
}
