//! Relayed hops: a ping-pong whose decisions are all forced, handed on without the engine.
//!
//! When a step wakes a process `r` for a receive attempt on the only message in its
//! mailbox, sent by the caller `w`, which now waits in a receive without timeout and with
//! an empty mailbox, and nothing else of the run can happen (`Session::relay_hops`), the
//! wake-up carries a
//! *lease*: `{:"$lockstep_relay", result, {key, hop, w_pid, taken, last}}`. If `r`'s next
//! sync point is exactly a hop back — a send (deferred) to `w` of a message after taking
//! message `taken`, then a receive without timeout — it makes the hop itself
//! (`Lockstep.Runtime`): [`relay_hop`] counts it, a compare-and-swap on the session's
//! lease word with no lock taken, and in the same call wakes `w` with the payload in hand
//! and a lease for the next hop (`hop + 1`, up to `last`); the caller parks. No engine
//! call, no lock.
//!
//! Every locked entry of the session first replays the hops counted so far into the engine
//! ([`catch_up`], from `resource::lock`) and ends the lease, so every engine call, whoever
//! makes it (the next process of the ping-pong, a parked process told of an exit signal,
//! the resource monitor, the owner), sees the run exactly as if each hop had made its own
//! NIF calls: the replay is the same engine calls in the same order on the same state
//! (`Session::replay_relayed_hop`), and nothing else of the run can happen in between. A
//! lease met after that is stale: its compare-and-swap fails and the process takes the
//! ordinary NIF path, which is always right. A replayed hop that does not come out as it
//! was relayed (a bug) poisons the session, so the owner stops the run with an internal
//! error naming it (`resource::lock`).
//!
//! A hop is counted and its wake-up sent in one NIF call, which no kill can interrupt: a
//! relaying process killed from outside dies before its hop (the engine then has it
//! running, as any process killed between sync points) or after it (its peer is woken and
//! runs on), never between, where the engine would run a peer that was never woken (under
//! `crash: :ignore` the run would go on and report that peer `:stuck`).
//!
//! Leases are only granted when the iteration neither captures nor keeps its events (a
//! failing iteration is re-run with capture for its report: that re-run makes every hop
//! through the engine, and must take the same schedule, which the tests check).
//!
//! The lease word lives in a VM-wide table ([`WORDS`]) rather than in the session
//! resource, and a lease's key names its slot and its generation: `relay_hop` then finds
//! the word without decoding the session resource (rustler looks a resource's type up in
//! a hashed map at every decode, a good part of the call). Generations are drawn from one
//! VM-wide counter and never repeat, so a key from a lease that has ended, of this session
//! or of one long gone whose slot another session now holds, never matches a word.

use crate::convert::atoms;
use crate::state::SessionState;
use crate::wake::MARK_THRESHOLD;
use lockstep_core::{MsgId, OpResult, ProcId};
use rustler::{Encoder, Env, LocalPid, Term};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Hops one lease allows: each lease ends with an ordinary NIF call, so the owner's
/// progress count still moves at least every this many hops.
const HOPS_PER_LEASE: u32 = 256;

/// A lease word is `gen << HOP_BITS | hops made`, 0 when no lease is out: 44 bits of
/// generation (10^13 leases: not exhausted in a VM's life) and 16 of hops (a lease allows
/// `HOPS_PER_LEASE`).
const HOP_BITS: u32 = 16;
const HOP_MASK: u64 = (1 << HOP_BITS) - 1;
const GEN_BITS: u32 = 44;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const _: () = assert!(HOPS_PER_LEASE as u64 <= HOP_MASK);

/// A lease's key, as the lease term carries it: `slot << GEN_BITS | gen`, below 2^59, so
/// a small integer on the BEAM.
const SLOT_SHIFT: u32 = GEN_BITS;

