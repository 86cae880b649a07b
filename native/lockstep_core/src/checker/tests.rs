//! Facts about the checker: hand-built histories that are and are not linearizable for
//! each model, sequential consistency, and two properties against a brute-force checker
//! (every subset of `:info` operations, every order of them).

use super::models::{Builtin, Model, Oracle, State};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn v(n: i64) -> Value {
    Value::Int(n)
}
fn t(id: u32) -> Value {
    Value::Term(id)
}
const NIL: Value = Value::Term(0);

/// `(process, call, ret, kind, args, result)`; `ret`/`result` `None` for `:info`.
type Row = (u32, u64, Option<u64>, Kind, Vec<Value>, Option<Value>);

fn history(rows: Vec<Row>) -> Vec<Operation> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (process, call, ret, kind, args, result))| Operation {
            id: i as u32,
            process,
            call,
            ret,
            kind,
            key: None,
            args,
            result,
        })
        .collect()
}

fn run(model: Builtin, ops: &[Operation], c: Consistency) -> Result<(), Violation> {
    let stop = AtomicBool::new(false);
    check(&mut Spec::Builtin(model), ops, c, &stop).unwrap()
}

fn lin(model: Builtin, rows: Vec<Row>) -> Result<(), Violation> {
    run(model, &history(rows), Consistency::Linearizable)
}

use Kind::*;

fn w(p: u32, c: u64, r: u64, x: Value) -> Row {
    (p, c, Some(r), Write, vec![x], Some(t(1)))
}
fn rd(p: u32, c: u64, r: u64, x: Value) -> Row {
    (p, c, Some(r), Read, vec![], Some(x))
}

#[test]
fn register_concurrent_overlapping_operations_are_linearizable() {
    // w(1) overlaps both reads: one may see nil, then the other 1.
    let h = vec![
        w(0, 0, 10, v(1)),
        rd(1, 1, 3, v(1)),
        rd(2, 2, 4, NIL),
        rd(1, 11, 12, v(1)),
    ];
    assert_eq!(lin(Builtin::Register(NIL), h), Ok(()));
}

#[test]
fn register_stale_read_after_a_completed_write_is_not_linearizable() {
    let h = vec![w(0, 0, 1, v(1)), w(0, 2, 3, v(2)), rd(1, 4, 5, v(1))];
    let err = lin(Builtin::Register(NIL), h).unwrap_err();
    // Every operation is needed: without either write the read is explained.
    assert_eq!(err.ops, vec![0, 1, 2]);
    assert!(err.minimal);
}

#[test]
fn register_read_must_not_see_the_future_nor_the_past_order() {
    // r → 1 then r → nil, sequential, with w(1) concurrent to both: nil after 1 is wrong.
    let h = vec![w(0, 0, 10, v(1)), rd(1, 1, 2, v(1)), rd(1, 3, 4, NIL)];
    let err = lin(Builtin::Register(NIL), h).unwrap_err();
    assert_eq!(err.ops, vec![0, 1, 2]);
}

#[test]
fn info_operations_may_take_effect_later_or_never() {
    // w(1) crashed (:info): it may take effect after the read of nil, before the read of 1.
    let later = vec![
        (0, 0, None, Write, vec![v(1)], None),
        rd(1, 1, 2, NIL),
        rd(1, 3, 4, v(1)),
    ];
    assert_eq!(lin(Builtin::Register(NIL), later), Ok(()));
    // ... or never.
    let never = vec![(0, 0, None, Write, vec![v(1)], None), rd(1, 5, 6, NIL)];
    assert_eq!(lin(Builtin::Register(NIL), never), Ok(()));
    // But not before its invocation.
    let before = vec![rd(1, 0, 1, v(1)), (0, 2, None, Write, vec![v(1)], None)];
    assert!(lin(Builtin::Register(NIL), before).is_err());
}

