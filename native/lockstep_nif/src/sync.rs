//! The sync points: a managed process calls one `sync_*` NIF (or `yield`, or `exit` when
//! its code ends) with the operation it is about to perform. [`sync_pending`] is the one
//! entry of all of them: it checks the caller, reports what the caller brings from its
//! last call (`handoff`: a message it took, one it carries, or a send it deferred, which is
//! performed first as its own engine step), has the engine record the operation and pick
//! who goes next, and hands the turn on (`wake`).
//!
//! An operation on something outside the run (an unmanaged pid, an unknown node) answers a
//! plain atom at once (`:unmanaged`, `:badnode`) without becoming a sync point; the Elixir
//! side then does what OTP does.
//!
//! The sync NIFs borrow the resource as `&SessionResource`: no reference count is taken
//! and dropped around the call, which a spawn-heavy iteration measured (about 3 % of a
//! root that spawns ten processes).

use crate::convert::{atoms, engine_error, not_managed_error};
use crate::decode::{arg, ExitKind, NameOp, NifObject, TimeOp};
use crate::handoff::{Carry, Deferred, Pending};
use crate::resource::{lock, strategy_of, SessionResource};
use crate::state::SessionState;
use crate::wake::{after_call, after_call_carrying, settle_step};
use lockstep_core::{
    ExitClass, MsgId, NameId, Next, Op, OpResult, Outcome, ProcId, Reason, SendFate, Target,
};
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, ResourceArc, Term, TermType};

/// The caller must be the managed process the context `id` belongs to; a context copied
/// into another process raises `Lockstep.NotManagedError` (`:ended` once the iteration is
/// over, so a stale context never parks its caller forever).
#[inline]
pub fn caller_check(env: Env, st: &SessionState, id: ProcId) -> NifResult<()> {
    let owner = st.procs.pid(id);
    match owner {
        Some(pid) if pid == env.pid() => Ok(()),
        _ => Err(not_managed_error(st.session.is_over(), env.pid(), owner)),
    }
}

/// Announces `op` for process `id`; `announce` is a term to keep until the op is applied.
pub fn sync_with<'a>(
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
/// (`handoff`), announces the operation and hands the turn on. `make_op` may answer a term
/// at once instead (`Err(term)`), which is then no sync point.
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
        // A message sent before that is in its target's mailbox all the same (a deferred
        // send was never made: the engine never saw it).
        if let Pending::Carry(carry) = pending {
            carry.deliver(env, res.tag);
        }
        return Ok(atoms::wait().encode(env));
    }
    let carry = match take_pending(env, res, st, id, pending)? {
        Settled::Go(carry) => carry,
        Settled::Answer(answer) => return Ok(answer),
    };
    let op = make_op(st);
    if st.capture.on {
        let retry = matches!(op, Ok(Op::Receive { retry: true, .. }));
        st.capture.sites.sync_call(st.session.events(), id, retry);
    }
    let op = match op {
        Ok(op) => op,
        Err(early) => {
            if let Some(carry) = carry {
                carry.deliver(env, res.tag);
            }
            return Ok(early);
        }
    };
    if let Some(term) = announce.filter(|_| st.capture.on || !capture_only) {
        let saved = st.terms.save(term);
        st.terms.announced.insert(id, saved);
    }
    st.owner.progress += 1;
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.sync(id, op, strategy).map_err(engine_error)?;
    Ok(after_call_carrying(
        env,
        res.tag,
        st,
        next,
        None,
        carry,
        Some(id),
    ))
}

/// What the caller brought to its call came to.
enum Settled<'a> {
    /// The call goes on with its own operation; the caller carries this message (if any).
    Go(Option<Carry<'a>>),
    /// A deferred send did not simply go on: the call answers this instead (see `handoff`).
    Answer(Term<'a>),
}

/// Reports a message the caller took since its last call and performs a send it deferred;
/// returns the message it carries.
fn take_pending<'a>(
    env: Env<'a>,
    res: &SessionResource,
    st: &mut SessionState,
    id: ProcId,
    pending: Pending<'a>,
) -> NifResult<Settled<'a>> {
    match pending {
        Pending::Nothing => Ok(Settled::Go(None)),
        Pending::Consumed(msg) => {
            st.session.consumed(id, msg).map_err(engine_error)?;
            Ok(Settled::Go(None))
        }
        Pending::Carry(carry) => Ok(Settled::Go(Some(carry))),
        Pending::Deferred(deferred) => send_deferred(env, res, st, id, deferred),
    }
}

