//! Registered names (per node) and named ETS tables (per node).
//!
//! OTP's `register/2`: a name lives in the registry of the registered process's node; it
//! fails (`ArgumentError`, `false` here) when the process is dead, already has a name, or
//! the name is taken; `unregister/1` fails for a name nobody holds; a process that exits
//! loses its name (`die`). A send to a name resolves it at the step the send is performed,
//! on the sender's node (`{name, node}` on that node). `whereis` reads the caller's node,
//! `WhereisOn` / `NamesOn` another one. `register/2` is no signal in OTP, so it is not
//! ordered after the caller's in-flight signals.
//!
//! ETS table names are per node too, and not sync points: the `Lockstep.ETS` wrapper made
//! its sync point already; a stopped or restarted node loses its table names.

use super::Session;
use crate::ids::{NameId, NodeId, ProcId};
use crate::message::Target;
use crate::op::OpResult;
use crate::trace::EventKind;

impl Session {
    /// `register(name, proc)` by `p`.
    pub(super) fn register(&mut self, p: ProcId, name: NameId, proc: ProcId) -> OpResult {
        // A name lives in the registry of the registered process's node.
        let node = self.procs[proc as usize].node;
        let ok = self.alive(proc)
            && self.procs[proc as usize].registered.is_none()
            && !self.names.contains_key(&(node, name));
        if ok {
            self.names.insert((node, name), proc);
            self.procs[proc as usize].registered = Some(name);
        }
        self.record(
            p,
            EventKind::Register {
                name,
                target: proc,
                ok,
            },
        );
        OpResult::NameOk(ok)
    }

    /// `unregister(name)` by `p`, on its node.
    pub(super) fn unregister(&mut self, p: ProcId, name: NameId) -> OpResult {
        let node = self.procs[p as usize].node;
        let ok = match self.names.remove(&(node, name)) {
            Some(holder) => {
                self.procs[holder as usize].registered = None;
                true
            }
            None => false,
        };
        self.record(p, EventKind::Unregister { name, ok });
        OpResult::NameOk(ok)
    }

    /// `whereis(name)` by `p`, on its node.
    pub(super) fn whereis(&mut self, p: ProcId, name: NameId) -> OpResult {
        let found = self.resolve(p, Target::Name(name));
        self.record(p, EventKind::Whereis { name, found });
        OpResult::Found(found)
    }

    /// Who holds `name` on `node` (no sync point, no event: the adapter's question when a
    /// send is announced).
    pub fn name_holder(&self, node: NodeId, name: NameId) -> Option<ProcId> {
        self.names.get(&(node, name)).copied()
    }

    /// `whereis(name)` on `node`'s registry, by `p`.
    pub(super) fn whereis_on(&mut self, p: ProcId, name: NameId, node: NodeId) -> OpResult {
        let found = self.names.get(&(node, name)).copied();
        self.record(p, EventKind::Whereis { name, found });
        OpResult::Found(found)
    }

    /// The names registered on `node`, sorted.
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

    /// The named ETS tables of `node`: each name with its table's slot, by name id.
    pub fn ets_named(&self, node: NodeId) -> Vec<(NameId, u32)> {
        let mut named: Vec<(NameId, u32)> = self
            .ets_names
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|((_, name), slot)| (*name, *slot))
            .collect();
        named.sort_unstable();
        named
    }
}
