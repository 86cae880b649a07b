//! Exhaustive search: every interleaving up to equivalence, by stateless dynamic partial
//! order reduction.
//!
//! * `Dpor::None` — plain depth-first search over every choice (and every value of each
//!   `Lockstep.random/1`), no reduction: the reference the other two are checked against.
//! * `Dpor::Source` — source sets with sleep sets: Abdulla, Aronis, Jonsson, Sagonas,
//!   "Optimal Dynamic Partial Order Reduction", POPL 2014, Algorithm 1.
//! * `Dpor::Optimal` — wake-up trees (the same paper's Algorithm 2, and "Source Sets: A
//!   Foundation for Optimal Dynamic Partial Order Reduction", JACM 64(4), 2017): explores
//!   exactly one interleaving per Mazurkiewicz trace, none cut short by sleep sets.
//! * Message passing is handled as Concuerror does it (Christakis, Gotovos, Sagonas,
//!   "Systematic Testing for Detecting Concurrency Errors in Erlang Programs", ICST 2013,
//!   and "DPOR for message passing" in the JACM paper, §10): deliveries to one mailbox
//!   race, a receive races with the arrival of the message it took, not with later ones.
//!   The relation itself is `dependency.rs`.
//! * Both reductions assume that no step disables another; a kill does. The first step seen
//!   disabling another makes the search start over as depth-first search with sleep sets
//!   alone (Godefroid, "Partial-Order Methods for the Verification of Concurrent Systems",
//!   LNCS 1032, 1996), with the disabling step dependent on every step: see
//!   `note_disabling`. Sound, and no more interleavings than plain search after the restart.
//!
//! Control flow. The search is stateless: each iteration re-executes the program from
//! scratch. `stack` holds one [`Node`] per decision of the current execution; the first
//! `prefix` nodes of an iteration are replayed (the node's `taken` actor must be offered
//! again, or the program is not deterministic: a [`Divergence`]), the last of them carries
//! the new branch, and past it the search picks freely — the first choice offered that is
//! not asleep, or the leftmost branch of the node's wake-up tree — pushing new nodes. A
//! step's footprint is known only once it ran (a receive's message is reported during its
//! run segment), so each pick first finishes the footprint of the step before it, from the
//! events the session recorded. At `end_iteration` the execution's races are found with
//! vector clocks (happens-before is program order plus dependent pairs in execution order),
//! each race adds a backtrack point (source) or a wake-up sequence (optimal) at the node
//! before its first event, and the deepest node with work left becomes the next branch.
//!
//! Actors are stable across executions: a process's symbolic name for `Run`, the
//! sender→receiver pair for `Deliver`, the timer's owner and ordinal for `Fire`. A reversal
//! whose first actor is not offered at the node it targets (a process not yet spawned, a
//! timer not yet the earliest) is infeasible and skipped: the reordering cannot happen.
//!
//! A preemption bound (`preemption_bound: k`, Musuvathi and Qadeer, PLDI 2007) turns the
//! search into plain depth-first search over the schedules with at most k preemptive
//! context switches (the last process run is still offered and another is picked): DPOR's
//! reductions are not sound under a bound without extra machinery (Coons, Musuvathi,
//! McKinley, "Bounded Partial-Order Reduction", OOPSLA 2013). `exhausted` then means
//! complete within the bound.

use super::dependency::{dependent, footprint, Footprint, Step};
use super::{Choice, ChoiceSet, Divergence, SearchStats, Strategy, View};
use crate::ids::{ProcId, ProcName};
use crate::op::Op;
use crate::process::ProcState;
use crate::schedule::Decision;
use crate::trace::EventKind;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Which reduction the search uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dpor {
    None,
    Source,
    Optimal,
}

/// An interned actor (see the module comment).
type Actor = u32;

/// An execution's path: each decision's actor and the value of its draw.
pub(crate) type PathKey = Vec<(Actor, Option<u64>)>;

/// An event as the search remembers it across executions: who, which random value, what
/// it touched.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ev {
    actor: Actor,
    value: Option<u64>,
    fp: Footprint,
}

/// A wake-up tree below a node: ordered branches, leftmost explored first.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wut {
    ev: Ev,
    children: Vec<Wut>,
}

#[derive(Clone, Debug, Default)]
struct Node {
    /// The actors offered here, in offer order, with the bound of a pending
    /// `Lockstep.random/1` (a process whose next step draws).
    enabled: Vec<(Actor, Option<u64>)>,
    taken: Actor,
    /// The taken step's draw, `(n, value)`, once made.
    random: Option<(u64, u64)>,
    /// A value a wake-up branch fixed for the taken step's draw.
    fixed_value: Option<u64>,
    /// The taken step's footprint in the current execution (before it runs, in a parallel
    /// search's fork: the footprint it is expected to have, see `fp_known`).
    fp: Footprint,
    /// Whether `fp` is the taken step's (seen, or expected from the wake-up branch or the
    /// other value that chose it): a fork can look past it to the node's next branch.
    fp_known: bool,
    /// The taken step was offered because nothing else could happen: a timer firing, a
    /// process waiting for a message from outside the run.
    idle_only: bool,
    /// Preemptive context switches before this step (bounded search), and the actor of
    /// the step before it.
    preemptions: u32,
    prev: Option<Actor>,
    /// Asleep on entry: explored from an ancestor, and independent of every step since.
    sleep: Vec<Ev>,
    /// Explored here already (each a sleep entry for the later siblings).
    done: Vec<Ev>,
    /// Source / plain DFS: actors still to explore here.
    backtrack: Vec<Actor>,
    /// Optimal: the wake-up tree's branches still to explore here.
    wut: Vec<Wut>,
    /// Optimal: the subtree of the branch being explored, handed to the next node.
    next_wut: Vec<Wut>,
}

impl Node {
    /// What an execution through this node (not from it) needs of it: the decision and
    /// what the step did, without what the node explores (a fork's prefix).
    fn light(&self) -> Node {
        Node {
            enabled: self.enabled.clone(),
            taken: self.taken,
            random: self.random,
            fixed_value: self.fixed_value,
            fp: self.fp.clone(),
            fp_known: self.fp_known,
            idle_only: self.idle_only,
            preemptions: self.preemptions,
            prev: self.prev,
            ..Node::default()
        }
    }

    /// Whether taking `a` here is a preemptive context switch: the process that ran last
    /// could go on and another actor is picked.
    fn preempts(&self, a: Actor, is_run: &[bool]) -> bool {
        match self.prev {
            Some(p) if is_run[p as usize] => a != p && self.enabled.iter().any(|e| e.0 == p),
            _ => false,
        }
    }
}

/// A process as an earlier execution saw it (`Exhaustive::known_procs`): its name, and
/// its actor and interned name once asked for.
#[derive(Clone)]
struct KnownProc {
    name: ProcName,
    actor: Option<Actor>,
    key: Option<u32>,
}

/// The step in progress in a live run: what its footprint is computed from.
#[derive(Clone)]
struct LiveStep {
    step: u64,
    choice: Choice,
    op: Option<Op>,
    aliases: usize,
}

