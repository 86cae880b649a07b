//! Registered names (`register`, `unregister`, `whereis`, `registered`, sends to a name)
//! and aliases (SPEC §2; per node, see `cluster.rs`), through the engine's public API.
//! `register/2` and `unregister/1` raise `ArgumentError` like OTP when they answer false,
//! so the driver ends the caller abnormally then.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Dest, Match, Prefer, Program, Seen,
    Target, DELIVERIES,
};
use lockstep_core::{
    CrashMode, DeliveryMode, EventKind, ExitCause, ExitClass, OpResult, Outcome, Reason, SendFate,
};

const CHILD: Target = Target::Child(1);
const NAME: u32 = 5;

fn register(who: Target) -> Action {
    Action::Register { name: NAME, who }
}

fn send(to: Target, payload: u32) -> Action {
    Action::Send { to, payload }
}

fn send_name(payload: u32) -> Action {
    Action::SendTo {
        dest: Dest::Name(NAME),
        payload,
    }
}

fn ok(b: bool) -> Seen {
    Seen::Result(OpResult::NameOk(b))
}

fn found(p: Option<u32>) -> Seen {
    Seen::Result(OpResult::Found(p))
}

fn instant() -> lockstep_core::Config {
    config(DeliveryMode::Instant, CrashMode::Fail)
}

