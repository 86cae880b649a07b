//! What processes tell the adapter outside the sync points: a parent registers the pid of
//! the child it spawned, a sender hands over the payload of a message kept in flight, a
//! process turns an alias on or off, a wrapper marks state the owner must clean up, and an
//! unmanaged process notes the crash that will kill the managed one it is linked to.
//! None of these hands the turn on.

use crate::convert::{atoms, engine_error, internal_error};
use crate::resource::{lock, SessionResource};
use crate::sync::caller_check;
use lockstep_core::{MsgId, ProcId};
use rustler::{Atom, Env, LocalPid, NifResult, ResourceArc, Term};

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
    st.procs.register(child, pid);
    env.monitor(&res, &pid);
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
    let saved = st.terms.save(payload);
    st.terms.held.insert(msg, saved);
    Ok(atoms::ok())
}

/// Activates (`on`) or deactivates an alias of the caller.
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

/// Marks the session as having stored state the owner must clean up when it ends.
#[rustler::nif]
fn mark_cleanup(res: ResourceArc<SessionResource>) -> NifResult<Atom> {
    lock(&res)?.owner.needs_cleanup = true;
    Ok(atoms::ok())
}

/// An unmanaged process linked to managed process `id` is about to raise `report` (a
/// Lockstep call made outside the run), which will kill `id` through the real link. Kept
/// for `outside_crashes/1`. Any process may call it.
#[rustler::nif]
fn note_outside_crash(
    res: ResourceArc<SessionResource>,
    id: ProcId,
    report: Term,
) -> NifResult<Atom> {
    let mut guard = lock(&res)?;
    let st = &mut *guard;
    if !st.session.is_over() && st.session.proc(id).is_some() {
        let saved = st.terms.save(report);
        st.terms.outside_crashes.insert(id, saved);
    }
    Ok(atoms::ok())
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
