//! Messages: sending, routing, arrival, aliases.
//!
//! A send is resolved when it is performed, not when announced (a name registered in
//! between is found). Then, as in OTP: a send to a dead pid is silently dropped; a send to
//! a registered name nobody holds raises (`ArgumentError`), to `{name, node}` it is
//! silently lost; a message to an alias no longer active is dropped on arrival (how a late
//! `call` reply is discarded).
//!
//! Routing (`fate`, `route`) is the same for messages and signals. Under `delivery:
//! :instant` a message lands in the mailbox at once; under `:delayed` it is in flight until
//! the strategy delivers it, in order per sender→receiver pair. A message to oneself is in
//! the mailbox when `send` returns under any mode (SPEC §1). Between nodes everything is in
//! flight, and a partition cuts it: lost under `:drop`, held until the heal under
//! `:defer`.
//!
//! `arrive` is where anything in flight lands, whatever its kind: a user message goes into
//! the mailbox here; exit signals, `:DOWN`s and `{:nodedown, n}` are handed to their files.
//! `flush_pair` is the signal-order rule: OTP orders `link`, `monitor` and `alive?` after
//! the caller's earlier signals to the same process, so those deliver what the caller has
//! in flight to it first.

use super::{Effect, EngineError, Session};
use crate::cluster::PartitionMode;
use crate::config::DeliveryMode;
use crate::ids::{MonitorId, MsgId, ProcId};
use crate::message::SendFate;
use crate::message::{Message, MsgKind, MsgState, Target};
use crate::op::OpResult;
use crate::process::Alias;
use crate::trace::EventKind;

impl Session {
    /// `p` sends a user message to `to` (the adapter holds the payload).
    pub(super) fn send(&mut self, p: ProcId, to: Target) -> OpResult {
        if let Target::Name(name) | Target::Global(name) = to {
            if self.resolve(p, to).is_none() {
                let global = matches!(to, Target::Global(_));
                self.record(p, EventKind::SendToUnregistered { name, global });
                return OpResult::Unregistered;
            }
        }
        if let Target::NameAt(name, node) = to {
            if self.resolve(p, to).is_none() {
                // `{name, node} ! msg` never fails in OTP: the message is lost.
                let msg = self.msgs.len() as MsgId;
                self.msgs.push(Message {
                    from: p,
                    to: None,
                    state: MsgState::Dropped,
                    kind: MsgKind::User,
                    alias: None,
                    timer: None,
                });
                self.record(p, EventKind::SendToNobody { name, node, msg });
                return OpResult::Sent {
                    msg,
                    fate: SendFate::Dropped,
                };
            }
        }
        let target = self.resolve(p, to);
        let alias = match to {
            Target::Alias(_, a) => Some(a),
            _ => None,
        };
        let msg = self.msgs.len() as MsgId;
        let (fate, state) = match target {
            None => (SendFate::Delivered, MsgState::External),
            Some(t) if !self.alive(t) => (SendFate::Dropped, MsgState::Dropped),
            Some(t) if alias.is_some_and(|a| !self.has_alias(t, a)) => {
                (SendFate::Dropped, MsgState::Dropped)
            }
            Some(_) => (SendFate::InFlight, MsgState::InFlight),
        };
        self.msgs.push(Message {
            from: p,
            to: target,
            state,
            kind: MsgKind::User,
            alias,
            timer: None,
        });
        let fate = match (fate, target) {
            (SendFate::InFlight, Some(t)) => {
                let fate = self.route(msg, p, t);
                if fate == SendFate::Delivered {
                    // The sender's own adapter call puts it in the real mailbox: no effect.
                    self.msgs[msg as usize].state = MsgState::InMailbox;
                    self.add_to_mailbox(t);
                    if let Some(a) = alias {
                        self.alias_used(t, a);
                    }
                }
                fate
            }
            (fate, _) => fate,
        };
        self.record(
            p,
            EventKind::Send {
                to: target,
                msg,
                fate,
            },
        );
        OpResult::Sent { msg, fate }
    }