/// Performs a deferred send as `sync_send` would have when it was made. If the strategy
/// lets the caller go on and the message stays in the run, the call goes on with its own
/// operation carrying it (or, in flight, with the payload held); otherwise the call stops
/// there: the turn is handed on (`{:"$lockstep_sent_wait", park, dest, payload}`), or the
/// caller settles the result itself (`{:"$lockstep_sent", result, dest, payload}`: a send
/// outside the run is made by the caller).
fn send_deferred<'a>(
    env: Env<'a>,
    res: &SessionResource,
    st: &mut SessionState,
    id: ProcId,
    d: Deferred<'a>,
) -> NifResult<Settled<'a>> {
    if let Some(msg) = d.consumed {
        st.session.consumed(id, msg).map_err(engine_error)?;
    }
    let op = decode_target(env, st, id, d.dest).map(|to| Op::Send { to });
    if st.capture.on {
        st.capture.sites.sync_call(st.session.events(), id, false);
    }
    let op = match op {
        Ok(op) => op,
        Err(early) => return Ok(Settled::Answer(sent_answer(env, early, &d))),
    };
    if st.capture.on {
        let saved = st.terms.save(d.payload);
        st.terms.announced.insert(id, saved);
    }
    st.owner.progress += 1;
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st.session.sync(id, op, strategy).map_err(engine_error)?;
    if let Next::Continue(OpResult::Sent { msg, fate }) = next {
        let to = st.session.message(msg).and_then(|m| m.to);
        let kept = match (fate, to) {
            (SendFate::Delivered, Some(p)) => st.procs.pid(p).map(|to| {
                Some(Carry {
                    to,
                    msg,
                    payload: d.payload,
                })
            }),
            (SendFate::InFlight | SendFate::Deferred, Some(_)) => {
                let saved = st.terms.save(d.payload);
                st.terms.held.insert(msg, saved);
                Some(None)
            }
            (SendFate::Dropped | SendFate::Cut, _) => Some(None),
            // Outside the run (the caller sends it for real), or nothing to hand over to.
            _ => None,
        };
        if let Some(carry) = kept {
            settle_step(env, res.tag, st);
            return Ok(Settled::Go(carry));
        }
    }
    let ended = matches!(next, Next::Ended);
    let answer = after_call_carrying(env, res.tag, st, next, None, None, Some(id));
    Ok(Settled::Answer(match next {
        Next::Continue(_) => sent_answer(env, answer, &d),
        _ if ended => answer,
        _ => (atoms::lockstep_sent_wait(), answer, d.dest, d.payload).encode(env),
    }))
}

fn sent_answer<'a>(env: Env<'a>, result: Term<'a>, d: &Deferred<'a>) -> Term<'a> {
    (atoms::lockstep_sent(), result, d.dest, d.payload).encode(env)
}

fn sync<'a>(env: Env<'a>, res: &SessionResource, id: ProcId, op: Op) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |_| Ok(op))
}

/// Resolves a managed pid or answers `:unmanaged` without making a sync point.
pub fn managed_or<'a>(env: Env<'a>, st: &SessionState, pid: LocalPid) -> Result<ProcId, Term<'a>> {
    st.procs
        .managed(&pid)
        .ok_or_else(|| atoms::unmanaged().encode(env))
}

/// `pid`, `name`, `{:"$lockstep_alias", pid, n}`, a reference (an alias a managed process
/// made; any other ref is outside the run), `{:"$lockstep_global", name}` or `{name,
/// node}`; anything else answers `:badarg`.
fn decode_target<'a>(
    env: Env<'a>,
    st: &mut SessionState,
    id: ProcId,
    dest: Term<'a>,
) -> Result<Target, Term<'a>> {
    if let Ok(pid) = dest.decode::<LocalPid>() {
        return Ok(match st.procs.managed(&pid) {
            Some(p) => Target::Proc(p),
            None => Target::External,
        });
    }
    if let Ok(name) = dest.decode::<Atom>() {
        let interned = st.atoms.intern(name);
        if vm_name_outside(env, st, id, name, interned) {
            return Ok(Target::External);
        }
        return Ok(Target::Name(interned));
    }
    if dest.get_type() == TermType::Ref {
        return Ok(match st.terms.alias_of(env, dest) {
            Some((p, alias)) => Target::Alias(p, alias),
            None => Target::External,
        });
    }
    if let Ok((tag, pid, alias)) = dest.decode::<(Atom, LocalPid, u32)>() {
        if tag == atoms::lockstep_alias() {
            return match st.procs.managed(&pid) {
                Some(p) => Ok(Target::Alias(p, alias)),
                None => Ok(Target::External),
            };
        }
    }
    if let Ok((tag, name)) = dest.decode::<(Atom, Term)>() {
        if tag == atoms::lockstep_global() {
            return Ok(Target::Global(st.terms.global_id(env, name)));
        }
    }
    if let Ok((name, node)) = dest.decode::<(Atom, Atom)>() {
        let name = st.atoms.intern(name);
        let node = st.atoms.node_id(node);
        return Ok(Target::NameAt(name, node));
    }
    Err(atoms::badarg().encode(env))
}

