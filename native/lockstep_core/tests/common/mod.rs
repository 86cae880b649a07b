//! A tiny interpreter that plays the adapter's part, so the engine can be driven without a
//! BEAM: every simulated process is a script of [`Action`]s, payloads live here keyed by
//! the engine's message id, and a mailbox is the list of delivered, unconsumed messages
//! (user payloads, and the `{:EXIT, …}`, `{:DOWN, …}` and `{:nodedown, …}` messages that
//! signals become).
//!
//! Control flow of [`run`]: `start` names the first process to run; the driver interprets
//! that process's result (records a payload, a child, a monitor or timer handle, tries a
//! receive match…), then makes the engine call for its next action. Each call answers who
//! runs next (`Continue`, `Wake`) or that the iteration is over. After every call the
//! driver applies the queued effects (deliveries into its mailboxes, kills of parked
//! processes) and checks the session's invariants, so every test that runs a program also
//! checks them.
//!
//! The driver does what `Lockstep.Runtime` does on the Elixir side: a result that raises in
//! Elixir (`link/1` answering `noproc`, a send to an unregistered name, `register/2` or
//! `unregister/1` answering `false`) ends the process abnormally; `demonitor(ref, [:flush])`
//! consumes the `:DOWN`s of that monitor still in the mailbox; `Lockstep.ETS` makes a
//! shared-state sync point, then calls the per-node table-name functions. Everything a
//! process was handed is logged in [`RunResult::seen`], one entry per completed action, so
//! `seen[p][i]` is what action `i` of `p`'s script returned.
//!
//! Each integration test file compiles this module separately and uses a different part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use lockstep_core::strategy::{IterationMetrics, Metered};
use lockstep_core::{
    Alias, BlockedAtEnd, Choice, ClusterOp, Config, CrashMode, Decision, DeliveryMode, Divergence,
    Effect, Event, EventKind, ExitCause, ExitClass, MonitorId, MsgId, NameId, Next, NodeId, Op,
    OpResult, Outcome, PartitionMode, ProcId, ProcName, ProcState, Reason, SendFate, Session,
    Strategy, TimerId, View,
};
use lockstep_core::{ChoiceSet, MsgKind};
use std::collections::HashMap;

/// Who an action is about, relative to the process performing it (the way a process names
/// another through the pids it has: its parent's, its children's, its own, or one it was
/// told about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Parent,
    /// The sender's n-th child (1-based, spawn order).
    Child(u32),
    Myself,
    /// A pid outside the run.
    Outside,
    /// A process by its spawn-tree path (`&[1, 2]` is `P.1.2`).
    Path(&'static [u32]),
}

/// Where a send goes: a pid, or one of the names and handles the engine resolves itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Proc(Target),
    /// A name registered on the sender's node.
    Name(NameId),
    /// `{name, node}`.
    NameAt(NameId, NodeId),
    /// A name in the global registry.
    Global(u32),
    /// Alias `n` of a process.
    Alias(Target, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Any,
    Payload(u32),
    /// Any `{:EXIT, pid, reason}`.
    Exit,
    /// Any `{:DOWN, ref, :process, pid, reason}`.
    Down,
    /// Any `{:nodedown, node}`.
    NodeDown,
}

/// The payload the driver gives a `cancel_timer` notice (`{:cancel_timer, ref, result}`
/// in the adapter).
pub const NOTICE: u32 = 999_999;

/// A message in a mailbox, as the process sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    User(u32),
    Exit {
        from: ProcId,
        reason: Reason,
    },
    Down {
        monitor: MonitorId,
        from: ProcId,
        reason: Reason,
    },
    NodeDown(NodeId),
}

