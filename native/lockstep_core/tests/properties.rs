//! Random programs under random configurations and strategies. The driver checks the
//! session's step-by-step invariants on every call (at most one process running; only ready
//! processes offered; a blocked process woken only by a message that reached it, or its
//! timer firing, during the call; engine and driver mailboxes agree) and its
//! end-of-iteration invariants (nothing running; ready processes only after max_steps or a
//! failure; pass only when the root returned; a deadlock lists exactly the blocked
//! processes; per sender→receiver order kept). The properties below add termination,
//! determinism and replay on top.

mod common;

use common::{run, Action, Match, Program, RunResult, StrategyKind, Target};
use lockstep_core::strategy::Replay;
use lockstep_core::{Config, CrashMode, DeliveryMode, TimerMode};
use proptest::prelude::*;

const MAX_SCRIPTS: usize = 4;

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => Just(Target::Parent),
        4 => (1u32..=3).prop_map(Target::Child),
        1 => Just(Target::Myself),
        1 => Just(Target::Outside),
    ]
}

fn matcher() -> impl Strategy<Value = Match> {
    prop_oneof![Just(Match::Any), (0u32..3).prop_map(Match::Payload)]
}

fn action(scripts: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0..scripts, any::<bool>()).prop_map(|(script, link)| Action::Spawn { script, link }),
        4 => (target(), 0u32..3).prop_map(|(to, payload)| Action::Send { to, payload }),
        3 => matcher().prop_map(Action::Receive),
        1 => matcher().prop_map(Action::SpinReceive),
        1 => (matcher(), 0u64..20).prop_map(|(m, ms)| Action::ReceiveAfter(m, ms)),
        1 => (0u64..20).prop_map(Action::Sleep),
        1 => Just(Action::Yield),
        1 => (1u64..5).prop_map(Action::Random),
        1 => Just(Action::Crash),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (1..=MAX_SCRIPTS)
        .prop_flat_map(|n| proptest::collection::vec(proptest::collection::vec(action(n), 0..8), n))
        .prop_map(Program::new)
}

fn config() -> impl Strategy<Value = Config> {
    (
        1u64..300,
        prop_oneof![Just(DeliveryMode::Instant), Just(DeliveryMode::Delayed)],
        prop_oneof![Just(CrashMode::Fail), Just(CrashMode::Ignore)],
        prop_oneof![Just(TimerMode::OnIdle), Just(TimerMode::Anytime)],
    )
        .prop_map(|(max_steps, delivery, crash, timers)| Config {
            max_steps,
            delivery,
            crash,
            timers,
        })
}

fn strategy_kind() -> impl Strategy<Value = StrategyKind> {
    prop_oneof![
        Just(StrategyKind::Random),
        (1u32..5).prop_map(StrategyKind::Pct),
        Just(StrategyKind::Pos),
        (1u32..4, 0u64..30).prop_map(|(depth, switch_after)| StrategyKind::FairPct {
            depth,
            switch_after
        }),
        (1u32..4, 1u32..6).prop_map(|(d_min, d_max)| StrategyKind::IdPct { d_min, d_max }),
    ]
}

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