/// A name the run does not hold on the caller's node but a process of the VM does
/// (Logger's, an application's server started before the run): a send to it is a send
/// outside the run, traced as external like a send to that process's pid. Managed
/// processes never register for real, so the VM's holder is outside the run. Decided
/// when the send is announced: a run process registering the same name before the send
/// is applied is not seen (the run's own names win whenever they exist at announce time).
fn vm_name_outside(env: Env, st: &SessionState, id: ProcId, name: Atom, interned: NameId) -> bool {
    st.session
        .name_holder(st.caller_node(id), interned)
        .is_none()
        && env
            .whereis_pid(name)
            .is_some_and(|pid| st.procs.managed(&pid).is_none())
}

// ---------------------------------------------------------------------------------------
// The hot path: send, receive, yield, exit

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
        let to = decode_target(env, st, id, dest)?;
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

/// The caller's own code ended. `class` (`:normal` or `:abnormal`) decides whether it is a
/// crash; `report` is the reason shown in the report (with its stacktrace); `reason` is the
/// OTP exit reason linked and monitoring processes see.
#[rustler::nif]
fn exit<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    class: Term<'a>,
    report: Term<'a>,
    reason: Term<'a>,
    pending: Term<'a>,
) -> NifResult<Term<'a>> {
    let class: ExitClass = arg::<ExitKind>(class)?.into();
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
    let carry = match take_pending(env, res, st, id, pending)? {
        Settled::Go(carry) => carry,
        Settled::Answer(answer) => return Ok(answer),
    };
    if st.capture.on {
        st.capture.sites.ended(st.session.events(), id);
    }
    st.owner.progress += 1;
    let signal_reason = if reason == atoms::normal().encode(env) {
        Reason::Normal
    } else {
        let saved = st.terms.save(reason);
        st.terms.exit_reasons.insert(id, saved);
        Reason::ExitOf(id)
    };
    if st.capture.on {
        let saved = st.terms.save(report);
        st.capture.exits.insert(id, saved);
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
    after_call_carrying(env, res.tag, st, next, own.then_some(report), carry, None);
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
    res: &SessionResource,
    id: ProcId,
    reason: Term<'a>,
) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    caller_check(env, st, id)?;
    if st.capture.on {
        st.capture.sites.ended(st.session.events(), id);
    }
    st.owner.progress += 1;
    let saved = st.terms.save(reason);
    st.terms.exit_reasons.insert(id, saved);
    let strategy = strategy_of(&mut st.strategy)?;
    let next = st
        .session
        .external_exit_with(id, Reason::ExitOf(id), strategy);
    after_call(env, res.tag, st, next, None);
    Ok(atoms::ok())
}

// ---------------------------------------------------------------------------------------
// The other sync points

#[rustler::nif]
fn sync_random<'a>(env: Env<'a>, res: &SessionResource, id: ProcId, n: u64) -> NifResult<Term<'a>> {
    sync(env, res, id, Op::Random { n })
}

/// `node` is `nil` (the caller's node) or a node of the run (else `:badnode`); `mref` is
/// `nil`, or the ref of a monitor of the child set in the same step (spawn_monitor).
#[rustler::nif]
fn sync_spawn<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    link: bool,
    node: Term<'a>,
    mref: Term<'a>,
) -> NifResult<Term<'a>> {
    let nil = atoms::nil().encode(env);
    let monitor = mref != nil;
    if monitor && mref.get_type() != TermType::Ref {
        return Err(rustler::Error::BadArg);
    }
    sync_with(env, res, id, monitor.then_some(mref), |st| {
        // `Option<Atom>` would decode `nil` as the atom nil: compare explicitly.
        if node == nil {
            return Ok(Op::Spawn { link, monitor });
        }
        let node = node
            .decode::<Atom>()
            .map_err(|_| atoms::badnode().encode(env))?;
        match st.known_node(node) {
            Some(node) => Ok(Op::SpawnOn {
                link,
                monitor,
                node,
            }),
            None => Err(atoms::badnode().encode(env)),
        }
    })
}

