//! The choices a strategy may take at a step, kept up to date as the run changes instead of
//! collected anew at every step, so a step costs O(log n) in the number of ready processes
//! and messages in flight (issue 9 §3), not O(n).
//!
//! [`ChoiceSet`] holds them in the one order they are offered — `Choice`'s own order: ready
//! processes by id, then the oldest in-flight message of each sender→receiver pair by
//! message id, then the timer — with order statistics (the i-th choice, for uniform random
//! picks) from two [`CountTree`]s, and a journal of the choices added since the strategy
//! last picked, from which incremental strategies (PCT, POS) learn what is new without
//! looking at the rest. [`InFlight`] keeps messages in flight per sender→receiver pair and
//! tells the set which message heads each pair.

use crate::ids::{MsgId, ProcId, TimerId};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// One thing the strategy may let happen next. The derived order is the order in which
/// choices are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Choice {
    /// Let the process perform its pending operation and run to its next sync point.
    Run(ProcId),
    /// Deliver an in-flight message or signal (always the oldest of its sender→receiver
    /// pair).
    Deliver(MsgId),
    /// Fire a pending timer (the virtual clock jumps to its deadline).
    Fire(TimerId),
}

/// A set of small integers with select in O(log n): a presence bitmap of 64-bit words,
/// and a Fenwick tree (Fenwick, "A new data structure for cumulative frequency tables",
/// 1994) over the words' member counts. Membership is one bit test; an insert or removal
/// flips a bit and updates the tree over `capacity / 64` words, so with up to 64 members'
/// ids (most runs) it is O(1), and a select descends that tree, then finds the bit within
/// the word. Capacity grows by doubling (a linear rebuild), so inserts are amortised
/// O(log n).
#[derive(Clone, Debug, Default)]
pub struct CountTree {
    /// Bit `i % 64` of word `i / 64` is set when `i` is a member; `words.len()` is a power
    /// of two (or 0).
    words: Vec<u64>,
    /// 1-based Fenwick array over the words' member counts; `tree.len() == words.len() + 1`.
    tree: Vec<u32>,
    len: usize,
}

impl CountTree {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|&w| w & (1 << (i % 64)) != 0)
    }

    fn grow_to(&mut self, i: usize) {
        let words = (i / 64 + 1).next_power_of_two();
        self.words.resize(words, 0);
        // Linear rebuild: each node passes its sum to its Fenwick parent.
        self.tree = vec![0; words + 1];
        for k in 1..=words {
            self.tree[k] += self.words[k - 1].count_ones();
            let parent = k + (k & k.wrapping_neg());
            if parent <= words {
                self.tree[parent] += self.tree[k];
            }
        }
    }

    #[inline]
    fn add(&mut self, word: usize, delta: i32) {
        let mut k = word + 1;
        while k <= self.words.len() {
            self.tree[k] = self.tree[k].wrapping_add_signed(delta);
            k += k & k.wrapping_neg();
        }
    }

    /// Adds `i`; false if it was there.
    #[inline]
    pub fn insert(&mut self, i: usize) -> bool {
        if i / 64 >= self.words.len() {
            self.grow_to(i);
        }
        let bit = 1 << (i % 64);
        let word = &mut self.words[i / 64];
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.len += 1;
        self.add(i / 64, 1);
        true
    }

    /// Removes `i`; false if it was not there.
    #[inline]
    pub fn remove(&mut self, i: usize) -> bool {
        if !self.contains(i) {
            return false;
        }
        self.words[i / 64] &= !(1 << (i % 64));
        self.len -= 1;
        self.add(i / 64, -1);
        true
    }

    /// The `k`-th smallest member (0-based). Panics if `k >= len`.
    #[inline]
    pub fn select(&self, k: usize) -> usize {
        assert!(k < self.len, "select({k}) of {} members", self.len);
        // The word holding it: the Fenwick descent over the words' counts.
        let mut word = 0;
        let mut remaining = k as u32;
        let mut step = self.words.len();
        while step > 0 {
            let next = word + step;
            if next <= self.words.len() && self.tree[next] <= remaining {
                word = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        // Then its bit: drop the `remaining` lowest members of the word.
        let mut bits = self.words[word];
        for _ in 0..remaining {
            bits &= bits - 1;
        }
        debug_assert!(bits != 0);
        word * 64 + bits.trailing_zeros() as usize
    }

    /// Removes every member, keeping the capacity.
    pub fn clear(&mut self) {
        self.words.fill(0);
        self.tree.fill(0);
        self.len = 0;
    }

    /// Members in increasing order: O(capacity), for reports and tests only.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + i)
            })
        })
    }
}

/// The choices offered at the current step (see the module comment).
#[derive(Clone, Debug, Default)]
pub struct ChoiceSet {
    /// `Ready` processes.
    runs: CountTree,
    /// The oldest in-flight message of each sender→receiver pair.
    heads: CountTree,
    /// The timer offered, if any (under `timers: :anytime`, or when nothing else can happen).
    fire: Option<TimerId>,
    /// Choices added since the strategy last picked, in the order they were added; some may
    /// be gone again, and one may appear twice.
    added: Vec<Choice>,
}

