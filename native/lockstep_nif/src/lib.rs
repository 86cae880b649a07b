//! The BEAM adapter for `lockstep_core`: resources, term ↔ engine conversions, wake-ups and
//! error mapping. It holds no scheduling policy.
//!
//! Hot path: a managed process calls one `sync_*` NIF with the operation it is about to
//! perform. The engine decides who goes next; if that is another process the NIF sends it
//! `{tag, :go, result}` itself (from the caller's env) and returns `:wait`, and the caller
//! parks in a plain `receive` on the run-unique integer `tag`. If the caller is picked again
//! the NIF returns the operation's result at once. No controller process is involved.
//!
//! Terms the engine refers to by id — in-flight payloads, exit reasons, monitor and timer
//! refs, captured payloads for the report — live in one `OwnedEnv` arena per session,
//! allocated only when first needed.

mod convert;
mod handoff;

use convert::{
    atoms, decision_term, decode_schedule, internal_error, name_term, not_managed_error,
};
use handoff::{Carry, Pending};
use lockstep_core::strategy::{FairPct, IdPct, Metered, Pct, Pos, RandomWalk, Replay};
use lockstep_core::{ClusterOp, MsgKind, PartitionMode};
use lockstep_core::{
    Config, CrashMode, DeliveryMode, Effect, EventKind, ExitCause, ExitClass, MonitorId, MsgId,
    NameId, Next, NodeId, Op, OpResult, Outcome, ProcId, ProcState, Reason, SendFate, Session,
    Strategy, Target, TimerId, TimerMode,
};
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Atom, Encoder, Env, LocalPid, Monitor, NifResult, Resource, ResourceArc, Term};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Tags are unique in the VM so a stale wake-up can never be mistaken for a current one.
static NEXT_TAG: AtomicU64 = AtomicU64::new(0x4C53_0000_0000);

/// Sessions not yet freed by the BEAM (a resource is freed once no process refers to it):
/// lets tests check that a run's NIF state is released.
static LIVE_SESSIONS: AtomicU64 = AtomicU64::new(0);

impl Drop for SessionResource {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A run's strategy, kept between iterations (PCT learns the run length across them). An
/// iteration borrows it for its lifetime and gives it back in `session_finish`.
pub struct StrategyCell {
    strategy: Mutex<Option<RunStrategy>>,
}

/// The run's strategy inside the metrics wrapper.
type RunStrategy = Metered<Box<dyn Strategy>>;

#[rustler::resource_impl]
impl Resource for StrategyCell {}

pub struct SessionResource {
    tag: u64,
    state: Mutex<SessionState>,
}

struct SessionState {
    session: Session,
    strategy: Option<RunStrategy>,
    cell: ResourceArc<StrategyCell>,
    owner: LocalPid,
    /// BEAM pid of each managed process, by engine id (`None` until registered).
    pids: Vec<Option<LocalPid>>,
    by_pid: HashMap<LocalPid, ProcId, handoff::PidHash>,
    arena: Option<OwnedEnv>,
    /// Payloads of in-flight user messages (`delivery: :delayed`).
    held: HashMap<MsgId, SavedTerm>,
    /// Terms given with an operation, kept until the engine applies it and numbers what it
    /// created (a monitor ref, a timer's payload and ref, a payload to capture).
    announced: HashMap<ProcId, SavedTerm>,
    events_scanned: usize,
    /// Reason terms of processes that exited abnormally (`Reason::ExitOf`).
    exit_reasons: HashMap<ProcId, SavedTerm>,
    /// Reason terms given to `exit/2` (`Reason::Given`).
    given_reasons: Vec<SavedTerm>,
    monitor_refs: HashMap<MonitorId, SavedTerm>,
    /// `{ref, payload}` of each `send_after` timer.
    timer_data: HashMap<TimerId, SavedTerm>,
    names: Vec<Atom>,
    name_ids: HashMap<Atom, NameId>,
    /// Node names by engine node id; 0 is `:nonode@nohost`.
    nodes: Vec<Atom>,
    /// Global registry names (any term), by engine name id.
    globals: Vec<SavedTerm>,
    /// Real ETS tables of named simulated tables, by the engine's slot.
    ets_tables: Vec<SavedTerm>,
    capture: bool,
    captured_msgs: HashMap<MsgId, SavedTerm>,
    /// Captured kind terms of shared-state operations, by event index.
    captured_nifs: HashMap<usize, SavedTerm>,
    /// Reasons for the report (with stacktraces), captured per exited process.
    captured_exits: HashMap<ProcId, SavedTerm>,
    done_sent: bool,
    /// Something stored iteration-scoped state outside the session (persistent_term keys)
    /// that the owner must erase when the iteration ends.
    needs_cleanup: bool,
    /// Counts engine calls so the owner can tell a process that stopped reaching sync
    /// points (`:stuck`).
    progress: u64,
    /// The owner's reference for this iteration: its `{ref, :done, reason}` is found without
    /// scanning the owner's mailbox (a receive on a reference made just before skips the
    /// messages that were there already), however many unrelated messages wait in it.
    done_ref: Option<SavedTerm>,
    /// Reports (`{:error, exception, stacktrace}`) of unmanaged processes linked to a
    /// managed one that died of a Lockstep call made outside the run: the real link kills
    /// the managed process, and the owner reports this as why.
    outside_crashes: HashMap<ProcId, SavedTerm>,
}

#[rustler::resource_impl]
impl Resource for SessionResource {
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        let poisoned = self.state.is_poisoned();
        let mut st = lock_any(self);
        let st = &mut *st;
        if poisoned {
            // A panic left the session half-updated: nobody can schedule any more. Tell
            // the owner, which tears the run down and raises Lockstep.InternalError.
            if !st.done_sent {
                st.done_sent = true;
                let message = "a Lockstep NIF call panicked and left the session \
                               half-updated; the run was stopped (this is a bug in Lockstep)";
                let done_ref = st.done_ref_term(env);
                let _ = env.send(&st.owner, (done_ref, atoms::internal_error(), message));
            }
            return;
        }
        if pid == st.owner {
            // The test process is gone: nobody will tear the run down, so tell every parked
            // process to exit now.
            for p in st.pids.iter().flatten() {
                let _ = env.send(p, (self.tag, atoms::exit(), atoms::kill()));
            }
            st.session.abort();
            st.done_sent = true;
            return;
        }
        let Some(&proc) = st.by_pid.get(&pid) else {
            return;
        };
        let alive = st.session.proc(proc).is_some_and(|p| p.is_alive());
        if !alive || st.session.is_over() {
            return;
        }
        let Some(strategy) = st.strategy.as_mut() else {
            return;
        };
        let next = st.session.external_exit(proc, strategy);
        st.progress += 1;
        let _ = after_call(env, self.tag, st, next, None);
    }
}

