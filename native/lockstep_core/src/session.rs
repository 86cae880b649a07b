//! One iteration's scheduler state.
//!
//! Control flow. Every managed process runs only between sync points. At a sync point it
//! calls [`Session::sync`] with the operation it is about to perform; the session records
//! it as the process's *pending* operation and asks the strategy which choice goes next.
//! Taking `Run(p)` applies `p`'s pending operation (a send is numbered and delivered or put
//! in flight, a spawn creates the child, a monitor is set, …) and lets `p` run to its next
//! sync point; taking `Deliver(m)` moves an in-flight message or signal to its target, and
//! `Fire(t)` fires a timer (the virtual clock jumps to its deadline); after those the
//! strategy is asked again. So each step is one decision, and the operation a process
//! announces is performed at the step the strategy picks it — which is what lets a
//! strategy see what each choice will touch.
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
//! Invariants (checked with `debug_assert!` and by the property tests): at most one process
//! is `Running`; a `Blocked` process is never offered as a choice; when an iteration ends
//! no process is `Running`.

use crate::cluster::{Cluster, ClusterOp, Partition, PartitionMode, HOME_NODE};
use crate::process::{
    ExitCause, ExitClass, MonitorId, MsgId, NameId, NodeId, PendingOp, ProcId, ProcName, ProcState,
    Process, Reason, Target, TimerId,
};
use crate::schedule::Decision;
use crate::strategy::{Choice, Divergence, Strategy, View};
use crate::timer::{Timer, TimerKind, TimerMode, TimerState};
use crate::trace::{Event, EventKind, SendFate};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// A send lands in the target's mailbox at the step it is performed.
    Instant,
    /// Each message is in flight until the strategy delivers it; order is kept per
    /// sender→receiver pair.
    Delayed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// A non-root process crashing on its own fails the iteration.
    Fail,
    /// Crashes are normal behaviour.
    Ignore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub max_steps: u64,
    pub delivery: DeliveryMode,
    pub crash: CrashMode,
    pub timers: TimerMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_steps: 10_000,
            delivery: DeliveryMode::Instant,
            crash: CrashMode::Fail,
            timers: TimerMode::OnIdle,
        }
    }
}

/// The operation a process announces at a sync point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Send {
        to: Target,
    },
    /// `retry` is true after a match attempt found nothing: the process then waits for a
    /// new message (or its timeout) instead of being offered again at once. `timeout` is
    /// the `after` in virtual ms, given on the first attempt.
    Receive {
        retry: bool,
        timeout: Option<u64>,
    },
    Yield,
    Random {
        n: u64,
    },
    Spawn {
        link: bool,
    },
    SpawnOn {
        link: bool,
        node: NodeId,
    },
    Link {
        to: ProcId,
    },
    Unlink {
        to: ProcId,
    },
    Monitor {
        target: ProcId,
    },
    /// `None`: a ref this run never handed out (OTP's `demonitor/1` returns true anyway).
    Demonitor {
        monitor: Option<MonitorId>,
    },
    TrapExit {
        on: bool,
    },
    ExitSignal {
        to: ProcId,
        reason: Reason,
    },
    Alive {
        of: ProcId,
    },
    Register {
        name: NameId,
        proc: ProcId,
    },
    Unregister {
        name: NameId,
    },
    Whereis {
        name: NameId,
    },
    Registered,
    Now,
    Sleep {
        ms: u64,
    },
    SendAfter {
        to: Target,
        ms: u64,
    },
    CancelTimer {
        timer: Option<TimerId>,
    },
    Nif {
        object: Option<u64>,
    },
    Cluster(ClusterOp),
}

/// What applying a pending operation produced; handed to the process that performed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    Started,
    Sent {
        msg: MsgId,
        fate: SendFate,
    },
    /// A send to a name nobody has registered: the sender raises `ArgumentError`.
    Unregistered,
    /// `link/1` to a process that no longer exists: the caller raises `noproc`.
    NoProc,
    /// Go and try to match against the mailbox; `last` means the receive's timeout has
    /// passed: if nothing matches now, run the `after` clause.
    ReceiveAttempt {
        last: bool,
    },
    Yielded,
    Random(u64),
    Spawned {
        child: ProcId,
    },
    Done,
    MonitorSet {
        monitor: MonitorId,
    },
    WasTrapping(bool),
    Alive(bool),
    /// `register/2` / `unregister/1` succeeded (`false`: `ArgumentError`, like OTP).
    NameOk(bool),
    Found(Option<ProcId>),
    /// The adapter reads the names with [`Session::registered_names`].
    Names,
    /// Like `Names`, for the given node.
    NamesOn(NodeId),
    Now(u64),
    TimerSet {
        timer: TimerId,
    },
    /// Milliseconds left, or `None` when the timer had fired or was cancelled.
    Cancelled(Option<u64>),
    /// The adapter reads the nodes with [`Session::nodes`].
    NodeList {
        up_only: bool,
    },
    NodeIs(NodeId),
    /// The adapter reads the names `node` sees with [`Session::global_names`].
    GlobalList(NodeId),
}

/// What the adapter must do after an engine call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The caller was picked again: it goes on with this result.
    Continue(OpResult),
    /// Another process was picked: wake it with this result; the caller parks.
    Wake(ProcId, OpResult),
    /// The iteration is over ([`Session::outcome`] says how); the caller parks.
    Ended,
}

/// Side effects the adapter performs, in order, before acting on [`Next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Put in-flight user message `msg` (its payload is held by the adapter) into `to`'s
    /// real mailbox.
    Deliver { msg: MsgId, to: ProcId },
    /// Put the message made from signal `msg` (`{:EXIT, …}` or `{:DOWN, …}`, see
    /// [`Session::message`]) into `to`'s real mailbox.
    DeliverSignal { msg: MsgId, to: ProcId },
    /// The message `msg` that `send_after` timer `timer` sent when it fired reached `to`
    /// (at once on the timer's node, later from another one): deliver the timer's payload
    /// as that message.
    DeliverTimer {
        timer: TimerId,
        msg: MsgId,
        to: ProcId,
    },
    /// `proc` died of an exit signal while parked: make its BEAM process exit.
    Kill { proc: ProcId, reason: Reason },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The root returned and nothing more could happen.
    Pass,
    /// The root raised, threw or exited abnormally, or was killed by an exit signal.
    Exception {
        proc: ProcId,
    },
    /// A non-root process crashed (with `CrashMode::Fail`).
    Crash {
        proc: ProcId,
    },
    /// The root had not returned and nothing could happen.
    Deadlock {
        blocked: Vec<ProcId>,
    },
    MaxSteps,
    /// A replayed schedule was not followed.
    Diverged(Divergence),
    /// Stopped from outside (the owner saw `running` go past its timeout without reaching a
    /// sync point).
    Aborted {
        running: Option<ProcId>,
    },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Exception { .. } => "exception",
            Outcome::Crash { .. } => "crash",
            Outcome::Deadlock { .. } => "deadlock",
            Outcome::MaxSteps => "max_steps",
            Outcome::Diverged(_) => "diverged",
            Outcome::Aborted { .. } => "aborted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    UnknownProcess(ProcId),
    UnknownMessage(MsgId),
    /// A process made a call while it was not the one allowed to run.
    NotRunning {
        proc: ProcId,
        state: ProcState,
    },
    /// A message was reported consumed by a process that is not its recipient or twice.
    NotInMailbox {
        proc: ProcId,
        msg: MsgId,
    },
    BadRandomBound,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownProcess(p) => write!(f, "unknown process id {p}"),
            EngineError::UnknownMessage(m) => write!(f, "unknown message id {m}"),
            EngineError::NotRunning { proc, state } => write!(
                f,
                "process {proc} made a Lockstep call while {state:?}: only the running process may"
            ),
            EngineError::NotInMailbox { proc, msg } => {
                write!(f, "message {msg} is not in the mailbox of process {proc}")
            }
            EngineError::BadRandomBound => write!(f, "random/1 needs a positive bound"),
        }
    }
}

impl std::error::Error for EngineError {}

/// What travels from one process to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    /// A user message; the adapter holds the payload.
    User,
    /// An exit signal (`link` true when it comes from a link).
    Exit { reason: Reason, link: bool },
    /// A monitor's `:DOWN` notification.
    Down { monitor: MonitorId, reason: Reason },
    /// A `{:nodedown, node}` message for a node monitor.
    NodeDown { node: NodeId },
}

