//! Replay: follows a saved schedule decision by decision. The program must offer exactly
//! the choice the schedule names at every step; anything else is a [`Divergence`]. With a
//! fallback seed it continues at random once the schedule is used up (shrinking needs that:
//! a truncated schedule is a prefix, and the rest of the run is explored freely).

use super::{Choice, ChoiceSet, Divergence, Strategy, View};
use crate::schedule::Decision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

pub struct Replay {
    schedule: Vec<Decision>,
    position: usize,
    /// `Some` when the run may continue at random after the schedule is used up.
    fallback: Option<ChaCha8Rng>,
    fallback_seed: Option<u64>,
    /// Skip scheduled decisions the program does not offer instead of diverging: how a
    /// shrinker tests a schedule with decisions removed.
    lenient: bool,
    /// The choice offered for each decision, learned from what the session adds (an entry
    /// may be stale: checked at use).
    offered: HashMap<Decision, Choice>,
}

impl Replay {
    pub fn new(schedule: Vec<Decision>) -> Self {
        Replay {
            schedule,
            position: 0,
            fallback: None,
            fallback_seed: None,
            lenient: false,
            offered: HashMap::new(),
        }
    }

    /// Follows `schedule` where the program allows, skipping decisions it does not offer,
    /// and continues at random (seeded) when the schedule runs out. Never diverges.
    pub fn lenient(schedule: Vec<Decision>, seed: u64) -> Self {
        Replay {
            fallback_seed: Some(seed),
            lenient: true,
            ..Replay::new(schedule)
        }
    }

    pub fn with_random_fallback(schedule: Vec<Decision>, seed: u64) -> Self {
        Replay {
            fallback_seed: Some(seed),
            ..Replay::new(schedule)
        }
    }

    /// Decisions consumed so far in this iteration.
    pub fn position(&self) -> usize {
        self.position
    }

    fn next_expected(&mut self) -> Option<Decision> {
        let d = self.schedule.get(self.position).cloned();
        if d.is_some() {
            self.position += 1;
        }
        d
    }
}

impl Strategy for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.position = 0;
        self.offered.clear();
        self.fallback = self
            .fallback_seed
            .map(|s| ChaCha8Rng::seed_from_u64(s ^ seed));
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        // The decision each choice offered since the last pick stands for: a scheduled
        // decision is then found by a look-up, not by naming every offered choice.
        for &c in choices.added() {
            if choices.contains(c) {
                self.offered.insert(view.decision_for(c), c);
            }
        }
        let find = |offered: &HashMap<Decision, Choice>, expected: &Decision| {
            offered
                .get(expected)
                .copied()
                .filter(|&c| choices.contains(c) && view.decision_for(c) == *expected)
        };
        let got = || choices.iter().map(|c| view.decision_for(c)).collect();
        if self.lenient {
            while let Some(expected) = self.next_expected() {
                if let Some(c) = find(&self.offered, &expected) {
                    return Ok(c);
                }
            }
        }
        match self.next_expected() {
            Some(expected) => find(&self.offered, &expected).ok_or_else(|| Divergence {
                step: view.step,
                expected: Some(expected),
                got: got(),
            }),
            None => match &mut self.fallback {
                Some(rng) => Ok(choices.get(rng.random_range(0..choices.len()))),
                None => Err(Divergence {
                    step: view.step,
                    expected: None,
                    got: got(),
                }),
            },
        }
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        if self.lenient {
            if let Some(Decision::Random(v)) = self.schedule.get(self.position) {
                if *v < n {
                    self.position += 1;
                    return Ok(*v);
                }
            }
            if let Some(rng) = &mut self.fallback {
                return Ok(rng.random_range(0..n));
            }
        }
        match self.next_expected() {
            Some(Decision::Random(v)) if v < n => Ok(v),
            Some(other) => Err(Divergence {
                step: view.step,
                expected: Some(other),
                got: vec![Decision::Random(n)],
            }),
            None => match &mut self.fallback {
                Some(rng) => Ok(rng.random_range(0..n)),
                None => Err(Divergence {
                    step: view.step,
                    expected: None,
                    got: vec![Decision::Random(n)],
                }),
            },
        }
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        // A failure or max_steps may legitimately stop short of the end (shrinking relies on
        // it); a program that finishes cleanly with decisions left did not follow the schedule.
        if completed && !self.lenient && self.position < self.schedule.len() {
            return Err(Divergence {
                // The step the schedule names but the program never reached.
                step: view.step + 1,
                expected: Some(self.schedule[self.position].clone()),
                got: Vec::new(),
            });
        }
        Ok(())
    }
}