impl Match {
    fn accepts(self, msg: Msg) -> bool {
        match (self, msg) {
            (Match::Any, _) => true,
            (Match::Payload(p), Msg::User(q)) => p == q,
            (Match::Exit, Msg::Exit { .. })
            | (Match::Down, Msg::Down { .. })
            | (Match::NodeDown, Msg::NodeDown(_)) => true,
            _ => false,
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
    /// `exit(:shutdown)`: a normal end (not a crash) whose reason is not `:normal`, so it
    /// kills linked processes that do not trap exits.
    Shutdown,

    // Below, an action about a process whose target does not resolve is about the
    // performer itself.
    /// `Lockstep.spawn(fun, node: node)` (or `spawn_link` with `link`).
    SpawnOn {
        script: usize,
        link: bool,
        node: NodeId,
    },
    SendTo {
        dest: Dest,
        payload: u32,
    },
    Link(Target),
    Unlink(Target),
    Monitor(Target),
    /// `spawn_monitor` (`spawn_opt` with `:monitor`, and `:link` with `link`): the child
    /// is monitored in the same step.
    SpawnMonitor {
        script: usize,
        link: bool,
    },
    /// `monitor(:process, name)` (`node: None`) or `{name, node}`.
    MonitorName {
        name: NameId,
        node: Option<NodeId>,
    },
    /// Activates alias `id` with `reply` and tied to the performer's `nth` monitor
    /// (1-based; `None`: to none). Not a sync point.
    AliasWith {
        id: u32,
        reply: bool,
        monitor: Option<u32>,
    },
    /// `demonitor` of the performer's `nth` monitor (1-based; one it never made is a ref
    /// the run never handed out), with or without `[:flush]`.
    Demonitor {
        nth: u32,
        flush: bool,
    },
    TrapExit(bool),
    /// `exit(pid, reason)`.
    Exit {
        to: Target,
        reason: Reason,
    },
    Alive(Target),
    Register {
        name: NameId,
        who: Target,
    },
    Unregister(NameId),
    Whereis(NameId),
    Registered,
    Now,
    SendAfter {
        dest: Dest,
        payload: u32,
        ms: u64,
    },
    /// Cancels the performer's `nth` timer (1-based, `send_after` order; one it never
    /// started is a ref the run never handed out).
    CancelTimer(u32),
    /// `cancel_timer(ref, async: true, info: true)` of the performer's `nth` timer: the
    /// result arrives as a message to itself, with payload [`NOTICE`].
    CancelTimerNotify(u32),
    /// `read_timer(ref)` of the performer's `nth` timer.
    ReadTimer(u32),
    /// `read_timer(ref, async: true)`: the result arrives as a message with payload
    /// [`NOTICE`].
    ReadTimerNotify(u32),
    /// A shared-state operation on `object`.
    Nif(Option<u64>),
    /// A shared-state operation that says what it touches (as `Lockstep.ETS` does): key
    /// `key` of table `table` (`None`: the whole table), read or written. The driver models
    /// the table: a write stores a value unique to the writer and the action, a whole-table
    /// write clears the table; a read hands back what it finds (`Seen::Shared`).
    Shared {
        table: u32,
        key: Option<u32>,
        write: bool,
    },
    /// Activates alias `n` (not a sync point).
    Alias(u32),
    /// Deactivates alias `n` (not a sync point).
    Unalias(u32),
    /// `:ets.new(name, [:named_table])`: a sync point, then the name is claimed on the
    /// performer's node (`Seen::EtsNamed`).
    EtsNew(NameId),
    /// Looks a table name up on the performer's node (`Seen::EtsFound`).
    EtsWhereis(NameId),
    /// Deletes a named table on the performer's node (`Seen::EtsDeleted`).
    EtsDelete(NameId),
    /// Lists the named tables of the performer's node (`Seen::EtsAll`): `:ets.all/0`.
    EtsAll,
    StartNode(NodeId),
    StopNode(NodeId),
    Partition {
        a: &'static [NodeId],
        b: &'static [NodeId],
        mode: PartitionMode,
    },
    Heal,
    MonitorNode(NodeId),
    SetTicktime(u64),
    Nodes,
    NodesUp,
    /// `nodes()` from the performer's node (`Seen::Nodes`).
    Visible,
    NodeOf(Target),
    GlobalRegister {
        name: u32,
        who: Target,
    },
    GlobalUnregister(u32),
    GlobalWhereis(u32),
    GlobalNames,
    WhereisOn {
        name: NameId,
        node: NodeId,
    },
    NamesOn(NodeId),
}

/// What a completed action handed its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The operation's result, as the engine returned it.
    Result(OpResult),
    /// The receive took this message.
    Got(Msg),
    /// The receive's `after` clause ran.
    TimedOut,
    /// `registered()` (or the names on a node), sorted.
    Names(Vec<NameId>),
    Nodes(Vec<NodeId>),
    GlobalNames(Vec<u32>),
    /// The table name was claimed (`false`: already taken on this node).
    EtsNamed(bool),
    /// The table slot the name resolves to on this node.
    EtsFound(Option<u32>),
    EtsDeleted(bool),
    /// Every table name of this node with its slot, by name.
    EtsAll(Vec<(NameId, u32)>),
    /// A call that is not a sync point.
    Local,
    /// What a shared-state read found (0: nothing; a whole-table read: a hash of the
    /// table), or the value a write stored.
    Shared(u64),
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
    /// Counted by the [`Metered`] wrapper around the strategy, as the adapter counts them.
    pub metrics: IterationMetrics,
    /// Per process (by id): the user payloads it consumed, in order.
    pub received: Vec<Vec<u32>>,
    /// Per process (by id): the values `Random` returned to it.
    pub randoms: Vec<Vec<u64>>,
    /// Per process (by id): what each completed action handed it (`seen[p][i]` is action
    /// `i`'s).
    pub seen: Vec<Vec<Seen>>,
    /// Every effect the session queued, in order.
    pub effects: Vec<Effect>,
    pub names: Vec<ProcName>,
    pub final_states: Vec<ProcState>,
    pub exits: Vec<Option<ExitCause>>,
    /// Virtual time when the iteration ended.
    pub now: u64,
}

impl RunResult {
    /// The id of the process at spawn-tree path `path` (`&[]` is the root).
    pub fn id(&self, path: &[u32]) -> ProcId {
        self.names
            .iter()
            .position(|n| n.path() == path)
            .unwrap_or_else(|| panic!("no process {path:?} in {:?}", self.names)) as ProcId
    }

    pub fn seen_by(&self, path: &[u32]) -> &[Seen] {
        &self.seen[self.id(path) as usize]
    }

    pub fn received_by(&self, path: &[u32]) -> &[u32] {
        &self.received[self.id(path) as usize]
    }

    pub fn exit_of(&self, path: &[u32]) -> Option<ExitCause> {
        self.exits[self.id(path) as usize]
    }

    /// The kinds of the events recorded for the process at `path`, in order.
    pub fn events_of(&self, path: &[u32]) -> Vec<EventKind> {
        let id = self.id(path);
        self.events
            .iter()
            .filter(|e| e.proc == id)
            .map(|e| e.kind.clone())
            .collect()
    }

    /// Whether some event satisfies `pred`.
    pub fn has_event(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(pred)
    }

    /// The messages the process at `path` consumed (user messages and signals), in order.
    pub fn got_by(&self, path: &[u32]) -> Vec<Msg> {
        self.seen_by(path)
            .iter()
            .filter_map(|s| match s {
                Seen::Got(m) => Some(*m),
                _ => None,
            })
            .collect()
    }
}

struct Proc {
    script: usize,
    /// Index of the action being performed (or about to be announced).
    pc: usize,
    path: Vec<u32>,
    children: Vec<ProcId>,
    parent: Option<ProcId>,
    /// Delivered, unconsumed messages: (id, message), arrival order.
    mailbox: Vec<(MsgId, Msg)>,
    /// The monitors it made, in order.
    monitors: Vec<MonitorId>,
    /// The `send_after` timers it started, in order.
    timers: Vec<TimerId>,
    /// Killed by an exit signal (or its node stopping) while parked.
    killed: bool,
    /// It sent to a process outside the run: its receives may wait for the outside, as an
    /// instrumented receive does (it tells the engine before it announces one).
    sent_outside: bool,
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
    ExitWith(ExitClass, Reason),
}

struct Driver<'p> {
    program: &'p Program,
    procs: Vec<Proc>,
    /// Payload of each user message (signals take message ids too).
    payloads: HashMap<MsgId, u32>,
    /// Payload of each `send_after` timer.
    timer_payloads: HashMap<TimerId, u32>,
    received: Vec<Vec<u32>>,
    randoms: Vec<Vec<u64>>,
    seen: Vec<Vec<Seen>>,
    effects: Vec<Effect>,
    /// Slots handed to named ETS tables (the adapter's table arena).
    ets_slots: u32,
    /// The modelled shared tables of `Action::Shared`: (table, key) → value.
    shared: std::collections::BTreeMap<(u32, u32), u64>,
}

impl<'p> Driver<'p> {
    fn new(program: &'p Program) -> Self {
        let mut d = Driver {
            program,
            procs: Vec::new(),
            payloads: HashMap::new(),
            timer_payloads: HashMap::new(),
            received: Vec::new(),
            randoms: Vec::new(),
            seen: Vec::new(),
            effects: Vec::new(),
            ets_slots: 0,
            shared: Default::default(),
        };
        d.add_proc(0, None, Vec::new());
        d
    }

