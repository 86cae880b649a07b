//! The consistency checker: is a history of operations — each with its process, the time
//! it was invoked and the time it returned (or never: `:info`), its arguments and its
//! result — linearizable (Herlihy & Wing 1990), or sequentially consistent (Lamport
//! 1979), with respect to a sequential model?
//!
//! Control flow of [`check`]:
//!
//! 1. P-compositionality (Horn & Kroening, "Faster linearizability checking via
//!    P-compositionality", FORTE 2015; as Porcupine and Knossos do): for a model whose
//!    keys are independent ([`Builtin::per_key`], the KV map) the history is split by key
//!    and each part checked alone: a history is linearizable exactly when every part is.
//! 2. Each part is searched ([`search`]): Wing & Gong's backtracking with Lowe's
//!    memoisation of (linearized set, model state) for linearizability; per-process
//!    order only for sequential consistency.
//! 3. A part that fails is shrunk ([`shrink`]) to a small sub-history that still fails:
//!    the shortest failing prefix in time (linearizability and sequential consistency are
//!    prefix-closed: operations still running at the cut become `:info`), then each
//!    operation the failure does not need is dropped, except the last one left that
//!    makes a kept operation possible at all (so a read is never shown without the
//!    write it read from). What remains, with the results recorded, cannot be
//!    linearized: it is what the report
//!    shows. Shrinking stops after [`SHRINK_STEPS`] model steps and keeps what it has.
//!
//! Values are compared exactly: the caller turns terms into [`Value`]s (small integers as
//! themselves, booleans, lists for sets, and any other term as the number of its
//! equivalence class under `=:=`), so the checker never sees a term.

pub mod models;
pub mod search;

use models::{Builtin, Model, Oracle};
use search::Cancel;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

/// A value as the checker compares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Int(i64),
    Bool(bool),
    /// Any other term, by the number the caller gave its `=:=` class.
    Term(u32),
    /// A collection compared as a sorted set (a `:read` of a `Set`).
    List(Vec<Value>),
}

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Cas,
    Add,
    Remove,
    Contains,
    Enqueue,
    Dequeue,
    /// An operation of a user model (its meaning is the model's).
    User,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The caller's number for it: what the result names, and what a user model is asked.
    pub id: u32,
    pub process: u32,
    /// Invocation time.
    pub call: u64,
    /// Return time; `None` for an operation that may take effect any time after its call,
    /// or never (`:info`).
    pub ret: Option<u64>,
    pub kind: Kind,
    /// For per-key models, the key.
    pub key: Option<Value>,
    pub args: Vec<Value>,
    /// `None`: unknown (always so when `ret` is `None`).
    pub result: Option<Value>,
}

impl Operation {
    fn weakened(&self) -> Operation {
        Operation {
            ret: None,
            result: None,
            ..self.clone()
        }
    }
}

/// Linearizability or sequential consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    Linearizable,
    Sequential,
}

/// The check was stopped: the caller went away, or a user model's answer never came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort;

/// A failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key of the failing part, for per-key models.
    pub key: Option<Value>,
    /// The ids of a sub-history that cannot be explained, in call order.
    pub ops: Vec<u32>,
    /// Whether shrinking ran to the end (false: it hit its budget).
    pub minimal: bool,
}

/// The model a history is checked against.
pub enum Spec<'a> {
    Builtin(Builtin),
    User(Oracle<'a>),
}

/// How many model steps shrinking may take in all before it keeps what it has.
pub const SHRINK_STEPS: u64 = 20_000_000;

/// A model that counts its steps, so shrinking can stop.
struct Counted<'m, M> {
    inner: &'m mut M,
    steps: u64,
}

impl<M: Model> Model for Counted<'_, M> {
    type State = M::State;
    fn init(&mut self) -> M::State {
        self.inner.init()
    }
    fn step(&mut self, s: &M::State, op: &Operation) -> Result<Option<M::State>, Abort> {
        self.steps += 1;
        self.inner.step(s, op)
    }
}

/// Checks `ops` against `spec`. `cancel` stops the check (then `Err(Abort)`).
pub fn check(
    spec: &mut Spec,
    ops: &[Operation],
    consistency: Consistency,
    cancel: &AtomicBool,
) -> Result<Result<(), Violation>, Abort> {
    let cancel = Cancel(cancel);
    match spec {
        Spec::Builtin(model) if model.per_key() => {
            for (key, part) in by_key(ops) {
                if let Err(mut v) = check_part(model, &part, consistency, &cancel)? {
                    v.key = key;
                    return Ok(Err(v));
                }
            }
            Ok(Ok(()))
        }
        Spec::Builtin(model) => check_part(model, ops, consistency, &cancel),
        Spec::User(model) => check_part(model, ops, consistency, &cancel),
    }
}

/// The history split by key, keys in order of first call.
pub fn by_key(ops: &[Operation]) -> Vec<(Option<Value>, Vec<Operation>)> {
    let mut parts: Vec<(Option<Value>, Vec<Operation>)> = Vec::new();
    let mut index: HashMap<Option<Value>, usize> = HashMap::new();
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.call, o.id));
    for op in sorted {
        let at = *index.entry(op.key.clone()).or_insert_with(|| {
            parts.push((op.key.clone(), Vec::new()));
            parts.len() - 1
        });
        parts[at].1.push(op.clone());
    }
    parts
}

