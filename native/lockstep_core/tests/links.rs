//! Links, `spawn_link`, `unlink`, exit signals and `trap_exit` (SPEC §2: "OTP exit-signal
//! semantics"; `:kill` untrappable, `:normal` ignored unless trapping or sent to oneself,
//! trapped signals arrive as `{:EXIT, pid, reason}`), through the engine's public API.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Match, Msg, Prefer, Program, Seen,
    Target, DELIVERIES,
};
use lockstep_core::{
    CrashMode, Decision, DeliveryMode, Effect, EventKind, ExitCause, ExitClass, OpResult, Outcome,
    ProcName, Reason, SendFate,
};

fn spawn_link(script: usize) -> Action {
    Action::Spawn { script, link: true }
}

fn exit(to: Target, reason: Reason) -> Action {
    Action::Exit { to, reason }
}

const CHILD: Target = Target::Child(1);

#[test]
fn a_crashing_linked_child_kills_a_non_trapping_parent_with_the_childs_reason() {
    let program = Program::new(vec![
        vec![spawn_link(1), Action::Receive(Match::Any)],
        vec![Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Ignore),
            Prefer::runs(),
        );
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 }, "{delivery:?}");
        assert_eq!(
            r.exit_of(&[]),
            Some(ExitCause::Signal {
                from: 1,
                reason: Reason::ExitOf(1)
            })
        );
        assert!(r.effects.contains(&Effect::Kill {
            proc: 0,
            reason: Reason::ExitOf(1)
        }));
        assert_eq!(
            r.events_of(&[])[1],
            EventKind::Spawn {
                child: 1,
                link: true
            }
        );
        // With crashes failing the run, the child's crash is what is reported.
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Crash { proc: 1 }, "{delivery:?}");
    }
}

#[test]
fn a_trapping_parent_gets_a_linked_childs_crash_as_an_exit_message() {
    let program = Program::new(vec![
        vec![
            Action::TrapExit(true),
            spawn_link(1),
            Action::Receive(Match::Exit),
        ],
        vec![Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Ignore),
            Prefer::runs(),
        );
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.seen_by(&[]),
            [
                Seen::Result(OpResult::WasTrapping(false)),
                Seen::Result(OpResult::Spawned { child: 1 }),
                Seen::Got(Msg::Exit {
                    from: 1,
                    reason: Reason::ExitOf(1)
                }),
            ]
        );
        assert!(r.has_event(|e| e.proc == 0
            && matches!(
                e.kind,
                EventKind::ExitTrapped {
                    from: 1,
                    reason: Reason::ExitOf(1),
                    ..
                }
            )));
        assert!(
            !r.effects.iter().any(|e| matches!(e, Effect::Kill { .. })),
            "{:?}",
            r.effects
        );
    }
}

#[test]
fn a_normal_exit_of_a_linked_process_is_ignored_by_a_non_trapping_partner() {
    let program = Program::new(vec![
        vec![spawn_link(1), Action::ReceiveAfter(Match::Any, 10)],
        vec![],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.seen_by(&[])[1], Seen::TimedOut);
        assert!(r.has_event(|e| e.proc == 0 && e.kind == EventKind::ExitIgnored { from: 1 }));
    }
}

