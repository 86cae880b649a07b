//! IDPCT — iterative-deepening PCT.
//!
//! PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010, see [`Pct`]) needs the
//! bug depth d up front: with d too small a deeper bug is unreachable, with d too large
//! every iteration pays a factor k per extra change point. When the depth is unknown,
//! spreading iterations over d_min..=d_max keeps a fixed share of iterations at every
//! depth, so a run finds a depth-d bug with at least `1/(d_max-d_min+1)` of the rate of
//! PCT tuned to that d. The cycling is Lockstep's; the per-iteration algorithm is the
//! paper's, unchanged.
//!
//! An iteration's d comes from its seed alone (`d_min + seed % span`), so replaying or
//! re-running one iteration on its own reproduces it. One PCT state is kept across
//! iterations, so k (the longest contested run seen) is learned once for all depths.

use super::{Choice, ChoiceSet, Divergence, Pct, Strategy, View};

pub const DEFAULT_MIN_DEPTH: u32 = 2;
pub const DEFAULT_MAX_DEPTH: u32 = 6;

pub struct IdPct {
    min_depth: u32,
    /// Invariant: `min_depth <= max_depth`, both ≥ 1.
    max_depth: u32,
    pct: Pct,
}

impl IdPct {
    /// `d_min` is raised to 1 and `d_max` to `d_min` if needed.
    pub fn new(d_min: u32, d_max: u32) -> Self {
        let min_depth = d_min.max(1);
        let max_depth = d_max.max(min_depth);
        IdPct {
            min_depth,
            max_depth,
            pct: Pct::new(min_depth),
        }
    }

    /// The depth an iteration with this seed runs at.
    pub fn depth_for_seed(&self, seed: u64) -> u32 {
        let span = u64::from(self.max_depth - self.min_depth) + 1;
        // `seed % span` < span ≤ u32::MAX, so the cast is lossless.
        self.min_depth + (seed % span) as u32
    }

    pub fn depth_range(&self) -> (u32, u32) {
        (self.min_depth, self.max_depth)
    }

    /// The current iteration's PCT state (depth, change points, k).
    pub fn pct(&self) -> &Pct {
        &self.pct
    }
}

impl Default for IdPct {
    fn default() -> Self {
        IdPct::new(DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH)
    }
}

impl Strategy for IdPct {
    fn name(&self) -> &'static str {
        "idpct"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.pct.set_depth(self.depth_for_seed(seed));
        self.pct.begin_iteration(seed);
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.pct.pick(view, choices)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        self.pct.random(view, n)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.pct.end_iteration(view, completed)
    }
}
