//! Exit signals, links and `trap_exit`.
//!
//! The OTP rules (erlang(3), "Processes" in the reference manual), applied when an exit
//! signal *arrives* (`exit_arrives`), since it travels like a message:
//!
//! * `exit(pid, :kill)` cannot be trapped: the target dies with reason `:killed` (and its
//!   links see `:killed`); a `:kill` coming through a link is an ordinary reason;
//! * a trapping target gets `{:EXIT, from, reason}` in its mailbox;
//! * `:normal` is ignored by a target that does not trap, unless it is the sender itself
//!   (`exit(self(), :normal)` kills);
//! * any other reason kills a target that does not trap, which then sends its own exit
//!   signals through its links with the same reason.
//!
//! Links are simulated (never real BEAM links), set and removed at the step `link` /
//! `unlink` is applied. `link/1` is ordered after the caller's earlier signals to the same
//! process (`flush_pair`); to a process that is gone it brings a `:noproc` exit signal
//! (in the mailbox at once for a trapping caller, OTP 25) or raises `noproc` in a caller
//! that does not trap; to a pid across a connection already declared lost it brings
//! `:noconnection` at once. `unlink/1` drops the link's exit signals still in flight (no
//! effect once it has returned). A link's exit signal lost in a `:drop` cut leaves the
//! receiver's half of the link, which the partition's tick fires with `:noconnection`.

use super::Effect;
use super::Session;
use crate::ids::{MsgId, ProcId};
use crate::message::SendFate;
use crate::message::{Message, MsgKind, MsgState, Reason};
use crate::op::OpResult;
use crate::process::ExitCause;
use crate::trace::EventKind;

impl Session {
    /// `link(to)` by `p`.
    pub(super) fn link(&mut self, p: ProcId, to: ProcId) -> OpResult {
        self.record(p, EventKind::Link { to });
        let noproc = MsgKind::Exit {
            reason: Reason::NoProc,
            link: true,
        };
        let was_alive = self.alive(to);
        if to == p {
            // Linking to oneself is a no-op, as in OTP.
        } else if self
            .cluster
            .connection_lost(self.node_of(p), self.node_of(to))
        {
            // OTP 25 link/1 to a pid of a node that is not connected: `true`, and
            // the caller gets a `:noconnection` exit signal at once.
            let lost = MsgKind::Exit {
                reason: Reason::NoConnection,
                link: true,
            };
            self.signal_via(to, p, lost, true);
        } else if !was_alive && self.node_of(p) != self.node_of(to) {
            // A remote pid is not looked up: the link signal travels, and the
            // dead process's node answers with a `:noproc` exit signal.
            self.signal(to, p, noproc);
        } else if !was_alive && self.procs[p as usize].trap_exit {
            // OTP 25 (`erts_deliver_exit_message`): the `{:EXIT, pid, :noproc}` is
            // in the caller's mailbox when link/1 returns.
            self.signal_via(to, p, noproc, true);
        } else if !was_alive {
            // OTP 25: link/1 to a local process that no longer exists raises
            // `noproc` in a caller that does not trap exits.
            return OpResult::NoProc;
        } else {
            // The link signal reaches `to` after the caller's earlier signals.
            self.flush_pair(p, to);
            if self.alive(to) {
                if !self.procs[p as usize].links.contains(&to) {
                    self.procs[p as usize].links.push(to);
                    self.procs[to as usize].links.push(p);
                }
            } else {
                // They killed it: link/1 has returned true, and the dead process
                // answers the link signal with a `:noproc` exit signal.
                self.signal(to, p, noproc);
            }
        }
        OpResult::Done
    }

    /// `unlink(to)` by `p`.
    pub(super) fn unlink(&mut self, p: ProcId, to: ProcId) -> OpResult {
        self.procs[p as usize].links.retain(|&x| x != to);
        self.procs[to as usize].links.retain(|&x| x != p);
        self.drop_link_exits(to, p);
        self.record(p, EventKind::Unlink { to });
        OpResult::Done
    }

    /// `Process.flag(:trap_exit, on)` by `p`: answers the previous value.
    pub(super) fn trap_exit(&mut self, p: ProcId, on: bool) -> OpResult {
        let proc = &mut self.procs[p as usize];
        let was = proc.trap_exit;
        proc.trap_exit = on;
        self.record(p, EventKind::TrapExit { on });
        OpResult::WasTrapping(was)
    }

