//! The simulated cluster (SPEC §4): nodes, spawning on a node, messages between nodes,
//! partitions (`:drop` / `:defer`) and heal, `net_ticktime`, stopping and restarting
//! nodes, node monitors, per-node names and ETS table names, and the global registry —
//! through the engine's public API. Node 0 is the home node, where the root runs.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Dest, Match, Msg, Prefer, Program,
    Seen, Target, DELIVERIES,
};
use lockstep_core::{
    Config, CrashMode, Decision, DeliveryMode, Effect, EventKind, ExitCause, OpResult, Outcome,
    PartitionMode, ProcName, Reason, SendFate, TimerMode,
};

const CHILD: Target = Target::Child(1);

fn send(to: Target, payload: u32) -> Action {
    Action::Send { to, payload }
}

fn spawn_on(script: usize, node: u32) -> Action {
    Action::SpawnOn {
        script,
        link: false,
        node,
    }
}

fn cut(mode: PartitionMode) -> Action {
    Action::Partition {
        a: &[0],
        b: &[1],
        mode,
    }
}

fn instant() -> Config {
    config(DeliveryMode::Instant, CrashMode::Fail)
}

fn done() -> Seen {
    Seen::Result(OpResult::Done)
}

fn node_is(n: u32) -> Seen {
    Seen::Result(OpResult::NodeIs(n))
}

fn found(p: Option<u32>) -> Seen {
    Seen::Result(OpResult::Found(p))
}

fn ok(b: bool) -> Seen {
    Seen::Result(OpResult::NameOk(b))
}

fn step_of(r: &common::RunResult, pred: impl Fn(&EventKind) -> bool) -> u64 {
    r.events
        .iter()
        .find(|e| pred(&e.kind))
        .unwrap_or_else(|| panic!("no such event in {:?}", r.events))
        .step
}

#[test]
fn a_process_spawned_on_a_started_node_runs_there() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::NodeOf(CHILD),
            Action::NodeOf(Target::Myself),
            Action::Nodes,
            Action::NodesUp,
            Action::Receive(Match::Any),
        ],
        vec![Action::NodeOf(Target::Myself), send(Target::Parent, 1)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.seen_by(&[])[..6],
        [
            done(),
            Seen::Result(OpResult::Spawned { child: 1 }),
            node_is(1),
            node_is(0),
            Seen::Nodes(vec![0, 1]),
            Seen::Nodes(vec![1]),
        ]
    );
    assert_eq!(r.seen_by(&[1])[0], node_is(1));
    assert!(r
        .events_of(&[])
        .contains(&EventKind::NodeStarted { node: 1 }));
}

#[test]
fn starting_a_node_that_is_up_records_nothing() {
    let program = Program::new(vec![vec![
        Action::StartNode(1),
        Action::StartNode(1),
        Action::StartNode(0),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [done(), done(), done()]);
    let starts = r
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::NodeStarted { .. }))
        .count();
    assert_eq!(starts, 1);
}

#[test]
fn a_process_spawned_on_a_node_that_is_down_is_dead_from_the_start() {
    let program = Program::new(vec![
        vec![
            spawn_on(1, 2),
            Action::Alive(CHILD),
            Action::NodeOf(CHILD),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![send(Target::Parent, 1)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(
            r.seen_by(&[])[1..3],
            [Seen::Result(OpResult::Alive(false)), node_is(2)]
        );
        assert_eq!(
            r.got_by(&[]),
            [Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::NoConnection
            }]
        );
        assert_eq!(r.exit_of(&[1]), Some(ExitCause::NodeDown));
        assert!(r.events_of(&[1]).is_empty(), "{:?}", r.events_of(&[1]));
    }
}

#[test]
fn spawn_link_on_a_node_that_is_down_sends_the_caller_noconnection() {
    let program = |trap: bool| {
        Program::new(vec![
            vec![
                Action::TrapExit(trap),
                Action::SpawnOn {
                    script: 1,
                    link: true,
                    node: 2,
                },
                Action::Receive(Match::Any),
            ],
            vec![],
        ])
    };
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        let r = run_with(&program(true), cfg, Prefer::runs());
        assert_eq!(
            r.got_by(&[]),
            [Msg::Exit {
                from: 1,
                reason: Reason::NoConnection
            }]
        );
        // The trace shows a plain spawn: there is no link to a dead process.
        assert!(r.events_of(&[]).contains(&EventKind::Spawn {
            child: 1,
            link: false
        }));
        let r = run_with(&program(false), cfg, Prefer::runs());
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 }, "{delivery:?}");
        assert_eq!(
            r.exit_of(&[]),
            Some(ExitCause::Signal {
                from: 1,
                reason: Reason::NoConnection
            })
        );
    }
}

