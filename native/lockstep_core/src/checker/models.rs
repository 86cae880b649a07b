//! The models a history is checked against: sequential specifications as `step` functions
//! from a state and one operation (with its recorded result) to the next state, or `None`
//! when the result is impossible in that state.
//!
//! An operation whose result is unknown (`:info`: it crashed or timed out, or the shrinker
//! weakened it) steps with `result == None`: it takes effect without its result being
//! checked. The search decides separately whether it takes effect at all.
//!
//! [`Builtin`] holds the models implemented here; [`Oracle`] is a user model written in
//! Elixir, whose states are numbered by the caller and whose transitions are asked for
//! through a callback, each at most once per check (they are memoised).

use super::{Abort, Kind, Operation, Value};
use std::collections::HashMap;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;

    fn init(&mut self) -> Self::State;

    /// The state after `op` in `state`, `None` if `op`'s result is impossible there.
    /// `Err(Abort)` stops the whole check (the caller went away or was cancelled).
    fn step(&mut self, state: &Self::State, op: &Operation) -> Result<Option<Self::State>, Abort>;
}

/// The models implemented in Rust, with their initial states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `:read` → the value, `:write v`.
    Register(Value),
    /// A register with `:cas [from, to]` → boolean as well.
    CasRegister(Value),
    /// `:add n`, `:read` → the integer.
    Counter(i64),
    /// `:add v`, `:remove v`, `:contains v` → boolean, `:read` → every element.
    Set(Vec<Value>),
    /// `:enqueue v`, `:dequeue` → the head, or the `empty` value on an empty queue.
    Queue(Vec<Value>, Value),
    /// Independent CAS registers by key (checked one key at a time for linearizability):
    /// the keys listed start at their values (sorted by key, each once: see
    /// [`Builtin::kv`]), every other key at the first value.
    Kv(Value, Vec<(Value, Value)>),
}

/// The state of a built-in model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Value(Value),
    Int(i64),
    /// Sorted, without duplicates.
    Set(Vec<Value>),
    /// Head first.
    Queue(Vec<Value>),
    /// A KV map: the keys whose value is not the initial one, sorted by key.
    Map(Vec<(Value, Value)>),
}

impl Builtin {
    /// A KV map whose keys start at `default`, except those of `initial` (the last value
    /// given for a key wins).
    pub fn kv(default: Value, initial: Vec<(Value, Value)>) -> Builtin {
        let mut initial: Vec<(Value, Value)> = initial.into_iter().rev().collect();
        // Stable: of the pairs of one key, the last given (first after the reversal) stays.
        initial.sort_by(|(a, _), (b, _)| a.cmp(b));
        initial.dedup_by(|(a, _), (b, _)| a == b);
        Builtin::Kv(default, initial)
    }

    /// Whether operations on different keys are independent (P-compositionality).
    pub fn per_key(&self) -> bool {
        matches!(self, Builtin::Kv(..))
    }
}

/// The value `key` starts at in a KV map.
fn kv_initial<'a>(default: &'a Value, initial: &'a [(Value, Value)], key: &Value) -> &'a Value {
    debug_assert!(
        initial.windows(2).all(|w| w[0].0 < w[1].0),
        "sorted, each key once"
    );
    match initial.binary_search_by(|(k, _)| k.cmp(key)) {
        Ok(i) => &initial[i].1,
        Err(_) => default,
    }
}

