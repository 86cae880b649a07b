//! The owner's side: a run's strategy, an iteration's session from creation to finish, and
//! the queries the owner makes while it watches or reports an iteration (progress,
//! outcome, schedule, trace, process table). Never on the hot path.
//!
//! Queries read the state even when a panic poisoned it (`lock_any`): the owner still has
//! to list and kill the run's processes, and the run is failing with an internal error.

use crate::convert::{self, atoms, decision_term, internal_error, name_term};
use crate::decode::{arg, SessionConfig, StrategySpec};
use crate::owners;
use crate::resource::{self, lock, lock_any, strategy_of, SessionResource, StrategyCell};
use crate::state::SessionState;
use crate::wake::{after_call, wake_key};
use lockstep_core::strategy::{Metered, SearchStats};
use lockstep_core::{ExitCause, Outcome, ProcId, ProcState, Session, Strategy};
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, ResourceArc, Term};
use std::sync::Mutex;

/// How many sessions the BEAM has not freed yet.
#[rustler::nif]
fn live_sessions() -> u64 {
    resource::live_sessions()
}

#[rustler::nif]
fn iteration_seed(seed: u64, iteration: u64) -> u64 {
    lockstep_core::iteration_seed(seed, iteration)
}

/// A run's strategy from its spec (see `decode::StrategySpec`).
#[rustler::nif]
fn strategy_new(spec: Term) -> NifResult<ResourceArc<StrategyCell>> {
    let strategy = arg::<StrategySpec>(spec)?.strategy()?;
    Ok(ResourceArc::new(StrategyCell {
        strategy: Mutex::new(Some(Metered::new(strategy))),
    }))
}

/// A new iteration owned by the caller, which borrows the run's strategy until
/// `session_finish`. `config` is `%{max_steps:, delivery:, crash:, timers:, blocked_at_end:}`; `done_ref` is
/// the reference of the `{done_ref, :done, reason}` the owner waits for. Returns
/// `{session, tag}`.
#[rustler::nif]
fn session_new<'a>(
    env: Env<'a>,
    cell: ResourceArc<StrategyCell>,
    seed: u64,
    config: Term<'a>,
    capture: bool,
    done_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let config = arg::<SessionConfig>(config)?.into();
    let mut strategy = cell
        .strategy
        .lock()
        .map_err(|_| internal_error("the strategy state is poisoned"))?
        .take()
        .ok_or_else(|| {
            internal_error("this run's strategy is already in use by another iteration")
        })?;
    let session = Session::new(config, &mut strategy, seed);
    let owner = env.pid();
    // An exhaustive search learns each step's footprint from its events.
    let keep_events = strategy.reads_events();
    let mut state = SessionState::new(session, strategy, cell, owner, capture);
    state.capture.keep_events |= keep_events;
    state.owner.done_ref = Some(state.terms.save(done_ref));
    let resource = ResourceArc::new(SessionResource::new(state));
    owners::watch(env, owner, &resource);
    let tag = resource.tag;
    Ok((resource, tag).encode(env))
}

/// Keeps the engine's events for `trace` although the session does not capture (a
/// controller's `capture: false` session still answers `trace/1`, without payloads).
/// Called before the session starts.
#[rustler::nif]
fn keep_trace(res: &SessionResource) -> Atom {
    lock_any(res).capture.keep_events = true;
    atoms::ok()
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
    if st.procs.pid(0).is_some() {
        return Err(internal_error("the session was already started"));
    }
    let watched = env.monitor(&res, &root).is_some();
    st.procs.register(0, root, watched);
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.start(strategy);
    after_call(env, res.tag, st, next, None);
    Ok(atoms::ok().encode(env))
}

/// Ends the iteration from the owner's side (a process is stuck): later calls from managed
/// processes see the iteration is over and park.
#[rustler::nif]
fn session_abort(res: &SessionResource) -> NifResult<Atom> {
    let mut st = lock_any(res);
    st.session.abort();
    st.owner.done_sent = true;
    Ok(atoms::ok())
}

/// `{progress, step, running pid | nil, now}`: the owner polls it to tell a process that
/// stopped reaching sync points.
#[rustler::nif]
fn progress<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
    let running = match st.session.running() {
        Some(p) => st.procs.pid_term(env, p),
        None => atoms::nil().encode(env),
    };
    Ok((
        st.owner.progress,
        st.session.step(),
        running,
        st.session.now(),
    )
        .encode(env))
}

