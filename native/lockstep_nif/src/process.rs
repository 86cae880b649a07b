//! What processes tell the adapter outside the sync points: a parent registers the pid of
//! the child it spawned (and the child, waiting for its start, asks whether it is), a sender hands over the payload of a message kept in flight, a
//! process turns an alias on or off, a wrapper marks state the owner must clean up, and an
//! unmanaged process notes the crash that will kill the managed one it is linked to, and a
//! process asks for the seed of its `:rand` state.
//! None of these hands the turn on.

use crate::convert::{atoms, engine_error, internal_error};
use crate::decode::{arg, AliasOp};
use crate::resource::{lock, SessionResource};
use crate::sync::caller_check;
use lockstep_core::{Alias, MsgId, ProcId};
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, ResourceArc, Term, TermType};

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
    let watched = env.monitor(&res, &pid).is_some();
    st.procs.register(child, pid, watched);
    Ok(atoms::ok())
}

/// Whether the caller is registered as process `id` (`register_child` has run): a child
/// waiting for its start asks once, and then needs no orphan check (see
/// `Lockstep.Runtime`'s `await_start`). `false` on a poisoned session (the caller keeps
/// checking).
#[rustler::nif]
fn registered(env: Env, res: &SessionResource, id: ProcId) -> bool {
    match res.state.lock() {
        Ok(st) => st.procs.pid(id) == Some(env.pid()),
        Err(_) => false,
    }
}

/// Whether `pid` is a process of this run (its pid registered at its spawn) and still
/// alive in it, without a sync point: `:alive`, `:exited` or `:outside` (also on a
/// poisoned session). For the rare operations that must know before they act
/// (`Lockstep.ETS.give_away/3`).
#[rustler::nif]
fn managed_pid(res: &SessionResource, pid: LocalPid) -> Atom {
    match res.state.lock() {
        Ok(st) => match st.procs.managed(&pid) {
            Some(id) if st.exited(id) => atoms::exited(),
            Some(_) => atoms::alive(),
            None => atoms::outside(),
        },
        Err(_) => atoms::outside(),
    }
}

/// Under `delivery: :delayed` the sender hands over the payload of message `msg`, which the
/// engine keeps in flight until the strategy delivers it.
#[rustler::nif]
fn hold(env: Env, res: &SessionResource, id: ProcId, msg: MsgId, payload: Term) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    let saved = st.terms.save(payload);
    st.terms.held.insert(msg, saved);
    Ok(atoms::ok())
}

/// Activates or deactivates alias `number` of the caller; `op` is `:on`, `:off`
/// (answers whether it was active, unalias/1), or `{:ref, ref, reply, mref}`: activate it as the reference alias `ref` (sends to `ref` then reach it), spent
/// by its first message when `reply`, and tied to the caller's monitor `mref` unless that
/// is `nil` (monitor/3's `{:alias, _}`). Not a sync point.
#[rustler::nif]
fn alias<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    number: u32,
    op: Term<'a>,
) -> NifResult<bool> {
    let op = arg::<AliasOp>(op)?;
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(false);
    }
    match op {
        AliasOp::On => st.session.alias(id, number).map_err(engine_error)?,
        AliasOp::Off => return st.session.unalias(id, number).map_err(engine_error),
        AliasOp::Ref(aref, reply, mref) => {
            if aref.get_type() != TermType::Ref {
                return Err(rustler::Error::BadArg);
            }
            let monitor = if mref == atoms::nil().encode(env) {
                None
            } else {
                Some(
                    st.terms
                        .monitor_of(env, mref)
                        .ok_or(rustler::Error::BadArg)?,
                )
            };
            let alias = Alias {
                id: number,
                reply,
                monitor,
            };
            st.session.alias_with(id, alias).map_err(engine_error)?;
            st.terms.add_alias_ref(aref, id, number);
        }
    }
    Ok(true)
}

/// Marks the session as having stored state the owner must clean up when it ends.
#[rustler::nif]
fn mark_cleanup(res: &SessionResource) -> NifResult<Atom> {
    lock(res)?.owner.needs_cleanup = true;
    Ok(atoms::ok())
}

/// Marks the session as having recorded a `Lockstep.History`: the owner takes the
/// iteration's histories from their table when it ends (`session_finish`'s `histories`),
/// and looks for none otherwise.
#[rustler::nif]
fn mark_history(res: &SessionResource) -> NifResult<Atom> {
    lock(res)?.owner.histories = true;
    Ok(atoms::ok())
}

/// Managed process `id` (or the owner, about it) found concurrency that escaped the
/// run's control: messages that reached it around Lockstep, processes it started outside
/// it. `report` describes them; kept for `uncontrolled/1`, also once the iteration is over
/// (the owner checks the processes left when it ends). Any process may call it.
#[rustler::nif]
fn note_uncontrolled(res: &SessionResource, id: ProcId, report: Term) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    if st.session.proc(id).is_some() {
        let saved = st.terms.save(report);
        st.terms.uncontrolled.push((id, saved));
    }
    Ok(atoms::ok())
}

/// An unmanaged process linked to managed process `id` is about to raise `report` (a
/// Lockstep call made outside the run), which will kill `id` through the real link. Kept
/// for `outside_crashes/1`. Any process may call it.
#[rustler::nif]
fn note_outside_crash(res: &SessionResource, id: ProcId, report: Term) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    if !st.session.is_over() && st.session.proc(id).is_some() {
        let saved = st.terms.save(report);
        st.terms.outside_crashes.insert(id, saved);
    }
    Ok(atoms::ok())
}

/// The seed of the caller's `:rand` state: from the iteration seed and its spawn-tree name
/// (`Session::process_seed`).
#[rustler::nif]
fn rand_seed(env: Env, res: &SessionResource, id: ProcId) -> NifResult<u64> {
    let st = lock(res)?;
    caller_check(env, &st, id)?;
    st.session
        .process_seed(id)
        .ok_or_else(|| internal_error("rand_seed: no such process"))
}

/// A caller told `:wait_marked` hands over the reference it is about to park on: its
/// wake-up (or exit message) will carry it instead of the tag, so its receive skips the
/// backlog queued before the reference was made. `:woken` when the wake-up (or exit) was
/// sent before the reference came, with the tag: the caller then parks on the tag.
#[rustler::nif]
fn mark_park(env: Env, res: &SessionResource, id: ProcId, wake_ref: Term) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    match st.terms.wake_refs.get(&id) {
        Some(None) => {
            let saved = st.terms.save(wake_ref);
            st.terms.wake_refs.insert(id, Some(saved));
            Ok(atoms::ok())
        }
        _ => Ok(atoms::woken()),
    }
}