#[test]
fn messages_between_nodes_are_in_flight_even_under_instant_delivery() {
    let program = Program::new(vec![
        vec![Action::StartNode(1), spawn_on(1, 1), send(CHILD, 1)],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert!(matches!(
        r.seen_by(&[])[2],
        Seen::Result(OpResult::Sent {
            fate: SendFate::InFlight,
            ..
        })
    ));
    assert!(r.schedule.contains(&Decision::Deliver {
        from: ProcName::root(),
        to: ProcName::root().child(1)
    }));
    assert_eq!(r.received_by(&[1]), [1]);
}

#[test]
fn an_exit_signal_to_another_node_travels_but_reaches_it_before_the_senders_alive_check() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Exit {
                to: CHILD,
                reason: Reason::Given(1),
            },
            Action::Alive(CHILD),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    // `is_process_alive/1` is ordered after the caller's earlier signals to the process, so
    // the monitor made after it finds the process gone
    assert_eq!(r.seen_by(&[])[3], Seen::Result(OpResult::Alive(false)));
    assert_eq!(
        r.got_by(&[]),
        [Msg::Down {
            monitor: 0,
            from: 1,
            reason: Reason::NoProc
        }]
    );
}

#[test]
fn messages_from_one_sender_to_one_receiver_across_nodes_keep_their_order() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            spawn_on(2, 1),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
        ],
        vec![send(Target::Parent, 1), send(Target::Parent, 2)],
        vec![send(Target::Parent, 3), send(Target::Parent, 4)],
    ]);
    let mut interleaved = false;
    for_many_interleavings(&program, instant(), 40, |r| {
        let got = r.received_by(&[]);
        let at = |x| got.iter().position(|&y| y == x).unwrap();
        assert!(at(1) < at(2) && at(3) < at(4), "{got:?}");
        // Across senders anything goes.
        interleaved |= got != [1, 2, 3, 4] && got != [3, 4, 1, 2];
    });
    assert!(interleaved, "the two senders were never interleaved");
}

#[test]
fn a_drop_partition_loses_cross_cut_messages_while_same_side_and_later_ones_arrive() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            spawn(1),
            cut(PartitionMode::Drop),
            send(Target::Child(1), 1),
            send(Target::Child(2), 2),
            Action::Heal,
            send(Target::Child(1), 3),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(matches!(
            r.seen_by(&[])[4],
            Seen::Result(OpResult::Sent {
                fate: SendFate::Cut,
                ..
            })
        ));
        assert_eq!(r.received_by(&[1]), [3], "{delivery:?}");
        assert_eq!(r.received_by(&[2]), [2]);
        let kinds = r.events_of(&[1]);
        assert!(kinds.contains(&EventKind::Cut {
            msg: 0,
            from: 0,
            deferred: false
        }));
        assert!(r
            .events_of(&[])
            .contains(&EventKind::Partitioned { partition: 0 }));
        assert!(r
            .events_of(&[])
            .contains(&EventKind::Healed { delivered: 0 }));
    }
}

#[test]
fn a_defer_partition_holds_cross_cut_messages_and_heal_delivers_them_in_send_order() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            cut(PartitionMode::Defer),
            send(CHILD, 1),
            send(CHILD, 2),
            send(CHILD, 3),
            Action::Heal,
            send(CHILD, 4),
        ],
        vec![Action::Receive(Match::Any); 4],
    ]);
    for delivery in DELIVERIES {
        let cfg = config(delivery, CrashMode::Fail);
        let r = run_with(&program, cfg, Prefer::runs());
        for i in 3..6 {
            assert!(matches!(
                r.seen_by(&[])[i],
                Seen::Result(OpResult::Sent {
                    fate: SendFate::Deferred,
                    ..
                })
            ));
        }
        // Heal delivers them, in order, before it returns.
        let heal_step = step_of(&r, |k| *k == EventKind::Healed { delivered: 3 });
        let delivered: Vec<(u64, u32)> = r
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Deliver { msg, .. } if msg < 3 => Some((e.step, msg)),
                _ => None,
            })
            .collect();
        assert_eq!(
            delivered,
            [(heal_step, 0), (heal_step, 1), (heal_step, 2)],
            "{delivery:?}"
        );
        for_many_interleavings(&program, cfg, 20, |r| {
            assert_eq!(r.received_by(&[1]), [1, 2, 3, 4]);
        });
    }
}

