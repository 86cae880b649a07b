//! What happens after the engine has taken a step: its effects are performed (deliveries,
//! exit signals, kills), the owner is told when the iteration is over, and the process the
//! strategy picked is woken with its operation's result — or, when that is the caller
//! itself, the result is returned from the calling NIF.
//!
//! Every wake-up and delivery is an `env.send` from the caller's env (never
//! `OwnedEnv::send_and_clear`, which panics on a scheduler thread).

use crate::convert::atoms;
use crate::handoff::Carry;
use crate::relay;
use crate::state::SessionState;
use lockstep_core::{Effect, Next, OpResult, Outcome, SendFate};
use lockstep_core::{MsgKind, ProcId};
use rustler::{Atom, Encoder, Env, LocalPid, Term};

/// Performs the engine's effects, tells the owner when the iteration is over, and wakes the
/// next process. Returns the value the calling NIF should return.
pub fn after_call<'a>(
    env: Env<'a>,
    tag: u64,
    st: &mut SessionState,
    next: Next,
    own_exit: Option<Term<'a>>,
) -> Term<'a> {
    after_call_carrying(env, tag, st, next, own_exit, None, None)
}

/// A caller that parks with at least this many of the run's messages waiting in its
/// mailbox parks on a fresh reference instead of the tag (`:wait_marked`): OTP 25 starts a
/// receive on a reference made just before it after the messages already queued (the
/// compiler's receive markers), so the wake-up is found without scanning the backlog. Below
/// it the plain park is cheaper than the extra `mark_park` call, reference and timer.
pub const MARK_THRESHOLD: u32 = 64;

/// The first element of a wake-up or exit message to `proc`: the reference it parks on,
/// if it handed one over (`mark_park`), else the run's tag. Either way the mark is used up.
pub fn wake_key<'a>(env: Env<'a>, tag: u64, st: &mut SessionState, proc: ProcId) -> Term<'a> {
    if st.terms.wake_refs.is_empty() {
        return tag.encode(env);
    }
    match st.terms.wake_refs.remove(&proc) {
        Some(Some(saved)) => st.terms.load(env, &saved),
        _ => tag.encode(env),
    }
}

/// What a caller that must park is told: `:wait`, or `:wait_marked` when its mailbox holds
/// a backlog (see [`MARK_THRESHOLD`]); the mark then waits for its reference.
fn park_term<'a>(env: Env<'a>, st: &mut SessionState, caller: Option<ProcId>) -> Term<'a> {
    let backlog = caller.filter(|&c| {
        st.session
            .proc(c)
            .is_some_and(|p| p.mailbox >= MARK_THRESHOLD && p.is_alive())
    });
    match backlog {
        Some(c) => {
            st.terms.wake_refs.insert(c, None);
            atoms::wait_marked().encode(env)
        }
        None => atoms::wait().encode(env),
    }
}

/// [`after_call`] for a caller that carries a message it sent (see `handoff`): handed over
/// with the result when the process that runs next is its target, about to try a receive
/// with nothing else untested; otherwise delivered before this call's own deliveries.
pub fn after_call_carrying<'a>(
    env: Env<'a>,
    tag: u64,
    st: &mut SessionState,
    next: Next,
    own_exit: Option<Term<'a>>,
    carry: Option<Carry<'a>>,
    caller: Option<ProcId>,
) -> Term<'a> {
    file_events(st);
    let handed = carry.and_then(|carry| {
        let receiver = match next {
            Next::Wake(_, OpResult::ReceiveAttempt { .. })
            | Next::Continue(OpResult::ReceiveAttempt { .. }) => st.session.running(),
            _ => None,
        };
        let untested = receiver
            .and_then(|p| st.session.proc(p))
            .map_or(0, |p| p.untested);
        if receiver.is_some_and(|p| carry.can_hand_to(st.procs.pid(p), untested)) {
            Some(carry)
        } else {
            carry.deliver(env, tag);
            None
        }
    });
    perform_effects(env, tag, st);
    if st.session.is_over() && !st.owner.done_sent {
        st.owner.done_sent = true;
        let reason = own_exit.unwrap_or_else(|| done_reason(env, st));
        let done_ref = st.done_ref_term(env);
        let _ = env.send(&st.owner.pid, (done_ref, atoms::done(), reason));
    }
    let handed = handed.as_ref();
    match next {
        Next::Continue(result) => handed
            .and_then(|c| c.in_hand(env, result))
            .unwrap_or_else(|| result_term(env, st, result)),
        Next::Wake(proc, result) => {
            let mut term = handed
                .and_then(|c| c.in_hand(env, result))
                .unwrap_or_else(|| result_term(env, st, result));
            // A forced ping-pong from here on: the wake-up carries a lease (see `relay`).
            if let (Some(carry), Some(waker)) = (handed, caller) {
                if relay::may_lease(result) {
                    if let Some(leased) = relay::grant(env, st, waker, proc, carry.msg, term) {
                        term = leased;
                    }
                }
            }
            if let Some(pid) = st.procs.pid(proc) {
                let key = wake_key(env, tag, st, proc);
                let _ = env.send(&pid, (key, atoms::go(), term));
            }
            park_term(env, st, caller)
        }
        Next::Ended => atoms::wait().encode(env),
    }
}

