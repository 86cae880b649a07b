//! A tiny interpreter that plays the adapter's part, so the engine can be driven without a
//! BEAM: every simulated process is a script of [`Action`]s, payloads live here keyed by
//! the engine's message id, and a mailbox is the list of delivered, unconsumed messages.
//!
//! Control flow of [`run`]: `start` names the first process to run; the driver interprets
//! that process's result (records a payload, a child, tries a receive match…), then makes
//! the engine call for its next action. Each call answers who runs next (`Continue`,
//! `Wake`) or that the iteration is over. After every call the driver applies the queued
//! effects and checks the session's invariants, so every test that runs a program also
//! checks them.
//!
//! Each integration test file compiles this module separately and uses a different part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use lockstep_core::session::Metrics;
use lockstep_core::{
    Choice, Config, Decision, Divergence, Effect, Event, EventKind, ExitCause, ExitClass, MsgId,
    Next, Op, OpResult, Outcome, ProcId, ProcName, ProcState, SendFate, Session, Strategy, View,
};
use std::collections::HashMap;

/// Who a send goes to, relative to the sender (the way a process names another through
/// the pids it has: its parent's, its children's, its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Parent,
    /// The sender's n-th child (1-based, spawn order).
    Child(u32),
    Myself,
    /// A pid outside the run.
    Outside,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Any,
    Payload(u32),
}

impl Match {
    fn accepts(self, payload: u32) -> bool {
        match self {
            Match::Any => true,
            Match::Payload(p) => p == payload,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Spawn a process running `Program::scripts[script]`.
    Spawn {
        script: usize,
        link: bool,
    },
    /// A reference that does not resolve (the root's parent, a child not spawned yet) is a
    /// pid outside the run.
    Send {
        to: Target,
        payload: u32,
    },
    /// Wait for the first message in the mailbox that matches (a selective receive).
    Receive(Match),
    /// `receive … after 0 -> yield()` in a loop until a matching message has arrived. Never
    /// blocks, so an unfair scheduler can starve the process it waits for.
    SpinReceive(Match),
    /// `receive … after ms -> :ok end`: a selective receive that gives up after `ms`
    /// virtual milliseconds.
    ReceiveAfter(Match, u64),
    /// `Lockstep.sleep(ms)`.
    Sleep(u64),
    Yield,
    Random(u64),
    /// Exit abnormally.
    Crash,
}

/// `scripts[0]` is the root's. Running off the end of a script is a normal exit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub scripts: Vec<Vec<Action>>,
}

impl Program {
    pub fn new(scripts: Vec<Vec<Action>>) -> Self {
        assert!(!scripts.is_empty(), "a program needs a root script");
        Program { scripts }
    }
}

/// Everything one iteration produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub schedule: Vec<Decision>,
    pub events: Vec<Event>,
    pub metrics: Metrics,
    /// Per process (by id): the payloads it consumed, in order.
    pub received: Vec<Vec<u32>>,
    /// Per process (by id): the values `Random` returned to it.
    pub randoms: Vec<Vec<u64>>,
    pub names: Vec<ProcName>,
    pub final_states: Vec<ProcState>,
}

struct Proc {
    script: usize,
    /// Index of the action being performed (or about to be announced).
    pc: usize,
    children: Vec<ProcId>,
    parent: Option<ProcId>,
    /// Delivered, unconsumed messages: (id, payload), arrival order.
    mailbox: Vec<(MsgId, u32)>,
}

/// A receive without `after`: it waits as long as it takes.
const FIRST_RECEIVE: Op = Op::Receive {
    retry: false,
    timeout: None,
};

/// The next engine call a process makes.
enum Call {
    Sync(Op),
    Exit(ExitClass),
}

struct Driver<'p> {
    program: &'p Program,
    procs: Vec<Proc>,
    /// Payload of each user message (signals take message ids too).
    payloads: HashMap<MsgId, u32>,
    received: Vec<Vec<u32>>,
    randoms: Vec<Vec<u64>>,
}