impl SessionState {
    fn arena(&mut self) -> &OwnedEnv {
        self.arena.get_or_insert_with(OwnedEnv::new)
    }

    fn save(&mut self, term: Term) -> SavedTerm {
        self.arena().save(term)
    }

    fn load<'a>(&self, env: Env<'a>, saved: &SavedTerm) -> Term<'a> {
        match &self.arena {
            Some(arena) => arena.run(|a| saved.load(a).in_env(env)),
            None => atoms::nil().encode(env),
        }
    }

    fn done_ref_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match &self.done_ref {
            Some(saved) => self.load(env, saved),
            None => atoms::nil().encode(env),
        }
    }

    fn pid_term<'a>(&self, env: Env<'a>, p: ProcId) -> Term<'a> {
        match self.pids.get(p as usize).copied().flatten() {
            Some(pid) => pid.encode(env),
            None => atoms::nil().encode(env),
        }
    }

    fn reason_term<'a>(&self, env: Env<'a>, reason: Reason) -> Term<'a> {
        match reason {
            Reason::Normal => atoms::normal().encode(env),
            Reason::Kill => atoms::kill().encode(env),
            Reason::Killed => atoms::killed().encode(env),
            Reason::NoProc => atoms::noproc().encode(env),
            Reason::NoConnection => atoms::noconnection().encode(env),
            Reason::ExitOf(p) => match self.exit_reasons.get(&p) {
                Some(saved) => self.load(env, saved),
                None => atoms::killed().encode(env),
            },
            Reason::Given(n) => match self.given_reasons.get(n as usize) {
                Some(saved) => self.load(env, saved),
                None => atoms::killed().encode(env),
            },
        }
    }

    fn intern(&mut self, name: Atom) -> NameId {
        if let Some(&id) = self.name_ids.get(&name) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.names.push(name);
        self.name_ids.insert(name, id);
        id
    }

    fn node_id(&mut self, node: Atom) -> NodeId {
        if let Some(i) = self.nodes.iter().position(|&n| n == node) {
            return i as NodeId;
        }
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// The id of a node this run started (or the home node), `None` for any other atom.
    fn known_node(&self, node: Atom) -> Option<NodeId> {
        let id = self.nodes.iter().position(|&n| n == node)? as NodeId;
        self.session.cluster().is_known(id).then_some(id)
    }

    fn pid(&self, p: ProcId) -> Option<LocalPid> {
        self.pids.get(p as usize).copied().flatten()
    }

    fn exited(&self, id: ProcId) -> bool {
        self.session
            .proc(id)
            .is_some_and(|p| p.state == ProcState::Exited)
    }

    fn node_atom(&self, node: NodeId) -> Atom {
        self.nodes
            .get(node as usize)
            .copied()
            .unwrap_or_else(atoms::nonode_at_nohost)
    }

    fn intern_global<'a>(&mut self, env: Env<'a>, name: Term<'a>) -> u32 {
        if let Some(i) = self.globals.iter().position(|s| self.load(env, s) == name) {
            return i as u32;
        }
        let saved = self.save(name);
        self.globals.push(saved);
        (self.globals.len() - 1) as u32
    }

    fn caller_node(&self, id: ProcId) -> NodeId {
        self.session.proc(id).map(|p| p.node).unwrap_or(0)
    }

    fn managed(&self, pid: &LocalPid) -> Option<ProcId> {
        self.by_pid.get(pid).copied()
    }

    /// Files terms announced with an operation under the ids the engine gave what the
    /// operation created. Runs only while something is announced.
    fn file_announced(&mut self) {
        let events = self.session.events();
        for (index, event) in events.iter().enumerate().skip(self.events_scanned) {
            let slot = match event.kind {
                EventKind::Send { .. }
                | EventKind::Monitor { .. }
                | EventKind::TimerStarted { .. }
                | EventKind::Nif { .. }
                    if self.announced.contains_key(&event.proc) =>
                {
                    event.kind.clone()
                }
                _ => continue,
            };
            let Some(saved) = self.announced.remove(&event.proc) else {
                continue;
            };
            match slot {
                EventKind::Send { msg, .. } => {
                    self.captured_msgs.insert(msg, saved);
                }
                EventKind::Monitor { monitor, .. } => {
                    self.monitor_refs.insert(monitor, saved);
                }
                EventKind::TimerStarted { timer, .. } => {
                    let is_send_after = self.session.timer(timer).is_some_and(|t| {
                        matches!(t.kind, lockstep_core::TimerKind::SendAfter { .. })
                    });
                    if is_send_after {
                        self.timer_data.insert(timer, saved);
                    } else {
                        // A receive's own timer: the announced term belongs to a later op.
                        self.announced.insert(event.proc, saved);
                    }
                }
                EventKind::Nif { .. } => {
                    self.captured_nifs.insert(index, saved);
                }
                _ => {}
            }
        }
        self.events_scanned = events.len();
    }
}

fn strategy_of(slot: &mut Option<RunStrategy>) -> NifResult<&mut RunStrategy> {
    slot.as_mut()
        .ok_or_else(|| internal_error("the session has no strategy (already finished)"))
}

/// For the owner's queries and teardown: a poisoned state is still good enough to list
/// and kill processes, and the run is failing with an internal error anyway.
fn lock_any(res: &SessionResource) -> MutexGuard<'_, SessionState> {
    res.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock(res: &SessionResource) -> NifResult<MutexGuard<'_, SessionState>> {
    res.state.lock().map_err(|_| {
        internal_error("the session state is poisoned by an earlier panic; the run cannot go on")
    })
}

/// Performs the engine's effects, tells the owner when the iteration is over, and wakes the
/// next process. Returns the value the calling NIF should return.
fn after_call<'a>(
    env: Env<'a>,
    tag: u64,
    st: &mut SessionState,
    next: Next,
    own_exit: Option<Term<'a>>,
) -> Term<'a> {
    after_call_carrying(env, tag, st, next, own_exit, None)
}

