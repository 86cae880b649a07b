//! Conversions from engine values to the terms the Elixir side reads, and the exceptions
//! the NIFs raise (`Lockstep.InternalError`, `Lockstep.NotManagedError`). What the NIFs
//! decode is in `decode`.

use crate::state::SessionState;
use lockstep_core::process::Process;
use lockstep_core::{
    Decision, Event, EventKind, ExitCause, MsgId, NameId, NodeId, Op, ProcId, ProcName, Reason,
    SendFate,
};
use rustler::{Atom, Encoder, Env, Error, LocalPid, NifException, Term};

pub mod atoms {
    rustler::atoms! {
        ok, nil, wait, outside, go, msg, exit, done, released, kill, killed, start, attempt, attempt_last,
        external, deliver, hold, drop, random, normal, pass, max_steps, exception, crash,
        deadlock, diverged, aborted, ready, running, blocked, exited, explored, sleep_blocked,
        depth, exhausted, run, fire, spawn, spawn_link, send,
        receive, block, r#yield = "yield", in_hand, exit_signal, in_flight, delivered,
        dropped, killed_outside_lockstep, noproc, noconnection, unregistered, unmanaged,
        badarg, process, register, unregister, whereis, registered, link, unlink, monitor,
        demonitor, trap_exit, exit_sent, exit_trapped, exit_ignored, down, alive, now, sleep,
        timer_started, timer_fired, timer_cancelled, timer_read, notice, receive_timeout,
        receive_external, await_outside, nif, send_unregistered,
        exit_tuple_tag = "EXIT", down_tuple_tag = "DOWN",
        nonode_at_nohost = "nonode@nohost",
        lockstep_alias = "$lockstep_alias",
        lockstep_global = "$lockstep_global",
        not_captured = "$lockstep_not_captured",
        badnode, nodedown, cut, deferred, node_started, node_stopped, partitioned, healed,
        tick, monitor_node, set_ticktime, global_register, global_unregister, global_whereis,
        cluster, send_dropped, internal_error, global, global_conflict,
        global_name_conflict, global_wait, ended, copied, undefined, shutdown,
        blocked_at_end, wait_marked, woken,
        lockstep_send = "$lockstep_send",
        lockstep_relay = "$lockstep_relay",
        lockstep_sent = "$lockstep_sent",
        lockstep_sent_wait = "$lockstep_sent_wait",
    }
}

/// `%Lockstep.InternalError{}`, raised from a NIF.
#[derive(NifException)]
#[rustler(encode)]
#[module = "Lockstep.InternalError"]
struct InternalError {
    message: String,
}

/// `%Lockstep.NotManagedError{}`, raised from a NIF: a run context used by a process it
/// does not belong to (`reason: :copied`), or after its iteration ended (`:ended`).
#[derive(NifException)]
#[rustler(encode)]
#[module = "Lockstep.NotManagedError"]
struct NotManagedError {
    function: Option<String>,
    reason: Atom,
    process: LocalPid,
    context_owner: Option<LocalPid>,
}

pub fn not_managed_error(ended: bool, process: LocalPid, context_owner: Option<LocalPid>) -> Error {
    let reason = if ended {
        atoms::ended()
    } else {
        atoms::copied()
    };
    Error::RaiseTerm(Box::new(NotManagedError {
        function: None,
        reason,
        process,
        context_owner,
    }))
}

pub fn internal_error(message: &str) -> Error {
    Error::RaiseTerm(Box::new(InternalError {
        message: format!("Lockstep internal error: {message}"),
    }))
}

pub fn engine_error(e: lockstep_core::EngineError) -> Error {
    internal_error(&e.to_string())
}

pub fn name_term<'a>(env: Env<'a>, name: &ProcName) -> Term<'a> {
    name.to_string().encode(env)
}

pub fn decision_term<'a>(env: Env<'a>, d: &Decision) -> Term<'a> {
    match d {
        Decision::Run(p) => (atoms::run(), name_term(env, p)).encode(env),
        Decision::Deliver { from, to } => {
            (atoms::deliver(), name_term(env, from), name_term(env, to)).encode(env)
        }
        Decision::Random(v) => (atoms::random(), *v).encode(env),
        Decision::Fire { owner, ordinal } => {
            (atoms::fire(), name_term(env, owner), *ordinal).encode(env)
        }
    }
}

