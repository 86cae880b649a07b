//! The basic operations — spawn, send, alive?, yield, random, nif_sync, a process's own
//! exit — and the engine's answers to misuse, through the engine's public API.

mod common;

use common::{
    config, run, run_with, spawn, Action, Match, Prefer, Program, Seen, StrategyKind, Target,
    DELIVERIES,
};
use lockstep_core::strategy::{RandomWalk, Replay};
use lockstep_core::{
    Config, CrashMode, Decision, DeliveryMode, EngineError, EventKind, ExitClass, Next, Op,
    OpResult, Outcome, ProcName, ProcState, SendFate, Session,
};

const CHILD: Target = Target::Child(1);

fn send(to: Target, payload: u32) -> Action {
    Action::Send { to, payload }
}

fn instant() -> Config {
    config(DeliveryMode::Instant, CrashMode::Fail)
}

fn run_p(path: &[u32]) -> Decision {
    Decision::Run(ProcName::from_path(path.to_vec()))
}

#[test]
fn children_are_named_after_the_spawn_tree() {
    let program = Program::new(vec![vec![spawn(1), spawn(1)], vec![spawn(2)], vec![]]);
    let r = run_with(&program, instant(), Prefer::runs());
    let names: Vec<String> = r.names.iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["P", "P.1", "P.2", "P.1.1", "P.2.1"]);
    assert_eq!(
        r.seen_by(&[]),
        [
            Seen::Result(OpResult::Spawned { child: 1 }),
            Seen::Result(OpResult::Spawned { child: 2 })
        ]
    );
    assert!(r.events_of(&[1]).contains(&EventKind::Start));
}

#[test]
fn a_spawned_child_counts_as_able_to_run_until_it_starts() {
    // The root returns at once; its child still runs during the drain.
    let program = Program::new(vec![vec![spawn(1)], vec![Action::Yield]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[1]), [Seen::Result(OpResult::Yielded)]);
    assert_eq!(r.final_states, [ProcState::Exited, ProcState::Exited]);
}

#[test]
fn a_send_lands_at_once_under_instant_delivery_and_is_in_flight_under_delayed() {
    let program = Program::new(vec![
        vec![spawn(1), send(CHILD, 4)],
        vec![Action::Receive(Match::Any)],
    ]);
    for (delivery, fate) in [
        (DeliveryMode::Instant, SendFate::Delivered),
        (DeliveryMode::Delayed, SendFate::InFlight),
    ] {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        let Seen::Result(OpResult::Sent { msg, fate: got }) = r.seen_by(&[])[1] else {
            panic!("{:?}", r.seen_by(&[]))
        };
        assert_eq!(got, fate);
        assert!(r.events_of(&[]).contains(&EventKind::Send {
            to: Some(1),
            msg,
            fate
        }));
        assert_eq!(r.received_by(&[1]), [4]);
        let delivered = r.schedule.contains(&Decision::Deliver {
            from: ProcName::root(),
            to: ProcName::root().child(1),
        });
        assert_eq!(delivered, delivery == DeliveryMode::Delayed);
    }
}

#[test]
fn a_send_to_an_exited_process_is_dropped_silently() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            send(CHILD, 1),
        ],
        vec![],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(matches!(
            r.seen_by(&[])[3],
            Seen::Result(OpResult::Sent {
                fate: SendFate::Dropped,
                ..
            })
        ));
        assert!(r.has_event(|e| matches!(
            e.kind,
            EventKind::Send {
                to: Some(1),
                fate: SendFate::Dropped,
                ..
            }
        )));
    }
}

#[test]
fn a_send_to_a_pid_outside_the_run_is_a_plain_send() {
    let program = Program::new(vec![vec![send(Target::Outside, 1)]]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert!(matches!(
            r.seen_by(&[])[0],
            Seen::Result(OpResult::Sent {
                fate: SendFate::Delivered,
                ..
            })
        ));
        assert!(r.has_event(|e| matches!(
            e.kind,
            EventKind::Send {
                to: None,
                fate: SendFate::Delivered,
                ..
            }
        )));
        assert!(r.effects.is_empty());
    }
}

#[test]
fn a_send_to_oneself_is_received() {
    let program = Program::new(vec![vec![
        send(Target::Myself, 3),
        Action::Receive(Match::Payload(3)),
    ]]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.received_by(&[]), [3]);
    }
}

