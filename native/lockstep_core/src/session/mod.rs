//! One iteration's run state, and the control flow around it.
//!
//! Control flow. Every managed process runs only between sync points. At a sync point it
//! calls [`Session::sync`] with the operation it is about to perform; the session records
//! it as the process's *pending* operation and asks the strategy which choice goes next
//! (`decide.rs`). Taking `Run(p)` applies `p`'s pending operation (`apply.rs` hands it to
//! the file of its concern: a send is numbered and delivered or put in flight, a spawn
//! creates the child, a monitor is set, …) and lets `p` run to its next sync point; taking
//! `Deliver(m)` moves an in-flight message or signal to its target, and `Fire(t)` fires a
//! timer (the virtual clock jumps to its deadline); after those the strategy is asked
//! again. So each step is one decision, and the operation a process announces is performed
//! at the step the strategy picks it — which is what lets a strategy see what each choice
//! will touch.
//!
//! Exit signals and `:DOWN` notifications travel like messages: under `delivery: :delayed`
//! they are in flight, ordered per sender→receiver pair together with messages, so
//! "exit signal versus message" races are reachable. Links, monitors, trap flags, names and
//! timers are simulated here, never real BEAM links, so their timing is scheduled too.
//! `link`, `unlink`, `monitor`, `demonitor` and `alive?` take effect at the step they are
//! applied; since OTP orders them after the caller's earlier signals to the same process,
//! `alive?`, `monitor` and `link` first deliver what the caller has in flight to the target
//! (`flush_pair`), and `unlink` / `demonitor` drop the signals of the link or
//! monitor still travelling.
//!
//! The session never holds BEAM terms: the adapter keeps payloads, pids, refs and reason
//! terms, keyed by the small ids used here, and performs the [`Effect`]s the session queues
//! (deliveries the adapter must make, exit signals that kill parked processes) before it
//! wakes the next process.
//!
//! Where each rule lives (one file per concern, each opening with the OTP facts it follows):
//!
//! * `api.rs` — the adapter's calls around a sync point (`start`, `sync`, `exit`,
//!   `external_exit`, `abort`, `finish`), what they answer, and read access to the tables;
//! * `decide.rs` — one step: the choices offered, the strategy's pick, taking it;
//! * `apply.rs` — a picked process's pending operation, dispatched to its concern;
//! * `processes.rs` — spawning, exiting (the fan-out of a death), `alive?`;
//! * `messages.rs` — sends, routing (delivery modes, nodes, partitions), arrival, aliases;
//! * `receive.rs` — mailboxes and receives: attempts, blocking, `after`, consumption;
//! * `signals.rs` — exit signals, links and `trap_exit`;
//! * `monitors.rs` — monitors and `:DOWN`;
//! * `names.rs` — per-node registered names and ETS table names;
//! * `timers.rs` — virtual time: sleeps, `receive … after`, `send_after`, firing;
//! * `cluster.rs` — nodes, partitions and their ticks, node monitors;
//! * `globals.rs` — the global registry: its lock, per-node views, clashes on heal;
//! * `relay.rs` — forced hops the adapter relays without the engine, replayed later.
//!
//! Invariants (checked with `debug_assert!` and by the property tests): at most one process
//! is `Running`; a `Blocked` process is never offered as a choice; when an iteration ends
//! no process is `Running`.

mod api;
mod apply;
mod cluster;
mod decide;
mod globals;
mod messages;
mod monitors;
mod names;
mod processes;
mod receive;
mod relay;
mod signals;
mod timers;

pub use api::{Effect, EngineError, Next, Outcome};
pub use monitors::MonitorRec;
pub use relay::RelayDiverged;

use crate::choices::{ChoiceSet, InFlight};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::ids::{MonitorId, MsgId, NameId, NodeId, ProcId, ProcName, TimerId};
use crate::message::Message;
use crate::op::OpResult;
use crate::process::{ProcState, Process};
use crate::strategy::{Strategy, View};
use crate::timer::Timer;
use crate::trace::{Event, EventKind};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// A decision in session-local ids; turned into names for export. Eight bytes, so the
/// record of a long iteration (one per step) stays small: a random value, which may need
/// 64 bits, lives in `Session::randoms`, in the order its decisions were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawDecision {
    Run(ProcId),
    Deliver(MsgId),
    Fire(TimerId),
    Random,
}

