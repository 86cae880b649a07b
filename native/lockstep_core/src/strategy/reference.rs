//! The strategies as they were before the choice set was kept up to date (issue 9 §3):
//! each step they were handed every choice, in order, and scanned them all. Kept, for
//! tests only, to check that the incremental strategies take exactly the same choices for
//! the same seed on the same evolving choices — the schedule a seed gives did not change.

use super::{Choice, ChoiceSet, RaceObject, View};
use crate::choices::InFlight;
use crate::ids::{MsgId, ProcId, ProcName};
use crate::message::{Message, MsgKind, MsgState, Target};
use crate::op::Op;
use crate::process::Process;
use crate::timer::{Timer, TimerKind, TimerState};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

const FRESH_PRIORITY_FLOOR: u64 = 1 << 32;

/// PCT's `pick` before: lazily drawn priorities in a map, the highest by a pass.
struct OldPct {
    rng: ChaCha8Rng,
    priorities: HashMap<Choice, u64>,
    change_points: Vec<u64>,
    demotions: u64,
    contested_steps: u64,
}

impl OldPct {
    fn priority_of(&mut self, choice: Choice) -> u64 {
        let rng = &mut self.rng;
        *self
            .priorities
            .entry(choice)
            .or_insert_with(|| rng.random_range(FRESH_PRIORITY_FLOOR..u64::MAX))
    }

    fn highest(&mut self, choices: &[Choice]) -> usize {
        let mut best = 0;
        let mut best_priority = 0;
        for (i, &c) in choices.iter().enumerate() {
            let p = self.priority_of(c);
            if i == 0 || p > best_priority {
                best = i;
                best_priority = p;
            }
        }
        best
    }

    fn pick(&mut self, choices: &[Choice]) -> usize {
        if choices.len() == 1 {
            self.priority_of(choices[0]);
            return 0;
        }
        self.contested_steps += 1;
        let mut chosen = self.highest(choices);
        if self
            .change_points
            .binary_search(&self.contested_steps)
            .is_ok()
        {
            self.demotions += 1;
            self.priorities.insert(choices[chosen], self.demotions);
            chosen = self.highest(choices);
        }
        chosen
    }
}

/// POS's `pick` before.
struct OldPos {
    rng: ChaCha8Rng,
    priorities: HashMap<Choice, u64>,
    last: Option<(Choice, Option<RaceObject>)>,
}

impl OldPos {
    fn pick(&mut self, view: &View<'_>, choices: &[Choice]) -> usize {
        if let Some((executed, object)) = self.last.take() {
            self.priorities.remove(&executed);
            if let Some(object) = object {
                for &c in choices {
                    if view.race_object(c) == Some(object) {
                        self.priorities.remove(&c);
                    }
                }
            }
        }
        let mut best = 0;
        let mut best_priority = 0;
        for (i, &c) in choices.iter().enumerate() {
            let rng = &mut self.rng;
            let p = *self.priorities.entry(c).or_insert_with(|| rng.random());
            if i == 0 || p > best_priority {
                best = i;
                best_priority = p;
            }
        }
        let chosen = choices[best];
        self.last = Some((chosen, view.race_object(chosen)));
        best
    }
}

/// A made-up run: processes with pending operations, messages in flight per pair, a timer
/// slot, changed at random between picks the way the session changes them.
struct World {
    procs: Vec<Process>,
    msgs: Vec<Message>,
    timers: Vec<Timer>,
    set: ChoiceSet,
    flight: InFlight,
    rng: ChaCha8Rng,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut world = World {
            procs: Vec::new(),
            msgs: Vec::new(),
            timers: Vec::new(),
            set: ChoiceSet::default(),
            flight: InFlight::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        for _ in 0..3 {
            world.spawn();
        }
        world
    }

    fn random_op(&mut self) -> Op {
        let n = self.procs.len().max(1) as u32;
        match self.rng.random_range(0..4) {
            0 => Op::Yield,
            1 => Op::Receive {
                retry: false,
                timeout: None,
            },
            _ => Op::Send {
                to: Target::Proc(self.rng.random_range(0..n)),
            },
        }
    }

    fn spawn(&mut self) {
        let pending = self.random_op();
        let p = self.procs.len() as ProcId;
        self.procs.push(Process {
            pending,
            ..Process::new(ProcName::root().child(p + 1), None)
        });
        self.set.insert_run(p);
    }

    fn send(&mut self) {
        let n = self.procs.len() as u32;
        let (from, to) = (self.rng.random_range(0..n), self.rng.random_range(0..n));
        let m = self.msgs.len() as MsgId;
        self.msgs.push(Message {
            from,
            to: Some(to),
            state: MsgState::InFlight,
            kind: MsgKind::User,
            alias: None,
            timer: None,
        });
        self.flight.push(m, (from, Some(to)), &mut self.set);
    }

