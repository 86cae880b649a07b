//! Exhaustive search on several workers at once (`workers: n`, SPEC §11), exploring exactly
//! the interleavings the sequential search explores, each once in total.
//!
//! Splitting a DPOR tree statically does not work with these reductions: a race found in
//! one subtree places a wake-up sequence (or backtrack point) at a node above it, and that
//! sequence is what makes a sibling subtree explore some of its traces. Cut the tree into
//! independent parts and those traces are lost — a subtree entered with its siblings
//! asleep relies on them for what it does not explore itself. So the tree stays one: a
//! single master `Exhaustive` decides everything, in the sequential order, and the workers
//! only run executions for it.
//!
//! What makes that parallel is that the master knows executions it will ask for before it
//! asks. After its current execution, each node above the deepest one will move to its
//! next branch (another value of a draw, the next wake-up branch or backtrack actor) once
//! everything below it is done; and every decision of that branch's first execution
//! follows from the nodes down to that one alone — their sleep sets, what was done there
//! (the current branch's footprint is known from the current execution), the branch's own
//! wake-up subtree, whose leftmost path no later insertion changes (insertions only add
//! branches to the right, and never below a leaf). `Exhaustive::ahead_at` makes that
//! future state now. Later branches of one node also need what the earlier ones touched:
//! the copy assumes what the wake-up branch (or the actor's next step in the last
//! execution) touched.
//!
//! The master's own next execution is run with the master itself, lent to a worker's
//! session as a sequential search runs it; before it leaves, it prepares executions for
//! the other workers (`prepare`), which they run from those copies as *followers* that
//! record what they were offered, what they picked and each step's footprint (`Rec`)
//! instead of moving on. When the master is back and its next execution is one a follower
//! ran, it *replays* the recording through its own decision procedure, as if it had run
//! the program itself. The same decisions must come out, or the recording is discarded
//! and the execution run again; either way what the master does is what the sequential
//! search does, decision for decision, whatever the workers' timing. So the interleavings
//! explored, their order, the counts, and which failing interleaving stops the search (the
//! first in that order: the lowest iteration number) are the sequential search's, for any
//! number of workers. (The master waits for its worker's verdict on an execution before
//! it takes in the next: a failure there stops it.)
//!
//! A follower does not stop after one execution: it goes on in the subtree below its fork
//! node, as the search would (`Exhaustive::continue_below`), and its next execution is
//! queued first. Below that node everything it decides from — sleep sets, what was done
//! there, wake-up trees and backtrack sets — comes from its own executions, which the
//! master replays in the same order, so its guesses are the master's decisions as long as
//! its fork's were (a race with a step above the fork node only changes a node above it,
//! where the follower stops). This is what keeps a second worker busy when the next
//! execution is nearly always below the last one (plain depth-first search, or a source
//! set search's deep subtrees): those executions exist only once their parent has run,
//! so no copy of the master can be prepared for them ahead of time. A guess that turns
//! out wrong costs executions, never correctness: the master checks every decision.
//!
//! What is not parallel: replaying a follower's execution and preparing copies run under
//! one lock (microseconds each); and a search whose stack has few nodes with work left
//! keeps few workers busy.

use super::exhaustive::{Exhaustive, PathKey as Key, Rec};
use super::{Choice, ChoiceSet, Divergence, SearchStats, Strategy, View};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a parallel search stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The `iteration`-th interleaving in the sequential order (run as `ticket`) failed.
    Failed { ticket: u64, iteration: u64 },
    /// Every interleaving was explored.
    Exhausted,
    /// The cap on interleavings was reached.
    Capped,
}

/// What a worker is to do next.
pub enum Take {
    /// Run one iteration with this strategy, then call `ParallelSearch::complete`.
    Run(u64, Box<Follower>),
    /// Nothing can be handed out now: wait for another worker's `complete`.
    Wait,
    Stopped(Stop),
}

