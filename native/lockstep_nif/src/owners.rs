//! The owners' watch: what notices that an iteration's owner died.
//!
//! A session must not monitor its owner itself. OTP 25's `process_info(pid, :monitored_by)`
//! lists a NIF resource monitoring `pid` by making a new reference to it, without looking
//! whether the resource is being freed; and a resource's monitor stays on the monitored
//! process's list after the resource's last reference is dropped, until the process handles
//! the demonitor signal the destructor sends it. The owner outlives its sessions: asked in
//! that window (by itself after a garbage collection, by any process at any time), it
//! handed out a reference to a session being freed, which was then freed twice, and the
//! VM aborted with `ethr_mutex_lock(): Invalid argument`. The managed processes are not
//! exposed: each holds its session until it exits, so a session is never freed while a
//! process it monitors is alive.
//!
//! So owners are monitored by [`OwnerWatch`], one resource that is never freed: one monitor
//! per owner process, made with its first session and kept, for its later sessions, until
//! it exits. The watch's table holds each owner's sessions from `session_new` to
//! `session_finish`, strong references, so that the owner's death reaches a session that
//! is alive (a destructor already under way could not be told apart). A session its owner
//! never finishes is kept until that owner exits, as its parked processes kept it before.
//! Not on the hot path: the table's lock is taken at a session's creation and finish and
//! at an owner's death, never at a sync point.

use crate::resource::SessionResource;
use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock};

/// The one resource that monitors owners. Never freed (it lives in [`WATCH`]), so a
/// `process_info` that lists it always finds it alive.
pub struct OwnerWatch;

#[rustler::resource_impl]
impl Resource for OwnerWatch {
    /// An owner died: every session it had not finished is told so, once the table's lock
    /// is released (a session freed here must not find it taken).
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        let sessions = {
            let mut owners = owners();
            match owners.get(&pid) {
                Some(owner) if owner.monitor == monitor => owners
                    .remove(&pid)
                    .map(|owner| owner.sessions)
                    .unwrap_or_default(),
                _ => return,
            }
        };
        for session in sessions {
            session.owner_gone(env);
        }
    }
}

struct Owner {
    monitor: Monitor,
    sessions: Vec<ResourceArc<SessionResource>>,
}

static WATCH: OnceLock<ResourceArc<OwnerWatch>> = OnceLock::new();

static OWNERS: LazyLock<Mutex<HashMap<LocalPid, Owner>>> = LazyLock::new(Default::default);

/// Nothing panics while holding the lock; were it poisoned, the table is still whole.
fn owners() -> MutexGuard<'static, HashMap<LocalPid, Owner>> {
    OWNERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Watches `owner`, the caller of `session_new`, for `session` (monitoring it the first
/// time).
pub fn watch(env: Env, owner: LocalPid, session: &ResourceArc<SessionResource>) {
    let watch = WATCH.get_or_init(|| ResourceArc::new(OwnerWatch));
    match owners().entry(owner) {
        Entry::Occupied(entry) => entry.into_mut().sessions.push(session.clone()),
        Entry::Vacant(entry) => {
            // The caller is running this call, so it is alive and the monitor is made.
            if let Some(monitor) = env.monitor(watch, &owner) {
                entry.insert(Owner {
                    monitor,
                    sessions: vec![session.clone()],
                });
            }
        }
    }
}

/// The session with `tag` is finished: its owner's death no longer concerns it, and the
/// table lets it go (dropped once the lock is released).
pub fn forget(owner: &LocalPid, tag: u64) {
    let released = {
        let mut owners = owners();
        let Some(entry) = owners.get_mut(owner) else {
            return;
        };
        match entry.sessions.iter().position(|s| s.tag == tag) {
            Some(i) => entry.sessions.swap_remove(i),
            None => return,
        }
    };
    drop(released);
}
