//! Uniform random walk: at every step each enabled choice is equally likely. The baseline
//! every systematic-testing tool ships (e.g. Shuttle's `RandomScheduler`); good at shallow
//! bugs, poor at bugs that need one process to win many consecutive races.

use super::{Choice, ChoiceSet, Divergence, Strategy, View};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `rng.random_range(0..n)`, with the same draws: for a forced pick (`n == 1`) that is one
/// `u32` (rand 0.9 samples a `usize` range that fits in 32 bits as a `u32`, and Lemire's
/// multiply never rejects with a range of one), which is drawn and dropped without the
/// range arithmetic. The equivalence test (`tests/equivalence.rs`) pins that the stream is
/// unchanged.
#[inline]
pub(crate) fn uniform_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 1 {
        rng.next_u32();
        0
    } else {
        rng.random_range(0..n)
    }
}

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
        Ok(choices.get(uniform_index(&mut self.rng, choices.len())))
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.rng.random_range(0..n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut draws what `random_range` draws, for a forced pick and for others.
    #[test]
    fn uniform_index_draws_as_random_range() {
        for n in [1usize, 1, 2, 1, 3, 1, 7, 1 << 33, 1, 1] {
            let mut a = ChaCha8Rng::seed_from_u64(n as u64);
            let mut b = a.clone();
            for _ in 0..100 {
                assert_eq!(uniform_index(&mut a, n), b.random_range(0..n));
            }
            assert_eq!(a.next_u64(), b.next_u64(), "n = {n}: the streams drifted");
        }
    }
}