/// Bookkeeping for one sent message or signal (never its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: ProcId,
    /// `None` for a pid outside the run.
    pub to: Option<ProcId>,
    pub state: MsgState,
    pub kind: MsgKind,
    /// Sent to this alias of `to`: dropped if the alias is no longer active on arrival.
    pub alias: Option<u32>,
    /// Sent by this `send_after` timer when it fired: the adapter holds the payload under
    /// the timer, and delivers it with [`Effect::DeliverTimer`].
    pub timer: Option<TimerId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgState {
    InFlight,
    InMailbox,
    Consumed,
    Dropped,
    /// A signal that took effect without becoming a message (ignored, or killed its target).
    Acted,
    /// Sent to a pid outside the run.
    External,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorRec {
    pub owner: ProcId,
    pub target: ProcId,
    pub active: bool,
}

/// Counters for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    pub steps: u64,
    pub context_switches: u64,
    pub contested_steps: u64,
}

/// A decision in session-local ids; turned into names for export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RawDecision {
    Run(ProcId),
    Deliver(MsgId),
    Fire(TimerId),
    Random(u64),
}

enum Applied {
    Run(OpResult),
    /// The picked process did not get to run (it died applying its own operation).
    Skip,
    Ended,
}

pub const ROOT: ProcId = 0;

pub struct Session {
    config: Config,
    procs: Vec<Process>,
    msgs: Vec<Message>,
    /// Messages and signals in flight, in send order.
    in_flight: Vec<MsgId>,
    monitors: Vec<MonitorRec>,
    timers: Vec<Timer>,
    /// Timers by (deadline, id), earliest first; entries of timers no longer pending are
    /// dropped when they reach the top. Ties go to the older timer.
    timer_queue: BinaryHeap<Reverse<(u64, TimerId)>>,
    /// The `Ready` processes (invariant kept by `set_state`), in id order: the order in
    /// which they are offered.
    ready: BTreeSet<ProcId>,
    /// Scratch for `collect_choices`: the sender→receiver pairs already seen.
    pairs_seen: HashSet<(ProcId, Option<ProcId>)>,
    names: HashMap<(NodeId, NameId), ProcId>,
    cluster: Cluster,
    /// Named ETS tables per node: name → the adapter's slot for the real table.
    ets_names: HashMap<(NodeId, NameId), u32>,
    /// Virtual time in ms.
    now: u64,
    running: Option<ProcId>,
    last_run: Option<ProcId>,
    step: u64,
    decisions: Vec<RawDecision>,
    events: Vec<Event>,
    effects: Vec<Effect>,
    outcome: Option<Outcome>,
    root_exited: bool,
    finished: bool,
    metrics: Metrics,
    choices: Vec<Choice>,
}

impl Session {
    /// Starts an iteration: tells the strategy, creates the root `P` (not yet started).
    pub fn new(config: Config, strategy: &mut dyn Strategy, seed: u64) -> Self {
        strategy.begin_iteration(seed);
        Session {
            config,
            procs: vec![Process::new(ProcName::root(), None)],
            msgs: Vec::new(),
            in_flight: Vec::new(),
            monitors: Vec::new(),
            timers: Vec::new(),
            timer_queue: BinaryHeap::new(),
            ready: BTreeSet::from([0]),
            pairs_seen: HashSet::new(),
            names: HashMap::new(),
            cluster: Cluster::default(),
            ets_names: HashMap::new(),
            now: 0,
            running: None,
            last_run: None,
            step: 0,
            decisions: Vec::with_capacity(64),
            events: Vec::with_capacity(64),
            effects: Vec::new(),
            outcome: None,
            root_exited: false,
            finished: false,
            metrics: Metrics::default(),
            choices: Vec::new(),
        }
    }

    /// Makes the first decision (normally: start the root).
    pub fn start(&mut self, strategy: &mut dyn Strategy) -> Next {
        self.decide(None, strategy)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn running(&self) -> Option<ProcId> {
        self.running
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn procs(&self) -> &[Process] {
        &self.procs
    }

    pub fn proc(&self, id: ProcId) -> Option<&Process> {
        self.procs.get(id as usize)
    }

    pub fn message(&self, id: MsgId) -> Option<&Message> {
        self.msgs.get(id as usize)
    }

    pub fn monitor(&self, id: MonitorId) -> Option<&MonitorRec> {
        self.monitors.get(id as usize)
    }

    pub fn timer(&self, id: TimerId) -> Option<&Timer> {
        self.timers.get(id as usize)
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics
    }

    /// The names registered on `node`, in no particular order.
    pub fn registered_names(&self, node: NodeId) -> Vec<NameId> {
        let mut names: Vec<NameId> = self
            .names
            .keys()
            .filter(|(n, _)| *n == node)
            .map(|(_, name)| *name)
            .collect();
        names.sort_unstable();
        names
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Known nodes (`up_only`: those up, without the home node), by id.
    pub fn nodes(&self, up_only: bool) -> Vec<NodeId> {
        (0..self.cluster.known.len() as NodeId)
            .filter(|&n| self.cluster.is_known(n))
            .filter(|&n| !up_only || (n != HOME_NODE && self.cluster.is_up(n)))
            .collect()
    }

    /// The global names `node` sees, sorted.
    pub fn global_names(&self, node: NodeId) -> Vec<u32> {
        self.cluster.global_names(node)
    }

    /// Defines a partition to be activated by `ClusterOp::Partition` (not a sync point).
    pub fn define_partition(&mut self, a: Vec<NodeId>, b: Vec<NodeId>, mode: PartitionMode) -> u32 {
        self.cluster.partitions.push(Partition {
            a,
            b,
            mode,
            active: false,
            tick: None,
            lost: false,
        });
        (self.cluster.partitions.len() - 1) as u32
    }

    /// Named ETS tables of a node (not sync points: the wrapper made its sync point).
    pub fn ets_register(&mut self, node: NodeId, name: NameId, slot: u32) -> bool {
        use std::collections::hash_map::Entry;
        match self.ets_names.entry((node, name)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(slot);
                true
            }
        }
    }

    pub fn ets_lookup(&self, node: NodeId, name: NameId) -> Option<u32> {
        self.ets_names.get(&(node, name)).copied()
    }

    pub fn ets_unregister(&mut self, node: NodeId, name: NameId) -> bool {
        self.ets_names.remove(&(node, name)).is_some()
    }

    pub fn take_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// The decisions made so far, by symbolic name.
    pub fn schedule(&self) -> Vec<Decision> {
        let view = self.view();
        self.decisions
            .iter()
            .map(|d| match *d {
                RawDecision::Run(p) => view.decision_for(Choice::Run(p)),
                RawDecision::Deliver(m) => view.decision_for(Choice::Deliver(m)),
                RawDecision::Fire(t) => view.decision_for(Choice::Fire(t)),
                RawDecision::Random(v) => Decision::Random(v),
            })
            .collect()
    }

    /// A fingerprint of the decisions made, for counting distinct schedules.
    pub fn schedule_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.decisions.hash(&mut h);
        h.finish()
    }

    /// Every change of a process's state goes through here, so `ready` stays the set of
    /// `Ready` processes and offering them costs nothing for the processes that are not.
    fn set_state(&mut self, p: ProcId, state: ProcState) {
        self.procs[p as usize].state = state;
        if state == ProcState::Ready {
            self.ready.insert(p);
        } else {
            self.ready.remove(&p);
        }
    }

    fn view(&self) -> View<'_> {
        View {
            step: self.step,
            procs: &self.procs,
            msgs: &self.msgs,
            timers: &self.timers,
        }
    }

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

    fn record(&mut self, proc: ProcId, kind: EventKind) {
        self.events.push(Event {
            step: self.step,
            proc,
            kind,
        });
    }

    /// A process that made its last receive attempt and did not report a match ran its
    /// `after` clause: record that now, at the step it happened in.
    fn note_timeout(&mut self, caller: ProcId) {
        let proc = &mut self.procs[caller as usize];
        if proc.last_attempt {
            proc.last_attempt = false;
            self.record(caller, EventKind::ReceiveTimeout);
        }
    }

    fn alive(&self, p: ProcId) -> bool {
        self.procs[p as usize].is_alive()
    }