/// [`after_call`] for a caller that carries a message it sent (see `handoff`): handed over
/// with the result when the process that runs next is its target, about to try a receive
/// with nothing else untested; otherwise delivered before this call's own deliveries.
fn after_call_carrying<'a>(
    env: Env<'a>,
    tag: u64,
    st: &mut SessionState,
    next: Next,
    own_exit: Option<Term<'a>>,
    carry: Option<Carry<'a>>,
) -> Term<'a> {
    if !st.announced.is_empty() {
        st.file_announced();
    } else {
        st.events_scanned = st.session.events().len();
    }
    let handed = carry.and_then(|carry| {
        let receiver = match next {
            Next::Wake(_, OpResult::ReceiveAttempt { .. })
            | Next::Continue(OpResult::ReceiveAttempt { .. }) => st.session.running(),
            _ => None,
        };
        let untested = receiver
            .and_then(|p| st.session.proc(p))
            .map_or(0, |p| p.untested);
        if receiver.is_some_and(|p| carry.can_hand_to(st.pid(p), untested)) {
            Some(carry)
        } else {
            carry.deliver(env, tag);
            None
        }
    });
    if st.session.has_effects() {
        let effects: Vec<Effect> = st.session.take_effects().collect();
        for effect in effects {
            perform(env, tag, st, effect);
        }
    }
    if st.session.is_over() && !st.done_sent {
        st.done_sent = true;
        let reason = own_exit.unwrap_or_else(|| done_reason(env, st));
        let done_ref = st.done_ref_term(env);
        let _ = env.send(&st.owner, (done_ref, atoms::done(), reason));
    }
    let handed = handed.as_ref();
    match next {
        Next::Continue(result) => handed
            .and_then(|c| c.in_hand(env, result))
            .unwrap_or_else(|| result_term(env, st, result)),
        Next::Wake(proc, result) => {
            let term = handed
                .and_then(|c| c.in_hand(env, result))
                .unwrap_or_else(|| result_term(env, st, result));
            if let Some(pid) = st.pid(proc) {
                let _ = env.send(&pid, (tag, atoms::go(), term));
            }
            atoms::wait().encode(env)
        }
        Next::Ended => atoms::wait().encode(env),
    }
}

/// The reason the owner reports when the iteration ended other than by the caller's own
/// exit: the signal that killed the root or a process killed from outside.
fn done_reason<'a>(env: Env<'a>, st: &SessionState) -> Term<'a> {
    let proc = match st.session.outcome() {
        Some(Outcome::Exception { proc }) | Some(Outcome::Crash { proc }) => *proc,
        _ => return atoms::nil().encode(env),
    };
    let p = &st.session.procs()[proc as usize];
    let reason = st.reason_term(env, p.exit_reason);
    let empty: Vec<Term> = Vec::new();
    (atoms::exit(), reason, empty).encode(env)
}

fn perform(env: Env, tag: u64, st: &mut SessionState, effect: Effect) {
    match effect {
        Effect::Deliver { msg, to } => {
            let (Some(pid), Some(saved)) = (st.pid(to), st.held.remove(&msg)) else {
                return;
            };
            let payload = st.load(env, &saved);
            if st.capture {
                st.captured_msgs.insert(msg, saved);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::DeliverTimer { timer, msg, to } => {
            let (Some(pid), Some(saved)) = (st.pid(to), st.timer_data.get(&timer)) else {
                return;
            };
            let data = st.load(env, saved);
            let Ok((_ref, payload)) = data.decode::<(Term, Term)>() else {
                return;
            };
            if st.capture {
                let copy = st.save(payload);
                st.captured_msgs.insert(msg, copy);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::DeliverSignal { msg, to } => {
            let Some(pid) = st.pid(to) else {
                return;
            };
            let Some(m) = st.session.message(msg).copied() else {
                return;
            };
            let payload = match m.kind {
                MsgKind::Exit { reason, .. } => (
                    atoms::exit_tuple_tag(),
                    st.pid_term(env, m.from),
                    st.reason_term(env, reason),
                )
                    .encode(env),
                MsgKind::Down { monitor, reason } => {
                    let mref = match st.monitor_refs.get(&monitor) {
                        Some(saved) => st.load(env, saved),
                        None => atoms::nil().encode(env),
                    };
                    (
                        atoms::down_tuple_tag(),
                        mref,
                        atoms::process(),
                        st.pid_term(env, m.from),
                        st.reason_term(env, reason),
                    )
                        .encode(env)
                }
                MsgKind::NodeDown { node } => (atoms::nodedown(), st.node_atom(node)).encode(env),
                MsgKind::User => return,
            };
            if st.capture {
                let copy = st.save(payload);
                st.captured_msgs.insert(msg, copy);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::Kill { proc, reason } => {
            if let Some(pid) = st.pid(proc) {
                let reason = st.reason_term(env, reason);
                let _ = env.send(&pid, (tag, atoms::exit(), reason));
            }
        }
    }
}

fn result_term<'a>(env: Env<'a>, st: &SessionState, result: OpResult) -> Term<'a> {
    match result {
        OpResult::Started => atoms::start().encode(env),
        OpResult::ReceiveAttempt { last: false } => atoms::attempt().encode(env),
        OpResult::ReceiveAttempt { last: true } => atoms::attempt_last().encode(env),
        OpResult::Yielded | OpResult::Done => atoms::ok().encode(env),
        OpResult::Random(v) => v.encode(env),
        OpResult::Spawned { child } => child.encode(env),
        OpResult::Unregistered => atoms::unregistered().encode(env),
        OpResult::NoProc => atoms::noproc().encode(env),
        OpResult::Sent { msg, fate } => {
            let to = st.session.message(msg).and_then(|m| m.to);
            match (fate, to) {
                (SendFate::Delivered, None) => atoms::external().encode(env),
                (SendFate::Delivered, Some(p)) => {
                    (atoms::deliver(), msg, st.pid_term(env, p)).encode(env)
                }
                (SendFate::InFlight | SendFate::Deferred, to) => {
                    let pid = match to {
                        Some(p) => st.pid_term(env, p),
                        None => atoms::nil().encode(env),
                    };
                    (atoms::hold(), msg, pid).encode(env)
                }
                (SendFate::Dropped | SendFate::Cut, _) => atoms::drop().encode(env),
            }
        }
        OpResult::MonitorSet { .. } | OpResult::TimerSet { .. } => atoms::ok().encode(env),
        OpResult::WasTrapping(b) | OpResult::Alive(b) | OpResult::NameOk(b) => b.encode(env),
        OpResult::Found(Some(p)) => st.pid_term(env, p),
        OpResult::Found(None) => atoms::nil().encode(env),
        OpResult::Names | OpResult::NamesOn(_) => {
            let node = match result {
                OpResult::NamesOn(node) => node,
                _ => st
                    .session
                    .running()
                    .and_then(|p| st.session.proc(p))
                    .map(|p| p.node)
                    .unwrap_or(0),
            };
            let names: Vec<Atom> = st
                .session
                .registered_names(node)
                .into_iter()
                .map(|n| st.names[n as usize])
                .collect();
            names.encode(env)
        }
        OpResult::Now(ms) => ms.encode(env),
        OpResult::Cancelled(Some(ms)) => ms.encode(env),
        OpResult::Cancelled(None) => false.encode(env),
        OpResult::NodeList { up_only } => {
            let nodes: Vec<Atom> = st
                .session
                .nodes(up_only)
                .into_iter()
                .map(|n| st.node_atom(n))
                .collect();
            nodes.encode(env)
        }
        OpResult::NodeIs(n) => st.node_atom(n).encode(env),
        OpResult::GlobalList(node) => {
            let names: Vec<Term> = st
                .session
                .global_names(node)
                .into_iter()
                .filter_map(|n| st.globals.get(n as usize).map(|s| st.load(env, s)))
                .collect();
            names.encode(env)
        }
    }
}

/// The caller must be the managed process the context `id` belongs to; a context copied
/// into another process raises `Lockstep.NotManagedError` (`:ended` once the iteration is
/// over, so a stale context never parks its caller forever).
fn caller_check(env: Env, st: &SessionState, id: ProcId) -> NifResult<()> {
    let owner = st.pids.get(id as usize).copied().flatten();
    match owner {
        Some(pid) if pid == env.pid() => Ok(()),
        _ => Err(not_managed_error(st.session.is_over(), env.pid(), owner)),
    }
}

fn engine_error(e: lockstep_core::EngineError) -> rustler::Error {
    internal_error(&e.to_string())
}

/// Announces `op` for process `id`; `announce` is a term to keep until the op is applied.
fn sync_with<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    announce: Option<Term<'a>>,
    make_op: impl FnOnce(&mut SessionState) -> Result<Op, Term<'a>>,
) -> NifResult<Term<'a>> {
    sync_announcing(env, res, id, announce, false, make_op)
}

/// Like `sync_with`; a `capture_only` announced term (a payload for the report) is kept
/// only when the session captures.
fn sync_announcing<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    announce: Option<Term<'a>>,
    capture_only: bool,
    make_op: impl FnOnce(&mut SessionState) -> Result<Op, Term<'a>>,
) -> NifResult<Term<'a>> {
    sync_pending(
        env,
        res,
        id,
        Pending::Nothing,
        announce,
        capture_only,
        make_op,
    )
}