#[test]
fn a_new_partition_cuts_messages_already_in_flight_across_it() {
    for (mode, expected) in [
        (PartitionMode::Drop, vec![2]),
        (PartitionMode::Defer, vec![1, 2]),
    ] {
        let program = Program::new(vec![
            vec![
                Action::StartNode(1),
                spawn_on(1, 1),
                send(CHILD, 1),
                cut(mode),
                Action::Heal,
                send(CHILD, 2),
            ],
            vec![Action::Receive(Match::Any); expected.len()],
        ]);
        let r = run_with(&program, instant(), Prefer::runs());
        assert!(matches!(
            r.seen_by(&[])[2],
            Seen::Result(OpResult::Sent {
                fate: SendFate::InFlight,
                ..
            })
        ));
        assert!(r.events_of(&[1]).contains(&EventKind::Cut {
            msg: 0,
            from: 0,
            deferred: mode == PartitionMode::Defer
        }));
        assert_eq!(r.received_by(&[1]), expected, "{mode:?}");
    }
}

#[test]
fn a_partition_declares_monitors_links_and_node_monitors_across_it_lost_after_the_ticktime() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            Action::TrapExit(true),
            Action::SpawnOn {
                script: 1,
                link: true,
                node: 1,
            },
            Action::Monitor(CHILD),
            Action::MonitorNode(1),
            Action::SetTicktime(100),
            cut(PartitionMode::Drop),
            Action::Receive(Match::Down),
            Action::Receive(Match::NodeDown),
            Action::Receive(Match::Exit),
            Action::Now,
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        for timers in [TimerMode::OnIdle, TimerMode::Anytime] {
            let cfg = Config {
                timers,
                ..config(delivery, CrashMode::Fail)
            };
            let r = run_with(&program, cfg, Prefer::runs());
            assert_eq!(r.outcome, Outcome::Pass, "{delivery:?} {timers:?}");
            assert_eq!(
                r.got_by(&[]),
                [
                    Msg::Down {
                        monitor: 0,
                        from: 1,
                        reason: Reason::NoConnection
                    },
                    Msg::NodeDown(1),
                    Msg::Exit {
                        from: 1,
                        reason: Reason::NoConnection
                    },
                ]
            );
            assert_eq!(r.seen_by(&[])[10], Seen::Result(OpResult::Now(100)));
            // All of it at the tick, which is when the clock reached the ticktime.
            let tick = step_of(&r, |k| *k == EventKind::Tick { partition: 0 });
            for pred in [
                (|k: &EventKind| matches!(k, EventKind::Down { .. })) as fn(&EventKind) -> bool,
                |k| matches!(k, EventKind::NodeDownMsg { .. }),
                |k| matches!(k, EventKind::ExitTrapped { .. }),
            ] {
                assert_eq!(step_of(&r, pred), tick);
            }
            assert!(r.has_event(|e| e.kind == EventKind::SetTicktime { ms: 100 }));
            // The non-trapping side of the link dies of it.
            assert_eq!(
                r.exit_of(&[1]),
                Some(ExitCause::Signal {
                    from: 0,
                    reason: Reason::NoConnection
                })
            );
        }
    }
}

#[test]
fn a_partition_healed_before_the_ticktime_fires_nothing() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Monitor(CHILD),
            Action::MonitorNode(1),
            Action::SetTicktime(100),
            cut(PartitionMode::Drop),
            Action::Sleep(50),
            Action::Heal,
            Action::ReceiveAfter(Match::Any, 200),
            Action::Now,
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[])[8..],
        [Seen::TimedOut, Seen::Result(OpResult::Now(250))]
    );
    assert!(!r.has_event(|e| matches!(
        e.kind,
        EventKind::Tick { .. } | EventKind::Down { .. } | EventKind::NodeDownMsg { .. }
    )));
}