    /// The running process reached a sync point and announces `op`.
    pub fn sync(
        &mut self,
        caller: ProcId,
        op: Op,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        if self.is_over() {
            return Ok(Next::Ended);
        }
        self.check_running(caller)?;
        self.note_timeout(caller);
        match op {
            Op::Send {
                to: Target::Proc(p),
            }
            | Op::SendAfter {
                to: Target::Proc(p),
                ..
            }
            | Op::Link { to: p }
            | Op::Unlink { to: p }
            | Op::Monitor { target: p }
            | Op::ExitSignal { to: p, .. }
            | Op::Alive { of: p }
            | Op::Register { proc: p, .. } => self.check_proc(p)?,
            Op::Random { n: 0 } => return Err(EngineError::BadRandomBound),
            _ => {}
        }
        self.running = None;
        let mut blocked = false;
        let pending = match op {
            Op::Send { to } => PendingOp::Send { to },
            Op::Yield => PendingOp::Yield,
            Op::Random { n } => PendingOp::Random { n },
            Op::Spawn { link } => PendingOp::Spawn { link, node: None },
            Op::SpawnOn { link, node } => PendingOp::Spawn {
                link,
                node: Some(node),
            },
            Op::Link { to } => PendingOp::Link { to },
            Op::Unlink { to } => PendingOp::Unlink { to },
            Op::Monitor { target } => PendingOp::Monitor { target },
            Op::Demonitor { monitor } => PendingOp::Demonitor { monitor },
            Op::TrapExit { on } => PendingOp::TrapExit { on },
            Op::ExitSignal { to, reason } => PendingOp::ExitSignal { to, reason },
            Op::Alive { of } => PendingOp::Alive { of },
            Op::Register { name, proc } => PendingOp::Register { name, proc },
            Op::Unregister { name } => PendingOp::Unregister { name },
            Op::Whereis { name } => PendingOp::Whereis { name },
            Op::Registered => PendingOp::Registered,
            Op::Now => PendingOp::Now,
            Op::SendAfter { to, ms } => PendingOp::SendAfter { to, ms },
            Op::CancelTimer { timer } => PendingOp::CancelTimer { timer },
            Op::Nif { object } => PendingOp::Nif { object },
            Op::Cluster(c) => PendingOp::Cluster(c),
            Op::Sleep { ms } => {
                if ms == 0 {
                    PendingOp::Yield
                } else {
                    let t = self.add_timer(caller, ms, TimerKind::Sleep);
                    self.procs[caller as usize].sleep_timer = Some(t);
                    self.record(caller, EventKind::Sleep { timer: t, ms });
                    blocked = true;
                    PendingOp::Sleep
                }
            }
            Op::Receive { retry, timeout } => {
                if retry {
                    let proc = &mut self.procs[caller as usize];
                    proc.fresh = false;
                    proc.untested = 0;
                } else {
                    if let Some(old) = self.procs[caller as usize].receive_timer.take() {
                        self.timers[old as usize].state = TimerState::Cancelled;
                    }
                    let proc = &mut self.procs[caller as usize];
                    proc.timed_out = false;
                    proc.fresh = proc.mailbox > 0;
                    proc.untested = proc.mailbox;
                    match timeout {
                        Some(0) => self.procs[caller as usize].timed_out = true,
                        Some(ms) => {
                            let t = self.add_timer(caller, ms, TimerKind::ReceiveAfter);
                            self.procs[caller as usize].receive_timer = Some(t);
                            self.record(caller, EventKind::TimerStarted { timer: t, ms });
                        }
                        None => {}
                    }
                }
                let proc = &self.procs[caller as usize];
                blocked = !proc.fresh && !proc.timed_out;
                PendingOp::Receive
            }
        };
        self.procs[caller as usize].pending = pending;
        if blocked {
            self.set_state(caller, ProcState::Blocked);
            if pending == PendingOp::Receive {
                self.record(caller, EventKind::Block);
            }
        } else {
            self.set_state(caller, ProcState::Ready);
        }
        Ok(self.decide(Some(caller), strategy))
    }