/// At most this many recordings of executions run ahead are kept for the master.
const KEPT_AHEAD: usize = 1024;

/// How many branches ahead of its current one a node is looked at for work.
const AHEAD_PER_NODE: usize = 8;

pub struct ParallelSearch {
    /// `None` while a worker runs the master's next execution with the master itself.
    master: Option<Exhaustive>,
    /// That worker's ticket, until its iteration ends.
    lent: Option<u64>,
    /// The master is back from the execution run as this ticket, whose verdict (did it
    /// fail?) its worker has not given yet: nothing after it is taken in before.
    verdict_pending: Option<u64>,
    /// Executions prepared for the other workers while the master is lent.
    queue: VecDeque<(Key, Exhaustive)>,
    /// At most this many executions run ahead at once.
    lookahead: usize,
    cap: u64,
    next_ticket: u64,
    out: HashMap<Key, u64>,
    tickets: HashMap<u64, Key>,
    /// Recordings followers left at the end of their iteration, until their worker says
    /// how it ended.
    deposited: HashMap<u64, Vec<Rec>>,
    back: HashMap<Key, (u64, Vec<Rec>, bool)>,
    ingested: u64,
    /// The tickets taken in, in the master's order.
    order: Vec<u64>,
    handed_out: u64,
    discarded: u64,
    stop: Option<Stop>,
    /// The master's counts, kept while it is lent.
    last_stats: SearchStats,
}

/// Counts of a parallel search, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// The master's: what the sequential search would report.
    pub search: SearchStats,
    /// Executions run by the workers: the interleavings, plus those run ahead that the
    /// search never needed (a failure stopped it first) or that were discarded.
    pub handed_out: u64,
    /// Recordings that did not match what the master decided (run again).
    pub discarded: u64,
}

/// Takes the search's lock, spinning while another worker holds it rather than sleeping:
/// what it guards takes microseconds, and a thread put to sleep on a lock can wait for its
/// CPU to wake for far longer (milliseconds, on a virtual machine whose idle CPUs wait for
/// a timer tick).
pub fn lock(shared: &Mutex<ParallelSearch>) -> MutexGuard<'_, ParallelSearch> {
    spin_lock(shared)
}