impl<'p> Driver<'p> {
    fn new(program: &'p Program) -> Self {
        let mut d = Driver {
            program,
            procs: Vec::new(),
            payloads: HashMap::new(),
            received: Vec::new(),
            randoms: Vec::new(),
        };
        d.add_proc(0, None);
        d
    }

    fn add_proc(&mut self, script: usize, parent: Option<ProcId>) {
        self.procs.push(Proc {
            script,
            pc: 0,
            children: Vec::new(),
            parent,
            mailbox: Vec::new(),
        });
        self.received.push(Vec::new());
        self.randoms.push(Vec::new());
    }

    fn action(&self, p: ProcId) -> Option<Action> {
        let proc = &self.procs[p as usize];
        self.program.scripts[proc.script].get(proc.pc).copied()
    }

    fn resolve(&self, p: ProcId, target: Target) -> Option<ProcId> {
        let proc = &self.procs[p as usize];
        match target {
            Target::Parent => proc.parent,
            Target::Child(n) => proc.children.get((n as usize).checked_sub(1)?).copied(),
            Target::Myself => Some(p),
            Target::Outside => None,
        }
    }

    fn find_match(&self, p: ProcId, m: Match) -> Option<usize> {
        self.procs[p as usize]
            .mailbox
            .iter()
            .position(|&(_, payload)| m.accepts(payload))
    }

    fn deliver(&mut self, msg: MsgId, to: ProcId) {
        let payload = self.payloads[&msg];
        self.procs[to as usize].mailbox.push((msg, payload));
    }

    fn record_payload(&mut self, msg: MsgId, payload: u32) {
        let earlier = self.payloads.insert(msg, payload);
        assert_eq!(earlier, None, "message {msg} sent twice");
    }