impl ChoiceSet {
    #[inline]
    pub fn len(&self) -> usize {
        self.runs.len() + self.heads.len() + usize::from(self.fire.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th choice in the order choices are offered (O(log n)). Panics if out of range.
    pub fn get(&self, i: usize) -> Choice {
        if i < self.runs.len() {
            return Choice::Run(self.runs.select(i) as ProcId);
        }
        let i = i - self.runs.len();
        if i < self.heads.len() {
            return Choice::Deliver(self.heads.select(i) as MsgId);
        }
        match self.fire {
            Some(t) if i == self.heads.len() => Choice::Fire(t),
            _ => panic!("choice {i} of {}", self.len()),
        }
    }

    #[inline]
    pub fn contains(&self, choice: Choice) -> bool {
        match choice {
            Choice::Run(p) => self.runs.contains(p as usize),
            Choice::Deliver(m) => self.heads.contains(m as usize),
            Choice::Fire(t) => self.fire == Some(t),
        }
    }

    /// Every choice, in order: O(n), for divergence reports, wrappers' checks and tests.
    pub fn iter(&self) -> impl Iterator<Item = Choice> + '_ {
        self.runs
            .iter()
            .map(|p| Choice::Run(p as ProcId))
            .chain(self.heads.iter().map(|m| Choice::Deliver(m as MsgId)))
            .chain(self.fire.map(Choice::Fire))
    }

    /// Choices added since the strategy last picked (see the field).
    pub fn added(&self) -> &[Choice] {
        &self.added
    }

    /// Puts in `fresh` (emptied first) the choices added since the last pick that are
    /// still offered and that `unseen` says the strategy has no state for, in the order
    /// they are offered, each once.
    pub fn fresh_into(&self, fresh: &mut Vec<Choice>, mut unseen: impl FnMut(Choice) -> bool) {
        fresh.clear();
        fresh.extend(
            self.added
                .iter()
                .copied()
                .filter(|&c| self.contains(c) && unseen(c)),
        );
        if fresh.len() > 1 {
            fresh.sort_unstable();
            fresh.dedup();
        }
    }

    #[inline]
    pub(crate) fn picked(&mut self) {
        self.added.clear();
    }

    #[inline]
    pub(crate) fn insert_run(&mut self, p: ProcId) {
        if self.runs.insert(p as usize) {
            self.added.push(Choice::Run(p));
        }
    }

    #[inline]
    pub(crate) fn remove_run(&mut self, p: ProcId) {
        self.runs.remove(p as usize);
    }

    pub fn has_run(&self, p: ProcId) -> bool {
        self.runs.contains(p as usize)
    }

    fn insert_head(&mut self, m: MsgId) {
        if self.heads.insert(m as usize) {
            self.added.push(Choice::Deliver(m));
        }
    }

    fn remove_head(&mut self, m: MsgId) {
        self.heads.remove(m as usize);
    }

    /// Whether anything other than a timer can happen.
    #[inline]
    pub fn has_work(&self) -> bool {
        !self.runs.is_empty() || !self.heads.is_empty()
    }

    #[inline]
    pub(crate) fn set_fire(&mut self, fire: Option<TimerId>) {
        if fire != self.fire {
            self.fire = fire;
            if let Some(t) = fire {
                self.added.push(Choice::Fire(t));
            }
        }
    }

    /// Offers nothing, keeping the capacity.
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.heads.clear();
        self.fire = None;
        self.added.clear();
    }

    /// A set holding exactly `choices` (all of them counted as added), for strategy tests.
    pub fn from_choices(choices: &[Choice]) -> Self {
        let mut set = ChoiceSet::default();
        for &c in choices {
            match c {
                Choice::Run(p) => set.insert_run(p),
                Choice::Deliver(m) => set.insert_head(m),
                Choice::Fire(t) => set.set_fire(Some(t)),
            }
        }
        set
    }
}

/// A message's sender→receiver pair (`None`: a signal with no managed target).
pub type Pair = (ProcId, Option<ProcId>);

/// Hashes a [`Pair`] with FxHash's multiply-rotate step: under `delivery: :delayed` every
/// message is looked up twice (sent, delivered), and a pair of small ids needs no
/// protection from an adversary. (Nothing depends on the map's order: it was randomly
/// seeded before.)
#[derive(Clone, Copy, Debug, Default)]
pub struct PairHasher(u64);

impl PairHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Messages and signals in flight, per sender→receiver pair in send order (message ids
/// grow with send order). Each pair's oldest is offered in the [`ChoiceSet`]. A pair's
/// queue stays (empty) once its last message has left, so a pair that keeps talking
/// allocates its queue once, not once per message.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    pairs: HashMap<Pair, VecDeque<MsgId>, BuildHasherDefault<PairHasher>>,
    len: usize,
}

impl InFlight {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nothing in flight, keeping the capacity.
    pub fn clear(&mut self) {
        self.pairs.clear();
        self.len = 0;
    }