/// The one entry of every sync point: reports what the caller brings from its last call
/// (`handoff`), announces the operation and hands the turn on.
fn sync_pending<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    pending: Pending<'a>,
    announce: Option<Term<'a>>,
    capture_only: bool,
    make_op: impl FnOnce(&mut SessionState) -> Result<Op, Term<'a>>,
) -> NifResult<Term<'a>> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        // Over, or killed by an exit signal while running: park and meet the exit message.
        // A message sent before that is in its target's mailbox all the same.
        if let Pending::Carry(carry) = pending {
            carry.deliver(env, res.tag);
        }
        return Ok(atoms::wait().encode(env));
    }
    let carry = take_pending(st, id, pending)?;
    let op = match make_op(st) {
        Ok(op) => op,
        Err(early) => {
            if let Some(carry) = carry {
                carry.deliver(env, res.tag);
            }
            return Ok(early);
        }
    };
    if let Some(term) = announce.filter(|_| st.capture || !capture_only) {
        let saved = st.save(term);
        st.announced.insert(id, saved);
    }
    st.progress += 1;
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.sync(id, op, strategy).map_err(engine_error)?;
    Ok(after_call_carrying(env, res.tag, st, next, None, carry))
}

/// Reports a message the caller took since its last call; returns the one it carries.
fn take_pending<'a>(
    st: &mut SessionState,
    id: ProcId,
    pending: Pending<'a>,
) -> NifResult<Option<Carry<'a>>> {
    match pending {
        Pending::Nothing => Ok(None),
        Pending::Consumed(msg) => {
            st.session.consumed(id, msg).map_err(engine_error)?;
            Ok(None)
        }
        Pending::Carry(carry) => Ok(Some(carry)),
    }
}

fn sync<'a>(env: Env<'a>, res: &SessionResource, id: ProcId, op: Op) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |_| Ok(op))
}

/// Resolves a managed pid or answers `:unmanaged` without making a sync point.
fn managed_or<'a>(env: Env<'a>, st: &SessionState, pid: LocalPid) -> Result<ProcId, Term<'a>> {
    st.managed(&pid)
        .ok_or_else(|| atoms::unmanaged().encode(env))
}

/// `pid`, `name` or `{name, node}`.
fn decode_target<'a>(
    env: Env<'a>,
    st: &mut SessionState,
    dest: Term<'a>,
) -> Result<Target, Term<'a>> {
    if let Ok(pid) = dest.decode::<LocalPid>() {
        return Ok(match st.managed(&pid) {
            Some(p) => Target::Proc(p),
            None => Target::External,
        });
    }
    if let Ok(name) = dest.decode::<Atom>() {
        return Ok(Target::Name(st.intern(name)));
    }
    if let Ok((tag, pid, alias)) = dest.decode::<(Atom, LocalPid, u32)>() {
        if tag == atoms::lockstep_alias() {
            return match st.managed(&pid) {
                Some(p) => Ok(Target::Alias(p, alias)),
                None => Ok(Target::External),
            };
        }
    }
    if let Ok((tag, name)) = dest.decode::<(Atom, Term)>() {
        if tag == atoms::lockstep_global() {
            return Ok(Target::Global(st.intern_global(env, name)));
        }
    }
    if let Ok((name, node)) = dest.decode::<(Atom, Atom)>() {
        let name = st.intern(name);
        let node = st.node_id(node);
        return Ok(Target::NameAt(name, node));
    }
    Err(atoms::badarg().encode(env))
}

// ---------------------------------------------------------------------------------------
// Strategies and sessions