#[test]
fn a_trapping_partner_gets_a_normal_exit_as_an_exit_message() {
    let program = Program::new(vec![
        vec![
            Action::TrapExit(true),
            spawn_link(1),
            Action::Receive(Match::Any),
        ],
        vec![],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(
            r.got_by(&[]),
            [Msg::Exit {
                from: 1,
                reason: Reason::Normal
            }],
            "{delivery:?}"
        );
    }
}

#[test]
fn link_makes_a_link_in_both_directions() {
    // P links to P.1 (P traps, P.1 crashes) ...
    let parent_links = Program::new(vec![
        vec![
            Action::TrapExit(true),
            spawn(1),
            Action::Link(CHILD),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::Receive(Match::Exit),
        ],
        vec![Action::Receive(Match::Any), Action::Crash],
    ]);
    // ... and P.2 links to P.1 (P.1 traps, P.2 crashes).
    let child_links = Program::new(vec![
        vec![spawn(1), spawn(2)],
        vec![Action::TrapExit(true), Action::Receive(Match::Exit)],
        vec![Action::Link(Target::Path(&[1])), Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Ignore);
        let r = run_with(&parent_links, cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.seen_by(&[])[2], Seen::Result(OpResult::Done));
        assert!(r.has_event(|e| e.proc == 0 && e.kind == EventKind::Link { to: 1 }));
        assert_eq!(
            r.got_by(&[]),
            [Msg::Exit {
                from: 1,
                reason: Reason::ExitOf(1)
            }]
        );

        let r = run_with(&child_links, cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        let linker = r.id(&[2]);
        assert_eq!(
            r.got_by(&[1]),
            [Msg::Exit {
                from: linker,
                reason: Reason::ExitOf(linker)
            }],
            "{delivery:?}"
        );
    }
}

#[test]
fn linking_to_oneself_does_nothing() {
    let program = Program::new(vec![vec![Action::Link(Target::Myself), Action::Crash]]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.seen_by(&[]), [Seen::Result(OpResult::Done)]);
    assert_eq!(r.events_of(&[])[1], EventKind::Link { to: 0 });
    assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
    assert!(r.effects.is_empty(), "{:?}", r.effects);
}

#[test]
fn a_link_to_an_exited_process_fails_with_noproc_unless_trapping() {
    let wait_for_child = vec![
        spawn(1),
        Action::Monitor(CHILD),
        Action::Receive(Match::Down),
    ];
    let not_trapping = Program::new(vec![
        [wait_for_child.clone(), vec![Action::Link(CHILD)]].concat(),
        vec![],
    ]);
    let trapping = Program::new(vec![
        [
            vec![Action::TrapExit(true)],
            wait_for_child,
            vec![Action::Link(CHILD), Action::Receive(Match::Any)],
        ]
        .concat(),
        vec![],
    ]);
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        // `link/1` raises `noproc` in the caller: the root ends abnormally.
        let r = run_with(&not_trapping, cfg, Prefer::runs());
        assert_eq!(r.seen_by(&[])[3], Seen::Result(OpResult::NoProc));
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 }, "{delivery:?}");
        assert_eq!(r.exit_of(&[]), Some(ExitCause::Own(ExitClass::Abnormal)));
        assert!(r.has_event(|e| e.proc == 0 && e.kind == EventKind::Link { to: 1 }));

        // A trapping caller is told with `{:EXIT, pid, :noproc}` instead.
        let r = run_with(&trapping, cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.seen_by(&[])[4], Seen::Result(OpResult::Done));
        assert_eq!(
            r.got_by(&[])[1],
            Msg::Exit {
                from: 1,
                reason: Reason::NoProc
            }
        );
    }
}

#[test]
fn unlink_stops_a_crash_from_propagating_from_either_side() {
    let parent_unlinks = Program::new(vec![
        vec![
            spawn_link(1),
            Action::Unlink(CHILD),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::ReceiveAfter(Match::Any, 5),
        ],
        vec![Action::Receive(Match::Any), Action::Crash],
    ]);
    let child_unlinks = Program::new(vec![
        vec![spawn_link(1), Action::ReceiveAfter(Match::Any, 5)],
        vec![Action::Unlink(Target::Parent), Action::Crash],
    ]);
    for delivery in DELIVERIES {
        for program in [&parent_unlinks, &child_unlinks] {
            let r = run_with(program, config(delivery, CrashMode::Ignore), Prefer::runs());
            assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
            assert_eq!(r.seen_by(&[]).last(), Some(&Seen::TimedOut));
            assert!(r.has_event(|e| matches!(e.kind, EventKind::Unlink { .. })));
            assert!(!r.has_event(|e| e.proc == 0
                && matches!(
                    e.kind,
                    EventKind::ExitTrapped { .. } | EventKind::ExitIgnored { .. }
                )));
        }
    }
}

#[test]
fn unlinking_a_process_one_is_not_linked_to_is_harmless() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Unlink(CHILD),
            Action::Unlink(Target::Myself),
        ],
        vec![],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    let done = Seen::Result(OpResult::Done);
    assert_eq!(r.seen_by(&[])[1..], [done.clone(), done]);
}

