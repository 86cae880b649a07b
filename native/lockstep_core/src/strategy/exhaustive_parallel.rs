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
//! branches to the right, and never below a leaf). `Exhaustive::fork_after` makes that
//! future state now; a worker runs the execution from it as a *follower* that records what
//! it was offered, what it picked and each step's footprint (`Rec`) instead of moving on.
//!
//! The master takes executions in its own order: when its next execution is one a follower
//! ran, it *replays* the recording through its own decision procedure, as if it had run
//! the program itself. The same decisions must come out, or the recording is discarded and
//! the execution run again from the master's state; either way what the master does is
//! what the sequential search does, decision for decision, whatever the workers' timing.
//! So the interleavings explored, their order, the counts, and which failing interleaving
//! stops the search (the first in that order: the lowest iteration number) are the
//! sequential search's, for any number of workers.
//!
//! What is not parallel: the master's own work (replaying, race detection) runs under one
//! lock, a few microseconds an execution; and a node's later branches wait for its earlier
//! ones' executions, so a search whose stack has few nodes with work left keeps few
//! workers busy.

use super::exhaustive::{Exhaustive, PathKey as Key, Rec};
use super::{Choice, ChoiceSet, Divergence, SearchStats, Strategy, View};
use std::collections::HashMap;
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

pub struct ParallelSearch {
    master: Exhaustive,
    /// At most this many executions handed out or back and not yet taken in.
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
}

/// Counts of a parallel search, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// The master's: what the sequential search would report.
    pub search: SearchStats,
    /// Executions run for the master by the workers (interleavings, plus those run ahead
    /// that the search never asked for and those discarded).
    pub handed_out: u64,
    /// Recordings that did not match what the master decided (run again).
    pub discarded: u64,
}

/// At most this many recordings of executions run ahead are kept for the master.
const KEPT_AHEAD: usize = 1024;

/// How many branches ahead of its current one a node is looked at for work.
const AHEAD_PER_NODE: usize = 8;

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
            master: search,
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
        }))
    }

    /// The next execution to run: the master's next one if nobody runs it yet, else one
    /// it will ask for later, the deepest first (the soonest needed).
    pub fn take(shared: &Arc<Mutex<ParallelSearch>>) -> Take {
        let mut me = lock(shared);
        if let Some(stop) = me.stop {
            return Take::Stopped(stop);
        }
        let head = me.master.path_key();
        if !me.is_known(&head) {
            let follower = me.master.follower();
            return me.hand_out(shared, head, follower);
        }
        // Runs made ahead wait in `back` until the master needs them, which can be long
        // (a node's next branch waits for all of its current branch's subtree): they
        // count against a larger bound than those still running, so that they do not
        // keep the workers from the executions needed soon.
        let room = me
            .lookahead
            .saturating_sub(me.out.len())
            .min(KEPT_AHEAD.saturating_sub(me.back.len()));
        if room == 0 {
            return Take::Wait;
        }
        // In the order the master will need them: after the head's own subtree, the head
        // node's next branches, then those of the nodes above it.
        for n in (0..me.master.stack_len()).rev() {
            let ParallelSearch {
                master, out, back, ..
            } = &mut *me;
            let ahead = master.ahead_at(n, AHEAD_PER_NODE, &mut |key| {
                !out.contains_key(key) && !back.contains_key(key)
            });
            if let Some((key, fork)) = ahead {
                return me.hand_out(shared, key, fork.into_follower());
            }
        }
        Take::Wait
    }

    fn is_known(&self, key: &Key) -> bool {
        self.out.contains_key(key) || self.back.contains_key(key)
    }

    fn hand_out(
        &mut self,
        shared: &Arc<Mutex<ParallelSearch>>,
        key: Key,
        search: Exhaustive,
    ) -> Take {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.handed_out += 1;
        self.out.insert(key.clone(), ticket);
        self.tickets.insert(ticket, key);
        Take::Run(
            ticket,
            Box::new(Follower {
                search,
                ticket,
                shared: Arc::clone(shared),
            }),
        )
    }

    /// The iteration run as `ticket` ended (`failed`: it is a failure that stops a
    /// sequential search). Takes in every execution the master can now, in its order.
    pub fn complete(&mut self, ticket: u64, failed: bool) {
        let Some(key) = self.tickets.remove(&ticket) else {
            return;
        };
        self.out.remove(&key);
        match self.deposited.remove(&ticket) {
            Some(rec) => {
                self.back.insert(key, (ticket, rec, failed));
            }
            // Ended before the strategy saw its end (an internal error): nothing to replay.
            // If it is the master's next execution, that is where a sequential search stops.
            None if failed && self.stop.is_none() && key == self.master.path_key() => {
                self.stop = Some(Stop::Failed {
                    ticket,
                    iteration: self.ingested + 1,
                });
            }
            None => {}
        }
        self.advance();
    }

    fn advance(&mut self) {
        while self.stop.is_none() {
            if self.master.exhausted() {
                self.stop = Some(Stop::Exhausted);
                break;
            }
            if self.ingested >= self.cap {
                self.stop = Some(Stop::Capped);
                break;
            }
            let key = self.master.path_key();
            let Some((ticket, rec, failed)) = self.back.remove(&key) else {
                break;
            };
            if !self.master.replay(&rec) {
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
        ParallelStats {
            search: self.master.search_stats().unwrap_or_default(),
            handed_out: self.handed_out,
            discarded: self.discarded,
        }
    }
}

/// A worker's strategy for one execution of a parallel search: the master's future state,
/// recording instead of moving on; its recording goes back to the master at the end.
pub struct Follower {
    search: Exhaustive,
    ticket: u64,
    shared: Arc<Mutex<ParallelSearch>>,
}

impl Strategy for Follower {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.search.begin_iteration(seed);
    }

    fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
        self.search.pick(view, choices)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        self.search.random(view, n)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        let result = self.search.end_iteration(view, completed);
        if let Some(rec) = self.search.take_recording() {
            lock(&self.shared).deposited.insert(self.ticket, rec);
        }
        result
    }

    fn reads_events(&self) -> bool {
        true
    }
}