#[test]
fn the_failing_sub_history_leaves_out_what_does_not_matter() {
    // Many unrelated writes and reads, then a stale read.
    let mut h = vec![w(0, 0, 1, v(1))];
    for i in 0..30u64 {
        h.push(w(1, 2 + 2 * i, 3 + 2 * i, v(100 + i as i64)));
    }
    h.push(rd(2, 100, 101, v(1)));
    let err = lin(Builtin::Register(NIL), h).unwrap_err();
    // w(1), one later write that completed before the read, and the stale read.
    assert_eq!(err.ops.len(), 3, "{:?}", err.ops);
    assert_eq!((err.ops[0], err.ops[2]), (0, 31));
    assert!((1..=30).contains(&err.ops[1]));
}

#[test]
fn a_long_failing_history_shrinks_to_what_matters() {
    // 3,000 operations over 5 processes, then a read that returns an old value.
    let mut h = Vec::new();
    for i in 0..3000u64 {
        h.push(w((i % 5) as u32, 10 * i, 10 * i + 15, v(i as i64)));
    }
    h.push(rd(6, 40_000, 40_001, v(17)));
    let err = lin(Builtin::Register(NIL), h).unwrap_err();
    assert!(err.minimal);
    // The write of 17, a later write that completed before the read, and the read.
    assert_eq!(err.ops.len(), 3, "{:?}", err.ops);
    assert_eq!(err.ops[0], 17);
    assert_eq!(*err.ops.last().unwrap(), 3000);
}

#[test]
fn cas_register_lost_cas_is_not_linearizable() {
    // Two sequential cas(0→1) both claim success: the second must have failed.
    let cas = |p, c, r, from, to, ok| (p, c, Some(r), Cas, vec![from, to], Some(Value::Bool(ok)));
    let h = vec![
        w(0, 0, 1, v(0)),
        cas(1, 2, 3, v(0), v(1), true),
        cas(2, 4, 5, v(0), v(1), true),
    ];
    assert!(lin(Builtin::CasRegister(NIL), h).is_err());
    // Concurrent, one wins: fine.
    let ok = vec![
        w(0, 0, 1, v(0)),
        cas(1, 2, 6, v(0), v(1), true),
        cas(2, 3, 5, v(0), v(2), false),
        rd(0, 7, 8, v(1)),
    ];
    assert_eq!(lin(Builtin::CasRegister(NIL), ok), Ok(()));
    // A cas whose success was lost (reported false although the value matched) and no
    // concurrent writer to blame.
    let lost = vec![
        w(0, 0, 1, v(0)),
        cas(1, 2, 3, v(0), v(1), false),
        rd(0, 4, 5, v(0)),
    ];
    assert!(lin(Builtin::CasRegister(NIL), lost).is_err());
    // :info cas may have happened: a later read of 1 is explained.
    let info = vec![
        w(0, 0, 1, v(0)),
        (1, 2, None, Cas, vec![v(0), v(1)], None),
        rd(0, 4, 5, v(1)),
    ];
    assert_eq!(lin(Builtin::CasRegister(NIL), info), Ok(()));
}

#[test]
fn counter() {
    let add = |p, c, r, n| (p, c, Some(r), Add, vec![v(n)], Some(t(1)));
    let ok = vec![
        add(0, 0, 5, 1),
        add(1, 1, 6, 2),
        rd(2, 2, 3, v(2)),
        rd(2, 7, 8, v(3)),
    ];
    assert_eq!(lin(Builtin::Counter(0), ok), Ok(()));
    // A lost update: two completed adds, then a read that saw one.
    let lost = vec![add(0, 0, 1, 1), add(1, 0, 2, 1), rd(2, 3, 4, v(1))];
    assert!(lin(Builtin::Counter(0), lost).is_err());
    // An :info add may never have happened.
    let info = vec![(0, 0, None, Add, vec![v(5)], None), rd(2, 3, 4, v(0))];
    assert_eq!(lin(Builtin::Counter(0), info), Ok(()));
}

