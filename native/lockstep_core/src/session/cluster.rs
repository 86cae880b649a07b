//! The cluster.

use super::Session;
use crate::cluster::{Cluster, Partition, PartitionMode, HOME_NODE};
use crate::ids::{MonitorId, NodeId, ProcId};
use crate::message::{MsgKind, MsgState, Reason};
use crate::op::{ClusterOp, OpResult};
use crate::process::ExitCause;
use crate::strategy::Strategy;
use crate::timer::{TimerKind, TimerState};
use crate::trace::EventKind;

impl Session {
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Known nodes (`up_only`: those up, without the home node), by id.
    pub fn nodes(&self, up_only: bool) -> Vec<NodeId> {
        (0..self.cluster.known.len() as NodeId)
            .filter(|&n| self.cluster.is_known(n))
            .filter(|&n| !up_only || (n != HOME_NODE && self.cluster.is_up(n)))
            .collect()
    }

    /// Defines a partition to be activated by `ClusterOp::Partition` (not a sync point).
    pub fn define_partition(&mut self, a: Vec<NodeId>, b: Vec<NodeId>, mode: PartitionMode) -> u32 {
        self.cluster.partitions.push(Partition {
            a,
            b,
            mode,
            active: false,
            tick: None,
            lost: false,
        });
        (self.cluster.partitions.len() - 1) as u32
    }

