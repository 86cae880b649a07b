//! A process exits.

use super::{Effect, Outcome, Session, ROOT};
use crate::config::CrashMode;
use crate::ids::{MonitorId, ProcId};
use crate::message::{MsgKind, Reason};
use crate::process::{ExitCause, ExitClass, ProcState};
use crate::timer::TimerState;
use crate::trace::EventKind;

impl Session {
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
                    if self.config.crash == CrashMode::Fail =>
                {
                    self.outcome = Some(Outcome::Crash { proc: p });
                }
                _ => {}
            }
        }
        for l in links {
            if !self.alive(l) {
                // The half of a link whose exit signal a partition cut (`lost_in_cut`).
                continue;
            }
            self.procs[l as usize].links.retain(|&x| x != p);
            self.signal(p, l, MsgKind::Exit { reason, link: true });
        }
        for m in 0..self.monitors.len() {
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
}
