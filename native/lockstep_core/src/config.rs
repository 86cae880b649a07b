//! An iteration's knobs, as the engine sees them (SPEC §1 `:max_steps`, `:delivery`,
//! `:crash`, `:timers`).

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub max_steps: u64,
    pub delivery: DeliveryMode,
    pub crash: CrashMode,
    pub timers: TimerMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_steps: 10_000,
            delivery: DeliveryMode::Instant,
            crash: CrashMode::Fail,
            timers: TimerMode::OnIdle,
        }
    }
}