#[test]
fn exit_kill_cannot_be_trapped_and_the_target_dies_killed() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Payload(1)),
            exit(CHILD, Reason::Kill),
            Action::Receive(Match::Down),
        ],
        vec![
            Action::TrapExit(true),
            Action::Send {
                to: Target::Parent,
                payload: 1,
            },
            Action::Receive(Match::Any),
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.exit_of(&[1]),
            Some(ExitCause::Signal {
                from: 0,
                reason: Reason::Kill
            })
        );
        assert!(r.effects.contains(&Effect::Kill {
            proc: 1,
            reason: Reason::Killed
        }));
        assert_eq!(
            r.got_by(&[]),
            [
                Msg::User(1),
                Msg::Down {
                    monitor: 0,
                    from: 1,
                    reason: Reason::Killed
                }
            ]
        );
        let fate = match delivery {
            DeliveryMode::Instant => SendFate::Delivered,
            DeliveryMode::Delayed => SendFate::InFlight,
        };
        assert!(r.has_event(|e| e.proc == 0
            && matches!(
                e.kind,
                EventKind::ExitSent { to: 1, reason: Reason::Kill, fate: f, .. } if f == fate
            )));
        assert!(!r.has_event(|e| matches!(e.kind, EventKind::ExitTrapped { .. })));
    }
}

#[test]
fn a_process_linked_to_a_killed_one_sees_killed_not_kill() {
    let program = Program::new(vec![
        vec![
            Action::TrapExit(true),
            spawn_link(1),
            exit(CHILD, Reason::Kill),
            Action::Receive(Match::Exit),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(
            r.got_by(&[]),
            [Msg::Exit {
                from: 1,
                reason: Reason::Killed
            }],
            "{delivery:?}"
        );
    }
}

#[test]
fn exit_normal_is_ignored_by_a_non_trapping_target_other_than_the_caller() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            exit(CHILD, Reason::Normal),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::Receive(Match::Payload(2)),
        ],
        vec![
            Action::Receive(Match::Payload(1)),
            Action::Send {
                to: Target::Parent,
                payload: 2,
            },
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.received_by(&[]), [2]);
        assert_eq!(r.exit_of(&[1]), Some(ExitCause::Own(ExitClass::Normal)));
        assert!(r.has_event(|e| e.proc == 1 && e.kind == EventKind::ExitIgnored { from: 0 }));
    }
}

#[test]
fn exit_normal_reaches_a_trapping_target_as_an_exit_message() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Receive(Match::Payload(1)),
            exit(CHILD, Reason::Normal),
        ],
        vec![
            Action::TrapExit(true),
            Action::Send {
                to: Target::Parent,
                payload: 1,
            },
            Action::Receive(Match::Exit),
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.got_by(&[1]),
            [Msg::Exit {
                from: 0,
                reason: Reason::Normal
            }]
        );
    }
}

#[test]
fn exit_normal_to_oneself_kills_the_caller_unless_it_traps() {
    let observer = |child: Vec<Action>| {
        Program::new(vec![
            vec![
                spawn(1),
                Action::Monitor(CHILD),
                Action::Receive(Match::Any),
            ],
            child,
        ])
    };
    let not_trapping = observer(vec![
        exit(Target::Myself, Reason::Normal),
        Action::Send {
            to: Target::Parent,
            payload: 1,
        },
    ]);
    let trapping = observer(vec![
        Action::TrapExit(true),
        exit(Target::Myself, Reason::Normal),
        Action::Receive(Match::Exit),
        Action::Send {
            to: Target::Parent,
            payload: 1,
        },
    ]);
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        let r = run_with(&not_trapping, cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.exit_of(&[1]),
            Some(ExitCause::Signal {
                from: 1,
                reason: Reason::Normal
            })
        );
        assert_eq!(
            r.got_by(&[]),
            [Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::Normal
            }]
        );
        // The signal to oneself takes effect at once, in either delivery mode.
        assert!(r.has_event(|e| e.proc == 1
            && matches!(
                e.kind,
                EventKind::ExitSent {
                    to: 1,
                    fate: SendFate::Delivered,
                    ..
                }
            )));

        let r = run_with(&trapping, cfg, Prefer::runs());
        assert_eq!(
            r.got_by(&[1]),
            [Msg::Exit {
                from: 1,
                reason: Reason::Normal
            }]
        );
        assert_eq!(r.got_by(&[]), [Msg::User(1)], "{delivery:?}");
    }
}

