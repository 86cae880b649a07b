//! The simulated cluster, as the session applies it: nodes, partitions, ticks, node
//! monitors (the tables are `crate::cluster`; the global registry is `globals.rs`).
//!
//! Following OTP's distribution (`net_kernel`, erlang(3) monitor_node/2): messages between
//! nodes are always in flight; a partition cuts every pair of nodes across it, and what is
//! already in flight across a new cut is cut too. The virtual `net_ticktime` after a
//! partition its tick declares the connections across it lost: monitors across it get
//! `:DOWN … :noconnection`, links fire `:noconnection` on both ends, node monitors get
//! `{:nodedown, node}`, and each side's view of the global names forgets the other side's.
//! From then on a monitor, link or node monitor made across the cut fires at once, as for
//! a node that is not connected. A heal before the tick fires nothing; a heal delivers what
//! a `:defer` partition held, in send order. Stopping a node kills its processes (reason
//! `:noconnection`, as their partners on other nodes see it), clears its names, table
//! names and global view, and fires the node monitors watching it; the home node cannot
//! be stopped. A node monitor fires once.

use super::{Effect, Session};
use crate::cluster::{Cluster, Partition, PartitionMode, HOME_NODE};
use crate::ids::{MsgId, NodeId, ProcId};
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

    /// The nodes `from` sees (erlang:nodes/0): up, not `from`, and not declared lost from it
    /// (a partition whose tick is pending is not known yet, as in OTP).
    pub fn visible_nodes(&self, from: NodeId) -> Vec<NodeId> {
        self.nodes(false)
            .into_iter()
            .filter(|&n| n != from && !self.cluster.connection_lost(from, n))
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

    /// A cluster operation by `p` (global ones that must wait for the lock are held back
    /// before this, in `apply`).
    pub(super) fn cluster_op(
        &mut self,
        p: ProcId,
        op: ClusterOp,
        strategy: &mut dyn Strategy,
    ) -> OpResult {
        match op {
            ClusterOp::StartNode(node) => self.start_node(p, node),
            ClusterOp::StopNode(node) => self.stop_node(p, node),
            ClusterOp::Partition(index) => self.partition(p, index),
            ClusterOp::Heal => self.heal(p, strategy),
            ClusterOp::MonitorNode(node) => self.monitor_node(p, node),
            ClusterOp::SetTicktime(ms) => {
                self.cluster.ticktime = ms;
                self.record(p, EventKind::SetTicktime { ms });
                OpResult::Done
            }
            ClusterOp::Nodes => OpResult::NodeList { up_only: false },
            ClusterOp::NodesUp => OpResult::NodeList { up_only: true },
            ClusterOp::Visible => OpResult::VisibleFrom(self.node_of(p)),
            ClusterOp::NodeOf(q) => OpResult::NodeIs(self.node_of(q)),
            ClusterOp::GlobalRegister { name, proc } => self.global_register(p, name, proc),
            ClusterOp::GlobalUnregister(name) => self.global_unregister(p, name),
            ClusterOp::GlobalWhereis(name) => self.global_whereis(p, name),
            ClusterOp::GlobalNames => OpResult::GlobalList(self.node_of(p)),
            ClusterOp::WhereisOn { name, node } => self.whereis_on(p, name, node),
            ClusterOp::NamesOn(node) => OpResult::NamesOn(node),
        }
    }

    fn start_node(&mut self, p: ProcId, node: NodeId) -> OpResult {
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

    fn stop_node(&mut self, p: ProcId, node: NodeId) -> OpResult {
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

    /// Activates partition `index` (defined with [`Session::define_partition`]) and
    /// starts its tick.
    fn partition(&mut self, p: ProcId, index: u32) -> OpResult {
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
            let in_flight = self.in_flight.take_all(&mut self.choices);
            for m in in_flight {
                let msg = self.msgs[m as usize];
                let to = msg.to.unwrap_or(msg.from);
                match self.cluster.cut(self.node_of(msg.from), self.node_of(to)) {
                    None => self
                        .in_flight
                        .push(m, (msg.from, msg.to), &mut self.choices),
                    Some(mode) => self.cut_off(m, msg.from, to, mode),
                }
            }
        }
        OpResult::Done
    }

    /// Ends every partition: cancels their ticks, delivers what `:defer` partitions held
    /// (in send order), merges the global views and lets lock waiters try again.
    fn heal(&mut self, p: ProcId, strategy: &mut dyn Strategy) -> OpResult {
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

    /// `monitor_node(node, true)` by `p`: `{:nodedown, node}` at once for a node that is
    /// down or across a lost connection (made on `p`'s node, it crosses no partition).
    fn monitor_node(&mut self, p: ProcId, node: NodeId) -> OpResult {
        self.record(p, EventKind::MonitorNode { node });
        if self.cluster.is_up(node) && !self.cluster.connection_lost(self.node_of(p), node) {
            self.cluster.node_monitors.push((p, node));
        } else {
            self.signal_via(p, p, MsgKind::NodeDown { node }, true);
        }
        OpResult::Done
    }

    /// A `{:nodedown, node}` message reaches its live watcher.
    pub(super) fn nodedown_arrives(&mut self, m: MsgId, node: NodeId) {
        let to = self.msgs[m as usize]
            .to
            .expect("nodedown messages have a managed target");
        self.msgs[m as usize].state = MsgState::InMailbox;
        self.add_to_mailbox(to);
        self.effects.push(Effect::DeliverSignal { msg: m, to });
        self.record(to, EventKind::NodeDownMsg { msg: m, node });
    }

    /// Sends `{:nodedown, node}` to every node monitor `(watcher, node)` that `lost`
    /// selects, and forgets those monitors (each fires once).
    fn node_down_for(&mut self, lost: impl Fn(NodeId, NodeId) -> bool) {
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
    /// lost, and each side forgets the global names held across it.
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
        self.monitors_lost(i);
        self.links_lost(i);
        let part = self.cluster.partitions[i].clone();
        self.node_down_for(|watcher_node, node| part.cuts(watcher_node, node));
    }
}