fn strategy_from_spec(spec: Term) -> NifResult<Box<dyn Strategy>> {
    let bad = || internal_error("unknown strategy spec");
    if let Ok(name) = spec.decode::<Atom>() {
        if name == atoms::random() {
            return Ok(Box::new(RandomWalk::new()));
        }
        if name == atoms::pos() {
            return Ok(Box::new(Pos::new()));
        }
        return Err(bad());
    }
    if let Ok((name, a)) = spec.decode::<(Atom, Term)>() {
        if name == atoms::pct() {
            return Ok(Box::new(Pct::new(a.decode::<u32>()?)));
        }
        if name == atoms::replay() {
            return Ok(Box::new(Replay::new(decode_schedule(a)?)));
        }
        return Err(bad());
    }
    if let Ok((name, a, b)) = spec.decode::<(Atom, Term, Term)>() {
        if name == atoms::replay() {
            return Ok(Box::new(Replay::with_random_fallback(
                decode_schedule(a)?,
                b.decode::<u64>()?,
            )));
        }
        if name == atoms::shrink_replay() {
            return Ok(Box::new(Replay::lenient(
                decode_schedule(a)?,
                b.decode::<u64>()?,
            )));
        }
        if name == atoms::fair_pct() {
            return Ok(Box::new(FairPct::new(a.decode()?, b.decode()?)));
        }
        if name == atoms::idpct() {
            return Ok(Box::new(IdPct::new(a.decode()?, b.decode()?)));
        }
    }
    Err(bad())
}

#[rustler::nif]
fn strategy_new(spec: Term) -> NifResult<ResourceArc<StrategyCell>> {
    Ok(ResourceArc::new(StrategyCell {
        strategy: Mutex::new(Some(Metered::new(strategy_from_spec(spec)?))),
    }))
}

/// `config` is `{max_steps, delivery, crash, timers}`.
#[rustler::nif]
fn session_new<'a>(
    env: Env<'a>,
    cell: ResourceArc<StrategyCell>,
    seed: u64,
    config: (u64, Atom, Atom, Atom),
    capture: bool,
    done_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let (max_steps, delivery, crash, timers) = config;
    let config = Config {
        max_steps,
        delivery: if delivery == atoms::delayed() {
            DeliveryMode::Delayed
        } else {
            DeliveryMode::Instant
        },
        crash: if crash == atoms::ignore() {
            CrashMode::Ignore
        } else {
            CrashMode::Fail
        },
        timers: if timers == atoms::anytime() {
            TimerMode::Anytime
        } else {
            TimerMode::OnIdle
        },
    };
    let mut strategy = cell
        .strategy
        .lock()
        .map_err(|_| internal_error("the strategy state is poisoned"))?
        .take()
        .ok_or_else(|| {
            internal_error("this run's strategy is already in use by another iteration")
        })?;
    let session = Session::new(config, &mut strategy, seed);
    let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
    LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
    let owner = env.pid();
    let mut state = SessionState {
        session,
        strategy: Some(strategy),
        cell,
        owner,
        pids: vec![None],
        by_pid: HashMap::default(),
        arena: None,
        held: HashMap::new(),
        announced: HashMap::new(),
        events_scanned: 0,
        exit_reasons: HashMap::new(),
        given_reasons: Vec::new(),
        monitor_refs: HashMap::new(),
        timer_data: HashMap::new(),
        names: Vec::new(),
        name_ids: HashMap::new(),
        nodes: vec![atoms::nonode_at_nohost()],
        globals: Vec::new(),
        ets_tables: Vec::new(),
        capture,
        captured_msgs: HashMap::new(),
        captured_nifs: HashMap::new(),
        captured_exits: HashMap::new(),
        done_sent: false,
        needs_cleanup: false,
        progress: 0,
        done_ref: None,
        outside_crashes: HashMap::new(),
    };
    state.done_ref = Some(state.save(done_ref));
    let resource = ResourceArc::new(SessionResource {
        tag,
        state: Mutex::new(state),
    });
    env.monitor(&resource, &owner);
    Ok((resource, tag).encode(env))
}

/// Registers the root's pid and makes the first decision (which wakes the root).
#[rustler::nif]
fn session_start<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    root: LocalPid,
) -> NifResult<Term<'a>> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if st.pids[0].is_some() {
        return Err(internal_error("the session was already started"));
    }
    st.pids[0] = Some(root);
    st.by_pid.insert(root, 0);
    env.monitor(&res, &root);
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.start(strategy);
    after_call(env, res.tag, st, next, None);
    Ok(atoms::ok().encode(env))
}

/// Called by a parent right after it spawned the BEAM process for engine id `child`.
#[rustler::nif]
fn register_child(
    env: Env,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    child: ProcId,
    pid: LocalPid,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    match st.session.proc(child) {
        Some(p) if p.parent == Some(id) => {}
        _ => return Err(internal_error("register_child: not a child of the caller")),
    }
    if st.pids.len() <= child as usize {
        st.pids.resize(child as usize + 1, None);
    }
    st.pids[child as usize] = Some(pid);
    st.by_pid.insert(pid, child);
    env.monitor(&res, &pid);
    Ok(atoms::ok())
}

#[rustler::nif]
fn sync_send<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    dest: Term<'a>,
    payload: Term<'a>,
    pending: Term<'a>,
) -> NifResult<Term<'a>> {
    let pending = Pending::decode(pending)?;
    sync_pending(env, res, id, pending, Some(payload), true, |st| {
        let to = decode_target(env, st, dest)?;
        Ok(Op::Send { to })
    })
}

#[rustler::nif]
fn sync_receive<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    retry: bool,
    timeout: Option<u64>,
    pending: Term<'a>,
) -> NifResult<Term<'a>> {
    let pending = Pending::decode(pending)?;
    let op = Op::Receive { retry, timeout };
    sync_pending(env, res, id, pending, None, false, |_| Ok(op))
}

#[rustler::nif(name = "yield")]
fn sync_yield<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    pending: Term<'a>,
) -> NifResult<Term<'a>> {
    let pending = Pending::decode(pending)?;
    sync_pending(env, res, id, pending, None, false, |_| Ok(Op::Yield))
}

#[rustler::nif]
fn sync_random<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    n: u64,
) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::Random { n })
}

#[rustler::nif]
fn sync_spawn<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    link: bool,
    node: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        // `Option<Atom>` would decode `nil` as the atom nil: compare explicitly.
        if node == atoms::nil().encode(env) {
            return Ok(Op::Spawn { link });
        }
        let node = node
            .decode::<Atom>()
            .map_err(|_| atoms::badnode().encode(env))?;
        match st.known_node(node) {
            Some(node) => Ok(Op::SpawnOn { link, node }),
            None => Err(atoms::badnode().encode(env)),
        }
    })
}

#[rustler::nif]
fn sync_link<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    pid: LocalPid,
    on: bool,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let to = managed_or(env, st, pid)?;
        Ok(if on {
            Op::Link { to }
        } else {
            Op::Unlink { to }
        })
    })
}

