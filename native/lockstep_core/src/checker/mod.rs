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
//!    and each part checked alone: a history is linearizable exactly when every part is
//!    (sequential consistency is not compositional, so it is checked whole).
//! 2. Each part is searched ([`search`]): Wing & Gong's tree search in Lowe's
//!    just-in-time form, with his memoisation of (linearized set, model state), for
//!    linearizability; per-process order only for sequential consistency.
//! 3. A part that fails is shrunk ([`shrink`]) to a small sub-history that still fails:
//!    first the shortest window of its latest operations that fails (16, 64, 256, …:
//!    cheap, where searching the whole again is not); failing that, the shortest failing
//!    prefix in time (linearizability is prefix-closed: operations still running at the
//!    cut become `:info`; sequential consistency is not, and is not cut), then its
//!    latest operations again; then each operation the failure does not need is dropped,
//!    by halves, except the last one left that makes a kept operation possible at all
//!    (so a read is never shown without the write it read from). What remains, with
//!    the results recorded, cannot be linearized: it is what the report shows.
//!    Shrinking stops after [`SHRINK_STEPS`] model steps and keeps what it has
//!    (`Violation::minimal` says so). Everything here is deterministic: the same history
//!    gives the same sub-history.
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
        // Sequential consistency is not compositional (Herlihy & Wing 1990): per key only
        // for linearizability.
        Spec::Builtin(model) if model.per_key() && consistency == Consistency::Linearizable => {
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
    let mut shrink = Shrink {
        current: ops.to_vec(),
        gone: vec![false; ops.len()],
        all: ops.to_vec(),
        alone: HashMap::new(),
        pair: HashMap::new(),
        supporter: HashMap::new(),
        ever: HashMap::new(),
        consistency,
    };
    // 1. A violation at the end of a long history is usually explained by the operations
    // near it, and a short sub-history is cheap to search where the whole one is not
    // (a failing search backtracks through every earlier choice): first the last 16,
    // 64, 256, … operations alone.
    if !shrink.window(model, cancel, &over)? {
        // 2. Else the shortest failing prefix: the first time t whose cut fails
        // (monotone in t for linearizability: the operations linearized before t form a
        // valid prefix), then its latest operations as in 1.
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
            // Sequential consistency is not prefix-closed in time (a later write of
            // another process may explain an earlier read): no cut.
            lo = hi;
        }
        // Invariant: cut(times[hi]) fails (hi == len: the whole history); below lo none
        // does.
        while lo < hi && !over(model) {
            let mid = (lo + hi) / 2;
            if search(model, &cut(ops, times[mid]), consistency, cancel)? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if hi < times.len() {
            shrink.current = cut(ops, times[hi]);
            shrink.gone = vec![false; shrink.current.len()];
        }
        shrink.window(model, cancel, &over)?;
    }
    // 3. Drop the operations the failure does not need — but never the last one left
    // that makes a kept operation possible at all (without the write of 1, a read of 1
    // fails on its own, and a sub-history that fails that way explains nothing). "Makes
    // possible" is checked on pairs: `y` alone cannot be linearized, `z` as `:info`
    // followed by `y` can. Deletion goes by halves (as delta debugging does): a run of
    // operations that can all go costs one search, so a long history with a few
    // operations that matter shrinks in O(k log n) searches.
    let mut ranges = vec![(0, shrink.current.len())];
    while let Some((lo, hi)) = ranges.pop() {
        if over(model) {
            break;
        }
        let fresh: Vec<usize> = (lo..hi).filter(|&i| !shrink.gone[i]).collect();
        if fresh.is_empty() {
            continue;
        }
        for &i in &fresh {
            shrink.gone[i] = true;
        }
        if shrink.still_fails(model, cancel)? {
            continue;
        }
        for &i in &fresh {
            shrink.gone[i] = false;
        }
        if hi - lo > 1 {
            let mid = (lo + hi) / 2;
            // Later operations first (the stack pops the right half first): a read goes
            // before the write it read from, which the guard would otherwise keep.
            ranges.push((lo, mid));
            ranges.push((mid, hi));
        }
    }
    let current = shrink.rest();
    let minimal = !over(model);
    // The kept operations as recorded: restoring results only adds constraints.
    let recorded: HashMap<u32, &Operation> = ops.iter().map(|o| (o.id, o)).collect();
    let kept = current
        .iter()
        .filter_map(|k| recorded.get(&k.id).map(|o| (*o).clone()))
        .collect();
    Ok((kept, minimal))
}

/// Phase 2 of [`shrink`]: which operations are gone, and the memos of its guard.
struct Shrink {
    current: Vec<Operation>,
    gone: Vec<bool>,
    /// Whether an operation can be linearized on its own.
    alone: HashMap<u32, bool>,
    /// Whether `(z, y)`: `z` as `:info`, then `y`, can be linearized.
    pair: HashMap<(u32, u32), bool>,
    /// The last supporter found for `y`.
    supporter: HashMap<u32, u32>,
    /// Whether anything in the whole history (`all`) supports `y`.
    ever: HashMap<u32, bool>,
    all: Vec<Operation>,
    consistency: Consistency,
}