#[test]
fn exit_kill_to_oneself_kills_the_caller_even_when_trapping() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Any),
        ],
        vec![
            Action::TrapExit(true),
            exit(Target::Myself, Reason::Kill),
            Action::Send {
                to: Target::Parent,
                payload: 1,
            },
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.got_by(&[]),
            [Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::Killed
            }]
        );
        assert!(r.effects.contains(&Effect::Kill {
            proc: 1,
            reason: Reason::Killed
        }));
        // It never got to its send.
        assert_eq!(r.seen_by(&[1]).len(), 1);
    }
}

#[test]
fn any_other_reason_kills_a_non_trapping_target_and_reaches_a_trapping_one() {
    let program = |trap: bool| {
        Program::new(vec![
            vec![
                spawn(1),
                Action::Monitor(CHILD),
                Action::Receive(Match::Payload(1)),
                exit(CHILD, Reason::Given(3)),
                Action::Receive(Match::Down),
            ],
            vec![
                Action::TrapExit(trap),
                Action::Send {
                    to: Target::Parent,
                    payload: 1,
                },
                Action::Receive(Match::Any),
            ],
        ])
    };
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        let r = run_with(&program(false), cfg, Prefer::runs());
        assert_eq!(
            r.exit_of(&[1]),
            Some(ExitCause::Signal {
                from: 0,
                reason: Reason::Given(3)
            })
        );
        assert!(r.effects.contains(&Effect::Kill {
            proc: 1,
            reason: Reason::Given(3)
        }));
        assert_eq!(
            r.got_by(&[])[1],
            Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::Given(3)
            }
        );
        // Killed by a signal is not a crash of its own.
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");

        let r = run_with(&program(true), cfg, Prefer::runs());
        assert_eq!(
            r.got_by(&[1]),
            [Msg::Exit {
                from: 0,
                reason: Reason::Given(3)
            }]
        );
        assert_eq!(
            r.got_by(&[])[1],
            Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::Normal
            }
        );
    }
}

#[test]
fn a_root_killed_by_an_exit_signal_is_an_exception() {
    let program = Program::new(vec![
        vec![spawn(1), Action::Receive(Match::Any)],
        vec![exit(Target::Parent, Reason::Given(2))],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 }, "{delivery:?}");
        assert_eq!(
            r.exit_of(&[]),
            Some(ExitCause::Signal {
                from: 1,
                reason: Reason::Given(2)
            })
        );
    }
}

#[test]
fn an_exit_signal_to_an_exited_process_is_dropped() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            exit(CHILD, Reason::Kill),
        ],
        vec![],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.seen_by(&[])[3], Seen::Result(OpResult::Done));
        assert!(r.has_event(|e| matches!(
            e.kind,
            EventKind::ExitSent {
                to: 1,
                reason: Reason::Kill,
                fate: SendFate::Dropped,
                ..
            }
        )));
        assert_eq!(r.exit_of(&[1]), Some(ExitCause::Own(ExitClass::Normal)));
        assert!(!r.effects.iter().any(|e| matches!(e, Effect::Kill { .. })));
    }
}

