//! The BEAM adapter for `lockstep_core`: resources, term ↔ engine conversions, wake-ups and
//! error mapping. It holds no scheduling policy.
//!
//! Hot path: a managed process calls one `sync_*` NIF with the operation it is about to
//! perform. The engine decides who goes next; if that is another process the NIF sends it
//! `{tag, :go, result}` itself (from the caller's env) and returns `:wait`, and the caller
//! parks in a plain `receive` on the run-unique integer `tag`. If the caller is picked again
//! the NIF returns the operation's result at once. No controller process is involved.

mod convert;

use convert::{atoms, decision_term, decode_schedule, event_term, internal_error, name_term};
use lockstep_core::strategy::{Pct, RandomWalk, Replay};
use lockstep_core::{
    Config, CrashMode, DeliveryMode, Effect, ExitClass, MsgId, Next, Op, OpResult, Outcome,
    ProcId, ProcState, SendFate, Session, Strategy,
};
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Atom, Encoder, Env, LocalPid, Monitor, NifResult, Resource, ResourceArc, Term};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Tags are unique in the VM so a stale wake-up can never be mistaken for a current one.
static NEXT_TAG: AtomicU64 = AtomicU64::new(0x4C53_0000_0000);

/// A run's strategy, kept between iterations (PCT learns the run length across them). An
/// iteration borrows it for its lifetime and gives it back in `session_finish`.
pub struct StrategyCell {
    strategy: Mutex<Option<Box<dyn Strategy>>>,
}

#[rustler::resource_impl]
impl Resource for StrategyCell {}

pub struct SessionResource {
    tag: u64,
    state: Mutex<SessionState>,
}

struct SessionState {
    session: Session,
    strategy: Option<Box<dyn Strategy>>,
    cell: ResourceArc<StrategyCell>,
    owner: LocalPid,
    /// BEAM pid of each managed process, by engine id (`None` until registered).
    pids: Vec<Option<LocalPid>>,
    by_pid: HashMap<LocalPid, ProcId>,
    /// Payloads waiting in flight (`delivery: :delayed`) and, when capturing, every payload
    /// and exit reason for the report. Allocated only when needed.
    arena: Option<OwnedEnv>,
    held: HashMap<MsgId, SavedTerm>,
    capture: bool,
    captured_msgs: HashMap<MsgId, SavedTerm>,
    captured_exits: HashMap<ProcId, SavedTerm>,
    /// A send's payload, captured when announced, until the engine applies and numbers it.
    announced_payloads: HashMap<ProcId, SavedTerm>,
    /// Events already scanned for newly numbered sends (capture only).
    events_scanned: usize,
    done_sent: bool,
    /// Counts engine calls so the owner can tell a process that stopped reaching sync
    /// points (`:stuck`).
    progress: u64,
}

#[rustler::resource_impl]
impl Resource for SessionResource {
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let st = &mut *st;
        if pid == st.owner {
            // The test process is gone: nobody will tear the run down, so tell every parked
            // process to exit now.
            for p in st.pids.iter().flatten() {
                let _ = env.send(p, (self.tag, atoms::exit(), atoms::kill()));
            }
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
        let Some(strategy) = st.strategy.as_deref_mut() else {
            return;
        };
        let next = st.session.external_exit(proc, strategy);
        st.progress += 1;
        let reason = atoms::killed().encode(env);
        if st.capture {
            st.capture_exit(proc, reason);
        }
        let _ = after_call(env, self.tag, st, next, Some(reason));
    }
}

impl SessionState {
    fn arena(&mut self) -> &OwnedEnv {
        self.arena.get_or_insert_with(OwnedEnv::new)
    }

    fn capture_exit(&mut self, proc: ProcId, reason: Term) {
        let saved = self.arena().save(reason);
        self.captured_exits.insert(proc, saved);
    }

    /// Files each announced payload under the message id its send was given when applied.
    fn number_captured_sends(&mut self) {
        let events = self.session.events();
        for event in &events[self.events_scanned..] {
            if let lockstep_core::EventKind::Send { msg, .. } = event.kind {
                if let Some(saved) = self.announced_payloads.remove(&event.proc) {
                    self.captured_msgs.insert(msg, saved);
                }
            }
        }
        self.events_scanned = events.len();
    }

}

