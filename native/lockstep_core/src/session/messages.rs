//! Messages: routing, arrival, mailboxes, aliases.

use super::{Effect, EngineError, Session};
use crate::cluster::PartitionMode;
use crate::config::DeliveryMode;
use crate::ids::{MsgId, ProcId};
use crate::message::{MsgKind, MsgState, Reason, Target};
use crate::op::Op;
use crate::process::{ExitCause, ProcState};
use crate::timer::{TimerKind, TimerState};
use crate::trace::{EventKind, SendFate};

impl Session {
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
            SendFate::Cut => {
                self.msgs[m as usize].state = MsgState::Dropped;
                self.record(
                    to,
                    EventKind::Cut {
                        msg: m,
                        from,
                        deferred: false,
                    },
                );
                self.lost_in_cut(m);
            }
            SendFate::Deferred => {
                self.msgs[m as usize].state = MsgState::InFlight;
                self.cluster.deferred.push(m);
                self.record(
                    to,
                    EventKind::Cut {
                        msg: m,
                        from,
                        deferred: true,
                    },
                );
            }
            SendFate::InFlight => {
                self.msgs[m as usize].state = MsgState::InFlight;
                self.in_flight.push(m);
            }
            SendFate::Delivered | SendFate::Dropped => {}
        }
        fate
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
            MsgKind::Down { monitor, reason } => {
                if !self.monitors[monitor as usize].active {
                    // Demonitored while the notification was in flight: OTP guarantees
                    // no :DOWN is placed in the mailbox after demonitor returns.
                    self.msgs[m as usize].state = MsgState::Dropped;
                    return;
                }
                self.monitors[monitor as usize].active = false;
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
            MsgKind::NodeDown { node } => {
                self.msgs[m as usize].state = MsgState::InMailbox;
                self.add_to_mailbox(to);
                self.effects.push(Effect::DeliverSignal { msg: m, to });
                self.record(to, EventKind::NodeDownMsg { msg: m, node });
            }
            MsgKind::Exit { reason, link } => {
                let target = &self.procs[to as usize];
                if reason == Reason::Kill && !link {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.die(
                        to,
                        ExitCause::Signal {
                            from: msg.from,
                            reason,
                        },
                        Reason::Killed,
                        true,
                    );
                } else if target.trap_exit {
                    self.msgs[m as usize].state = MsgState::InMailbox;
                    self.add_to_mailbox(to);
                    self.effects.push(Effect::DeliverSignal { msg: m, to });
                    self.record(
                        to,
                        EventKind::ExitTrapped {
                            msg: m,
                            from: msg.from,
                            reason,
                        },
                    );
                } else if reason == Reason::Normal && msg.from != to {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.record(to, EventKind::ExitIgnored { from: msg.from });
                } else {
                    self.msgs[m as usize].state = MsgState::Acted;
                    self.die(
                        to,
                        ExitCause::Signal {
                            from: msg.from,
                            reason,
                        },
                        reason,
                        true,
                    );
                }
            }
        }
    }

    pub(super) fn add_to_mailbox(&mut self, to: ProcId) {
        let target = &mut self.procs[to as usize];
        target.mailbox += 1;
        target.fresh = true;
        target.untested += 1;
        if target.state == ProcState::Blocked && matches!(target.pending, Op::Receive { .. }) {
            self.set_state(to, ProcState::Ready);
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
        let pair: Vec<MsgId> = self
            .in_flight
            .iter()
            .copied()
            .filter(|&m| self.msgs[m as usize].from == from && self.msgs[m as usize].to == Some(to))
            .collect();
        if pair.is_empty() {
            return;
        }
        self.in_flight.retain(|m| !pair.contains(m));
        for m in pair {
            self.arrive(m);
        }
    }

    pub(super) fn has_alias(&self, p: ProcId, alias: u32) -> bool {
        self.procs[p as usize].aliases.contains(&alias)
    }

    /// Activates alias `alias` of the running process. Not a sync point.
    pub fn alias(&mut self, caller: ProcId, alias: u32) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.procs[caller as usize].aliases.push(alias);
        Ok(())
    }

    /// Deactivates an alias of the running process: later messages to it are dropped.
    pub fn unalias(&mut self, caller: ProcId, alias: u32) -> Result<(), EngineError> {
        if self.is_over() {
            return Ok(());
        }
        self.check_running(caller)?;
        self.procs[caller as usize].aliases.retain(|&a| a != alias);
        Ok(())
    }

    /// A process that made its last receive attempt and did not report a match ran its
    /// `after` clause: record that now, at the step it happened in.
    pub(super) fn note_timeout(&mut self, caller: ProcId) {
        let proc = &mut self.procs[caller as usize];
        if proc.last_attempt {
            proc.last_attempt = false;
            self.record(caller, EventKind::ReceiveTimeout);
        }
    }

    /// `caller` announces a receive: a first attempt looks at the whole mailbox and starts
    /// its `after` timer; a retry (the last attempt matched nothing) waits for something
    /// new. Returns whether it is blocked.
    pub(super) fn start_receive(
        &mut self,
        caller: ProcId,
        retry: bool,
        timeout: Option<u64>,
    ) -> bool {
        if retry {
            let proc = &mut self.procs[caller as usize];
            proc.fresh = false;
            proc.untested = 0;
        } else {
            if let Some(old) = self.procs[caller as usize].receive_timer.take() {
                self.timers[old as usize].state = TimerState::Cancelled;
            }
            let proc = &mut self.procs[caller as usize];
            proc.timed_out = false;
            proc.fresh = proc.mailbox > 0;
            proc.untested = proc.mailbox;
            match timeout {
                Some(0) => self.procs[caller as usize].timed_out = true,
                Some(ms) => {
                    let t = self.add_timer(caller, ms, TimerKind::ReceiveAfter);
                    self.procs[caller as usize].receive_timer = Some(t);
                    self.record(caller, EventKind::TimerStarted { timer: t, ms });
                }
                None => {}
            }
        }
        let proc = &self.procs[caller as usize];
        !proc.fresh && !proc.timed_out
    }
}