/// Files the terms announced with operations under the ids of what the engine's new
/// events created, then drops the events unless the session keeps its trace.
fn file_events(st: &mut SessionState) {
    if !st.terms.announced.is_empty() {
        st.file_announced();
    } else {
        st.terms.events_scanned = st.session.events().len();
    }
    if !st.capture.keep_events {
        // Nobody will ask for this iteration's trace (a failing one is re-run with capture
        // for its report): what announced terms needed from the events has just been read.
        st.session.forget_events();
        st.terms.events_scanned = 0;
    }
}

/// Performs the effects the engine queued, in order.
fn perform_effects(env: Env, tag: u64, st: &mut SessionState) {
    if st.session.has_effects() {
        // Taken into a buffer kept between calls (`perform` needs the state): no allocation
        // per call that has effects.
        let mut effects = std::mem::take(&mut st.terms.effects);
        effects.extend(st.session.take_effects());
        for effect in effects.drain(..) {
            perform(env, tag, st, effect);
        }
        st.terms.effects = effects;
    }
}

/// After a step that let the caller go on with its next operation in the same call (a
/// deferred send, see `handoff`): what the step announced and queued is settled now, so
/// that it comes before anything the next operation delivers.
pub fn settle_step(env: Env, tag: u64, st: &mut SessionState) {
    file_events(st);
    perform_effects(env, tag, st);
}

