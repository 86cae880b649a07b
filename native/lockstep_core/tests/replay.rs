//! Replay (SPEC §6): a saved schedule reproduces its iteration exactly, a program that no
//! longer follows it is reported as a divergence, and a prefix can be completed at random
//! (what shrinking needs).

mod common;

use common::{receive_any, run, send_parent, spawn, Action, Match, Program, StrategyKind, Target};
use lockstep_core::schedule::{decode, encode};
use lockstep_core::strategy::Replay;
use lockstep_core::{
    iteration_seed, Config, CrashMode, Decision, DeliveryMode, Divergence, Outcome, ProcName,
    TimerMode,
};

fn run_p(path: &[u32]) -> Decision {
    Decision::Run(ProcName::from_path(path.to_vec()))
}

/// Racing sends, a selective receive, timers racing messages, a random value and a crash
/// (a failure unless crashes are ignored); with delayed delivery and timers that may fire
/// at any step, every kind of decision.
fn racy() -> Program {
    Program::new(vec![
        [
            vec![
                spawn(1),
                spawn(2),
                Action::Send {
                    to: Target::Child(2),
                    payload: 9,
                },
                Action::Random(4),
                Action::Receive(Match::Payload(1)),
            ],
            receive_any(1),
        ]
        .concat(),
        vec![send_parent(1), Action::Sleep(5), send_parent(2)],
        vec![
            send_parent(3),
            Action::ReceiveAfter(Match::Any, 3),
            Action::Crash,
        ],
    ])
}

/// Between them, every kind of outcome, depending on the interleaving.
fn programs() -> Vec<(Program, Config)> {
    let racy = racy();
    let spinning = Program::new(vec![
        vec![spawn(1), Action::SpinReceive(Match::Payload(4))],
        vec![Action::Yield, Action::Yield, send_parent(4)],
    ]);
    // Deadlocks when P's first receive takes P.1's payload 2, which the second one needs.
    let greedy = Program::new(vec![
        [
            vec![spawn(1), spawn(2), Action::Receive(Match::Any)],
            vec![Action::Receive(Match::Payload(2))],
        ]
        .concat(),
        vec![send_parent(2)],
        vec![send_parent(3)],
    ]);
    // P dies with its linked child if that crashes before P returns.
    let linked_crash = Program::new(vec![
        vec![
            Action::Spawn {
                script: 1,
                link: true,
            },
            Action::Yield,
            Action::Yield,
        ],
        vec![Action::Yield, Action::Crash],
    ]);
    let ignore_crashes = Config {
        crash: CrashMode::Ignore,
        ..Config::default()
    };
    vec![
        (greedy, Config::default()),
        (linked_crash, ignore_crashes),
        (racy.clone(), Config::default()),
        (
            racy,
            Config {
                delivery: DeliveryMode::Delayed,
                crash: CrashMode::Ignore,
                timers: TimerMode::Anytime,
                ..Config::default()
            },
        ),
        (
            spinning,
            Config {
                max_steps: 12,
                ..Config::default()
            },
        ),
    ]
}

#[test]
fn replaying_a_finished_iteration_gives_the_same_outcome_schedule_and_events() {
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (program, config) in programs() {
        for kind in StrategyKind::all() {
            let mut strategy = kind.build();
            for i in 1..=40 {
                let seed = iteration_seed(3, i);
                let original = run(&program, config, strategy.as_mut(), seed);
                kinds_seen.insert(original.outcome.kind());
                let replayed = run(
                    &program,
                    config,
                    &mut Replay::new(original.schedule.clone()),
                    seed,
                );
                assert_eq!(replayed.outcome.kind(), original.outcome.kind());
                assert_eq!(replayed.schedule, original.schedule);
                assert_eq!(replayed.events, original.events);
                assert_eq!(replayed, original);
            }
        }
    }
    // The replays above covered every way an iteration can end.
    for kind in ["pass", "crash", "deadlock", "max_steps", "exception"] {
        assert!(kinds_seen.contains(kind), "no {kind} among {kinds_seen:?}");
    }
}

/// P spawns P.1, which sends P a message; P receives it. No contention: one schedule.
fn hand_off(child: Vec<Action>, root_receives: bool) -> Program {
    let mut root = vec![spawn(1)];
    if root_receives {
        root.push(Action::Receive(Match::Any));
    }
    Program::new(vec![root, child])
}