    fn add_proc(&mut self, script: usize, parent: Option<ProcId>, path: Vec<u32>) {
        assert!(
            script < self.program.scripts.len(),
            "no script {script} in the program"
        );
        self.procs.push(Proc {
            script,
            pc: 0,
            path,
            children: Vec::new(),
            parent,
            mailbox: Vec::new(),
            monitors: Vec::new(),
            timers: Vec::new(),
            killed: false,
            sent_outside: false,
        });
        self.received.push(Vec::new());
        self.randoms.push(Vec::new());
        self.seen.push(Vec::new());
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
            Target::Path(path) => self
                .procs
                .iter()
                .position(|q| q.path == path)
                .map(|i| i as ProcId),
        }
    }

    /// A target for an operation that needs a managed process: itself when it does not
    /// resolve.
    fn pid(&self, p: ProcId, target: Target) -> ProcId {
        self.resolve(p, target).unwrap_or(p)
    }

    fn send_op(&mut self, p: ProcId, dest: Dest) -> Op {
        let to = self.engine_target(p, dest);
        if to == lockstep_core::Target::External {
            self.procs[p as usize].sent_outside = true;
        }
        Op::Send { to }
    }

    fn engine_target(&self, p: ProcId, dest: Dest) -> lockstep_core::Target {
        use lockstep_core::Target as T;
        match dest {
            Dest::Proc(t) => self.resolve(p, t).map_or(T::External, T::Proc),
            Dest::Name(n) => T::Name(n),
            Dest::NameAt(n, node) => T::NameAt(n, node),
            Dest::Global(g) => T::Global(g),
            Dest::Alias(t, a) => T::Alias(self.pid(p, t), a),
        }
    }

    fn find_match(&self, p: ProcId, m: Match) -> Option<usize> {
        self.procs[p as usize]
            .mailbox
            .iter()
            .position(|&(_, msg)| m.accepts(msg))
    }

    /// The performer's `nth` timer (1-based; `None`: a ref it never had).
    fn nth_timer(&self, p: ProcId, nth: u32) -> Option<TimerId> {
        self.procs[p as usize]
            .timers
            .get((nth as usize).wrapping_sub(1))
            .copied()
    }

    fn record_payload(&mut self, msg: MsgId, payload: u32) {
        let earlier = self.payloads.insert(msg, payload);
        assert_eq!(earlier, None, "message {msg} sent twice");
    }

    fn apply_effects(&mut self, session: &mut Session) {
        let effects: Vec<Effect> = session.take_effects().collect();
        for e in effects {
            self.effects.push(e);
            match e {
                Effect::Deliver { msg, to } => {
                    let payload = *self
                        .payloads
                        .get(&msg)
                        .unwrap_or_else(|| panic!("delivered message {msg} was never sent"));
                    self.procs[to as usize]
                        .mailbox
                        .push((msg, Msg::User(payload)));
                }
                Effect::DeliverTimer { timer, msg, to } => {
                    let payload = *self
                        .timer_payloads
                        .get(&timer)
                        .unwrap_or_else(|| panic!("timer {timer} was never started"));
                    self.record_payload(msg, payload);
                    self.procs[to as usize]
                        .mailbox
                        .push((msg, Msg::User(payload)));
                }
                Effect::SendTimerOutside { timer } => {
                    assert!(
                        self.timer_payloads.contains_key(&timer),
                        "timer {timer} was never started"
                    );
                }
                Effect::DeliverSignal { msg, to } => {
                    let m = *session.message(msg).expect("a signal the session knows");
                    assert_eq!(
                        m.to,
                        Some(to),
                        "signal {msg} delivered to the wrong process"
                    );
                    let seen = match m.kind {
                        MsgKind::Exit { reason, .. } => Msg::Exit {
                            from: m.from,
                            reason,
                        },
                        MsgKind::Down { monitor, reason } => Msg::Down {
                            monitor,
                            from: m.from,
                            reason,
                        },
                        MsgKind::NodeDown { node } => Msg::NodeDown(node),
                        MsgKind::User => panic!("user message {msg} delivered as a signal"),
                    };
                    self.procs[to as usize].mailbox.push((msg, seen));
                }
                Effect::Kill { proc, reason } => {
                    assert_ne!(reason, Reason::Kill, "a kill's reason is :killed");
                    let p = session.proc(proc).expect("a known process");
                    assert_eq!(p.state, ProcState::Exited, "killed {proc} is not exited");
                    let entry = &mut self.procs[proc as usize];
                    assert!(!entry.killed, "{proc} killed twice");
                    entry.killed = true;
                    entry.mailbox.clear();
                }
            }
        }
    }

    /// Records what the engine did when it applied `p`'s pending action (a child created, a
    /// message sent), before anything is checked against the engine's tables.
    fn absorb(&mut self, session: &Session, p: ProcId, result: OpResult) {
        match (self.action(p), result) {
            (
                Some(
                    Action::Spawn { script, .. }
                    | Action::SpawnOn { script, .. }
                    | Action::SpawnMonitor { script, .. },
                ),
                OpResult::Spawned { child },
            ) => {
                if let Some(Action::SpawnMonitor { .. }) = self.action(p) {
                    let monitor = session
                        .events()
                        .iter()
                        .rev()
                        .find_map(|e| match e.kind {
                            EventKind::Monitor { target, monitor } if target == child => {
                                Some(monitor)
                            }
                            _ => None,
                        })
                        .expect("spawn_monitor records the child's monitor");
                    self.procs[p as usize].monitors.push(monitor);
                }
                assert_eq!(child as usize, self.procs.len(), "process ids are dense");
                let mut path = self.procs[p as usize].path.clone();
                path.push(self.procs[p as usize].children.len() as u32 + 1);
                assert_eq!(
                    session.proc(child).expect("the child exists").name.path(),
                    &path[..],
                    "a child is named after its parent and its spawn ordinal"
                );
                self.add_proc(script, Some(p), path);
                self.procs[p as usize].children.push(child);
            }
            (
                Some(Action::Send { payload, .. } | Action::SendTo { payload, .. }),
                OpResult::Sent { msg, fate },
            ) => {
                self.record_payload(msg, payload);
                if fate == SendFate::Delivered {
                    // Instant delivery makes no effect: the sender's own send does it.
                    if let Some(to) = session.message(msg).and_then(|m| m.to) {
                        self.procs[to as usize]
                            .mailbox
                            .push((msg, Msg::User(payload)));
                    }
                }
            }
            (Some(Action::SendAfter { payload, .. }), OpResult::TimerSet { timer }) => {
                self.timer_payloads.insert(timer, payload);
                self.procs[p as usize].timers.push(timer);
            }
            (
                Some(Action::CancelTimerNotify(_)),
                OpResult::Cancelled {
                    notice: Some(msg), ..
                },
            )
            | (
                Some(Action::ReadTimerNotify(_)),
                OpResult::TimerLeft {
                    notice: Some(msg), ..
                },
            ) => {
                self.record_payload(msg, NOTICE);
                self.procs[p as usize]
                    .mailbox
                    .push((msg, Msg::User(NOTICE)));
            }
            (
                Some(Action::Monitor(_) | Action::MonitorName { .. }),
                OpResult::MonitorSet { monitor },
            ) => {
                self.procs[p as usize].monitors.push(monitor);
            }
            _ => {}
        }
    }

    /// Logs what action `pc` handed `p` and moves on to the next one.
    fn complete(&mut self, p: ProcId, seen: Seen) {
        self.seen[p as usize].push(seen);
        self.procs[p as usize].pc += 1;
        debug_assert_eq!(self.seen[p as usize].len(), self.procs[p as usize].pc);
    }

    /// Logs what action `pc` handed `p`, which raises in Elixir: the process ends.
    fn raise(&mut self, p: ProcId, seen: Seen) -> Call {
        self.complete(p, seen);
        Call::Exit(ExitClass::Abnormal)
    }

    /// `p` was given `result` for the action at its `pc` (already absorbed); returns its
    /// next engine call.
    fn resume(&mut self, session: &mut Session, p: ProcId, result: OpResult) -> Call {
        let action = self.action(p);
        let done = Seen::Result(result);
        match (action, result) {
            (_, OpResult::Started) => {}
            (
                Some(Action::Receive(m) | Action::SpinReceive(m) | Action::ReceiveAfter(m, _)),
                OpResult::ReceiveAttempt { last },
            ) => {
                let Some(i) = self.find_match(p, m) else {
                    match action {
                        Some(Action::ReceiveAfter(..)) if last => {
                            // Timed out: the `after` clause runs.
                            self.complete(p, Seen::TimedOut);
                            return self.next_call(session, p);
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
                let (msg, got) = self.procs[p as usize].mailbox.remove(i);
                session
                    .consumed(p, msg)
                    .expect("consumed a delivered message");
                if let Msg::User(payload) = got {
                    self.received[p as usize].push(payload);
                }
                self.complete(p, Seen::Got(got));
            }
            (
                Some(Action::Receive(_) | Action::SpinReceive(_) | Action::ReceiveAfter(..)),
                OpResult::AwaitOutside,
            ) => {
                // The driver's outside world answers at once: the receive takes a message
                // from outside the run.
                session
                    .external_received(p)
                    .expect("the process waiting for the outside is running");
                self.complete(p, done);
            }
            (Some(Action::SpinReceive(_)), OpResult::Yielded) => {}
            (Some(Action::Random(n)), OpResult::Random(v)) => {
                assert!(v < n, "random({n}) returned {v}");
                self.randoms[p as usize].push(v);
                self.complete(p, done);
            }
            (Some(Action::Send { .. } | Action::SendTo { .. }), OpResult::Unregistered) => {
                return self.raise(p, done)
            }
            (Some(Action::Link(_)), OpResult::NoProc) => return self.raise(p, done),
            (Some(Action::Register { .. } | Action::Unregister(_)), OpResult::NameOk(false)) => {
                return self.raise(p, done)
            }
            (Some(Action::Demonitor { nth, flush }), OpResult::Demonitored(_)) => {
                let monitor = self.procs[p as usize]
                    .monitors
                    .get((nth as usize).wrapping_sub(1))
                    .copied();
                if let (true, Some(m)) = (flush, monitor) {
                    self.flush_down(session, p, m);
                }
                self.complete(p, done);
            }
            (Some(Action::Registered), OpResult::Names) => {
                let node = session.proc(p).expect("a known process").node;
                self.complete(p, Seen::Names(session.registered_names(node)));
            }
            (Some(Action::NamesOn(node)), OpResult::NamesOn(n)) => {
                assert_eq!(node, n);
                self.complete(p, Seen::Names(session.registered_names(n)));
            }
            (Some(Action::Nodes), OpResult::NodeList { up_only: false })
            | (Some(Action::NodesUp), OpResult::NodeList { up_only: true }) => {
                let up_only = action == Some(Action::NodesUp);
                self.complete(p, Seen::Nodes(session.nodes(up_only)));
            }
            (Some(Action::Visible), OpResult::VisibleFrom(node)) => {
                assert_eq!(node, session.proc(p).expect("a known process").node);
                self.complete(p, Seen::Nodes(session.visible_nodes(node)));
            }
            (Some(Action::GlobalNames), OpResult::GlobalList(node)) => {
                self.complete(p, Seen::GlobalNames(session.global_names(node)));
            }
            (Some(Action::Shared { table, key, write }), OpResult::Done) => {
                let seen = match (key, write) {
                    (Some(k), true) => {
                        // Unique to the writer (by name, stable across interleavings) and
                        // to the action.
                        let name = &session.proc(p).expect("a known process").name;
                        let index = self.seen[p as usize].len() as u64;
                        let value = name
                            .path()
                            .iter()
                            .fold(7u64, |h, &x| h.wrapping_mul(31).wrapping_add(u64::from(x)))
                            .wrapping_mul(1000)
                            .wrapping_add(index + 1);
                        self.shared.insert((table, k), value);
                        value
                    }
                    (Some(k), false) => self.shared.get(&(table, k)).copied().unwrap_or(0),
                    (None, true) => {
                        self.shared.retain(|&(t, _), _| t != table);
                        0
                    }
                    (None, false) => self.shared.range((table, 0)..=(table, u32::MAX)).fold(
                        1u64,
                        |h, (&(_, k), &v)| {
                            h.wrapping_mul(1_000_003)
                                .wrapping_add(u64::from(k))
                                .wrapping_mul(31)
                                .wrapping_add(v)
                        },
                    ),
                };
                self.complete(p, Seen::Shared(seen));
            }
            (Some(Action::EtsNew(name)), OpResult::Done) => {
                let node = session.proc(p).expect("a known process").node;
                let slot = self.ets_slots;
                let ok = session.ets_register(node, name, slot);
                if ok {
                    self.ets_slots += 1;
                }
                self.complete(p, Seen::EtsNamed(ok));
            }
            (Some(Action::EtsWhereis(name)), OpResult::Done) => {
                let node = session.proc(p).expect("a known process").node;
                self.complete(p, Seen::EtsFound(session.ets_lookup(node, name)));
            }
            (Some(Action::EtsDelete(name)), OpResult::Done) => {
                let node = session.proc(p).expect("a known process").node;
                self.complete(p, Seen::EtsDeleted(session.ets_unregister(node, name)));
            }
            (Some(Action::EtsAll), OpResult::Done) => {
                let node = session.proc(p).expect("a known process").node;
                self.complete(p, Seen::EtsAll(session.ets_named(node)));
            }
            (Some(action), result) if Self::answers(action, result) => self.complete(p, done),
            (action, result) => panic!("process {p} got {result:?} while performing {action:?}"),
        }
        self.next_call(session, p)
    }

    /// Whether `result` is a possible answer to `action` (for the actions whose result the
    /// driver only logs).
    fn answers(action: Action, result: OpResult) -> bool {
        use OpResult as R;
        match action {
            Action::Spawn { .. } | Action::SpawnOn { .. } | Action::SpawnMonitor { .. } => {
                matches!(result, R::Spawned { .. })
            }
            Action::Send { .. } | Action::SendTo { .. } => matches!(result, R::Sent { .. }),
            Action::Yield => result == R::Yielded,
            // `sleep(0)` is a yield.
            Action::Sleep(0) => result == R::Yielded,
            Action::Sleep(_) => result == R::Done,
            Action::Link(_)
            | Action::Unlink(_)
            | Action::Exit { .. }
            | Action::Nif(_)
            | Action::StartNode(_)
            | Action::StopNode(_)
            | Action::Partition { .. }
            | Action::Heal
            | Action::MonitorNode(_)
            | Action::SetTicktime(_)
            | Action::GlobalUnregister(_) => result == R::Done,
            Action::Monitor(_) | Action::MonitorName { .. } => {
                matches!(result, R::MonitorSet { .. })
            }
            Action::TrapExit(_) => matches!(result, R::WasTrapping(_)),
            Action::Alive(_) => matches!(result, R::Alive(_)),
            Action::Register { .. } | Action::Unregister(_) | Action::GlobalRegister { .. } => {
                matches!(result, R::NameOk(_))
            }
            Action::Whereis(_) | Action::GlobalWhereis(_) | Action::WhereisOn { .. } => {
                matches!(result, R::Found(_))
            }
            Action::Now => matches!(result, R::Now(_)),
            Action::SendAfter { .. } => matches!(result, R::TimerSet { .. }),
            Action::CancelTimer(_) => matches!(result, R::Cancelled { notice: None, .. }),
            Action::CancelTimerNotify(_) => matches!(
                result,
                R::Cancelled {
                    notice: Some(_),
                    ..
                }
            ),
            Action::ReadTimer(_) => matches!(result, R::TimerLeft { notice: None, .. }),
            Action::ReadTimerNotify(_) => matches!(
                result,
                R::TimerLeft {
                    notice: Some(_),
                    ..
                }
            ),
            Action::NodeOf(_) => matches!(result, R::NodeIs(_)),
            _ => false,
        }
    }

    /// `demonitor(ref, [:flush])`: takes that monitor's `:DOWN`s out of the mailbox.
    fn flush_down(&mut self, session: &mut Session, p: ProcId, monitor: MonitorId) {
        while let Some(i) = self.procs[p as usize]
            .mailbox
            .iter()
            .position(|&(_, m)| matches!(m, Msg::Down { monitor: x, .. } if x == monitor))
        {
            let (msg, _) = self.procs[p as usize].mailbox.remove(i);
            session.consumed(p, msg).expect("flushed a delivered :DOWN");
        }
    }

    /// The engine call `p` makes for its next action; actions that are not sync points are
    /// performed on the way.
    fn next_call(&mut self, session: &mut Session, p: ProcId) -> Call {
        loop {
            let Some(action) = self.action(p) else {
                return Call::Exit(ExitClass::Normal);
            };
            let op = match action {
                Action::Crash => return Call::Exit(ExitClass::Abnormal),
                Action::Shutdown => return Call::ExitWith(ExitClass::Normal, Reason::ExitOf(p)),
                Action::Alias(a) => {
                    session.alias(p, a).expect("the running process");
                    self.complete(p, Seen::Local);
                    continue;
                }
                Action::Unalias(a) => {
                    session.unalias(p, a).expect("the running process");
                    self.complete(p, Seen::Local);
                    continue;
                }
                Action::AliasWith { id, reply, monitor } => {
                    let monitor = monitor
                        .map(|nth| self.procs[p as usize].monitors[(nth as usize).wrapping_sub(1)]);
                    let alias = Alias { id, reply, monitor };
                    session.alias_with(p, alias).expect("the running process");
                    self.complete(p, Seen::Local);
                    continue;
                }
                Action::Spawn { link, .. } => Op::Spawn {
                    link,
                    monitor: false,
                },
                Action::SpawnMonitor { link, .. } => Op::Spawn {
                    link,
                    monitor: true,
                },
                Action::MonitorName { name, node } => Op::MonitorName { name, node },
                Action::SpawnOn { link, node, .. } => Op::SpawnOn {
                    link,
                    monitor: false,
                    node,
                },
                Action::Send { to, .. } => self.send_op(p, Dest::Proc(to)),
                Action::SendTo { dest, .. } => self.send_op(p, dest),
                Action::Receive(_) | Action::ReceiveAfter(..) | Action::SpinReceive(_)
                    if self.procs[p as usize].sent_outside =>
                {
                    session.await_outside(p).expect("the running process");
                    self.procs[p as usize].sent_outside = false;
                    continue;
                }
                Action::Receive(_) => FIRST_RECEIVE,
                Action::ReceiveAfter(_, ms) => Op::Receive {
                    retry: false,
                    timeout: Some(ms),
                },
                Action::SpinReceive(_) => Op::Receive {
                    retry: false,
                    timeout: Some(0),
                },
                Action::Sleep(ms) => Op::Sleep { ms },
                Action::Yield => Op::Yield,
                Action::Random(n) => Op::Random { n },
                Action::Link(t) => Op::Link { to: self.pid(p, t) },
                Action::Unlink(t) => Op::Unlink { to: self.pid(p, t) },
                Action::Monitor(t) => Op::Monitor {
                    target: self.pid(p, t),
                },
                Action::Demonitor { nth, .. } => Op::Demonitor {
                    monitor: self.procs[p as usize]
                        .monitors
                        .get((nth as usize).wrapping_sub(1))
                        .copied(),
                },
                Action::TrapExit(on) => Op::TrapExit { on },
                Action::Exit { to, reason } => Op::ExitSignal {
                    to: self.pid(p, to),
                    reason,
                },
                Action::Alive(t) => Op::Alive { of: self.pid(p, t) },
                Action::Register { name, who } => Op::Register {
                    name,
                    proc: self.pid(p, who),
                },
                Action::Unregister(name) => Op::Unregister { name },
                Action::Whereis(name) => Op::Whereis { name },
                Action::Registered => Op::Registered,
                Action::Now => Op::Now,
                Action::SendAfter { dest, ms, .. } => Op::SendAfter {
                    to: self.engine_target(p, dest),
                    ms,
                },
                Action::CancelTimer(nth) => Op::CancelTimer {
                    timer: self.nth_timer(p, nth),
                    notify: false,
                },
                Action::CancelTimerNotify(nth) => Op::CancelTimer {
                    timer: self.nth_timer(p, nth),
                    notify: true,
                },
                Action::ReadTimer(nth) => Op::ReadTimer {
                    timer: self.nth_timer(p, nth),
                    notify: false,
                },
                Action::ReadTimerNotify(nth) => Op::ReadTimer {
                    timer: self.nth_timer(p, nth),
                    notify: true,
                },
                Action::Nif(object) => Op::Nif {
                    object,
                    access: None,
                },
                Action::Shared { table, key, write } => Op::Nif {
                    object: Some(
                        u64::from(write) << 63
                            | u64::from(table) << 32
                            | u64::from(key.unwrap_or(u32::MAX)),
                    ),
                    access: Some(lockstep_core::op::SharedAccess {
                        table: u64::from(table),
                        key: key.map(u64::from),
                        write,
                        stable: true,
                    }),
                },
                Action::EtsNew(name) | Action::EtsWhereis(name) | Action::EtsDelete(name) => {
                    Op::Nif {
                        object: Some(u64::from(name)),
                        access: None,
                    }
                }
                Action::EtsAll => Op::Nif {
                    object: None,
                    access: None,
                },
                Action::StartNode(n) => Op::Cluster(ClusterOp::StartNode(n)),
                Action::StopNode(n) => Op::Cluster(ClusterOp::StopNode(n)),
                Action::Partition { a, b, mode } => {
                    // The adapter defines the partition when it decodes the call.
                    let index = session.define_partition(a.to_vec(), b.to_vec(), mode);
                    Op::Cluster(ClusterOp::Partition(index))
                }
                Action::Heal => Op::Cluster(ClusterOp::Heal),
                Action::MonitorNode(n) => Op::Cluster(ClusterOp::MonitorNode(n)),
                Action::SetTicktime(ms) => Op::Cluster(ClusterOp::SetTicktime(ms)),
                Action::Nodes => Op::Cluster(ClusterOp::Nodes),
                Action::NodesUp => Op::Cluster(ClusterOp::NodesUp),
                Action::Visible => Op::Cluster(ClusterOp::Visible),
                Action::NodeOf(t) => Op::Cluster(ClusterOp::NodeOf(self.pid(p, t))),
                Action::GlobalRegister { name, who } => Op::Cluster(ClusterOp::GlobalRegister {
                    name,
                    proc: self.pid(p, who),
                }),
                Action::GlobalUnregister(name) => Op::Cluster(ClusterOp::GlobalUnregister(name)),
                Action::GlobalWhereis(name) => Op::Cluster(ClusterOp::GlobalWhereis(name)),
                Action::GlobalNames => Op::Cluster(ClusterOp::GlobalNames),
                Action::WhereisOn { name, node } => {
                    Op::Cluster(ClusterOp::WhereisOn { name, node })
                }
                Action::NamesOn(node) => Op::Cluster(ClusterOp::NamesOn(node)),
            };
            return Call::Sync(op);
        }
    }
}

/// The kind of a choice, for [`Prefer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Run,
    Deliver,
    Fire,
}

/// A deterministic strategy for tests that need one particular interleaving: the first
/// offered choice of the first kind in `order` that is offered (among processes, the
/// lowest id, or the highest with `newest_first`); `random(n)` answers `min(value, n-1)`.
/// Choices `postponed` selects are taken only when nothing else is offered.
#[derive(Clone, Copy, Debug)]
pub struct Prefer {
    order: [Kind; 3],
    newest_first: bool,
    value: u64,
    postponed: Option<fn(&Decision) -> bool>,
}

impl Prefer {
    /// Processes run before anything is delivered or fired: the lowest-numbered ready
    /// process runs until it blocks or ends (so the root goes first).
    pub fn runs() -> Self {
        Prefer {
            order: [Kind::Run, Kind::Deliver, Kind::Fire],
            newest_first: false,
            value: 0,
            postponed: None,
        }
    }

    /// In-flight messages and signals arrive as soon as they can.
    pub fn deliveries() -> Self {
        Prefer {
            order: [Kind::Deliver, Kind::Run, Kind::Fire],
            ..Prefer::runs()
        }
    }

    /// The earliest timer fires as soon as it is offered (`timers: :anytime`).
    pub fn timers() -> Self {
        Prefer {
            order: [Kind::Fire, Kind::Deliver, Kind::Run],
            ..Prefer::runs()
        }
    }

    /// Among ready processes, the most recently spawned runs first (a child runs as soon
    /// as it is spawned).
    pub fn newest_first(self) -> Self {
        Prefer {
            newest_first: true,
            ..self
        }
    }

    pub fn random_value(self, value: u64) -> Self {
        Prefer { value, ..self }
    }

    /// Takes the choices whose decision `postponed` selects only when nothing else is
    /// offered.
    pub fn postponing(self, postponed: fn(&Decision) -> bool) -> Self {
        Prefer {
            postponed: Some(postponed),
            ..self
        }
    }
}

impl Strategy for Prefer {
    fn name(&self) -> &'static str {
        "prefer"
    }

    fn begin_iteration(&mut self, _seed: u64) {}

    fn pick(&mut self, view: &View<'_>, offered: &ChoiceSet) -> Result<Choice, Divergence> {
        let choices: Vec<Choice> = offered.iter().collect();
        let kind = |c: &Choice| match c {
            Choice::Run(_) => Kind::Run,
            Choice::Deliver(_) => Kind::Deliver,
            Choice::Fire(_) => Kind::Fire,
        };
        let postponed = |c: &Choice| self.postponed.is_some_and(|f| f(&view.decision_for(*c)));
        let all_postponed = choices.iter().all(postponed);
        for wanted in self.order {
            let mut of_kind = choices
                .iter()
                .enumerate()
                .filter(|(_, c)| kind(c) == wanted && (all_postponed || !postponed(c)))
                .map(|(i, _)| i);
            let pick = if wanted == Kind::Run && self.newest_first {
                of_kind.next_back()
            } else {
                of_kind.next()
            };
            if let Some(i) = pick {
                return Ok(choices[i]);
            }
        }
        unreachable!("choices are never empty and some kind is not postponed")
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.value.min(n - 1))
    }
}