/// Sessions that may hold a lease at once (sessions not yet freed by the BEAM keep theirs);
/// a session that finds every slot taken relays nothing (its hops take the ordinary path).
const SLOTS: usize = 1 << 15;
const _: () = assert!((SLOTS as u64) << SLOT_SHIFT <= 1 << 59);

/// The lease words, one per slot: a session holds a slot from its creation to its drop.
static WORDS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// Slots given back, and how many were ever handed out (the next fresh one).
static FREE: Mutex<(Vec<u16>, usize)> = Mutex::new((Vec::new(), 0));

/// The last generation drawn, VM-wide.
static LAST_GEN: AtomicU64 = AtomicU64::new(0);

/// Test hook: leases can be switched off VM-wide, to compare runs with and without them.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Relayed hops replayed since the VM started (for tests: that relaying happened at all).
static REPLAYED: AtomicU64 = AtomicU64::new(0);

/// The lease out, if any, and the slot of the word its hops are counted in.
pub struct Relay {
    /// `None` when every slot was taken: no lease is ever granted then.
    slot: Option<u16>,
    lease: Option<Lease>,
}

/// Who relays: `first` makes the odd hops (to `second`), `second` the even ones.
struct Lease {
    gen: u64,
    first: ProcId,
    second: ProcId,
    /// The message `first` was handed with the lease.
    taken: MsgId,
}

impl Default for Relay {
    fn default() -> Self {
        let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = free.0.pop().or_else(|| {
            (free.1 < SLOTS).then(|| {
                free.1 += 1;
                (free.1 - 1) as u16
            })
        });
        Relay { slot, lease: None }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            // A lease still out ends here: its keys never match again.
            WORDS[usize::from(slot)].store(0, Ordering::SeqCst);
            FREE.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0
                .push(slot);
        }
    }
}

impl Relay {
    #[inline]
    pub fn is_out(&self) -> bool {
        self.lease.is_some()
    }

    /// The session's lease word, for the calls that count without the lock.
    pub fn word(&self) -> Option<&'static AtomicU64> {
        self.slot.map(|slot| &WORDS[usize::from(slot)])
    }
}

/// A relayed hop did not replay as it was made: the adapter and the Elixir side disagree
/// about the run, a bug in Lockstep.
pub fn diverged_message() -> &'static str {
    "a hop relayed between two managed processes did not replay into the engine as it was \
     made; the run was stopped (this is a bug in Lockstep)"
}

/// Replays the hops of the lease out, if any, and ends it.
#[inline]
pub fn catch_up(st: &mut SessionState) -> Result<(), &'static str> {
    if !st.relay.is_out() {
        return Ok(());
    }
    catch_up_lease(st)
}

#[cold]
fn catch_up_lease(st: &mut SessionState) -> Result<(), &'static str> {
    let Some(lease) = st.relay.lease.take() else {
        return Ok(());
    };
    let Some(word) = st.relay.word() else {
        return Err(diverged_message());
    };
    let word = word.swap(0, Ordering::SeqCst);
    if word >> HOP_BITS != lease.gen {
        return Err(diverged_message());
    }
    let hops = (word & HOP_MASK) as u32;
    if hops == 0 {
        return Ok(());
    }
    let Some(strategy) = st.strategy.as_mut() else {
        return Err(diverged_message());
    };
    // Each hop is two steps, which the owner's progress count moves by, as for hops made
    // through the NIF.
    st.owner.progress += 2 * u64::from(hops);
    let replayed =
        st.session
            .replay_relayed_hops(lease.first, lease.second, lease.taken, hops, strategy);
    st.session.forget_events();
    st.terms.events_scanned = 0;
    replayed.map_err(|_| diverged_message())?;
    REPLAYED.fetch_add(u64::from(hops), Ordering::Relaxed);
    Ok(())
}