#[rustler::nif]
fn sync_monitor<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    pid: LocalPid,
    mref: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, Some(mref), |st| {
        let target = managed_or(env, st, pid)?;
        Ok(Op::Monitor { target })
    })
}

#[rustler::nif]
fn sync_demonitor<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    mref: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let monitor = st
            .monitor_refs
            .iter()
            .find(|(_, saved)| st.load(env, saved) == mref)
            .map(|(&m, _)| m);
        Ok(Op::Demonitor { monitor })
    })
}

#[rustler::nif]
fn sync_trap_exit<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    on: bool,
) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::TrapExit { on })
}

#[rustler::nif]
fn sync_exit_signal<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    pid: LocalPid,
    reason: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let to = managed_or(env, st, pid)?;
        let reason = if reason == atoms::normal().encode(env) {
            Reason::Normal
        } else if reason == atoms::kill().encode(env) {
            Reason::Kill
        } else {
            let saved = st.save(reason);
            st.given_reasons.push(saved);
            Reason::Given((st.given_reasons.len() - 1) as u32)
        };
        Ok(Op::ExitSignal { to, reason })
    })
}

#[rustler::nif]
fn sync_alive<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    pid: LocalPid,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let of = managed_or(env, st, pid)?;
        Ok(Op::Alive { of })
    })
}

/// `op` is `{:register, name, pid}`, `{:unregister, name}`, `{:whereis, name}` or
/// `:registered`.
#[rustler::nif]
fn sync_name<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        if let Ok((tag, name, pid)) = op.decode::<(Atom, Atom, LocalPid)>() {
            if tag == atoms::register() {
                let proc = managed_or(env, st, pid)?;
                return Ok(Op::Register {
                    name: st.intern(name),
                    proc,
                });
            }
        }
        if let Ok((tag, name)) = op.decode::<(Atom, Atom)>() {
            let name = st.intern(name);
            if tag == atoms::unregister() {
                return Ok(Op::Unregister { name });
            }
            if tag == atoms::whereis() {
                return Ok(Op::Whereis { name });
            }
        }
        if op.decode::<Atom>().is_ok_and(|a| a == atoms::registered()) {
            return Ok(Op::Registered);
        }
        Err(atoms::badarg().encode(env))
    })
}

/// `op` is `:now` or `{:sleep, ms}`.
#[rustler::nif]
fn sync_time<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |_| {
        if let Ok((_, ms)) = op.decode::<(Atom, u64)>() {
            return Ok(Op::Sleep { ms });
        }
        Ok(Op::Now)
    })
}

#[rustler::nif]
fn sync_send_after<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    dest: Term<'a>,
    payload: Term<'a>,
    ms: u64,
    tref: Term<'a>,
) -> NifResult<Term<'a>> {
    let data = (tref, payload).encode(env);
    sync_with(env, &res, id, Some(data), |st| {
        let to = decode_target(env, st, dest)?;
        Ok(Op::SendAfter { to, ms })
    })
}

#[rustler::nif]
fn sync_cancel_timer<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    tref: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let timer = st
            .timer_data
            .iter()
            .find(|(_, saved)| {
                st.load(env, saved)
                    .decode::<(Term, Term)>()
                    .is_ok_and(|(r, _)| r == tref)
            })
            .map(|(&t, _)| t);
        Ok(Op::CancelTimer { timer })
    })
}

/// A shared-state sync point; `kind` is shown in the trace (captured), `object` is a hash
/// of what it touches (`nil` when unknown).
#[rustler::nif]
fn sync_nif<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    kind: Term<'a>,
    object: Option<u64>,
) -> NifResult<Term<'a>> {
    sync_announcing(env, &res, id, Some(kind), true, |_| Ok(Op::Nif { object }))
}

/// The caller found message `msg` matching in its mailbox. Not a sync point.
#[rustler::nif]
fn consumed(
    env: Env,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    msg: MsgId,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    st.session.consumed(id, msg).map_err(engine_error)?;
    Ok(atoms::ok())
}

/// A cluster operation (a sync point): `{:start_node, n}`, `{:stop_node, n}`,
/// `{:partition, group_a, group_b, :drop | :defer}`, `:heal`, `{:monitor_node, n}`,
/// `{:set_ticktime, ms}`, `:nodes`, `:nodes_up`, `{:node_of, pid}`,
/// `{:global_register, name, pid}`, `{:global_unregister, name}`, `{:global_whereis, name}`,
/// `:global_names`. Answers `:badnode` / `:unmanaged` without a sync point on bad input.
#[rustler::nif]
fn sync_cluster<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, &res, id, None, |st| {
        let badnode = || atoms::badnode().encode(env);
        let badarg = || atoms::badarg().encode(env);
        if let Ok(tag) = op.decode::<Atom>() {
            return Ok(Op::Cluster(if tag == atoms::heal() {
                ClusterOp::Heal
            } else if tag == atoms::nodes() {
                ClusterOp::Nodes
            } else if tag == atoms::nodes_up() {
                ClusterOp::NodesUp
            } else if tag == atoms::global_names() {
                ClusterOp::GlobalNames
            } else {
                return Err(badarg());
            }));
        }
        if let Ok((tag, a, b, mode)) = op.decode::<(Atom, Vec<Atom>, Vec<Atom>, Atom)>() {
            if tag != atoms::partition() {
                return Err(badarg());
            }
            let group = |st: &SessionState, g: Vec<Atom>| -> Option<Vec<NodeId>> {
                g.into_iter().map(|n| st.known_node(n)).collect()
            };
            let (Some(a), Some(b)) = (group(st, a), group(st, b)) else {
                return Err(badnode());
            };
            let mode = if mode == atoms::defer() {
                PartitionMode::Defer
            } else {
                PartitionMode::Drop
            };
            let index = st.session.define_partition(a, b, mode);
            return Ok(Op::Cluster(ClusterOp::Partition(index)));
        }
        if let Ok((tag, name, node)) = op.decode::<(Atom, Atom, Atom)>() {
            if tag == atoms::whereis() {
                let node = st.known_node(node).ok_or_else(badnode)?;
                let name = st.intern(name);
                return Ok(Op::Cluster(ClusterOp::WhereisOn { name, node }));
            }
        }
        if let Ok((tag, name, pid)) = op.decode::<(Atom, Term, LocalPid)>() {
            if tag == atoms::global_register() {
                let proc = managed_or(env, st, pid)?;
                let name = st.intern_global(env, name);
                return Ok(Op::Cluster(ClusterOp::GlobalRegister { name, proc }));
            }
            return Err(badarg());
        }
        let Ok((tag, arg)) = op.decode::<(Atom, Term)>() else {
            return Err(badarg());
        };
        if tag == atoms::global_unregister() {
            return Ok(Op::Cluster(ClusterOp::GlobalUnregister(
                st.intern_global(env, arg),
            )));
        }
        if tag == atoms::global_whereis() {
            return Ok(Op::Cluster(ClusterOp::GlobalWhereis(
                st.intern_global(env, arg),
            )));
        }
        if tag == atoms::set_ticktime() {
            let ms = arg.decode::<u64>().map_err(|_| badarg())?;
            return Ok(Op::Cluster(ClusterOp::SetTicktime(ms)));
        }
        if tag == atoms::node_of() {
            let pid = arg.decode::<LocalPid>().map_err(|_| badarg())?;
            let proc = managed_or(env, st, pid)?;
            return Ok(Op::Cluster(ClusterOp::NodeOf(proc)));
        }
        let node = arg.decode::<Atom>().map_err(|_| badarg())?;
        if tag == atoms::start_node() {
            return Ok(Op::Cluster(ClusterOp::StartNode(st.node_id(node))));
        }
        if tag == atoms::registered() {
            let node = st.known_node(node).ok_or_else(badnode)?;
            return Ok(Op::Cluster(ClusterOp::NamesOn(node)));
        }
        if tag == atoms::monitor_node() {
            return Ok(Op::Cluster(ClusterOp::MonitorNode(st.node_id(node))));
        }
        if tag == atoms::stop_node() {
            let node = st.known_node(node).ok_or_else(badnode)?;
            return Ok(Op::Cluster(ClusterOp::StopNode(node)));
        }
        Err(badarg())
    })
}

