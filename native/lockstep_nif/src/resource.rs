//! The two resources the BEAM holds: a run's [`StrategyCell`] and one iteration's
//! [`SessionResource`], with the session's lock discipline and the resource monitor's
//! `down` callback for the managed processes (the owner is watched apart: `owners`).
//!
//! Every NIF takes the session lock once. A Rust panic while it is held poisons it: the
//! managed processes' calls then raise `Lockstep.InternalError` ([`lock`]), the next `down`
//! tells the owner, and the owner's queries and teardown still read the half-updated state
//! ([`lock_any`]) to list and kill the run's processes.

use crate::convert::{atoms, internal_error};
use crate::relay;
use crate::state::SessionState;
use crate::wake::{after_call, wake_key};
use lockstep_core::strategy::Metered;
use lockstep_core::Strategy;
use rustler::{Atom, Env, LocalPid, Monitor, NifResult, Resource, ResourceArc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Tags are unique in the VM so a stale wake-up can never be mistaken for a current one.
static NEXT_TAG: AtomicU64 = AtomicU64::new(0x4C53_0000_0000);

/// Sessions not yet freed by the BEAM (a resource is freed once no process refers to it):
/// lets tests check that a run's NIF state is released.
static LIVE_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// The run's strategy inside the metrics wrapper.
pub type RunStrategy = Metered<Box<dyn Strategy>>;

/// A run's strategy, kept between iterations (PCT learns the run length across them). An
/// iteration borrows it for its lifetime and gives it back in `session_finish`.
pub struct StrategyCell {
    pub strategy: Mutex<Option<RunStrategy>>,
}

#[rustler::resource_impl]
impl Resource for StrategyCell {}

/// One iteration. The hot NIFs borrow it as `&SessionResource` (no reference count).
pub struct SessionResource {
    /// The run-unique integer a managed process parks on: `{tag, :go, result}`.
    pub tag: u64,
    pub state: Mutex<SessionState>,
    /// The state's relay word (see `relay`), for a test hook that changes it without the
    /// lock (`relay_hop` finds it by the lease's key).
    pub relay: Option<&'static AtomicU64>,
}

impl SessionResource {
    pub fn new(state: SessionState) -> Self {
        LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
        SessionResource {
            tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
            relay: state.relay.word(),
            state: Mutex::new(state),
        }
    }
}

impl Drop for SessionResource {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many sessions the BEAM has not freed yet.
pub fn live_sessions() -> u64 {
    LIVE_SESSIONS.load(Ordering::Relaxed)
}

#[rustler::resource_impl]
impl Resource for SessionResource {
    /// A monitored process died: a managed process (killed from outside the run, so the
    /// engine records it), or anyone at all once the state is poisoned. The owner is
    /// watched apart (`owners`).
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        let poisoned = self.state.is_poisoned();
        let mut st = lock_any(self);
        let st = &mut *st;
        if poisoned {
            // A panic left the session half-updated: nobody can schedule any more. Tell
            // the owner, which tears the run down and raises Lockstep.InternalError.
            if !st.owner.done_sent {
                st.owner.done_sent = true;
                let message = st.owner.fault.unwrap_or(
                    "a Lockstep NIF call panicked and left the session half-updated; the run \
                     was stopped (this is a bug in Lockstep)",
                );
                let done_ref = st.done_ref_term(env);
                let _ = env.send(&st.owner.pid, (done_ref, atoms::internal_error(), message));
            }
            return;
        }
        let Some(proc) = st.procs.managed(&pid) else {
            return;
        };
        st.procs.mark_gone(proc);
        if st.procs.take_released(proc) {
            st.owner.releasing -= 1;
            if st.owner.releasing == 0 {
                let done_ref = match &st.owner.release_ref {
                    Some(saved) => st.terms.load(env, saved),
                    None => st.done_ref_term(env),
                };
                let noted = st.terms.uncontrolled.len() > st.owner.noted_before_release;
                let _ = env.send(&st.owner.pid, (done_ref, atoms::released(), noted));
            }
            return;
        }
        let alive = st.session.proc(proc).is_some_and(|p| p.is_alive());
        if !alive || st.session.is_over() {
            return;
        }
        let Some(strategy) = st.strategy.as_mut() else {
            return;
        };
        let next = st.session.external_exit(proc, strategy);
        st.owner.progress += 1;
        let _ = after_call(env, self.tag, st, next, None);
    }
}

impl SessionResource {
    /// The owner died before it finished the iteration (told by `owners`): nobody will
    /// tear the run down, so every parked process is told to exit now. A poisoned session
    /// is left as it is, as the owner's death always left it (its janitor kills the
    /// processes).
    pub fn owner_gone(&self, env: Env) {
        if self.state.is_poisoned() {
            return;
        }
        let mut guard = lock_any(self);
        let st = &mut *guard;
        let procs: Vec<_> = st.procs.all().collect();
        for (id, pid) in procs {
            let key = wake_key(env, self.tag, st, id);
            let _ = env.send(&pid, (key, atoms::exit(), atoms::kill()));
        }
        st.session.abort();
        st.owner.done_sent = true;
    }
}

/// The lock for a managed process's call: a poisoned state raises
/// `Lockstep.InternalError`.
///
/// Hops relayed since the last engine call are replayed first (see `relay`), so every
/// entry sees the run as it is.
#[inline]
pub fn lock(res: &SessionResource) -> NifResult<MutexGuard<'_, SessionState>> {
    let mut guard = res.state.lock().map_err(|_| {
        internal_error("the session state is poisoned by an earlier panic; the run cannot go on")
    })?;
    if let Err(message) = relay::catch_up(&mut guard) {
        // The engine no longer matches the run: poison the session (the unwinding drops the
        // guard), so that every later call raises, and the resource monitor tells the
        // owner, with this message, once the caller is gone, as after any panic.
        guard.session.abort();
        guard.owner.fault = Some(message);
        std::panic::resume_unwind(Box::new(message));
    }
    Ok(guard)
}

/// For the owner's queries and teardown: a poisoned state is still good enough to list
/// and kill processes, and the run is failing with an internal error anyway.
/// Relayed hops are replayed first, as by [`lock`]; one that does not replay stops the
/// run (the owner then reports it as aborted).
pub fn lock_any(res: &SessionResource) -> MutexGuard<'_, SessionState> {
    let mut guard = res
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if relay::catch_up(&mut guard).is_err() {
        guard.session.abort();
    }
    guard
}

/// The strategy the iteration borrowed; an internal error once it was given back.
#[inline]
pub fn strategy_of(slot: &mut Option<RunStrategy>) -> NifResult<&mut RunStrategy> {
    slot.as_mut()
        .ok_or_else(|| internal_error("the session has no strategy (already finished)"))
}

/// Test hook: panics while holding the session lock, as a bug in a NIF would, so that
/// `test/lockstep/native_error_test.exs` can check what a poisoned session does. The panic
/// is raised with `resume_unwind`, which skips the panic hook (nothing is printed); rustler
/// turns it into `ErlangError` `:nif_panicked`.
#[rustler::nif]
fn poison_for_test(res: ResourceArc<SessionResource>) -> NifResult<Atom> {
    let _guard = lock(&res)?;
    std::panic::resume_unwind(Box::new("Lockstep.Native.poison_for_test/1"))
}