/// Wraps the strategy under test and checks, at every pick, what the session offers it:
/// nothing is running while a decision is made, and only ready processes are offered.
struct Checked<'s> {
    inner: &'s mut dyn Strategy,
    timers: lockstep_core::TimerMode,
    blocked_at_end: BlockedAtEnd,
}

impl Checked<'_> {
    fn check_offer(&self, view: &View<'_>, choices: &[Choice]) {
        let fires = choices
            .iter()
            .filter(|c| matches!(c, Choice::Fire(_)))
            .count();
        assert!(fires <= 1, "step {}: several timers offered", view.step);
        if fires == 1 && self.timers == lockstep_core::TimerMode::OnIdle {
            assert_eq!(
                choices.len(),
                1,
                "step {}: under :on_idle a timer is offered only when nothing else can happen",
                view.step
            );
        }
        // Once the root has returned, timers fire only under `blocked_at_end: :fail`, and
        // then only when nothing else can happen.
        assert!(
            fires == 0
                || view.procs()[0].state != ProcState::Exited
                || (self.blocked_at_end == BlockedAtEnd::Fail && choices.len() == 1),
            "step {}: a timer offered after the root returned",
            view.step
        );
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

    fn pick(&mut self, view: &View<'_>, offered: &ChoiceSet) -> Result<Choice, Divergence> {
        let choices: Vec<Choice> = offered.iter().collect();
        self.check_offer(view, &choices);
        // Every ready process is offered (the set is kept up to date, never collected).
        for (p, proc) in view.procs().iter().enumerate() {
            if proc.state == ProcState::Ready {
                assert!(
                    choices.contains(&Choice::Run(p as ProcId)),
                    "step {}: P{p} is ready but not offered",
                    view.step
                );
            }
        }
        assert_eq!(offered.len(), choices.len());
        for (i, &c) in choices.iter().enumerate() {
            assert_eq!(offered.get(i), c, "step {}: choice {i}", view.step);
        }
        let picked = self.inner.pick(view, offered)?;
        assert!(choices.contains(&picked), "picked {picked:?}, not offered");
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

/// Whether `kind` is something reaching a blocked process that may make it ready: a
/// message, a signal turned message, or its own timer firing.
fn wakes(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Deliver { .. }
            | EventKind::ExitTrapped { .. }
            | EventKind::Down { .. }
            | EventKind::NodeDownMsg { .. }
            | EventKind::TimerFired { .. }
    )
}

/// Whether `kind` may free `global`'s lock, which a process blocked in a global
/// register or unregister waits for: a partition declared lost (its tick), a heal, a
/// stopped node. The waiter gets no event of its own when it is let go.
fn frees_global_lock(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Tick { .. } | EventKind::Healed { .. } | EventKind::NodeStopped { .. }
    )
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
            assert!(!session.is_over(), "a result handed out after the end");
            let woken = match next {
                Next::Wake(p, _) => p,
                _ => session.running().expect("a continuing process runs"),
            };
            assert_eq!(session.running(), Some(woken));
            assert_eq!(running, vec![woken as usize]);
            assert!(
                !driver.procs[woken as usize].killed,
                "woke {woken}, which was killed"
            );
            if let Next::Wake(p, result) = next {
                // A process blocked before the call may only run if, during the call, a
                // message or signal reached it or its timer fired (decided just before),
                // or, nothing else being possible, it waits for the outside.
                if before.get(p as usize) == Some(&ProcState::Blocked)
                    && result != OpResult::AwaitOutside
                {
                    let lock_waiter = matches!(
                        session.proc(p).expect("a known process").pending,
                        Op::Cluster(
                            ClusterOp::GlobalRegister { .. } | ClusterOp::GlobalUnregister(_)
                        )
                    );
                    assert!(
                        events.iter().any(|e| e.proc == p && wakes(&e.kind))
                            || lock_waiter && events.iter().any(|e| frees_global_lock(&e.kind)),
                        "woke {p}, which was blocked and nothing reached it: {events:?}"
                    );
                }
            }
        }
        Next::Ended => {
            assert!(session.is_over(), "Ended but no outcome");
            assert!(running.is_empty(), "{running:?} still running at the end");
            assert_eq!(session.running(), None, "a running process at the end");
        }
    }
    for (i, proc) in session.procs().iter().enumerate() {
        if proc.is_alive() {
            assert_eq!(
                proc.mailbox as usize,
                driver.procs[i].mailbox.len(),
                "engine and driver disagree on the mailbox of {i}"
            );
            assert!(!driver.procs[i].killed, "{i} was killed but is alive");
        }
    }
}