    fn apply_effects(&mut self, session: &mut Session) {
        for e in session.take_effects() {
            match e {
                Effect::Deliver { msg, to } => self.deliver(msg, to),
                Effect::Kill { .. } => {}
                // Scripts neither trap exits, monitor nor use `send_after`.
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }

    /// Records what the engine did when it applied `p`'s pending action (a child created, a
    /// message sent), before anything is checked against the engine's tables.
    fn absorb(&mut self, p: ProcId, result: OpResult) {
        match (self.action(p), result) {
            (Some(Action::Spawn { script, .. }), OpResult::Spawned { child }) => {
                assert_eq!(child as usize, self.procs.len(), "process ids are dense");
                self.add_proc(script, Some(p));
                self.procs[p as usize].children.push(child);
            }
            (Some(Action::Send { to, payload }), OpResult::Sent { msg, fate }) => {
                self.record_payload(msg, payload);
                if let (SendFate::Delivered, Some(target)) = (fate, self.resolve(p, to)) {
                    self.deliver(msg, target);
                }
            }
            _ => {}
        }
    }

    /// `p` was given `result` for the action at its `pc` (already absorbed); returns its
    /// next engine call.
    fn resume(&mut self, session: &mut Session, p: ProcId, result: OpResult) -> Call {
        let action = self.action(p);
        match (action, result) {
            (_, OpResult::Started) => {}
            (Some(Action::Spawn { .. }), OpResult::Spawned { .. })
            | (Some(Action::Send { .. }), OpResult::Sent { .. }) => {
                self.procs[p as usize].pc += 1;
            }
            (
                Some(
                    Action::Receive(m) | Action::SpinReceive(m) | Action::ReceiveAfter(m, _),
                ),
                OpResult::ReceiveAttempt { last },
            ) => {
                let Some(i) = self.find_match(p, m) else {
                    match action {
                        Some(Action::ReceiveAfter(..)) if last => {
                            // Timed out: the `after` clause runs.
                            self.procs[p as usize].pc += 1;
                            return self.next_call(p);
                        }
                        // `after 0` expired at once: yield and look again.
                        Some(Action::SpinReceive(_)) => {
                            assert!(last, "`after 0` has always expired");
                            return Call::Sync(Op::Yield);
                        }
                        _ => {
                            assert!(!last, "only a receive with `after` times out");
                            return Call::Sync(Op::Receive {
                                retry: true,
                                timeout: None,
                            });
                        }
                    }
                };
                let (msg, payload) = self.procs[p as usize].mailbox.remove(i);
                session
                    .consumed(p, msg)
                    .expect("consumed a delivered message");
                self.received[p as usize].push(payload);
                self.procs[p as usize].pc += 1;
            }
            (Some(Action::SpinReceive(_)), OpResult::Yielded) => {}
            (Some(Action::Yield), OpResult::Yielded)
            // `sleep(0)` is a yield.
            | (Some(Action::Sleep(_)), OpResult::Done | OpResult::Yielded) => {
                self.procs[p as usize].pc += 1;
            }
            (Some(Action::Random(n)), OpResult::Random(v)) => {
                assert!(v < n, "random({n}) returned {v}");
                self.randoms[p as usize].push(v);
                self.procs[p as usize].pc += 1;
            }
            (action, result) => panic!("process {p} got {result:?} while performing {action:?}"),
        }
        self.next_call(p)
    }

    fn next_call(&self, p: ProcId) -> Call {
        match self.action(p) {
            None => Call::Exit(ExitClass::Normal),
            Some(Action::Crash) => Call::Exit(ExitClass::Abnormal),
            Some(Action::Spawn { link, .. }) => Call::Sync(Op::Spawn { link }),
            Some(Action::Send { to, .. }) => Call::Sync(Op::Send {
                to: self
                    .resolve(p, to)
                    .map_or(lockstep_core::Target::External, lockstep_core::Target::Proc),
            }),
            Some(Action::Receive(_)) => Call::Sync(FIRST_RECEIVE),
            Some(Action::ReceiveAfter(_, ms)) => Call::Sync(Op::Receive {
                retry: false,
                timeout: Some(ms),
            }),
            Some(Action::Sleep(ms)) => Call::Sync(Op::Sleep { ms }),
            Some(Action::SpinReceive(_)) => Call::Sync(Op::Receive {
                retry: false,
                timeout: Some(0),
            }),
            Some(Action::Yield) => Call::Sync(Op::Yield),
            Some(Action::Random(n)) => Call::Sync(Op::Random { n }),
        }
    }
}

/// Wraps the strategy under test and checks, at every pick, what the session offers it:
/// nothing is running while a decision is made, and only ready processes are offered.
struct Checked<'s> {
    inner: &'s mut dyn Strategy,
}

impl Checked<'_> {
    fn check_offer(view: &View<'_>, choices: &[Choice]) {
        assert!(
            !choices.is_empty(),
            "step {}: no choices offered",
            view.step
        );
        let running: Vec<usize> = (0..view.procs().len())
            .filter(|&i| view.procs()[i].state == ProcState::Running)
            .collect();
        assert!(
            running.is_empty(),
            "step {}: {running:?} running during a decision",
            view.step
        );
        for (i, &c) in choices.iter().enumerate() {
            assert!(!choices[..i].contains(&c), "{c:?} offered twice");
            if let Choice::Run(p) = c {
                assert_eq!(
                    view.procs()[p as usize].state,
                    ProcState::Ready,
                    "step {}: offered {c:?}",
                    view.step
                );
            }
        }
    }
}

impl Strategy for Checked<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn begin_iteration(&mut self, seed: u64) {
        self.inner.begin_iteration(seed);
    }

    fn pick(&mut self, view: &View<'_>, choices: &[Choice]) -> Result<usize, Divergence> {
        Self::check_offer(view, choices);
        let picked = self.inner.pick(view, choices)?;
        assert!(
            picked < choices.len(),
            "picked {picked} of {}",
            choices.len()
        );
        Ok(picked)
    }

    fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        self.inner.random(view, n)
    }

    fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
        self.inner.end_iteration(view, completed)
    }
}

fn states(session: &Session) -> Vec<ProcState> {
    session.procs().iter().map(|p| p.state).collect()
}