#[test]
fn alive_is_true_for_a_live_process_and_oneself_and_false_once_it_exited() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Alive(CHILD),
            Action::Alive(Target::Myself),
            Action::Monitor(CHILD),
            send(CHILD, 1),
            Action::Receive(Match::Down),
            Action::Alive(CHILD),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        let seen = r.seen_by(&[]);
        assert_eq!(seen[1], Seen::Result(OpResult::Alive(true)));
        assert_eq!(seen[2], Seen::Result(OpResult::Alive(true)));
        assert_eq!(seen[6], Seen::Result(OpResult::Alive(false)));
        assert!(r.events_of(&[]).contains(&EventKind::Alive {
            of: 1,
            alive: false
        }));
    }
}

#[test]
fn nif_sync_is_a_sync_point_recorded_with_its_object() {
    let program = Program::new(vec![vec![Action::Nif(Some(42)), Action::Nif(None)]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[]),
        [Seen::Result(OpResult::Done), Seen::Result(OpResult::Done)]
    );
    let kinds = r.events_of(&[]);
    assert!(kinds.contains(&EventKind::Nif { object: Some(42) }));
    assert!(kinds.contains(&EventKind::Nif { object: None }));
    // Each is a step of its own: start, two operations, the exit's step ends nothing.
    assert_eq!(r.schedule, [run_p(&[]), run_p(&[]), run_p(&[])]);
}

#[test]
fn two_processes_racing_on_one_shared_object_are_explored_in_both_orders() {
    let toucher = |payload| vec![Action::Nif(Some(7)), send(Target::Parent, payload)];
    let program = Program::new(vec![
        vec![
            spawn(1),
            spawn(2),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
        ],
        toucher(1),
        toucher(2),
    ]);
    let mut orders = std::collections::BTreeSet::new();
    common::for_many_interleavings(&program, instant(), 30, |r| {
        let first = r
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Nif { .. }))
            .unwrap()
            .proc;
        orders.insert(r.names[first as usize].to_string());
    });
    assert_eq!(orders.len(), 2, "{orders:?}");
}

#[test]
fn yield_is_a_sync_point_with_no_effect() {
    let program = Program::new(vec![vec![Action::Yield]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [Seen::Result(OpResult::Yielded)]);
    assert!(r.events_of(&[]).contains(&EventKind::Yield));
}

#[test]
fn random_returns_the_strategys_value_and_records_it_in_the_schedule_and_trace() {
    let program = Program::new(vec![vec![Action::Random(5), Action::Random(1)]]);
    let r = run_with(&program, instant(), Prefer::runs().random_value(3));
    assert_eq!(
        r.seen_by(&[]),
        [
            Seen::Result(OpResult::Random(3)),
            Seen::Result(OpResult::Random(0))
        ]
    );
    assert_eq!(
        r.schedule,
        [
            run_p(&[]),
            run_p(&[]),
            Decision::Random(3),
            run_p(&[]),
            Decision::Random(0)
        ]
    );
    let kinds = r.events_of(&[]);
    assert!(kinds.contains(&EventKind::Random { n: 5, value: 3 }));
    assert!(kinds.contains(&EventKind::Random { n: 1, value: 0 }));
}

#[test]
fn random_values_are_replayed_from_the_schedule() {
    let program = Program::new(vec![
        vec![spawn(1), Action::Random(10), Action::Receive(Match::Any)],
        vec![
            Action::Random(10),
            Action::Random(10),
            send(Target::Parent, 1),
        ],
    ]);
    let mut values = std::collections::BTreeSet::new();
    let mut strategy = RandomWalk::new();
    for seed in 0..30 {
        let original = run(&program, instant(), &mut strategy, seed);
        values.extend(original.randoms.iter().flatten().copied());
        let replayed = run(
            &program,
            instant(),
            &mut Replay::new(original.schedule.clone()),
            seed ^ 0xff,
        );
        assert_eq!(replayed.randoms, original.randoms);
        assert_eq!(replayed, original);
    }
    assert!(values.len() > 5, "{values:?}");
    assert!(values.iter().all(|&v| v < 10));
}

#[test]
fn a_crash_of_a_non_root_process_fails_the_iteration_unless_crashes_are_ignored() {
    let program = Program::new(vec![
        vec![spawn(1), Action::Receive(Match::Any)],
        vec![Action::Crash],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Crash { proc: 1 });
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Ignore),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Deadlock { blocked: vec![0] });
}