/// A process killed by an exit signal or by its node stopping was parked, and its BEAM
/// process must have been told to die; no other process is.
fn check_kills(session: &Session, driver: &Driver<'_>) {
    for (i, proc) in session.procs().iter().enumerate() {
        let id = i as ProcId;
        // A process spawned on a node that is down is dead from the start: no Exit event,
        // no BEAM process to kill.
        let died = session
            .events()
            .iter()
            .any(|e| e.proc == id && matches!(e.kind, EventKind::Exit { .. }));
        let must_be_killed = died
            && matches!(
                proc.exit,
                Some(ExitCause::Signal { .. } | ExitCause::NodeDown)
            );
        assert_eq!(
            driver.procs[i].killed, must_be_killed,
            "process {i} (exit {:?}): Kill effect mismatch",
            proc.exit
        );
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
                !matches!(
                    outcome,
                    Outcome::Pass | Outcome::Deadlock { .. } | Outcome::BlockedAtEnd { .. }
                ),
                "process {i} still ready after {outcome:?}"
            ),
            ProcState::Running => panic!("process {i} still running after {outcome:?}"),
        }
    }
    // User messages between one sender and one receiver arrive in the order they were
    // sent (`send_after` messages are sent by their timer, not in the owner's order).
    let sent: std::collections::HashSet<MsgId> = session
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    let mut last_arrival = HashMap::new();
    for e in session.events() {
        if let EventKind::Deliver { msg, from } | EventKind::Drop { msg, from } = e.kind {
            if !sent.contains(&msg) {
                continue;
            }
            if let Some(earlier) = last_arrival.insert((from, e.proc), msg) {
                assert!(
                    earlier < msg,
                    "{from}->{}: {msg} arrived after {earlier}",
                    e.proc
                );
            }
        }
    }
    check_trace_facts(session.events());
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
        Outcome::Killed { proc, from } => {
            assert_ne!(*proc, 0);
            assert_eq!(session.config().crash, CrashMode::Strict);
            assert!(matches!(
                procs[*proc as usize].exit,
                Some(ExitCause::Signal { from: f, .. }) if f == *from
            ));
        }
        Outcome::BlockedAtEnd { blocked } => {
            assert_eq!(session.config().blocked_at_end, BlockedAtEnd::Fail);
            assert!(!blocked.is_empty());
            assert!(procs[0].exit.is_some(), "the root has returned");
            for &p in blocked {
                assert_eq!(procs[p as usize].state, ProcState::Blocked);
                assert_eq!(
                    procs[p as usize].receive_timer, None,
                    "a timer could wake {p}"
                );
            }
        }
        Outcome::MaxSteps => assert_eq!(session.step(), session.config().max_steps),
        Outcome::Diverged(_) => {}
        Outcome::Aborted { .. } => panic!("the driver never aborts a run"),
    }
}

