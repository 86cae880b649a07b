//! Uniform random walk: at every step each enabled choice is equally likely. The baseline
//! every systematic-testing tool ships (e.g. Shuttle's `RandomScheduler`); good at shallow
//! bugs, poor at bugs that need one process to win many consecutive races.

use super::{Choice, ChoiceSet, Divergence, Strategy, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct RandomWalk {
    rng: ChaCha8Rng,
}

impl RandomWalk {
    pub fn new() -> Self {
        RandomWalk {
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}

impl Default for RandomWalk {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for RandomWalk {
    fn name(&self) -> &'static str {
        "random"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn pick(&mut self, _view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        Ok(choices.get(self.rng.random_range(0..choices.len())))
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.rng.random_range(0..n))
    }
}