#[rustler::nif]
fn outcome<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
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
        Some(Outcome::Killed { proc, from }) => {
            let signal = match st.session.procs()[*proc as usize].exit {
                Some(ExitCause::Signal { reason, .. }) => st.reason_term(env, reason),
                _ => atoms::killed().encode(env),
            };
            (atoms::killed(), names(*proc), names(*from), signal).encode(env)
        }
        Some(Outcome::Deadlock { blocked }) => {
            let blocked: Vec<Term> = blocked.iter().map(|&p| names(p)).collect();
            (atoms::deadlock(), blocked).encode(env)
        }
        Some(Outcome::BlockedAtEnd { blocked }) => {
            let blocked: Vec<Term> = blocked.iter().map(|&p| names(p)).collect();
            (atoms::blocked_at_end(), blocked).encode(env)
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
fn schedule<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
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
fn trace<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
    let events: Vec<Term> = st
        .session
        .events()
        .iter()
        .enumerate()
        .map(|(i, e)| convert::event_term(env, &st, i, e))
        .collect();
    Ok(events.encode(env))
}

/// `[{index, site}]`: the source location (`"lib/x.ex:12"`) of each event of instrumented
/// code, by its index in `trace`'s list; empty unless the session captures.
#[rustler::nif]
fn trace_sites<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let mut guard = lock_any(res);
    let st = &mut *guard;
    st.capture.sites.file(st.session.events());
    let list: Vec<Term> = st
        .capture
        .sites
        .by_event
        .iter()
        .map(|(index, site)| (*index, site.as_ref()).encode(env))
        .collect();
    Ok(list.encode(env))
}

/// `[{name, label}]`: the labels processes noted for themselves (`note_label`), by
/// process name; empty unless the session captures.
#[rustler::nif]
fn trace_labels<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
    let procs = st.session.procs();
    let mut list: Vec<(ProcId, &String)> = st
        .capture
        .labels
        .iter()
        .filter(|(id, _)| (**id as usize) < procs.len())
        .map(|(id, label)| (*id, label))
        .collect();
    list.sort_unstable_by_key(|(id, _)| *id);
    let terms: Vec<Term> = list
        .into_iter()
        .map(|(id, label)| (name_term(env, &procs[id as usize].name), label.as_str()).encode(env))
        .collect();
    Ok(terms.encode(env))
}

/// `[{id, name, pid | nil, state, pending, node}]` for every process of the iteration.
#[rustler::nif]
fn procs<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
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
            (
                i as u32,
                name_term(env, &p.name),
                st.procs.pid_term(env, i as ProcId),
                state,
                convert::pending_term(env, p),
                st.atoms.node_atom(p.node),
            )
                .encode(env)
        })
        .collect();
    Ok(list.encode(env))
}

/// What the owner needs to end an iteration, in one call: `{outcome, uncontrolled, [{id,
/// pid | nil, exited?}], released}` (`outcome` as [`outcome`], `uncontrolled` as
/// [`uncontrolled`]; `pid` is nil for a process not registered or whose BEAM process is
/// already gone, which teardown then need not kill and wait for). The full process table
/// (`procs`: names, pending operations, nodes) is built only for a report.
///
/// With `release` a reference (the owner will report nothing; `false` otherwise), an
/// iteration that passed has its processes still alive end themselves: each gets the exit
/// message of a process killed while parked, looks once for what escaped the run's control
/// (SPEC §9, `Lockstep.Uncontrolled`) and exits; the resource monitor sees each go, and
/// when the last is gone the owner gets `{release, :released, noted?}` (`noted?`: one of them noted
/// something). They are listed with a nil pid and counted in `released`. This spares the
/// owner a look at each (`process_info` of another process is a signal round trip) and a
/// kill and a monitor each. Every live process of an iteration that is over is parked at
/// a sync point, so each ends at once.
#[rustler::nif]
fn teardown_view<'a>(
    env: Env<'a>,
    res: &SessionResource,
    release: Term<'a>,
) -> NifResult<Term<'a>> {
    // `false`, or the reference the owner will receive `{ref, :released, noted?}` on.
    let release_ref = if release.is_ref() {
        Some(release)
    } else if release == false.encode(env) {
        None
    } else {
        return Err(rustler::Error::BadArg);
    };
    let mut guard = lock_any(res);
    let st = &mut *guard;
    let release = release_ref.is_some()
        && matches!(st.session.outcome(), Some(Outcome::Pass))
        && st.owner.releasing == 0;
    let mut released = 0;
    let mut pids: Vec<Term> = Vec::with_capacity(st.session.procs().len());
    for i in 0..st.session.procs().len() {
        let id = i as ProcId;
        let exited = st.session.procs()[i].state == ProcState::Exited;
        let pid = match st.procs.live_pid(id) {
            Some(pid) if release && !exited => {
                st.procs.mark_released(id);
                let key = wake_key(env, res.tag, st, id);
                let _ = env.send(&pid, (key, atoms::exit(), atoms::kill()));
                released += 1;
                None
            }
            live => live,
        };
        let pid = match pid {
            Some(pid) => pid.encode(env),
            None => atoms::nil().encode(env),
        };
        pids.push((id, pid, exited).encode(env));
    }
    if release {
        st.owner.releasing = released;
        st.owner.noted_before_release = st.terms.uncontrolled.len();
        if let Some(reference) = release_ref.filter(|_| released > 0) {
            st.owner.release_ref = Some(st.terms.save(reference));
        }
    }
    let outcome = outcome_term(env, st);
    Ok((outcome, uncontrolled_term(env, st), pids, released).encode(env))
}