/// Facts every trace states: nothing reaches a process after it exited; a monitor's
/// `:DOWN` arrives at most once and never after its demonitor; a cancelled timer never
/// fires; virtual time never goes backwards.
fn check_trace_facts(events: &[Event]) {
    use std::collections::HashSet;
    let mut exited = HashSet::new();
    let mut demonitored = HashSet::new();
    let mut downs = HashSet::new();
    let mut cancelled = HashSet::new();
    let mut clock = 0;
    for e in events {
        match e.kind {
            EventKind::Exit { .. } => {
                assert!(exited.insert(e.proc), "{} exited twice", e.proc);
            }
            EventKind::Deliver { .. }
            | EventKind::ExitTrapped { .. }
            | EventKind::Down { .. }
            | EventKind::NodeDownMsg { .. }
            | EventKind::Receive { .. } => {
                assert!(
                    !exited.contains(&e.proc),
                    "step {}: {:?} reached {} after it exited",
                    e.step,
                    e.kind,
                    e.proc
                );
            }
            _ => {}
        }
        match e.kind {
            EventKind::Demonitor { monitor } => {
                demonitored.insert(monitor);
            }
            EventKind::Down { monitor, .. } => {
                assert!(
                    !demonitored.contains(&monitor),
                    "a :DOWN of monitor {monitor} after its demonitor"
                );
                assert!(downs.insert(monitor), "two :DOWNs of monitor {monitor}");
            }
            EventKind::TimerCancelled { timer, .. } => {
                cancelled.insert(timer);
            }
            EventKind::TimerFired { timer, now } => {
                assert!(!cancelled.contains(&timer), "cancelled timer {timer} fired");
                assert!(now >= clock, "time went back from {clock} to {now}");
                clock = now;
            }
            EventKind::Now { ms } => {
                assert!(ms >= clock, "now() went back from {clock} to {ms}");
                clock = ms;
            }
            _ => {}
        }
    }
}

