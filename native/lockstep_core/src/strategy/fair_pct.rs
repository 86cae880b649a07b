//! Fair PCT: PCT for the first `switch_after` steps of an iteration, uniform random after.
//!
//! PCT (Burckhardt et al., ASPLOS 2010, see [`Pct`]) is deliberately unfair: the
//! highest-priority process runs whenever it can, so a process spinning on `yield` while it
//! waits for another starves that other one until `max_steps`. Switching to a random walk
//! after a prefix keeps PCT's guarantee for bugs within the prefix and makes the rest of
//! the run fair with probability 1 — the trade Coyote's `fair-prioritization` strategy
//! makes (cf. Musuvathi, Qadeer, "Fair Stateless Model Checking", PLDI 2008, on why unfair
//! schedulers livelock on spin loops).
//!
//! The PCT phase sees exactly the steps it would see alone, so its change points are drawn
//! over the prefix only: k never grows past `switch_after`.

use super::{Choice, ChoiceSet, Divergence, Pct, Strategy, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keeps the random phase's stream apart from PCT's, which is seeded with the same seed.
const RANDOM_PHASE_STREAM: u64 = 0x6661_6972; // "fair"

pub struct FairPct {
    pct: Pct,
    /// The last step (1-based, counting every decision) that PCT decides.
    switch_after: u64,
    rng: ChaCha8Rng,
}

impl FairPct {
    pub fn new(depth: u32, switch_after: u64) -> Self {
        FairPct {
            pct: Pct::new(depth),
            switch_after,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    pub fn switch_after(&self) -> u64 {
        self.switch_after
    }

    /// The PCT phase's state (depth, change points, k).
    pub fn pct(&self) -> &Pct {
        &self.pct
    }
}

impl Strategy for FairPct {
    fn name(&self) -> &'static str {
        "fair_pct"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.pct.begin_iteration(seed);
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.rng.set_stream(RANDOM_PHASE_STREAM);
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        if view.step <= self.switch_after {
            self.pct.pick(view, choices)
        } else {
            Ok(choices.get(super::random::uniform_index(&mut self.rng, choices.len())))
        }
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        if view.step <= self.switch_after {
            self.pct.random(view, n)
        } else {
            Ok(self.rng.random_range(0..n))
        }
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.pct.end_iteration(view, completed)
    }
}
