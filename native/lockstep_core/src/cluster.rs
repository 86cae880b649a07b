//! The simulated cluster: notional nodes of one BEAM, partitions between groups of them,
//! node failures, node monitors and the global name registry. Processes carry the id of
//! their node; the session consults this table whenever something crosses nodes.
//!
//! Messages between different nodes are always in flight until the strategy delivers
//! them. A partition cuts every pair (one node in each group): cross-cut messages and
//! signals are dropped or deferred (delivered in send order at `heal`). After the virtual
//! `net_ticktime` a partition's tick timer fires and monitors, links and node monitors
//! across the cut see `:noconnection` / `{:nodedown, node}`, as `net_kernel` would.

use crate::process::{MsgId, NodeId, ProcId, TimerId};
use std::collections::HashMap;

/// Node 0 is `:nonode@nohost`, where the root runs; it is always up.
pub const HOME_NODE: NodeId = 0;

pub const DEFAULT_TICKTIME_MS: u64 = 15_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionMode {
    /// Cross-cut messages are lost.
    Drop,
    /// Cross-cut messages wait and are delivered, in send order, when the cut heals.
    Defer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub a: Vec<NodeId>,
    pub b: Vec<NodeId>,
    pub mode: PartitionMode,
    pub active: bool,
    /// Fires `net_ticktime` after the cut: connections across it are declared lost.
    pub tick: Option<TimerId>,
}

impl Partition {
    fn cuts(&self, x: NodeId, y: NodeId) -> bool {
        self.active
            && ((self.a.contains(&x) && self.b.contains(&y))
                || (self.b.contains(&x) && self.a.contains(&y)))
    }
}

#[derive(Clone, Debug)]
pub struct Cluster {
    /// Whether each node is up, by id (ids are handed out by the adapter, which maps them
    /// to node names; a node is known once started).
    pub up: Vec<bool>,
    pub known: Vec<bool>,
    pub partitions: Vec<Partition>,
    /// Deferred messages and signals, in send order.
    pub deferred: Vec<MsgId>,
    pub ticktime: u64,
    /// `(watcher, node)` pairs from `monitor_node/1`; each fires once.
    pub node_monitors: Vec<(ProcId, NodeId)>,
    /// The global registry: name id → holder.
    pub global: HashMap<u32, ProcId>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            up: vec![true],
            known: vec![true],
            partitions: Vec::new(),
            deferred: Vec::new(),
            ticktime: DEFAULT_TICKTIME_MS,
            node_monitors: Vec::new(),
            global: HashMap::new(),
        }
    }
}

impl Cluster {
    pub fn is_known(&self, node: NodeId) -> bool {
        self.known.get(node as usize).copied().unwrap_or(false)
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.up.get(node as usize).copied().unwrap_or(false)
    }

    pub fn ensure(&mut self, node: NodeId) {
        let n = node as usize + 1;
        if self.up.len() < n {
            self.up.resize(n, false);
            self.known.resize(n, false);
        }
    }

    /// How a message from node `x` to node `y` is treated by the active partitions, if
    /// any cuts them (`Drop` wins over `Defer` when several do).
    pub fn cut(&self, x: NodeId, y: NodeId) -> Option<PartitionMode> {
        if x == y {
            return None;
        }
        let mut found = None;
        for p in &self.partitions {
            if p.cuts(x, y) {
                if p.mode == PartitionMode::Drop {
                    return Some(PartitionMode::Drop);
                }
                found = Some(PartitionMode::Defer);
            }
        }
        found
    }

    pub fn partition_cuts(&self, index: usize, x: NodeId, y: NodeId) -> bool {
        self.partitions[index].cuts(x, y)
    }
}

/// A cluster operation, performed at the step the strategy picks it like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterOp {
    StartNode(NodeId),
    StopNode(NodeId),
    /// Activates a partition defined with `Session::define_partition`.
    Partition(u32),
    Heal,
    MonitorNode(NodeId),
    SetTicktime(u64),
    Nodes,
    NodesUp,
    NodeOf(ProcId),
    GlobalRegister {
        name: u32,
        proc: ProcId,
    },
    GlobalUnregister(u32),
    GlobalWhereis(u32),
    GlobalNames,
    /// `whereis` on a given node's registry.
    WhereisOn {
        name: u32,
        node: NodeId,
    },
    /// The names registered on a given node.
    NamesOn(NodeId),
}