#[test]
fn trap_exit_returns_the_previous_value() {
    let program = Program::new(vec![vec![
        Action::TrapExit(true),
        Action::TrapExit(true),
        Action::TrapExit(false),
        Action::TrapExit(false),
    ]]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    let was = |b| Seen::Result(OpResult::WasTrapping(b));
    assert_eq!(
        r.seen_by(&[]),
        [was(false), was(true), was(true), was(false)]
    );
    let flags: Vec<EventKind> = r
        .events_of(&[])
        .into_iter()
        .filter(|k| matches!(k, EventKind::TrapExit { .. }))
        .collect();
    assert_eq!(
        flags,
        [true, true, false, false].map(|on| EventKind::TrapExit { on })
    );
}

#[test]
fn exit_signals_propagate_through_a_chain_of_links_with_the_original_reason() {
    // P (trapping) -link- P.1 -link- P.1.1, which crashes.
    let program = Program::new(vec![
        vec![
            Action::TrapExit(true),
            spawn_link(1),
            Action::Receive(Match::Exit),
        ],
        vec![spawn_link(2), Action::Receive(Match::Any)],
        vec![Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Ignore),
            Prefer::runs(),
        );
        let (middle, last) = (r.id(&[1]), r.id(&[1, 1]));
        assert_eq!(
            r.exit_of(&[1]),
            Some(ExitCause::Signal {
                from: last,
                reason: Reason::ExitOf(last)
            })
        );
        assert_eq!(
            r.got_by(&[]),
            [Msg::Exit {
                from: middle,
                reason: Reason::ExitOf(last)
            }],
            "{delivery:?}"
        );
    }
}

#[test]
fn under_delayed_delivery_messages_and_exit_signals_from_one_sender_keep_their_order() {
    // P sends P.1 (trapping) a message and an exit signal, in either order.
    let program = |signal_first: bool| {
        let mut sends = vec![
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            exit(CHILD, Reason::Given(1)),
        ];
        if signal_first {
            sends.reverse();
        }
        Program::new(vec![
            [vec![spawn(1), Action::Receive(Match::Payload(9))], sends].concat(),
            vec![
                Action::TrapExit(true),
                Action::Send {
                    to: Target::Parent,
                    payload: 9,
                },
                Action::Receive(Match::Any),
                Action::Receive(Match::Any),
            ],
        ])
    };
    let message = Msg::User(1);
    let signal = Msg::Exit {
        from: 0,
        reason: Reason::Given(1),
    };
    for (signal_first, expected) in [(false, [message, signal]), (true, [signal, message])] {
        let cfg = config(DeliveryMode::Delayed, CrashMode::Fail);
        for_many_interleavings(&program(signal_first), cfg, 30, |r| {
            assert_eq!(r.outcome, Outcome::Pass);
            assert_eq!(r.got_by(&[1]), expected, "{:?}", r.schedule);
        });
    }
}

#[test]
fn under_delayed_delivery_an_exit_signal_reaches_its_target_before_the_senders_alive_check() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            exit(CHILD, Reason::Given(1)),
            Action::Alive(CHILD),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Delayed, CrashMode::Fail),
        Prefer::runs(),
    );
    // The signal travels, but OTP orders `is_process_alive/1` after the caller's earlier
    // signals to that process: P's check finds P.1 dead (issue 10, item 6).
    assert_eq!(r.seen_by(&[])[2], Seen::Result(OpResult::Alive(false)));
    // delivered by the check itself, not by a decision of the strategy
    let p = ProcName::root();
    let p1 = p.child(1);
    assert!(!r.schedule.contains(&Decision::Deliver { from: p, to: p1 }));
    assert_eq!(
        r.exit_of(&[1]),
        Some(ExitCause::Signal {
            from: 0,
            reason: Reason::Given(1)
        })
    );
}

#[test]
fn a_shutdown_exit_is_not_a_crash_but_kills_a_non_trapping_linked_partner() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![spawn_link(2), Action::Shutdown],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(r.exit_of(&[1]), Some(ExitCause::Own(ExitClass::Normal)));
        assert_eq!(
            r.got_by(&[]),
            [Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::ExitOf(1)
            }]
        );
        let partner = r.id(&[1, 1]);
        assert_eq!(
            r.exit_of(&[1, 1]),
            Some(ExitCause::Signal {
                from: 1,
                reason: Reason::ExitOf(1)
            })
        );
        assert!(r.effects.contains(&Effect::Kill {
            proc: partner,
            reason: Reason::ExitOf(1)
        }));
    }
}

