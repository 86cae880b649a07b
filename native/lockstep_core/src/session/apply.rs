//! Applying a pending operation.

use super::{Applied, MonitorRec, Outcome, RawDecision, Session};
use crate::ids::{MonitorId, MsgId, ProcId};
use crate::message::{Message, MsgKind, MsgState, Reason, Target};
use crate::op::{ClusterOp, Op, OpResult};
use crate::process::{ExitCause, ProcState, Process};
use crate::strategy::Strategy;
use crate::timer::{TimerKind, TimerState};
use crate::trace::{EventKind, SendFate};

impl Session {
    /// Performs `p`'s pending operation and makes it the running process.
    pub(super) fn apply(&mut self, p: ProcId, strategy: &mut dyn Strategy) -> Applied {
        let pending = self.procs[p as usize].pending;
        let result = match pending {
            Op::Start => {
                self.record(p, EventKind::Start);
                OpResult::Started
            }
            Op::Yield => {
                self.record(p, EventKind::Yield);
                OpResult::Yielded
            }
            Op::Receive { .. } => {
                let proc = &mut self.procs[p as usize];
                let last = proc.timed_out;
                proc.timed_out = false;
                proc.last_attempt = last;
                OpResult::ReceiveAttempt { last }
            }
            Op::Random { n } => {
                let view = self.view();
                match strategy.random(&view, n) {
                    Ok(value) => {
                        self.decisions.push(RawDecision::Random(value));
                        self.record(p, EventKind::Random { n, value });
                        OpResult::Random(value)
                    }
                    Err(d) => {
                        self.outcome = Some(Outcome::Diverged(d));
                        return Applied::Ended;
                    }
                }
            }
            Op::Spawn { link } | Op::SpawnOn { link, .. } => {
                let node = match pending {
                    Op::SpawnOn { node, .. } => Some(node),
                    _ => None,
                };
                let child = self.procs.len() as ProcId;
                let parent = &mut self.procs[p as usize];
                parent.children += 1;
                let name = parent.name.child(parent.children);
                let mut proc = Process::new(name, Some(p));
                proc.node = node.unwrap_or(parent.node);
                if !self.cluster.is_up(proc.node) {
                    // Spawning on a node that is down yields a pid that is already dead.
                    proc.state = ProcState::Exited;
                    proc.exit = Some(ExitCause::NodeDown);
                    proc.exit_reason = Reason::NoConnection;
                    self.procs.push(proc);
                    self.record(p, EventKind::Spawn { child, link: false });
                    if link {
                        self.signal(
                            child,
                            p,
                            MsgKind::Exit {
                                reason: Reason::NoConnection,
                                link: true,
                            },
                        );
                    }
                    return self.run(p, OpResult::Spawned { child });
                }
                if link {
                    proc.links.push(p);
                    self.procs[p as usize].links.push(child);
                }
                self.procs.push(proc);
                self.ready.insert(child);
                self.record(p, EventKind::Spawn { child, link });
                OpResult::Spawned { child }
            }
            Op::Send { to } => {
                if let Target::Name(name) | Target::Global(name) = to {
                    if self.resolve(p, to).is_none() {
                        let global = matches!(to, Target::Global(_));
                        self.record(p, EventKind::SendToUnregistered { name, global });
                        return self.run(p, OpResult::Unregistered);
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
                        return self.run(
                            p,
                            OpResult::Sent {
                                msg,
                                fate: SendFate::Dropped,
                            },
                        );
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
                            self.msgs[msg as usize].state = MsgState::InMailbox;
                            self.add_to_mailbox(t);
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
            Op::Link { to } => {
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
                    return self.run(p, OpResult::NoProc);
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
            Op::Unlink { to } => {
                self.procs[p as usize].links.retain(|&x| x != to);
                self.procs[to as usize].links.retain(|&x| x != p);
                self.drop_link_exits(to, p);
                self.record(p, EventKind::Unlink { to });
                OpResult::Done
            }
            Op::Monitor { target } => {
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
                self.monitors.push(MonitorRec {
                    owner: p,
                    target,
                    active: true,
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
            Op::Demonitor { monitor } => {
                if let Some(m) = monitor {
                    if let Some(rec) = self.monitors.get_mut(m as usize) {
                        if rec.owner == p {
                            rec.active = false;
                            self.record(p, EventKind::Demonitor { monitor: m });
                        }
                    }
                }
                OpResult::Done
            }
            Op::TrapExit { on } => {
                let proc = &mut self.procs[p as usize];
                let was = proc.trap_exit;
                proc.trap_exit = on;
                self.record(p, EventKind::TrapExit { on });
                OpResult::WasTrapping(was)
            }
            Op::ExitSignal { to, reason } => {
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
                if !self.alive(p) {
                    // It killed itself: it parks and dies on the Kill effect.
                    return Applied::Skip;
                }
                OpResult::Done
            }
            Op::Alive { of } => {
                // OTP: is_process_alive/1 answers after the caller's earlier signals to
                // `of` have reached it (so `exit(pid, :kill)` then `alive?(pid)` is false).
                if of != p && self.alive(of) {
                    self.flush_pair(p, of);
                }
                let alive = self.alive(of);
                self.record(p, EventKind::Alive { of, alive });
                OpResult::Alive(alive)
            }
            Op::Register { name, proc } => {
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
            Op::Unregister { name } => {
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
            Op::Whereis { name } => {
                let found = self.resolve(p, Target::Name(name));
                self.record(p, EventKind::Whereis { name, found });
                OpResult::Found(found)
            }
            Op::Registered => OpResult::Names,
            Op::Now => {
                self.record(p, EventKind::Now { ms: self.now });
                OpResult::Now(self.now)
            }
            Op::Sleep { .. } => OpResult::Done,
            Op::SendAfter { to, ms } => {
                let timer = self.add_timer(p, ms, TimerKind::SendAfter { to });
                self.record(p, EventKind::TimerStarted { timer, ms });
                OpResult::TimerSet { timer }
            }
            Op::CancelTimer { timer } => {
                let left = match timer.and_then(|t| self.timers.get(t as usize).map(|x| (t, *x))) {
                    Some((t, x)) if x.state == TimerState::Pending => {
                        self.timers[t as usize].state = TimerState::Cancelled;
                        let left = x.deadline.saturating_sub(self.now);
                        self.record(
                            p,
                            EventKind::TimerCancelled {
                                timer: t,
                                left: Some(left),
                            },
                        );
                        Some(left)
                    }
                    _ => None,
                };
                OpResult::Cancelled(left)
            }
            Op::Nif { object } => {
                self.record(p, EventKind::Nif { object });
                OpResult::Done
            }
            Op::Cluster(
                op @ (ClusterOp::GlobalRegister { .. } | ClusterOp::GlobalUnregister(_)),
            ) if self.cluster.global_lock_stalled(self.node_of(p)) => {
                // OTP 25 takes `global`'s lock on every known node first
                // (`trans_all_known/1`): with one of them cut off and not yet declared down
                // the lock request waits, until the heal or the tick.
                let name = match op {
                    ClusterOp::GlobalRegister { name, .. } | ClusterOp::GlobalUnregister(name) => {
                        name
                    }
                    _ => unreachable!("matched above"),
                };
                self.set_state(p, ProcState::Blocked);
                self.record(p, EventKind::GlobalLockWait { name });
                return Applied::Skip;
            }
            Op::Cluster(op) => {
                let result = self.apply_cluster(p, op, strategy);
                if matches!(self.outcome, Some(Outcome::Diverged(_))) {
                    return Applied::Ended;
                }
                if !self.alive(p) {
                    // It stopped its own node.
                    return Applied::Skip;
                }
                result
            }
        };
        self.run(p, result)
    }
}