#[test]
fn after_the_root_returns_in_flight_messages_are_delivered_and_a_late_crash_still_counts() {
    let program = Program::new(vec![
        vec![spawn(1), send(CHILD, 1)],
        vec![Action::Receive(Match::Any), Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(
            r.exit_of(&[]),
            Some(lockstep_core::ExitCause::Own(ExitClass::Normal))
        );
        assert_eq!(r.received_by(&[1]), [1]);
        assert_eq!(r.outcome, Outcome::Crash { proc: 1 }, "{delivery:?}");
    }
}

#[test]
fn a_root_crash_is_an_exception_and_a_blocked_root_with_nothing_to_do_a_deadlock() {
    let crash = Program::new(vec![vec![Action::Crash]]);
    let r = run_with(&crash, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
    let stuck = Program::new(vec![vec![Action::Receive(Match::Any)]]);
    let r = run_with(&stuck, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Deadlock { blocked: vec![0] });
    assert!(r.events_of(&[]).contains(&EventKind::Block));
}

#[test]
fn reaching_max_steps_ends_the_iteration() {
    let program = Program::new(vec![vec![Action::Yield; 20]]);
    let cfg = Config {
        max_steps: 5,
        ..instant()
    };
    let r = run_with(&program, cfg, Prefer::runs());
    assert_eq!(r.outcome, Outcome::MaxSteps);
    assert_eq!(r.metrics.steps, 5);
}

// The engine's answers to calls it cannot accept.

fn started_session(strategy: &mut Prefer) -> Session {
    let mut session = Session::new(Config::default(), strategy, 0);
    assert_eq!(session.start(strategy), Next::Wake(0, OpResult::Started));
    session
}

#[test]
fn only_the_running_process_may_call_the_engine() {
    let mut strategy = Prefer::runs();
    let mut session = started_session(&mut strategy);
    assert_eq!(
        session.sync(
            0,
            Op::Spawn {
                link: false,
                monitor: false
            },
            &mut strategy
        ),
        Ok(Next::Continue(OpResult::Spawned { child: 1 }))
    );
    assert_eq!(
        session.sync(1, Op::Yield, &mut strategy),
        Err(EngineError::NotRunning {
            proc: 1,
            state: ProcState::Ready
        })
    );
    assert_eq!(
        session.exit(1, ExitClass::Normal, &mut strategy),
        Err(EngineError::NotRunning {
            proc: 1,
            state: ProcState::Ready
        })
    );
    assert_eq!(
        session.sync(9, Op::Yield, &mut strategy),
        Err(EngineError::UnknownProcess(9))
    );
    assert_eq!(
        session.alias(1, 1),
        Err(EngineError::NotRunning {
            proc: 1,
            state: ProcState::Ready
        })
    );
    // The refused calls changed nothing: P is still the one running.
    assert_eq!(session.running(), Some(0));
}

#[test]
fn operations_on_unknown_processes_and_a_zero_random_bound_are_refused() {
    let mut strategy = Prefer::runs();
    let mut session = started_session(&mut strategy);
    for op in [
        Op::Link { to: 3 },
        Op::Unlink { to: 3 },
        Op::Monitor { target: 3 },
        Op::ExitSignal {
            to: 3,
            reason: lockstep_core::Reason::Kill,
        },
        Op::Alive { of: 3 },
        Op::Register { name: 1, proc: 3 },
        Op::Send {
            to: lockstep_core::Target::Proc(3),
        },
    ] {
        assert_eq!(
            session.sync(0, op, &mut strategy),
            Err(EngineError::UnknownProcess(3)),
            "{op:?}"
        );
    }
    assert_eq!(
        session.sync(0, Op::Random { n: 0 }, &mut strategy),
        Err(EngineError::BadRandomBound)
    );
    assert_eq!(session.running(), Some(0));
    assert_eq!(session.step(), 1);
}

/// `Op::Start` is a spawned process's first pending operation; no process announces it.
#[test]
fn announcing_start_is_refused_and_changes_nothing() {
    let mut strategy = Prefer::runs();
    let mut session = started_session(&mut strategy);
    assert_eq!(
        session.sync(0, Op::Start, &mut strategy),
        Err(EngineError::StartAnnounced(0))
    );
    assert_eq!(session.running(), Some(0));
    assert_eq!(session.step(), 1);
}

#[test]
fn consuming_a_message_not_in_ones_mailbox_is_refused() {
    let mut strategy = Prefer::runs();
    let mut session = started_session(&mut strategy);
    assert_eq!(session.consumed(0, 0), Err(EngineError::UnknownMessage(0)));
    session
        .sync(
            0,
            Op::Spawn {
                link: false,
                monitor: false,
            },
            &mut strategy,
        )
        .unwrap();
    let Ok(Next::Continue(OpResult::Sent { msg, .. })) = session.sync(
        0,
        Op::Send {
            to: lockstep_core::Target::Proc(1),
        },
        &mut strategy,
    ) else {
        panic!("the send went through")
    };
    // It is in P.1's mailbox, not P's.
    assert_eq!(
        session.consumed(0, msg),
        Err(EngineError::NotInMailbox { proc: 0, msg })
    );
}

#[test]
fn an_aborted_iteration_reports_who_was_running_and_answers_ended_afterwards() {
    let mut strategy = Prefer::runs();
    let mut session = started_session(&mut strategy);
    session.abort();
    assert_eq!(
        session.outcome(),
        Some(&Outcome::Aborted { running: Some(0) })
    );
    assert_eq!(session.sync(0, Op::Yield, &mut strategy), Ok(Next::Ended));
    assert_eq!(
        session.exit(0, ExitClass::Normal, &mut strategy),
        Ok(Next::Ended)
    );
    // A second abort keeps the first outcome.
    session.abort();
    assert_eq!(
        session.outcome(),
        Some(&Outcome::Aborted { running: Some(0) })
    );
}

#[test]
fn every_strategy_replays_its_own_runs_of_a_program_using_every_basic_operation() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            spawn(1),
            Action::Random(3),
            Action::Nif(Some(1)),
            Action::Alive(CHILD),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
        ],
        vec![Action::Nif(Some(1)), Action::Yield, send(Target::Parent, 1)],
    ]);
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        for kind in StrategyKind::all() {
            let mut strategy = kind.build();
            for seed in 0..10 {
                let original = run(&program, cfg, strategy.as_mut(), seed);
                assert_eq!(original.outcome, Outcome::Pass);
                let replayed = run(
                    &program,
                    cfg,
                    &mut Replay::new(original.schedule.clone()),
                    seed,
                );
                assert_eq!(replayed, original, "{kind:?}");
            }
        }
    }
}