/// Actors and process names interned once for a whole search, shared by the master of a
/// parallel search and its followers (`exhaustive_parallel.rs`) so that their ids agree.
#[derive(Default)]
pub(crate) struct Interner {
    actors: HashMap<Decision, Actor>,
    decisions: Vec<Decision>,
    /// Whether each actor is a process (`Run`): only those can be preempted.
    is_run: Vec<bool>,
    names: HashMap<ProcName, u32>,
}

/// What one execution showed the search, in the order it saw it: enough for another
/// instance in the same state to make the same decisions without the run (a parallel
/// search's master replays its followers' executions from these).
#[derive(Clone, Debug)]
pub(crate) enum Rec {
    /// The actors offered (with pending draws), and the index picked (`None`: any).
    Pick(Vec<(Actor, Option<u64>)>, Option<usize>),
    /// A draw of `n` values, and the value given (`None`: the draw diverged).
    Random(u64, Option<u64>),
    /// The step in progress finished: its footprint, and whether only idleness offered it.
    Finished(Footprint, bool),
    /// The execution ended (completed, or cut short by a limit).
    End(bool),
}

fn read(lock: &RwLock<Interner>) -> RwLockReadGuard<'_, Interner> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<Interner>) -> RwLockWriteGuard<'_, Interner> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// What `decide` did with a pick.
enum Decided {
    At(usize),
    /// Any choice: the rest of the run is not recorded (asleep) or the search is broken.
    Any,
    /// The program did not offer the prefix's actor.
    Diverged(Actor),
}

/// Happens-before of the last execution whose races were found, kept for the next one:
/// its nodes before the branch node are the same (see `detect_races`). One vector clock
/// per node, stored flat: node k's clock is `data[start[k]..start[k + 1]]`, one entry per
/// actor seen up to k, actors numbered densely in the order they first step.
#[derive(Clone, Default)]
struct Clocks {
    /// Nodes `0..valid` are those the clocks were computed for.
    valid: usize,
    /// Each node's dense actor index, and its actor's count of steps up to it (1-based).
    idx: Vec<u32>,
    seq: Vec<u32>,
    start: Vec<usize>,
    data: Vec<u32>,
    // Scratch, kept for its capacity: dense index + 1 by interned actor (0: not seen),
    // the last node of each dense actor, the races found.
    dense: Vec<u32>,
    last: Vec<usize>,
    races: Vec<(usize, usize)>,
    /// Per node: the last node before it at which its actor was not offered (`usize::MAX`:
    /// none), what made the actor able to run (see `reverse_races`); and its scratch.
    enabler: Vec<usize>,
    absent: Vec<usize>,
    mark: Vec<usize>,
}

impl Clocks {
    /// The clocks of `stack` (a finished execution), those of nodes `0..from` being kept
    /// from the execution before (`from <= valid`), and the races whose later step is at
    /// or after `from`, in execution order of that step, nearest earlier step first.
    fn compute(&mut self, stack: &[Node], from: usize) {
        self.idx.truncate(from);
        self.seq.truncate(from);
        self.start.truncate(from + 1);
        if self.start.is_empty() {
            self.start.push(0);
        }
        self.data.truncate(self.start[from]);
        self.races.clear();
        self.last.clear();
        let mut width = 0usize;
        for (k, node) in stack.iter().enumerate() {
            let a = node.taken as usize;
            if self.dense.len() <= a {
                self.dense.resize(a + 1, 0);
            }
            if self.dense[a] == 0 {
                width += 1;
                self.dense[a] = width as u32;
                self.last.push(usize::MAX);
            }
            let ak = self.dense[a] as usize - 1;
            if k < from {
                debug_assert_eq!(self.idx[k] as usize, ak);
                self.last[ak] = k;
                continue;
            }
            let seq = match self.last[ak] {
                usize::MAX => 1,
                p => self.seq[p] + 1,
            };
            self.idx.push(ak as u32);
            self.seq.push(seq);
            // Node k's clock: its actor's last one, joined with that of every earlier step
            // it depends on and does not already happen after (each such pair a race).
            let begin = self.data.len();
            if let Some(&p) = self.last.get(ak).filter(|&&p| p != usize::MAX) {
                let (s, e) = (self.start[p], self.start[p + 1]);
                self.data.extend_from_within(s..e);
            }
            self.data.resize(begin + width, 0);
            for i in (0..k).rev() {
                let ai = self.idx[i] as usize;
                if ai == ak || self.data[begin + ai] >= self.seq[i] {
                    continue;
                }
                if !dependent(&stack[i].fp, &node.fp, false) {
                    continue;
                }
                self.races.push((i, k));
                let (s, e) = (self.start[i], self.start[i + 1]);
                let (before, row) = self.data.split_at_mut(begin);
                for (x, y) in row.iter_mut().zip(&before[s..e]) {
                    *x = (*x).max(*y);
                }
            }
            self.data[begin + ak] = seq;
            self.start.push(self.data.len());
            self.last[ak] = k;
        }
        // One pass for every node's enabler, rather than a walk back from each step of
        // each race.
        self.enabler.clear();
        self.absent.clear();
        self.absent.resize(width, usize::MAX);
        self.mark.clear();
        self.mark.resize(width, usize::MAX);
        for (m, node) in stack.iter().enumerate() {
            self.enabler.push(self.absent[self.idx[m] as usize]);
            for e in &node.enabled {
                if let Some(&d) = self.dense.get(e.0 as usize).filter(|&&d| d != 0) {
                    self.mark[d as usize - 1] = m;
                }
            }
            for (absent, &mark) in self.absent.iter_mut().zip(&self.mark) {
                if mark != m {
                    *absent = m;
                }
            }
        }
        for node in stack {
            self.dense[node.taken as usize] = 0;
        }
        self.valid = stack.len();
    }

    /// The last node in `i..k` at which node k's actor was not offered.
    fn enabler_since(&self, i: usize, k: usize) -> Option<usize> {
        let m = self.enabler[k];
        (m != usize::MAX && m >= i).then_some(m)
    }

    fn row(&self, k: usize) -> &[u32] {
        &self.data[self.start[k]..self.start[k + 1]]
    }

    /// Whether node x happens before node y (or is y).
    fn hb(&self, x: usize, y: usize) -> bool {
        let row = self.row(y);
        row.get(self.idx[x] as usize)
            .is_some_and(|&c| c >= self.seq[x])
    }
}

