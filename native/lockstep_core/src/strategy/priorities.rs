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
}

impl Highest {
    /// `choice` is offered with `priority` (again, or with a new priority).
    pub fn push(&mut self, choice: Choice, priority: u64) {
        self.heap.push((priority, Reverse(choice)));
    }

    /// The offered choice of highest priority. Every offered choice must have been pushed
    /// with its current priority since it was last offered anew.
    pub fn top(&mut self, choices: &ChoiceSet, priorities: &Priorities) -> Option<Choice> {
        while let Some(&(priority, Reverse(choice))) = self.heap.peek() {
            if choices.contains(choice) && priorities.get(choice) == Some(priority) {
                return Some(choice);
            }
            self.heap.pop();
        }
        None
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}
