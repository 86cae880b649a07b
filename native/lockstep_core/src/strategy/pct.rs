//! PCT — Probabilistic Concurrency Testing.
//!
//! Burckhardt, Kothari, Musuvathi, Nagarakatte, "A Randomized Scheduler with Probabilistic
//! Guarantees of Finding Bugs", ASPLOS 2010. With n choices, k steps and a bug of depth d,
//! one iteration finds the bug with probability at least 1/(n·k^(d-1)).
//!
//! Control flow: every choice — a process, an in-flight message — receives a random
//! priority the first time it appears; each step takes the highest-priority enabled choice.
//! Before the iteration, d−1 change points are drawn; at the i-th one the choice about to be
//! taken is demoted to priority i, below every undemoted choice (a later change point ranks
//! above an earlier one, as in the paper).
//!
//! Each choice's priority is drawn when it is first offered (in the order choices are
//! offered), and the highest is kept in a lazily pruned heap (`priorities.rs`), so a step
//! costs O(log n) plus what it offered anew.
//!
//! k is the number of steps actually seen — the longest iteration so far, counting only
//! steps that had more than one choice — as Coyote and Shuttle do. Drawing over `max_steps`
//! instead would put nearly every change point past the end of a short test.

use super::priorities::{Highest, Priorities};
use super::{Choice, ChoiceSet, Divergence, Strategy, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Undemoted priorities are drawn above this; demoted ones are `1..d`, so always below.
const FRESH_PRIORITY_FLOOR: u64 = 1 << 32;

pub struct Pct {
    /// The bug depth d (≥ 1): d−1 change points per iteration.
    depth: u32,
    rng: ChaCha8Rng,
    priorities: Priorities,
    /// The offered choices by priority (invariant: every offered choice has an entry with
    /// its current priority).
    highest: Highest,
    /// Scratch for `learn` (kept to spare an allocation per step).
    fresh: Vec<Choice>,
    /// Sorted multi-choice step numbers (1-based) at which to demote; invariant: strictly
    /// increasing, at most d−1 of them.
    change_points: Vec<u64>,
    /// Change points already passed in this iteration.
    demotions: u64,
    /// Steps with more than one choice in this iteration.
    contested_steps: u64,
    /// The largest `contested_steps` of any finished iteration: PCT's k.
    longest_run: u64,
}

impl Pct {
    pub fn new(depth: u32) -> Self {
        Pct {
            depth: depth.max(1),
            rng: ChaCha8Rng::seed_from_u64(0),
            priorities: Priorities::default(),
            highest: Highest::default(),
            fresh: Vec::new(),
            change_points: Vec::new(),
            demotions: 0,
            contested_steps: 0,
            longest_run: 0,
        }
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Takes effect at the next `begin_iteration`; the learned k is kept (IDPCT relies on it).
    pub(crate) fn set_depth(&mut self, depth: u32) {
        self.depth = depth.max(1);
    }

    pub fn change_points(&self) -> &[u64] {
        &self.change_points
    }

    /// PCT's k as currently estimated.
    pub fn longest_run(&self) -> u64 {
        self.longest_run
    }

    /// Takes in what was offered since the last pick: a choice offered for the first time
    /// in this iteration draws its priority (in the order choices are offered, as the
    /// paper's priorities are assigned when a thread appears); a choice offered again
    /// keeps the one it had.
    fn learn(&mut self, choices: &ChoiceSet) {
        let mut fresh = std::mem::take(&mut self.fresh);
        choices.fresh_into(&mut fresh, |c| self.priorities.get(c).is_none());
        for &c in &fresh {
            let priority = self.rng.random_range(FRESH_PRIORITY_FLOOR..u64::MAX);
            self.priorities.set(c, priority);
        }
        self.fresh = fresh;
        for &c in choices.added() {
            if let (true, Some(priority)) = (choices.contains(c), self.priorities.get(c)) {
                self.highest.push(c, priority);
            }
        }
    }

    fn highest(&mut self, choices: &ChoiceSet) -> Choice {
        self.highest
            .top(choices, &self.priorities)
            .expect("every offered choice has a priority")
    }
}

impl Strategy for Pct {
    fn name(&self) -> &'static str {
        "pct"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.priorities.clear();
        self.highest.clear();
        self.demotions = 0;
        self.contested_steps = 0;
        // Distinct steps, as in the paper: drawing with replacement and deduplicating would
        // silently lower the depth whenever two draws collide (1 in 10 for d=3, k=10).
        let k = usize::try_from(self.longest_run.max(1)).unwrap_or(usize::MAX);
        let wanted = (self.depth as usize - 1).min(k);
        let mut points: Vec<u64> = rand::seq::index::sample(&mut self.rng, k, wanted)
            .into_iter()
            .map(|i| i as u64 + 1)
            .collect();
        points.sort_unstable();
        self.change_points = points;
    }

    fn pick(&mut self, _view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.learn(choices);
        if choices.len() == 1 {
            return Ok(choices.get(0));
        }
        self.contested_steps += 1;
        let mut chosen = self.highest(choices);
        if self
            .change_points
            .binary_search(&self.contested_steps)
            .is_ok()
        {
            self.demotions += 1;
            debug_assert!(self.demotions < u64::from(self.depth));
            self.priorities.set(chosen, self.demotions);
            self.highest.push(chosen, self.demotions);
            chosen = self.highest(choices);
        }
        Ok(chosen)
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.rng.random_range(0..n))
    }

    fn end_iteration(&mut self, _view: &View<'_>, _completed: bool) -> Result<(), Divergence> {
        self.longest_run = self.longest_run.max(self.contested_steps);
        Ok(())
    }
}
