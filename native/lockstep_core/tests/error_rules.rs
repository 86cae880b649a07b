//! Concuerror's error rules as options (SPEC §1 `crash: :strict`, `blocked_at_end:`),
//! through the engine's public API: programs whose verdict differs between the rules.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Match, Prefer, Program, Target,
    DELIVERIES,
};
use lockstep_core::{
    BlockedAtEnd, Config, CrashMode, DeliveryMode, EventKind, ExitCause, Outcome, ProcState, Reason,
};

const CHILD: Target = Target::Child(1);

fn exit(to: Target, reason: Reason) -> Action {
    Action::Exit { to, reason }
}

fn spawn_link(script: usize) -> Action {
    Action::Spawn { script, link: true }
}

fn with_blocked(blocked_at_end: BlockedAtEnd) -> Config {
    Config {
        blocked_at_end,
        ..config(DeliveryMode::Instant, CrashMode::Fail)
    }
}

/// The root spawns a child that waits for a message, then sends it an exit signal.
fn killer(reason: Reason) -> Program {
    Program::new(vec![
        vec![spawn(1), exit(CHILD, reason)],
        vec![Action::Receive(Match::Any)],
    ])
}

#[test]
fn a_process_killed_by_an_abnormal_signal_passes_under_fail_and_is_a_crash_under_strict() {
    for delivery in DELIVERIES {
        for reason in [Reason::Given(0), Reason::Kill] {
            let r = run_with(
                &killer(reason),
                config(delivery, CrashMode::Fail),
                Prefer::runs(),
            );
            assert_eq!(r.outcome, Outcome::Pass, "{delivery:?} {reason:?}");
            let r = run_with(
                &killer(reason),
                config(delivery, CrashMode::Strict),
                Prefer::runs(),
            );
            assert_eq!(
                r.outcome,
                Outcome::Killed { proc: 1, from: 0 },
                "{delivery:?} {reason:?}"
            );
            assert_eq!(r.outcome.kind(), "crash");
            assert!(matches!(
                r.exit_of(&[1]),
                Some(ExitCause::Signal { from: 0, reason: got }) if got == reason
            ));
        }
    }
}

#[test]
fn shutdown_and_normal_signals_are_no_crash_under_strict() {
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Strict);
        // `exit(pid, :shutdown)` kills the child, as any reason but `:normal` does…
        let r = run_with(&killer(Reason::Shutdown(0)), cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert!(matches!(r.exit_of(&[1]), Some(ExitCause::Signal { .. })));
        // …and `:normal` does not kill a process that does not trap exits.
        let program = Program::new(vec![
            vec![
                spawn(1),
                exit(CHILD, Reason::Normal),
                exit(CHILD, Reason::Kill),
            ],
            vec![Action::Receive(Match::Any)],
        ]);
        let r = run_with(&program, cfg, Prefer::runs());
        assert!(r
            .events_of(&[1])
            .contains(&EventKind::ExitIgnored { from: 0 }));
        assert_eq!(r.outcome, Outcome::Killed { proc: 1, from: 0 });
    }
}

#[test]
fn under_strict_a_link_carries_the_verdict_of_the_reason_it_carries() {
    // P.1 links to P.1.1 and waits; P.1.1 ends with `exit(:shutdown)` (no crash) or crashes.
    let program = |end: Action| {
        Program::new(vec![
            vec![spawn(1)],
            vec![spawn_link(2), Action::Receive(Match::Any)],
            vec![end],
        ])
    };
    let cfg = config(DeliveryMode::Instant, CrashMode::Strict);
    let r = run_with(&program(Action::Shutdown), cfg, Prefer::runs());
    assert!(matches!(
        r.exit_of(&[1]),
        Some(ExitCause::Signal { from: 2, .. })
    ));
    assert_eq!(r.outcome, Outcome::Pass);
    // A crash is reported as the crash, not as the kill it causes.
    let r = run_with(&program(Action::Crash), cfg, Prefer::runs());
    assert_eq!(r.outcome, Outcome::Crash { proc: 2 });
    // With the crash ignored, the link still kills P.1 with an abnormal reason.
    let ignore = config(DeliveryMode::Instant, CrashMode::Ignore);
    let r = run_with(&program(Action::Crash), ignore, Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
}

#[test]
fn a_root_killed_by_a_signal_is_an_exception_under_every_crash_mode() {
    let program = Program::new(vec![
        vec![spawn(1), Action::Receive(Match::Any)],
        vec![exit(Target::Parent, Reason::Given(0))],
    ]);
    for crash in [CrashMode::Fail, CrashMode::Ignore, CrashMode::Strict] {
        let r = run_with(
            &program,
            config(DeliveryMode::Instant, crash),
            Prefer::runs(),
        );
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 }, "{crash:?}");
    }
}