#[test]
fn the_default_ticktime_is_fifteen_seconds_and_set_ticktime_applies_to_later_partitions() {
    let program = |set_before: Option<u64>| {
        let mut root = vec![Action::StartNode(1), spawn_on(1, 1), Action::Monitor(CHILD)];
        if let Some(ms) = set_before {
            root.push(Action::SetTicktime(ms));
        }
        root.extend([
            cut(PartitionMode::Drop),
            Action::SetTicktime(5),
            Action::Receive(Match::Down),
            Action::Now,
        ]);
        Program::new(vec![root, vec![Action::Receive(Match::Any)]])
    };
    let r = run_with(&program(None), instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[6], Seen::Result(OpResult::Now(15_000)));
    let r = run_with(&program(Some(40)), instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[7], Seen::Result(OpResult::Now(40)));
}

#[test]
fn stop_node_kills_its_processes_and_fires_nodedown_and_noconnection() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            Action::TrapExit(true),
            Action::SpawnOn {
                script: 1,
                link: true,
                node: 1,
            },
            spawn_on(1, 1),
            Action::Monitor(Target::Child(2)),
            Action::MonitorNode(1),
            Action::StopNode(1),
            Action::Receive(Match::NodeDown),
            Action::Receive(Match::Down),
            Action::Receive(Match::Exit),
            Action::NodesUp,
            Action::Nodes,
            Action::Alive(CHILD),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Fail),
            Prefer::runs().newest_first(),
        );
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.got_by(&[]),
            [
                Msg::NodeDown(1),
                Msg::Down {
                    monitor: 0,
                    from: 2,
                    reason: Reason::NoConnection
                },
                Msg::Exit {
                    from: 1,
                    reason: Reason::NoConnection
                },
            ]
        );
        assert_eq!(
            r.seen_by(&[])[10..],
            [
                Seen::Nodes(vec![]),
                Seen::Nodes(vec![0, 1]),
                Seen::Result(OpResult::Alive(false))
            ]
        );
        assert!(r
            .events_of(&[])
            .contains(&EventKind::NodeStopped { node: 1 }));
        for (child, path) in [(1, [1]), (2, [2])] {
            assert_eq!(r.exit_of(&path), Some(ExitCause::NodeDown));
            assert!(r.effects.contains(&Effect::Kill {
                proc: child,
                reason: Reason::NoConnection
            }));
        }
        // The node monitor's message is made on the watcher's node, at the stop.
        assert_eq!(
            step_of(&r, |k| matches!(k, EventKind::NodeStopped { .. })),
            step_of(&r, |k| matches!(k, EventKind::NodeDownMsg { node: 1, .. }))
        );
    }
}

#[test]
fn the_home_node_cannot_be_stopped_and_stopping_a_node_that_is_down_does_nothing() {
    let program = Program::new(vec![vec![
        Action::StopNode(0),
        Action::StopNode(3),
        Action::Alive(Target::Myself),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.seen_by(&[]),
        [done(), done(), Seen::Result(OpResult::Alive(true))]
    );
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::NodeStopped { .. })));
}

#[test]
fn a_process_stopping_its_own_node_dies_with_it() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![Action::StopNode(1), send(Target::Parent, 1)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(
            r.got_by(&[]),
            [Msg::Down {
                monitor: 0,
                from: 1,
                reason: Reason::NoConnection
            }]
        );
        assert_eq!(r.exit_of(&[1]), Some(ExitCause::NodeDown));
        assert!(r.seen_by(&[1]).is_empty());
        assert!(r.effects.contains(&Effect::Kill {
            proc: 1,
            reason: Reason::NoConnection
        }));
    }
}

#[test]
fn start_node_after_stop_node_gives_a_fresh_node() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Receive(Match::Payload(1)),
            Action::WhereisOn { name: 5, node: 1 },
            Action::StopNode(1),
            Action::StartNode(1),
            Action::WhereisOn { name: 5, node: 1 },
            Action::NamesOn(1),
            spawn_on(2, 1),
            Action::Receive(Match::Payload(2)),
        ],
        vec![
            Action::Register {
                name: 5,
                who: Target::Myself,
            },
            Action::EtsNew(3),
            send(Target::Parent, 1),
            Action::Receive(Match::Any),
        ],
        vec![
            Action::EtsWhereis(3),
            Action::EtsNew(3),
            send(Target::Parent, 2),
        ],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[3], found(Some(1)));
    assert_eq!(r.seen_by(&[])[6..8], [found(None), Seen::Names(vec![])]);
    assert_eq!(r.seen_by(&[1])[1], Seen::EtsNamed(true));
    assert_eq!(
        r.seen_by(&[2])[..2],
        [Seen::EtsFound(None), Seen::EtsNamed(true)]
    );
    let starts = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::NodeStarted { node: 1 })
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn monitor_node_of_a_node_that_is_down_fires_nodedown_at_once() {
    let program = Program::new(vec![vec![
        Action::MonitorNode(3),
        Action::Receive(Match::NodeDown),
    ]]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.seen_by(&[]), [done(), Seen::Got(Msg::NodeDown(3))]);
        assert_eq!(
            step_of(&r, |k| *k == EventKind::MonitorNode { node: 3 }),
            step_of(&r, |k| matches!(k, EventKind::NodeDownMsg { node: 3, .. }))
        );
    }
}