/// `Mutex::lock` that spins first (see `lock`). A panic while the lock was held leaves
/// the data as consistent as each update is: every update completes before anything can
/// panic.
pub fn spin_lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    for _ in 0..100_000 {
        match m.try_lock() {
            Ok(guard) => return guard,
            Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
        }
    }
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ParallelSearch {
    /// A search run by `workers` workers, stopping after `cap` interleavings at most.
    pub fn new(search: Exhaustive, workers: usize, cap: u64) -> Arc<Mutex<ParallelSearch>> {
        Arc::new(Mutex::new(ParallelSearch {
            master: Some(search),
            lent: None,
            verdict_pending: None,
            queue: VecDeque::new(),
            lookahead: 2 * workers.max(1),
            cap,
            next_ticket: 1,
            out: HashMap::new(),
            tickets: HashMap::new(),
            deposited: HashMap::new(),
            back: HashMap::new(),
            ingested: 0,
            order: Vec::new(),
            handed_out: 0,
            discarded: 0,
            stop: None,
            last_stats: SearchStats::default(),
        }))
    }

    /// The next execution to run. The master's own next one, run with the master itself
    /// (as a sequential search runs it), unless another worker runs it already; else one
    /// the master will need later, run ahead from a copy, the soonest needed first.
    pub fn take(shared: &Arc<Mutex<ParallelSearch>>) -> Take {
        let mut me = lock(shared);
        if let Some(stop) = me.stop {
            return Take::Stopped(stop);
        }
        if me.master.is_some() && me.verdict_pending.is_none() {
            let head = me.master().path_key();
            if !me.is_known(&head) {
                // Work for the others, prepared before the master leaves.
                me.prepare(&head);
                let master = me.master.take().expect("checked");
                me.last_stats = master.search_stats().unwrap_or_default();
                let ticket = me.ticket(head);
                me.lent = Some(ticket);
                return Take::Run(ticket, me.follower(shared, ticket, master, true));
            }
            me.prepare(&head);
        }
        if me.out.len() >= me.lookahead {
            return Take::Wait;
        }
        while let Some((key, fork)) = me.queue.pop_front() {
            let stale = me.is_known(&key) || me.master.as_ref().is_some_and(|m| m.passed(&key));
            if !stale {
                let ticket = me.ticket(key);
                return Take::Run(
                    ticket,
                    me.follower(shared, ticket, fork.into_follower(), false),
                );
            }
        }
        Take::Wait
    }

    fn master(&self) -> &Exhaustive {
        self.master.as_ref().expect("the master is here")
    }

    fn is_known(&self, key: &Key) -> bool {
        self.out.contains_key(key) || self.back.contains_key(key)
    }

    /// Fills the queue with executions the master will need after `head`, deepest node
    /// first, not yet run or queued.
    fn prepare(&mut self, head: &Key) {
        if self.back.len() >= KEPT_AHEAD {
            self.forget_passed();
        }
        let room = KEPT_AHEAD.saturating_sub(self.back.len());
        let wanted = self.lookahead.min(room);
        let queued: Vec<Key> = self.queue.iter().map(|(k, _)| k.clone()).collect();
        let master = self.master.as_mut().expect("the master is here");
        let (out, back) = (&self.out, &self.back);
        let mut found = Vec::new();
        // The deepest node's next branches are needed soonest (right after the head's
        // subtree), then those of the node above, and so on.
        let new = |key: &Key| key != head && !out.contains_key(key) && !back.contains_key(key);
        'nodes: for n in (0..master.stack_len()).rev() {
            loop {
                if self.queue.len() + found.len() >= wanted {
                    break 'nodes;
                }
                let ahead = master.ahead_at(n, AHEAD_PER_NODE, &mut |key| {
                    new(key) && !queued.contains(key) && !found.iter().any(|(k, _)| k == key)
                });
                match ahead {
                    Some(item) => found.push(item),
                    None => break,
                }
            }
        }
        self.queue.extend(found);
    }

    /// Drops the recordings of executions the master has gone past (never needed).
    fn forget_passed(&mut self) {
        let Some(master) = &self.master else { return };
        self.back.retain(|key, _| !master.passed(key));
    }

    fn ticket(&mut self, key: Key) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.handed_out += 1;
        self.out.insert(key.clone(), ticket);
        self.tickets.insert(ticket, key);
        ticket
    }

    fn follower(
        &self,
        shared: &Arc<Mutex<ParallelSearch>>,
        ticket: u64,
        search: Exhaustive,
        master: bool,
    ) -> Box<Follower> {
        Box::new(Follower {
            search: Some(search),
            ticket,
            master,
            shared: Arc::clone(shared),
        })
    }

    /// The iteration run as `ticket` ended (`failed`: it is a failure that stops a
    /// sequential search). Takes in every execution the master can now, in its order.
    pub fn complete(&mut self, ticket: u64, failed: bool) {
        let Some(key) = self.tickets.remove(&ticket) else {
            return;
        };
        self.out.remove(&key);
        if self.lent == Some(ticket) || self.verdict_pending == Some(ticket) {
            self.lent = None;
            self.verdict_pending = None;
            if self.master.is_none() {
                // The iteration ended before its strategy saw its end (an internal error):
                // the master is lost with it, and the search stops there, as a
                // sequential one would.
                self.stop = Some(Stop::Failed {
                    ticket,
                    iteration: self.ingested + 1,
                });
                return;
            }
            self.ingested += 1;
            self.order.push(ticket);
            if failed {
                self.stop = Some(Stop::Failed {
                    ticket,
                    iteration: self.ingested,
                });
                return;
            }
        } else if let Some(rec) = self.deposited.remove(&ticket) {
            self.back.insert(key, (ticket, rec, failed));
        }
        self.advance();
    }

    /// A follower's next execution in its subtree (`Exhaustive::continue_below`), queued
    /// first: the master needs it right after the one just run there, and a subtree's
    /// executions are found only by running them (so a plain depth-first search, whose
    /// next execution is nearly always below the last one, keeps several workers busy).
    /// Not past `KEPT_AHEAD` recordings waiting for the master: a subtree far ahead of it
    /// could otherwise fill memory with them (the master, or a later copy, runs the rest).
    fn offer_below(&mut self, key: Key, follower: Exhaustive) {
        let stale = self.stop.is_some()
            || self.back.len() + self.deposited.len() >= KEPT_AHEAD
            || self.is_known(&key)
            || self.master.as_ref().is_some_and(|m| m.passed(&key))
            || self.queue.iter().any(|(k, _)| *k == key);
        if !stale {
            self.queue.push_front((key, follower));
        }
    }

    /// The master back from its execution (`ticket`), not yet told how it ended.
    fn give_back(&mut self, master: Exhaustive, ticket: u64) {
        self.master = Some(master);
        self.verdict_pending = Some(ticket);
    }

    fn advance(&mut self) {
        while self.stop.is_none() && self.verdict_pending.is_none() {
            let Some(master) = self.master.as_mut() else {
                break;
            };
            if master.exhausted() {
                self.stop = Some(Stop::Exhausted);
                break;
            }
            if self.ingested >= self.cap {
                self.stop = Some(Stop::Capped);
                break;
            }
            let key = master.path_key();
            let Some((ticket, rec, failed)) = self.back.remove(&key) else {
                break;
            };
            if !master.replay(&rec) {
                self.discarded += 1;
                continue;
            }
            self.ingested += 1;
            self.order.push(ticket);
            if failed {
                self.stop = Some(Stop::Failed {
                    ticket,
                    iteration: self.ingested,
                });
            }
        }
    }

    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }

    /// The tickets of the interleavings explored, in the sequential order.
    pub fn order(&self) -> &[u64] {
        &self.order
    }

    pub fn stats(&self) -> ParallelStats {
        let search = match &self.master {
            Some(m) => m.search_stats().unwrap_or_default(),
            None => self.last_stats,
        };
        ParallelStats {
            search,
            handed_out: self.handed_out,
            discarded: self.discarded,
        }
    }
}