#[test]
fn set() {
    let add = |p, c, r, x| (p, c, Some(r), Add, vec![x], Some(t(1)));
    let has = |p, c, r, x, b| (p, c, Some(r), Contains, vec![x], Some(Value::Bool(b)));
    let read = |p, c, r, xs| (p, c, Some(r), Read, vec![], Some(Value::List(xs)));
    let ok = vec![
        add(0, 0, 4, v(1)),
        has(1, 1, 2, v(1), false),
        has(1, 3, 5, v(1), true),
        read(2, 6, 7, vec![v(1)]),
    ];
    assert_eq!(lin(Builtin::Set(vec![]), ok), Ok(()));
    let bad = vec![add(0, 0, 1, v(1)), has(1, 2, 3, v(1), false)];
    assert!(lin(Builtin::Set(vec![]), bad).is_err());
    let removed = vec![
        add(0, 0, 1, v(1)),
        (0, 2, Some(3), Remove, vec![v(1)], Some(t(1))),
        read(1, 4, 5, vec![v(1)]),
    ];
    assert!(lin(Builtin::Set(vec![]), removed).is_err());
}

#[test]
fn queue() {
    let enq = |p, c, r, x| (p, c, Some(r), Enqueue, vec![x], Some(t(1)));
    let deq = |p, c, r, x| (p, c, Some(r), Dequeue, vec![], Some(x));
    let empty = t(9);
    // Two concurrent enqueues may land in either order.
    let ok = vec![
        enq(0, 0, 3, v(1)),
        enq(1, 1, 2, v(2)),
        deq(2, 4, 5, v(2)),
        deq(2, 6, 7, v(1)),
        deq(2, 8, 9, empty.clone()),
    ];
    assert_eq!(lin(Builtin::Queue(vec![], empty.clone()), ok), Ok(()));
    // Sequential enqueues come out in order.
    let fifo = vec![enq(0, 0, 1, v(1)), enq(0, 2, 3, v(2)), deq(1, 4, 5, v(2))];
    assert!(lin(Builtin::Queue(vec![], empty.clone()), fifo).is_err());
    // A duplicated delivery.
    let dup = vec![enq(0, 0, 1, v(1)), deq(1, 2, 3, v(1)), deq(2, 2, 4, v(1))];
    assert!(lin(Builtin::Queue(vec![], empty), dup).is_err());
}

fn kv_op(
    p: u32,
    c: u64,
    r: Option<u64>,
    kind: Kind,
    key: i64,
    args: Vec<Value>,
    res: Option<Value>,
) -> Operation {
    Operation {
        id: 0,
        process: p,
        call: c,
        ret: r,
        kind,
        key: Some(v(key)),
        args,
        result: res,
    }
}

fn numbered(mut ops: Vec<Operation>) -> Vec<Operation> {
    for (i, o) in ops.iter_mut().enumerate() {
        o.id = i as u32;
    }
    ops
}

#[test]
fn kv_is_checked_per_key_and_names_the_failing_key() {
    let ops = numbered(vec![
        kv_op(0, 0, Some(1), Write, 1, vec![v(1)], Some(t(1))),
        kv_op(1, 0, Some(1), Write, 2, vec![v(5)], Some(t(1))),
        kv_op(0, 2, Some(3), Read, 1, vec![], Some(v(1))),
        kv_op(1, 2, Some(3), Read, 2, vec![], Some(NIL)),
    ]);
    let err = run(Builtin::kv(NIL, vec![]), &ops, Consistency::Linearizable).unwrap_err();
    assert_eq!(err.key, Some(v(2)));
    assert_eq!(err.ops, vec![1, 3]);
}

#[test]
fn kv_keys_given_an_initial_value_start_there_the_others_at_the_default() {
    // Key 1 starts at 7 (the later of two values given for it), key 2 at nil.
    let model = || Builtin::kv(NIL, vec![(v(1), v(3)), (v(1), v(7))]);
    let reads = |x, y| {
        numbered(vec![
            kv_op(0, 0, Some(1), Read, 1, vec![], Some(x)),
            kv_op(1, 2, Some(3), Read, 2, vec![], Some(y)),
        ])
    };
    for c in [Consistency::Linearizable, Consistency::Sequential] {
        assert_eq!(run(model(), &reads(v(7), NIL), c), Ok(()));
        assert!(run(model(), &reads(NIL, NIL), c).is_err());
        assert!(run(model(), &reads(v(3), NIL), c).is_err());
    }
    // Written back to its initial value, a key is the same state as never written.
    let ops = numbered(vec![
        kv_op(0, 0, Some(1), Write, 1, vec![v(8)], Some(t(1))),
        kv_op(0, 2, Some(3), Write, 1, vec![v(7)], Some(t(1))),
        kv_op(1, 4, Some(5), Read, 1, vec![], Some(v(7))),
    ]);
    assert_eq!(run(model(), &ops, Consistency::Linearizable), Ok(()));
}

