//! The global registry.

use super::{Outcome, RawDecision, Session};
use crate::ids::{NodeId, ProcId};
use crate::message::Reason;
use crate::op::{ClusterOp, Op};
use crate::process::{ExitCause, ProcState};
use crate::strategy::Strategy;
use crate::trace::EventKind;

impl Session {
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
                            self.decisions.push(RawDecision::Random(i));
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
