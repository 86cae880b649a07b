//! One iteration's scheduler state.
//!
//! Control flow. Every managed process runs only between sync points. At a sync point it
//! calls [`Session::sync`] with the operation it is about to perform; the session records
//! it as the process's *pending* operation and asks the strategy which choice goes next.
//! Taking `Run(p)` applies `p`'s pending operation (a send is numbered and delivered or put
//! in flight, a spawn creates the child, …) and lets `p` run to its next sync point; taking
//! `Deliver(m)` moves an in-flight message into its target's mailbox and asks again. So each
//! step is one decision, and the operation a process announces is performed at the step the
//! strategy picks it — which is what lets a strategy see what each choice will touch.
//!
//! The session never holds BEAM terms: the adapter keeps payloads and pids, keyed by the
//! small ids used here, and performs the [`Effect`]s the session queues (deliveries of
//! in-flight messages, exit signals to parked processes) before it wakes the next process.
//!
//! Invariants (checked with `debug_assert!` and by the property test below): at most one
//! process is `Running`; a `Blocked` process is never offered as a choice; when an
//! iteration ends every process is `Exited`, `Blocked` or `Ready`, never `Running`.

use crate::process::{
    ExitCause, ExitClass, MsgId, PendingOp, ProcId, ProcName, ProcState, Process,
};
use crate::schedule::Decision;
use crate::strategy::{Choice, Divergence, Strategy, View};
use crate::trace::{Event, EventKind, SendFate};
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_steps: 10_000,
            delivery: DeliveryMode::Instant,
            crash: CrashMode::Fail,
        }
    }
}

/// The operation a process announces at a sync point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Send {
        to: Option<ProcId>,
    },
    /// `retry` is true after a match attempt found nothing: the process then waits for a
    /// new message instead of being offered again at once.
    Receive {
        retry: bool,
    },
    Yield,
    Random {
        n: u64,
    },
    Spawn {
        link: bool,
    },
}

/// What applying a pending operation produced; handed to the process that performed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    Started,
    Sent {
        msg: MsgId,
        fate: SendFate,
    },
    /// Go and try to match against the mailbox.
    ReceiveAttempt,
    Yielded,
    Random(u64),
    Spawned {
        child: ProcId,
    },
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
    /// Put in-flight message `msg` into `to`'s real mailbox.
    Deliver { msg: MsgId, to: ProcId },
    /// `proc` was killed by an exit signal through a link from `from`: make the parked BEAM
    /// process exit.
    Kill { proc: ProcId, from: ProcId },
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
    Aborted { running: Option<ProcId> },
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

/// Bookkeeping for one sent message (never its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: ProcId,
    /// `None` for a pid outside the run.
    pub to: Option<ProcId>,
    pub state: MsgState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgState {
    InFlight,
    InMailbox,
    Consumed,
    Dropped,
    /// Sent to a pid outside the run.
    External,
}

/// Counters for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    pub steps: u64,
    pub context_switches: u64,
    pub contested_steps: u64,
}

pub struct Session {
    config: Config,
    procs: Vec<Process>,
    msgs: Vec<Message>,
    /// Messages in flight, in send order.
    in_flight: Vec<MsgId>,
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

/// A decision in session-local ids; turned into names for export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RawDecision {
    Run(ProcId),
    Deliver(MsgId),
    Random(u64),
}

pub const ROOT: ProcId = 0;