/// Checks made after every engine call.
fn check_after_call(
    session: &Session,
    driver: &Driver<'_>,
    before: &[ProcState],
    events: &[Event],
    next: Next,
) {
    let now = states(session);
    let running: Vec<usize> = (0..now.len())
        .filter(|&i| now[i] == ProcState::Running)
        .collect();
    assert!(running.len() <= 1, "several processes running: {running:?}");
    match next {
        Next::Continue(_) | Next::Wake(..) => {
            let woken = match next {
                Next::Wake(p, _) => p,
                _ => session.running().expect("a continuing process runs"),
            };
            assert_eq!(session.running(), Some(woken));
            assert_eq!(running, vec![woken as usize]);
            if let Next::Wake(p, _) = next {
                // A process blocked before the call may only run if, during the call, a
                // message reached it or its timer fired (decided just before).
                if before.get(p as usize) == Some(&ProcState::Blocked) {
                    assert!(
                        events.iter().any(|e| e.proc == p
                            && matches!(
                                e.kind,
                                EventKind::Deliver { .. } | EventKind::TimerFired { .. }
                            )),
                        "woke {p}, which was blocked and nothing reached it: {events:?}"
                    );
                }
            }
        }
        Next::Ended => {
            assert!(session.is_over(), "Ended but no outcome");
            assert!(running.is_empty(), "{running:?} still running at the end");
        }
    }
    for (i, proc) in session.procs().iter().enumerate() {
        if proc.is_alive() {
            assert_eq!(
                proc.mailbox as usize,
                driver.procs[i].mailbox.len(),
                "engine and driver disagree on the mailbox of {i}"
            );
        }
    }
}

/// Checks on the final state of an iteration.
pub fn check_final(session: &Session) {
    let outcome = session.outcome().expect("the iteration ended");
    let procs = session.procs();
    for (i, p) in procs.iter().enumerate() {
        match p.state {
            ProcState::Exited | ProcState::Blocked => {}
            ProcState::Ready => assert!(
                !matches!(outcome, Outcome::Pass | Outcome::Deadlock { .. }),
                "process {i} still ready after {outcome:?}"
            ),
            ProcState::Running => panic!("process {i} still running after {outcome:?}"),
        }
    }
    // Messages between one sender and one receiver arrive in the order they were sent.
    let mut last_arrival = HashMap::new();
    for e in session.events() {
        if let EventKind::Deliver { msg, from } | EventKind::Drop { msg, from } = e.kind {
            if let Some(earlier) = last_arrival.insert((from, e.proc), msg) {
                assert!(
                    earlier < msg,
                    "{from}->{}: {msg} arrived after {earlier}",
                    e.proc
                );
            }
        }
    }
    let root = &procs[0];
    match outcome {
        Outcome::Pass => assert_eq!(
            root.exit,
            Some(ExitCause::Own(ExitClass::Normal)),
            "pass without the root returning"
        ),
        Outcome::Deadlock { blocked } => {
            let actually: Vec<ProcId> = (0..procs.len() as ProcId)
                .filter(|&p| procs[p as usize].state == ProcState::Blocked)
                .collect();
            assert_eq!(
                blocked, &actually,
                "deadlock must list the blocked processes"
            );
            assert!(blocked.contains(&0), "a deadlock blocks the root");
        }
        Outcome::Exception { proc } => {
            assert_eq!(*proc, 0);
            assert!(matches!(
                root.exit,
                Some(ExitCause::Own(ExitClass::Abnormal) | ExitCause::Signal { .. })
            ));
        }
        Outcome::Crash { proc } => {
            assert_ne!(*proc, 0);
            assert_eq!(
                procs[*proc as usize].exit,
                Some(ExitCause::Own(ExitClass::Abnormal))
            );
        }
        Outcome::MaxSteps => assert_eq!(session.step(), session.config().max_steps),
        Outcome::Diverged(_) => {}
        Outcome::Aborted { .. } => panic!("the driver never aborts a run"),
    }
}