#[test]
fn sequential_consistency_accepts_what_linearizability_rejects() {
    // P0 writes 1 and returns; later P1 reads nil: stale in real time, but P1's read may
    // be ordered before P0's write when only program order counts.
    let ops = history(vec![w(0, 0, 1, v(1)), rd(1, 2, 3, NIL)]);
    assert!(run(Builtin::Register(NIL), &ops, Consistency::Linearizable).is_err());
    assert_eq!(
        run(Builtin::Register(NIL), &ops, Consistency::Sequential),
        Ok(())
    );
    // Program order still counts: P1 reads 1 then nil.
    let ops = history(vec![w(0, 0, 1, v(1)), rd(1, 2, 3, v(1)), rd(1, 4, 5, NIL)]);
    assert!(run(Builtin::Register(NIL), &ops, Consistency::Sequential).is_err());
}

#[test]
fn sequential_consistency_of_kv_is_checked_whole() {
    // The store-buffer litmus test: each process writes its key, then reads the other's
    // as unwritten. Each key alone is sequentially consistent; the whole is not (SC is not
    // compositional), and neither is it linearizable.
    let ops = numbered(vec![
        kv_op(0, 0, Some(1), Write, 1, vec![v(1)], Some(t(1))),
        kv_op(1, 0, Some(1), Write, 2, vec![v(1)], Some(t(1))),
        kv_op(0, 2, Some(3), Read, 2, vec![], Some(NIL)),
        kv_op(1, 2, Some(3), Read, 1, vec![], Some(NIL)),
    ]);
    let err = run(Builtin::kv(NIL, vec![]), &ops, Consistency::Sequential).unwrap_err();
    assert_eq!(err.key, None);
    assert_eq!(err.ops, vec![0, 1, 2, 3]);
    for key in [1, 2] {
        let part: Vec<Operation> = ops
            .iter()
            .filter(|o| o.key == Some(v(key)))
            .cloned()
            .collect();
        assert_eq!(
            run(Builtin::kv(NIL, vec![]), &part, Consistency::Sequential),
            Ok(())
        );
    }
}

#[test]
fn a_user_model_is_asked_each_transition_once() {
    // A register as an oracle: states are the values 0 (nil), 1, 2.
    let ops = history(vec![w(0, 0, 10, v(1)), rd(1, 1, 2, v(1)), rd(1, 3, 4, NIL)]);
    let table = ops.clone();
    let mut asked = Vec::new();
    let mut oracle = Oracle::new(Box::new(|s: u32, op: u32, known: bool| {
        asked.push((s, op, known));
        let o = &table[op as usize];
        Ok(match o.kind {
            Write => Some(match o.args[0] {
                Value::Int(n) => n as u32,
                _ => 0,
            }),
            _ => {
                let want = match o.result {
                    Some(Value::Int(n)) => n as u32,
                    _ => 0,
                };
                (!known || want == s).then_some(s)
            }
        })
    }));
    let stop = AtomicBool::new(false);
    let result = check(
        &mut Spec::User(oracle_ref(&mut oracle)),
        &ops,
        Consistency::Linearizable,
        &stop,
    );
    assert!(result.unwrap().is_err());
    drop(oracle);
    let mut unique = asked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), asked.len());
}

fn oracle_ref<'a>(o: &'a mut Oracle<'_>) -> Oracle<'a> {
    Oracle::new(Box::new(move |s, op, known| {
        let probe = Operation {
            id: op,
            process: 0,
            call: 0,
            ret: None,
            kind: Kind::User,
            key: None,
            args: vec![],
            result: known.then_some(Value::Int(0)),
        };
        o.step(&s, &probe)
    }))
}

#[test]
fn a_cancelled_check_aborts() {
    let mut h = Vec::new();
    for i in 0..5000u64 {
        h.push(w((i % 5) as u32, i, i + 3, v(i as i64)));
    }
    let stop = AtomicBool::new(true);
    let ops = history(h);
    assert_eq!(
        check(
            &mut Spec::Builtin(Builtin::Register(NIL)),
            &ops,
            Consistency::Linearizable,
            &stop
        ),
        Err(Abort)
    );
}