fn search<M: Model>(
    model: &mut M,
    ops: &[Operation],
    consistency: Consistency,
    cancel: &Cancel,
) -> Result<bool, Abort> {
    match consistency {
        Consistency::Linearizable => search::linearizable(model, ops, cancel),
        Consistency::Sequential => search::sequential(model, ops, cancel),
    }
}

fn check_part<M: Model>(
    model: &mut M,
    ops: &[Operation],
    consistency: Consistency,
    cancel: &Cancel,
) -> Result<Result<(), Violation>, Abort> {
    if search(model, ops, consistency, cancel)? {
        return Ok(Ok(()));
    }
    let mut counted = Counted {
        inner: model,
        steps: 0,
    };
    let (mut kept, minimal) = shrink(&mut counted, ops, consistency, cancel)?;
    kept.sort_by_key(|o| (o.call, o.id));
    Ok(Err(Violation {
        key: None,
        ops: kept.iter().map(|o| o.id).collect(),
        minimal,
    }))
}

/// `ops` as they were at time `t`: operations invoked before it, those still running then
/// weakened to `:info`.
fn cut(ops: &[Operation], t: u64) -> Vec<Operation> {
    ops.iter()
        .filter(|o| o.call < t)
        .map(|o| match o.ret {
            Some(r) if r < t => o.clone(),
            _ => o.weakened(),
        })
        .collect()
}

/// A failing sub-history of the failing `ops` (see the module comment), with the
/// operations as recorded, and whether shrinking finished within its budget.
fn shrink<M: Model>(
    model: &mut Counted<M>,
    ops: &[Operation],
    consistency: Consistency,
    cancel: &Cancel,
) -> Result<(Vec<Operation>, bool), Abort> {
    let over = |m: &Counted<M>| m.steps > SHRINK_STEPS;
    // 1. The shortest failing prefix: the first time t whose cut fails (monotone in t for
    // linearizability: the operations linearized before t form a valid prefix).
    let mut times: Vec<u64> = ops
        .iter()
        .flat_map(|o| [Some(o.call), o.ret])
        .flatten()
        .map(|t| t + 1)
        .collect();
    times.sort_unstable();
    times.dedup();
    let (mut lo, mut hi) = (0usize, times.len());
    if consistency == Consistency::Sequential {
        // Sequential consistency is not prefix-closed in time (a later write of another
        // process may explain an earlier read): no cut.
        lo = hi;
    }
    // Invariant: cut(times[hi]) fails (hi == len: the whole history); below lo none does.
    while lo < hi && !over(model) {
        let mid = (lo + hi) / 2;
        if search(model, &cut(ops, times[mid]), consistency, cancel)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut current = if hi < times.len() {
        cut(ops, times[hi])
    } else {
        ops.to_vec()
    };
    // 2. Drop each operation the failure does not need — unless it is the last one left
    // that makes a kept operation possible at all (without the write of 1, a read of 1
    // fails on its own, and a sub-history that fails that way explains nothing). "Makes
    // possible" is checked on pairs: `y` alone cannot be linearized, `x` as `:info`
    // followed by `y` can.
    let mut alone: HashMap<u32, bool> = HashMap::new();
    let mut pair: HashMap<(u32, u32), bool> = HashMap::new();
    let mut i = 0;
    while i < current.len() {
        if over(model) {
            break;
        }
        let x = current.remove(i);
        let mut keep = search(model, &current, consistency, cancel)?;
        for y in current.iter().filter(|y| y.ret.is_some()) {
            if keep || over(model) {
                break;
            }
            let needs = match alone.get(&y.id) {
                Some(&a) => !a,
                None => {
                    let a = search(model, std::slice::from_ref(y), consistency, cancel)?;
                    alone.insert(y.id, a);
                    !a
                }
            };
            if !needs {
                continue;
            }
            let mut supports = |m: &mut Counted<M>, z: &Operation| -> Result<bool, Abort> {
                if let Some(&b) = pair.get(&(z.id, y.id)) {
                    return Ok(b);
                }
                let b = search(m, &[z.weakened(), y.clone()], consistency, cancel)?;
                pair.insert((z.id, y.id), b);
                Ok(b)
            };
            if supports(model, &x)? {
                let mut other = false;
                for z in current.iter().filter(|z| z.id != y.id) {
                    if supports(model, z)? {
                        other = true;
                        break;
                    }
                }
                keep = !other;
            }
        }
        if keep {
            current.insert(i, x);
            i += 1;
        }
    }
    let minimal = !over(model);
    // The kept operations as recorded: restoring results only adds constraints.
    let recorded: HashMap<u32, &Operation> = ops.iter().map(|o| (o.id, o)).collect();
    let kept = current
        .iter()
        .filter_map(|k| recorded.get(&k.id).map(|o| (*o).clone()))
        .collect();
    Ok((kept, minimal))
}

#[cfg(test)]
mod tests;