/// `[{name, report}]`: the noted reports of processes that were then killed from outside
/// the run (see `note_outside_crash`).
#[rustler::nif]
fn outside_crashes<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
    let list: Vec<Term> = st
        .terms
        .outside_crashes
        .iter()
        .filter_map(|(&id, saved)| {
            let p = st.session.proc(id)?;
            matches!(p.exit, Some(ExitCause::External))
                .then(|| (name_term(env, &p.name), st.terms.load(env, saved)).encode(env))
        })
        .collect();
    Ok(list.encode(env))
}

/// `[{name, report}]`: what `note_uncontrolled` noted, in order.
#[rustler::nif]
fn uncontrolled<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let st = lock_any(res);
    Ok(uncontrolled_term(env, &st))
}

fn uncontrolled_term<'a>(env: Env<'a>, st: &SessionState) -> Term<'a> {
    let list: Vec<Term> = st
        .terms
        .uncontrolled
        .iter()
        .filter_map(|(id, saved)| {
            let p = st.session.proc(*id)?;
            Some((name_term(env, &p.name), st.terms.load(env, saved)).encode(env))
        })
        .collect();
    list.encode(env)
}

/// A systematic search's progress after an iteration: `nil` for randomised strategies,
/// else `%{explored:, sleep_blocked:, depth:, exhausted:}`.
fn search_term<'a>(env: Env<'a>, search: Option<SearchStats>) -> NifResult<Term<'a>> {
    let Some(s) = search else {
        return Ok(atoms::nil().encode(env));
    };
    Term::map_from_pairs(
        env,
        &[
            (atoms::explored().encode(env), s.explored.encode(env)),
            (
                atoms::sleep_blocked().encode(env),
                s.sleep_blocked.encode(env),
            ),
            (atoms::depth().encode(env), s.depth.encode(env)),
            (atoms::exhausted().encode(env), s.exhausted.encode(env)),
        ],
    )
}

/// Ends the iteration for the strategy and hands the strategy back to the run; the owner's
/// death no longer concerns it (`owners`).
/// Returns `{outcome, {steps, context_switches, contested_steps, fingerprint, cleanup,
/// histories, search}}` (`search`: see `search_term`).
#[rustler::nif]
fn session_finish<'a>(env: Env<'a>, res: &SessionResource) -> NifResult<Term<'a>> {
    let mut guard = lock_any(res);
    let st = &mut *guard;
    let mut metrics = None;
    let mut search = None;
    if let Some(mut strategy) = st.strategy.take() {
        st.session.finish(&mut strategy);
        metrics = Some(strategy.metrics());
        search = strategy.search_stats();
        if let Ok(mut slot) = st.cell.strategy.lock() {
            *slot = Some(strategy);
        }
    }
    st.owner.done_sent = true;
    let m = metrics.unwrap_or_default();
    // A tuple, not a map: built once per iteration, and a map's keys are sorted each time.
    let metrics = (
        m.steps,
        m.context_switches,
        m.contested_steps,
        m.fingerprint,
        st.owner.needs_cleanup,
        st.owner.histories,
        search_term(env, search)?,
    )
        .encode(env);
    let finished = (outcome_term(env, st), metrics).encode(env);
    let owner = st.owner.pid;
    drop(guard);
    owners::forget(&owner, res.tag);
    Ok(finished)
}
