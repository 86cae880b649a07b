//! The adapter's side of the engine: the calls a managed process makes at a sync point
//! (announce an operation, end), the calls made from outside it (a process killed from
//! outside the run, an abort), and what each answers ([`Next`], with the [`Effect`]s to
//! perform first), plus read access to the run's tables for reports.
//!
//! Only the running process may call (`check_running`); once the iteration is over every
//! call answers `Ended` and changes nothing. Calls about one concern that are not sync
//! points live in that concern's file: `consumed` (receive.rs), `alias`/`unalias`
//! (messages.rs), `registered_names` and the ETS table names (names.rs), `nodes` and
//! `define_partition` (cluster.rs), `global_names` (globals.rs).

use super::{MonitorRec, RawDecision, Session};
use crate::config::Config;
use crate::ids::{MonitorId, MsgId, ProcId, TimerId};
use crate::message::{Message, Reason, Target};
use crate::op::{Op, OpResult};
use crate::process::{ExitCause, ExitClass, ProcState, Process};
use crate::schedule::Decision;
use crate::strategy::{Choice, Divergence, Strategy};
use crate::timer::Timer;
use crate::trace::{Event, EventKind};
use std::fmt;

/// What the adapter must do after an engine call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The caller was picked again: it goes on with this result.
    Continue(OpResult),
    /// Another process was picked: wake it with this result; the caller parks.
    Wake(ProcId, OpResult),
    /// The iteration is over ([`Session::outcome`] says how); the caller parks.
    Ended,
}

/// Side effects the adapter performs, in order, before acting on [`Next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Put in-flight user message `msg` (its payload is held by the adapter) into `to`'s
    /// real mailbox.
    Deliver { msg: MsgId, to: ProcId },
    /// Put the message made from signal `msg` (`{:EXIT, …}` or `{:DOWN, …}`, see
    /// [`Session::message`]) into `to`'s real mailbox.
    DeliverSignal { msg: MsgId, to: ProcId },
    /// The message `msg` that `send_after` timer `timer` sent when it fired reached `to`
    /// (at once on the timer's node, later from another one): deliver the timer's payload
    /// as that message.
    DeliverTimer {
        timer: TimerId,
        msg: MsgId,
        to: ProcId,
    },
    /// `send_after` timer `timer`, started to a pid outside the run, fired: send the
    /// timer's payload to that pid for real (`send/2` to a process the run does not manage).
    SendTimerOutside { timer: TimerId },
    /// `proc` died of an exit signal while parked: make its BEAM process exit.
    Kill { proc: ProcId, reason: Reason },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The root returned and nothing more could happen.
    Pass,
    /// The root raised, threw or exited abnormally, or was killed by an exit signal.
    Exception {
        proc: ProcId,
    },
    /// A non-root process crashed (with `CrashMode::Fail` or `Strict`).
    Crash {
        proc: ProcId,
    },
    /// A non-root process was killed by an exit signal from `from` with an abnormal
    /// reason (with `CrashMode::Strict`); its kind is a crash.
    Killed {
        proc: ProcId,
        from: ProcId,
    },
    /// The root had not returned and nothing could happen.
    Deadlock {
        blocked: Vec<ProcId>,
    },
    /// The root had returned, nothing more could happen (no timer left to fire), and these
    /// processes were still blocked (with `BlockedAtEnd::Fail`); its kind is a deadlock.
    BlockedAtEnd {
        blocked: Vec<ProcId>,
    },
    MaxSteps,
    /// A replayed schedule was not followed.
    Diverged(Divergence),
    /// Stopped from outside (the owner saw `running` go past its timeout without reaching a
    /// sync point).
    Aborted {
        running: Option<ProcId>,
    },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Exception { .. } => "exception",
            Outcome::Crash { .. } | Outcome::Killed { .. } => "crash",
            Outcome::Deadlock { .. } | Outcome::BlockedAtEnd { .. } => "deadlock",
            Outcome::MaxSteps => "max_steps",
            Outcome::Diverged(_) => "diverged",
            Outcome::Aborted { .. } => "aborted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    UnknownProcess(ProcId),
    UnknownMessage(MsgId),
    /// A process made a call while it was not the one allowed to run.
    NotRunning {
        proc: ProcId,
        state: ProcState,
    },
    /// A message was reported consumed by a process that is not its recipient or twice.
    NotInMailbox {
        proc: ProcId,
        msg: MsgId,
    },
    BadRandomBound,
    /// A process announced [`Op::Start`], which only a spawned process holds.
    StartAnnounced(ProcId),
    /// An alias was tied to a monitor the caller does not own.
    ForeignMonitor {
        proc: ProcId,
        monitor: MonitorId,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownProcess(p) => write!(f, "unknown process id {p}"),
            EngineError::UnknownMessage(m) => write!(f, "unknown message id {m}"),
            EngineError::NotRunning { proc, state } => write!(
                f,
                "process {proc} made a Lockstep call while {state:?}: only the running process may"
            ),
            EngineError::NotInMailbox { proc, msg } => {
                write!(f, "message {msg} is not in the mailbox of process {proc}")
            }
            EngineError::BadRandomBound => write!(f, "random/1 needs a positive bound"),
            EngineError::StartAnnounced(p) => {
                write!(f, "process {p} announced Start, which no process announces")
            }
            EngineError::ForeignMonitor { proc, monitor } => write!(
                f,
                "process {proc} tied an alias to monitor {monitor}, which it does not own"
            ),
        }
    }
}