    /// How a message or signal from `from` to `to` (alive) travels if sent now: to
    /// oneself, at once under any delivery mode (SPEC §1); to another node, always in flight
    /// unless a partition cuts it (`Cut` under `:drop`, `Deferred` under `:defer`); on the
    /// same node, as the delivery mode says.
    pub(super) fn fate(&self, from: ProcId, to: ProcId) -> SendFate {
        if from == to {
            return SendFate::Delivered;
        }
        let (nf, nt) = (self.node_of(from), self.node_of(to));
        if nf != nt {
            return match self.cluster.cut(nf, nt) {
                Some(PartitionMode::Drop) => SendFate::Cut,
                Some(PartitionMode::Defer) => SendFate::Deferred,
                None => SendFate::InFlight,
            };
        }
        match self.config.delivery {
            DeliveryMode::Instant => SendFate::Delivered,
            DeliveryMode::Delayed => SendFate::InFlight,
        }
    }

    /// Sends message `m` from `from` to `to` (alive) the way [`Session::fate`] says:
    /// `Delivered` means the caller delivers it now; in flight, cut and deferred messages
    /// are filed here.
    pub(super) fn route(&mut self, m: MsgId, from: ProcId, to: ProcId) -> SendFate {
        let fate = self.fate(from, to);
        match fate {
            SendFate::Cut => self.cut_off(m, from, to, PartitionMode::Drop),
            SendFate::Deferred => self.cut_off(m, from, to, PartitionMode::Defer),
            SendFate::InFlight => {
                self.msgs[m as usize].state = MsgState::InFlight;
                let pair = self.pair_of(m);
                self.in_flight.push(m, pair, &mut self.choices);
            }
            SendFate::Delivered | SendFate::Dropped => {}
        }
        fate
    }

    /// Message or signal `m` from `from` to `to` meets a partition in `mode`, when sent or
    /// while in flight: lost under `:drop`, held for the heal under `:defer`.
    pub(super) fn cut_off(&mut self, m: MsgId, from: ProcId, to: ProcId, mode: PartitionMode) {
        let deferred = mode == PartitionMode::Defer;
        if deferred {
            self.msgs[m as usize].state = MsgState::InFlight;
            self.cluster.deferred.push(m);
        } else {
            self.msgs[m as usize].state = MsgState::Dropped;
        }
        self.record(
            to,
            EventKind::Cut {
                msg: m,
                from,
                deferred,
            },
        );
        if !deferred {
            self.lost_in_cut(m);
        }
    }

    /// Message or signal `m` reaches its target now.
    pub(super) fn arrive(&mut self, m: MsgId) {
        let msg = self.msgs[m as usize];
        let to = msg
            .to
            .expect("only managed targets receive through the engine");
        if !self.alive(to) {
            self.msgs[m as usize].state = MsgState::Dropped;
            self.record(
                to,
                EventKind::Drop {
                    msg: m,
                    from: msg.from,
                },
            );
            return;
        }
        match msg.kind {
            MsgKind::User if msg.alias.is_some_and(|a| !self.has_alias(to, a)) => {
                self.msgs[m as usize].state = MsgState::Dropped;
                self.record(
                    to,
                    EventKind::Drop {
                        msg: m,
                        from: msg.from,
                    },
                );
            }
            MsgKind::User => {
                self.msgs[m as usize].state = MsgState::InMailbox;
                self.add_to_mailbox(to);
                if let Some(a) = msg.alias {
                    self.alias_used(to, a);
                }
                self.effects.push(match msg.timer {
                    Some(timer) => Effect::DeliverTimer { timer, msg: m, to },
                    None => Effect::Deliver { msg: m, to },
                });
                self.record(
                    to,
                    EventKind::Deliver {
                        msg: m,
                        from: msg.from,
                    },
                );
            }
            MsgKind::Down { monitor, reason } => self.down_arrives(m, monitor, reason),
            MsgKind::NodeDown { node } => self.nodedown_arrives(m, node),
            MsgKind::Exit { reason, link } => self.exit_arrives(m, reason, link),
        }
    }