// Brute force ----------------------------------------------------------------------------

/// Every subset of the `:info` operations, every order of the chosen ones.
fn brute<M: Model>(model: &mut M, ops: &[Operation], c: Consistency) -> bool {
    let info: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_none()).collect();
    let done: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
    for mask in 0..(1u32 << info.len()) {
        let mut chosen = done.clone();
        for (b, &i) in info.iter().enumerate() {
            if mask & (1 << b) != 0 {
                chosen.push(i);
            }
        }
        if permutations(&mut chosen, 0, &mut |order| valid(model, ops, order, c)) {
            return true;
        }
    }
    false
}

fn permutations(xs: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize]) -> bool) -> bool {
    if k == xs.len() {
        return f(xs);
    }
    for i in k..xs.len() {
        xs.swap(k, i);
        if permutations(xs, k + 1, f) {
            xs.swap(k, i);
            return true;
        }
        xs.swap(k, i);
    }
    false
}

/// `b` must come before `a` in any order.
fn precedes(b: &Operation, a: &Operation, c: Consistency) -> bool {
    match c {
        Consistency::Linearizable => matches!(b.ret, Some(r) if r < a.call),
        // Program order: a completed operation before any later one of its process.
        Consistency::Sequential => {
            b.process == a.process && b.ret.is_some() && (b.call, b.id) < (a.call, a.id)
        }
    }
}

fn valid<M: Model>(model: &mut M, ops: &[Operation], order: &[usize], c: Consistency) -> bool {
    for (x, &a) in order.iter().enumerate() {
        for &b in &order[x + 1..] {
            if precedes(&ops[b], &ops[a], c) {
                return false;
            }
        }
    }
    // Completed operations left out would break program order only if chosen; every
    // completed one is chosen, so only chosen :info ones need their predecessors present.
    let mut s = model.init();
    for &i in order {
        match model.step(&s, &ops[i]).unwrap() {
            Some(n) => s = n,
            None => return false,
        }
    }
    true
}

/// The KV model as a map of registers written here, with no partitioning: what
/// P-compositionality must equal.
struct WholeKv;

impl Model for WholeKv {
    type State = BTreeMap<Value, Value>;
    fn init(&mut self) -> Self::State {
        BTreeMap::new()
    }
    fn step(&mut self, s: &Self::State, op: &Operation) -> Result<Option<Self::State>, Abort> {
        let key = op.key.clone().unwrap();
        let cur = s.get(&key).cloned().unwrap_or(NIL);
        let mut reg = Builtin::CasRegister(NIL);
        Ok(reg.step(&State::Value(cur), op)?.map(|next| {
            let State::Value(x) = next else {
                unreachable!()
            };
            let mut s = s.clone();
            s.insert(key, x);
            s
        }))
    }
}

fn arb_op(kinds: &'static [Kind], keys: i64) -> impl Strategy<Value = Operation> {
    (
        0u32..3,
        0u64..12,
        0u64..6,
        0u8..6,
        proptest::sample::select(kinds),
        0..keys,
        0i64..3,
        0i64..3,
        proptest::bool::ANY,
    )
        .prop_map(|(process, call, dur, info, kind, key, a, b, ok)| {
            let val = |n: i64| if n == 0 { NIL } else { v(n) };
            let ret = (info != 0).then_some(call + dur);
            let (args, result) = match kind {
                Read => (vec![], Some(val(a))),
                Write => (vec![val(a)], Some(t(1))),
                _ => (vec![val(a), val(b)], Some(Value::Bool(ok))),
            };
            Operation {
                id: 0,
                process,
                call,
                ret,
                kind,
                key: Some(v(key)),
                args,
                result: if ret.is_some() { result } else { None },
            }
        })
}

fn arb_history(
    kinds: &'static [Kind],
    keys: i64,
    max: usize,
) -> impl Strategy<Value = Vec<Operation>> {
    proptest::collection::vec(arb_op(kinds, keys), 1..=max).prop_map(numbered)
}