impl Session {
    /// Starts an iteration: tells the strategy, creates the root `P` (not yet started).
    pub fn new(config: Config, strategy: &mut dyn Strategy, seed: u64) -> Self {
        strategy.begin_iteration(seed);
        Session {
            config,
            procs: vec![Process::new(ProcName::root(), None)],
            msgs: Vec::new(),
            in_flight: Vec::new(),
            running: None,
            last_run: None,
            step: 0,
            decisions: Vec::new(),
            events: Vec::new(),
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

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics
    }

    pub fn take_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// The decisions made so far, by symbolic name.
    pub fn schedule(&self) -> Vec<Decision> {
        self.decisions
            .iter()
            .map(|d| match *d {
                RawDecision::Run(p) => Decision::Run(self.procs[p as usize].name.clone()),
                RawDecision::Deliver(m) => {
                    let msg = &self.msgs[m as usize];
                    Decision::Deliver {
                        from: self.procs[msg.from as usize].name.clone(),
                        to: self.procs[msg.to.unwrap_or(ROOT) as usize].name.clone(),
                    }
                }
                RawDecision::Random(v) => Decision::Random(v),
            })
            .collect()
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

    fn record(&mut self, proc: ProcId, kind: EventKind) {
        self.events.push(Event {
            step: self.step,
            proc,
            kind,
        });
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
        if let Op::Send { to: Some(to) } = op {
            if to as usize >= self.procs.len() {
                return Err(EngineError::UnknownProcess(to));
            }
        }
        if let Op::Random { n: 0 } = op {
            return Err(EngineError::BadRandomBound);
        }
        self.running = None;
        let proc = &mut self.procs[caller as usize];
        match op {
            Op::Send { to } => proc.pending = PendingOp::Send { to },
            Op::Yield => proc.pending = PendingOp::Yield,
            Op::Random { n } => proc.pending = PendingOp::Random { n },
            Op::Spawn { link } => proc.pending = PendingOp::Spawn { link },
            Op::Receive { retry } => {
                proc.pending = PendingOp::Receive;
                if retry {
                    proc.fresh = false;
                } else {
                    proc.fresh = proc.mailbox > 0;
                }
            }
        }
        if proc.pending == PendingOp::Receive && !proc.fresh {
            proc.state = ProcState::Blocked;
            self.record(caller, EventKind::Block);
        } else {
            proc.state = ProcState::Ready;
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
        self.record(caller, EventKind::Receive { msg, from });
        Ok(())
    }

    /// The running process's own code ended.
    pub fn exit(
        &mut self,
        caller: ProcId,
        class: ExitClass,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        if self.is_over() {
            return Ok(Next::Ended);
        }
        self.check_running(caller)?;
        self.running = None;
        self.terminate(caller, ExitCause::Own(class));
        Ok(self.decide(None, strategy))
    }

    /// A managed process died without telling us (killed from outside the run).
    pub fn external_exit(&mut self, proc: ProcId, strategy: &mut dyn Strategy) -> Next {
        let Some(p) = self.procs.get(proc as usize) else {
            return Next::Ended;
        };
        if self.is_over() || !p.is_alive() {
            return Next::Ended;
        }
        let running = self.running;
        self.terminate(proc, ExitCause::External);
        // The running process dies too when it is `proc` or linked to it; then nobody is
        // left to make the next decision but us.
        if running.is_some_and(|r| !self.procs[r as usize].is_alive()) {
            self.running = None;
            self.decide(None, strategy)
        } else {
            // Someone else is running and will make the next decision.
            Next::Ended
        }
    }

    /// Marks `proc` exited and propagates exit signals through its links.
    fn terminate(&mut self, proc: ProcId, cause: ExitCause) {
        let mut queue = vec![(proc, cause)];
        while let Some((p, cause)) = queue.pop() {
            let entry = &mut self.procs[p as usize];
            if !entry.is_alive() {
                continue;
            }
            entry.state = ProcState::Exited;
            entry.exit = Some(cause);
            let links = std::mem::take(&mut entry.links);
            self.record(p, EventKind::Exit { cause });
            if p == ROOT {
                self.root_exited = true;
            }
            let abnormal = !matches!(cause, ExitCause::Own(ExitClass::Normal));
            if self.outcome.is_none() {
                match cause {
                    ExitCause::Own(ExitClass::Abnormal) | ExitCause::Linked { .. } if p == ROOT => {
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
                let other = &mut self.procs[l as usize];
                other.links.retain(|&x| x != p);
                if abnormal && other.is_alive() {
                    // Also when `other` is the running process (its partner was killed from
                    // outside): it is executing code the engine cannot stop.
                    self.effects.push(Effect::Kill { proc: l, from: p });
                    queue.push((l, ExitCause::Linked { from: p }));
                }
            }
        }
    }

    fn collect_choices(&mut self) {
        self.choices.clear();
        for (i, p) in self.procs.iter().enumerate() {
            if p.state == ProcState::Ready {
                self.choices.push(Choice::Run(i as ProcId));
            }
        }
        for (i, &m) in self.in_flight.iter().enumerate() {
            let msg = &self.msgs[m as usize];
            let is_head = !self.in_flight[..i].iter().any(|&earlier| {
                let e = &self.msgs[earlier as usize];
                e.from == msg.from && e.to == msg.to
            });
            if is_head {
                self.choices.push(Choice::Deliver(m));
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
                    self.deliver_in_flight(m);
                }
                Choice::Run(p) => {
                    debug_assert_eq!(self.procs[p as usize].state, ProcState::Ready);
                    self.decisions.push(RawDecision::Run(p));
                    if self.last_run.is_some_and(|last| last != p) {
                        self.metrics.context_switches += 1;
                    }
                    self.last_run = Some(p);
                    match self.apply(p, strategy) {
                        Some(result) if Some(p) == caller => return Next::Continue(result),
                        Some(result) => return Next::Wake(p, result),
                        None => return Next::Ended,
                    }
                }
            }
        }
    }

    fn deliver_in_flight(&mut self, m: MsgId) {
        self.in_flight.retain(|&x| x != m);
        let msg = self.msgs[m as usize];
        let to = msg.to.expect("in-flight messages have a managed target");
        if self.procs[to as usize].is_alive() {
            self.msgs[m as usize].state = MsgState::InMailbox;
            self.add_to_mailbox(to);
            self.effects.push(Effect::Deliver { msg: m, to });
            self.record(
                to,
                EventKind::Deliver {
                    msg: m,
                    from: msg.from,
                },
            );
        } else {
            self.msgs[m as usize].state = MsgState::Dropped;
            self.record(
                to,
                EventKind::Drop {
                    msg: m,
                    from: msg.from,
                },
            );
        }
    }

    fn add_to_mailbox(&mut self, to: ProcId) {
        let target = &mut self.procs[to as usize];
        target.mailbox += 1;
        target.fresh = true;
        if target.state == ProcState::Blocked {
            target.state = ProcState::Ready;
        }
    }

    /// Performs `p`'s pending operation and makes it the running process. `None` if the
    /// iteration ended while doing so (a replayed random value diverged).
    fn apply(&mut self, p: ProcId, strategy: &mut dyn Strategy) -> Option<OpResult> {
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
            PendingOp::Receive => OpResult::ReceiveAttempt,
            PendingOp::Random { n } => {
                let view = View {
                    step: self.step,
                    procs: &self.procs,
                    msgs: &self.msgs,
                };
                match strategy.random(&view, n) {
                    Ok(value) => {
                        self.decisions.push(RawDecision::Random(value));
                        self.record(p, EventKind::Random { n, value });
                        OpResult::Random(value)
                    }
                    Err(d) => {
                        self.outcome = Some(Outcome::Diverged(d));
                        return None;
                    }
                }
            }
            PendingOp::Spawn { link } => {
                let child = self.procs.len() as ProcId;
                let parent = &mut self.procs[p as usize];
                parent.children += 1;
                let name = parent.name.child(parent.children);
                let mut proc = Process::new(name, Some(p));
                if link {
                    proc.links.push(p);
                    self.procs[p as usize].links.push(child);
                }
                self.procs.push(proc);
                self.record(p, EventKind::Spawn { child, link });
                OpResult::Spawned { child }
            }
            PendingOp::Send { to } => {
                let msg = self.msgs.len() as MsgId;
                let (fate, state) = match to {
                    None => (SendFate::Delivered, MsgState::External),
                    Some(t) if !self.procs[t as usize].is_alive() => {
                        (SendFate::Dropped, MsgState::Dropped)
                    }
                    Some(t) => match self.config.delivery {
                        DeliveryMode::Instant => {
                            self.add_to_mailbox(t);
                            (SendFate::Delivered, MsgState::InMailbox)
                        }
                        DeliveryMode::Delayed => {
                            self.in_flight.push(msg);
                            (SendFate::InFlight, MsgState::InFlight)
                        }
                    },
                };
                self.msgs.push(Message { from: p, to, state });
                self.record(p, EventKind::Send { to, msg, fate });
                OpResult::Sent { msg, fate }
            }
        };
        let proc = &mut self.procs[p as usize];
        proc.state = ProcState::Running;
        self.running = Some(p);
        debug_assert_eq!(
            self.procs
                .iter()
                .filter(|x| x.state == ProcState::Running)
                .count(),
            1
        );
        Some(result)
    }

    /// Stops the iteration from outside; later calls from its processes see it is over.
    pub fn abort(&mut self) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Aborted {
                running: self.running,
            });
        }
    }

    /// A fingerprint of the decisions made, for counting distinct schedules.
    pub fn schedule_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.decisions.hash(&mut h);
        h.finish()
    }

    /// Ends the iteration for the strategy (once). A clean finish with a replayed schedule
    /// not used up becomes a divergence.
    pub fn finish(&mut self, strategy: &mut dyn Strategy) {
        if self.finished {
            return;
        }
        self.finished = true;
        let completed = matches!(self.outcome, Some(Outcome::Pass));
        let view = View {
            step: self.step,
            procs: &self.procs,
            msgs: &self.msgs,
        };
        if let Err(d) = strategy.end_iteration(&view, completed) {
            self.outcome = Some(Outcome::Diverged(d));
        }
    }
}