/// The caller's simulated node. Not a sync point (a process's node never changes).
#[rustler::nif]
fn node_name(env: Env, res: ResourceArc<SessionResource>, id: ProcId) -> NifResult<Atom> {
    let st = lock(&res)?;
    caller_check(env, &st, id)?;
    Ok(st.node_atom(st.caller_node(id)))
}

/// Named ETS tables per simulated node: `op` is `{:register, name, tid}` (→ boolean),
/// `{:whereis, name}` (→ tid or nil) or `{:unregister, name}` (→ boolean). Not sync points:
/// the ETS wrapper has made its sync point already.
#[rustler::nif]
fn ets_names<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    let node = st.caller_node(id);
    if let Ok((tag, name, tid)) = op.decode::<(Atom, Atom, Term)>() {
        if tag == atoms::register() {
            let name = st.intern(name);
            let slot = st.ets_tables.len() as u32;
            let ok = st.session.ets_register(node, name, slot);
            if ok {
                let saved = st.save(tid);
                st.ets_tables.push(saved);
            }
            return Ok(ok.encode(env));
        }
    }
    if let Ok((tag, name)) = op.decode::<(Atom, Atom)>() {
        let name = st.intern(name);
        if tag == atoms::unregister() {
            return Ok(st.session.ets_unregister(node, name).encode(env));
        }
        if tag == atoms::whereis() {
            return Ok(match st.session.ets_lookup(node, name) {
                Some(slot) => st.load(env, &st.ets_tables[slot as usize]),
                None => atoms::nil().encode(env),
            });
        }
    }
    Err(internal_error("ets_names: bad operation"))
}

/// An unmanaged process linked to managed process `id` is about to raise `report` (a
/// Lockstep call made outside the run), which will kill `id` through the real link. Kept
/// for `outside_crashes/1`. Not a sync point; any process may call it.
#[rustler::nif]
fn note_outside_crash(
    res: ResourceArc<SessionResource>,
    id: ProcId,
    report: Term,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if !st.session.is_over() && st.session.proc(id).is_some() {
        let saved = st.save(report);
        st.outside_crashes.insert(id, saved);
    }
    Ok(atoms::ok())
}

/// `[{name, report}]`: the noted reports of processes that were then killed from outside
/// the run.
#[rustler::nif]
fn outside_crashes<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    let list: Vec<Term> = st
        .outside_crashes
        .iter()
        .filter_map(|(&id, saved)| {
            let p = st.session.proc(id)?;
            matches!(p.exit, Some(ExitCause::External))
                .then(|| (name_term(env, &p.name), st.load(env, saved)).encode(env))
        })
        .collect();
    Ok(list.encode(env))
}

/// Marks the session as having stored state the owner must clean up when it ends.
#[rustler::nif]
fn mark_cleanup(res: ResourceArc<SessionResource>) -> NifResult<Atom> {
    lock(&res)?.needs_cleanup = true;
    Ok(atoms::ok())
}

/// Activates (`on`) or deactivates an alias of the caller. Not a sync point.
#[rustler::nif]
fn alias(
    env: Env,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    number: u32,
    on: bool,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    let result = if on {
        st.session.alias(id, number)
    } else {
        st.session.unalias(id, number)
    };
    result.map_err(engine_error)?;
    Ok(atoms::ok())
}

/// Under `delivery: :delayed` the sender hands over the payload of message `msg`, which the
/// engine keeps in flight until the strategy delivers it.
#[rustler::nif]
fn hold(
    env: Env,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    msg: MsgId,
    payload: Term,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    let saved = st.save(payload);
    st.held.insert(msg, saved);
    Ok(atoms::ok())
}

/// The caller's own code ended. `class` (`:normal` or `:abnormal`) decides whether it is a
/// crash; `report` is the reason shown in the report (with its stacktrace); `reason` is the
/// OTP exit reason linked and monitoring processes see.
#[rustler::nif]
fn exit<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    class: Atom,
    report: Term<'a>,
    reason: Term<'a>,
    pending: Term<'a>,
) -> NifResult<Term<'a>> {
    let pending = Pending::decode(pending)?;
    let mut guard = lock(res)?;
    let st = &mut *guard;
    if st.session.is_over() || st.exited(id) {
        if let Pending::Carry(carry) = pending {
            carry.deliver(env, res.tag);
        }
        return Ok(atoms::ok().encode(env));
    }
    caller_check(env, st, id)?;
    let carry = take_pending(st, id, pending)?;
    st.progress += 1;
    let class = if class == atoms::normal() {
        ExitClass::Normal
    } else {
        ExitClass::Abnormal
    };
    let signal_reason = if reason == atoms::normal().encode(env) {
        Reason::Normal
    } else {
        let saved = st.save(reason);
        st.exit_reasons.insert(id, saved);
        Reason::ExitOf(id)
    };
    if st.capture {
        let saved = st.save(report);
        st.captured_exits.insert(id, saved);
    }
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st
        .session
        .exit_with(id, class, signal_reason, strategy)
        .map_err(engine_error)?;
    // The report is this process's own reason only if its exit is what failed the run
    // (a signal it sent may instead have killed the root).
    let own = matches!(
        st.session.outcome(),
        Some(Outcome::Exception { proc } | Outcome::Crash { proc }) if *proc == id
    );
    after_call_carrying(env, res.tag, st, next, own.then_some(report), carry);
    Ok(atoms::ok().encode(env))
}