/// SPEC §1: a failure ends the iteration when it happens. An operation whose application
/// ends it (here P.1's exit signal kills the root at once) hands its caller no result and
/// leaves nothing running (the driver checks the same after every call of every test).
#[test]
fn an_operation_that_ends_the_iteration_hands_out_no_result_and_leaves_nothing_running() {
    use lockstep_core::{Config, Next, Op, Session};
    let mut strategy = Prefer::runs();
    let mut session = Session::new(Config::default(), &mut strategy, 0);
    session.start(&mut strategy);
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
    let wait = Op::Receive {
        retry: false,
        timeout: None,
    };
    session.sync(0, wait, &mut strategy).unwrap(); // P blocks, P.1 starts
    let exit = Op::ExitSignal {
        to: 0,
        reason: Reason::Given(0),
    };
    let next = session.sync(1, exit, &mut strategy).unwrap();
    assert_eq!(session.outcome(), Some(&Outcome::Exception { proc: 0 }));
    assert_eq!(next, Next::Ended);
    assert_eq!(session.running(), None);
    assert!(session
        .procs()
        .iter()
        .all(|p| p.state != lockstep_core::ProcState::Running));
}

/// OTP (erlang:unlink/1): "Once unlink(Id) has returned, it is guaranteed that the link
/// between the caller and the entity referred to by Id has no effect on the caller in the
/// future". So under delayed delivery a link's exit signal still in flight when the
/// receiver unlinks is dropped.
#[test]
fn an_exit_signal_in_flight_from_a_link_has_no_effect_once_unlink_has_returned() {
    // P.2 tells P when P.1 (linked to P) has crashed; P unlinks, then waits.
    let program = Program::new(vec![
        vec![
            spawn_link(1),
            spawn(2),
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::Receive(Match::Payload(2)),
            Action::Unlink(CHILD),
            Action::ReceiveAfter(Match::Any, 5),
        ],
        vec![Action::Receive(Match::Any), Action::Crash],
        vec![
            Action::Monitor(Target::Path(&[1])),
            Action::Receive(Match::Down),
            Action::Send {
                to: Target::Parent,
                payload: 2,
            },
        ],
    ]);
    // P.1's exit signal to P is delivered only when nothing else can happen.
    let held = |d: &Decision| matches!(d, Decision::Deliver { from, to } if from.path() == [1] && to.path().is_empty());
    let cfg = config(DeliveryMode::Delayed, CrashMode::Ignore);
    let r = run_with(&program, cfg, Prefer::runs().postponing(held));
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[5], Seen::TimedOut);
}

/// OTP removes a link on the receiving side only when the exit signal arrives; one lost
/// with the connection leaves the link in place until the connection is declared down,
/// and then it fires with `:noconnection`. So a trapping process linked across a `:drop`
/// partition to a process that exits gets `{:EXIT, pid, :noconnection}` at the tick,
/// whether the exit signal was in flight when the partition came (P.1 exits first) or was
/// sent across it (P.1 exits after), as a monitor of the same process gets its `:DOWN`.
#[test]
fn a_trapping_process_linked_across_a_drop_partition_gets_noconnection_at_the_tick() {
    use lockstep_core::PartitionMode;
    let partner_scripts: [Vec<Action>; 2] = [
        vec![Action::Yield, Action::Crash],
        vec![Action::Sleep(10), Action::Crash],
    ];
    for partner in partner_scripts {
        let program = Program::new(vec![
            vec![
                Action::StartNode(1),
                Action::TrapExit(true),
                Action::SpawnOn {
                    script: 1,
                    link: true,
                    node: 1,
                },
                Action::SetTicktime(100),
                Action::Partition {
                    a: &[0],
                    b: &[1],
                    mode: PartitionMode::Drop,
                },
                Action::Send {
                    to: CHILD,
                    payload: 1,
                },
                Action::ReceiveAfter(Match::Exit, 1_000),
                Action::Now,
            ],
            partner.clone(),
        ]);
        let cfg = config(DeliveryMode::Instant, CrashMode::Ignore);
        let r = run_with(&program, cfg, Prefer::runs().newest_first());
        assert_eq!(
            r.seen_by(&[])[6],
            Seen::Got(Msg::Exit {
                from: 1,
                reason: Reason::NoConnection
            }),
            "{partner:?}"
        );
        assert_eq!(r.seen_by(&[])[7], Seen::Result(OpResult::Now(100)));
        // The real exit signal was cut, and the link is gone after the tick.
        assert!(r.has_event(|e| matches!(e.kind, EventKind::Cut { from: 1, .. })));
        assert_eq!(r.outcome, Outcome::Pass);
    }
}