const REG: &[Kind] = &[Read, Write];
const CAS: &[Kind] = &[Read, Write, Cas];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_checker_agrees_with_brute_force(ops in arb_history(CAS, 1, 6)) {
        for c in [Consistency::Linearizable, Consistency::Sequential] {
            let mut m = Builtin::CasRegister(NIL);
            let expected = brute(&mut m, &ops, c);
            let got = run(Builtin::CasRegister(NIL), &ops, c);
            prop_assert_eq!(got.is_ok(), expected, "{:?} {:?}", c, ops);
            if let Err(v) = got {
                // The sub-history reported fails too.
                let sub: Vec<Operation> =
                    ops.iter().filter(|o| v.ops.contains(&o.id)).cloned().collect();
                prop_assert!(!brute(&mut m, &sub, c), "{:?} sub {:?}", c, sub);
            }
        }
    }

    #[test]
    fn register_checker_agrees_with_brute_force(ops in arb_history(REG, 1, 7)) {
        let mut m = Builtin::Register(NIL);
        let expected = brute(&mut m, &ops, Consistency::Linearizable);
        prop_assert_eq!(run(Builtin::Register(NIL), &ops, Consistency::Linearizable).is_ok(), expected);
        // The classic Wing & Gong walk agrees.
        let stop = AtomicBool::new(false);
        prop_assert_eq!(search::linearizable_wg(&mut m, &ops, &Cancel(&stop)).unwrap(), expected);
    }

    #[test]
    fn per_key_check_equals_the_whole_history_check(ops in arb_history(CAS, 3, 7)) {
        for c in [Consistency::Linearizable, Consistency::Sequential] {
            let stop = AtomicBool::new(false);
            // For sequential consistency `check` takes the whole history (it is not
            // compositional), with the Rust KV map model.
            let per_key = run(Builtin::kv(NIL, vec![]), &ops, c).is_ok();
            let whole = match c {
                Consistency::Linearizable => search::linearizable(&mut WholeKv, &ops, &Cancel(&stop)),
                Consistency::Sequential => search::sequential(&mut WholeKv, &ops, &Cancel(&stop)),
            }.unwrap();
            prop_assert_eq!(per_key, whole, "{:?} {:?}", c, ops);
            if ops.len() <= 6 {
                prop_assert_eq!(whole, brute(&mut WholeKv, &ops, c));
            }
        }
    }
}

/// A linearizable register history as `bench/support/checker.exs` makes them: `procs`
/// processes, each completing its open operation (which takes effect then) or invoking a
/// new one at random.
fn generated(n: usize, procs: u32, seed: u64) -> Vec<Row> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut open: std::collections::HashMap<u32, (u64, Kind, i64)> = Default::default();
    let mut reg = NIL;
    let mut rows: Vec<Row> = Vec::new();
    let (mut now, mut left) = (0u64, n);
    while left > 0 || !open.is_empty() {
        let p = rng.random_range(0..procs);
        now += 1;
        if let Some((call, k, a)) = open.remove(&p) {
            let (args, res) = if k == Write {
                reg = v(a);
                (vec![v(a)], t(1))
            } else {
                (vec![], reg.clone())
            };
            rows.push((p, call, Some(now), k, args, Some(res)));
        } else if left > 0 {
            let k = if rng.random_range(0..2) == 0 {
                Write
            } else {
                Read
            };
            open.insert(p, (now, k, (n - left) as i64 + 1));
            left -= 1;
        }
    }
    rows
}

#[test]
fn generated_histories_pass_and_a_bad_read_at_the_end_is_found_alone() {
    for (n, procs) in [(1000, 5), (300, 20)] {
        let mut rows = generated(n, procs, 1);
        assert_eq!(lin(Builtin::Register(NIL), rows.clone()), Ok(()));
        // A read of a value no one wrote, after everything.
        let end = rows.iter().filter_map(|r| r.2).max().unwrap();
        rows.push(rd(99, end + 1, end + 2, v(-5)));
        let err = lin(Builtin::Register(NIL), rows).unwrap_err();
        assert_eq!(err.ops, vec![n as u32]);
        assert!(err.minimal);
    }
}