fn strategy_of(slot: &mut Option<Box<dyn Strategy>>) -> NifResult<&mut (dyn Strategy + 'static)> {
    slot.as_deref_mut()
        .ok_or_else(|| internal_error("the session has no strategy (already finished)"))
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
    exit_reason: Option<Term<'a>>,
) -> Term<'a> {
    if st.capture {
        st.number_captured_sends();
    }
    let effects: Vec<Effect> = st.session.take_effects().collect();
    for effect in effects {
        match effect {
            Effect::Deliver { msg, to } => {
                let (Some(pid), Some(saved)) = (st.pids[to as usize], st.held.remove(&msg)) else {
                    continue;
                };
                let payload = match &st.arena {
                    Some(arena) => arena.run(|a| saved.load(a).in_env(env)),
                    None => continue,
                };
                let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
            }
            Effect::Kill { proc, .. } => {
                if let Some(pid) = st.pids[proc as usize] {
                    let reason = exit_reason.unwrap_or_else(|| atoms::killed().encode(env));
                    let _ = env.send(&pid, (tag, atoms::exit(), reason));
                }
            }
        }
    }
    if st.session.is_over() && !st.done_sent {
        st.done_sent = true;
        let reason = exit_reason.unwrap_or_else(|| atoms::nil().encode(env));
        let _ = env.send(&st.owner, (tag, atoms::done(), reason));
    }
    match next {
        Next::Continue(result) => result_term(env, st, result),
        Next::Wake(proc, result) => {
            let term = result_term(env, st, result);
            if let Some(pid) = st.pids[proc as usize] {
                let _ = env.send(&pid, (tag, atoms::go(), term));
            }
            atoms::wait().encode(env)
        }
        Next::Ended => atoms::wait().encode(env),
    }
}

fn result_term<'a>(env: Env<'a>, st: &SessionState, result: OpResult) -> Term<'a> {
    match result {
        OpResult::Started => atoms::start().encode(env),
        OpResult::ReceiveAttempt => atoms::attempt().encode(env),
        OpResult::Yielded => atoms::ok().encode(env),
        OpResult::Random(v) => v.encode(env),
        OpResult::Spawned { child } => child.encode(env),
        OpResult::Sent { msg, fate } => {
            let external = st.session.message(msg).is_some_and(|m| m.to.is_none());
            match fate {
                SendFate::Delivered if external => atoms::external().encode(env),
                SendFate::Delivered => (atoms::deliver(), msg).encode(env),
                SendFate::InFlight => (atoms::hold(), msg).encode(env),
                SendFate::Dropped => atoms::drop().encode(env),
            }
        }
    }
}

fn caller_check(env: Env, st: &SessionState, id: ProcId) -> NifResult<()> {
    match st.pids.get(id as usize) {
        Some(Some(pid)) if *pid == env.pid() => Ok(()),
        _ => Err(internal_error(&format!(
            "a Lockstep call came from a process that is not managed process #{id} of this run \
             (was the run context copied into another process?)"
        ))),
    }
}

fn engine_error(e: lockstep_core::EngineError) -> rustler::Error {
    internal_error(&e.to_string())
}

fn sync<'a>(env: Env<'a>, res: &SessionResource, id: ProcId, op: Op) -> NifResult<Term<'a>> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    if st.session.is_over() {
        return Ok(atoms::wait().encode(env));
    }
    caller_check(env, st, id)?;
    st.progress += 1;
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.sync(id, op, strategy).map_err(engine_error)?;
    Ok(after_call(env, res.tag, st, next, None))
}

// ---------------------------------------------------------------------------------------
// Strategies and sessions

#[rustler::nif]
fn strategy_new(spec: Term) -> NifResult<ResourceArc<StrategyCell>> {
    let strategy: Box<dyn Strategy> = if let Ok((name, arg)) = spec.decode::<(Atom, Term)>() {
        if name == atoms::pct() {
            Box::new(Pct::new(arg.decode::<u32>()?))
        } else if name == atoms::replay() {
            Box::new(Replay::new(decode_schedule(arg)?))
        } else {
            return Err(internal_error("unknown strategy spec"));
        }
    } else if let Ok((name, schedule, seed)) = spec.decode::<(Atom, Term, u64)>() {
        if name != atoms::replay() {
            return Err(internal_error("unknown strategy spec"));
        }
        Box::new(Replay::with_random_fallback(decode_schedule(schedule)?, seed))
    } else if spec.decode::<Atom>()? == atoms::random() {
        Box::new(RandomWalk::new())
    } else {
        return Err(internal_error("unknown strategy spec"));
    };
    Ok(ResourceArc::new(StrategyCell {
        strategy: Mutex::new(Some(strategy)),
    }))
}

