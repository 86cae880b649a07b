//! Relayed hops: a ping-pong whose decisions are all forced, handed on without the engine.
//!
//! When a step wakes a process `r` for a receive attempt on the only message in its
//! mailbox, sent by the caller `w`, which now waits in a receive without timeout and with
//! an empty mailbox, and nothing else of the run can happen (`Session::relay_hops`), the
//! wake-up carries a
//! *lease*: `{:"$lockstep_relay", result, {gen, hop, w_pid, taken, last}}`. If `r`'s next
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

use crate::convert::atoms;
use crate::state::SessionState;
use crate::wake::MARK_THRESHOLD;
use lockstep_core::{MsgId, OpResult, ProcId};
use rustler::{Encoder, Env, LocalPid, Term};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Hops one lease allows: each lease ends with an ordinary NIF call, so the owner's
/// progress count still moves at least every this many hops.
const HOPS_PER_LEASE: u32 = 256;

/// Test hook: leases can be switched off VM-wide, to compare runs with and without them.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Relayed hops replayed since the VM started (for tests: that relaying happened at all).
static REPLAYED: AtomicU64 = AtomicU64::new(0);

/// The lease out, if any, and the word its hops are counted in.
pub struct Relay {
    /// `gen << 32 | hops made`; 0 when no lease is out. Shared with the resource so that
    /// `relay_hop` counts without the session lock.
    pub word: Arc<AtomicU64>,
    lease: Option<Lease>,
    last_gen: u32,
}

/// Who relays: `first` makes the odd hops (to `second`), `second` the even ones.
struct Lease {
    gen: u32,
    first: ProcId,
    second: ProcId,
    /// The message `first` was handed with the lease.
    taken: MsgId,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            word: Arc::new(AtomicU64::new(0)),
            lease: None,
            last_gen: 0,
        }
    }
}

impl Relay {
    #[inline]
    pub fn is_out(&self) -> bool {
        self.lease.is_some()
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
    let word = st.relay.word.swap(0, Ordering::SeqCst);
    if word >> 32 != u64::from(lease.gen) {
        return Err(diverged_message());
    }
    let hops = (word & 0xFFFF_FFFF) as u32;
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
    let waker_pid = st.procs.pid(waker)?;
    debug_assert_eq!(st.relay.word.load(Ordering::SeqCst), 0);
    let gen = st.relay.last_gen.wrapping_add(1).max(1);
    st.relay.last_gen = gen;
    st.relay.lease = Some(Lease {
        gen,
        first: woken,
        second: waker,
        taken,
    });
    st.relay.word.store(u64::from(gen) << 32, Ordering::SeqCst);
    let lease = (gen, 1u32, waker_pid, taken, last);
    Some((atoms::lockstep_relay(), result, lease).encode(env))
}

/// Whether a wake-up with this result may carry a lease: a first receive attempt.
#[inline]
pub fn may_lease(result: OpResult) -> bool {
    matches!(result, OpResult::ReceiveAttempt { last: false })
}

/// Counts hop `hop` of lease `gen`, if that lease is still out and `hop - 1` hops were
/// made, and then wakes `peer` with `wake` (`{tag, :go, result}`): the caller may then
/// park (see the module doc). No lock is taken.
///
/// Counting and waking are one call because a process cannot die inside a NIF: between
/// two calls a kill from outside could land after the count and before the wake-up, and
/// the catch-up would then have the engine run a peer that waits, parked, forever.
#[rustler::nif]
fn relay_hop<'a>(
    env: Env<'a>,
    res: &crate::resource::SessionResource,
    gen: u32,
    hop: u32,
    peer: LocalPid,
    wake: Term<'a>,
) -> bool {
    if gen == 0 || hop == 0 {
        return false;
    }
    let expected = (u64::from(gen) << 32) | u64::from(hop - 1);
    let counted = res
        .relay
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
    let word = res.relay.load(Ordering::SeqCst);
    word != 0
        && res
            .relay
            .compare_exchange(word, word | 0xFFFF_FFFF, Ordering::SeqCst, Ordering::SeqCst)
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