#[derive(Clone)]
pub struct Exhaustive {
    dpor: Dpor,
    bound: Option<u32>,
    interner: Arc<RwLock<Interner>>,
    /// This iteration's interned process names, by process id.
    keys_by_id: Vec<Option<u32>>,
    /// A follower of a parallel search records its one execution instead of moving on.
    record: Option<Vec<Rec>>,
    /// A follower's fork node: the nodes above it are copies without what they explore,
    /// so the follower goes on by itself only below it (`continue_below`).
    fork_depth: usize,
    stack: Vec<Node>,
    exhausted: bool,
    /// The program did not follow a prefix: the search cannot go on.
    broken: bool,
    /// A step was seen disabling another (a kill): the reductions assume none does, so
    /// the search has fallen back to depth-first search with sleep sets alone (see
    /// `mark_disabling`).
    sleep_only: bool,
    /// This iteration saw the first disabling step: the next one starts the search over.
    restart: bool,
    /// Iterations run before the restart (`SearchStats::restarted`).
    restarted: u64,
    explored: u64,
    sleep_blocked: u64,
    // Per iteration:
    depth: usize,
    prefix: usize,
    /// The node of the step in progress (picked, not yet finished).
    in_progress: Option<usize>,
    live: Option<LiveStep>,
    seen_events: usize,
    seen_msgs: usize,
    seen_procs: usize,
    /// Every choice here was asleep: the rest of the run is redundant and not recorded.
    blocked: bool,
    run_actor: Vec<Option<Actor>>,
    pair_actor: HashMap<(ProcId, ProcId), Actor>,
    /// By process id, across executions: the name of the process that last had that id,
    /// its actor and its interned name. Re-executions give the same process the same id,
    /// so an execution's first look at a process compares names instead of asking the
    /// interner (a name cloned, hashed and looked up under its lock) again.
    known_procs: Vec<Option<KnownProc>>,
    clocks: Clocks,
    /// `reverse_races`'s buffers: the steps a race's first step caused, and the reversal.
    race_buf: (Vec<usize>, Vec<usize>),
    /// `next_branch`'s buffer, kept for its capacity.
    after_buf: Vec<(Actor, Footprint)>,
    /// `pick`'s buffers: the choices offered with their actors and draws, and the actors
    /// with their draws alone.
    offer_buf: OfferBuf,
}

type OfferBuf = (Vec<(Actor, Choice, Option<u64>)>, Vec<(Actor, Option<u64>)>);

impl Exhaustive {
    /// `bound`: at most this many preemptions per schedule (then the search is plain
    /// depth-first, whatever `dpor` says; see the module comment).
    pub fn new(dpor: Dpor, bound: Option<u32>) -> Self {
        Exhaustive {
            dpor: if bound.is_some() { Dpor::None } else { dpor },
            bound,
            interner: Arc::default(),
            keys_by_id: Vec::new(),
            record: None,
            fork_depth: 0,
            stack: Vec::new(),
            exhausted: false,
            broken: false,
            sleep_only: false,
            restart: false,
            restarted: 0,
            explored: 0,
            sleep_blocked: 0,
            depth: 0,
            prefix: 0,
            in_progress: None,
            live: None,
            seen_events: 0,
            seen_msgs: 0,
            seen_procs: 0,
            blocked: false,
            run_actor: Vec::new(),
            pair_actor: HashMap::new(),
            known_procs: Vec::new(),
            clocks: Clocks::default(),
            race_buf: Default::default(),
            after_buf: Vec::new(),
            offer_buf: OfferBuf::default(),
        }
    }

    /// The reduction actually used (`None` under a preemption bound).
    pub fn dpor(&self) -> Dpor {
        self.dpor
    }

    pub(crate) fn stack_len(&self) -> usize {
        self.stack.len()
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }

