//! The simulated cluster: notional nodes of one BEAM, partitions between groups of them,
//! node failures, node monitors and the global name registry. Processes carry the id of
//! their node; the session consults this table whenever something crosses nodes.
//!
//! Messages between different nodes are always in flight until the strategy delivers
//! them. A partition cuts every pair (one node in each group): cross-cut messages and
//! signals are dropped or deferred (delivered in send order at `heal`). After the virtual
//! `net_ticktime` a partition's tick timer fires and monitors, links and node monitors
//! across the cut see `:noconnection` / `{:nodedown, node}`, as `net_kernel` would; from
//! then on the connection is *lost*: a monitor, link or node monitor made across it fires
//! at once, as for a node that is not connected.
//!
//! The global registry is, as OTP's `:global`, one table per node, kept equal between the
//! nodes that are connected: a registration is checked against, and written to, the
//! tables of every node connected to the caller's. It first takes `global`'s lock on every
//! node the caller knows (OTP 25 `trans_all_known/1`), so while a node it reaches is cut
//! off but not yet declared down the registration waits — until the heal, or until the tick
//! declares the connection lost and the lock is taken without that node. So once a
//! partition is declared lost each side has its own view, and a name can be registered on
//! both (split brain); at the tick each side forgets the names held on the other side (as
//! `global` does on `nodedown`), and on heal the session merges the views, resolving each
//! clash as `global:random_exit_name/3` does (one registration kept, the other holder
//! killed). A node that is down has no view.

use crate::ids::{MsgId, NodeId, ProcId, TimerId};
use std::collections::BTreeMap;

/// One node's view of the global registry: name id → holder.
pub type GlobalView = BTreeMap<u32, ProcId>;

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
    /// The tick has fired: connections across the cut are lost.
    pub lost: bool,
}

impl Partition {
    pub fn cuts(&self, x: NodeId, y: NodeId) -> bool {
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
    /// The global registry as each node sees it, by node id (empty for a node that is down).
    /// Invariant: nodes connected to each other have equal views, except between a
    /// partition's healing and [`Cluster::merge_global`].
    pub global: Vec<GlobalView>,
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
            global: vec![GlobalView::new()],
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
            self.global.resize(n, GlobalView::new());
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

    /// Whether `x` can reach `y` now: both up and no active partition between them.
    pub fn connected(&self, x: NodeId, y: NodeId) -> bool {
        self.is_up(x) && self.is_up(y) && self.cut(x, y).is_none()
    }

    /// Whether `x` knows it cannot reach `y`: `y` is down, or a partition between them has
    /// passed its `net_ticktime`. (A partition whose tick is pending is not known yet.)
    pub fn connection_lost(&self, x: NodeId, y: NodeId) -> bool {
        x != y && (!self.is_up(y) || self.partitions.iter().any(|p| p.lost && p.cuts(x, y)))
    }

    fn nodes_connected_to(&self, node: NodeId) -> Vec<NodeId> {
        (0..self.up.len() as NodeId)
            .filter(|&m| self.connected(node, m))
            .collect()
    }

    /// The holder of global `name` as `node` sees it.
    pub fn global_whereis(&self, node: NodeId, name: u32) -> Option<ProcId> {
        self.global.get(node as usize)?.get(&name).copied()
    }

    /// The global names `node` sees, sorted.
    pub fn global_names(&self, node: NodeId) -> Vec<u32> {
        self.global
            .get(node as usize)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `global`'s lock, taken on every node `node` knows, cannot be had yet: a node
    /// that is up is cut off from `node` by a partition not yet declared lost.
    pub fn global_lock_stalled(&self, node: NodeId) -> bool {
        (0..self.up.len() as NodeId)
            .any(|m| self.is_up(m) && self.partitions.iter().any(|p| !p.lost && p.cuts(node, m)))
    }

    /// `register_name` from a process on `node` (once it has the lock): atomic over the
    /// nodes `node` reaches (the name must be free in each of their views, and is written to
    /// all of them). As OTP 25's `check_dupname/2`, a pid that already has a global name
    /// gets `no`.
    pub fn global_register(&mut self, node: NodeId, name: u32, holder: ProcId) -> bool {
        let reach = self.nodes_connected_to(node);
        if reach.is_empty()
            || reach
                .iter()
                .any(|&m| self.global[m as usize].contains_key(&name))
            || self.global[node as usize].values().any(|&h| h == holder)
        {
            return false;
        }
        for m in reach {
            self.global[m as usize].insert(name, holder);
        }
        true
    }

    /// `unregister_name` from a process on `node`: removed from the views it reaches.
    pub fn global_unregister(&mut self, node: NodeId, name: u32) {
        for m in self.nodes_connected_to(node) {
            self.global[m as usize].remove(&name);
        }
    }

    /// A holder exited: its names go from every view.
    pub fn global_forget(&mut self, holder: ProcId) {
        for view in &mut self.global {
            view.retain(|_, h| *h != holder);
        }
    }

    /// Partition `index` was declared lost: each side forgets the names held on nodes of
    /// the other side (`global`'s reaction to `nodedown`).
    pub fn global_forget_across(&mut self, index: usize, node_of: impl Fn(ProcId) -> NodeId) {
        let part = &self.partitions[index];
        for (x, view) in self.global.iter_mut().enumerate() {
            view.retain(|_, h| !part.cuts(x as NodeId, node_of(*h)));
        }
    }

    /// Every clash between the views of the nodes that are up, after a heal: name → the
    /// distinct holders, in node order of the views that name them. Names held by one
    /// process only are merged into every view here.
    pub fn merge_global(&mut self) -> Vec<(u32, Vec<ProcId>)> {
        let up: Vec<usize> = (0..self.up.len()).filter(|&n| self.up[n]).collect();
        let mut holders: BTreeMap<u32, Vec<ProcId>> = BTreeMap::new();
        for &n in &up {
            for (&name, &h) in &self.global[n] {
                let list = holders.entry(name).or_default();
                if !list.contains(&h) {
                    list.push(h);
                }
            }
        }
        let mut clashes = Vec::new();
        for (name, list) in holders {
            if list.len() == 1 {
                for &n in &up {
                    self.global[n].insert(name, list[0]);
                }
            } else {
                clashes.push((name, list));
            }
        }
        clashes
    }

    /// Sets `name` to `holder` in the view of every node that is up.
    pub fn global_settle(&mut self, name: u32, holder: ProcId) {
        for n in 0..self.up.len() {
            if self.up[n] {
                self.global[n].insert(name, holder);
            }
        }
    }

    /// A node starts with no names of its own and learns those of a node it reaches.
    pub fn global_join(&mut self, node: NodeId) {
        let from = self
            .nodes_connected_to(node)
            .into_iter()
            .find(|&m| m != node);
        self.global[node as usize] = match from {
            Some(m) => self.global[m as usize].clone(),
            None => GlobalView::new(),
        };
    }
}