    pub(super) fn apply_cluster(
        &mut self,
        p: ProcId,
        op: ClusterOp,
        strategy: &mut dyn Strategy,
    ) -> OpResult {
        match op {
            ClusterOp::StartNode(node) => {
                self.cluster.ensure(node);
                if !self.cluster.is_up(node) || !self.cluster.is_known(node) {
                    self.cluster.up[node as usize] = true;
                    self.cluster.known[node as usize] = true;
                    self.ets_names.retain(|(n, _), _| *n != node);
                    self.cluster.global_join(node);
                    self.record(p, EventKind::NodeStarted { node });
                }
                OpResult::Done
            }
            ClusterOp::StopNode(node) => {
                if node != HOME_NODE && self.cluster.is_up(node) {
                    self.cluster.up[node as usize] = false;
                    self.record(p, EventKind::NodeStopped { node });
                    for q in 0..self.procs.len() as ProcId {
                        if self.alive(q) && self.node_of(q) == node {
                            self.die(q, ExitCause::NodeDown, Reason::NoConnection, true);
                        }
                    }
                    self.ets_names.retain(|(n, _), _| *n != node);
                    // A node that is down has no view of the global names.
                    self.cluster.global[node as usize].clear();
                    self.retry_global_locks();
                    self.node_down_for(|_, n| n == node);
                }
                OpResult::Done
            }
            ClusterOp::Partition(index) => {
                let i = index as usize;
                if i < self.cluster.partitions.len() && !self.cluster.partitions[i].active {
                    self.cluster.partitions[i].active = true;
                    let tick = self.add_timer(
                        p,
                        self.cluster.ticktime,
                        TimerKind::Tick { partition: index },
                    );
                    self.cluster.partitions[i].tick = Some(tick);
                    self.record(p, EventKind::Partitioned { partition: index });
                    // What is already in flight across the new cut is cut too.
                    let in_flight = std::mem::take(&mut self.in_flight);
                    for m in in_flight {
                        let msg = self.msgs[m as usize];
                        let to = msg.to.unwrap_or(msg.from);
                        let (nf, nt) = (self.node_of(msg.from), self.node_of(to));
                        match self.cluster.cut(nf, nt) {
                            None => self.in_flight.push(m),
                            Some(PartitionMode::Drop) => {
                                self.msgs[m as usize].state = MsgState::Dropped;
                                self.record(
                                    to,
                                    EventKind::Cut {
                                        msg: m,
                                        from: msg.from,
                                        deferred: false,
                                    },
                                );
                                self.lost_in_cut(m);
                            }
                            Some(PartitionMode::Defer) => {
                                self.cluster.deferred.push(m);
                                self.record(
                                    to,
                                    EventKind::Cut {
                                        msg: m,
                                        from: msg.from,
                                        deferred: true,
                                    },
                                );
                            }
                        }
                    }
                }
                OpResult::Done
            }
            ClusterOp::Heal => {
                for i in 0..self.cluster.partitions.len() {
                    let part = &mut self.cluster.partitions[i];
                    if part.active {
                        part.active = false;
                        part.lost = false;
                        if let Some(t) = part.tick.take() {
                            if self.timers[t as usize].state == TimerState::Pending {
                                self.timers[t as usize].state = TimerState::Cancelled;
                            }
                        }
                    }
                }
                let deferred = std::mem::take(&mut self.cluster.deferred);
                let delivered = deferred.len() as u32;
                self.record(p, EventKind::Healed { delivered });
                for m in deferred {
                    self.arrive(m);
                }
                self.resolve_global_clashes(p, strategy);
                self.retry_global_locks();
                OpResult::Done
            }
            ClusterOp::MonitorNode(node) => {
                self.record(p, EventKind::MonitorNode { node });
                if self.cluster.is_up(node) && !self.cluster.connection_lost(self.node_of(p), node)
                {
                    self.cluster.node_monitors.push((p, node));
                } else {
                    self.signal_via(p, p, MsgKind::NodeDown { node }, true);
                }
                OpResult::Done
            }
            ClusterOp::SetTicktime(ms) => {
                self.cluster.ticktime = ms;
                self.record(p, EventKind::SetTicktime { ms });
                OpResult::Done
            }
            ClusterOp::Nodes => OpResult::NodeList { up_only: false },
            ClusterOp::NodesUp => OpResult::NodeList { up_only: true },
            ClusterOp::NodeOf(q) => OpResult::NodeIs(self.node_of(q)),
            ClusterOp::GlobalRegister { name, proc } => {
                let node = self.node_of(p);
                let ok = self.alive(proc) && self.cluster.global_register(node, name, proc);
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
            ClusterOp::GlobalUnregister(name) => {
                self.cluster.global_unregister(self.node_of(p), name);
                self.record(p, EventKind::GlobalUnregister { name });
                OpResult::Done
            }
            ClusterOp::GlobalWhereis(name) => {
                let found = self.cluster.global_whereis(self.node_of(p), name);
                self.record(p, EventKind::GlobalWhereis { name, found });
                OpResult::Found(found)
            }
            ClusterOp::GlobalNames => OpResult::GlobalList(self.node_of(p)),
            ClusterOp::WhereisOn { name, node } => {
                let found = self.names.get(&(node, name)).copied();
                self.record(p, EventKind::Whereis { name, found });
                OpResult::Found(found)
            }
            ClusterOp::NamesOn(node) => OpResult::NamesOn(node),
        }
    }

    /// Sends `{:nodedown, node}` to every node monitor `(watcher, node)` that `lost`
    /// selects, and forgets those monitors (each fires once).
    pub(super) fn node_down_for(&mut self, lost: impl Fn(NodeId, NodeId) -> bool) {
        let monitors = std::mem::take(&mut self.cluster.node_monitors);
        for (watcher, node) in monitors {
            if self.alive(watcher) && lost(self.node_of(watcher), node) {
                self.signal_via(watcher, watcher, MsgKind::NodeDown { node }, true);
            } else if self.alive(watcher) {
                self.cluster.node_monitors.push((watcher, node));
            }
        }
    }

    /// A partition's tick: monitors, links and node monitors across it see the connection
    /// lost.
    pub(super) fn tick(&mut self, partition: u32) {
        let i = partition as usize;
        if !self.cluster.partitions[i].active {
            return;
        }
        let owner = self.timers[self.cluster.partitions[i].tick.unwrap_or(0) as usize].owner;
        self.cluster.partitions[i].lost = true;
        self.record(owner, EventKind::Tick { partition });
        let nodes: Vec<NodeId> = self.procs.iter().map(|q| q.node).collect();
        self.cluster
            .global_forget_across(i, |holder| nodes[holder as usize]);
        self.retry_global_locks();
        for m in 0..self.monitors.len() {
            let rec = self.monitors[m];
            if rec.active
                && self.alive(rec.owner)
                && self
                    .cluster
                    .partition_cuts(i, self.node_of(rec.owner), self.node_of(rec.target))
            {
                self.signal_via(
                    rec.target,
                    rec.owner,
                    MsgKind::Down {
                        monitor: m as MonitorId,
                        reason: Reason::NoConnection,
                    },
                    true,
                );
            }
        }
        // Each link across the cut once: a pair linked both ways is taken from its lower
        // id; a half link (the other end's exit signal was cut) from the end that holds it.
        let mut pairs = Vec::new();
        for (q, proc) in self.procs.iter().enumerate() {
            let q = q as ProcId;
            for &l in &proc.links {
                let both_ways = self.procs[l as usize].links.contains(&q);
                if (q < l || !both_ways)
                    && self
                        .cluster
                        .partition_cuts(i, proc.node, self.procs[l as usize].node)
                {
                    pairs.push((q, l));
                }
            }
        }
        for (a, b) in pairs {
            self.procs[a as usize].links.retain(|&x| x != b);
            self.procs[b as usize].links.retain(|&x| x != a);
            let lost = MsgKind::Exit {
                reason: Reason::NoConnection,
                link: true,
            };
            for (from, to) in [(b, a), (a, b)] {
                if self.alive(to) {
                    self.signal_via(from, to, lost, true);
                }
            }
        }
        let cluster = self.cluster.clone();
        self.node_down_for(|watcher_node, node| cluster.partition_cuts(i, watcher_node, node));
    }
}