#[rustler::nif]
fn sync_link<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    pid: LocalPid,
    on: bool,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let to = managed_or(env, st, pid)?;
        Ok(if on {
            Op::Link { to }
        } else {
            Op::Unlink { to }
        })
    })
}

/// `target` is a pid (`:unmanaged` if outside the run), a registered name, or `{name,
/// node}` (`:badnode` for a node this run has not started).
#[rustler::nif]
fn sync_monitor<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    target: Term<'a>,
    mref: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, Some(mref), |st| {
        if let Ok(pid) = target.decode::<LocalPid>() {
            let target = managed_or(env, st, pid)?;
            return Ok(Op::Monitor { target });
        }
        if let Ok(name) = target.decode::<Atom>() {
            let name = st.atoms.intern(name);
            return Ok(Op::MonitorName { name, node: None });
        }
        let (name, node) = target
            .decode::<(Atom, Atom)>()
            .map_err(|_| atoms::badarg().encode(env))?;
        let node = st
            .known_node(node)
            .ok_or_else(|| atoms::badnode().encode(env))?;
        let name = st.atoms.intern(name);
        Ok(Op::MonitorName {
            name,
            node: Some(node),
        })
    })
}

#[rustler::nif]
fn sync_demonitor<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    mref: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let monitor = st.terms.monitor_of(env, mref);
        Ok(Op::Demonitor { monitor })
    })
}

#[rustler::nif]
fn sync_trap_exit<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    on: bool,
) -> NifResult<Term<'a>> {
    sync(env, res, id, Op::TrapExit { on })
}

/// `exit(pid, reason)`: `:normal` and `:kill` are the engine's own; any other reason term
/// is kept for the signal, `:shutdown` and `{:shutdown, _}` numbered as `Reason::Shutdown`
/// (no crash even under `crash: :strict`).
#[rustler::nif]
fn sync_exit_signal<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    pid: LocalPid,
    reason: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let to = managed_or(env, st, pid)?;
        let reason = if reason == atoms::normal().encode(env) {
            Reason::Normal
        } else if reason == atoms::kill().encode(env) {
            Reason::Kill
        } else {
            let shutdown = is_shutdown(env, reason);
            let saved = st.terms.save(reason);
            st.terms.given_reasons.push(saved);
            let n = (st.terms.given_reasons.len() - 1) as u32;
            if shutdown {
                Reason::Shutdown(n)
            } else {
                Reason::Given(n)
            }
        };
        Ok(Op::ExitSignal { to, reason })
    })
}

/// `:shutdown` or `{:shutdown, _}`.
fn is_shutdown<'a>(env: Env<'a>, reason: Term<'a>) -> bool {
    let shutdown = atoms::shutdown().encode(env);
    reason == shutdown || matches!(reason.decode::<(Term, Term)>(), Ok((tag, _)) if tag == shutdown)
}

#[rustler::nif]
fn sync_alive<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    pid: LocalPid,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let of = managed_or(env, st, pid)?;
        Ok(Op::Alive { of })
    })
}

/// `op` is `{:register, name, pid}`, `{:unregister, name}`, `{:whereis, name}` or
/// `:registered` (see `decode::NameOp`).
#[rustler::nif]
fn sync_name<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    let op = arg::<NameOp>(op)?;
    sync_with(env, res, id, None, |st| {
        Ok(match op {
            NameOp::Register(name, pid) => {
                let proc = managed_or(env, st, pid)?;
                Op::Register {
                    name: st.atoms.intern(name),
                    proc,
                }
            }
            NameOp::Unregister(name) => Op::Unregister {
                name: st.atoms.intern(name),
            },
            NameOp::Whereis(name) => Op::Whereis {
                name: st.atoms.intern(name),
            },
            NameOp::Registered => Op::Registered,
        })
    })
}

/// `op` is `:now` or `{:sleep, ms}` (see `decode::TimeOp`).
#[rustler::nif]
fn sync_time<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    let op = match arg::<TimeOp>(op)? {
        TimeOp::Now => Op::Now,
        TimeOp::Sleep(ms) => Op::Sleep { ms },
    };
    sync(env, res, id, op)
}