    // The interner is read far more often than written (a new actor or process name), by
    // every worker of a parallel search at once: a read lock does not make them wait for
    // each other. A panic while it was held leaves it consistent: every update is one
    // insert.
    fn interner(&self) -> RwLockReadGuard<'_, Interner> {
        read(&self.interner)
    }

    fn intern(&mut self, d: Decision) -> Actor {
        if let Some(&a) = self.interner().actors.get(&d) {
            return a;
        }
        let mut interner = write(&self.interner);
        if let Some(&a) = interner.actors.get(&d) {
            return a;
        }
        let a = interner.decisions.len() as Actor;
        interner.is_run.push(matches!(d, Decision::Run(_)));
        interner.decisions.push(d.clone());
        interner.actors.insert(d, a);
        a
    }

    /// Process `p`'s entry in `known_procs`, emptied first if another process had its id.
    fn known(&mut self, view: &View<'_>, p: ProcId) -> &mut KnownProc {
        Self::known_in(&mut self.known_procs, view, p)
    }

    fn known_in<'k>(
        known_procs: &'k mut Vec<Option<KnownProc>>,
        view: &View<'_>,
        p: ProcId,
    ) -> &'k mut KnownProc {
        let i = p as usize;
        if known_procs.len() <= i {
            known_procs.resize(i + 1, None);
        }
        let name = view.proc_name(p);
        let slot = &mut known_procs[i];
        if slot.as_ref().is_none_or(|k| k.name != *name) {
            *slot = Some(KnownProc {
                name: name.clone(),
                actor: None,
                key: None,
            });
        }
        slot.as_mut().expect("just filled")
    }

    fn decision(&self, a: Actor) -> Decision {
        self.interner().decisions[a as usize].clone()
    }

    fn actor_of(&mut self, view: &View<'_>, c: Choice) -> Actor {
        match c {
            Choice::Run(p) => {
                let i = p as usize;
                if let Some(Some(a)) = self.run_actor.get(i) {
                    return *a;
                }
                let a = match self.known(view, p).actor {
                    Some(a) => a,
                    None => {
                        let a = self.intern(view.decision_for(c));
                        self.known(view, p).actor = Some(a);
                        a
                    }
                };
                if self.run_actor.len() <= i {
                    self.run_actor.resize(i + 1, None);
                }
                self.run_actor[i] = Some(a);
                a
            }
            Choice::Deliver(m) => {
                let msg = view.message(m);
                let pair = (msg.from, msg.to.unwrap_or(ProcId::MAX));
                if let Some(&a) = self.pair_actor.get(&pair) {
                    return a;
                }
                let a = self.intern(view.decision_for(c));
                self.pair_actor.insert(pair, a);
                a
            }
            Choice::Fire(_) => self.intern(view.decision_for(c)),
        }
    }

    /// The choices offered, with their actors and pending draws: O(n log n) in the
    /// choices, which DPOR needs (the enabled set of each state).
    fn offered(
        &mut self,
        view: &View<'_>,
        choices: &ChoiceSet,
        offered: &mut Vec<(Actor, Choice, Option<u64>)>,
        actors: &mut Vec<(Actor, Option<u64>)>,
    ) {
        offered.clear();
        actors.clear();
        for i in 0..choices.len() {
            let c = choices.get(i);
            let n = match c {
                Choice::Run(p) => match view.pending(p) {
                    Op::Random { n } => Some(n),
                    _ => None,
                },
                _ => None,
            };
            let a = self.actor_of(view, c);
            offered.push((a, c, n));
            actors.push((a, n));
        }
    }

    /// Completes the footprint of the step in progress from what the session recorded.
    fn finish_step(&mut self, view: &View<'_>) {
        let events = view.events();
        if let Some(ip) = self.live.take() {
            let from = self.seen_events.min(events.len());
            let mut end = events.len();
            // The teardown's kills at the end of an iteration are not part of any step.
            while end > from
                && matches!(
                    events[end - 1].kind,
                    EventKind::Exit {
                        cause: crate::process::ExitCause::Teardown
                    }
                )
            {
                end -= 1;
            }
            let step_events = &events[from..end];
            debug_assert!(step_events.iter().all(|e| e.step == ip.step));
            let aliases_changed = match ip.choice {
                Choice::Run(p) => view.procs()[p as usize].aliases.len() != ip.aliases,
                _ => false,
            };
            let step = Step {
                choice: ip.choice,
                op: ip.op,
                events: step_events,
                new_msgs: self.seen_msgs..view.messages().len(),
                new_procs: self.seen_procs..view.procs().len(),
                aliases_changed,
            };
            let mut keys = std::mem::take(&mut self.keys_by_id);
            let mut known_procs = std::mem::take(&mut self.known_procs);
            let interner = Arc::clone(&self.interner);
            let fp = footprint(view, &step, &mut |p| {
                let i = p as usize;
                if let Some(Some(k)) = keys.get(i) {
                    return *k;
                }
                let known = Self::known_in(&mut known_procs, view, p);
                let k = match known.key {
                    Some(k) => k,
                    None => {
                        let name = view.proc_name(p);
                        let found = read(&interner).names.get(name).copied();
                        let k = found.unwrap_or_else(|| {
                            let mut interner = write(&interner);
                            let next = interner.names.len() as u32;
                            *interner.names.entry(name.clone()).or_insert(next)
                        });
                        known.key = Some(k);
                        k
                    }
                };
                if keys.len() <= i {
                    keys.resize(i + 1, None);
                }
                keys[i] = Some(k);
                k
            });
            self.keys_by_id = keys;
            self.known_procs = known_procs;
            let idle_only = match ip.choice {
                Choice::Fire(_) => true,
                Choice::Run(p) => step_events
                    .iter()
                    .any(|e| e.proc == p && e.kind == EventKind::ReceiveExternal),
                Choice::Deliver(_) => false,
            };
            self.step_finished(fp, idle_only);
        }
        self.seen_events = events.len();
        self.seen_msgs = view.messages().len();
        self.seen_procs = view.procs().len();
    }

    /// The step in progress finished with this footprint.
    fn step_finished(&mut self, fp: Footprint, idle_only: bool) {
        if let Some(rec) = &mut self.record {
            rec.push(Rec::Finished(fp.clone(), idle_only));
        }
        if let Some(n) = self.in_progress.take() {
            if let Some(node) = self.stack.get_mut(n) {
                node.fp = fp;
                node.fp_known = true;
                node.idle_only = idle_only;
            }
        }
    }

    fn asleep(entries: &[Ev], actor: Actor, draw: Option<u64>) -> bool {
        match draw {
            None => entries.iter().any(|e| e.actor == actor),
            // A process about to draw is asleep only once every value is.
            Some(n) => (0..n).all(|v| {
                entries
                    .iter()
                    .any(|e| e.actor == actor && e.value == Some(v))
            }),
        }
    }

    /// A new node at `depth`: its sleep set and wake-up tree from its parent, and the index
    /// of its first choice in `offered`. `None`: every choice is asleep.
    fn new_node(&mut self, offered: &[(Actor, Option<u64>)]) -> Option<(Node, usize)> {
        let d = self.depth;
        let interner = Arc::clone(&self.interner);
        let interner = read(&interner);
        let is_run = &interner.is_run;
        let mut node = Node {
            enabled: offered.to_vec(),
            ..Node::default()
        };
        if d > 0 {
            let parent = &mut self.stack[d - 1];
            node.preemptions =
                parent.preemptions + u32::from(parent.preempts(parent.taken, is_run));
            node.prev = Some(parent.taken);
            if self.dpor != Dpor::None {
                // Sleep sets (Godefroid 1996): what was explored from an ancestor stays
                // asleep while every step since is independent of it.
                node.sleep = parent
                    .sleep
                    .iter()
                    .chain(parent.done.iter())
                    .filter(|e| e.actor != parent.taken && !dependent(&e.fp, &parent.fp, true))
                    .cloned()
                    .collect();
            }
            node.wut = std::mem::take(&mut parent.next_wut);
        }
        let bound = self.bound;
        let allowed = |node: &Node, a: Actor| match bound {
            Some(k) => node.preemptions + u32::from(node.preempts(a, is_run)) <= k,
            None => true,
        };
        // Optimal: the leftmost wake-up branch that can be taken here.
        while !node.wut.is_empty() {
            let branch = node.wut.remove(0);
            if let Some(i) = offered.iter().position(|o| o.0 == branch.ev.actor) {
                node.taken = branch.ev.actor;
                node.fixed_value = branch.ev.value;
                node.next_wut = branch.children;
                return Some((node, i));
            }
        }
        let first = offered.iter().position(|&(a, n)| {
            allowed(&node, a) && (self.dpor == Dpor::None || !Self::asleep(&node.sleep, a, n))
        })?;
        node.taken = offered[first].0;
        if self.dpor == Dpor::None || self.sleep_only {
            // `allowed` reads only what was set before `taken`.
            let taken = node.taken;
            node.backtrack = offered
                .iter()
                .filter(|o| o.0 != taken && allowed(&node, o.0))
                .map(|o| o.0)
                .collect();
        }
        Some((node, first))
    }

    /// Race detection over the finished execution (nodes `0..n`), then a backtrack point
    /// or wake-up sequence for each race.
    ///
    /// Only races whose later step is new in this execution (the branch node's or after)
    /// are looked at. The nodes before the branch node are those of the execution before,
    /// whose races were all looked at then (by induction, in the first execution that ran
    /// both steps); that is Algorithm 1 of Abdulla, Aronis, Jonsson, Sagonas (POPL'14, and
    /// JACM'17's source-DPOR), where a race is found once, when its later step is explored,
    /// and what Concuerror does for source sets
    /// (`concuerror_scheduler:plan_more_interleavings` plans from the untimed part of the
    /// trace only). Looking at such a race again changes nothing here, for optimal DPOR
    /// too: what is done with race (i, j) depends on the steps i..=j (the same, and the
    /// wake-up sequence stops at j: JACM'17 Algorithm 2 takes notdep(e, E) over all of E,
    /// and Concuerror's optimal mode and Nidhugg look at every race of the execution again)
    /// and on node i's sleep set, done set, backtrack set and wake-up tree, which have not
    /// lost anything since: a node's branches are removed only when it moves on, and it has
    /// not (it lies above the branch node). Inserting into a wake-up tree what it already
    /// took in is a no-op (the insertion follows the same leftmost branches, since branches
    /// are only ever added to the right, and ends at a leaf or at the end of the sequence),
    /// and so is adding a backtrack actor already present. Debug builds check it (below);
    /// the test that pins the literature programs' explorations checks that the explored
    /// interleavings, their order and counts are unchanged by it.
    ///
    /// The vector clocks of the shared nodes are kept from the execution before
    /// (`Clocks`); those of the new ones are computed: happens-before is program order
    /// plus the dependent pairs in execution order.
    fn detect_races(&mut self, n: usize, valid: usize) {
        let mut clocks = std::mem::take(&mut self.clocks);
        let from = valid.min(self.prefix.saturating_sub(1)).min(n);
        clocks.compute(&self.stack[..n], from);
        let races = std::mem::take(&mut clocks.races);
        #[cfg(debug_assertions)]
        {
            // Checks what the comment above argues: the clocks kept are those computed
            // afresh, and the races left out change nothing when looked at again (first,
            // as they come first in execution order).
            let mut fresh = Clocks::default();
            fresh.compute(&self.stack[..n], 0);
            assert_eq!((&fresh.data, &fresh.start), (&clocks.data, &clocks.start));
            for (k, node) in self.stack[..n].iter().enumerate() {
                let walked = (0..k)
                    .rev()
                    .find(|&m| !self.stack[m].enabled.iter().any(|e| e.0 == node.taken));
                assert_eq!(clocks.enabler_since(0, k), walked);
            }
            let (old, new): (Vec<_>, Vec<_>) = fresh.races.iter().partition(|r| r.1 < from);
            assert_eq!(new, races);
            let before: Vec<_> = self.stack[..n]
                .iter()
                .map(|x| (x.backtrack.clone(), x.wut.clone()))
                .collect();
            self.reverse_races(&old, &clocks);
            let after: Vec<_> = self.stack[..n]
                .iter()
                .map(|x| (x.backtrack.clone(), x.wut.clone()))
                .collect();
            assert!(
                before == after,
                "a race of the shared prefix changed the search"
            );
        }
        self.reverse_races(&races, &clocks);
        clocks.races = races;
        self.clocks = clocks;
    }

    /// A backtrack point (source) or wake-up sequence (optimal) for each race `(i, j)`,
    /// in the order found.
    fn reverse_races(&mut self, races: &[(usize, usize)], clocks: &Clocks) {
        let hb = |x: usize, y: usize| clocks.hb(x, y);
        // Buffers kept for their capacity: a race is reversed at every step of most
        // executions.
        let (mut caused, mut v) = std::mem::take(&mut self.race_buf);
        for &(i, j) in races {
            // Only a reversible race counts: j's actor must be able to go before i. If what
            // made it able to run at all (the last step after which it was offered) is i,
            // or comes after i, the pair is a cause and its effect (a spawn and the child's
            // start, a send and its delivery, a message and the blocked receive it woke).
            let enabler = clocks.enabler_since(i, j);
            if enabler.is_some_and(|k| k == i || hb(i, k)) {
                continue;
            }
            // A timer is offered when nothing else can happen (`:on_idle`) or while it is
            // the earliest (`:anytime`), and a process waits for the outside only when
            // nothing else can happen: no single step enabled them, so they can go before
            // i only if they were offered there already.
            if self.stack[j].idle_only && enabler.is_some() {
                continue;
            }
            // v = notdep(i, E).j: the steps between them not caused by i, then j.
            // A step whose actor i (or a step caused by i) made able to run is caused by
            // i too, though its footprint may not say so (a blocked receive woken by i's
            // message that matched nothing touches nothing): it stays out of v, with
            // every step after it of its actor or depending on it. If j is one of those,
            // the race cannot be reversed.
            let stack = &self.stack;
            caused.clear();
            v.clear();
            for k in (i + 1)..=j {
                let ak = stack[k].taken;
                let woken = clocks
                    .enabler_since(i, k)
                    .is_some_and(|m| m == i || hb(i, m) || caused.contains(&m));
                let after_caused = caused.iter().any(|&c| stack[c].taken == ak || hb(c, k));
                if k != j && hb(i, k) {
                    continue;
                }
                if woken || after_caused {
                    caused.push(k);
                } else {
                    v.push(k);
                }
            }
            if v.last() != Some(&j) {
                continue;
            }
            let initial = |pos: usize, v: &[usize]| !v[..pos].iter().any(|&k| hb(k, v[pos]));
            let enabled_here = |a: Actor| self.stack[i].enabled.iter().any(|e| e.0 == a);
            match self.dpor {
                Dpor::None => {}
                Dpor::Source => {
                    let initials: Vec<Actor> = (0..v.len())
                        .filter(|&pos| initial(pos, &v))
                        .map(|pos| self.stack[v[pos]].taken)
                        .collect();
                    let node = &self.stack[i];
                    let present = |a: Actor| {
                        a == node.taken
                            || node.backtrack.contains(&a)
                            || node.done.iter().any(|e| e.actor == a)
                    };
                    // Algorithm 1 of POPL'14: nothing to add if an initial of the reversal
                    // is already explored, taken or scheduled here; otherwise one initial
                    // (the first in `v`, so the search stays deterministic) is enough for a
                    // source set.
                    if initials.iter().any(|&a| present(a)) {
                        continue;
                    }
                    if let Some(&a) = initials.iter().find(|&&a| enabled_here(a)) {
                        self.stack[i].backtrack.push(a);
                    }
                }
                Dpor::Optimal => {
                    if !v
                        .iter()
                        .enumerate()
                        .any(|(pos, &k)| initial(pos, &v) && enabled_here(self.stack[k].taken))
                    {
                        continue;
                    }
                    let stack = &self.stack;
                    let wi = |e: (Actor, Option<u64>, &Footprint)| {
                        weak_initial(e, &v, stack, &hb) != Wi::No
                    };
                    let node = &stack[i];
                    // What was explored here, and the step taken here now.
                    let current = (node.taken, node.random.map(|r| r.1), &node.fp);
                    if node
                        .sleep
                        .iter()
                        .chain(node.done.iter())
                        .any(|e| wi((e.actor, e.value, &e.fp)))
                        || wi(current)
                    {
                        continue;
                    }
                    let mut tree = std::mem::take(&mut self.stack[i].wut);
                    insert(&mut tree, &mut v, &self.stack, &hb);
                    self.stack[i].wut = tree;
                }
            }
        }
        self.race_buf = (caused, v);
    }

    /// Step k disabled another actor when one offered with it is not offered after it (`next`):
    /// a process killed by an exit signal, a signal dropped by an unlink, a timer
    /// cancelled. Both algorithms assume that no step disables another (an enabled step
    /// stays enabled until it runs); the remedy is to make the disabling step dependent
    /// with every step of what it disabled, so that every ordering of it against the steps
    /// the disabled actor would have raced with is explored. What the disabled actor would
    /// have touched is unknown, so the step becomes dependent with everything: a kill that
    /// cuts a process short is rare, and this costs reduction only around it.
    ///
    /// That alone does not save the reductions: a sleep-set entry or a wake-up branch
    /// recorded where the disabled actor could still run stands for interleavings in which
    /// it runs, and source sets and wake-up trees pick one representative among orderings
    /// that a kill tells apart (a process killed before it could take a name, after another
    /// took it). So the first disabling step seen makes the search start over as depth-first
    /// search with sleep sets alone (Godefroid 1996), which is sound with a dependency
    /// relation that orders the disabling step against everything.
    fn note_disabling(&mut self, k: usize, next: &[(Actor, Option<u64>)]) {
        let node = &mut self.stack[k];
        let disables = node
            .enabled
            .iter()
            .any(|e| e.0 != node.taken && !next.iter().any(|o| o.0 == e.0));
        if disables {
            node.fp.set_global();
            if self.dpor != Dpor::None && !self.sleep_only {
                self.restart = true;
            }
        }
    }

    /// Moves to the next branch: the deepest node with a value, backtrack actor or
    /// wake-up branch left; the search is exhausted when there is none.
    fn next_branch(&mut self) {
        // The steps after each node in the execution just ended, nearest last: a backtrack
        // actor's step is expected to touch what its next step there touched.
        let mut after = std::mem::take(&mut self.after_buf);
        after.clear();
        while let Some(mut node) = self.stack.pop() {
            let guess = |a: Actor| {
                after
                    .iter()
                    .rev()
                    .find(|(t, _)| *t == a)
                    .map(|(_, fp)| fp.clone())
            };
            if self.advance_node(&mut node, &guess) {
                self.stack.push(node);
                self.after_buf = after;
                return;
            }
            let fp = node.done.pop().map(|e| e.fp).unwrap_or_default();
            after.push((node.taken, fp));
        }
        self.after_buf = after;
        self.exhausted = true;
    }

    /// What the deepest node explores next once its current branch is done: another value
    /// of the taken step's draw first (the same actor's choice), then the next wake-up
    /// branch (optimal) or backtrack actor that can be taken there. Reads only.
    fn next_of(&self, node: &Node) -> Option<NextBranch> {
        if let (Some((n, v)), None) = (node.random, node.fixed_value) {
            let explored = |w: u64| {
                node.sleep
                    .iter()
                    .chain(node.done.iter())
                    .any(|e| e.actor == node.taken && e.value == Some(w))
            };
            if let Some(w) = ((v + 1)..n).find(|&w| !explored(w)) {
                return Some(NextBranch::Value(n, w));
            }
        }
        match self.dpor {
            Dpor::Optimal if !self.sleep_only => node
                .wut
                .iter()
                .position(|b| node.enabled.iter().any(|e| e.0 == b.ev.actor))
                .map(NextBranch::Wut),
            _ => node
                .backtrack
                .iter()
                .position(|&a| {
                    let Some(draw) = node.enabled.iter().find(|e| e.0 == a).map(|e| e.1) else {
                        return false;
                    };
                    let taken_before = a == node.taken || node.done.iter().any(|e| e.actor == a);
                    !(taken_before
                        || (self.dpor != Dpor::None && Self::asleep(&node.sleep, a, draw)))
                })
                .map(NextBranch::Backtrack),
        }
    }

    /// Moves `node` to its next branch; false when it has none left. `guess`: what a
    /// backtrack actor's step is expected to touch.
    fn advance_node(&self, node: &mut Node, guess: &dyn Fn(Actor) -> Option<Footprint>) -> bool {
        let next = self.next_of(node);
        let current = Ev {
            actor: node.taken,
            value: node.random.map(|r| r.1),
            fp: std::mem::take(&mut node.fp),
        };
        // Another value of the same step is expected to touch what this one touched.
        let same_step = matches!(next, Some(NextBranch::Value(..))).then(|| current.fp.clone());
        node.done.push(current);
        node.next_wut.clear();
        node.fp_known = false;
        match next {
            Some(NextBranch::Value(n, w)) => {
                node.fp = same_step.unwrap_or_default();
                node.fp_known = true;
                node.random = Some((n, w));
            }
            Some(NextBranch::Wut(i)) => {
                node.random = None;
                node.fixed_value = None;
                node.wut.drain(..i);
                let branch = node.wut.remove(0);
                node.taken = branch.ev.actor;
                node.fixed_value = branch.ev.value;
                // As it was in the execution whose race put it here.
                node.fp = branch.ev.fp;
                node.fp_known = true;
                node.next_wut = branch.children;
            }
            Some(NextBranch::Backtrack(i)) => {
                node.random = None;
                node.fixed_value = None;
                node.backtrack.drain(..i);
                node.taken = node.backtrack.remove(0);
                if self.dpor == Dpor::None {
                    // No sleep sets: nothing depends on the footprint before the step runs.
                    node.fp_known = true;
                } else if let Some(fp) = guess(node.taken) {
                    node.fp = fp;
                    node.fp_known = true;
                }
            }
            None => return false,
        }
        true
    }

    /// The path of the execution the search runs next (or runs now): each decision's actor
    /// and the value of its draw. A parallel search keys executions by it.
    pub(crate) fn path_key(&self) -> PathKey {
        self.stack
            .iter()
            .map(|n| (n.taken, n.random.map(|r| r.1).or(n.fixed_value)))
            .collect()
    }

    /// The executions the search will run after its current branches at node `n`, in
    /// order, at most `max`: each one's key, and a copy of the search in the state that
    /// execution is decided from (see `exhaustive_parallel.rs`). Every decision of such an
    /// execution depends only on the nodes down to `n` — their sleep sets, what was done
    /// there, the branch's own wake-up subtree, whose leftmost path no later insertion
    /// changes — except for the footprints of the branches before it at `n`, which are
    /// those expected (the wake-up branch's, the other value's); the look ahead stops at
    /// a branch whose footprint nothing tells (a backtrack actor not yet run).
    /// `fork(key)` says whether to make the copy for a key.
    pub(crate) fn ahead_at(
        &mut self,
        n: usize,
        max: usize,
        fork: &mut dyn FnMut(&PathKey) -> bool,
    ) -> Option<(PathKey, Exhaustive)> {
        if !self.stack[n].fp_known || self.next_of(&self.stack[n]).is_none() {
            return None;
        }
        let mut node = self.stack[n].clone();
        let mut key = self.path_key();
        key.truncate(n + 1);
        let stack = &self.stack;
        let guess = |a: Actor| {
            stack[n + 1..]
                .iter()
                .find(|x| x.taken == a)
                .map(|x| x.fp.clone())
        };
        let mut found = None;
        for _ in 0..max {
            if !node.fp_known || !self.advance_node(&mut node, &guess) {
                break;
            }
            key[n] = (node.taken, node.random.map(|r| r.1).or(node.fixed_value));
            if fork(&key) {
                found = Some(key);
                break;
            }
        }
        let key = found?;
        Some((key, self.fork(n, node)))
    }

    /// A copy of the search with the stack `stack[..n]` (only what executions through
    /// those nodes need of them) and then `last`: the state an execution from `last` is
    /// decided in.
    fn fork(&mut self, n: usize, last: Node) -> Exhaustive {
        let stack = std::mem::take(&mut self.stack);
        let clocks = std::mem::take(&mut self.clocks);
        // A fork runs one execution as a follower and finds no races: no clocks.
        let mut copy = self.clone();
        self.clocks = clocks;
        copy.stack = stack[..n].iter().map(Node::light).collect();
        copy.stack.push(last);
        copy.fork_depth = n;
        self.stack = stack;
        copy
    }

    /// A follower's next execution within its own subtree, after the one it recorded
    /// (ended with `completed`): it moves on as a search does (races, next branch) and
    /// records again, if that branch is at a node below its fork node — whose sleep sets,
    /// what was done there and wake-up subtrees are the follower's own, made by its own
    /// executions exactly as the master will make them when it replays those. Above it
    /// the copy does not know what is explored: `None`. What it decides is only a guess
    /// for the master to check (`replay`), never what the search does.
    pub(crate) fn continue_below(&mut self, completed: bool) -> Option<PathKey> {
        if self.broken || self.finish(completed).is_err() {
            return None;
        }
        if self.exhausted
            || self.broken
            || self.sleep_only
            || self.stack.len() <= self.fork_depth + 1
        {
            return None;
        }
        self.record = Some(Vec::new());
        Some(self.path_key())
    }

    /// Whether the search has gone past the execution `key` (see `path_key`): it will
    /// never be the next one. Only what may be wasted depends on this, never what is
    /// explored.
    pub(crate) fn passed(&self, key: &PathKey) -> bool {
        for (i, k) in key.iter().enumerate() {
            let Some(node) = self.stack.get(i) else {
                // Its node was finished and popped.
                return true;
            };
            let here = (node.taken, node.random.map(|r| r.1).or(node.fixed_value));
            if *k != here {
                // A key made before its step drew says no value: its actor's entry, any.
                return node
                    .done
                    .iter()
                    .any(|e| e.actor == k.0 && (k.1.is_none() || e.value == k.1));
            }
        }
        // The path to the branch node of the next execution, or through it.
        key.len() < self.stack.len()
    }

    /// Makes this copy a follower: it records its next execution instead of moving on.
    pub(crate) fn into_follower(mut self) -> Exhaustive {
        self.record = Some(Vec::new());
        self
    }

    /// What a follower recorded of its execution.
    pub(crate) fn take_recording(&mut self) -> Option<Vec<Rec>> {
        self.record.take()
    }

    /// Replays an execution a follower recorded as if this search had run it: the same
    /// decisions must come out, else `false` and the search is as it was. Then the search
    /// moves on as after a live run.
    pub(crate) fn replay(&mut self, rec: &[Rec]) -> bool {
        // What a replay changes before its end can tell whether it matches: the new nodes,
        // and the branch node's draw and the wake-up subtree it hands to its child.
        let depth = self.stack.len();
        let branch = self
            .stack
            .last()
            .map(|n| (n.random, n.fixed_value, n.next_wut.clone()));
        let counters = (self.sleep_blocked, self.restart);
        if self.replay_all(rec) {
            return true;
        }
        self.stack.truncate(depth);
        if let (Some(node), Some((random, fixed_value, next_wut))) = (self.stack.last_mut(), branch)
        {
            node.random = random;
            node.fixed_value = fixed_value;
            node.next_wut = next_wut;
        }
        (self.sleep_blocked, self.restart) = counters;
        self.blocked = false;
        self.broken = false;
        self.in_progress = None;
        false
    }

    fn replay_all(&mut self, rec: &[Rec]) -> bool {
        self.begin_iteration(0);
        for r in rec {
            match r {
                Rec::Pick(offered, picked) => {
                    let got = match self.decide(offered) {
                        Decided::At(i) => Some(i),
                        Decided::Any | Decided::Diverged(_) => None,
                    };
                    if got != *picked {
                        return false;
                    }
                }
                Rec::Random(n, value) => {
                    if self.decide_random(*n).ok() != *value {
                        return false;
                    }
                }
                Rec::Finished(fp, idle_only) => self.step_finished(fp.clone(), *idle_only),
                Rec::End(completed) => {
                    let _ = self.finish(*completed);
                    return true;
                }
            }
        }
        false
    }

    /// The decision for one pick, from the actors offered: the prefix's actor while the
    /// prefix lasts, then a new node's first choice.
    fn decide(&mut self, offered: &[(Actor, Option<u64>)]) -> Decided {
        if self.blocked || self.broken {
            return Decided::Any;
        }
        let d = self.depth;
        // The nodes before the branch node are the same as in the execution before (the
        // program is deterministic): what was offered there, what each step touched and
        // whether it disabled another are known already. Only the branch node's step and
        // those after it are new.
        let replayed = d + 1 < self.prefix;
        if d > 0 && d >= self.prefix {
            self.note_disabling(d - 1, offered);
        }
        let at = if d < self.stack.len() {
            let taken = self.stack[d].taken;
            match offered.iter().position(|o| o.0 == taken) {
                Some(i) if replayed => {
                    self.depth += 1;
                    return Decided::At(i);
                }
                Some(i) => {
                    let enabled = &mut self.stack[d].enabled;
                    enabled.clear();
                    enabled.extend_from_slice(offered);
                    i
                }
                None => {
                    self.broken = true;
                    return Decided::Diverged(taken);
                }
            }
        } else {
            match self.new_node(offered) {
                Some((node, i)) => {
                    self.stack.push(node);
                    i
                }
                None => {
                    self.blocked = true;
                    self.sleep_blocked += 1;
                    return Decided::Any;
                }
            }
        };
        self.in_progress = Some(d);
        self.depth += 1;
        Decided::At(at)
    }

    /// The value of a draw of `n` by the step just picked. `Err(v)`: the prefix drew `v`
    /// of another `n`.
    fn decide_random(&mut self, n: u64) -> Result<u64, u64> {
        if self.blocked || self.broken || self.depth == 0 {
            return Ok(0);
        }
        let node = &mut self.stack[self.depth - 1];
        if let Some((m, v)) = node.random {
            if m == n {
                return Ok(v);
            }
            self.broken = true;
            return Err(v);
        }
        if let Some(v) = node.fixed_value.filter(|&v| v < n) {
            node.random = Some((n, v));
            return Ok(v);
        }
        node.fixed_value = None;
        let taken = node.taken;
        let v = (0..n)
            .find(|&v| {
                !node
                    .sleep
                    .iter()
                    .chain(node.done.iter())
                    .any(|e| e.actor == taken && e.value == Some(v))
            })
            .unwrap_or(0);
        node.random = Some((n, v));
        Ok(v)
    }

    /// Whether the execution ended before the prefix did: `Some(actor)`, the prefix's next.
    fn ended_early(&self) -> Option<Actor> {
        (!self.broken && self.depth < self.prefix).then(|| self.stack[self.depth].taken)
    }

    /// The end of an execution: races, then the next branch. `Err(actor)`: the program
    /// ended before the prefix did.
    fn finish(&mut self, completed: bool) -> Result<(), Actor> {
        if self.broken {
            return Ok(());
        }
        // The clocks are kept only from one race detection to the next.
        let valid = std::mem::take(&mut self.clocks.valid);
        self.explored += 1;
        if let Some(expected) = self.ended_early() {
            self.broken = true;
            return Err(expected);
        }
        let n = self.depth;
        self.stack.truncate(n);
        // What was offered after the last recorded step: nothing at the end of the
        // execution (a sleep-blocked one was checked at the pick that found every choice
        // asleep; one cut short by a limit is not known).
        if completed && !self.blocked {
            if let Some(k) = n.checked_sub(1) {
                self.note_disabling(k, &[]);
            }
        }
        if self.restart {
            // The first disabling step: start over with sleep sets alone. Interleavings
            // explored so far are explored again (and counted again).
            self.restart = false;
            self.sleep_only = true;
            self.restarted = self.explored;
            self.stack.clear();
            return Ok(());
        }
        if self.dpor != Dpor::None && !self.sleep_only {
            self.detect_races(n, valid);
        }
        self.next_branch();
        Ok(())
    }
}

