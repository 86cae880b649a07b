//! An iteration's knobs, as the engine sees them (SPEC §1 `:max_steps`, `:delivery`,
//! `:crash`, `:timers`, `:blocked_at_end`).

use crate::timer::TimerMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// A send lands in the target's mailbox at the step it is performed.
    Instant,
    /// Each message is in flight until the strategy delivers it; order is kept per
    /// sender→receiver pair.
    Delayed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// A non-root process crashing on its own fails the iteration.
    Fail,
    /// Crashes are normal behaviour.
    Ignore,
    /// As `Fail`, and a non-root process killed by an exit signal whose reason is abnormal
    /// (not `:normal`, `:shutdown` or `{:shutdown, _}`) fails it too: Concuerror's rule,
    /// so a run can be held against Concuerror's verdict on the same program.
    Strict,
}

/// What becomes of processes still blocked when the root has returned and nothing more
/// can happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockedAtEnd {
    /// They are killed quietly: the iteration passes.
    Kill,
    /// They are a deadlock (Concuerror's rule). Pending timers keep firing while the
    /// iteration drains, so a process waiting in `receive … after` is not blocked.
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub max_steps: u64,
    pub delivery: DeliveryMode,
    pub crash: CrashMode,
    pub timers: TimerMode,
    pub blocked_at_end: BlockedAtEnd,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_steps: 10_000,
            delivery: DeliveryMode::Instant,
            crash: CrashMode::Fail,
            timers: TimerMode::OnIdle,
            blocked_at_end: BlockedAtEnd::Kill,
        }
    }
}
