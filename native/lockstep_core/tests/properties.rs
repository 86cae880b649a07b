//! Random programs under random configurations and strategies. The driver checks the
//! session's step-by-step invariants on every call (at most one process running; only ready
//! processes offered; a blocked process woken only by a message that reached it, or its
//! timer firing, during the call; engine and driver mailboxes agree) and its
//! end-of-iteration invariants (nothing running; ready processes only after max_steps or a
//! failure; pass only when the root returned; a deadlock lists exactly the blocked
//! processes; per sender→receiver order kept; a process killed while parked told so). The
//! properties below add termination, determinism and replay on top — first over programs
//! of messages, receives, timers and crashes, then over programs that use every operation
//! of the engine (links, monitors, exit signals, names, aliases, timers, shared state, the
//! cluster and the global registry).

mod common;
mod generators;

use common::{run, Program, RunResult, StrategyKind};
use generators::{any_program, config, program, strategy_kind};
use lockstep_core::strategy::Replay;
use lockstep_core::Config;
use proptest::prelude::*;

/// Several iterations with one strategy instance, so state carried across iterations
/// (PCT's k, IDPCT's depth cycling) is exercised too.
fn iterations(program: &Program, config: Config, kind: StrategyKind, seed: u64) -> Vec<RunResult> {
    let mut strategy = kind.build();
    (0..3)
        .map(|i| run(program, config, strategy.as_mut(), seed.wrapping_add(i)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// `run` panics on any broken invariant and on a run that does not end within its
    /// step budget; it returning at all is the termination property.
    #[test]
    fn random_programs_keep_the_invariants(
        program in program(),
        config in config(),
        kind in strategy_kind(),
        seed in any::<u64>(),
    ) {
        for result in iterations(&program, config, kind, seed) {
            prop_assert!(result.metrics.steps <= config.max_steps);
            prop_assert_eq!(result.schedule.len() as u64 >= result.metrics.steps, true);
        }
    }

    #[test]
    fn same_program_strategy_and_seed_give_the_same_run(
        program in program(),
        config in config(),
        kind in strategy_kind(),
        seed in any::<u64>(),
    ) {
        let first = iterations(&program, config, kind, seed);
        let second = iterations(&program, config, kind, seed);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn replaying_a_schedule_reproduces_the_run(
        program in program(),
        config in config(),
        kind in strategy_kind(),
        seed in any::<u64>(),
    ) {
        for original in iterations(&program, config, kind, seed) {
            let mut replay = Replay::new(original.schedule.clone());
            let replayed = run(&program, config, &mut replay, seed);
            prop_assert_eq!(&replayed.outcome, &original.outcome);
            prop_assert_eq!(&replayed.schedule, &original.schedule);
            prop_assert_eq!(&replayed.events, &original.events);
            prop_assert_eq!(replayed, original);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// As `random_programs_keep_the_invariants`, over every operation: the driver's checks
    /// (effects, mailboxes, kills, states, per-pair order) hold after every call.
    #[test]
    fn random_programs_with_every_operation_keep_the_invariants(
        program in any_program(),
        config in config(),
        kind in strategy_kind(),
        seed in any::<u64>(),
    ) {
        for result in iterations(&program, config, kind, seed) {
            prop_assert!(result.metrics.steps <= config.max_steps);
        }
    }

    /// Same program, strategy and seed: the same run; and its schedule replays it exactly
    /// (events, results handed to every process, effects, outcome).
    #[test]
    fn random_programs_with_every_operation_repeat_and_replay_exactly(
        program in any_program(),
        config in config(),
        kind in strategy_kind(),
        seed in any::<u64>(),
    ) {
        let first = iterations(&program, config, kind, seed);
        prop_assert_eq!(&first, &iterations(&program, config, kind, seed));
        for original in first {
            let mut replay = Replay::new(original.schedule.clone());
            let replayed = run(&program, config, &mut replay, seed);
            prop_assert_eq!(&replayed.events, &original.events);
            prop_assert_eq!(replayed, original);
        }
    }
}