impl Shrink {
    /// Keeps only the shortest window of the latest operations (16, 64, 256, …) that
    /// still fails, if one shorter than the whole does; says whether one did.
    fn window<M: Model>(
        &mut self,
        model: &mut M,
        cancel: &Cancel,
        over: &dyn Fn(&M) -> bool,
    ) -> Result<bool, Abort> {
        let mut by_call: Vec<usize> = (0..self.current.len()).collect();
        by_call.sort_by_key(|&i| std::cmp::Reverse((self.current[i].call, self.current[i].id)));
        let mut window = 16;
        while window < by_call.len() && !over(model) {
            for (rank, &i) in by_call.iter().enumerate() {
                self.gone[i] = rank >= window;
            }
            // Without the operations that made them possible, some kept ones are now
            // impossible on their own: they go too (they are not what fails).
            loop {
                let mut dropped = false;
                for i in 0..self.current.len() {
                    if !self.gone[i] && self.current[i].ret.is_some() {
                        let y = self.current[i].clone();
                        if !self.possible(model, &y, cancel)? {
                            self.gone[i] = true;
                            dropped = true;
                        }
                    }
                }
                if !dropped || over(model) {
                    break;
                }
            }
            if self.still_fails(model, cancel)? {
                self.current = self.rest();
                self.gone = vec![false; self.current.len()];
                return Ok(true);
            }
            self.gone.iter_mut().for_each(|g| *g = false);
            window *= 4;
        }
        Ok(false)
    }

    fn rest(&self) -> Vec<Operation> {
        self.current
            .iter()
            .zip(&self.gone)
            .filter(|(_, gone)| !**gone)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// An operation of `among` that makes `y` possible, looked for nearest first: those
    /// invoked before `y` latest first, then (sequential consistency only, where real
    /// time does not bind) the later ones.
    fn find_supporter<M: Model>(
        &mut self,
        model: &mut M,
        among: &[Operation],
        y: &Operation,
        cancel: &Cancel,
    ) -> Result<Option<u32>, Abort> {
        let c = self.consistency;
        let mut before: Vec<&Operation> = among
            .iter()
            .filter(|z| z.id != y.id && z.call <= y.call)
            .collect();
        before.sort_by_key(|z| std::cmp::Reverse((z.call, z.id)));
        let later = among.iter().filter(|z| {
            z.id != y.id
                && z.call > y.call
                && (c == Consistency::Sequential || y.ret.is_none_or(|r| z.call <= r))
        });
        for z in before.into_iter().chain(later) {
            let b = match self.pair.get(&(z.id, y.id)) {
                Some(&b) => b,
                None => {
                    let b = search(model, &[z.weakened(), y.clone()], c, cancel)?;
                    self.pair.insert((z.id, y.id), b);
                    b
                }
            };
            if b {
                return Ok(Some(z.id));
            }
        }
        Ok(None)
    }

    /// Whether `y` can be linearized with what is left: alone, or after one of the
    /// operations left — or never could (then it is part of what fails).
    fn possible<M: Model>(
        &mut self,
        model: &mut M,
        y: &Operation,
        cancel: &Cancel,
    ) -> Result<bool, Abort> {
        let c = self.consistency;
        let alone = match self.alone.get(&y.id) {
            Some(&a) => a,
            None => {
                let a = search(model, std::slice::from_ref(y), c, cancel)?;
                self.alone.insert(y.id, a);
                a
            }
        };
        if alone {
            return Ok(true);
        }
        let rest = self.rest();
        if let Some(z) = self.supporter.get(&y.id) {
            if rest.iter().any(|o| o.id == *z) {
                return Ok(true);
            }
        }
        if let Some(z) = self.find_supporter(model, &rest, y, cancel)? {
            self.supporter.insert(y.id, z);
            return Ok(true);
        }
        let ever = match self.ever.get(&y.id) {
            Some(&e) => e,
            None => {
                let all = self.all.clone();
                let e = self.find_supporter(model, &all, y, cancel)?.is_some();
                self.ever.insert(y.id, e);
                e
            }
        };
        Ok(!ever)
    }

    /// Whether what is left still fails, every kept operation that needs a supporter
    /// still having one.
    fn still_fails<M: Model>(&mut self, model: &mut M, cancel: &Cancel) -> Result<bool, Abort> {
        let rest = self.rest();
        let c = self.consistency;
        if search(model, &rest, c, cancel)? {
            return Ok(false);
        }
        let ids: std::collections::HashSet<u32> = rest.iter().map(|o| o.id).collect();
        for y in rest.iter().filter(|y| y.ret.is_some()) {
            let alone = match self.alone.get(&y.id) {
                Some(&a) => a,
                None => {
                    let a = search(model, std::slice::from_ref(y), c, cancel)?;
                    self.alone.insert(y.id, a);
                    a
                }
            };
            if alone {
                continue;
            }
            if let Some(z) = self.supporter.get(&y.id) {
                if ids.contains(z) {
                    continue;
                }
            }
            if let Some(z) = self.find_supporter(model, &rest, y, cancel)? {
                self.supporter.insert(y.id, z);
                continue;
            }
            // Nothing left explains `y`: acceptable only if nothing ever did.
            let ever = match self.ever.get(&y.id) {
                Some(&e) => e,
                None => {
                    let all = self.all.clone();
                    let e = self.find_supporter(model, &all, y, cancel)?.is_some();
                    self.ever.insert(y.id, e);
                    e
                }
            };
            if ever {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
