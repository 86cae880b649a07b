//! The global registry (`:global`), as the session applies it (the per-node views are
//! `crate::cluster`).
//!
//! As OTP 25's `global`: one view of the names per node, kept equal between connected
//! nodes. `register_name/2` first takes `global`'s lock on every known node
//! (`trans_all_known/1`), so while a node it reaches is cut off but not yet declared down
//! the caller waits (`Blocked`, trace event `global_wait`), until the heal, the tick or
//! the node stopping lets it try again (`retry_global_locks`). With the lock it checks the
//! name against, and writes it to, the views of every node it reaches; a pid gets one
//! global name (`check_dupname/2`); a dead pid gets `yes` and its name is gone at once.
//! `unregister_name/1` takes the lock too. A holder's death removes its names from every view (a simplification:
//! OTP's views learn it as the `DOWN`s arrive). Once a partition is declared lost each
//! side forgets the names held across it, so both sides may register a name (split
//! brain); on heal the views merge and a clash is resolved as `global:random_exit_name/3`
//! does: one registration kept, the other holder killed.

use super::{Outcome, Session};
use crate::ids::{NodeId, ProcId};
use crate::message::Reason;
use crate::op::{ClusterOp, Op, OpResult};
use crate::process::{ExitCause, ProcState};
use crate::strategy::Strategy;
use crate::trace::EventKind;

impl Session {
    /// `register_name(name, proc)` by `p`, holding the lock.
    pub(super) fn global_register(&mut self, p: ProcId, name: u32, proc: ProcId) -> OpResult {
        let node = self.node_of(p);
        let ok = self.cluster.global_register(node, name, proc);
        if ok && !self.alive(proc) {
            // OTP 25 says `yes` for a free name and a dead pid (the registrar checks only
            // the name and `check_dupname/2`), and the name goes when the holder's `DOWN`
            // arrives: here at once.
            self.cluster.global_unregister(node, name);
        }
        self.record(
            p,
            EventKind::GlobalRegister {
                name,
                target: proc,
                ok,
            },
        );
        OpResult::NameOk(ok)
    }

    /// `unregister_name(name)` by `p`, holding the lock.
    pub(super) fn global_unregister(&mut self, p: ProcId, name: u32) -> OpResult {
        self.cluster.global_unregister(self.node_of(p), name);
        self.record(p, EventKind::GlobalUnregister { name });
        OpResult::Done
    }

    /// `whereis_name(name)` by `p`: its node's view.
    pub(super) fn global_whereis(&mut self, p: ProcId, name: u32) -> OpResult {
        let found = self.cluster.global_whereis(self.node_of(p), name);
        self.record(p, EventKind::GlobalWhereis { name, found });
        OpResult::Found(found)
    }

    /// Whether `p`'s cluster operation `op` must wait for `global`'s lock; if so `p` is
    /// blocked (it tries again when the lock may have been freed).
    pub(super) fn waits_for_global_lock(&mut self, p: ProcId, op: ClusterOp) -> bool {
        let (ClusterOp::GlobalRegister { name, .. } | ClusterOp::GlobalUnregister(name)) = op
        else {
            return false;
        };
        if !self.cluster.global_lock_stalled(self.node_of(p)) {
            return false;
        }
        // OTP 25 takes `global`'s lock on every known node first
        // (`trans_all_known/1`): with one of them cut off and not yet declared down
        // the lock request waits, until the heal or the tick.
        self.set_state(p, ProcState::Blocked);
        self.record(p, EventKind::GlobalLockWait { name });
        true
    }

    /// The global names `node` sees, sorted.
    pub fn global_names(&self, node: NodeId) -> Vec<u32> {
        self.cluster.global_names(node)
    }

    /// After a heal: merges the nodes' views of the global names. A name registered on
    /// both sides of the partition is resolved as OTP's default resolver,
    /// `global:random_exit_name/3`, does: one registration is kept and the other holder is
    /// killed (`exit(Pid, kill)`). OTP keeps the holder on the node whose name sorts first;
    /// here the strategy chooses (a `random` decision, so it is explored and replays).
    pub(super) fn resolve_global_clashes(&mut self, healer: ProcId, strategy: &mut dyn Strategy) {
        let clashes = self.cluster.merge_global();
        let mut losers = Vec::new();
        for (name, mut holders) in clashes {
            holders.retain(|&h| self.alive(h));
            holders.sort_by_key(|&h| (self.node_of(h), h));
            let kept = match holders.len() {
                0 => continue,
                1 => holders[0],
                n => {
                    let view = self.view();
                    match strategy.random(&view, n as u64) {
                        Ok(i) => {
                            self.decide_random(i);
                            holders[i as usize]
                        }
                        Err(d) => {
                            self.outcome = Some(Outcome::Diverged(d));
                            return;
                        }
                    }
                }
            };
            self.cluster.global_settle(name, kept);
            for &killed in holders.iter().filter(|&&h| h != kept) {
                self.record(healer, EventKind::GlobalConflict { name, kept, killed });
                losers.push(killed);
            }
        }
        for killed in losers {
            self.die(killed, ExitCause::NameConflict, Reason::Killed, true);
        }
    }

    /// Processes waiting for `global`'s lock try again (a heal, a tick or a stopped node
    /// may have freed it; one still stalled waits again).
    pub(super) fn retry_global_locks(&mut self) {
        let waiting: Vec<ProcId> = (0..self.procs.len() as ProcId)
            .filter(|&p| {
                let proc = &self.procs[p as usize];
                proc.state == ProcState::Blocked
                    && matches!(
                        proc.pending,
                        Op::Cluster(
                            ClusterOp::GlobalRegister { .. } | ClusterOp::GlobalUnregister(_)
                        )
                    )
            })
            .collect();
        for p in waiting {
            self.set_state(p, ProcState::Ready);
        }
    }
}