#[rustler::nif]
fn session_new<'a>(
    env: Env<'a>,
    cell: ResourceArc<StrategyCell>,
    seed: u64,
    max_steps: u64,
    delivery: Atom,
    crash: Atom,
    capture: bool,
) -> NifResult<Term<'a>> {
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
    };
    let mut strategy = cell
        .strategy
        .lock()
        .map_err(|_| internal_error("the strategy state is poisoned"))?
        .take()
        .ok_or_else(|| internal_error("this run's strategy is already in use by another iteration"))?;
    let session = Session::new(config, strategy.as_mut(), seed);
    let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
    let owner = env.pid();
    let resource = ResourceArc::new(SessionResource {
        tag,
        state: Mutex::new(SessionState {
            session,
            strategy: Some(strategy),
            cell,
            owner,
            pids: vec![None],
            by_pid: HashMap::new(),
            arena: None,
            held: HashMap::new(),
            capture,
            captured_msgs: HashMap::new(),
            captured_exits: HashMap::new(),
            announced_payloads: HashMap::new(),
            events_scanned: 0,
            done_sent: false,
            progress: 0,
        }),
    });
    env.monitor(&resource, &owner);
    Ok((resource, tag).encode(env))
}

/// Registers the root's pid and makes the first decision (which wakes the root).
#[rustler::nif]
fn session_start<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, root: LocalPid) -> NifResult<Term<'a>> {
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
fn register_child(env: Env, res: ResourceArc<SessionResource>, id: ProcId, child: ProcId, pid: LocalPid) -> NifResult<Atom> {
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
fn sync_send<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId, to: LocalPid, payload: Term<'a>) -> NifResult<Term<'a>> {
    let target = {
        let mut st = lock(&res)?;
        let target = st.by_pid.get(&to).copied();
        if st.capture && !st.session.is_over() {
            let saved = st.arena().save(payload);
            st.announced_payloads.insert(id, saved);
        }
        target
    };
    sync(env, &res, id, Op::Send { to: target })
}

#[rustler::nif]
fn sync_receive<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId, retry: bool) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::Receive { retry })
}

#[rustler::nif(name = "yield")]
fn sync_yield<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::Yield)
}

#[rustler::nif]
fn sync_random<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId, n: u64) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::Random { n })
}

#[rustler::nif]
fn sync_spawn<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId, link: bool) -> NifResult<Term<'a>> {
    sync(env, &res, id, Op::Spawn { link })
}

/// The caller found message `msg` matching in its mailbox. Not a sync point.
#[rustler::nif]
fn consumed(env: Env, res: ResourceArc<SessionResource>, id: ProcId, msg: MsgId) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if st.session.is_over() {
        return Ok(atoms::ok());
    }
    caller_check(env, st, id)?;
    st.session.consumed(id, msg).map_err(engine_error)?;
    Ok(atoms::ok())
}

/// Under `delivery: :delayed` the sender hands over the payload of message `msg`, which the
/// engine keeps in flight until the strategy delivers it.
#[rustler::nif]
fn hold(env: Env, res: ResourceArc<SessionResource>, id: ProcId, msg: MsgId, payload: Term) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if st.session.is_over() {
        return Ok(atoms::ok());
    }
    caller_check(env, st, id)?;
    let saved = st.arena().save(payload);
    st.held.insert(msg, saved);
    Ok(atoms::ok())
}

/// The caller's own code ended; `class` is `:normal` or `:abnormal`, `reason` the exit
/// reason reported to the owner when this ends the iteration.
#[rustler::nif]
fn exit<'a>(env: Env<'a>, res: ResourceArc<SessionResource>, id: ProcId, class: Atom, reason: Term<'a>) -> NifResult<Term<'a>> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if st.session.is_over() {
        return Ok(atoms::ok().encode(env));
    }
    caller_check(env, st, id)?;
    st.progress += 1;
    let class = if class == atoms::normal() {
        ExitClass::Normal
    } else {
        ExitClass::Abnormal
    };
    if st.capture {
        st.capture_exit(id, reason);
    }
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.exit(id, class, strategy).map_err(engine_error)?;
    after_call(env, res.tag, st, next, Some(reason));
    Ok(atoms::ok().encode(env))
}