    /// `m`, just sent (the newest message of the run), is in flight on `pair`.
    pub fn push(&mut self, m: MsgId, pair: Pair, choices: &mut ChoiceSet) {
        let queue = self.pairs.entry(pair).or_default();
        debug_assert!(queue.back().is_none_or(|&last| last < m));
        queue.push_back(m);
        self.len += 1;
        if queue.len() == 1 {
            choices.insert_head(m);
        }
    }

    /// Takes `m` out of flight (delivered, cut); its pair's next message heads it.
    pub fn remove(&mut self, m: MsgId, pair: Pair, choices: &mut ChoiceSet) {
        let Some(queue) = self.pairs.get_mut(&pair) else {
            return;
        };
        let Some(at) = queue.iter().position(|&x| x == m) else {
            return;
        };
        queue.remove(at);
        self.len -= 1;
        if at == 0 {
            choices.remove_head(m);
            if let Some(&next) = queue.front() {
                choices.insert_head(next);
            }
        }
    }

    /// What `pair` has in flight, oldest first.
    pub fn pair(&self, pair: Pair) -> Vec<MsgId> {
        self.pairs
            .get(&pair)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Takes every message out of flight, in send order.
    pub fn take_all(&mut self, choices: &mut ChoiceSet) -> Vec<MsgId> {
        let mut all: Vec<MsgId> = Vec::with_capacity(self.len);
        for queue in self.pairs.values_mut() {
            if let Some(&head) = queue.front() {
                choices.remove_head(head);
            }
            all.extend(queue.drain(..));
        }
        all.sort_unstable();
        self.len = 0;
        all
    }

    /// Keeps the messages `keep` accepts (in send order within each pair).
    pub fn retain(&mut self, mut keep: impl FnMut(MsgId) -> bool, choices: &mut ChoiceSet) {
        for queue in self.pairs.values_mut() {
            let head = queue.front().copied();
            let before = queue.len();
            queue.retain(|&m| keep(m));
            self.len -= before - queue.len();
            let new_head = queue.front().copied();
            if new_head != head {
                if let Some(h) = head {
                    choices.remove_head(h);
                }
                if let Some(h) = new_head {
                    choices.insert_head(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The tree answers like a sorted set: members, rank order, select.
        #[test]
        fn count_tree_is_a_sorted_set(ops in prop::collection::vec((any::<bool>(), 0usize..1000), 0..400)) {
            let mut tree = CountTree::default();
            let mut model = BTreeSet::new();
            for (insert, i) in ops {
                if insert {
                    prop_assert_eq!(tree.insert(i), model.insert(i));
                } else {
                    prop_assert_eq!(tree.remove(i), model.remove(&i));
                }
                prop_assert_eq!(tree.len(), model.len());
                for (k, &m) in model.iter().enumerate() {
                    prop_assert_eq!(tree.select(k), m);
                }
                prop_assert!(tree.iter().eq(model.iter().copied()));
            }
        }

        /// The heads offered are, per pair, the oldest message still in flight — what the
        /// engine used to find by scanning every message in flight at every step.
        #[test]
        fn in_flight_offers_the_oldest_message_of_each_pair(
            ops in prop::collection::vec((0u8..4, 0u32..4, 0u32..4, any::<prop::sample::Index>()), 0..200)
        ) {
            let mut set = ChoiceSet::default();
            let mut flight = InFlight::default();
            let mut model: Vec<(MsgId, Pair)> = Vec::new();
            let mut next: MsgId = 0;
            for (op, from, to, index) in ops {
                let pair = (from, Some(to));
                match op {
                    0 | 1 => {
                        flight.push(next, pair, &mut set);
                        model.push((next, pair));
                        next += 1;
                    }
                    2 if !model.is_empty() => {
                        let (m, pair) = model.remove(index.index(model.len()));
                        flight.remove(m, pair, &mut set);
                    }
                    3 => {
                        let cut = next % 3;
                        flight.retain(|m| m % 3 != cut, &mut set);
                        model.retain(|&(m, _)| m % 3 != cut);
                    }
                    _ => {}
                }
                let mut seen = std::collections::HashSet::new();
                let heads: Vec<Choice> = model
                    .iter()
                    .filter(|(_, p)| seen.insert(*p))
                    .map(|&(m, _)| Choice::Deliver(m))
                    .collect();
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), heads);
                prop_assert_eq!(flight.len(), model.len());
            }
            let all = flight.take_all(&mut set);
            prop_assert_eq!(all, model.iter().map(|&(m, _)| m).collect::<Vec<_>>());
            prop_assert!(set.is_empty());
        }
    }

    #[test]
    fn get_follows_the_offered_order() {
        let set = ChoiceSet::from_choices(&[
            Choice::Fire(2),
            Choice::Deliver(9),
            Choice::Run(4),
            Choice::Run(1),
            Choice::Deliver(3),
        ]);
        let all: Vec<Choice> = (0..set.len()).map(|i| set.get(i)).collect();
        assert_eq!(
            all,
            vec![
                Choice::Run(1),
                Choice::Run(4),
                Choice::Deliver(3),
                Choice::Deliver(9),
                Choice::Fire(2)
            ]
        );
        assert_eq!(all, set.iter().collect::<Vec<_>>());
    }
}