    /// Resolves a send target to a managed process (`None`: outside the run, or a name
    /// nobody holds).
    pub(super) fn resolve(&self, sender: ProcId, to: Target) -> Option<ProcId> {
        match to {
            Target::Proc(p) => Some(p),
            Target::External => None,
            Target::Name(name) => {
                let node = self.procs[sender as usize].node;
                self.names.get(&(node, name)).copied()
            }
            Target::NameAt(name, node) => self.names.get(&(node, name)).copied(),
            Target::Alias(p, _) => Some(p),
            Target::Global(name) => self
                .cluster
                .global_whereis(self.procs[sender as usize].node, name),
        }
    }

    /// Delivers, in order, what `from` has in flight to `to` (not what a partition holds):
    /// for operations OTP orders after the caller's earlier signals to their target.
    pub(super) fn flush_pair(&mut self, from: ProcId, to: ProcId) {
        let pair = self.in_flight.pair((from, Some(to)));
        for &m in &pair {
            self.in_flight
                .remove(m, (from, Some(to)), &mut self.choices);
        }
        for m in pair {
            self.arrive(m);
        }
    }

    pub(super) fn has_alias(&self, p: ProcId, alias: u32) -> bool {
        self.procs[p as usize].aliases.iter().any(|a| a.id == alias)
    }

    /// A message reached `to`'s mailbox through alias `alias`: a `reply` alias is now
    /// spent, and a `reply_demonitor` one takes its monitor with it (OTP does this when the
    /// message arrives).
    pub(super) fn alias_used(&mut self, to: ProcId, alias: u32) {
        let aliases = &mut self.procs[to as usize].aliases;
        let Some(i) = aliases.iter().position(|a| a.id == alias && a.reply) else {
            return;
        };
        let spent = aliases.remove(i);
        if let Some(m) = spent.monitor {
            self.monitors[m as usize].active = false;
        }
    }

    /// Monitor `monitor` of `owner` was removed: an alias that lives as long as it goes too.
    pub(super) fn monitor_removed(&mut self, owner: ProcId, monitor: MonitorId) {
        self.procs[owner as usize]
            .aliases
            .retain(|a| a.monitor != Some(monitor));
    }

    /// Activates alias `alias` of the running process (`explicit_unalias`: active until
    /// `unalias`). Not a sync point.
    pub fn alias(&mut self, caller: ProcId, alias: u32) -> Result<(), EngineError> {
        self.alias_with(
            caller,
            Alias {
                id: alias,
                reply: false,
                monitor: None,
            },
        )
    }

    /// Activates an alias of the running process with its deactivation rule (alias/1's
    /// `reply`, monitor/3's `{:alias, _}`). The monitor, if any, must be the caller's.
    pub fn alias_with(&mut self, caller: ProcId, alias: Alias) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        if let Some(m) = alias.monitor {
            if self.monitors.get(m as usize).map(|r| r.owner) != Some(caller) {
                return Err(EngineError::ForeignMonitor {
                    proc: caller,
                    monitor: m,
                });
            }
            if !self.monitors[m as usize].active {
                // Its monitor is gone already (monitoring oneself sets none up): an alias
                // tied to it would be removed at once.
                return Ok(());
            }
        }
        let aliases = &mut self.procs[caller as usize].aliases;
        aliases.retain(|a| a.id != alias.id);
        aliases.push(alias);
        Ok(())
    }

    /// Deactivates an alias of the running process: later messages to it are dropped.
    /// Answers whether it was active (unalias/1).
    pub fn unalias(&mut self, caller: ProcId, alias: u32) -> Result<bool, EngineError> {
        if self.is_over() {
            return Ok(false);
        }
        self.check_running(caller)?;
        let aliases = &mut self.procs[caller as usize].aliases;
        let before = aliases.len();
        aliases.retain(|a| a.id != alias);
        Ok(aliases.len() != before)
    }
}
