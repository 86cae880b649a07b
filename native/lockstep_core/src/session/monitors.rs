//! Monitors and `:DOWN`.
//!
//! OTP's rules (erlang(3) monitor/2, demonitor/1,2): a monitor fires once, with
//! `{:DOWN, ref, :process, pid, reason}`, when its target exits; monitoring oneself sets
//! nothing up; a monitor of a process already gone gives `:noproc` — and in OTP 25 that
//! `:DOWN` is sent as a signal, not yet in the mailbox when monitor/2 returns (`receive
//! … after 0` misses it), so it travels. `monitor/2` is ordered after the caller's earlier
//! signals to the target (`flush_pair`): an exit signal that kills it first gives
//! `:noproc`. A monitor across a connection already declared lost fires `:noconnection`
//! at once (generated locally, it crosses no partition); one across a partition fires
//! `:noconnection` at the partition's tick. `demonitor/1` guarantees no `:DOWN` of that
//! monitor reaches the mailbox afterwards, so one still in flight is dropped on arrival
//! (`[:flush]` is the adapter's: it takes those already in the mailbox). A process that
//! exits loses the monitors it made.
//!
//! By name (`monitor(:process, name)` or `{name, node}`): the name is looked up when the
//! monitor is applied and the monitor watches the process that holds it then, its `:DOWN`
//! naming `{name, node}` instead of the pid (`by_name`); a name nobody holds gives an
//! immediate `{:DOWN, ref, :process, {name, node}, :noproc}`, and a node that is down or
//! cut off one with `:noconnection` — both in the mailbox when monitor/2 returns (OTP 25,
//! measured), unlike a dead pid's. Monitoring one's own name sets nothing up, as by pid.
//! `demonitor/2`'s `:info` answers whether the monitor was still active, which it is
//! until its `:DOWN` reaches the mailbox (OTP removes it on the owner's side then). An
//! alias tied to a monitor (monitor/3's `{:alias, :demonitor | :reply_demonitor}`) goes
//! when the monitor does (`monitor_removed`, see `messages.rs`).

use super::{Effect, Session};
use crate::ids::{MonitorId, MsgId, NameId, NodeId, ProcId};
use crate::message::{MsgKind, MsgState, Reason};
use crate::op::OpResult;
use crate::trace::EventKind;

/// One monitor: `owner` watches `target` until it fires, is demonitored or its owner
/// exits (then `active` is false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorRec {
    pub owner: ProcId,
    pub target: ProcId,
    pub active: bool,
    /// Set up by name: its `:DOWN` names `{name, node}`, not the pid.
    pub by_name: Option<(NameId, NodeId)>,
}

impl Session {
    /// `monitor(:process, target)` by `p`.
    pub(super) fn add_monitor(&mut self, p: ProcId, target: ProcId) -> OpResult {
        self.add_monitor_as(p, target, None)
    }

    /// `monitor(:process, name)` (`node` `None`: the caller's) or `{name, node}` by `p`.
    pub(super) fn add_monitor_by_name(
        &mut self,
        p: ProcId,
        name: NameId,
        node: Option<NodeId>,
    ) -> OpResult {
        let node = node.unwrap_or_else(|| self.node_of(p));
        let holder = self.names.get(&(node, name)).copied();
        let reason = if self.cluster.connection_lost(self.node_of(p), node) {
            Reason::NoConnection
        } else if let Some(target) = holder {
            return self.add_monitor_as(p, target, Some((name, node)));
        } else {
            Reason::NoProc
        };
        // Nobody to watch: the `:DOWN` is the caller's own, in its mailbox at once.
        let monitor = self.monitors.len() as MonitorId;
        self.push_monitor(MonitorRec {
            owner: p,
            target: p,
            active: true,
            by_name: Some((name, node)),
        });
        self.record(p, EventKind::Monitor { target: p, monitor });
        self.signal_via(p, p, MsgKind::Down { monitor, reason }, true);
        OpResult::MonitorSet { monitor }
    }

    /// Files a new monitor, also under its owner and its target.
    fn push_monitor(&mut self, rec: MonitorRec) {
        let m = self.monitors.len() as MonitorId;
        self.monitors.push(rec);
        let needed = rec.owner.max(rec.target) as usize + 1;
        if self.monitors_of.len() < needed {
            self.monitors_of.resize_with(needed, Vec::new);
        }
        self.monitors_of[rec.owner as usize].push(m);
        if rec.target != rec.owner {
            self.monitors_of[rec.target as usize].push(m);
        }
    }

