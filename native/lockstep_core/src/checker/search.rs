//! The two searches: is there an order of the operations, allowed by their timing, in
//! which the model accepts every result?
//!
//! [`linearizable`] is Wing & Gong's search ("Testing and verifying concurrent objects",
//! J. Parallel Distrib. Comput. 17, 1993) in the form Lowe gives it ("Testing for
//! linearizability", Concurrency and Computation 29(4), 2017), which Porcupine also uses:
//! the call and return entries of every operation sit in one doubly linked list in time
//! order. Walking it from the head, an operation whose call comes before the first return
//! still in the list may be linearized next: it is lifted out of the list (call and return
//! entry) if the model accepts it and the pair (set of linearized operations as a bitset,
//! model state) was never seen before — Lowe's memoisation, which makes a configuration
//! reached by two orders explored once. Meeting a return entry means its operation should
//! have been linearized already: backtrack. `:info` operations return at infinity, after
//! every completed one, so reaching one of their return entries means every completed
//! operation is linearized: the rest may never take effect.
//!
//! [`linearizable`] searches the same tree just in time (Lowe's JIT linearization, same
//! paper): events are read in time order and an operation is linearized only when it
//! must be — at its return, after a choice of other pending operations to linearize
//! first (tried in call order, the returning one alone first). Memoised on (event
//! position, linearized set, state). Each order of the linearization points is still
//! reachable (a point can always move right to just before the next return), but pending
//! writes are no longer ordered speculatively: with 20 processes the WG walk tries
//! permutations of every overlapping write, this one mostly none.
//!
//! [`sequential`] keeps only each process's program order: the next operation of any
//! process may come next; an `:info` one may come any time after the operations its
//! process invoked before it, or never.

use super::models::Model;
use super::{Abort, Operation};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// Stops a search when its caller is gone (checked every few thousand steps).
pub struct Cancel<'a>(pub &'a AtomicBool);

impl Cancel<'_> {
    fn check(&self, counter: &mut u32) -> Result<(), Abort> {
        *counter = counter.wrapping_add(1);
        if (*counter).is_multiple_of(4096) && self.0.load(Ordering::Relaxed) {
            return Err(Abort);
        }
        Ok(())
    }
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64).max(1)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// One entry of the list: the call or the return of operation `op`.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    call: bool,
    /// The other entry of the same operation.
    partner: usize,
}

const NIL: usize = usize::MAX;