/// Runs one iteration of `program` to its end and returns what it produced. Panics if the
/// session breaks one of its invariants along the way.
pub fn run(program: &Program, config: Config, strategy: &mut dyn Strategy, seed: u64) -> RunResult {
    run_driven(program, config, strategy, seed, false)
}

/// [`run`] as an adapter that keeps no trace drives the session: the events are read once
/// after every call and then dropped (`Session::forget_events`), as the NIF does in an
/// iteration that does not capture. The events read are concatenated into
/// [`RunResult::events`], so the result must equal [`run`]'s. The end-of-iteration checks
/// that need the whole trace are [`run`]'s alone.
pub fn run_forgetting(
    program: &Program,
    config: Config,
    strategy: &mut dyn Strategy,
    seed: u64,
) -> RunResult {
    run_driven(program, config, strategy, seed, true)
}

fn run_driven(
    program: &Program,
    config: Config,
    strategy: &mut dyn Strategy,
    seed: u64,
    forget: bool,
) -> RunResult {
    let mut read: Vec<Event> = Vec::new();
    let mut strategy = Metered::new(Checked {
        inner: strategy,
        timers: config.timers,
        blocked_at_end: config.blocked_at_end,
    });
    // The forgetting driver also runs in a renewed session, the one its previous run
    // left on this thread, as an adapter that reuses its session's buffers does.
    let spare = if forget {
        SPARE.with(|spare| spare.borrow_mut().take())
    } else {
        None
    };
    let mut session = match spare {
        Some(mut session) => {
            session.renew(config, &mut strategy, seed);
            session
        }
        None => Session::new(config, &mut strategy, seed),
    };
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
            driver.absorb(&session, p, result);
        }
        let events = &session.events()[events_before..];
        check_after_call(&session, &driver, &before, events, next);
        if forget {
            read.extend_from_slice(session.events());
            session.forget_events();
        }
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
            Call::ExitWith(class, reason) => session.exit_with(p, class, reason, &mut strategy),
        }
        .expect("the driver only calls for the running process");
    }
    session.finish(&mut strategy);
    if forget {
        read.extend_from_slice(session.events());
    } else {
        check_final(&session);
        check_kills(&session, &driver);
        read = session.events().to_vec();
    }
    let result = RunResult {
        outcome: session.outcome().cloned().unwrap(),
        schedule: session.schedule(),
        events: read,
        metrics: strategy.metrics(),
        received: driver.received,
        randoms: driver.randoms,
        seen: driver.seen,
        effects: driver.effects,
        names: session.procs().iter().map(|p| p.name.clone()).collect(),
        final_states: states(&session),
        exits: session.procs().iter().map(|p| p.exit).collect(),
        now: session.now(),
    };
    if forget {
        SPARE.with(|spare| *spare.borrow_mut() = Some(session));
    }
    result
}