/// What applying a picked process's operation came to.
enum Applied {
    /// It runs on with this result.
    Run(OpResult),
    /// It did not get to run: it died applying its own operation, or waits (for `global`'s
    /// lock). The strategy is asked again.
    Skip,
    /// The iteration is over.
    Ended,
}

/// The root process `P`, the iteration's body.
pub const ROOT: ProcId = 0;

pub struct Session {
    config: Config,
    /// Indexed by [`ProcId`], in spawn order; entries are never removed.
    procs: Vec<Process>,
    /// Indexed by [`MsgId`]: every message and signal sent, in send order.
    msgs: Vec<Message>,
    /// Messages and signals in flight, per sender→receiver pair in send order; each pair's
    /// oldest is in `choices`.
    in_flight: InFlight,
    monitors: Vec<MonitorRec>,
    /// Per process (by id, grown as needed): the monitors it owns or is the target of, in
    /// id order, so its exit visits those alone instead of every monitor of the run.
    monitors_of: Vec<Vec<MonitorId>>,
    /// The processes whose `awaits_outside` is set (invariant), lowest first.
    awaiting_outside: BTreeSet<ProcId>,
    timers: Vec<Timer>,
    /// Timers by (deadline, id), earliest first; entries of timers no longer pending are
    /// dropped when they reach the top. Ties go to the older timer.
    timer_queue: BinaryHeap<Reverse<(u64, TimerId)>>,
    /// Registered names, per node (a name lives on its holder's node).
    names: HashMap<(NodeId, NameId), ProcId>,
    cluster: Cluster,
    /// Named ETS tables per node: name → the adapter's slot for the real table.
    ets_names: HashMap<(NodeId, NameId), u32>,
    /// Virtual time in ms.
    now: u64,
    /// The one process executing code now, if any (invariant: it is the only `Running`
    /// process, and there is none while a decision is made or once the iteration ended).
    running: Option<ProcId>,
    /// Decisions made so far (1-based step count).
    step: u64,
    decisions: Vec<RawDecision>,
    /// The value of each `RawDecision::Random` in `decisions`, in order.
    randoms: Vec<u64>,
    events: Vec<Event>,
    /// Queued for the adapter, taken with [`Session::take_effects`].
    effects: Vec<Effect>,
    /// Set once: the iteration is over.
    outcome: Option<Outcome>,
    root_exited: bool,
    /// The strategy has been told the iteration ended.
    finished: bool,
    /// The choices offered: the `Ready` processes (invariant kept by `set_state`), the
    /// heads of `in_flight` (kept by `in_flight`), the timer (set by `decide`).
    choices: ChoiceSet,
    /// The iteration's seed, from which each process's `:rand` seed derives
    /// ([`Session::process_seed`]).
    seed: u64,
}

impl Session {
    /// Starts an iteration: tells the strategy, creates the root `P` (not yet started).
    pub fn new(config: Config, strategy: &mut dyn Strategy, seed: u64) -> Self {
        strategy.begin_iteration(seed);
        Session {
            config,
            procs: vec![Process::new(ProcName::root(), None)],
            msgs: Vec::new(),
            in_flight: InFlight::default(),
            monitors: Vec::new(),
            monitors_of: Vec::new(),
            awaiting_outside: BTreeSet::new(),
            timers: Vec::new(),
            timer_queue: BinaryHeap::new(),
            names: HashMap::new(),
            cluster: Cluster::default(),
            ets_names: HashMap::new(),
            now: 0,
            running: None,
            step: 0,
            decisions: Vec::with_capacity(64),
            randoms: Vec::new(),
            events: Vec::with_capacity(64),
            effects: Vec::new(),
            outcome: None,
            root_exited: false,
            finished: false,
            choices: {
                let mut choices = ChoiceSet::default();
                choices.insert_run(ROOT);
                choices
            },
            seed,
        }
    }