    fn add_monitor_as(
        &mut self,
        p: ProcId,
        target: ProcId,
        by_name: Option<(NameId, NodeId)>,
    ) -> OpResult {
        let lost = target != p
            && self
                .cluster
                .connection_lost(self.node_of(p), self.node_of(target));
        if target != p && !lost && self.alive(target) {
            // The monitor signal reaches `target` after the caller's earlier
            // signals (an exit signal that kills it gives :noproc below).
            self.flush_pair(p, target);
        }
        let monitor = self.monitors.len() as MonitorId;
        self.push_monitor(MonitorRec {
            owner: p,
            target,
            active: true,
            by_name,
        });
        self.record(p, EventKind::Monitor { target, monitor });
        if target == p {
            // OTP: monitoring oneself sets nothing up; no :DOWN ever comes.
            self.monitors[monitor as usize].active = false;
        } else if lost {
            // OTP 25 monitor/2 of a pid of a node that is not connected: the
            // `{:DOWN, ref, :process, pid, :noconnection}` is in the mailbox when it
            // returns (generated locally, it crosses no partition).
            let down = MsgKind::Down {
                monitor,
                reason: Reason::NoConnection,
            };
            self.signal_via(target, p, down, true);
        } else if !self.alive(target) {
            // OTP 25: the :noproc :DOWN is not yet in the mailbox when monitor/2
            // returns (`receive … after 0` misses it): it travels.
            let down = MsgKind::Down {
                monitor,
                reason: Reason::NoProc,
            };
            self.signal(target, p, down);
        }
        OpResult::MonitorSet { monitor }
    }

    /// `demonitor(ref)` by `p` (a ref it does not own, or none, does nothing); answers
    /// whether the monitor was active (`:info`).
    pub(super) fn demonitor(&mut self, p: ProcId, monitor: Option<MonitorId>) -> OpResult {
        let mut was_active = false;
        if let Some(m) = monitor {
            if let Some(rec) = self.monitors.get_mut(m as usize) {
                if rec.owner == p {
                    was_active = rec.active;
                    rec.active = false;
                    self.monitor_removed(p, m);
                    self.record(p, EventKind::Demonitor { monitor: m });
                }
            }
        }
        OpResult::Demonitored(was_active)
    }

    /// `:DOWN` `m` of `monitor` reaches its live owner.
    pub(super) fn down_arrives(&mut self, m: MsgId, monitor: MonitorId, reason: Reason) {
        let msg = self.msgs[m as usize];
        let to = msg.to.expect(":DOWNs have a managed target");
        if !self.monitors[monitor as usize].active {
            // Demonitored while the notification was in flight: OTP guarantees
            // no :DOWN is placed in the mailbox after demonitor returns.
            self.msgs[m as usize].state = MsgState::Dropped;
            return;
        }
        self.monitors[monitor as usize].active = false;
        self.monitor_removed(to, monitor);
        self.msgs[m as usize].state = MsgState::InMailbox;
        self.add_to_mailbox(to);
        self.effects.push(Effect::DeliverSignal { msg: m, to });
        self.record(
            to,
            EventKind::Down {
                msg: m,
                monitor,
                from: msg.from,
                reason,
            },
        );
    }

    /// `p` exited with `reason`: its own monitors end, and those watching it fire.
    pub(super) fn exit_monitors(&mut self, p: ProcId, reason: Reason) {
        // A process exits once, and once it has, no monitor is made by it or of it that
        // its exit would have to visit: its list is done with.
        let mine = match self.monitors_of.get_mut(p as usize) {
            Some(list) => std::mem::take(list),
            None => return,
        };
        for m in mine {
            let m = m as usize;
            let rec = self.monitors[m];
            if rec.active && rec.owner == p {
                self.monitors[m].active = false;
            } else if rec.active && rec.target == p {
                self.signal(
                    p,
                    rec.owner,
                    MsgKind::Down {
                        monitor: m as MonitorId,
                        reason,
                    },
                );
            }
        }
    }

    /// Partition `i` was declared lost: every active monitor across it fires
    /// `:noconnection` (a `:DOWN` cut by the partition left its monitor active).
    pub(super) fn monitors_lost(&mut self, i: usize) {
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
    }
}