impl std::error::Error for EngineError {}

impl Session {
    /// Makes the first decision (normally: start the root).
    pub fn start(&mut self, strategy: &mut dyn Strategy) -> Next {
        self.decide(None, strategy)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn running(&self) -> Option<ProcId> {
        self.running
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn procs(&self) -> &[Process] {
        &self.procs
    }

    pub fn proc(&self, id: ProcId) -> Option<&Process> {
        self.procs.get(id as usize)
    }

    pub fn message(&self, id: MsgId) -> Option<&Message> {
        self.msgs.get(id as usize)
    }

    pub fn monitor(&self, id: MonitorId) -> Option<&MonitorRec> {
        self.monitors.get(id as usize)
    }

    pub fn timer(&self, id: TimerId) -> Option<&Timer> {
        self.timers.get(id as usize)
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Drops the events recorded so far, keeping their buffer: for an adapter that keeps
    /// no trace and reads each event only once, as it is recorded, and whose strategy does
    /// not read them (`Strategy::reads_events`). A long iteration then
    /// records into the same few cache lines instead of growing a buffer step by step.
    pub fn forget_events(&mut self) {
        self.events.clear();
    }

    pub fn take_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// The decisions made so far, by symbolic name.
    pub fn schedule(&self) -> Vec<Decision> {
        let view = self.view();
        let mut randoms = self.randoms.iter();
        self.decisions
            .iter()
            .map(|d| match *d {
                RawDecision::Run(p) => view.decision_for(Choice::Run(p)),
                RawDecision::Deliver(m) => view.decision_for(Choice::Deliver(m)),
                RawDecision::Fire(t) => view.decision_for(Choice::Fire(t)),
                RawDecision::Random => {
                    Decision::Random(*randoms.next().expect("a value per random decision"))
                }
            })
            .collect()
    }

    /// The running process reached a sync point and announces `op`.
    pub fn sync(
        &mut self,
        caller: ProcId,
        op: Op,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        if self.is_over() {
            return Ok(Next::Ended);
        }
        self.check_running(caller)?;
        self.note_timeout(caller);
        match op {
            Op::Send {
                to: Target::Proc(p),
            }
            | Op::SendAfter {
                to: Target::Proc(p),
                ..
            }
            | Op::Link { to: p }
            | Op::Unlink { to: p }
            | Op::Monitor { target: p }
            | Op::ExitSignal { to: p, .. }
            | Op::Alive { of: p }
            | Op::Register { proc: p, .. } => self.check_proc(p)?,
            Op::Random { n: 0 } => return Err(EngineError::BadRandomBound),
            Op::Start => return Err(EngineError::StartAnnounced(caller)),
            _ => {}
        }
        self.running = None;
        let (pending, blocked) = match op {
            // `sleep(0)` is a yield.
            Op::Sleep { ms: 0 } => (Op::Yield, false),
            Op::Sleep { ms } => (op, self.start_sleep(caller, ms)),
            Op::Receive { retry, timeout } => (op, self.start_receive(caller, retry, timeout)),
            _ => (op, false),
        };
        self.procs[caller as usize].pending = pending;
        if blocked {
            self.set_state(caller, ProcState::Blocked);
            if matches!(pending, Op::Receive { .. }) {
                self.record(caller, EventKind::Block);
            }
        } else {
            self.set_state(caller, ProcState::Ready);
        }
        Ok(self.decide(Some(caller), strategy))
    }

    /// The running process's own code ended. `reason` is what linked and monitoring
    /// processes see (`Reason::Normal` or `Reason::ExitOf(caller)`); `class` decides
    /// whether it counts as a crash.
    pub fn exit_with(
        &mut self,
        caller: ProcId,
        class: ExitClass,
        reason: Reason,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        if self.is_over() {
            return Ok(Next::Ended);
        }
        self.check_running(caller)?;
        self.note_timeout(caller);
        self.running = None;
        self.die(caller, ExitCause::Own(class), reason, false);
        Ok(self.decide(None, strategy))
    }

    /// [`Session::exit_with`] with the reason implied by the class.
    pub fn exit(
        &mut self,
        caller: ProcId,
        class: ExitClass,
        strategy: &mut dyn Strategy,
    ) -> Result<Next, EngineError> {
        let reason = match class {
            ExitClass::Normal => Reason::Normal,
            ExitClass::Abnormal => Reason::ExitOf(caller),
        };
        self.exit_with(caller, class, reason, strategy)
    }

    /// A managed process died without telling us (killed from outside the run; the reason
    /// is unknown, so `:killed`).
    pub fn external_exit(&mut self, proc: ProcId, strategy: &mut dyn Strategy) -> Next {
        self.external_exit_with(proc, Reason::Killed, strategy)
    }

    /// A managed process is dying of an exit signal from outside the run, with `reason`
    /// (what its linked and monitoring processes see).
    pub fn external_exit_with(
        &mut self,
        proc: ProcId,
        reason: Reason,
        strategy: &mut dyn Strategy,
    ) -> Next {
        let Some(p) = self.procs.get(proc as usize) else {
            return Next::Ended;
        };
        if self.is_over() || !p.is_alive() {
            return Next::Ended;
        }
        let had_runner = self.running.is_some();
        self.die(proc, ExitCause::External, reason, false);
        if had_runner && self.running.is_none() {
            // The running process was the one killed, or died of its exit signal.
            self.decide(None, strategy)
        } else {
            // Someone else is running and will make the next decision.
            Next::Ended
        }
    }

    /// Stops the iteration from outside; later calls from its processes see it is over.
    pub fn abort(&mut self) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Aborted {
                running: self.running,
            });
        }
    }

    /// Ends the iteration for the strategy (once). A clean finish with a replayed schedule
    /// not used up becomes a divergence.
    pub fn finish(&mut self, strategy: &mut dyn Strategy) {
        if self.finished {
            return;
        }
        self.finished = true;
        let completed = matches!(self.outcome, Some(Outcome::Pass));
        let view = self.view();
        if let Err(d) = strategy.end_iteration(&view, completed) {
            self.outcome = Some(Outcome::Diverged(d));
        }
    }
}