    fn view(&self, step: u64) -> View<'_> {
        View {
            step,
            procs: &self.procs,
            msgs: &self.msgs,
            timers: &self.timers,
            events: &[],
            delivery: crate::config::DeliveryMode::Instant,
        }
    }

    /// Takes `choice`, then changes a few things at random.
    fn take(&mut self, choice: Choice) {
        self.set.picked();
        match choice {
            Choice::Run(p) => {
                self.set.remove_run(p);
                if self.rng.random_bool(0.8) {
                    self.procs[p as usize].pending = self.random_op();
                    self.set.insert_run(p);
                }
            }
            Choice::Deliver(m) => {
                let msg = self.msgs[m as usize];
                self.flight.remove(m, (msg.from, msg.to), &mut self.set);
            }
            Choice::Fire(_) => self.set.set_fire(None),
        }
        for _ in 0..self.rng.random_range(0..3) {
            let n = self.procs.len() as ProcId;
            match self.rng.random_range(0..10) {
                0 if n < 40 => self.spawn(),
                1 | 2 => self.send(),
                3 => self.set.remove_run(self.rng.random_range(0..n)),
                4 => {
                    let p = self.rng.random_range(0..n);
                    if !self.set.has_run(p) {
                        self.procs[p as usize].pending = self.random_op();
                        self.set.insert_run(p);
                    }
                }
                5 => {
                    let t = self.timers.len() as u32;
                    self.timers.push(Timer {
                        owner: self.rng.random_range(0..n),
                        ordinal: t + 1,
                        deadline: 10,
                        kind: TimerKind::Sleep,
                        state: TimerState::Pending,
                    });
                    self.set.set_fire(Some(t));
                }
                6 => self.set.set_fire(None),
                _ => {}
            }
        }
        if self.set.is_empty() {
            self.spawn();
        }
    }
}

/// Runs `steps` picks of the new strategy beside the old one on the same world.
fn compare(
    seed: u64,
    steps: usize,
    mut new: impl super::Strategy,
    mut old: impl FnMut(&View<'_>, &[Choice]) -> usize,
) -> Result<(), TestCaseError> {
    let mut world = World::new(seed ^ 0x5eed);
    new.begin_iteration(seed);
    for step in 1..=steps as u64 {
        let list: Vec<Choice> = world.set.iter().collect();
        let view = world.view(step);
        let picked = new.pick(&view, &world.set).unwrap();
        let before = list[old(&view, &list)];
        prop_assert_eq!(picked, before, "step {}", step);
        world.take(picked);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pct_picks_as_before(seed in any::<u64>(), depth in 1u32..5) {
        let mut new = super::Pct::new(depth);
        // The same change points: PCT draws them from its seed before any step (`compare`
        // begins the iteration again, which draws the same ones).
        super::Strategy::begin_iteration(&mut new, seed);
        let mut old = OldPct {
            rng: ChaCha8Rng::seed_from_u64(seed),
            priorities: HashMap::new(),
            change_points: Vec::new(),
            demotions: 0,
            contested_steps: 0,
        };
        {
            // Replays begin_iteration's draws on the old one's generator.
            let wanted = (depth as usize - 1).min(1);
            let mut points: Vec<u64> = rand::seq::index::sample(&mut old.rng, 1, wanted)
                .into_iter()
                .map(|i| i as u64 + 1)
                .collect();
            points.sort_unstable();
            prop_assert_eq!(&points[..], new.change_points());
            old.change_points = points;
        }
        compare(seed, 300, new, |_, c| old.pick(c))?;
    }

    #[test]
    fn pct_with_learned_k_picks_as_before(seed in any::<u64>(), depth in 2u32..5) {
        // A second iteration, with k learned from the first: change points inside the run.
        let mut new = super::Pct::new(depth);
        super::Strategy::begin_iteration(&mut new, seed);
        let mut world = World::new(seed);
        for step in 1..=200 {
            let picked = super::Strategy::pick(&mut new, &world.view(step), &world.set).unwrap();
            world.take(picked);
        }
        let view = world.view(200);
        super::Strategy::end_iteration(&mut new, &view, true).unwrap();
        let k = new.longest_run();
        super::Strategy::begin_iteration(&mut new, seed.wrapping_add(1));
        let mut old = OldPct {
            rng: ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)),
            priorities: HashMap::new(),
            change_points: Vec::new(),
            demotions: 0,
            contested_steps: 0,
        };
        let wanted = (depth as usize - 1).min(k as usize);
        let mut points: Vec<u64> = rand::seq::index::sample(&mut old.rng, k as usize, wanted)
            .into_iter()
            .map(|i| i as u64 + 1)
            .collect();
        points.sort_unstable();
        prop_assert_eq!(&points[..], new.change_points());
        old.change_points = points;
        compare(seed.wrapping_add(1), 300, new, |_, c| old.pick(c))?;
    }

    #[test]
    fn pos_picks_as_before(seed in any::<u64>()) {
        let mut old = OldPos {
            rng: ChaCha8Rng::seed_from_u64(seed),
            priorities: HashMap::new(),
            last: None,
        };
        compare(seed, 300, super::Pos::new(), |view, c| old.pick(view, c))?;
    }

    #[test]
    fn random_picks_as_before(seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        compare(seed, 300, super::RandomWalk::new(), |_, c| rng.random_range(0..c.len()))?;
    }
}
