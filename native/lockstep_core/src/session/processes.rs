//! Processes: spawning, exiting, `alive?`.
//!
//! A child is named after its parent and its spawn ordinal (`P.1.2`), so it has the same
//! name in every interleaving; it is `Ready` (holding `Op::Start`) until the strategy first
//! runs it. Spawning on a node that is down gives a pid that is already dead, and
//! `spawn_link` there brings the caller a `:noconnection` exit signal (OTP).
//!
//! A process exits when its own code ends (`Session::exit_with`), an exit signal kills it,
//! its node stops, the global registry kills it on a name clash, or something outside the
//! run kills it. `die` is that one path: the iteration fails if the root died abnormally or
//! (under `crash: :fail`) another process crashed on its own; the process loses its name,
//! its global names and its timers; its links get exit signals and its monitors `:DOWN`s,
//! with its reason (`:kill` is seen as `:killed`). A parked BEAM process must then be told
//! to die (`Effect::Kill`).
//!
//! `alive?` (is_process_alive/1) answers after the caller's earlier signals to the process
//! have reached it (erlang(3)), so `exit(pid, :kill)` then `alive?(pid)` is false.

use super::{Effect, Outcome, Session, ROOT};
use crate::config::CrashMode;
use crate::ids::{NodeId, ProcId};
use crate::message::{MsgKind, Reason};
use crate::op::OpResult;
use crate::process::{ExitCause, ExitClass, ProcState, Process};
use crate::timer::TimerState;
use crate::trace::EventKind;

impl Session {
    /// The seed of `p`'s `:rand` state: a function of the iteration's seed and `p`'s
    /// spawn-tree name alone, so a process draws the same numbers in every interleaving
    /// and in a replay, and two processes of one iteration draw different ones (SPEC §9).
    /// `None` for a process that does not exist.
    pub fn process_seed(&self, p: ProcId) -> Option<u64> {
        let name = self.procs.get(p as usize)?.name.path();
        // SplitMix64's finaliser over the seed and each ordinal of the name in turn.
        let mix = |z: u64| {
            let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut z = mix(self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        for &ordinal in name {
            z = mix(z ^ u64::from(ordinal).wrapping_add(0x9E37_79B9_7F4A_7C15));
        }
        Some(z)
    }

    /// `p` spawns a child, linked or not, on `node` (`None`: its own); `monitor`: and
    /// monitors it in the same step (spawn_monitor is atomic: the child cannot exit first).
    pub(super) fn spawn(
        &mut self,
        p: ProcId,
        link: bool,
        monitor: bool,
        node: Option<NodeId>,
    ) -> OpResult {
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
            if monitor {
                // Its node is down: the monitor fires `:noconnection` at once.
                self.add_monitor(p, child);
            }
            return OpResult::Spawned { child };
        }
        if link {
            proc.links.push(p);
            self.procs[p as usize].links.push(child);
        }
        self.procs.push(proc);
        self.choices.insert_run(child);
        self.record(p, EventKind::Spawn { child, link });
        if monitor {
            self.add_monitor(p, child);
        }
        OpResult::Spawned { child }
    }

    /// Marks `p` exited, fails the iteration if that is a failure, and sends its exit
    /// signals and `:DOWN`s. `kill_parked`: the BEAM process is parked and must be told.
    pub(super) fn die(&mut self, p: ProcId, cause: ExitCause, reason: Reason, kill_parked: bool) {
        if !self.alive(p) {
            return;
        }
        let reason = if reason == Reason::Kill {
            Reason::Killed
        } else {
            reason
        };
        if self.running == Some(p) {
            self.running = None;
        }
        self.set_state(p, ProcState::Exited);
        let entry = &mut self.procs[p as usize];
        entry.exit = Some(cause);
        entry.exit_reason = reason;
        let links = std::mem::take(&mut entry.links);
        let timers = [entry.sleep_timer.take(), entry.receive_timer.take()];
        let node = entry.node;
        if let Some(name) = entry.registered.take() {
            self.names.remove(&(node, name));
        }
        self.cluster.global_forget(p);
        for t in timers.into_iter().flatten() {
            self.timers[t as usize].state = TimerState::Cancelled;
        }
        if kill_parked {
            self.effects.push(Effect::Kill { proc: p, reason });
        }
        self.record(p, EventKind::Exit { cause });
        if p == ROOT {
            self.root_exited = true;
        }
        if self.outcome.is_none() {
            match cause {
                ExitCause::Own(ExitClass::Abnormal)
                | ExitCause::Signal { .. }
                | ExitCause::NameConflict
                    if p == ROOT =>
                {
                    self.outcome = Some(Outcome::Exception { proc: p });
                }
                ExitCause::External if p == ROOT => {
                    self.outcome = Some(Outcome::Exception { proc: p });
                }
                ExitCause::Own(ExitClass::Abnormal) | ExitCause::External
                    if self.config.crash != CrashMode::Ignore =>
                {
                    self.outcome = Some(Outcome::Crash { proc: p });
                }
                ExitCause::Signal { from, reason }
                    if self.config.crash == CrashMode::Strict && self.abnormal(reason) =>
                {
                    self.outcome = Some(Outcome::Killed { proc: p, from });
                }
                _ => {}
            }
        }
        self.exit_links(p, links, reason);
        self.exit_monitors(p, reason);
    }

    /// Concuerror's "abnormal exit": a reason other than `:normal`, `:shutdown` or
    /// `{:shutdown, _}`. A process's own exit reason is one of those exactly when its own
    /// code ended normally (`ExitClass::Normal`, which the adapter gives those three);
    /// the adapter numbers the shutdown reasons given to `exit/2` apart (`Shutdown`).
    pub(super) fn abnormal(&self, reason: Reason) -> bool {
        match reason {
            Reason::Normal | Reason::Shutdown(_) => false,
            Reason::ExitOf(q) => {
                self.procs[q as usize].exit != Some(ExitCause::Own(ExitClass::Normal))
            }
            Reason::Kill
            | Reason::Killed
            | Reason::NoProc
            | Reason::NoConnection
            | Reason::Given(_) => true,
        }
    }

    /// `alive?(of)` by `p`.
    pub(super) fn alive_after_signals(&mut self, p: ProcId, of: ProcId) -> OpResult {
        // OTP: is_process_alive/1 answers after the caller's earlier signals to
        // `of` have reached it (so `exit(pid, :kill)` then `alive?(pid)` is false).
        if of != p && self.alive(of) {
            self.flush_pair(p, of);
        }
        let alive = self.alive(of);
        self.record(p, EventKind::Alive { of, alive });
        OpResult::Alive(alive)
    }
}