#[test]
fn a_node_monitor_fires_once() {
    let program = Program::new(vec![vec![
        Action::StartNode(1),
        Action::MonitorNode(1),
        Action::StopNode(1),
        Action::StartNode(1),
        Action::StopNode(1),
        Action::Receive(Match::NodeDown),
        Action::ReceiveAfter(Match::NodeDown, 10),
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[])[5..],
        [Seen::Got(Msg::NodeDown(1)), Seen::TimedOut]
    );
}

#[test]
fn names_are_per_node_and_a_send_to_a_name_at_a_node_goes_there() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Receive(Match::Payload(1)),
            Action::Register {
                name: 5,
                who: Target::Myself,
            },
            Action::Whereis(5),
            Action::WhereisOn { name: 5, node: 1 },
            Action::NamesOn(1),
            Action::Registered,
            Action::SendTo {
                dest: Dest::NameAt(5, 1),
                payload: 7,
            },
            Action::SendTo {
                dest: Dest::NameAt(5, 0),
                payload: 8,
            },
            Action::Receive(Match::Payload(8)),
        ],
        vec![
            Action::Register {
                name: 5,
                who: Target::Myself,
            },
            Action::Whereis(5),
            send(Target::Parent, 1),
            Action::Receive(Match::Payload(7)),
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass, "{delivery:?}");
        assert_eq!(
            r.seen_by(&[])[3..8],
            [
                ok(true),
                found(Some(0)),
                found(Some(1)),
                Seen::Names(vec![5]),
                Seen::Names(vec![5])
            ]
        );
        assert_eq!(r.seen_by(&[1])[..2], [ok(true), found(Some(1))]);
        assert_eq!(r.received_by(&[1]), [7]);
        assert_eq!(r.received_by(&[]), [1, 8]);
    }
}

#[test]
fn a_name_given_to_a_process_lives_on_that_processs_node() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            spawn_on(1, 1),
            Action::Register {
                name: 6,
                who: CHILD,
            },
            Action::Whereis(6),
            Action::WhereisOn { name: 6, node: 1 },
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[2..], [ok(true), found(None), found(Some(1))]);
}

#[test]
fn a_send_to_a_name_at_a_node_where_nobody_holds_it_is_dropped_silently() {
    let program = Program::new(vec![vec![
        Action::StartNode(1),
        Action::SendTo {
            dest: Dest::NameAt(5, 1),
            payload: 1,
        },
    ]]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    let Seen::Result(OpResult::Sent {
        msg,
        fate: SendFate::Dropped,
    }) = r.seen_by(&[])[1]
    else {
        panic!("{:?}", r.seen_by(&[]))
    };
    assert!(r.events_of(&[]).contains(&EventKind::SendToNobody {
        name: 5,
        node: 1,
        msg
    }));
}

#[test]
fn of_two_processes_racing_for_a_global_name_exactly_the_first_wins() {
    let contender = vec![
        Action::GlobalRegister {
            name: 7,
            who: Target::Myself,
        },
        Action::GlobalWhereis(7),
        Action::Receive(Match::Any),
    ];
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            Action::StartNode(2),
            spawn_on(1, 1),
            spawn_on(1, 2),
        ],
        contender,
    ]);
    let mut winners = std::collections::BTreeSet::new();
    for_many_interleavings(&program, instant(), 30, |r| {
        let (a, b) = (r.id(&[1]), r.id(&[2]));
        let results = (&r.seen_by(&[1])[0], &r.seen_by(&[2])[0]);
        let winner = match results {
            (x, y) if *x == ok(true) && *y == ok(false) => a,
            (x, y) if *x == ok(false) && *y == ok(true) => b,
            other => panic!("{other:?}"),
        };
        winners.insert(winner);
        // Losing is an answer (`:no`), not a raise; both see the winner.
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.seen_by(&[1])[1], found(Some(winner)));
        assert_eq!(r.seen_by(&[2])[1], found(Some(winner)));
        let first = r
            .events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::GlobalRegister { target, ok, .. } => Some((target, ok)),
                _ => None,
            })
            .unwrap();
        assert_eq!(first, (winner, true));
    });
    assert_eq!(winners.len(), 2, "each contender won some interleaving");
}

