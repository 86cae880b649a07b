//! Conversions between engine values and the terms the Elixir side reads.

use lockstep_core::process::Process;
use lockstep_core::{
    Decision, Event, EventKind, ExitCause, MsgId, PendingOp, ProcId, ProcName, SendFate, Session,
};
use rustler::{Atom, Encoder, Env, Error, NifResult, Term};

pub mod atoms {
    rustler::atoms! {
        ok, nil, wait, go, msg, exit, done, kill, killed, start, attempt, external, deliver,
        hold, drop, pct, random, replay, delayed, ignore, normal, pass, max_steps, exception,
        crash, deadlock, diverged, ready, running, blocked, exited, steps, context_switches,
        contested_steps, run, spawn, spawn_link, send, receive, block, r#yield = "yield",
        exit_signal, in_flight, aborted, fingerprint, not_captured = "$lockstep_not_captured", delivered, dropped, killed_outside_lockstep,
        __struct__, __exception__, message, r#true = "true",
    }
}

/// An exception struct raised from a NIF: Elixir sees a `%Lockstep.InternalError{}`.
struct InternalError(String);

impl Encoder for InternalError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let module = Atom::from_str(env, "Elixir.Lockstep.InternalError")
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| atoms::nil().encode(env));
        let pairs = [
            (atoms::__struct__().encode(env), module),
            (atoms::__exception__().encode(env), atoms::r#true().encode(env)),
            (atoms::message().encode(env), self.0.encode(env)),
        ];
        Term::map_from_pairs(env, &pairs).unwrap_or_else(|_| self.0.encode(env))
    }
}

pub fn internal_error(message: &str) -> Error {
    Error::RaiseTerm(Box::new(InternalError(format!("Lockstep internal error: {message}"))))
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
    }
}

fn decode_name(term: Term) -> NifResult<ProcName> {
    let text: String = term.decode()?;
    ProcName::parse(&text).ok_or_else(|| bad_schedule(&format!("bad process name {text:?}")))
}

fn bad_schedule(detail: &str) -> Error {
    Error::RaiseTerm(Box::new(format!("invalid schedule: {detail}")))
}

pub fn decode_schedule(term: Term) -> NifResult<Vec<Decision>> {
    let items: Vec<Term> = term
        .decode()
        .map_err(|_| bad_schedule("expected a list of decisions"))?;
    items
        .into_iter()
        .map(|item| {
            if let Ok((tag, name)) = item.decode::<(Atom, Term)>() {
                if tag == atoms::run() {
                    return Ok(Decision::Run(decode_name(name)?));
                }
                if tag == atoms::random() {
                    return Ok(Decision::Random(name.decode::<u64>()?));
                }
            }
            if let Ok((tag, from, to)) = item.decode::<(Atom, Term, Term)>() {
                if tag == atoms::deliver() {
                    return Ok(Decision::Deliver {
                        from: decode_name(from)?,
                        to: decode_name(to)?,
                    });
                }
            }
            Err(bad_schedule("expected {:run, name}, {:deliver, from, to} or {:random, n}"))
        })
        .collect()
}

pub fn pending_term<'a>(env: Env<'a>, p: &Process) -> Term<'a> {
    match p.pending {
        PendingOp::Start => atoms::start().encode(env),
        PendingOp::Receive => atoms::receive().encode(env),
        PendingOp::Yield => atoms::r#yield().encode(env),
        PendingOp::Random { n } => (atoms::random(), n).encode(env),
        PendingOp::Spawn { link } => (atoms::spawn(), link).encode(env),
        PendingOp::Send { .. } => atoms::send().encode(env),
    }
}

/// One trace event as `{step, event}`; see `Lockstep.Trace` for the shapes.
pub fn event_term<'a>(
    env: Env<'a>,
    session: &Session,
    e: &Event,
    payload: &dyn Fn(MsgId) -> Term<'a>,
    exit_reason: &dyn Fn(ProcId) -> Term<'a>,
    _pid: &dyn Fn(ProcId) -> Term<'a>,
) -> Term<'a> {
    let name = |p: ProcId| name_term(env, &session.procs()[p as usize].name);
    let who = name(e.proc);
    let event = match e.kind {
        EventKind::Start => (atoms::start(), who).encode(env),
        EventKind::Spawn { child, link } => {
            let tag = if link { atoms::spawn_link() } else { atoms::spawn() };
            (tag, who, name(child)).encode(env)
        }
        EventKind::Send { to, msg, fate } => {
            let to = match to {
                Some(t) => name(t),
                None => atoms::external().encode(env),
            };
            let fate = match fate {
                SendFate::Delivered => atoms::delivered(),
                SendFate::InFlight => atoms::in_flight(),
                SendFate::Dropped => atoms::dropped(),
            };
            (atoms::send(), who, to, payload(msg), fate).encode(env)
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
        EventKind::Exit { cause } => match cause {
            ExitCause::Own(_) => (atoms::exit(), who, exit_reason(e.proc)).encode(env),
            ExitCause::Linked { from } => {
                (atoms::exit_signal(), name(from), who, exit_reason(from)).encode(env)
            }
            ExitCause::External => {
                (atoms::exit(), who, atoms::killed_outside_lockstep()).encode(env)
            }
            ExitCause::Teardown => (atoms::exit(), who, atoms::kill()).encode(env),
        },
    };
    (e.step, event).encode(env)
}