/// Whether `ops` (their `call`/`ret` are times; `ret: None` is infinity) is linearizable:
/// Wing & Gong's search over Lowe's linked list (see the module comment). Kept beside
/// [`linearizable`], which explores far fewer orders when many operations overlap, as a
/// second implementation the tests compare it with.
pub fn linearizable_wg<M: Model>(
    model: &mut M,
    ops: &[Operation],
    cancel: &Cancel,
) -> Result<bool, Abort> {
    if ops.is_empty() {
        return Ok(true);
    }
    // Entries sorted by time; at equal times calls come first (overlap is the weaker claim).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, false, i));
        order.push((op.ret.unwrap_or(u64::MAX), true, i));
    }
    order.sort();
    let n = order.len();
    let head = n;
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    let mut at = vec![[0usize; 2]; ops.len()];
    for (ix, &(_, is_ret, op)) in order.iter().enumerate() {
        at[op][is_ret as usize] = ix;
        entries.push(Entry {
            op,
            call: !is_ret,
            partner: 0,
        });
    }
    for e in entries.iter_mut() {
        e.partner = at[e.op][e.call as usize];
    }
    // Index `head` is the sentinel.
    let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NIL } else { i }).collect();
    next.push(0);
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { head } else { i - 1 }).collect();
    prev.push(NIL);

    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, partner: usize| {
        for x in [e, partner] {
            let (p, nx) = (prev[x], next[x]);
            next[p] = nx;
            if nx != NIL {
                prev[nx] = p;
            }
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, partner: usize| {
        for x in [partner, e] {
            let (p, nx) = (prev[x], next[x]);
            next[p] = x;
            if nx != NIL {
                prev[nx] = x;
            }
        }
    };

    let mut bits = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut state = model.init();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut entry = next[head];
    let mut counter = 0u32;
    loop {
        cancel.check(&mut counter)?;
        if entry == NIL {
            // Only reachable with an empty list.
            return Ok(true);
        }
        let e = entries[entry];
        if e.call {
            if let Some(after) = model.step(&state, &ops[e.op])? {
                bits.set(e.op);
                if seen.insert((bits.clone(), after.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    lift(&mut next, &mut prev, entry, e.partner);
                    entry = next[head];
                    if entry == NIL {
                        return Ok(true);
                    }
                    continue;
                }
                bits.clear(e.op);
            }
            entry = next[entry];
        } else if ops[e.op].ret.is_none() {
            return Ok(true);
        } else {
            let Some((back, before)) = stack.pop() else {
                return Ok(false);
            };
            let b = entries[back];
            state = before;
            bits.clear(b.op);
            unlift(&mut next, &mut prev, back, b.partner);
            entry = next[back];
        }
    }
}

/// Whether `ops` is sequentially consistent: some order keeping each process's program
/// order (by call time) is accepted by the model.
///
/// When every process runs one operation at a time, a linearizable history is
/// sequentially consistent, and [`linearizable`] is tried first: it is fast on the
/// histories real runs make, and most are. Otherwise, and when it fails, a depth-first
/// search over which process goes next, memoised on (linearized set, state), the
/// candidates tried in invocation order so that it follows real time first. Deciding
/// sequential consistency is NP-complete (Gibbons & Korach 1997): this search can take
/// exponential time on a history with many processes that is not linearizable.
pub fn sequential<M: Model>(
    model: &mut M,
    ops: &[Operation],
    cancel: &Cancel,
) -> Result<bool, Abort> {
    if one_at_a_time(ops) && linearizable(model, ops, cancel)? {
        return Ok(true);
    }
    // Each process's completed operations in program order; each `:info` operation with
    // how many of its process's completed operations were invoked before it.
    let mut procs: Vec<u32> = ops.iter().map(|o| o.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let slot = |p: u32| procs.binary_search(&p).unwrap_or(0);
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); procs.len()];
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    let mut floating: Vec<(usize, usize, usize)> = Vec::new();
    for &i in &by_call {
        let p = slot(ops[i].process);
        if ops[i].ret.is_none() {
            floating.push((i, p, chains[p].len()));
        } else {
            chains[p].push(i);
        }
    }
    let mut pos = vec![0usize; chains.len()];
    let mut bits = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut state = model.init();
    // A node's candidates (operation, chain it advances or None for a floating one), in
    // invocation order; `next` is the one to try next; `taken` what was linearized there.
    struct Node<S> {
        cands: Vec<(usize, Option<usize>)>,
        next: usize,
        taken: Option<(usize, Option<usize>, S)>,
    }
    let candidates = |pos: &[usize], bits: &Bits| {
        let mut c: Vec<(usize, Option<usize>)> = Vec::new();
        for (p, chain) in chains.iter().enumerate() {
            if let Some(&i) = chain.get(pos[p]) {
                c.push((i, Some(p)));
            }
        }
        for &(i, p, after) in &floating {
            if !bits.get(i) && pos[p] >= after {
                c.push((i, None));
            }
        }
        c.sort_by_key(|&(i, _)| (ops[i].call, i));
        c
    };
    let mut stack: Vec<Node<M::State>> = Vec::new();
    let mut counter = 0u32;
    'descend: loop {
        cancel.check(&mut counter)?;
        if pos.iter().zip(&chains).all(|(p, c)| *p == c.len()) {
            return Ok(true);
        }
        stack.push(Node {
            cands: candidates(&pos, &bits),
            next: 0,
            taken: None,
        });
        loop {
            let Some(node) = stack.last_mut() else {
                return Ok(false);
            };
            while node.next < node.cands.len() {
                let (op, chain) = node.cands[node.next];
                node.next += 1;
                let Some(after) = model.step(&state, &ops[op])? else {
                    continue;
                };
                bits.set(op);
                if !seen.insert((bits.clone(), after.clone())) {
                    bits.clear(op);
                    continue;
                }
                if let Some(p) = chain {
                    pos[p] += 1;
                }
                node.taken = Some((op, chain, std::mem::replace(&mut state, after)));
                continue 'descend;
            }
            stack.pop();
            let Some(below) = stack.last_mut() else {
                return Ok(false);
            };
            if let Some((op, chain, before)) = below.taken.take() {
                bits.clear(op);
                if let Some(p) = chain {
                    pos[p] -= 1;
                }
                state = before;
            }
        }
    }
}