    /// Starts a new iteration in this session's place, as [`Session::new`] does, keeping
    /// the capacity of its tables: an adapter that runs iterations one after another then
    /// records into memory it has already touched instead of growing fresh buffers (and
    /// faulting their pages in) every iteration. What the new iteration does is exactly
    /// what a new session's would (`tests/equivalence.rs` runs every program both ways).
    pub fn renew(&mut self, config: Config, strategy: &mut dyn Strategy, seed: u64) {
        strategy.begin_iteration(seed);
        // Every field, by name: a field added to the session must be reset here too.
        let Session {
            config: old_config,
            procs,
            msgs,
            in_flight,
            monitors,
            monitors_of,
            awaiting_outside,
            timers,
            timer_queue,
            names,
            cluster,
            ets_names,
            now,
            running,
            step,
            decisions,
            randoms,
            events,
            effects,
            outcome,
            root_exited,
            finished,
            choices,
            seed: old_seed,
        } = self;
        *old_config = config;
        procs.clear();
        procs.push(Process::new(ProcName::root(), None));
        msgs.clear();
        in_flight.clear();
        monitors.clear();
        monitors_of.clear();
        awaiting_outside.clear();
        timers.clear();
        timer_queue.clear();
        names.clear();
        *cluster = Cluster::default();
        ets_names.clear();
        *now = 0;
        *running = None;
        *step = 0;
        decisions.clear();
        randoms.clear();
        events.clear();
        effects.clear();
        *outcome = None;
        *root_exited = false;
        *finished = false;
        choices.clear();
        choices.insert_run(ROOT);
        *old_seed = seed;
    }

    /// Records a random value handed out as a decision.
    fn decide_random(&mut self, value: u64) {
        self.decisions.push(RawDecision::Random);
        self.randoms.push(value);
    }

    /// Every change of a process's state goes through here, so `choices` offers exactly
    /// the `Ready` processes and offering them costs nothing for the processes that are not.
    #[inline]
    fn set_state(&mut self, p: ProcId, state: ProcState) {
        self.procs[p as usize].state = state;
        if state == ProcState::Ready {
            self.choices.insert_run(p);
        } else {
            self.choices.remove_run(p);
        }
    }

    /// The sender→receiver pair of message `m`.
    #[inline]
    fn pair_of(&self, m: MsgId) -> crate::choices::Pair {
        let msg = &self.msgs[m as usize];
        (msg.from, msg.to)
    }

    #[inline]
    fn view(&self) -> View<'_> {
        View {
            step: self.step,
            procs: &self.procs,
            msgs: &self.msgs,
            timers: &self.timers,
            events: &self.events,
            delivery: self.config.delivery,
        }
    }

    #[inline]
    fn check_running(&self, caller: ProcId) -> Result<(), EngineError> {
        let proc = self
            .procs
            .get(caller as usize)
            .ok_or(EngineError::UnknownProcess(caller))?;
        if self.running != Some(caller) {
            return Err(EngineError::NotRunning {
                proc: caller,
                state: proc.state,
            });
        }
        Ok(())
    }

    fn check_proc(&self, p: ProcId) -> Result<(), EngineError> {
        if (p as usize) < self.procs.len() {
            Ok(())
        } else {
            Err(EngineError::UnknownProcess(p))
        }
    }

    // Inlined so each caller writes its event straight into the buffer: passed by
    // reference, an event built with narrow stores was read back with wide loads, a stall
    // the profile of a hop showed as most of `record`'s time.
    #[inline(always)]
    fn record(&mut self, proc: ProcId, kind: EventKind) {
        self.events.push(Event {
            step: self.step,
            proc,
            kind,
        });
    }

    #[inline]
    fn alive(&self, p: ProcId) -> bool {
        self.procs[p as usize].is_alive()
    }

    #[inline]
    fn node_of(&self, p: ProcId) -> NodeId {
        self.procs[p as usize].node
    }
}