pub fn pending_term<'a>(env: Env<'a>, p: &Process) -> Term<'a> {
    let atom = match p.pending {
        Op::Start => atoms::start(),
        Op::Receive { .. } => atoms::receive(),
        Op::Yield => atoms::r#yield(),
        Op::Random { n } => return (atoms::random(), n).encode(env),
        Op::Spawn { .. } | Op::SpawnOn { .. } => atoms::spawn(),
        Op::Send { .. } => atoms::send(),
        Op::Link { .. } => atoms::link(),
        Op::Unlink { .. } => atoms::unlink(),
        Op::Monitor { .. } | Op::MonitorName { .. } => atoms::monitor(),
        Op::Demonitor { .. } => atoms::demonitor(),
        Op::TrapExit { .. } => atoms::trap_exit(),
        Op::ExitSignal { .. } => atoms::exit(),
        Op::Alive { .. } => atoms::alive(),
        Op::Register { .. } => atoms::register(),
        Op::Unregister { .. } => atoms::unregister(),
        Op::Whereis { .. } => atoms::whereis(),
        Op::Registered => atoms::registered(),
        Op::Now => atoms::now(),
        Op::Sleep { .. } => atoms::sleep(),
        Op::SendAfter { .. } => atoms::timer_started(),
        Op::CancelTimer { .. } => atoms::timer_cancelled(),
        Op::ReadTimer { .. } => atoms::timer_read(),
        Op::Nif { .. } => atoms::nif(),
        Op::Cluster(_) => atoms::cluster(),
    };
    atom.encode(env)
}

fn fate_atom(fate: SendFate) -> Atom {
    match fate {
        SendFate::Delivered => atoms::delivered(),
        SendFate::InFlight => atoms::in_flight(),
        SendFate::Dropped => atoms::dropped(),
        SendFate::Cut => atoms::cut(),
        SendFate::Deferred => atoms::deferred(),
    }
}

