//! Registered names and ETS table names.

use super::Session;
use crate::ids::{NameId, NodeId};

impl Session {
    /// The names registered on `node`, in no particular order.
    pub fn registered_names(&self, node: NodeId) -> Vec<NameId> {
        let mut names: Vec<NameId> = self
            .names
            .keys()
            .filter(|(n, _)| *n == node)
            .map(|(_, name)| *name)
            .collect();
        names.sort_unstable();
        names
    }

    /// Named ETS tables of a node (not sync points: the wrapper made its sync point).
    pub fn ets_register(&mut self, node: NodeId, name: NameId, slot: u32) -> bool {
        use std::collections::hash_map::Entry;
        match self.ets_names.entry((node, name)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(slot);
                true
            }
        }
    }

    pub fn ets_lookup(&self, node: NodeId, name: NameId) -> Option<u32> {
        self.ets_names.get(&(node, name)).copied()
    }

    pub fn ets_unregister(&mut self, node: NodeId, name: NameId) -> bool {
        self.ets_names.remove(&(node, name)).is_some()
    }
}