    /// The running process matched message `msg` in its mailbox. Not a sync point: it
    /// goes on running.
    pub fn consumed(&mut self, caller: ProcId, msg: MsgId) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        let m = self
            .msgs
            .get_mut(msg as usize)
            .ok_or(EngineError::UnknownMessage(msg))?;
        if m.to != Some(caller) || m.state != MsgState::InMailbox {
            return Err(EngineError::NotInMailbox { proc: caller, msg });
        }
        m.state = MsgState::Consumed;
        let from = m.from;
        let proc = &mut self.procs[caller as usize];
        debug_assert!(proc.mailbox > 0);
        proc.mailbox -= 1;
        proc.timed_out = false;
        proc.last_attempt = false;
        if let Some(t) = proc.receive_timer.take() {
            self.timers[t as usize].state = TimerState::Cancelled;
        }
        self.record(caller, EventKind::Receive { msg, from });
        Ok(())
    }

    /// The running process's own code ended. `reason` is what linked and monitoring
    /// processes see (`Reason::Normal` or `Reason::ExitOf(caller)`); `class` decides
    /// whether it counts as a crash.
    pub fn exit_with(
        &mut self,
        caller: ProcId,
        class: ExitClass,
        reason: Reason,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        if self.is_over() {
            return Ok(Next::Ended);
        }
        self.check_running(caller)?;
        self.note_timeout(caller);
        self.running = None;
        self.die(caller, ExitCause::Own(class), reason, false);
        Ok(self.decide(None, strategy))
    }

    /// [`Session::exit_with`] with the reason implied by the class.
    pub fn exit(
        &mut self,
        caller: ProcId,
        class: ExitClass,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        let reason = match class {
            ExitClass::Normal => Reason::Normal,
            ExitClass::Abnormal => Reason::ExitOf(caller),
        };
        self.exit_with(caller, class, reason, strategy)
    }

    /// A managed process died without telling us (killed from outside the run; the reason
    /// is unknown, so `:killed`).
    pub fn external_exit(&mut self, proc: ProcId, strategy: &mut dyn Strategy) -> Next {
        self.external_exit_with(proc, Reason::Killed, strategy)
    }

    /// A managed process is dying of an exit signal from outside the run, with `reason`
    /// (what its linked and monitoring processes see).
    pub fn external_exit_with(
        &mut self,
        proc: ProcId,
        reason: Reason,
        strategy: &mut dyn Strategy,
    ) -> Next {
        let Some(p) = self.procs.get(proc as usize) else {
            return Next::Ended;
        };
        if self.is_over() || !p.is_alive() {
            return Next::Ended;
        }
        let had_runner = self.running.is_some();
        self.die(proc, ExitCause::External, reason, false);
        if had_runner && self.running.is_none() {
            // The running process was the one killed, or died of its exit signal.
            self.decide(None, strategy)
        } else {
            // Someone else is running and will make the next decision.
            Next::Ended
        }
    }

    /// Stops the iteration from outside; later calls from its processes see it is over.
    pub fn abort(&mut self) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Aborted {
                running: self.running,
            });
        }
    }

    /// Marks `p` exited, fails the iteration if that is a failure, and sends its exit
    /// signals and `:DOWN`s. `kill_parked`: the BEAM process is parked and must be told.
    fn die(&mut self, p: ProcId, cause: ExitCause, reason: Reason, kill_parked: bool) {
        if !self.alive(p) {
            return;
        }
        let reason = if reason == Reason::Kill {
            Reason::Killed
        } else {
            reason
        };
        if self.running == Some(p) {
            self.running = None;
        }
        self.set_state(p, ProcState::Exited);
        let entry = &mut self.procs[p as usize];
        entry.exit = Some(cause);
        entry.exit_reason = reason;
        let links = std::mem::take(&mut entry.links);
        let timers = [entry.sleep_timer.take(), entry.receive_timer.take()];
        let node = entry.node;
        if let Some(name) = entry.registered.take() {
            self.names.remove(&(node, name));
        }
        self.cluster.global_forget(p);
        for t in timers.into_iter().flatten() {
            self.timers[t as usize].state = TimerState::Cancelled;
        }
        if kill_parked {
            self.effects.push(Effect::Kill { proc: p, reason });
        }
        self.record(p, EventKind::Exit { cause });
        if p == ROOT {
            self.root_exited = true;
        }
        if self.outcome.is_none() {
            match cause {
                ExitCause::Own(ExitClass::Abnormal)
                | ExitCause::Signal { .. }
                | ExitCause::NameConflict
                    if p == ROOT =>
                {
                    self.outcome = Some(Outcome::Exception { proc: p });
                }
                ExitCause::External if p == ROOT => {
                    self.outcome = Some(Outcome::Exception { proc: p });
                }
                ExitCause::Own(ExitClass::Abnormal) | ExitCause::External
                    if self.config.crash == CrashMode::Fail =>
                {
                    self.outcome = Some(Outcome::Crash { proc: p });
                }
                _ => {}
            }
        }
        for l in links {
            if !self.alive(l) {
                // The half of a link whose exit signal a partition cut (`lost_in_cut`).
                continue;
            }
            self.procs[l as usize].links.retain(|&x| x != p);
            self.signal(p, l, MsgKind::Exit { reason, link: true });
        }
        for m in 0..self.monitors.len() {
            let rec = self.monitors[m];
            if rec.active && rec.owner == p {
                self.monitors[m].active = false;
            } else if rec.active && rec.target == p {
                self.signal(
                    p,
                    rec.owner,
                    MsgKind::Down {
                        monitor: m as MonitorId,
                        reason,
                    },
                );
            }
        }
    }

    /// Sends a signal (exit or `:DOWN`) from `from` to `to`: at once under instant
    /// delivery or to oneself, else in flight. Returns its id and fate.
    fn signal(&mut self, from: ProcId, to: ProcId, kind: MsgKind) -> (MsgId, SendFate) {
        self.signal_via(from, to, kind, false)
    }

    /// `local`: generated on the receiver's node (a lost connection, a node going down),
    /// so no partition or network is crossed.
    fn signal_via(
        &mut self,
        from: ProcId,
        to: ProcId,
        kind: MsgKind,
        local: bool,
    ) -> (MsgId, SendFate) {
        let m = self.msgs.len() as MsgId;
        self.msgs.push(Message {
            from,
            to: Some(to),
            state: MsgState::InFlight,
            kind,
            alias: None,
            timer: None,
        });
        if !self.alive(to) {
            self.msgs[m as usize].state = MsgState::Dropped;
            return (m, SendFate::Dropped);
        }
        if local || from == to {
            self.arrive(m);
            return (m, SendFate::Delivered);
        }
        match self.route(m, from, to) {
            SendFate::Delivered => {
                self.arrive(m);
                (m, SendFate::Delivered)
            }
            fate => (m, fate),
        }
    }

    fn node_of(&self, p: ProcId) -> NodeId {
        self.procs[p as usize].node
    }

    /// How a message or signal from `from` to `to` (alive) travels if sent now: to
    /// oneself, at once under any delivery mode (SPEC §1); to another node, always in flight
    /// unless a partition cuts it (`Cut` under `:drop`, `Deferred` under `:defer`); on the
    /// same node, as the delivery mode says.
    fn fate(&self, from: ProcId, to: ProcId) -> SendFate {
        if from == to {
            return SendFate::Delivered;
        }
        let (nf, nt) = (self.node_of(from), self.node_of(to));
        if nf != nt {
            return match self.cluster.cut(nf, nt) {
                Some(PartitionMode::Drop) => SendFate::Cut,
                Some(PartitionMode::Defer) => SendFate::Deferred,
                None => SendFate::InFlight,
            };
        }
        match self.config.delivery {
            DeliveryMode::Instant => SendFate::Delivered,
            DeliveryMode::Delayed => SendFate::InFlight,
        }
    }

    /// Sends message `m` from `from` to `to` (alive) the way [`Session::fate`] says:
    /// `Delivered` means the caller delivers it now; in flight, cut and deferred messages
    /// are filed here.
    fn route(&mut self, m: MsgId, from: ProcId, to: ProcId) -> SendFate {
        let fate = self.fate(from, to);
        match fate {
            SendFate::Cut => {
                self.msgs[m as usize].state = MsgState::Dropped;
                self.record(
                    to,
                    EventKind::Cut {
                        msg: m,
                        from,
                        deferred: false,
                    },
                );
                self.lost_in_cut(m);
            }
            SendFate::Deferred => {
                self.msgs[m as usize].state = MsgState::InFlight;
                self.cluster.deferred.push(m);
                self.record(
                    to,
                    EventKind::Cut {
                        msg: m,
                        from,
                        deferred: true,
                    },
                );
            }
            SendFate::InFlight => {
                self.msgs[m as usize].state = MsgState::InFlight;
                self.in_flight.push(m);
            }
            SendFate::Delivered | SendFate::Dropped => {}
        }
        fate
    }

    /// Message `m` was lost in a `:drop` cut. If it is a link's exit signal, the receiver
    /// never learns of it, so its half of the link stays: OTP removes a link on the
    /// receiving side only when the exit signal arrives, and when the connection is then
    /// declared lost (the partition's tick) the link fires with `:noconnection`, as a
    /// monitor whose `:DOWN` was cut does.
    fn lost_in_cut(&mut self, m: MsgId) {
        let msg = self.msgs[m as usize];
        let (MsgKind::Exit { link: true, .. }, Some(to)) = (msg.kind, msg.to) else {
            return;
        };
        if to != msg.from && self.alive(to) && !self.procs[to as usize].links.contains(&msg.from) {
            self.procs[to as usize].links.push(msg.from);
        }
    }

    /// Message or signal `m` reaches its target now.
    fn arrive(&mut self, m: MsgId) {
        let msg = self.msgs[m as usize];
        let to = msg
            .to
            .expect("only managed targets receive through the engine");
        if !self.alive(to) {
            self.msgs[m as usize].state = MsgState::Dropped;
            self.record(
                to,
                EventKind::Drop {
                    msg: m,
                    from: msg.from,
                },
            );
            return;
        }
        match msg.kind {
            MsgKind::User if msg.alias.is_some_and(|a| !self.has_alias(to, a)) => {
                self.msgs[m as usize].state = MsgState::Dropped;
                self.record(
                    to,
                    EventKind::Drop {
                        msg: m,
                        from: msg.from,
                    },
                );
            }
            MsgKind::User => {
                self.msgs[m as usize].state = MsgState::InMailbox;
                self.add_to_mailbox(to);
                self.effects.push(match msg.timer {
                    Some(timer) => Effect::DeliverTimer { timer, msg: m, to },
                    None => Effect::Deliver { msg: m, to },
                });
                self.record(
                    to,
                    EventKind::Deliver {
                        msg: m,
                        from: msg.from,
                    },
                );
            }
            MsgKind::Down { monitor, reason } => {
                if !self.monitors[monitor as usize].active {
                    // Demonitored while the notification was in flight: OTP guarantees
                    // no :DOWN is placed in the mailbox after demonitor returns.
                    self.msgs[m as usize].state = MsgState::Dropped;
                    return;
                }
                self.monitors[monitor as usize].active = false;
                self.msgs[m as usize].state = MsgState::InMailbox;
                self.add_to_mailbox(to);
                self.effects.push(Effect::DeliverSignal { msg: m, to });
                self.record(
                    to,
                    EventKind::Down {
                        msg: m,
                        monitor,
                        from: msg.from,
                        reason,
                    },
                );
            }
            MsgKind::NodeDown { node } => {
                self.msgs[m as usize].state = MsgState::InMailbox;
                self.add_to_mailbox(to);
                self.effects.push(Effect::DeliverSignal { msg: m, to });
                self.record(to, EventKind::NodeDownMsg { msg: m, node });
            }
            MsgKind::Exit { reason, link } => {
                let target = &self.procs[to as usize];
                if reason == Reason::Kill && !link {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.die(
                        to,
                        ExitCause::Signal {
                            from: msg.from,
                            reason,
                        },
                        Reason::Killed,
                        true,
                    );
                } else if target.trap_exit {
                    self.msgs[m as usize].state = MsgState::InMailbox;
                    self.add_to_mailbox(to);
                    self.effects.push(Effect::DeliverSignal { msg: m, to });
                    self.record(
                        to,
                        EventKind::ExitTrapped {
                            msg: m,
                            from: msg.from,
                            reason,
                        },
                    );
                } else if reason == Reason::Normal && msg.from != to {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.record(to, EventKind::ExitIgnored { from: msg.from });
                } else {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.die(
                        to,
                        ExitCause::Signal {
                            from: msg.from,
                            reason,
                        },
                        reason,
                        true,
                    );
                }
            }
        }
    }

    fn add_to_mailbox(&mut self, to: ProcId) {
        let target = &mut self.procs[to as usize];
        target.mailbox += 1;
        target.fresh = true;
        target.untested += 1;
        if target.state == ProcState::Blocked && target.pending == PendingOp::Receive {
            self.set_state(to, ProcState::Ready);
        }
    }

    fn add_timer(&mut self, owner: ProcId, ms: u64, kind: TimerKind) -> TimerId {
        let proc = &mut self.procs[owner as usize];
        proc.timers_created += 1;
        let t = self.timers.len() as TimerId;
        let deadline = self.now.saturating_add(ms);
        self.timers.push(Timer {
            owner,
            ordinal: proc.timers_created,
            deadline,
            kind,
            state: TimerState::Pending,
        });
        self.timer_queue.push(Reverse((deadline, t)));
        t
    }

    fn earliest_timer(&mut self) -> Option<TimerId> {
        while let Some(&Reverse((_, t))) = self.timer_queue.peek() {
            if self.timers[t as usize].state == TimerState::Pending {
                return Some(t);
            }
            self.timer_queue.pop();
        }
        None
    }

    fn fire(&mut self, t: TimerId) {
        let timer = self.timers[t as usize];
        debug_assert_eq!(timer.state, TimerState::Pending);
        self.timers[t as usize].state = TimerState::Fired;
        self.now = self.now.max(timer.deadline);
        let owner = timer.owner;
        self.record(
            owner,
            EventKind::TimerFired {
                timer: t,
                now: self.now,
            },
        );
        match timer.kind {
            TimerKind::Sleep => {
                let proc = &mut self.procs[owner as usize];
                proc.sleep_timer = None;
                if proc.state == ProcState::Blocked && proc.pending == PendingOp::Sleep {
                    self.set_state(owner, ProcState::Ready);
                }
            }
            TimerKind::ReceiveAfter => {
                let proc = &mut self.procs[owner as usize];
                proc.receive_timer = None;
                proc.timed_out = true;
                if proc.state == ProcState::Blocked && proc.pending == PendingOp::Receive {
                    self.set_state(owner, ProcState::Ready);
                }
            }
            TimerKind::Tick { partition } => self.tick(partition),
            TimerKind::SendAfter { to } => {
                let m = self.msgs.len() as MsgId;
                let target = self.resolve(owner, to);
                self.msgs.push(Message {
                    from: owner,
                    to: target,
                    state: MsgState::Dropped,
                    kind: MsgKind::User,
                    alias: None,
                    timer: Some(t),
                });
                match target {
                    // OTP: erlang:send_after/3 sends the message when the timer expires,
                    // from the timer's node as `erlang:send/2` would, so to a process on
                    // another node it crosses the network like any message: in flight, and
                    // lost or held back by a partition. On its own node it is in the
                    // mailbox at once.
                    Some(to) if self.alive(to) && self.node_of(to) != self.node_of(owner) => {
                        self.route(m, owner, to);
                    }
                    Some(to) if self.alive(to) => self.arrive(m),
                    Some(to) => self.record(
                        to,
                        EventKind::Drop {
                            msg: m,
                            from: owner,
                        },
                    ),
                    None => {}
                }
            }
        }
    }

    /// Resolves a send target to a managed process (`None`: outside the run, or a name
    /// nobody holds).
    fn resolve(&self, sender: ProcId, to: Target) -> Option<ProcId> {
        match to {
            Target::Proc(p) => Some(p),
            Target::External => None,
            Target::Name(name) => {
                let node = self.procs[sender as usize].node;
                self.names.get(&(node, name)).copied()
            }
            Target::NameAt(name, node) => self.names.get(&(node, name)).copied(),
            Target::Alias(p, _) => Some(p),
            Target::Global(name) => self
                .cluster
                .global_whereis(self.procs[sender as usize].node, name),
        }
    }

    /// Delivers, in order, what `from` has in flight to `to` (not what a partition holds):
    /// for operations OTP orders after the caller's earlier signals to their target.
    fn flush_pair(&mut self, from: ProcId, to: ProcId) {
        let pair: Vec<MsgId> = self
            .in_flight
            .iter()
            .copied()
            .filter(|&m| self.msgs[m as usize].from == from && self.msgs[m as usize].to == Some(to))
            .collect();
        if pair.is_empty() {
            return;
        }
        self.in_flight.retain(|m| !pair.contains(m));
        for m in pair {
            self.arrive(m);
        }
    }

    /// `to` unlinked `from`: OTP guarantees the link has no effect on `to` once unlink/1
    /// returns, so exit signals of that link still travelling are dropped.
    fn drop_link_exits(&mut self, from: ProcId, to: ProcId) {
        let msgs = &mut self.msgs;
        let mut keep = |m: &MsgId| {
            let msg = &mut msgs[*m as usize];
            let stale = msg.from == from
                && msg.to == Some(to)
                && matches!(msg.kind, MsgKind::Exit { link: true, .. });
            if stale {
                msg.state = MsgState::Dropped;
            }
            !stale
        };
        self.in_flight.retain(&mut keep);
        self.cluster.deferred.retain(&mut keep);
    }

    fn has_alias(&self, p: ProcId, alias: u32) -> bool {
        self.procs[p as usize].aliases.contains(&alias)
    }

    /// Activates alias `alias` of the running process. Not a sync point.
    pub fn alias(&mut self, caller: ProcId, alias: u32) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.procs[caller as usize].aliases.push(alias);
        Ok(())
    }

    /// Deactivates an alias of the running process: later messages to it are dropped.
    pub fn unalias(&mut self, caller: ProcId, alias: u32) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.procs[caller as usize].aliases.retain(|&a| a != alias);
        Ok(())
    }

    fn collect_choices(&mut self) {
        self.choices.clear();
        debug_assert!(self
            .procs
            .iter()
            .enumerate()
            .all(|(i, p)| (p.state == ProcState::Ready) == self.ready.contains(&(i as ProcId))));
        self.choices
            .extend(self.ready.iter().map(|&p| Choice::Run(p)));
        // The oldest in-flight message of each sender→receiver pair.
        self.pairs_seen.clear();
        for &m in &self.in_flight {
            let msg = &self.msgs[m as usize];
            if self.pairs_seen.insert((msg.from, msg.to)) {
                self.choices.push(Choice::Deliver(m));
            }
        }
        if self.config.timers == TimerMode::Anytime && !self.root_exited {
            if let Some(t) = self.earliest_timer() {
                self.choices.push(Choice::Fire(t));
            }
        }
    }

    fn decide(&mut self, caller: Option<ProcId>, strategy: &mut dyn Strategy) -> Next {
        debug_assert!(self.running.is_none());
        loop {
            if self.outcome.is_some() {
                return Next::Ended;
            }
            self.collect_choices();
            if self.choices.is_empty() && !self.root_exited {
                // Idle: the earliest timer fires (pending timers are not fired once the
                // root has returned: draining only runs what can still run).
                if let Some(t) = self.earliest_timer() {
                    self.choices.push(Choice::Fire(t));
                }
            }
            if self.choices.is_empty() {
                self.outcome = Some(if self.root_exited {
                    Outcome::Pass
                } else {
                    let blocked = (0..self.procs.len() as ProcId)
                        .filter(|&p| self.procs[p as usize].state == ProcState::Blocked)
                        .collect();
                    Outcome::Deadlock { blocked }
                });
                return Next::Ended;
            }
            if self.step >= self.config.max_steps {
                self.outcome = Some(Outcome::MaxSteps);
                return Next::Ended;
            }
            self.step += 1;
            self.metrics.steps += 1;
            if self.choices.len() > 1 {
                self.metrics.contested_steps += 1;
            }
            let view = View {
                step: self.step,
                procs: &self.procs,
                msgs: &self.msgs,
                timers: &self.timers,
            };
            let index = match strategy.pick(&view, &self.choices) {
                Ok(i) if i < self.choices.len() => i,
                Ok(i) => {
                    debug_assert!(false, "strategy picked {i} of {}", self.choices.len());
                    0
                }
                Err(d) => {
                    self.outcome = Some(Outcome::Diverged(d));
                    return Next::Ended;
                }
            };
            match self.choices[index] {
                Choice::Deliver(m) => {
                    self.decisions.push(RawDecision::Deliver(m));
                    self.in_flight.retain(|&x| x != m);
                    self.arrive(m);
                }
                Choice::Fire(t) => {
                    self.decisions.push(RawDecision::Fire(t));
                    self.fire(t);
                }
                Choice::Run(p) => {
                    debug_assert_eq!(self.procs[p as usize].state, ProcState::Ready);
                    self.decisions.push(RawDecision::Run(p));
                    if self.last_run.is_some_and(|last| last != p) {
                        self.metrics.context_switches += 1;
                    }
                    self.last_run = Some(p);
                    match self.apply(p, strategy) {
                        Applied::Run(result) if Some(p) == caller => return Next::Continue(result),
                        Applied::Run(result) => return Next::Wake(p, result),
                        Applied::Skip => {}
                        Applied::Ended => return Next::Ended,
                    }
                }
            }
        }
    }

    /// Performs `p`'s pending operation and makes it the running process.
    fn apply(&mut self, p: ProcId, strategy: &mut dyn Strategy) -> Applied {
        let pending = self.procs[p as usize].pending;
        let result = match pending {
            PendingOp::Start => {
                self.record(p, EventKind::Start);
                OpResult::Started
            }
            PendingOp::Yield => {
                self.record(p, EventKind::Yield);
                OpResult::Yielded
            }
            PendingOp::Receive => {
                let proc = &mut self.procs[p as usize];
                let last = proc.timed_out;
                proc.timed_out = false;
                proc.last_attempt = last;
                OpResult::ReceiveAttempt { last }
            }
            PendingOp::Random { n } => {
                let view = self.view();
                match strategy.random(&view, n) {
                    Ok(value) => {
                        self.decisions.push(RawDecision::Random(value));
                        self.record(p, EventKind::Random { n, value });
                        OpResult::Random(value)
                    }
                    Err(d) => {
                        self.outcome = Some(Outcome::Diverged(d));
                        return Applied::Ended;
                    }
                }
            }
            PendingOp::Spawn { link, node } => {
                let child = self.procs.len() as ProcId;
                let parent = &mut self.procs[p as usize];
                parent.children += 1;
                let name = parent.name.child(parent.children);
                let mut proc = Process::new(name, Some(p));
                proc.node = node.unwrap_or(parent.node);
                if !self.cluster.is_up(proc.node) {
                    // Spawning on a node that is down yields a pid that is already dead.
                    proc.state = ProcState::Exited;
                    proc.exit = Some(ExitCause::NodeDown);
                    proc.exit_reason = Reason::NoConnection;
                    self.procs.push(proc);
                    self.record(p, EventKind::Spawn { child, link: false });
                    if link {
                        self.signal(
                            child,
                            p,
                            MsgKind::Exit {
                                reason: Reason::NoConnection,
                                link: true,
                            },
                        );
                    }
                    return self.run(p, OpResult::Spawned { child });
                }
                if link {
                    proc.links.push(p);
                    self.procs[p as usize].links.push(child);
                }
                self.procs.push(proc);
                self.ready.insert(child);
                self.record(p, EventKind::Spawn { child, link });
                OpResult::Spawned { child }
            }
            PendingOp::Send { to } => {
                if let Target::Name(name) | Target::Global(name) = to {
                    if self.resolve(p, to).is_none() {
                        let global = matches!(to, Target::Global(_));
                        self.record(p, EventKind::SendToUnregistered { name, global });
                        return self.run(p, OpResult::Unregistered);
                    }
                }
                if let Target::NameAt(name, node) = to {
                    if self.resolve(p, to).is_none() {
                        // `{name, node} ! msg` never fails in OTP: the message is lost.
                        let msg = self.msgs.len() as MsgId;
                        self.msgs.push(Message {
                            from: p,
                            to: None,
                            state: MsgState::Dropped,
                            kind: MsgKind::User,
                            alias: None,
                            timer: None,
                        });
                        self.record(p, EventKind::SendToNobody { name, node, msg });
                        return self.run(
                            p,
                            OpResult::Sent {
                                msg,
                                fate: SendFate::Dropped,
                            },
                        );
                    }
                }
                let target = self.resolve(p, to);
                let alias = match to {
                    Target::Alias(_, a) => Some(a),
                    _ => None,
                };
                let msg = self.msgs.len() as MsgId;
                let (fate, state) = match target {
                    None => (SendFate::Delivered, MsgState::External),
                    Some(t) if !self.alive(t) => (SendFate::Dropped, MsgState::Dropped),
                    Some(t) if alias.is_some_and(|a| !self.has_alias(t, a)) => {
                        (SendFate::Dropped, MsgState::Dropped)
                    }
                    Some(_) => (SendFate::InFlight, MsgState::InFlight),
                };
                self.msgs.push(Message {
                    from: p,
                    to: target,
                    state,
                    kind: MsgKind::User,
                    alias,
                    timer: None,
                });
                let fate = match (fate, target) {
                    (SendFate::InFlight, Some(t)) => {
                        let fate = self.route(msg, p, t);
                        if fate == SendFate::Delivered {
                            self.msgs[msg as usize].state = MsgState::InMailbox;
                            self.add_to_mailbox(t);
                        }
                        fate
                    }
                    (fate, _) => fate,
                };
                self.record(
                    p,
                    EventKind::Send {
                        to: target,
                        msg,
                        fate,
                    },
                );
                OpResult::Sent { msg, fate }
            }
            PendingOp::Link { to } => {
                self.record(p, EventKind::Link { to });
                let noproc = MsgKind::Exit {
                    reason: Reason::NoProc,
                    link: true,
                };
                let was_alive = self.alive(to);
                if to == p {
                    // Linking to oneself is a no-op, as in OTP.
                } else if self
                    .cluster
                    .connection_lost(self.node_of(p), self.node_of(to))
                {
                    // OTP 25 link/1 to a pid of a node that is not connected: `true`, and
                    // the caller gets a `:noconnection` exit signal at once.
                    let lost = MsgKind::Exit {
                        reason: Reason::NoConnection,
                        link: true,
                    };
                    self.signal_via(to, p, lost, true);
                } else if !was_alive && self.node_of(p) != self.node_of(to) {
                    // A remote pid is not looked up: the link signal travels, and the
                    // dead process's node answers with a `:noproc` exit signal.
                    self.signal(to, p, noproc);
                } else if !was_alive && self.procs[p as usize].trap_exit {
                    // OTP 25 (`erts_deliver_exit_message`): the `{:EXIT, pid, :noproc}` is
                    // in the caller's mailbox when link/1 returns.
                    self.signal_via(to, p, noproc, true);
                } else if !was_alive {
                    // OTP 25: link/1 to a local process that no longer exists raises
                    // `noproc` in a caller that does not trap exits.
                    return self.run(p, OpResult::NoProc);
                } else {
                    // The link signal reaches `to` after the caller's earlier signals.
                    self.flush_pair(p, to);
                    if self.alive(to) {
                        if !self.procs[p as usize].links.contains(&to) {
                            self.procs[p as usize].links.push(to);
                            self.procs[to as usize].links.push(p);
                        }
                    } else {
                        // They killed it: link/1 has returned true, and the dead process
                        // answers the link signal with a `:noproc` exit signal.
                        self.signal(to, p, noproc);
                    }
                }
                OpResult::Done
            }
            PendingOp::Unlink { to } => {
                self.procs[p as usize].links.retain(|&x| x != to);
                self.procs[to as usize].links.retain(|&x| x != p);
                self.drop_link_exits(to, p);
                self.record(p, EventKind::Unlink { to });
                OpResult::Done
            }
            PendingOp::Monitor { target } => {
                let lost = target != p
                    && self
                        .cluster
                        .connection_lost(self.node_of(p), self.node_of(target));
                if target != p && !lost && self.alive(target) {
                    // The monitor signal reaches `target` after the caller's earlier
                    // signals (an exit signal that kills it gives :noproc below).
                    self.flush_pair(p, target);
                }
                let monitor = self.monitors.len() as MonitorId;
                self.monitors.push(MonitorRec {
                    owner: p,
                    target,
                    active: true,
                });
                self.record(p, EventKind::Monitor { target, monitor });
                if target == p {
                    // OTP: monitoring oneself sets nothing up; no :DOWN ever comes.
                    self.monitors[monitor as usize].active = false;
                } else if lost {
                    // OTP 25 monitor/2 of a pid of a node that is not connected: the
                    // `{:DOWN, ref, :process, pid, :noconnection}` is in the mailbox when it
                    // returns (generated locally, it crosses no partition).
                    let down = MsgKind::Down {
                        monitor,
                        reason: Reason::NoConnection,
                    };
                    self.signal_via(target, p, down, true);
                } else if !self.alive(target) {
                    // OTP 25: the :noproc :DOWN is not yet in the mailbox when monitor/2
                    // returns (`receive … after 0` misses it): it travels.
                    let down = MsgKind::Down {
                        monitor,
                        reason: Reason::NoProc,
                    };
                    self.signal(target, p, down);
                }
                OpResult::MonitorSet { monitor }
            }
            PendingOp::Demonitor { monitor } => {
                if let Some(m) = monitor {
                    if let Some(rec) = self.monitors.get_mut(m as usize) {
                        if rec.owner == p {
                            rec.active = false;
                            self.record(p, EventKind::Demonitor { monitor: m });
                        }
                    }
                }
                OpResult::Done
            }
            PendingOp::TrapExit { on } => {
                let proc = &mut self.procs[p as usize];
                let was = proc.trap_exit;
                proc.trap_exit = on;
                self.record(p, EventKind::TrapExit { on });
                OpResult::WasTrapping(was)
            }
            PendingOp::ExitSignal { to, reason } => {
                let msg = self.msgs.len() as MsgId;
                // The fate routing will give it: a signal to another node is in flight (or
                // cut, or deferred) under any delivery mode.
                let fate = if self.alive(to) {
                    self.fate(p, to)
                } else {
                    SendFate::Dropped
                };
                self.record(
                    p,
                    EventKind::ExitSent {
                        to,
                        msg,
                        reason,
                        fate,
                    },
                );
                let (_, routed) = self.signal(
                    p,
                    to,
                    MsgKind::Exit {
                        reason,
                        link: false,
                    },
                );
                debug_assert_eq!(routed, fate);
                if !self.alive(p) {
                    // It killed itself: it parks and dies on the Kill effect.
                    return Applied::Skip;
                }
                OpResult::Done
            }
            PendingOp::Alive { of } => {
                // OTP: is_process_alive/1 answers after the caller's earlier signals to
                // `of` have reached it (so `exit(pid, :kill)` then `alive?(pid)` is false).
                if of != p && self.alive(of) {
                    self.flush_pair(p, of);
                }
                let alive = self.alive(of);
                self.record(p, EventKind::Alive { of, alive });
                OpResult::Alive(alive)
            }
            PendingOp::Register { name, proc } => {
                // A name lives in the registry of the registered process's node.
                let node = self.procs[proc as usize].node;
                let ok = self.alive(proc)
                    && self.procs[proc as usize].registered.is_none()
                    && !self.names.contains_key(&(node, name));
                if ok {
                    self.names.insert((node, name), proc);
                    self.procs[proc as usize].registered = Some(name);
                }
                self.record(
                    p,
                    EventKind::Register {
                        name,
                        target: proc,
                        ok,
                    },
                );
                OpResult::NameOk(ok)
            }
            PendingOp::Unregister { name } => {
                let node = self.procs[p as usize].node;
                let ok = match self.names.remove(&(node, name)) {
                    Some(holder) => {
                        self.procs[holder as usize].registered = None;
                        true
                    }
                    None => false,
                };
                self.record(p, EventKind::Unregister { name, ok });
                OpResult::NameOk(ok)
            }
            PendingOp::Whereis { name } => {
                let found = self.resolve(p, Target::Name(name));
                self.record(p, EventKind::Whereis { name, found });
                OpResult::Found(found)
            }
            PendingOp::Registered => OpResult::Names,
            PendingOp::Now => {
                self.record(p, EventKind::Now { ms: self.now });
                OpResult::Now(self.now)
            }
            PendingOp::Sleep => OpResult::Done,
            PendingOp::SendAfter { to, ms } => {
                let timer = self.add_timer(p, ms, TimerKind::SendAfter { to });
                self.record(p, EventKind::TimerStarted { timer, ms });
                OpResult::TimerSet { timer }
            }
            PendingOp::CancelTimer { timer } => {
                let left = match timer.and_then(|t| self.timers.get(t as usize).map(|x| (t, *x))) {
                    Some((t, x)) if x.state == TimerState::Pending => {
                        self.timers[t as usize].state = TimerState::Cancelled;
                        let left = x.deadline.saturating_sub(self.now);
                        self.record(
                            p,
                            EventKind::TimerCancelled {
                                timer: t,
                                left: Some(left),
                            },
                        );
                        Some(left)
                    }
                    _ => None,
                };
                OpResult::Cancelled(left)
            }
            PendingOp::Nif { object } => {
                self.record(p, EventKind::Nif { object });
                OpResult::Done
            }
            PendingOp::Cluster(
                op @ (ClusterOp::GlobalRegister { .. } | ClusterOp::GlobalUnregister(_)),
            ) if self.cluster.global_lock_stalled(self.node_of(p)) => {
                // OTP 25 takes `global`'s lock on every known node first
                // (`trans_all_known/1`): with one of them cut off and not yet declared down
                // the lock request waits, until the heal or the tick.
                let name = match op {
                    ClusterOp::GlobalRegister { name, .. } | ClusterOp::GlobalUnregister(name) => {
                        name
                    }
                    _ => unreachable!("matched above"),
                };
                self.set_state(p, ProcState::Blocked);
                self.record(p, EventKind::GlobalLockWait { name });
                return Applied::Skip;
            }
            PendingOp::Cluster(op) => {
                let result = self.apply_cluster(p, op, strategy);
                if matches!(self.outcome, Some(Outcome::Diverged(_))) {
                    return Applied::Ended;
                }
                if !self.alive(p) {
                    // It stopped its own node.
                    return Applied::Skip;
                }
                result
            }
        };
        self.run(p, result)
    }

    fn apply_cluster(&mut self, p: ProcId, op: ClusterOp, strategy: &mut dyn Strategy) -> OpResult {
        match op {
            ClusterOp::StartNode(node) => {
                self.cluster.ensure(node);
                if !self.cluster.is_up(node) || !self.cluster.is_known(node) {
                    self.cluster.up[node as usize] = true;
                    self.cluster.known[node as usize] = true;
                    self.ets_names.retain(|(n, _), _| *n != node);
                    self.cluster.global_join(node);
                    self.record(p, EventKind::NodeStarted { node });
                }
                OpResult::Done
            }
            ClusterOp::StopNode(node) => {
                if node != HOME_NODE && self.cluster.is_up(node) {
                    self.cluster.up[node as usize] = false;
                    self.record(p, EventKind::NodeStopped { node });
                    for q in 0..self.procs.len() as ProcId {
                        if self.alive(q) && self.node_of(q) == node {
                            self.die(q, ExitCause::NodeDown, Reason::NoConnection, true);
                        }
                    }
                    self.ets_names.retain(|(n, _), _| *n != node);
                    // A node that is down has no view of the global names.
                    self.cluster.global[node as usize].clear();
                    self.retry_global_locks();
                    self.node_down_for(|_, n| n == node);
                }
                OpResult::Done
            }
            ClusterOp::Partition(index) => {
                let i = index as usize;
                if i < self.cluster.partitions.len() && !self.cluster.partitions[i].active {
                    self.cluster.partitions[i].active = true;
                    let tick = self.add_timer(
                        p,
                        self.cluster.ticktime,
                        TimerKind::Tick { partition: index },
                    );
                    self.cluster.partitions[i].tick = Some(tick);
                    self.record(p, EventKind::Partitioned { partition: index });
                    // What is already in flight across the new cut is cut too.
                    let in_flight = std::mem::take(&mut self.in_flight);
                    for m in in_flight {
                        let msg = self.msgs[m as usize];
                        let to = msg.to.unwrap_or(msg.from);
                        let (nf, nt) = (self.node_of(msg.from), self.node_of(to));
                        match self.cluster.cut(nf, nt) {
                            None => self.in_flight.push(m),
                            Some(PartitionMode::Drop) => {
                                self.msgs[m as usize].state = MsgState::Dropped;
                                self.record(
                                    to,
                                    EventKind::Cut {
                                        msg: m,
                                        from: msg.from,
                                        deferred: false,
                                    },
                                );
                                self.lost_in_cut(m);
                            }
                            Some(PartitionMode::Defer) => {
                                self.cluster.deferred.push(m);
                                self.record(
                                    to,
                                    EventKind::Cut {
                                        msg: m,
                                        from: msg.from,
                                        deferred: true,
                                    },
                                );
                            }
                        }
                    }
                }
                OpResult::Done
            }
            ClusterOp::Heal => {
                for i in 0..self.cluster.partitions.len() {
                    let part = &mut self.cluster.partitions[i];
                    if part.active {
                        part.active = false;
                        part.lost = false;
                        if let Some(t) = part.tick.take() {
                            if self.timers[t as usize].state == TimerState::Pending {
                                self.timers[t as usize].state = TimerState::Cancelled;
                            }
                        }
                    }
                }
                let deferred = std::mem::take(&mut self.cluster.deferred);
                let delivered = deferred.len() as u32;
                self.record(p, EventKind::Healed { delivered });
                for m in deferred {
                    self.arrive(m);
                }
                self.resolve_global_clashes(p, strategy);
                self.retry_global_locks();
                OpResult::Done
            }
            ClusterOp::MonitorNode(node) => {
                self.record(p, EventKind::MonitorNode { node });
                if self.cluster.is_up(node) && !self.cluster.connection_lost(self.node_of(p), node)
                {
                    self.cluster.node_monitors.push((p, node));
                } else {
                    self.signal_via(p, p, MsgKind::NodeDown { node }, true);
                }
                OpResult::Done
            }
            ClusterOp::SetTicktime(ms) => {
                self.cluster.ticktime = ms;
                self.record(p, EventKind::SetTicktime { ms });
                OpResult::Done
            }
            ClusterOp::Nodes => OpResult::NodeList { up_only: false },
            ClusterOp::NodesUp => OpResult::NodeList { up_only: true },
            ClusterOp::NodeOf(q) => OpResult::NodeIs(self.node_of(q)),
            ClusterOp::GlobalRegister { name, proc } => {
                let node = self.node_of(p);
                let ok = self.alive(proc) && self.cluster.global_register(node, name, proc);
                self.record(
                    p,
                    EventKind::GlobalRegister {
                        name,
                        target: proc,
                        ok,
                    },
                );
                OpResult::NameOk(ok)
            }
            ClusterOp::GlobalUnregister(name) => {
                self.cluster.global_unregister(self.node_of(p), name);
                self.record(p, EventKind::GlobalUnregister { name });
                OpResult::Done
            }
            ClusterOp::GlobalWhereis(name) => {
                let found = self.cluster.global_whereis(self.node_of(p), name);
                self.record(p, EventKind::GlobalWhereis { name, found });
                OpResult::Found(found)
            }
            ClusterOp::GlobalNames => OpResult::GlobalList(self.node_of(p)),
            ClusterOp::WhereisOn { name, node } => {
                let found = self.names.get(&(node, name)).copied();
                self.record(p, EventKind::Whereis { name, found });
                OpResult::Found(found)
            }
            ClusterOp::NamesOn(node) => OpResult::NamesOn(node),
        }
    }

    /// After a heal: merges the nodes' views of the global names. A name registered on
    /// both sides of the partition is resolved as OTP's default resolver,
    /// `global:random_exit_name/3`, does: one registration is kept and the other holder is
    /// killed (`exit(Pid, kill)`). OTP keeps the holder on the node whose name sorts first;
    /// here the strategy chooses (a `random` decision, so it is explored and replays).
    fn resolve_global_clashes(&mut self, healer: ProcId, strategy: &mut dyn Strategy) {
        let clashes = self.cluster.merge_global();
        let mut losers = Vec::new();
        for (name, mut holders) in clashes {
            holders.retain(|&h| self.alive(h));
            holders.sort_by_key(|&h| (self.node_of(h), h));
            let kept = match holders.len() {
                0 => continue,
                1 => holders[0],
                n => {
                    let view = self.view();
                    match strategy.random(&view, n as u64) {
                        Ok(i) => {
                            self.decisions.push(RawDecision::Random(i));
                            holders[i as usize]
                        }
                        Err(d) => {
                            self.outcome = Some(Outcome::Diverged(d));
                            return;
                        }
                    }
                }
            };
            self.cluster.global_settle(name, kept);
            for &killed in holders.iter().filter(|&&h| h != kept) {
                self.record(healer, EventKind::GlobalConflict { name, kept, killed });
                losers.push(killed);
            }
        }
        for killed in losers {
            self.die(killed, ExitCause::NameConflict, Reason::Killed, true);
        }
    }

    /// Processes waiting for `global`'s lock try again (a heal, a tick or a stopped node
    /// may have freed it; one still stalled waits again).
    fn retry_global_locks(&mut self) {
        let waiting: Vec<ProcId> = (0..self.procs.len() as ProcId)
            .filter(|&p| {
                let proc = &self.procs[p as usize];
                proc.state == ProcState::Blocked
                    && matches!(
                        proc.pending,
                        PendingOp::Cluster(
                            ClusterOp::GlobalRegister { .. } | ClusterOp::GlobalUnregister(_)
                        )
                    )
            })
            .collect();
        for p in waiting {
            self.set_state(p, ProcState::Ready);
        }
    }

    /// Sends `{:nodedown, node}` to every node monitor `(watcher, node)` that `lost`
    /// selects, and forgets those monitors (each fires once).
    fn node_down_for(&mut self, lost: impl Fn(NodeId, NodeId) -> bool) {
        let monitors = std::mem::take(&mut self.cluster.node_monitors);
        for (watcher, node) in monitors {
            if self.alive(watcher) && lost(self.node_of(watcher), node) {
                self.signal_via(watcher, watcher, MsgKind::NodeDown { node }, true);
            } else if self.alive(watcher) {
                self.cluster.node_monitors.push((watcher, node));
            }
        }
    }

    /// A partition's tick: monitors, links and node monitors across it see the connection
    /// lost.
    fn tick(&mut self, partition: u32) {
        let i = partition as usize;
        if !self.cluster.partitions[i].active {
            return;
        }
        let owner = self.timers[self.cluster.partitions[i].tick.unwrap_or(0) as usize].owner;
        self.cluster.partitions[i].lost = true;
        self.record(owner, EventKind::Tick { partition });
        let nodes: Vec<NodeId> = self.procs.iter().map(|q| q.node).collect();
        self.cluster
            .global_forget_across(i, |holder| nodes[holder as usize]);
        self.retry_global_locks();
        for m in 0..self.monitors.len() {
            let rec = self.monitors[m];
            if rec.active
                && self.alive(rec.owner)
                && self
                    .cluster
                    .partition_cuts(i, self.node_of(rec.owner), self.node_of(rec.target))
            {
                self.signal_via(
                    rec.target,
                    rec.owner,
                    MsgKind::Down {
                        monitor: m as MonitorId,
                        reason: Reason::NoConnection,
                    },
                    true,
                );
            }
        }
        // Each link across the cut once: a pair linked both ways is taken from its lower
        // id; a half link (the other end's exit signal was cut) from the end that holds it.
        let mut pairs = Vec::new();
        for (q, proc) in self.procs.iter().enumerate() {
            let q = q as ProcId;
            for &l in &proc.links {
                let both_ways = self.procs[l as usize].links.contains(&q);
                if (q < l || !both_ways)
                    && self
                        .cluster
                        .partition_cuts(i, proc.node, self.procs[l as usize].node)
                {
                    pairs.push((q, l));
                }
            }
        }
        for (a, b) in pairs {
            self.procs[a as usize].links.retain(|&x| x != b);
            self.procs[b as usize].links.retain(|&x| x != a);
            let lost = MsgKind::Exit {
                reason: Reason::NoConnection,
                link: true,
            };
            for (from, to) in [(b, a), (a, b)] {
                if self.alive(to) {
                    self.signal_via(from, to, lost, true);
                }
            }
        }
        let cluster = self.cluster.clone();
        self.node_down_for(|watcher_node, node| cluster.partition_cuts(i, watcher_node, node));
    }

    fn run(&mut self, p: ProcId, result: OpResult) -> Applied {
        if !self.alive(p) {
            // It died applying its own operation (an exit signal it could not trap): it
            // parks and meets its Kill effect.
            return Applied::Skip;
        }
        if self.outcome.is_some() {
            // Its operation ended the iteration (its exit signal killed the root, say). A
            // failure ends the iteration when it happens (SPEC §1): the caller does not go
            // on with a result, it stays parked until the teardown kills it, so no process
            // is Running once the iteration has ended.
            return Applied::Ended;
        }
        self.set_state(p, ProcState::Running);
        self.running = Some(p);
        debug_assert_eq!(
            self.procs
                .iter()
                .filter(|x| x.state == ProcState::Running)
                .count(),
            1
        );
        Applied::Run(result)
    }

    /// Ends the iteration for the strategy (once). A clean finish with a replayed schedule
    /// not used up becomes a divergence.
    pub fn finish(&mut self, strategy: &mut dyn Strategy) {
        if self.finished {
            return;
        }
        self.finished = true;
        let completed = matches!(self.outcome, Some(Outcome::Pass));
        let view = self.view();
        if let Err(d) = strategy.end_iteration(&view, completed) {
            self.outcome = Some(Outcome::Diverged(d));
        }
    }
}
