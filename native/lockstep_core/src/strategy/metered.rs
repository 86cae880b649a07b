//! Metrics as a wrapper around any strategy, not as flags inside one (as Shuttle's
//! `MetricsScheduler` does): counts steps, contested steps (more than one choice) and
//! context switches (a process picked right after another one ran), and fingerprints the
//! decisions so a run can count the distinct schedules it explored.

use super::{Choice, ChoiceSet, Divergence, SearchStats, Strategy, View};

/// A cheap running hash (FxHash's multiply-rotate step): this runs at every step, and a
/// fingerprint only needs to tell schedules apart, not resist an adversary.
#[derive(Clone, Copy, Debug, Default)]
struct Fingerprint(u64);

impl Fingerprint {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

fn choice_word(choice: Choice) -> u64 {
    match choice {
        Choice::Run(p) => u64::from(p),
        Choice::Deliver(m) => (1 << 32) | u64::from(m),
        Choice::Fire(t) => (2 << 32) | u64::from(t),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IterationMetrics {
    pub steps: u64,
    pub contested_steps: u64,
    pub context_switches: u64,
    /// A hash of every choice picked, in order (ids are deterministic per schedule).
    pub fingerprint: u64,
}

pub struct Metered<S: Strategy> {
    inner: S,
    current: IterationMetrics,
    hasher: Fingerprint,
    last_run: Option<u32>,
}

impl<S: Strategy> Metered<S> {
    pub fn new(inner: S) -> Self {
        Metered {
            inner,
            current: IterationMetrics::default(),
            hasher: Default::default(),
            last_run: None,
        }
    }

    /// The metrics of the current (or just finished) iteration.
    pub fn metrics(&self) -> IterationMetrics {
        IterationMetrics {
            fingerprint: self.hasher.0,
            ..self.current
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Strategy> Strategy for Metered<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.current = IterationMetrics::default();
        self.hasher = Default::default();
        self.last_run = None;
        self.inner.begin_iteration(seed);
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        let choice = self.inner.pick(view, choices)?;
        self.current.steps += 1;
        if choices.len() > 1 {
            self.current.contested_steps += 1;
        }
        self.hasher.add(choice_word(choice));
        if let Choice::Run(p) = choice {
            if self.last_run.is_some_and(|last| last != p) {
                self.current.context_switches += 1;
            }
            self.last_run = Some(p);
        }
        Ok(choice)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        let value = self.inner.random(view, n)?;
        self.hasher.add((3 << 32) ^ n.rotate_left(17) ^ value);
        Ok(value)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.inner.end_iteration(view, completed)
    }

    fn search_stats(&self) -> Option<SearchStats> {
        self.inner.search_stats()
    }

    fn reads_events(&self) -> bool {
        self.inner.reads_events()
    }
}

/// Lets a boxed strategy be wrapped too.
impl Strategy for Box<dyn Strategy> {
    fn name(&self) -> &'static str {
        self.as_ref().name()
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.as_mut().begin_iteration(seed)
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.as_mut().pick(view, choices)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        self.as_mut().random(view, n)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.as_mut().end_iteration(view, completed)
    }

    fn search_stats(&self) -> Option<SearchStats> {
        self.as_ref().search_stats()
    }

    fn reads_events(&self) -> bool {
        self.as_ref().reads_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::RandomWalk;

    #[test]
    fn counts_steps_and_switches_without_changing_the_choices() {
        let view = View {
            step: 1,
            procs: &[],
            msgs: &[],
            timers: &[],
            events: &[],
            delivery: crate::config::DeliveryMode::Instant,
        };
        let three = ChoiceSet::from_choices(&[Choice::Run(0), Choice::Run(1), Choice::Run(2)]);
        let one = ChoiceSet::from_choices(&[Choice::Run(1)]);
        let mut plain = RandomWalk::new();
        let mut metered = Metered::new(RandomWalk::new());
        plain.begin_iteration(9);
        metered.begin_iteration(9);
        let mut picks = Vec::new();
        for i in 0..50 {
            let choices = if i % 5 == 0 { &one } else { &three };
            let a = plain.pick(&view, choices).unwrap();
            let b = metered.pick(&view, choices).unwrap();
            assert_eq!(a, b);
            picks.push(a);
        }
        let m = metered.metrics();
        assert_eq!(m.steps, 50);
        assert_eq!(m.contested_steps, 40);
        let switches = picks.windows(2).filter(|w| w[0] != w[1]).count() as u64;
        assert_eq!(m.context_switches, switches);

        // Same seed, same decisions: same fingerprint; another seed: another one.
        let fingerprint = |seed| {
            let mut s = Metered::new(RandomWalk::new());
            s.begin_iteration(seed);
            for _ in 0..20 {
                s.pick(&view, &three).unwrap();
            }
            s.metrics().fingerprint
        };
        assert_eq!(fingerprint(1), fingerprint(1));
        assert_ne!(fingerprint(1), fingerprint(2));
    }
}