thread_local! {
    /// The session the last forgetting run left, for the next one to renew.
    static SPARE: std::cell::RefCell<Option<Session>> = const { std::cell::RefCell::new(None) };
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

/// Both delivery modes, for facts that must hold under either.
pub const DELIVERIES: [DeliveryMode; 2] = [DeliveryMode::Instant, DeliveryMode::Delayed];

/// The default configuration with the given delivery mode, crashes ignored (let-it-crash
/// tests) or failing the iteration.
pub fn config(delivery: DeliveryMode, crash: CrashMode) -> Config {
    Config {
        delivery,
        crash,
        ..Config::default()
    }
}

/// Runs `program` under every strategy for `per_strategy` iterations each and hands every
/// result to `check`: how a test states a fact about all interleavings it can reach.
pub fn for_many_interleavings(
    program: &Program,
    config: Config,
    per_strategy: u64,
    mut check: impl FnMut(&RunResult),
) {
    for kind in StrategyKind::all() {
        let mut strategy = kind.build();
        for i in 1..=per_strategy {
            let seed = lockstep_core::iteration_seed(0x5eed, i);
            check(&run(program, config, strategy.as_mut(), seed));
        }
    }
}

/// One iteration under a [`Prefer`] strategy.
pub fn run_with(program: &Program, config: Config, mut prefer: Prefer) -> RunResult {
    run(program, config, &mut prefer, 0)
}
