//! The monitor forms behind the instrumented process operations (SPEC §9): spawn_monitor
//! (the monitor set in the spawn's step), monitors by registered name and `{name, node}`,
//! `demonitor/2`'s `:info`, and aliases with a deactivation rule (alias/1's `reply`,
//! monitor/3's `{:alias, :demonitor | :reply_demonitor}`), and `nodes()` as a node sees
//! them, through the engine's public API.
//! The OTP 25 facts they state were measured on the real BIFs.

mod common;

use common::{
    config, run_with, Action, Dest, Match, Msg, Prefer, Program, Seen, Target, DELIVERIES,
};
use lockstep_core::{CrashMode, DeliveryMode, EventKind, OpResult, Outcome, Reason, SendFate};

const CHILD: Target = Target::Child(1);
const NAME: u32 = 7;

fn down(monitor: u32, from: u32, reason: Reason) -> Msg {
    Msg::Down {
        monitor,
        from,
        reason,
    }
}

#[test]
fn spawn_monitor_watches_a_child_that_exits_at_once() {
    // The child crashes in its first step; a monitor set in a later step would see
    // :noproc, spawn_monitor's sees the crash.
    let program = Program::new(vec![
        vec![
            Action::SpawnMonitor {
                script: 1,
                link: false,
            },
            Action::Receive(Match::Down),
        ],
        vec![Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Ignore),
            Prefer::runs().newest_first(),
        );
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(
            r.got_by(&[]),
            [down(0, 1, Reason::ExitOf(1))],
            "{delivery:?}"
        );
        let events = r.events_of(&[]);
        let spawn = events
            .iter()
            .position(|e| matches!(e, EventKind::Spawn { child: 1, .. }));
        let monitor = events.iter().position(|e| {
            *e == EventKind::Monitor {
                target: 1,
                monitor: 0,
            }
        });
        assert_eq!(
            monitor,
            spawn.map(|i| i + 1),
            "the monitor follows the spawn"
        );
    }
}

#[test]
fn spawn_monitor_with_link_links_and_monitors() {
    let program = Program::new(vec![
        vec![
            Action::TrapExit(true),
            Action::SpawnMonitor {
                script: 1,
                link: true,
            },
            Action::Receive(Match::Exit),
            Action::Receive(Match::Down),
        ],
        vec![Action::Crash],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Ignore),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.got_by(&[]),
        [
            Msg::Exit {
                from: 1,
                reason: Reason::ExitOf(1)
            },
            down(0, 1, Reason::ExitOf(1))
        ]
    );
}

#[test]
fn a_monitor_by_name_watches_the_holder_and_an_unheld_name_is_noproc_at_once() {
    let program = Program::new(vec![
        vec![
            Action::MonitorName {
                name: NAME,
                node: None,
            },
            // The :noproc :DOWN is in the mailbox when monitor/2 returns (OTP 25).
            Action::ReceiveAfter(Match::Down, 0),
            Action::Spawn {
                script: 1,
                link: false,
            },
            Action::Register {
                name: NAME,
                who: CHILD,
            },
            Action::MonitorName {
                name: NAME,
                node: Some(0),
            },
            Action::Send {
                to: CHILD,
                payload: 1,
            },
            Action::Receive(Match::Down),
        ],
        vec![Action::Receive(Match::Any), Action::Crash],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            config(delivery, CrashMode::Ignore),
            Prefer::runs(),
        );
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(
            r.got_by(&[]),
            [down(0, 0, Reason::NoProc), down(1, 1, Reason::ExitOf(1))],
            "{delivery:?}"
        );
        assert!(r.has_event(|e| e.kind
            == EventKind::Monitor {
                target: 1,
                monitor: 1
            }));
    }
}

#[test]
fn monitoring_ones_own_name_sets_nothing_up() {
    let program = Program::new(vec![vec![
        Action::Register {
            name: NAME,
            who: Target::Myself,
        },
        Action::MonitorName {
            name: NAME,
            node: None,
        },
        Action::Demonitor {
            nth: 1,
            flush: false,
        },
    ]]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.seen_by(&[])[2],
        Seen::Result(OpResult::Demonitored(false))
    );
}

#[test]
fn a_name_on_a_stopped_node_is_noconnection_at_once() {
    let program = Program::new(vec![vec![
        Action::StartNode(1),
        Action::StopNode(1),
        Action::MonitorName {
            name: NAME,
            node: Some(1),
        },
        Action::ReceiveAfter(Match::Down, 0),
    ]]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.got_by(&[]), [down(0, 0, Reason::NoConnection)]);
}

