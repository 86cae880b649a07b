//! Applying a picked process's pending operation: each kind of operation is handed to the
//! file of its concern; the few with no state of their own are applied here. Then the
//! process runs on to its next sync point with the result — unless applying its own
//! operation killed it (it parks and meets its Kill effect), made it wait (for `global`'s
//! lock), or ended the iteration (a failure ends the iteration when it happens, SPEC §1:
//! it gets no result and nothing is left running).

use super::{Applied, Outcome, Session};
use crate::ids::ProcId;
use crate::op::{Op, OpResult};
use crate::process::ProcState;
use crate::strategy::Strategy;
use crate::trace::EventKind;

impl Session {
    /// Performs `p`'s pending operation and makes it the running process.
    pub(super) fn apply(&mut self, p: ProcId, strategy: &mut dyn Strategy) -> Applied {
        let result = match self.procs[p as usize].pending {
            Op::Start => {
                self.record(p, EventKind::Start);
                OpResult::Started
            }
            Op::Yield => {
                self.record(p, EventKind::Yield);
                OpResult::Yielded
            }
            Op::Random { n } => {
                let view = self.view();
                match strategy.random(&view, n) {
                    Ok(value) => {
                        self.decide_random(value);
                        self.record(p, EventKind::Random { n, value });
                        OpResult::Random(value)
                    }
                    Err(d) => {
                        self.outcome = Some(Outcome::Diverged(d));
                        return Applied::Ended;
                    }
                }
            }
            Op::Nif { object, .. } => {
                self.record(p, EventKind::Nif { object });
                OpResult::Done
            }
            // processes.rs
            Op::Spawn { link, monitor } => self.spawn(p, link, monitor, None),
            Op::SpawnOn {
                link,
                monitor,
                node,
            } => self.spawn(p, link, monitor, Some(node)),
            Op::Alive { of } => self.alive_after_signals(p, of),
            // messages.rs, receive.rs
            Op::Send { to } => self.send(p, to),
            Op::Receive { .. } => self.receive_attempt(p),
            // signals.rs
            Op::Link { to } => self.link(p, to),
            Op::Unlink { to } => self.unlink(p, to),
            Op::TrapExit { on } => self.trap_exit(p, on),
            Op::ExitSignal { to, reason } => self.exit_signal(p, to, reason),
            // monitors.rs
            Op::Monitor { target } => self.add_monitor(p, target),
            Op::MonitorName { name, node } => self.add_monitor_by_name(p, name, node),
            Op::Demonitor { monitor } => self.demonitor(p, monitor),
            // names.rs
            Op::Register { name, proc } => self.register(p, name, proc),
            Op::Unregister { name } => self.unregister(p, name),
            Op::Whereis { name } => self.whereis(p, name),
            Op::Registered => OpResult::Names,
            // timers.rs (a sleep is applied once its timer has woken it)
            Op::Now => self.clock(p),
            Op::Sleep { .. } => OpResult::Done,
            Op::SendAfter { to, ms } => self.send_after(p, to, ms),
            Op::CancelTimer { timer, notify } => self.cancel_timer(p, timer, notify),
            Op::ReadTimer { timer, notify } => self.read_timer(p, timer, notify),
            // cluster.rs, globals.rs
            Op::Cluster(op) => {
                if self.waits_for_global_lock(p, op) {
                    return Applied::Skip;
                }
                self.cluster_op(p, op, strategy)
            }
        };
        self.run(p, result)
    }

    #[inline]
    pub(super) fn run(&mut self, p: ProcId, result: OpResult) -> Applied {
        if !self.alive(p) {
            // It died applying its own operation (an exit signal it could not trap): it
            // parks and meets its Kill effect.
            return Applied::Skip;
        }
        if self.outcome.is_some() {
            // Its operation ended the iteration (its exit signal killed the root, say). A
            // failure ends the iteration when it happens (SPEC §1): the caller does not go
            // on with a result, it stays parked until the teardown kills it, so no process
            // is Running once the iteration has ended.
            return Applied::Ended;
        }
        self.set_state(p, ProcState::Running);
        self.running = Some(p);
        debug_assert_eq!(
            self.procs
                .iter()
                .filter(|x| x.state == ProcState::Running)
                .count(),
            1
        );
        Applied::Run(result)
    }
}