#[test]
fn a_global_name_is_freed_when_its_holder_exits_and_by_unregister() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::GlobalRegister {
                name: 7,
                who: CHILD,
            },
            Action::GlobalNames,
            Action::GlobalWhereis(7),
            Action::Monitor(CHILD),
            send(CHILD, 1),
            Action::Receive(Match::Down),
            Action::GlobalWhereis(7),
            Action::GlobalNames,
            Action::GlobalRegister {
                name: 7,
                who: Target::Myself,
            },
            Action::GlobalUnregister(7),
            Action::GlobalWhereis(7),
            Action::GlobalUnregister(7),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    let seen = r.seen_by(&[]);
    assert_eq!(
        seen[1..4],
        [ok(true), Seen::GlobalNames(vec![7]), found(Some(1))]
    );
    assert_eq!(
        seen[7..],
        [
            found(None),
            Seen::GlobalNames(vec![]),
            ok(true),
            done(),
            found(None),
            done()
        ]
    );
    let kinds = r.events_of(&[]);
    assert!(kinds.contains(&EventKind::GlobalRegister {
        name: 7,
        target: 1,
        ok: true
    }));
    assert!(kinds.contains(&EventKind::GlobalUnregister { name: 7 }));
    assert!(kinds.contains(&EventKind::GlobalWhereis {
        name: 7,
        found: None
    }));
}

#[test]
fn a_global_register_of_an_exited_process_says_yes_and_a_process_holds_one_name_at_most() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            Action::GlobalRegister {
                name: 7,
                who: CHILD,
            },
            Action::GlobalRegister {
                name: 8,
                who: Target::Myself,
            },
            Action::GlobalRegister {
                name: 9,
                who: Target::Myself,
            },
            Action::GlobalNames,
        ],
        vec![],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[])[3..],
        // OTP 25's `global:register_name/2` says `yes` for an exited pid (whose name is gone
        // at once: its holder is dead) and refuses a second name for one pid (`check_dupname`)
        [ok(true), ok(true), ok(false), Seen::GlobalNames(vec![8])]
    );
}

#[test]
fn a_global_send_reaches_the_holder_and_one_to_a_free_name_raises() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Receive(Match::Payload(1)),
            Action::SendTo {
                dest: Dest::Global(7),
                payload: 2,
            },
            Action::Receive(Match::Payload(3)),
            Action::SendTo {
                dest: Dest::Global(8),
                payload: 4,
            },
        ],
        vec![
            Action::GlobalRegister {
                name: 7,
                who: Target::Myself,
            },
            send(Target::Parent, 1),
            Action::Receive(Match::Payload(2)),
            send(Target::Parent, 3),
        ],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Fail),
            Prefer::runs().newest_first(),
        );
        assert_eq!(r.received_by(&[1]), [2], "{delivery:?}");
        assert_eq!(r.seen_by(&[])[4], Seen::Result(OpResult::Unregistered));
        assert!(r.has_event(|e| e.kind
            == EventKind::SendToUnregistered {
                name: 8,
                global: true
            }));
        assert_eq!(r.outcome, Outcome::Exception { proc: 0 });
    }
}