fn value_step(state: &Value, op: &Operation, cas: bool) -> Option<State> {
    let v = |s: Value| Some(State::Value(s));
    match (op.kind, op.args.as_slice()) {
        (Kind::Read, []) => match &op.result {
            None => v(state.clone()),
            Some(r) if r == state => v(state.clone()),
            Some(_) => None,
        },
        (Kind::Write, [x]) => v(x.clone()),
        (Kind::Cas, [from, to]) if cas => match (&op.result, state == from) {
            (None, true) | (Some(Value::Bool(true)), true) => v(to.clone()),
            (None, false) | (Some(Value::Bool(false)), false) => v(state.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort();
    values.dedup();
    values
}

impl Model for Builtin {
    type State = State;

    fn init(&mut self) -> State {
        match self {
            Builtin::Register(v) | Builtin::CasRegister(v) => State::Value(v.clone()),
            Builtin::Kv(..) => State::Map(Vec::new()),
            Builtin::Counter(n) => State::Int(*n),
            Builtin::Set(vs) => State::Set(sorted(vs.clone())),
            Builtin::Queue(vs, _) => State::Queue(vs.clone()),
        }
    }

    fn step(&mut self, state: &State, op: &Operation) -> Result<Option<State>, Abort> {
        let next = match (&*self, state) {
            (Builtin::Register(_), State::Value(s)) => value_step(s, op, false),
            (Builtin::CasRegister(_), State::Value(s)) => value_step(s, op, true),
            (Builtin::Kv(default, initials), State::Map(m)) => {
                let key = op.key.clone().unwrap_or(Value::Term(0));
                let initial = kv_initial(default, initials, &key);
                let at = m.binary_search_by(|(k, _)| k.cmp(&key));
                let current = match at {
                    Ok(i) => &m[i].1,
                    Err(_) => initial,
                };
                match value_step(current, op, true) {
                    Some(State::Value(next)) => {
                        let mut m = m.clone();
                        // Keys at their initial value are left out, so equal maps are
                        // equal states (the memo relies on it).
                        match (at, next == *initial) {
                            (Ok(i), true) => {
                                m.remove(i);
                            }
                            (Ok(i), false) => m[i].1 = next,
                            (Err(_), true) => {}
                            (Err(i), false) => m.insert(i, (key, next)),
                        }
                        Some(State::Map(m))
                    }
                    _ => None,
                }
            }
            (Builtin::Counter(_), State::Int(n)) => match (op.kind, op.args.as_slice()) {
                (Kind::Add, [Value::Int(d)]) => n.checked_add(*d).map(State::Int),
                (Kind::Read, []) => match &op.result {
                    None => Some(State::Int(*n)),
                    Some(Value::Int(r)) if r == n => Some(State::Int(*n)),
                    Some(_) => None,
                },
                _ => None,
            },
            (Builtin::Set(_), State::Set(s)) => match (op.kind, op.args.as_slice()) {
                (Kind::Add, [x]) => match s.binary_search(x) {
                    Ok(_) => Some(state.clone()),
                    Err(at) => {
                        let mut s = s.clone();
                        s.insert(at, x.clone());
                        Some(State::Set(s))
                    }
                },
                (Kind::Remove, [x]) => match s.binary_search(x) {
                    Ok(at) => {
                        let mut s = s.clone();
                        s.remove(at);
                        Some(State::Set(s))
                    }
                    Err(_) => Some(state.clone()),
                },
                (Kind::Contains, [x]) => match &op.result {
                    None => Some(state.clone()),
                    Some(Value::Bool(b)) if *b == s.binary_search(x).is_ok() => Some(state.clone()),
                    Some(_) => None,
                },
                (Kind::Read, []) => match &op.result {
                    None => Some(state.clone()),
                    Some(Value::List(r)) if r == s => Some(state.clone()),
                    Some(_) => None,
                },
                _ => None,
            },
            (Builtin::Queue(_, empty), State::Queue(q)) => match (op.kind, op.args.as_slice()) {
                (Kind::Enqueue, [x]) => {
                    let mut q = q.clone();
                    q.push(x.clone());
                    Some(State::Queue(q))
                }
                (Kind::Dequeue, []) => match (q.first(), &op.result) {
                    (None, None) => Some(state.clone()),
                    (None, Some(r)) if r == empty => Some(state.clone()),
                    (Some(_), None) => Some(State::Queue(q[1..].to_vec())),
                    (Some(h), Some(r)) if r == h => Some(State::Queue(q[1..].to_vec())),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        Ok(next)
    }
}

/// How a user model's transitions are asked for: `(state, op id, result known?)` →
/// the next state's number, `None` for `:error`.
pub type Ask<'a> = dyn FnMut(u32, u32, bool) -> Result<Option<u32>, Abort> + 'a;

/// A user model: states are numbers the caller gives (equal numbers for equal states, so
/// the memo works), state 0 the initial one. Each transition is asked once per check.
pub struct Oracle<'a> {
    ask: Box<Ask<'a>>,
    known: HashMap<(u32, u32, bool), Option<u32>>,
    /// How many transitions were asked for (each one a round trip to the caller).
    pub asked: u64,
}

impl<'a> Oracle<'a> {
    pub fn new(ask: Box<Ask<'a>>) -> Self {
        Oracle {
            ask,
            known: HashMap::new(),
            asked: 0,
        }
    }
}

impl Model for Oracle<'_> {
    type State = u32;

    fn init(&mut self) -> u32 {
        0
    }

    fn step(&mut self, state: &u32, op: &Operation) -> Result<Option<u32>, Abort> {
        let key = (*state, op.id, op.result.is_some());
        if let Some(next) = self.known.get(&key) {
            return Ok(*next);
        }
        self.asked += 1;
        let next = (self.ask)(key.0, key.1, key.2)?;
        self.known.insert(key, next);
        Ok(next)
    }
}