/// Whether each process's operations never overlap one another (program order is then
/// real-time order, and linearizability implies sequential consistency).
fn one_at_a_time(ops: &[Operation]) -> bool {
    let mut by: Vec<(u32, u64, Option<u64>)> =
        ops.iter().map(|o| (o.process, o.call, o.ret)).collect();
    by.sort_unstable_by_key(|&(p, c, _)| (p, c));
    by.windows(2).all(|w| {
        let ((p, _, ret), (q, call, _)) = (w[0], w[1]);
        p != q || matches!(ret, Some(r) if r < call)
    })
}

/// Whether `ops` is linearizable, by just-in-time linearization (see the module comment).
pub fn linearizable<M: Model>(
    model: &mut M,
    ops: &[Operation],
    cancel: &Cancel,
) -> Result<bool, Abort> {
    // Events in time order, calls before returns at equal times; `:info` operations have
    // no return event.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i));
        if let Some(r) = op.ret {
            events.push((r, true, i));
        }
    }
    events.sort_unstable();
    // For each return event, the other operations pending then (called, not returned).
    let mut pending_at: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut open: Vec<usize> = Vec::new();
    for (ix, &(_, ret, op)) in events.iter().enumerate() {
        if ret {
            open.retain(|&o| o != op);
            pending_at[ix] = open.clone();
        } else {
            open.push(op);
        }
    }

    let mut bits = Bits::new(ops.len());
    let mut seen: HashSet<(usize, Bits, M::State)> = HashSet::new();
    let mut state = model.init();
    // A decision at the return event `at`: candidate `next` is tried next (0: the
    // returning operation, k: the k-th pending one); `taken` is what was linearized there,
    // with the state before it.
    struct Frame<S> {
        at: usize,
        next: usize,
        taken: Option<(usize, S)>,
    }
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut i = 0usize;
    let mut counter = 0u32;
    'advance: loop {
        cancel.check(&mut counter)?;
        while i < events.len() {
            let (_, ret, op) = events[i];
            if ret && !bits.get(op) {
                break;
            }
            i += 1;
        }
        if i == events.len() {
            return Ok(true);
        }
        stack.push(Frame {
            at: i,
            next: 0,
            taken: None,
        });
        // Try the top frame's next candidate; on exhaustion pop and undo.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(false);
            };
            let at = frame.at;
            let returning = events[at].2;
            let pending = &pending_at[at];
            let mut found = false;
            while frame.next <= pending.len() {
                let k = frame.next;
                frame.next += 1;
                let c = if k == 0 { returning } else { pending[k - 1] };
                if bits.get(c) {
                    continue;
                }
                let Some(after) = model.step(&state, &ops[c])? else {
                    continue;
                };
                bits.set(c);
                if !seen.insert((at, bits.clone(), after.clone())) {
                    bits.clear(c);
                    continue;
                }
                frame.taken = Some((c, std::mem::replace(&mut state, after)));
                found = true;
                break;
            }
            if found {
                i = at;
                continue 'advance;
            }
            stack.pop();
            // Undo the decision of the frame below, which led here.
            let Some(below) = stack.last_mut() else {
                return Ok(false);
            };
            if let Some((c, before)) = below.taken.take() {
                bits.clear(c);
                state = before;
            }
        }
    }
}