#[test]
fn whereis_and_registered_see_a_registered_name() {
    let program = Program::new(vec![vec![
        register(Target::Myself),
        Action::Whereis(NAME),
        Action::Registered,
        Action::Whereis(6),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.seen_by(&[]),
        [
            ok(true),
            found(Some(0)),
            Seen::Names(vec![NAME]),
            found(None)
        ]
    );
    let kinds = r.events_of(&[]);
    assert!(kinds.contains(&EventKind::Register {
        name: NAME,
        target: 0,
        ok: true
    }));
    assert!(kinds.contains(&EventKind::Whereis {
        name: NAME,
        found: Some(0)
    }));
    assert!(kinds.contains(&EventKind::Whereis {
        name: 6,
        found: None
    }));
}

#[test]
fn register_can_name_another_process() {
    let program = Program::new(vec![
        vec![spawn(1), register(CHILD), Action::Whereis(NAME)],
        vec![],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[1..], [ok(true), found(Some(1))]);
    assert!(r.has_event(|e| e.proc == 0
        && e.kind
            == EventKind::Register {
                name: NAME,
                target: 1,
                ok: true
            }));
}

#[test]
fn registering_a_taken_name_fails_and_the_caller_raises() {
    let program = Program::new(vec![
        vec![
            register(Target::Myself),
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![register(Target::Myself)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[1]), [ok(false)]);
    assert_eq!(r.exit_of(&[1]), Some(ExitCause::Own(ExitClass::Abnormal)));
    assert_eq!(r.outcome, Outcome::Crash { proc: 1 });
    assert!(r.has_event(|e| e.proc == 1
        && e.kind
            == EventKind::Register {
                name: NAME,
                target: 1,
                ok: false
            }));
}

#[test]
fn a_process_that_already_has_a_name_cannot_take_a_second() {
    let program = Program::new(vec![vec![
        register(Target::Myself),
        Action::Register {
            name: 6,
            who: Target::Myself,
        },
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [ok(true), ok(false)]);
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
}

#[test]
fn registering_an_exited_process_fails() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            register(CHILD),
        ],
        vec![],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[3], ok(false));
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
}

#[test]
fn a_name_is_freed_when_its_holder_exits_or_is_killed() {
    let program = |ending: Vec<Action>| {
        Program::new(vec![
            [
                vec![
                    spawn(1),
                    Action::Monitor(CHILD),
                    register(CHILD),
                    Action::Whereis(NAME),
                ],
                ending,
                vec![
                    Action::Receive(Match::Down),
                    Action::Whereis(NAME),
                    Action::Registered,
                    register(Target::Myself),
                ],
            ]
            .concat(),
            vec![Action::Receive(Match::Any)],
        ])
    };
    for ending in [
        vec![send(CHILD, 1)],
        vec![Action::Exit {
            to: CHILD,
            reason: Reason::Kill,
        }],
    ] {
        for delivery in DELIVERIES {
            let r = run_with(
                &program(ending.clone()),
                config(delivery, CrashMode::Fail),
                Prefer::runs(),
            );
            assert_eq!(r.outcome, Outcome::Pass, "{delivery:?} {ending:?}");
            assert_eq!(r.seen_by(&[])[3], found(Some(1)));
            assert_eq!(
                r.seen_by(&[])[6..],
                [found(None), Seen::Names(vec![]), ok(true)]
            );
        }
    }
}

#[test]
fn unregister_frees_a_name_and_raises_on_a_free_one() {
    let program = Program::new(vec![vec![
        register(Target::Myself),
        Action::Unregister(NAME),
        Action::Whereis(NAME),
        Action::Registered,
        Action::Unregister(NAME),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[]),
        [
            ok(true),
            ok(true),
            found(None),
            Seen::Names(vec![]),
            ok(false)
        ]
    );
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
    let unregisters: Vec<EventKind> = r
        .events_of(&[])
        .into_iter()
        .filter(|k| matches!(k, EventKind::Unregister { .. }))
        .collect();
    assert_eq!(
        unregisters,
        [
            EventKind::Unregister {
                name: NAME,
                ok: true
            },
            EventKind::Unregister {
                name: NAME,
                ok: false
            }
        ]
    );
}

#[test]
fn unregister_can_free_another_processs_name() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Receive(Match::Payload(1)),
            Action::Unregister(NAME),
            Action::Whereis(NAME),
            send(CHILD, 2),
        ],
        vec![
            register(Target::Myself),
            send(Target::Parent, 1),
            Action::Receive(Match::Any),
            Action::Whereis(NAME),
        ],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[2..4], [ok(true), found(None)]);
    assert_eq!(r.seen_by(&[1])[3], found(None));
}

#[test]
fn a_send_to_a_registered_name_reaches_its_holder() {
    let program = Program::new(vec![
        vec![spawn(1), Action::Receive(Match::Payload(1)), send_name(2)],
        vec![
            register(Target::Myself),
            send(Target::Parent, 1),
            Action::Receive(Match::Payload(2)),
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.received_by(&[1]), [2]);
        assert!(
            r.has_event(|e| e.proc == 0 && matches!(e.kind, EventKind::Send { to: Some(1), .. }))
        );
    }
}

#[test]
fn a_send_to_an_unregistered_name_raises_in_the_sender() {
    let program = Program::new(vec![vec![send_name(1)]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [Seen::Result(OpResult::Unregistered)]);
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
    assert!(r.has_event(|e| e.kind
        == EventKind::SendToUnregistered {
            name: NAME,
            global: false
        }));
}

#[test]
fn a_name_is_resolved_when_the_send_is_performed_not_when_it_is_announced() {
    // P announces the send before P.1 has registered the name; the newest-first strategy
    // lets P.1 start and register before P's send is performed.
    let program = Program::new(vec![
        vec![spawn(1), send_name(1)],
        vec![register(Target::Myself), Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs().newest_first());
    assert_eq!(r.outcome, Outcome::Pass);
    assert!(matches!(
        r.seen_by(&[])[1],
        Seen::Result(OpResult::Sent { .. })
    ));
    assert_eq!(r.received_by(&[1]), [1]);
}

#[test]
fn a_whereis_then_register_race_is_reachable_and_exactly_one_registration_wins() {
    // Two children each register the name unless someone holds it already.
    // Each stays alive (holding the name, if it won) until the run ends.
    let contender = vec![
        Action::Whereis(NAME),
        register(Target::Myself),
        Action::Receive(Match::Any),
    ];
    let program = Program::new(vec![vec![spawn(1), spawn(1)], contender]);
    let mut failed = 0;
    for_many_interleavings(
        &program,
        config(DeliveryMode::Instant, CrashMode::Ignore),
        40,
        |r| {
            let results: Vec<&Seen> = [&[1][..], &[2]].iter().map(|p| &r.seen_by(p)[1]).collect();
            let wins = results.iter().filter(|s| ***s == ok(true)).count();
            assert_eq!(wins, 1, "{results:?}");
            // Both saw the name free, and the loser raised.
            if r.seen_by(&[1])[0] == found(None) && r.seen_by(&[2])[0] == found(None) {
                failed += 1;
            }
        },
    );
    assert!(failed > 0, "the race was never reached");
}

#[test]
fn a_message_to_an_active_alias_arrives_and_one_to_a_deactivated_alias_is_dropped() {
    let to_alias = |payload| Action::SendTo {
        dest: Dest::Alias(Target::Parent, 1),
        payload,
    };
    // Instant: the late message is dropped when it is sent.
    let instant_program = Program::new(vec![
        vec![
            Action::Alias(1),
            spawn(1),
            Action::Receive(Match::Payload(1)),
            Action::Unalias(1),
            send(CHILD, 2),
            Action::ReceiveAfter(Match::Any, 10),
        ],
        vec![to_alias(1), Action::Receive(Match::Payload(2)), to_alias(3)],
    ]);
    let r = run_with(&instant_program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[0], Seen::Local);
    assert_eq!(r.seen_by(&[])[5], Seen::TimedOut);
    assert_eq!(r.received_by(&[]), [1]);
    assert!(matches!(
        r.seen_by(&[1])[2],
        Seen::Result(OpResult::Sent {
            fate: SendFate::Dropped,
            ..
        })
    ));

    // Delayed: a message sent while the alias was active and arriving after it was
    // deactivated is dropped on arrival.
    let delayed_program = Program::new(vec![
        vec![
            Action::Alias(1),
            spawn(1),
            Action::Receive(Match::Payload(1)),
            Action::Unalias(1),
            Action::ReceiveAfter(Match::Any, 10),
        ],
        vec![to_alias(1), to_alias(3)],
    ]);
    let r = run_with(
        &delayed_program,
        config(DeliveryMode::Delayed, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[4], Seen::TimedOut);
    assert!(matches!(
        r.seen_by(&[1])[1],
        Seen::Result(OpResult::Sent {
            fate: SendFate::InFlight,
            ..
        })
    ));
    let Seen::Result(OpResult::Sent { msg: late, .. }) = r.seen_by(&[1])[1] else {
        unreachable!()
    };
    assert!(r.has_event(|e| e.proc == 0 && e.kind == EventKind::Drop { msg: late, from: 1 }));
}