#[test]
fn ets_table_names_are_per_node() {
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            Action::EtsNew(3),
            Action::EtsNew(3),
            Action::EtsWhereis(3),
            spawn_on(1, 1),
            Action::Receive(Match::Any),
            Action::EtsNew(2),
            Action::EtsAll,
            Action::EtsDelete(2),
            Action::EtsDelete(3),
            Action::EtsDelete(3),
            Action::EtsWhereis(3),
        ],
        vec![
            Action::EtsWhereis(3),
            Action::EtsNew(3),
            Action::EtsWhereis(3),
            Action::EtsAll,
            send(Target::Parent, 1),
        ],
    ]);
    let r = run_with(&program, instant(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    let seen = r.seen_by(&[]);
    // `:ets.all/0` lists only the node's own names, by name; the other node's table 3
    // (slot 1) is not among the root's.
    assert_eq!(seen[7], Seen::EtsAll(vec![(2, 2), (3, 0)]));
    assert_eq!(r.seen_by(&[1])[3], Seen::EtsAll(vec![(3, 1)]));
    let seen: Vec<Seen> = seen
        .iter()
        .enumerate()
        .filter(|&(i, _)| !(6..=8).contains(&i))
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(
        seen[1..4],
        [
            Seen::EtsNamed(true),
            Seen::EtsNamed(false),
            Seen::EtsFound(Some(0))
        ]
    );
    assert_eq!(
        seen[6..],
        [
            Seen::EtsDeleted(true),
            Seen::EtsDeleted(false),
            Seen::EtsFound(None)
        ]
    );
    assert_eq!(
        r.seen_by(&[1])[..3],
        [
            Seen::EtsFound(None),
            Seen::EtsNamed(true),
            Seen::EtsFound(Some(1))
        ]
    );
    // Each table operation is a shared-state sync point on its name.
    assert!(r
        .events_of(&[1])
        .contains(&EventKind::Nif { object: Some(3) }));
}

/// The trace's `ExitSent.fate` is the fate the signal had: to another node it is in flight
/// even under instant delivery, and cut by a `:drop` partition.
#[test]
fn the_trace_gives_an_exit_signal_to_another_node_the_fate_it_had() {
    for (partition, fate) in [
        (None, SendFate::InFlight),
        (Some(PartitionMode::Drop), SendFate::Cut),
        (Some(PartitionMode::Defer), SendFate::Deferred),
    ] {
        let mut root = vec![Action::StartNode(1), spawn_on(1, 1)];
        if let Some(mode) = partition {
            root.push(cut(mode));
        }
        root.push(Action::Exit {
            to: CHILD,
            reason: Reason::Given(1),
        });
        let program = Program::new(vec![root, vec![Action::Receive(Match::Any)]]);
        let r = run_with(&program, instant(), Prefer::runs());
        let fates: Vec<SendFate> = r
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::ExitSent { fate, .. } => Some(fate),
                _ => None,
            })
            .collect();
        assert_eq!(fates, [fate], "{partition:?}");
    }
}

/// OTP: erlang:send_after/3 sends its message when the timer expires, as erlang:send/2
/// would from the timer's node, so to a process on another node it crosses the network
/// like any message between nodes: in flight, lost across a `:drop` partition, held back
/// by a `:defer` one until the heal.
#[test]
fn a_send_after_message_to_another_node_travels_like_any_message_between_nodes() {
    let program = |partition: Option<PartitionMode>| {
        let mut root = vec![Action::StartNode(1), spawn_on(1, 1)];
        if let Some(mode) = partition {
            root.push(cut(mode));
        }
        root.push(Action::SendAfter {
            dest: Dest::Proc(CHILD),
            payload: 1,
            ms: 10,
        });
        root.push(Action::Sleep(20));
        if partition.is_some() {
            root.push(Action::Heal);
        }
        Program::new(vec![root, vec![Action::ReceiveAfter(Match::Any, 100)]])
    };
    // No partition: in flight after the timer fires, delivered by a decision of its own.
    let r = run_with(&program(None), instant(), Prefer::runs());
    assert_eq!(r.received_by(&[1]), [1]);
    assert!(r.schedule.contains(&Decision::Deliver {
        from: ProcName::root(),
        to: ProcName::root().child(1)
    }));
    // `:drop`: lost.
    let r = run_with(
        &program(Some(PartitionMode::Drop)),
        instant(),
        Prefer::runs(),
    );
    assert_eq!(r.received_by(&[1]), [0u32; 0]);
    assert!(r.has_event(|e| matches!(
        e.kind,
        EventKind::Cut {
            from: 0,
            deferred: false,
            ..
        }
    )));
    // `:defer`: delivered at the heal.
    let r = run_with(
        &program(Some(PartitionMode::Defer)),
        instant(),
        Prefer::runs(),
    );
    assert_eq!(r.received_by(&[1]), [1]);
    let heal = step_of(&r, |k| matches!(k, EventKind::Healed { delivered: 1 }));
    assert_eq!(
        step_of(&r, |k| matches!(k, EventKind::Deliver { from: 0, .. })),
        heal
    );
}