#[test]
fn a_server_left_blocked_after_the_root_returns_passes_under_kill_and_is_a_deadlock_under_fail() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
        ],
        vec![Action::Receive(Match::Any), Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let kill = Config {
            delivery,
            ..with_blocked(BlockedAtEnd::Kill)
        };
        let r = run_with(&program, kill, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.received_by(&[1]), [1], "the drain still delivers");
        let fail = Config {
            delivery,
            ..with_blocked(BlockedAtEnd::Fail)
        };
        let r = run_with(&program, fail, Prefer::runs());
        assert_eq!(r.outcome, Outcome::BlockedAtEnd { blocked: vec![1] });
        assert_eq!(r.outcome.kind(), "deadlock");
        assert_eq!(r.final_states[1], ProcState::Blocked);
    }
}

#[test]
fn under_blocked_at_end_fail_timers_fire_during_the_drain() {
    // A process in `receive … after 100` is not blocked: its timer fires, it times out and
    // ends. One sleeping, then waiting forever, is blocked once its sleep is over.
    let after = Program::new(vec![
        vec![spawn(1)],
        vec![Action::ReceiveAfter(Match::Any, 100)],
    ]);
    let r = run_with(&after, with_blocked(BlockedAtEnd::Fail), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.now, 100);
    assert_eq!(r.final_states, [ProcState::Exited, ProcState::Exited]);
    // Under `:kill` the timer is not fired: the process is killed, still waiting.
    let r = run_with(&after, with_blocked(BlockedAtEnd::Kill), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.now, 0);
    assert_eq!(r.final_states[1], ProcState::Blocked);

    let sleeper = Program::new(vec![
        vec![spawn(1)],
        vec![Action::Sleep(30), Action::Receive(Match::Any)],
    ]);
    let r = run_with(&sleeper, with_blocked(BlockedAtEnd::Fail), Prefer::runs());
    assert_eq!(r.outcome, Outcome::BlockedAtEnd { blocked: vec![1] });
    assert_eq!(r.now, 30);
}

#[test]
fn a_deadlock_before_the_root_returns_is_the_same_under_both_rules() {
    let program = Program::new(vec![vec![spawn(1), Action::Receive(Match::Any)], vec![]]);
    for rule in [BlockedAtEnd::Kill, BlockedAtEnd::Fail] {
        let r = run_with(&program, with_blocked(rule), Prefer::runs());
        assert_eq!(
            r.outcome,
            Outcome::Deadlock { blocked: vec![0] },
            "{rule:?}"
        );
    }
}

#[test]
fn every_interleaving_of_a_left_behind_waiter_is_a_deadlock_under_fail_and_a_pass_under_kill() {
    // The waiter may or may not get its message before the root returns; either way it is
    // left waiting for the second one.
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::Yield,
        ],
        vec![Action::Receive(Match::Any), Action::Receive(Match::Any)],
    ]);
    for_many_interleavings(&program, with_blocked(BlockedAtEnd::Fail), 20, |r| {
        assert_eq!(r.outcome, Outcome::BlockedAtEnd { blocked: vec![1] });
    });
    for_many_interleavings(&program, with_blocked(BlockedAtEnd::Kill), 20, |r| {
        assert_eq!(r.outcome, Outcome::Pass);
    });
}