/// A worker's strategy for one execution of a parallel search: the master itself, for
/// its next execution, or a copy of it in a future state, recording instead of moving on.
/// Either goes back to the search at the end of the iteration.
pub struct Follower {
    search: Option<Exhaustive>,
    ticket: u64,
    /// This is the master, lent.
    master: bool,
    shared: Arc<Mutex<ParallelSearch>>,
}

impl Follower {
    fn search(&mut self) -> &mut Exhaustive {
        self.search.as_mut().expect("used for one iteration")
    }
}

impl Strategy for Follower {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.search().begin_iteration(seed);
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.search().pick(view, choices)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        self.search().random(view, n)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        let result = self.search().end_iteration(view, completed);
        if let Some(mut search) = self.search.take() {
            if self.master {
                lock(&self.shared).give_back(search, self.ticket);
                return result;
            }
            let rec = search.take_recording();
            // Outside the lock: the follower's own copy decides its next execution.
            let next = match (&rec, &result) {
                (Some(_), Ok(())) => search.continue_below(completed),
                _ => None,
            };
            let mut shared = lock(&self.shared);
            if let Some(rec) = rec {
                shared.deposited.insert(self.ticket, rec);
            }
            if let Some(key) = next {
                shared.offer_below(key, search);
            }
        }
        result
    }

    fn reads_events(&self) -> bool {
        true
    }
}
