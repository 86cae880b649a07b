//! The consistency checker (`lockstep_core::checker`) for `Lockstep.Checker`.
//!
//! A check never runs on a BEAM scheduler: `checker_start` decodes the history and starts
//! an OS thread for the search, and the calling process waits in a plain `receive` for
//! `{tag, :done, result}`. A user model's transitions are Elixir functions: the thread
//! asks for one with `{tag, :step, state, op, known?}` and blocks until the caller answers
//! with `checker_answer` (each transition is asked once per check: the core memoises
//! them). When the caller gives up (`checker_cancel`) or dies (the job resource is freed),
//! the thread's next step or its periodic check sees it and the thread ends.

use lockstep_core::checker::models::{Builtin, Oracle};
use lockstep_core::checker::{self, Abort, Consistency, Kind, Operation, Spec, Value};
use rustler::env::OwnedEnv;
use rustler::{
    Encoder, Env, LocalPid, NifMap, NifResult, NifTaggedEnum, NifUnitEnum, Resource, ResourceArc,
    Term,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

mod atoms {
    rustler::atoms! { step, done, ok, error, aborted, panic }
}

/// A value as `Lockstep.Checker` encodes it.
#[derive(NifTaggedEnum, Clone)]
pub enum ValueIn {
    Int(i64),
    Bool(bool),
    Term(u32),
    List(Vec<ValueIn>),
}

impl From<ValueIn> for Value {
    fn from(v: ValueIn) -> Value {
        match v {
            ValueIn::Int(n) => Value::Int(n),
            ValueIn::Bool(b) => Value::Bool(b),
            ValueIn::Term(t) => Value::Term(t),
            // A collection compares as a set: sorted, without duplicates.
            ValueIn::List(vs) => {
                let mut vs: Vec<Value> = vs.into_iter().map(Value::from).collect();
                vs.sort();
                vs.dedup();
                Value::List(vs)
            }
        }
    }
}

impl From<Value> for ValueIn {
    fn from(v: Value) -> ValueIn {
        match v {
            Value::Int(n) => ValueIn::Int(n),
            Value::Bool(b) => ValueIn::Bool(b),
            Value::Term(t) => ValueIn::Term(t),
            Value::List(vs) => ValueIn::List(vs.into_iter().map(ValueIn::from).collect()),
        }
    }
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum KindIn {
    Read,
    Write,
    Cas,
    Add,
    Remove,
    Contains,
    Enqueue,
    Dequeue,
    User,
}

#[derive(NifMap)]
pub struct OpIn {
    id: u32,
    process: u32,
    call: u64,
    ret: Option<u64>,
    kind: KindIn,
    key: Option<ValueIn>,
    args: Vec<ValueIn>,
    result: Option<ValueIn>,
}

#[derive(NifTaggedEnum)]
pub enum ModelIn {
    Register(ValueIn),
    CasRegister(ValueIn),
    Counter(i64),
    Set(Vec<ValueIn>),
    Queue(Vec<ValueIn>, ValueIn),
    /// Every key's initial value, then the keys that start elsewhere.
    Kv(ValueIn, Vec<(ValueIn, ValueIn)>),
    User,
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum ConsistencyIn {
    Linearizable,
    Sequential,
}

/// A user model's answer: the next state's number, or `:error`.
#[derive(NifTaggedEnum)]
pub enum Answer {
    Ok(u32),
    Error,
}

/// One running check, held by its caller.
pub struct CheckJob {
    answers: Mutex<Option<Sender<Option<u32>>>>,
    cancel: Arc<AtomicBool>,
}

#[rustler::resource_impl]
impl Resource for CheckJob {}

impl Drop for CheckJob {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

fn kind(k: KindIn) -> Kind {
    match k {
        KindIn::Read => Kind::Read,
        KindIn::Write => Kind::Write,
        KindIn::Cas => Kind::Cas,
        KindIn::Add => Kind::Add,
        KindIn::Remove => Kind::Remove,
        KindIn::Contains => Kind::Contains,
        KindIn::Enqueue => Kind::Enqueue,
        KindIn::Dequeue => Kind::Dequeue,
        KindIn::User => Kind::User,
    }
}

fn operation(o: OpIn) -> Operation {
    Operation {
        id: o.id,
        process: o.process,
        call: o.call,
        ret: o.ret,
        kind: kind(o.kind),
        key: o.key.map(Value::from),
        args: o.args.into_iter().map(Value::from).collect(),
        result: o.result.map(Value::from),
    }
}

fn values(vs: Vec<ValueIn>) -> Vec<Value> {
    vs.into_iter().map(Value::from).collect()
}

/// Starts checking `ops` against `model`; the caller gets `{tag, :step, …}` requests (user
/// models) and one `{tag, :done, result}`.
#[rustler::nif]
fn checker_start<'a>(
    env: Env<'a>,
    ops: Vec<OpIn>,
    model: ModelIn,
    consistency: ConsistencyIn,
    tag: u64,
) -> NifResult<ResourceArc<CheckJob>> {
    let ops: Vec<Operation> = ops.into_iter().map(operation).collect();
    let builtin = match model {
        ModelIn::Register(v) => Some(Builtin::Register(v.into())),
        ModelIn::CasRegister(v) => Some(Builtin::CasRegister(v.into())),
        ModelIn::Counter(n) => Some(Builtin::Counter(n)),
        ModelIn::Set(vs) => Some(Builtin::Set(values(vs))),
        ModelIn::Queue(vs, empty) => Some(Builtin::Queue(values(vs), empty.into())),
        ModelIn::Kv(v, initial) => Some(Builtin::kv(
            v.into(),
            initial
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )),
        ModelIn::User => None,
    };
    let consistency = match consistency {
        ConsistencyIn::Linearizable => Consistency::Linearizable,
        ConsistencyIn::Sequential => Consistency::Sequential,
    };
    let (tx, rx) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = ResourceArc::new(CheckJob {
        answers: Mutex::new(Some(tx)),
        cancel: cancel.clone(),
    });
    let pid = env.pid();
    std::thread::Builder::new()
        .name("lockstep-checker".into())
        .spawn(move || run(pid, tag, ops, builtin, consistency, rx, cancel))
        .map_err(|e| crate::convert::internal_error(&format!("checker thread: {e}")))?;
    Ok(job)
}

fn run(
    pid: LocalPid,
    tag: u64,
    ops: Vec<Operation>,
    builtin: Option<Builtin>,
    consistency: Consistency,
    rx: Receiver<Option<u32>>,
    cancel: Arc<AtomicBool>,
) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut spec = match builtin {
            Some(b) => Spec::Builtin(b),
            None => {
                let cancel = cancel.clone();
                let mut msg = OwnedEnv::new();
                Spec::User(Oracle::new(Box::new(move |state, op, known| {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Abort);
                    }
                    msg.send_and_clear(&pid, |env| {
                        (tag, atoms::step(), state, op, known).encode(env)
                    })
                    .map_err(|_| Abort)?;
                    rx.recv().map_err(|_| Abort)
                })))
            }
        };
        checker::check(&mut spec, &ops, consistency, &cancel)
    }));
    let mut msg = OwnedEnv::new();
    let _ = msg.send_and_clear(&pid, |env| {
        let result: Term = match outcome {
            Ok(Ok(Ok(()))) => atoms::ok().encode(env),
            Ok(Ok(Err(v))) => {
                (atoms::error(), v.key.map(ValueIn::from), v.ops, v.minimal).encode(env)
            }
            Ok(Err(Abort)) => atoms::aborted().encode(env),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "checker panicked".to_string());
                (atoms::panic(), text).encode(env)
            }
        };
        (tag, atoms::done(), result).encode(env)
    });
}

/// A user model's answer to the thread's last `:step` request.
#[rustler::nif]
fn checker_answer(job: ResourceArc<CheckJob>, answer: Answer) -> rustler::Atom {
    let next = match answer {
        Answer::Ok(n) => Some(n),
        Answer::Error => None,
    };
    if let Ok(guard) = job.answers.lock() {
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(next);
        }
    }
    atoms::ok()
}

/// Stops the check: the thread ends at its next step and sends `{tag, :done, :aborted}`.
#[rustler::nif]
fn checker_cancel(job: ResourceArc<CheckJob>) -> rustler::Atom {
    job.cancel.store(true, Ordering::Relaxed);
    if let Ok(mut guard) = job.answers.lock() {
        guard.take();
    }
    atoms::ok()
}
