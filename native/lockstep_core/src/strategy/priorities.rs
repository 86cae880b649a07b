//! What the priority strategies (PCT, POS) share: a priority per choice, and the highest
//! offered choice found in O(log n) instead of by a pass over every choice.
//!
//! [`Priorities`] maps a choice to its priority in dense tables by id (a process, message
//! or timer id is an index). [`Highest`] is a max-heap of `(priority, choice)` entries with
//! lazy deletion: an entry is pushed whenever a choice is offered anew or its priority
//! changes, and entries whose choice is no longer offered, or whose priority is no longer
//! the choice's, are dropped when they reach the top. Ties go to the choice offered first
//! (the smaller `Choice`), as a pass over the choices in order taking the first maximum did.

use super::{Choice, ChoiceSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Debug, Default)]
pub struct Priorities {
    runs: Vec<Option<u64>>,
    delivers: Vec<Option<u64>>,
    fires: Vec<Option<u64>>,
}

impl Priorities {
    fn slot(&mut self, choice: Choice) -> &mut Option<u64> {
        let (table, i) = match choice {
            Choice::Run(p) => (&mut self.runs, p as usize),
            Choice::Deliver(m) => (&mut self.delivers, m as usize),
            Choice::Fire(t) => (&mut self.fires, t as usize),
        };
        if table.len() <= i {
            table.resize((i + 1).next_power_of_two(), None);
        }
        &mut table[i]
    }

    pub fn get(&self, choice: Choice) -> Option<u64> {
        let (table, i) = match choice {
            Choice::Run(p) => (&self.runs, p as usize),
            Choice::Deliver(m) => (&self.delivers, m as usize),
            Choice::Fire(t) => (&self.fires, t as usize),
        };
        table.get(i).copied().flatten()
    }

    pub fn set(&mut self, choice: Choice, priority: u64) {
        *self.slot(choice) = Some(priority);
    }

    pub fn forget(&mut self, choice: Choice) {
        *self.slot(choice) = None;
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.delivers.clear();
        self.fires.clear();
    }
}

#[derive(Clone, Debug, Default)]
pub struct Highest {
    heap: BinaryHeap<(u64, Reverse<Choice>)>,
    /// The priority each choice has an entry for (invariant: `(p, c)` is in `heap` exactly
    /// once when `queued` says `p` for `c`), so offering a choice again with the same
    /// priority pushes nothing and the heap does not grow with the steps.
    queued: Priorities,
}

impl Highest {
    /// `choice` is offered with `priority` (again, or with a new priority).
    pub fn push(&mut self, choice: Choice, priority: u64) {
        if self.queued.get(choice) != Some(priority) {
            self.queued.set(choice, priority);
            self.heap.push((priority, Reverse(choice)));
        }
    }

    /// The offered choice of highest priority. Every offered choice must have been pushed
    /// with its current priority since it was last offered anew.
    pub fn top(&mut self, choices: &ChoiceSet, priorities: &Priorities) -> Option<Choice> {
        if self.heap.len() > 2 * choices.len() + 64 {
            self.compact(choices, priorities);
        }
        while let Some(&(priority, Reverse(choice))) = self.heap.peek() {
            if choices.contains(choice) && priorities.get(choice) == Some(priority) {
                return Some(choice);
            }
            self.heap.pop();
            if self.queued.get(choice) == Some(priority) {
                self.queued.forget(choice);
            }
        }
        None
    }

    /// Drops every entry that is stale (a choice no longer offered, or an old priority):
    /// O(entries), once they outnumber the offered choices twice, so amortised O(1).
    fn compact(&mut self, choices: &ChoiceSet, priorities: &Priorities) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.queued.clear();
        let mut kept = Vec::with_capacity(choices.len());
        for (priority, Reverse(choice)) in entries {
            if choices.contains(choice)
                && priorities.get(choice) == Some(priority)
                && self.queued.get(choice).is_none()
            {
                self.queued.set(choice, priority);
                kept.push((priority, Reverse(choice)));
            }
        }
        self.heap = BinaryHeap::from(kept);
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.queued.clear();
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A choice offered again at every step (a process that keeps running) pushes no new
    /// entry, and re-drawn priorities leave stale entries that are compacted away.
    #[test]
    fn the_heap_does_not_grow_with_the_steps() {
        let (a, b) = (Choice::Run(0), Choice::Run(1));
        let set = ChoiceSet::from_choices(&[a, b]);
        let mut priorities = Priorities::default();
        priorities.set(b, 5_000);
        let mut highest = Highest::default();
        for step in 0..10_000u64 {
            // `a` is re-drawn every step: above `b` on odd steps, below on even ones.
            let pa = if step % 2 == 1 {
                10_000 + step
            } else {
                step % 4_000
            };
            priorities.set(a, pa);
            highest.push(a, pa);
            highest.push(b, 5_000);
            let expected = if pa > 5_000 { a } else { b };
            assert_eq!(
                highest.top(&set, &priorities),
                Some(expected),
                "step {step}"
            );
        }
        assert!(
            highest.entries() <= 2 * set.len() + 64 + 2,
            "{}",
            highest.entries()
        );
    }

    #[test]
    fn ties_go_to_the_choice_offered_first() {
        let set = ChoiceSet::from_choices(&[Choice::Run(3), Choice::Deliver(1), Choice::Run(7)]);
        let mut priorities = Priorities::default();
        let mut highest = Highest::default();
        for c in set.iter() {
            priorities.set(c, 9);
            highest.push(c, 9);
        }
        assert_eq!(highest.top(&set, &priorities), Some(Choice::Run(3)));
    }
}