/// The lease to hand `woken` with its wake-up, if the step that woke it (the caller
/// `waker`'s, which carried it `taken`) leaves a forced ping-pong between them (see the
/// module doc). `result` is the wake-up's own result term.
pub fn grant<'a>(
    env: Env<'a>,
    st: &mut SessionState,
    waker: ProcId,
    woken: ProcId,
    taken: MsgId,
    result: Term<'a>,
) -> Option<Term<'a>> {
    if st.capture.on || st.capture.keep_events || !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    // `waker` must park on the tag, where the relayed wake-up finds it.
    let plain_park = st
        .session
        .proc(waker)
        .is_some_and(|p| p.mailbox < MARK_THRESHOLD)
        && !st.terms.wake_refs.contains_key(&waker);
    if !plain_park || st.session.message(taken + 1).is_some() {
        return None;
    }
    let last = st.session.relay_hops(waker, woken, HOPS_PER_LEASE);
    if last == 0 {
        return None;
    }
    let slot = st.relay.slot?;
    let waker_pid = st.procs.pid(waker)?;
    let word = &WORDS[usize::from(slot)];
    debug_assert_eq!(word.load(Ordering::SeqCst), 0);
    let gen = (LAST_GEN.fetch_add(1, Ordering::Relaxed) + 1) & GEN_MASK;
    if gen == 0 {
        return None;
    }
    st.relay.lease = Some(Lease {
        gen,
        first: woken,
        second: waker,
        taken,
    });
    word.store(gen << HOP_BITS, Ordering::SeqCst);
    let key = (u64::from(slot) << SLOT_SHIFT) | gen;
    let lease = (key, 1u32, waker_pid, taken, last);
    Some((atoms::lockstep_relay(), result, lease).encode(env))
}

/// Whether a wake-up with this result may carry a lease: a first receive attempt.
#[inline]
pub fn may_lease(result: OpResult) -> bool {
    matches!(result, OpResult::ReceiveAttempt { last: false })
}

/// Counts hop `hop` of the lease with key `key`, if that lease is still out and `hop - 1`
/// hops were made, and then wakes `peer` with `wake` (`{tag, :go, result}`): the caller
/// may then park (see the module doc). No lock is taken, and the session (the caller's,
/// whose lease it is) is not decoded: the key names its word.
///
/// Counting and waking are one call because a process cannot die inside a NIF: between
/// two calls a kill from outside could land after the count and before the wake-up, and
/// the catch-up would then have the engine run a peer that waits, parked, forever.
#[rustler::nif]
fn relay_hop<'a>(
    env: Env<'a>,
    _session: Term<'a>,
    key: u64,
    hop: u32,
    peer: LocalPid,
    wake: Term<'a>,
) -> bool {
    let (slot, gen) = ((key >> SLOT_SHIFT) as usize, key & GEN_MASK);
    if gen == 0 || hop == 0 || u64::from(hop) > HOP_MASK || slot >= SLOTS {
        return false;
    }
    let expected = (gen << HOP_BITS) | u64::from(hop - 1);
    let counted = WORDS[slot]
        .compare_exchange(expected, expected + 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if counted {
        // A peer that died meanwhile is the resource monitor's to report, after the
        // catch-up has made this hop.
        let _ = env.send(&peer, wake);
    }
    counted
}

/// Test hook: claims, on the lease out if any (no lock taken), more relayed hops than the
/// step budget allows, so that the next catch-up cannot replay them, as a bug would leave
/// the engine and the run disagreeing.
#[rustler::nif]
fn relay_miscount_for_test(res: &crate::resource::SessionResource) -> bool {
    let Some(relay) = res.relay else {
        return false;
    };
    let word = relay.load(Ordering::SeqCst);
    word != 0
        && relay
            .compare_exchange(word, word | HOP_MASK, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
}

/// Test hook: switches leases on or off for the whole VM; returns the previous setting.
#[rustler::nif]
fn relay_enabled_for_test(on: bool) -> bool {
    ENABLED.swap(on, Ordering::SeqCst)
}

/// Test hook: relayed hops replayed since the VM started.
#[rustler::nif]
fn relayed_hops() -> u64 {
    REPLAYED.load(Ordering::Relaxed)
}