#[test]
fn a_process_that_sent_outside_the_run_waits_for_the_outside_before_a_timer_fires() {
    // The root sends to a process outside the run (a child it never spawned resolves to
    // none) and waits in a receive with a timeout. Nothing else can happen, so it is
    // picked to wait for the outside (the driver's outside answers at once) instead of
    // letting its timer fire over it.
    let program = Program::new(vec![vec![
        send(Target::Child(5), 1),
        Action::ReceiveAfter(Match::Any, 100),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[1], Seen::Result(OpResult::AwaitOutside));
    let events = r.events_of(&[]);
    assert!(events.contains(&EventKind::ReceiveExternal));
    assert!(!events.contains(&EventKind::ReceiveTimeout));
}

#[test]
fn a_blocked_process_that_sent_nothing_outside_is_a_deadlock_at_once() {
    let program = Program::new(vec![
        vec![spawn(1), send(CHILD, 1), Action::Receive(Match::Any)],
        vec![Action::Receive(Match::Payload(7))],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert!(
        matches!(r.outcome, Outcome::Deadlock { .. }),
        "{:?}",
        r.outcome
    );
}

/// SPEC §9: every managed process starts with `:rand` seeded from the iteration seed and
/// its spawn-tree name, so its draws replay exactly and do not depend on the interleaving.
#[test]
fn a_process_seed_depends_on_the_iteration_seed_and_the_spawn_tree_name_only() {
    let seeds = |iter_seed: u64| {
        let mut strategy = Prefer::runs();
        let mut session = Session::new(Config::default(), &mut strategy, iter_seed);
        assert_eq!(
            session.start(&mut strategy),
            Next::Wake(0, OpResult::Started)
        );
        for child in 1..=2 {
            assert_eq!(
                session.sync(
                    0,
                    Op::Spawn {
                        link: false,
                        monitor: false
                    },
                    &mut strategy
                ),
                Ok(Next::Continue(OpResult::Spawned { child }))
            );
        }
        assert_eq!(session.process_seed(3), None);
        [0, 1, 2].map(|p| session.process_seed(p).expect("the process exists"))
    };
    let [root, first, second] = seeds(7);
    assert_eq!(
        seeds(7),
        [root, first, second],
        "the same seed gives the same seeds"
    );
    assert!(root != first && first != second && root != second);
    let other = seeds(8);
    assert!(other.iter().all(|s| ![root, first, second].contains(s)));
}