    /// `exit(to, reason)` by `p`. A process that kills itself this way is not run again (it
    /// parks and dies on its Kill effect).
    pub(super) fn exit_signal(&mut self, p: ProcId, to: ProcId, reason: Reason) -> OpResult {
        let msg = self.msgs.len() as MsgId;
        // The fate routing will give it: a signal to another node is in flight (or
        // cut, or deferred) under any delivery mode.
        let fate = if self.alive(to) {
            self.fate(p, to)
        } else {
            SendFate::Dropped
        };
        self.record(
            p,
            EventKind::ExitSent {
                to,
                msg,
                reason,
                fate,
            },
        );
        let (_, routed) = self.signal(
            p,
            to,
            MsgKind::Exit {
                reason,
                link: false,
            },
        );
        debug_assert_eq!(routed, fate);
        OpResult::Done
    }

    /// Sends a signal (exit or `:DOWN`) from `from` to `to`: at once under instant
    /// delivery or to oneself, else in flight. Returns its id and fate.
    pub(super) fn signal(&mut self, from: ProcId, to: ProcId, kind: MsgKind) -> (MsgId, SendFate) {
        self.signal_via(from, to, kind, false)
    }

    /// `local`: generated on the receiver's node (a lost connection, a node going down),
    /// so no partition or network is crossed.
    pub(super) fn signal_via(
        &mut self,
        from: ProcId,
        to: ProcId,
        kind: MsgKind,
        local: bool,
    ) -> (MsgId, SendFate) {
        let m = self.msgs.len() as MsgId;
        self.msgs.push(Message {
            from,
            to: Some(to),
            state: MsgState::InFlight,
            kind,
            alias: None,
            timer: None,
        });
        if !self.alive(to) {
            self.msgs[m as usize].state = MsgState::Dropped;
            return (m, SendFate::Dropped);
        }
        if local || from == to {
            self.arrive(m);
            return (m, SendFate::Delivered);
        }
        match self.route(m, from, to) {
            SendFate::Delivered => {
                self.arrive(m);
                (m, SendFate::Delivered)
            }
            fate => (m, fate),
        }
    }

    /// Message `m` was lost in a `:drop` cut. If it is a link's exit signal, the receiver
    /// never learns of it, so its half of the link stays: OTP removes a link on the
    /// receiving side only when the exit signal arrives, and when the connection is then
    /// declared lost (the partition's tick) the link fires with `:noconnection`, as a
    /// monitor whose `:DOWN` was cut does.
    pub(super) fn lost_in_cut(&mut self, m: MsgId) {
        let msg = self.msgs[m as usize];
        let (MsgKind::Exit { link: true, .. }, Some(to)) = (msg.kind, msg.to) else {
            return;
        };
        if to != msg.from && self.alive(to) && !self.procs[to as usize].links.contains(&msg.from) {
            self.procs[to as usize].links.push(msg.from);
        }
    }

    /// `to` unlinked `from`: OTP guarantees the link has no effect on `to` once unlink/1
    /// returns, so exit signals of that link still travelling are dropped.
    pub(super) fn drop_link_exits(&mut self, from: ProcId, to: ProcId) {
        let msgs = &mut self.msgs;
        let mut keep = |m: &MsgId| {
            let msg = &mut msgs[*m as usize];
            let stale = msg.from == from
                && msg.to == Some(to)
                && matches!(msg.kind, MsgKind::Exit { link: true, .. });
            if stale {
                msg.state = MsgState::Dropped;
            }
            !stale
        };
        self.in_flight.retain(|m| keep(&m), &mut self.choices);
        self.cluster.deferred.retain(&mut keep);
    }

    /// Exit signal `m` (`reason`, through a link or not) reaches its live target: OTP's
    /// rules, in the order the module comment gives them.
    pub(super) fn exit_arrives(&mut self, m: MsgId, reason: Reason, link: bool) {
        let msg = self.msgs[m as usize];
        let to = msg.to.expect("exit signals have a managed target");
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

    /// `p` exited with `reason`: each process linked to it gets an exit signal.
    pub(super) fn exit_links(&mut self, p: ProcId, links: Vec<ProcId>, reason: Reason) {
        for l in links {
            if !self.alive(l) {
                // The half of a link whose exit signal a partition cut (`lost_in_cut`).
                continue;
            }
            self.procs[l as usize].links.retain(|&x| x != p);
            self.signal(p, l, MsgKind::Exit { reason, link: true });
        }
    }

    /// Partition `i` was declared lost: every link across it fires with `:noconnection`
    /// on both ends (OTP: links across a connection that goes down).
    pub(super) fn links_lost(&mut self, i: usize) {
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
    }
}