/// The caller, a managed process that is not running user code (parked at a sync point or
/// not started), got an exit signal from outside the run: `{:EXIT, from, reason}` with a
/// `reason` other than `:normal` (managed processes trap real exit signals so that they
/// can tell the reason; `:kill` cannot be trapped and is noticed by the resource monitor).
/// The engine records its death with that reason, which its linked and monitoring
/// processes then see; the caller exits for real right after.
#[rustler::nif]
fn external_exit<'a>(
    env: Env<'a>,
    res: ResourceArc<SessionResource>,
    id: ProcId,
    reason: Term<'a>,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    caller_check(env, st, id)?;
    st.progress += 1;
    let saved = st.save(reason);
    st.exit_reasons.insert(id, saved);
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st
        .session
        .external_exit_with(id, Reason::ExitOf(id), strategy);
    after_call(env, res.tag, st, next, None);
    Ok(atoms::ok())
}

// ---------------------------------------------------------------------------------------
// Owner-side queries

/// How many sessions the BEAM has not freed yet (see `LIVE_SESSIONS`).
#[rustler::nif]
fn live_sessions() -> u64 {
    LIVE_SESSIONS.load(Ordering::Relaxed)
}

#[rustler::nif]
fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    lockstep_core::iteration_seed(seed, iteration)
}

/// Ends the iteration from the owner's side (a process is stuck): later calls from managed
/// processes see the iteration is over and park.
#[rustler::nif]
fn session_abort(res: ResourceArc<SessionResource>) -> NifResult<Atom> {
    let mut st = lock_any(&res);
    st.session.abort();
    st.done_sent = true;
    Ok(atoms::ok())
}

#[rustler::nif]
fn progress<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    let running = match st.session.running() {
        Some(p) => st.pid_term(env, p),
        None => atoms::nil().encode(env),
    };
    Ok((st.progress, st.session.step(), running, st.session.now()).encode(env))
}

#[rustler::nif]
fn outcome<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    Ok(outcome_term(env, &st))
}

fn outcome_term<'a>(env: Env<'a>, st: &SessionState) -> Term<'a> {
    let names = |p: ProcId| name_term(env, &st.session.procs()[p as usize].name);
    match st.session.outcome() {
        None => atoms::nil().encode(env),
        Some(Outcome::Pass) => atoms::pass().encode(env),
        Some(Outcome::MaxSteps) => atoms::max_steps().encode(env),
        Some(Outcome::Exception { proc }) => (atoms::exception(), names(*proc)).encode(env),
        Some(Outcome::Crash { proc }) => (atoms::crash(), names(*proc)).encode(env),
        Some(Outcome::Deadlock { blocked }) => {
            let blocked: Vec<Term> = blocked.iter().map(|&p| names(p)).collect();
            (atoms::deadlock(), blocked).encode(env)
        }
        Some(Outcome::Aborted { running }) => {
            let running = match running {
                Some(p) => names(*p),
                None => atoms::nil().encode(env),
            };
            (atoms::aborted(), running).encode(env)
        }
        Some(Outcome::Diverged(d)) => {
            let expected = match &d.expected {
                Some(e) => decision_term(env, e),
                None => atoms::nil().encode(env),
            };
            let got: Vec<Term> = d.got.iter().map(|g| decision_term(env, g)).collect();
            (atoms::diverged(), d.step, expected, got).encode(env)
        }
    }
}

#[rustler::nif]
fn schedule<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    let list: Vec<Term> = st
        .session
        .schedule()
        .iter()
        .map(|d| decision_term(env, d))
        .collect();
    Ok(list.encode(env))
}

/// The events of the iteration as `{step, event}` terms; payloads and exit reasons are
/// included when the session was created with capture on.
#[rustler::nif]
fn trace<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    let events: Vec<Term> = st
        .session
        .events()
        .iter()
        .enumerate()
        .map(|(i, e)| convert::event_term(env, &st, i, e))
        .collect();
    Ok(events.encode(env))
}

/// `[{id, name, pid | nil, state, pending, node}]` for every process of the iteration.
#[rustler::nif]
fn procs<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock_any(&res);
    let list: Vec<Term> = st
        .session
        .procs()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let state = match p.state {
                ProcState::Ready => atoms::ready(),
                ProcState::Running => atoms::running(),
                ProcState::Blocked => atoms::blocked(),
                ProcState::Exited => atoms::exited(),
            };
            let node = st
                .nodes
                .get(p.node as usize)
                .copied()
                .unwrap_or_else(atoms::nonode_at_nohost);
            (
                i as u32,
                name_term(env, &p.name),
                st.pid_term(env, i as ProcId),
                state,
                convert::pending_term(env, p),
                node,
            )
                .encode(env)
        })
        .collect();
    Ok(list.encode(env))
}

/// Ends the iteration for the strategy and hands the strategy back to the run.
/// Returns `{outcome, %{steps:, context_switches:, contested_steps:, fingerprint:}}`.
#[rustler::nif]
fn session_finish<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let mut guard = lock_any(&res);
    let st = &mut *guard;
    let mut metrics = None;
    if let Some(mut strategy) = st.strategy.take() {
        st.session.finish(&mut strategy);
        metrics = Some(strategy.metrics());
        if let Ok(mut slot) = st.cell.strategy.lock() {
            *slot = Some(strategy);
        }
    }
    st.done_sent = true;
    let m = metrics.unwrap_or_default();
    let metrics = Term::map_from_pairs(
        env,
        &[
            (atoms::steps().encode(env), m.steps.encode(env)),
            (
                atoms::context_switches().encode(env),
                m.context_switches.encode(env),
            ),
            (
                atoms::contested_steps().encode(env),
                m.contested_steps.encode(env),
            ),
            (atoms::fingerprint().encode(env), m.fingerprint.encode(env)),
            (atoms::cleanup().encode(env), st.needs_cleanup.encode(env)),
        ],
    )?;
    Ok((outcome_term(env, st), metrics).encode(env))
}

rustler::init!("Elixir.Lockstep.Native");