// ---------------------------------------------------------------------------------------
// Owner-side queries

#[rustler::nif]
fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    lockstep_core::iteration_seed(seed, iteration)
}

/// Ends the iteration from the owner's side (a process is stuck): later calls from managed
/// processes see the iteration is over and park.
#[rustler::nif]
fn session_abort(res: ResourceArc<SessionResource>) -> NifResult<Atom> {
    let mut st = lock(&res)?;
    st.session.abort();
    st.done_sent = true;
    Ok(atoms::ok())
}

#[rustler::nif]
fn progress<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock(&res)?;
    let running = st
        .session
        .running()
        .and_then(|p| st.pids.get(p as usize).copied().flatten());
    let running = match running {
        Some(pid) => pid.encode(env),
        None => atoms::nil().encode(env),
    };
    Ok((st.progress, st.session.step(), running).encode(env))
}

#[rustler::nif]
fn outcome<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock(&res)?;
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
    let st = lock(&res)?;
    let list: Vec<Term> = st
        .session
        .schedule()
        .iter()
        .map(|d| decision_term(env, d))
        .collect();
    Ok(list.encode(env))
}

/// The events of the iteration as `{step, event}` terms; payloads and exit reasons are
/// included when the session was created with capture on, `nil` otherwise.
#[rustler::nif]
fn trace<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock(&res)?;
    let load = |saved: Option<&SavedTerm>| -> Term<'a> {
        match (saved, &st.arena) {
            (Some(s), Some(arena)) => arena.run(|a| s.load(a).in_env(env)),
            _ => atoms::not_captured().encode(env),
        }
    };
    let events: Vec<Term> = st
        .session
        .events()
        .iter()
        .map(|e| {
            event_term(
                env,
                &st.session,
                e,
                &|m| load(st.captured_msgs.get(&m)),
                &|p| load(st.captured_exits.get(&p)),
                &|p| match st.pids.get(p as usize).copied().flatten() {
                    Some(pid) => pid.encode(env),
                    None => atoms::nil().encode(env),
                },
            )
        })
        .collect();
    Ok(events.encode(env))
}

/// `[{id, name, pid | nil, state, pending}]` for every process of the iteration.
#[rustler::nif]
fn procs<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let st = lock(&res)?;
    let list: Vec<Term> = st
        .session
        .procs()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pid = match st.pids.get(i).copied().flatten() {
                Some(pid) => pid.encode(env),
                None => atoms::nil().encode(env),
            };
            let state = match p.state {
                ProcState::Ready => atoms::ready(),
                ProcState::Running => atoms::running(),
                ProcState::Blocked => atoms::blocked(),
                ProcState::Exited => atoms::exited(),
            };
            (i as u32, name_term(env, &p.name), pid, state, convert::pending_term(env, p)).encode(env)
        })
        .collect();
    Ok(list.encode(env))
}

/// Ends the iteration for the strategy and hands the strategy back to the run.
/// Returns `{outcome, %{steps:, context_switches:, contested_steps:}}`.
#[rustler::nif]
fn session_finish<'a>(env: Env<'a>, res: ResourceArc<SessionResource>) -> NifResult<Term<'a>> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if let Some(mut strategy) = st.strategy.take() {
        st.session.finish(strategy.as_mut());
        if let Ok(mut slot) = st.cell.strategy.lock() {
            *slot = Some(strategy);
        }
    }
    st.done_sent = true;
    let m = st.session.metrics();
    let metrics = Term::map_from_pairs(
        env,
        &[
            (atoms::steps().encode(env), m.steps.encode(env)),
            (atoms::context_switches().encode(env), m.context_switches.encode(env)),
            (atoms::contested_steps().encode(env), m.contested_steps.encode(env)),
            (atoms::fingerprint().encode(env), st.session.schedule_fingerprint().encode(env)),
        ],
    )?;
    Ok((outcome_term(env, st), metrics).encode(env))
}

rustler::init!("Elixir.Lockstep.Native");