/// Runs one iteration of `program` to its end and returns what it produced. Panics if the
/// session breaks one of its invariants along the way.
pub fn run(program: &Program, config: Config, strategy: &mut dyn Strategy, seed: u64) -> RunResult {
    let mut strategy = Checked { inner: strategy };
    let mut session = Session::new(config, &mut strategy, seed);
    let mut driver = Driver::new(program);
    let mut before = states(&session);
    let mut events_before = 0;
    let mut next = session.start(&mut strategy);
    // Every call but `consumed` is a step or ends a process; `consumed` needs a message.
    let mut budget = 4 * config.max_steps + 1_000;
    loop {
        // Deliveries decided during the call come before the operation it applied.
        driver.apply_effects(&mut session);
        let woken = match next {
            Next::Ended => None,
            Next::Continue(result) => Some((session.running().expect("caller runs"), result)),
            Next::Wake(p, result) => Some((p, result)),
        };
        if let Some((p, result)) = woken {
            driver.absorb(p, result);
        }
        let events = &session.events()[events_before..];
        check_after_call(&session, &driver, &before, events, next);
        let Some((p, result)) = woken else { break };
        budget = budget
            .checked_sub(1)
            .expect("the iteration does not terminate");
        let call = driver.resume(&mut session, p, result);
        before = states(&session);
        events_before = session.events().len();
        next = match call {
            Call::Sync(op) => session.sync(p, op, &mut strategy),
            Call::Exit(class) => session.exit(p, class, &mut strategy),
        }
        .expect("the driver only calls for the running process");
    }
    session.finish(&mut strategy);
    check_final(&session);
    RunResult {
        outcome: session.outcome().cloned().unwrap(),
        schedule: session.schedule(),
        events: session.events().to_vec(),
        metrics: session.metrics(),
        received: driver.received,
        randoms: driver.randoms,
        names: session.procs().iter().map(|p| p.name.clone()).collect(),
        final_states: states(&session),
    }
}

/// Runs `iterations` iterations (seeds derived from `run_seed` as a real run derives
/// them) with one strategy instance, and counts those for which `bug` holds.
pub fn count_bugs(
    program: &Program,
    config: Config,
    strategy: &mut dyn Strategy,
    run_seed: u64,
    iterations: u64,
    bug: impl Fn(&RunResult) -> bool,
) -> u64 {
    (1..=iterations)
        .filter(|&i| {
            let seed = lockstep_core::iteration_seed(run_seed, i);
            bug(&run(program, config, strategy, seed))
        })
        .count() as u64
}

/// The strategies under test, as data (so proptest can generate them and a test can build
/// a fresh instance to compare runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyKind {
    Random,
    Pct(u32),
    Pos,
    FairPct { depth: u32, switch_after: u64 },
    IdPct { d_min: u32, d_max: u32 },
}

impl StrategyKind {
    pub fn build(self) -> Box<dyn Strategy> {
        use lockstep_core::strategy::{FairPct, IdPct, Pct, Pos, RandomWalk};
        match self {
            StrategyKind::Random => Box::new(RandomWalk::new()),
            StrategyKind::Pct(depth) => Box::new(Pct::new(depth)),
            StrategyKind::Pos => Box::new(Pos::new()),
            StrategyKind::FairPct {
                depth,
                switch_after,
            } => Box::new(FairPct::new(depth, switch_after)),
            StrategyKind::IdPct { d_min, d_max } => Box::new(IdPct::new(d_min, d_max)),
        }
    }

    /// One of each, with typical parameters.
    pub fn all() -> [StrategyKind; 5] {
        [
            StrategyKind::Random,
            StrategyKind::Pct(3),
            StrategyKind::Pos,
            StrategyKind::FairPct {
                depth: 3,
                switch_after: 10,
            },
            StrategyKind::IdPct { d_min: 2, d_max: 6 },
        ]
    }
}

/// `Send { to: Parent, payload }`.
pub fn send_parent(payload: u32) -> Action {
    Action::Send {
        to: Target::Parent,
        payload,
    }
}

/// An unlinked spawn of `scripts[script]`.
pub fn spawn(script: usize) -> Action {
    Action::Spawn {
        script,
        link: false,
    }
}

/// `n` receives of any message.
pub fn receive_any(n: usize) -> Vec<Action> {
    vec![Action::Receive(Match::Any); n]
}