/// The reason the owner reports when the iteration ended other than by the caller's own
/// exit: the signal that killed the root or a process killed from outside.
fn done_reason<'a>(env: Env<'a>, st: &SessionState) -> Term<'a> {
    let proc = match st.session.outcome() {
        Some(Outcome::Exception { proc })
        | Some(Outcome::Crash { proc })
        | Some(Outcome::Killed { proc, .. }) => *proc,
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
            let (Some(pid), Some(saved)) = (st.procs.pid(to), st.terms.held.remove(&msg)) else {
                return;
            };
            let payload = st.terms.load(env, &saved);
            if st.capture.on {
                st.capture.msgs.insert(msg, saved);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::DeliverTimer { timer, msg, to } => {
            let (Some(pid), Some(saved)) = (st.procs.pid(to), st.terms.timer_data.get(&timer))
            else {
                return;
            };
            let data = st.terms.load(env, saved);
            let Ok((_ref, payload, _dest)) = data.decode::<(Term, Term, Term)>() else {
                return;
            };
            if st.capture.on {
                let copy = st.terms.save(payload);
                st.capture.msgs.insert(msg, copy);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::SendTimerOutside { timer } => {
            let Some(saved) = st.terms.timer_data.get(&timer) else {
                return;
            };
            let data = st.terms.load(env, saved);
            if let Ok((_ref, payload, dest)) = data.decode::<(Term, Term, Term)>() {
                // A pid outside the run, or a name only the VM has (see sync::vm_name_outside).
                let pid = match dest.decode::<LocalPid>() {
                    Ok(pid) => Some(pid),
                    Err(_) => env.whereis_pid(dest),
                };
                if let Some(pid) = pid {
                    let _ = env.send(&pid, payload);
                }
            }
        }
        Effect::DeliverSignal { msg, to } => {
            let Some(pid) = st.procs.pid(to) else {
                return;
            };
            let Some(m) = st.session.message(msg).copied() else {
                return;
            };
            let payload = match m.kind {
                MsgKind::Exit { reason, .. } => (
                    atoms::exit_tuple_tag(),
                    st.procs.pid_term(env, m.from),
                    st.reason_term(env, reason),
                )
                    .encode(env),
                MsgKind::Down { monitor, reason } => {
                    let mref = st
                        .terms
                        .load_or_nil(env, st.terms.monitor_refs.get(&monitor));
                    // A monitor set by name names `{name, node}`, as OTP's does.
                    let object = match st.session.monitor(monitor).and_then(|r| r.by_name) {
                        Some((name, node)) => {
                            (st.atoms.name(name), st.atoms.node_atom(node)).encode(env)
                        }
                        None => st.procs.pid_term(env, m.from),
                    };
                    (
                        atoms::down_tuple_tag(),
                        mref,
                        atoms::process(),
                        object,
                        st.reason_term(env, reason),
                    )
                        .encode(env)
                }
                MsgKind::NodeDown { node } => {
                    (atoms::nodedown(), st.atoms.node_atom(node)).encode(env)
                }
                MsgKind::User => return,
            };
            if st.capture.on {
                let copy = st.terms.save(payload);
                st.capture.msgs.insert(msg, copy);
            }
            let _ = env.send(&pid, (tag, atoms::msg(), msg, payload));
        }
        Effect::Kill { proc, reason } => {
            if let Some(pid) = st.procs.pid(proc) {
                let reason = st.reason_term(env, reason);
                let key = wake_key(env, tag, st, proc);
                let _ = env.send(&pid, (key, atoms::exit(), reason));
            }
        }
    }
}

/// The term a process sees as the result of its operation.
pub fn result_term<'a>(env: Env<'a>, st: &SessionState, result: OpResult) -> Term<'a> {
    match result {
        OpResult::Started => atoms::start().encode(env),
        OpResult::ReceiveAttempt { last: false } => atoms::attempt().encode(env),
        OpResult::ReceiveAttempt { last: true } => atoms::attempt_last().encode(env),
        OpResult::AwaitOutside => atoms::await_outside().encode(env),
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
                    (atoms::deliver(), msg, st.procs.pid_term(env, p)).encode(env)
                }
                (SendFate::InFlight | SendFate::Deferred, to) => {
                    let pid = match to {
                        Some(p) => st.procs.pid_term(env, p),
                        None => atoms::nil().encode(env),
                    };
                    (atoms::hold(), msg, pid).encode(env)
                }
                (SendFate::Dropped | SendFate::Cut, _) => atoms::drop().encode(env),
            }
        }
        OpResult::MonitorSet { .. } | OpResult::TimerSet { .. } => atoms::ok().encode(env),
        OpResult::WasTrapping(b)
        | OpResult::Alive(b)
        | OpResult::NameOk(b)
        | OpResult::Demonitored(b) => b.encode(env),
        OpResult::Found(Some(p)) => st.procs.pid_term(env, p),
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
                .map(|n| st.atoms.name(n))
                .collect();
            names.encode(env)
        }
        OpResult::Now(ms) => ms.encode(env),
        OpResult::Cancelled { left, notice } | OpResult::TimerLeft { left, notice } => {
            let left = match left {
                Some(ms) => ms.encode(env),
                None => false.encode(env),
            };
            match notice {
                Some(m) => (atoms::notice(), m, left).encode(env),
                None => left,
            }
        }
        OpResult::NodeList { up_only } => {
            let nodes: Vec<Atom> = st
                .session
                .nodes(up_only)
                .into_iter()
                .map(|n| st.atoms.node_atom(n))
                .collect();
            nodes.encode(env)
        }
        OpResult::VisibleFrom(from) => {
            let nodes: Vec<Atom> = st
                .session
                .visible_nodes(from)
                .into_iter()
                .map(|n| st.atoms.node_atom(n))
                .collect();
            nodes.encode(env)
        }
        OpResult::NodeIs(n) => st.atoms.node_atom(n).encode(env),
        OpResult::GlobalList(node) => {
            let names: Vec<Term> = st
                .session
                .global_names(node)
                .into_iter()
                .filter_map(|n| st.terms.global(env, n))
                .collect();
            names.encode(env)
        }
    }
}