#[test]
fn demonitor_info_tells_whether_the_monitor_was_still_active() {
    // Active: true (and no :DOWN comes). After its :DOWN reached the mailbox: false.
    let program = |wait_for_down: bool| {
        let mut root = vec![Action::Spawn {
            script: 1,
            link: false,
        }];
        root.push(Action::Monitor(CHILD));
        root.push(Action::Send {
            to: CHILD,
            payload: 1,
        });
        if wait_for_down {
            root.push(Action::Sleep(10));
        }
        root.push(Action::Demonitor {
            nth: 1,
            flush: false,
        });
        root.push(Action::ReceiveAfter(Match::Down, 100));
        Program::new(vec![root, vec![Action::Receive(Match::Any)]])
    };
    let active = run_with(
        &program(false),
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(
        active.seen_by(&[])[3],
        Seen::Result(OpResult::Demonitored(true))
    );
    assert_eq!(active.seen_by(&[])[4], Seen::TimedOut);

    let fired = run_with(
        &program(true),
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(
        fired.seen_by(&[])[4],
        Seen::Result(OpResult::Demonitored(false))
    );
    assert_eq!(fired.got_by(&[]), [down(0, 1, Reason::Normal)]);
}

#[test]
fn a_reply_alias_takes_one_message() {
    let to_alias = |payload| Action::SendTo {
        dest: Dest::Alias(Target::Parent, 1),
        payload,
    };
    let program = Program::new(vec![
        vec![
            Action::AliasWith {
                id: 1,
                reply: true,
                monitor: None,
            },
            Action::Spawn {
                script: 1,
                link: false,
            },
            Action::Receive(Match::Any),
            Action::ReceiveAfter(Match::Any, 10),
        ],
        vec![to_alias(1), to_alias(2)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.received_by(&[]), [1], "{delivery:?}");
        assert_eq!(r.seen_by(&[])[3], Seen::TimedOut);
    }
}

#[test]
fn a_demonitor_alias_goes_with_its_monitor() {
    let to_alias = |payload| Action::SendTo {
        dest: Dest::Alias(Target::Parent, 1),
        payload,
    };
    // The child sends, then waits; the root demonitors, then the child's second send is
    // dropped.
    let program = Program::new(vec![
        vec![
            Action::Spawn {
                script: 1,
                link: false,
            },
            Action::Monitor(CHILD),
            Action::AliasWith {
                id: 1,
                reply: false,
                monitor: Some(1),
            },
            Action::Send {
                to: CHILD,
                payload: 9,
            },
            Action::Receive(Match::Payload(1)),
            Action::Demonitor {
                nth: 1,
                flush: false,
            },
            Action::Send {
                to: CHILD,
                payload: 9,
            },
            Action::ReceiveAfter(Match::Any, 10),
        ],
        vec![
            Action::Receive(Match::Any),
            to_alias(1),
            Action::Receive(Match::Any),
            to_alias(2),
        ],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.received_by(&[]), [1]);
    assert!(matches!(
        r.seen_by(&[1])[3],
        Seen::Result(OpResult::Sent {
            fate: SendFate::Dropped,
            ..
        })
    ));
}

#[test]
fn a_reply_demonitor_alias_removes_its_monitor_with_the_reply() {
    // The reply arrives, then the child exits: no :DOWN, as the reply removed the monitor.
    let program = Program::new(vec![
        vec![
            Action::Spawn {
                script: 1,
                link: false,
            },
            Action::Monitor(CHILD),
            Action::AliasWith {
                id: 1,
                reply: true,
                monitor: Some(1),
            },
            Action::Receive(Match::Any),
            Action::ReceiveAfter(Match::Down, 10),
            Action::Demonitor {
                nth: 1,
                flush: false,
            },
        ],
        vec![Action::SendTo {
            dest: Dest::Alias(Target::Parent, 1),
            payload: 1,
        }],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.received_by(&[]), [1], "{delivery:?}");
        assert_eq!(r.seen_by(&[])[4], Seen::TimedOut);
        assert_eq!(
            r.seen_by(&[])[5],
            Seen::Result(OpResult::Demonitored(false))
        );
    }
}

#[test]
fn a_demonitor_alias_goes_when_its_down_arrives() {
    let program = Program::new(vec![
        vec![
            Action::Spawn {
                script: 1,
                link: false,
            },
            Action::Monitor(CHILD),
            Action::AliasWith {
                id: 1,
                reply: false,
                monitor: Some(1),
            },
            Action::Receive(Match::Down),
            Action::Spawn {
                script: 2,
                link: false,
            },
            Action::ReceiveAfter(Match::Any, 10),
        ],
        vec![],
        vec![Action::SendTo {
            dest: Dest::Alias(Target::Parent, 1),
            payload: 1,
        }],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[5], Seen::TimedOut);
    assert_eq!(r.received_by(&[]), Vec::<u32>::new());
}

#[test]
fn nodes_seen_from_a_node_drop_a_partitioned_one_only_at_its_tick() {
    use lockstep_core::PartitionMode;
    let program = Program::new(vec![
        vec![
            Action::StartNode(1),
            Action::StartNode(2),
            Action::Visible,
            Action::Partition {
                a: &[0],
                b: &[1],
                mode: PartitionMode::Drop,
            },
            Action::Visible,
            Action::Sleep(20_000),
            Action::Visible,
            Action::SpawnOn {
                script: 1,
                link: false,
                node: 1,
            },
        ],
        vec![Action::Visible],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    let seen = r.seen_by(&[]);
    assert_eq!(seen[2], Seen::Nodes(vec![1, 2]));
    assert_eq!(seen[4], Seen::Nodes(vec![1, 2]), "the tick has not passed");
    assert_eq!(seen[6], Seen::Nodes(vec![2]));
    assert_eq!(r.seen_by(&[1]), [Seen::Nodes(vec![2])]);
}