#[test]
fn a_modified_program_diverges_where_it_stops_following_the_schedule() {
    let original = run(
        &hand_off(vec![send_parent(1)], true),
        Config::default(),
        StrategyKind::Random.build().as_mut(),
        1,
    );
    assert_eq!(original.outcome, Outcome::Pass);
    assert_eq!(
        original.schedule,
        vec![run_p(&[]), run_p(&[]), run_p(&[1]), run_p(&[1]), run_p(&[])]
    );

    // P.1 now yields before sending: at step 5 the schedule says P receives, but only P.1
    // can go on.
    let changed = hand_off(vec![Action::Yield, send_parent(1)], true);
    let replayed = run(
        &changed,
        Config::default(),
        &mut Replay::new(original.schedule.clone()),
        1,
    );
    assert_eq!(
        replayed.outcome,
        Outcome::Diverged(Divergence {
            step: 5,
            expected: Some(run_p(&[])),
            got: vec![run_p(&[1])],
        })
    );

    // P no longer waits for the message: the program ends after 4 steps with a decision
    // left over, which is step 5's.
    let shorter = hand_off(vec![send_parent(1)], false);
    let replayed = run(
        &shorter,
        Config::default(),
        &mut Replay::new(original.schedule.clone()),
        1,
    );
    assert_eq!(
        replayed.outcome,
        Outcome::Diverged(Divergence {
            step: 5,
            expected: Some(run_p(&[])),
            got: vec![],
        })
    );

    // A schedule that runs out while the program still offers choices.
    let replayed = run(
        &hand_off(vec![send_parent(1)], true),
        Config::default(),
        &mut Replay::new(original.schedule[..3].to_vec()),
        1,
    );
    assert_eq!(
        replayed.outcome,
        Outcome::Diverged(Divergence {
            step: 4,
            expected: None,
            got: vec![run_p(&[1])],
        })
    );
}

#[test]
fn a_replayed_random_value_that_no_longer_fits_diverges() {
    let program = |n| Program::new(vec![vec![Action::Random(n)]]);
    let original = (0..)
        .map(|seed| {
            run(
                &program(10),
                Config::default(),
                StrategyKind::Random.build().as_mut(),
                seed,
            )
        })
        .find(|r| r.randoms[0][0] > 0)
        .expect("some seed draws a positive value");
    let value = original.randoms[0][0];
    assert_eq!(
        original.schedule,
        vec![run_p(&[]), run_p(&[]), Decision::Random(value)]
    );
    // Asking for a smaller range than the recorded value fits in.
    let replayed = run(
        &program(value),
        Config::default(),
        &mut Replay::new(original.schedule),
        0,
    );
    assert!(
        matches!(
            &replayed.outcome,
            Outcome::Diverged(Divergence { step: 2, expected: Some(Decision::Random(v)), .. }) if *v == value
        ),
        "{:?}",
        replayed.outcome
    );
}

#[test]
fn a_schedule_prefix_with_random_fallback_completes() {
    for (program, config) in programs() {
        let mut strategy = StrategyKind::Random.build();
        for i in 1..=40 {
            let seed = iteration_seed(8, i);
            let original = run(&program, config, strategy.as_mut(), seed);
            for cut in [0, original.schedule.len() / 3, original.schedule.len() / 2] {
                let prefix = original.schedule[..cut].to_vec();
                let mut replay = Replay::with_random_fallback(prefix.clone(), 21);
                let completed = run(&program, config, &mut replay, seed);
                assert!(
                    !matches!(completed.outcome, Outcome::Diverged(_)),
                    "prefix of {cut}: {:?}",
                    completed.outcome
                );
                assert_eq!(completed.schedule[..cut], prefix[..]);
                // The random continuation is itself reproducible.
                let mut again = Replay::with_random_fallback(prefix, 21);
                assert_eq!(run(&program, config, &mut again, seed), completed);
            }
            let mut whole = Replay::with_random_fallback(original.schedule.clone(), 21);
            assert_eq!(run(&program, config, &mut whole, seed), original);
        }
    }
}

#[test]
fn a_session_schedule_round_trips_through_its_encoding() {
    let program = racy();
    let config = Config {
        delivery: DeliveryMode::Delayed,
        timers: TimerMode::Anytime,
        ..Config::default()
    };
    let mut strategy = StrategyKind::Pct(3).build();
    let mut saw = [false; 4];
    for i in 1..=20 {
        let seed = iteration_seed(12, i);
        let original = run(&program, config, strategy.as_mut(), seed);
        for d in &original.schedule {
            saw[match d {
                Decision::Run(_) => 0,
                Decision::Deliver { .. } => 1,
                Decision::Random(_) => 2,
                Decision::Fire { .. } => 3,
            }] = true;
        }
        let decoded = decode(&encode(&original.schedule)).expect("a valid encoding");
        assert_eq!(decoded, original.schedule);
        let replayed = run(&program, config, &mut Replay::new(decoded), seed);
        assert_eq!(replayed, original);
    }
    assert_eq!(saw, [true; 4], "every kind of decision was encoded");
}