#[rustler::nif]
fn sync_send_after<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    dest: Term<'a>,
    payload: Term<'a>,
    ms: u64,
    tref: Term<'a>,
) -> NifResult<Term<'a>> {
    // `dest` too: a timer to a pid outside the run sends to it for real when it fires.
    let data = (tref, payload, dest).encode(env);
    sync_with(env, res, id, Some(data), |st| {
        let to = decode_target(env, st, id, dest)?;
        Ok(Op::SendAfter { to, ms })
    })
}

/// `cancel_timer(ref)`; `notify`: the result travels as a `{:cancel_timer, ref, result}`
/// message to the caller, whose adapter call puts it in the mailbox (see
/// `OpResult::Cancelled`).
#[rustler::nif]
fn sync_cancel_timer<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    tref: Term<'a>,
    notify: bool,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let timer = st.terms.timer_of(env, tref);
        Ok(Op::CancelTimer { timer, notify })
    })
}

/// `read_timer(ref)`: the ms left, or `false`; `notify` as for `sync_cancel_timer`.
#[rustler::nif]
fn sync_read_timer<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    tref: Term<'a>,
    notify: bool,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let timer = st.terms.timer_of(env, tref);
        Ok(Op::ReadTimer { timer, notify })
    })
}

/// A shared-state sync point; `kind` is shown in the trace (captured), `object` says what
/// it touches (see `decode::NifObject`).
#[rustler::nif]
fn sync_nif<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    kind: Term<'a>,
    object: Term<'a>,
) -> NifResult<Term<'a>> {
    let NifObject(object, access) = arg(object)?;
    sync_announcing(env, res, id, Some(kind), true, |_| {
        Ok(Op::Nif { object, access })
    })
}

/// The caller, which sent outside the run, receives in instrumented code: it may wait for
/// the outside. Not a sync point.
#[rustler::nif]
fn await_outside(env: Env, res: ResourceArc<SessionResource>, id: ProcId) -> NifResult<Atom> {
    running_note(env, &res, id, |session| session.await_outside(id))
}

/// The caller took a message sent from outside the run. Not a sync point.
#[rustler::nif]
fn external_received(env: Env, res: ResourceArc<SessionResource>, id: ProcId) -> NifResult<Atom> {
    running_note(env, &res, id, |session| session.external_received(id))
}

/// The caller found message `msg` matching in its mailbox. Not a sync point: what a
/// receive on the hot path reports with its next call instead (`handoff`).
#[rustler::nif]
fn consumed(env: Env, res: &SessionResource, id: ProcId, msg: MsgId) -> NifResult<Atom> {
    running_note(env, res, id, |session| session.consumed(id, msg))
}

/// What the running process tells the engine between sync points: nothing once the
/// iteration is over or the caller has exited (its news no longer matters).
fn running_note(
    env: Env,
    res: &SessionResource,
    id: ProcId,
    note: impl FnOnce(&mut lockstep_core::Session) -> Result<(), lockstep_core::EngineError>,
) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    note(&mut st.session).map_err(engine_error)?;
    Ok(atoms::ok())
}

/// A capturing iteration: how the report labels the caller when it has no registered
/// name (the module of the OTP behaviour it runs). Not a sync point; ignored otherwise.
#[rustler::nif]
fn note_label(env: Env, res: &SessionResource, id: ProcId, label: String) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.capture.on {
        st.capture.labels.insert(id, label);
    }
    Ok(atoms::ok())
}

/// Instrumented code in a capturing iteration: the caller's next operation is at `site`
/// (`"lib/x.ex:12"`), which the events it records are filed under (`state::Sites`).
/// `consumed` is the message a receive took since the caller's last call, or `nil`: it is
/// reported first, so its event keeps the site of that receive. Not a sync point.
#[rustler::nif]
fn note_site(
    env: Env,
    res: &SessionResource,
    id: ProcId,
    consumed: Option<MsgId>,
    site: String,
) -> NifResult<Atom> {
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    if st.session.is_over() || st.exited(id) {
        return Ok(atoms::ok());
    }
    if let Some(msg) = consumed {
        st.session.consumed(id, msg).map_err(engine_error)?;
    }
    if st.capture.on {
        st.capture.sites.note(st.session.events(), id, &site);
    }
    Ok(atoms::ok())
}