/// One trace event as `{step, event}`; see `Lockstep.Trace` for the shapes.
pub(crate) fn event_term<'a>(env: Env<'a>, st: &SessionState, index: usize, e: &Event) -> Term<'a> {
    let session = &st.session;
    let name = |p: ProcId| name_term(env, &session.procs()[p as usize].name);
    let atom_name = |n: NameId| st.atoms.name(n).encode(env);
    let saved = |s: Option<&rustler::env::SavedTerm>| match s {
        Some(s) => st.terms.load(env, s),
        None => atoms::not_captured().encode(env),
    };
    let payload = |m: MsgId| saved(st.capture.msgs.get(&m));
    let node_atom = |n: NodeId| st.atoms.node_atom(n).encode(env);
    let global_name = |n: u32| {
        st.terms
            .global(env, n)
            .unwrap_or_else(|| atoms::nil().encode(env))
    };
    let reason = |r: Reason| st.reason_term(env, r);
    let who = name(e.proc);
    let event = match e.kind {
        EventKind::Start => (atoms::start(), who).encode(env),
        EventKind::Spawn { child, link } => {
            let tag = if link {
                atoms::spawn_link()
            } else {
                atoms::spawn()
            };
            (tag, who, name(child)).encode(env)
        }
        EventKind::Send { to, msg, fate } => {
            let to = match to {
                Some(t) => name(t),
                None => atoms::external().encode(env),
            };
            (atoms::send(), who, to, payload(msg), fate_atom(fate)).encode(env)
        }
        EventKind::SendToNobody { name: n, node, msg } => (
            atoms::send_dropped(),
            who,
            (atom_name(n), node_atom(node)),
            payload(msg),
        )
            .encode(env),
        EventKind::SendToUnregistered { name: n, global } => {
            let name = if global {
                (atoms::global(), global_name(n)).encode(env)
            } else {
                atom_name(n)
            };
            (atoms::send_unregistered(), who, name).encode(env)
        }
        EventKind::Deliver { msg, from } => {
            (atoms::deliver(), name(from), who, payload(msg)).encode(env)
        }
        EventKind::Drop { msg, from } => (atoms::drop(), name(from), who, payload(msg)).encode(env),
        EventKind::Receive { msg, from } => {
            (atoms::receive(), who, name(from), payload(msg)).encode(env)
        }
        EventKind::Block => (atoms::block(), who).encode(env),
        EventKind::Yield => (atoms::r#yield(), who).encode(env),
        EventKind::Random { n, value } => (atoms::random(), who, n, value).encode(env),
        EventKind::Link { to } => (atoms::link(), who, name(to)).encode(env),
        EventKind::Unlink { to } => (atoms::unlink(), who, name(to)).encode(env),
        EventKind::Monitor { target, .. } => (atoms::monitor(), who, name(target)).encode(env),
        EventKind::Demonitor { monitor } => {
            let target = session
                .monitor(monitor)
                .map(|m| name(m.target))
                .unwrap_or_else(|| atoms::nil().encode(env));
            (atoms::demonitor(), who, target).encode(env)
        }
        EventKind::TrapExit { on } => (atoms::trap_exit(), who, on).encode(env),
        EventKind::ExitSent {
            to,
            reason: r,
            fate,
            ..
        } => (
            atoms::exit_sent(),
            who,
            name(to),
            reason(r),
            fate_atom(fate),
        )
            .encode(env),
        EventKind::ExitTrapped {
            from, reason: r, ..
        } => (atoms::exit_trapped(), who, name(from), reason(r)).encode(env),
        EventKind::ExitIgnored { from } => (atoms::exit_ignored(), who, name(from)).encode(env),
        EventKind::Down {
            from, reason: r, ..
        } => (atoms::down(), who, name(from), reason(r)).encode(env),
        EventKind::Alive { of, alive } => (atoms::alive(), who, name(of), alive).encode(env),
        EventKind::Register {
            name: n,
            target,
            ok,
        } => (atoms::register(), who, atom_name(n), name(target), ok).encode(env),
        EventKind::Unregister { name: n, ok } => {
            (atoms::unregister(), who, atom_name(n), ok).encode(env)
        }
        EventKind::Whereis { name: n, found } => {
            let found = match found {
                Some(p) => name(p),
                None => atoms::nil().encode(env),
            };
            (atoms::whereis(), who, atom_name(n), found).encode(env)
        }
        EventKind::Now { ms } => (atoms::now(), who, ms).encode(env),
        EventKind::Sleep { ms, .. } => (atoms::sleep(), who, ms).encode(env),
        EventKind::TimerStarted { ms, .. } => (atoms::timer_started(), who, ms).encode(env),
        EventKind::TimerFired { now, .. } => (atoms::timer_fired(), who, now).encode(env),
        EventKind::TimerCancelled { left, .. } => (atoms::timer_cancelled(), who, left).encode(env),
        EventKind::TimerRead { left, .. } => (atoms::timer_read(), who, left).encode(env),
        EventKind::ReceiveTimeout => (atoms::receive_timeout(), who).encode(env),
        EventKind::ReceiveExternal => (atoms::receive_external(), who).encode(env),
        EventKind::Nif { .. } => {
            (atoms::nif(), who, saved(st.capture.nifs.get(&index))).encode(env)
        }
        EventKind::Exit { cause } => match cause {
            ExitCause::Own(_) => {
                (atoms::exit(), who, saved(st.capture.exits.get(&e.proc))).encode(env)
            }
            ExitCause::Signal { from, reason: r } => {
                (atoms::exit_signal(), name(from), who, reason(r)).encode(env)
            }
            ExitCause::External => {
                (atoms::exit(), who, atoms::killed_outside_lockstep()).encode(env)
            }
            ExitCause::Teardown => (atoms::exit(), who, atoms::kill()).encode(env),
            ExitCause::NodeDown => (atoms::exit(), who, atoms::node_stopped()).encode(env),
            ExitCause::NameConflict => {
                (atoms::exit(), who, atoms::global_name_conflict()).encode(env)
            }
        },
        EventKind::Cut {
            msg,
            from,
            deferred,
        } => {
            let tag = if deferred {
                atoms::deferred()
            } else {
                atoms::cut()
            };
            (tag, name(from), who, payload(msg)).encode(env)
        }
        EventKind::NodeStarted { node } => {
            (atoms::node_started(), who, node_atom(node)).encode(env)
        }
        EventKind::NodeStopped { node } => {
            (atoms::node_stopped(), who, node_atom(node)).encode(env)
        }
        EventKind::Partitioned { partition } => {
            let part = &session.cluster().partitions[partition as usize];
            let a: Vec<Term> = part.a.iter().map(|&n| node_atom(n)).collect();
            let b: Vec<Term> = part.b.iter().map(|&n| node_atom(n)).collect();
            let mode = match part.mode {
                lockstep_core::PartitionMode::Drop => atoms::drop(),
                lockstep_core::PartitionMode::Defer => atoms::deferred(),
            };
            (atoms::partitioned(), who, a, b, mode).encode(env)
        }
        EventKind::Healed { delivered } => (atoms::healed(), who, delivered).encode(env),
        EventKind::Tick { partition } => (atoms::tick(), who, partition).encode(env),
        EventKind::NodeDownMsg { node, .. } => {
            (atoms::nodedown(), who, node_atom(node)).encode(env)
        }
        EventKind::MonitorNode { node } => {
            (atoms::monitor_node(), who, node_atom(node)).encode(env)
        }
        EventKind::SetTicktime { ms } => (atoms::set_ticktime(), who, ms).encode(env),
        EventKind::GlobalRegister {
            name: n,
            target,
            ok,
        } => (
            atoms::global_register(),
            who,
            global_name(n),
            name(target),
            ok,
        )
            .encode(env),
        EventKind::GlobalUnregister { name: n } => {
            (atoms::global_unregister(), who, global_name(n)).encode(env)
        }
        EventKind::GlobalWhereis { name: n, found } => {
            let found = match found {
                Some(p) => name(p),
                None => atoms::nil().encode(env),
            };
            (atoms::global_whereis(), who, global_name(n), found).encode(env)
        }
        EventKind::GlobalLockWait { name: n } => {
            (atoms::global_wait(), who, global_name(n)).encode(env)
        }
        EventKind::GlobalConflict {
            name: n,
            kept,
            killed,
        } => (
            atoms::global_conflict(),
            who,
            global_name(n),
            name(kept),
            name(killed),
        )
            .encode(env),
    };
    (e.step, event).encode(env)
}