/// A node's next branch (see `Exhaustive::next_of`).
enum NextBranch {
    /// Another value, of `n`, of the taken step's draw.
    Value(u64, u64),
    /// The wake-up branch at this index.
    Wut(usize),
    /// The backtrack actor at this index.
    Backtrack(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wi {
    No,
    /// A weak initial that occurs in v at this position (the first step of its actor).
    At(usize),
    /// A weak initial absent from v and independent of all of it.
    Absent,
}

/// Whether `e` is a weak initial of `v` (JACM'17 Def. 6.1): its actor's first step in
/// `v` is the same event and nothing in `v` happens before it, or its actor is absent
/// from `v` and `e` is independent of every step of `v`.
fn weak_initial(
    (actor, value, fp): (Actor, Option<u64>, &Footprint),
    v: &[usize],
    stack: &[Node],
    hb: &dyn Fn(usize, usize) -> bool,
) -> Wi {
    match v.iter().position(|&k| stack[k].taken == actor) {
        Some(pos) => {
            let k = v[pos];
            let same_value = match (value, stack[k].random) {
                (Some(a), Some((_, b))) => a == b,
                (None, None) => true,
                _ => false,
            };
            if same_value && !v[..pos].iter().any(|&x| hb(x, k)) {
                Wi::At(pos)
            } else {
                Wi::No
            }
        }
        None if v.iter().all(|&k| !dependent(fp, &stack[k].fp, true)) => Wi::Absent,
        None => Wi::No,
    }
}

/// Inserts `v` into a wake-up tree (JACM'17 Def. 6.2): follow the leftmost branch whose
/// event is a weak initial of what is left of `v`; stop if it is a leaf (`v` is covered);
/// otherwise add what is left as the new rightmost branch there.
fn insert(
    tree: &mut Vec<Wut>,
    v: &mut Vec<usize>,
    stack: &[Node],
    hb: &dyn Fn(usize, usize) -> bool,
) {
    let mut cur = tree;
    loop {
        let hit = cur.iter().enumerate().find_map(|(b, w)| {
            match weak_initial((w.ev.actor, w.ev.value, &w.ev.fp), v, stack, hb) {
                Wi::No => None,
                found => Some((b, found)),
            }
        });
        match hit {
            Some((b, found)) => {
                if let Wi::At(pos) = found {
                    v.remove(pos);
                }
                if cur[b].children.is_empty() || v.is_empty() {
                    return;
                }
                cur = &mut cur[b].children;
            }
            None => {
                let mut chain: Option<Wut> = None;
                for &k in v.iter().rev() {
                    let ev = Ev {
                        actor: stack[k].taken,
                        value: stack[k].random.map(|r| r.1),
                        fp: stack[k].fp.clone(),
                    };
                    chain = Some(Wut {
                        ev,
                        children: chain.into_iter().collect(),
                    });
                }
                cur.extend(chain);
                return;
            }
        }
    }
}

impl Strategy for Exhaustive {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    fn begin_iteration(&mut self, _seed: u64) {
        self.depth = 0;
        self.prefix = self.stack.len();
        self.in_progress = None;
        self.live = None;
        self.seen_events = 0;
        self.seen_msgs = 0;
        self.seen_procs = 0;
        self.blocked = false;
        self.run_actor.clear();
        self.pair_actor.clear();
        self.keys_by_id.clear();
        if let Some(rec) = &mut self.record {
            rec.clear();
        }
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.finish_step(view);
        // A follower records what was offered even past a block, so that its master can
        // tell whether it would have blocked there too.
        if (self.blocked || self.broken) && self.record.is_none() {
            return Ok(choices.get(0));
        }
        if let Some(choice) = self.replayed_choice(view, choices) {
            return Ok(choice);
        }
        // The buffers are kept from one pick to the next (a pick is made at every step).
        let (mut offered, mut actors) = std::mem::take(&mut self.offer_buf);
        self.offered(view, choices, &mut offered, &mut actors);
        let decided = self.decide(&actors);
        if let Some(rec) = &mut self.record {
            let picked = match decided {
                Decided::At(i) => Some(i),
                _ => None,
            };
            rec.push(Rec::Pick(actors.clone(), picked));
        }
        let result = self.picked(view, choices, decided, &offered);
        self.offer_buf = (offered, actors);
        result
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        let value = self.decide_random(n);
        if let Some(rec) = &mut self.record {
            rec.push(Rec::Random(n, value.ok()));
        }
        value.map_err(|v| Divergence {
            step: view.step,
            expected: Some(Decision::Random(v)),
            got: vec![Decision::Random(n)],
        })
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.finish_step(view);
        let ended_early = if let Some(rec) = &mut self.record {
            // A follower stops here: its master replays the execution in turn.
            rec.push(Rec::End(completed));
            self.ended_early()
        } else {
            self.finish(completed).err()
        };
        match ended_early {
            // The program ended before the schedule this iteration was to follow did.
            Some(expected) => Err(Divergence {
                step: view.step + 1,
                expected: Some(self.decision(expected)),
                got: Vec::new(),
            }),
            None => Ok(()),
        }
    }

    /// Each step's footprint is read from the events it recorded.
    fn reads_events(&self) -> bool {
        true
    }

    fn search_stats(&self) -> Option<SearchStats> {
        Some(SearchStats {
            explored: self.explored,
            sleep_blocked: self.sleep_blocked,
            depth: self.stack.len() as u64,
            exhausted: self.exhausted,
            restarted: self.restarted,
        })
    }
}

impl Exhaustive {
    /// A pick before the branch node of the prefix being replayed: what `decide` would
    /// pick there from the whole offer — the first choice whose actor is the node's — found
    /// without building the offer (no pending operation read, no actor list kept: the node
    /// has its offer from the execution that made it, and in most picks of a search only
    /// this is needed). `None`: not such a pick, or the actor is not offered (the whole
    /// offer then says how the program diverged).
    fn replayed_choice(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Option<Choice> {
        let d = self.depth;
        if self.record.is_some() || self.blocked || self.broken || d + 1 >= self.prefix {
            return None;
        }
        let taken = self.stack[d].taken;
        // A process's actor: the process that had it in an earlier execution, if it has
        // the same name now, is the one choice with that actor (names are unique within
        // an execution, and no message or timer is a process's actor).
        let known = self
            .known_procs
            .iter()
            .position(|k| k.as_ref().is_some_and(|k| k.actor == Some(taken)))
            .map(|p| p as ProcId)
            .filter(|&p| {
                (p as usize) < view.procs().len() && self.known(view, p).actor == Some(taken)
            });
        let choice = match known {
            Some(p) if choices.contains(Choice::Run(p)) => Choice::Run(p),
            _ => (0..choices.len())
                .map(|i| choices.get(i))
                .find(|&c| self.actor_of(view, c) == taken)?,
        };
        self.depth += 1;
        Some(choice)
    }

    /// What `pick` returns for the decision made on `offered`.
    fn picked(
        &mut self,
        view: &View<'_>,
        choices: &ChoiceSet,
        decided: Decided,
        offered: &[(Actor, Choice, Option<u64>)],
    ) -> Result<Choice, Divergence> {
        match decided {
            // A step before the branch node: its footprint is known already.
            Decided::At(i) if self.in_progress.is_none() => Ok(offered[i].1),
            Decided::At(i) => {
                let choice = offered[i].1;
                let (op, aliases) = match choice {
                    Choice::Run(p) => {
                        let proc = &view.procs()[p as usize];
                        debug_assert_eq!(proc.state, ProcState::Ready);
                        (Some(proc.pending), proc.aliases.len())
                    }
                    _ => (None, 0),
                };
                self.live = Some(LiveStep {
                    step: view.step,
                    choice,
                    op,
                    aliases,
                });
                Ok(choice)
            }
            Decided::Any => Ok(choices.get(0)),
            Decided::Diverged(expected) => Err(Divergence {
                step: view.step,
                expected: Some(self.decision(expected)),
                got: offered.iter().map(|o| view.decision_for(o.1)).collect(),
            }),
        }
    }
}
