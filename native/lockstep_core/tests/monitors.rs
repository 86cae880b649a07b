//! Monitors and `demonitor` (SPEC §2: `{:DOWN, ref, :process, pid, reason}`, `:noproc` if
//! already dead; `demonitor/2` with `:flush` honoured, which the adapter does by consuming
//! the monitor's `:DOWN`s still in the mailbox), through the engine's public API.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Match, Msg, Prefer, Program, Seen,
    Target, DELIVERIES,
};
use lockstep_core::DeliveryMode::Delayed;
use lockstep_core::{
    CrashMode, Decision, DeliveryMode, Effect, EventKind, OpResult, Outcome, ProcName, Reason,
};

const CHILD: Target = Target::Child(1);

fn down(monitor: u32, from: u32, reason: Reason) -> Msg {
    Msg::Down {
        monitor,
        from,
        reason,
    }
}

fn send(to: Target, payload: u32) -> Action {
    Action::Send { to, payload }
}

#[test]
fn a_down_carries_the_monitored_processs_exit_reason() {
    let program = |child: Vec<Action>| {
        Program::new(vec![
            vec![
                spawn(1),
                Action::Monitor(CHILD),
                Action::Receive(Match::Down),
            ],
            child,
        ])
    };
    let cases = [
        (vec![], Reason::Normal),
        (vec![Action::Crash], Reason::ExitOf(1)),
        (
            vec![Action::Exit {
                to: Target::Myself,
                reason: Reason::Kill,
            }],
            Reason::Killed,
        ),
        (
            vec![Action::Exit {
                to: Target::Myself,
                reason: Reason::Given(4),
            }],
            Reason::Given(4),
        ),
    ];
    for delivery in DELIVERIES {
        for (child, reason) in cases.clone() {
            let r = run_with(
                &program(child),
                config(delivery, CrashMode::Ignore),
                Prefer::runs(),
            );
            assert_eq!(r.outcome, Outcome::Pass);
            assert_eq!(
                r.seen_by(&[])[1],
                Seen::Result(OpResult::MonitorSet { monitor: 0 })
            );
            assert_eq!(r.got_by(&[]), [down(0, 1, reason)], "{delivery:?}");
            assert!(r.has_event(|e| e.proc == 0
                && e.kind
                    == EventKind::Monitor {
                        target: 1,
                        monitor: 0
                    }));
            assert!(r.has_event(|e| e.proc == 0
                && matches!(
                    e.kind,
                    EventKind::Down { monitor: 0, from: 1, reason: x, .. } if x == reason
                )));
            assert!(r
                .effects
                .iter()
                .any(|e| matches!(e, Effect::DeliverSignal { to: 0, .. })));
        }
    }
}

#[test]
fn monitoring_an_exited_process_gives_an_immediate_down_noproc() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(
            r.got_by(&[]),
            [down(0, 1, Reason::Normal), down(1, 1, Reason::NoProc)],
            "{delivery:?}"
        );
    }
    // Under instant delivery it is in the mailbox at the step the monitor is set.
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    let step_of = |pred: &dyn Fn(&EventKind) -> bool| {
        r.events
            .iter()
            .find(|e| pred(&e.kind))
            .map(|e| e.step)
            .unwrap()
    };
    assert_eq!(
        step_of(&|k| matches!(k, EventKind::Monitor { monitor: 1, .. })),
        step_of(&|k| matches!(
            k,
            EventKind::Down {
                monitor: 1,
                reason: Reason::NoProc,
                ..
            }
        ))
    );
}

#[test]
fn two_monitors_on_one_process_each_get_their_own_down() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Monitor(CHILD),
            send(CHILD, 1),
            Action::Receive(Match::Down),
            Action::Receive(Match::Down),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(
            r.got_by(&[]),
            [down(0, 1, Reason::Normal), down(1, 1, Reason::Normal)],
            "{delivery:?}"
        );
    }
}

#[test]
fn a_demonitor_before_the_target_exits_means_no_down_ever() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Demonitor {
                nth: 1,
                flush: false,
            },
            send(CHILD, 1),
            Action::ReceiveAfter(Match::Down, 50),
        ],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.seen_by(&[])[2], Seen::Result(OpResult::Demonitored(true)));
        assert_eq!(r.seen_by(&[])[4], Seen::TimedOut, "{delivery:?}");
        assert!(r.has_event(|e| e.proc == 0 && e.kind == EventKind::Demonitor { monitor: 0 }));
        assert!(!r.has_event(|e| matches!(e.kind, EventKind::Down { .. })));
    }
}

#[test]
fn a_demonitor_drops_a_down_still_in_flight() {
    // P.1 answers P and exits; its :DOWN follows the answer. P demonitors after taking the
    // answer, while the :DOWN is still in flight: it never reaches the mailbox.
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            send(CHILD, 1),
            Action::Receive(Match::Payload(2)),
            Action::Demonitor {
                nth: 1,
                flush: false,
            },
            Action::ReceiveAfter(Match::Any, 50),
        ],
        vec![Action::Receive(Match::Any), send(Target::Parent, 2)],
    ]);
    let r = run_with(&program, config(Delayed, CrashMode::Fail), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[])[5], Seen::TimedOut);
    // Both the answer and the :DOWN were delivered from P.1 to P, the :DOWN after the
    // demonitor ...
    let p1_to_p = Decision::Deliver {
        from: ProcName::root().child(1),
        to: ProcName::root(),
    };
    let deliveries: Vec<usize> = (0..r.schedule.len())
        .filter(|&i| r.schedule[i] == p1_to_p)
        .collect();
    assert_eq!(deliveries.len(), 2, "{:?}", r.schedule);
    let demonitor_step = r
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Demonitor { .. }))
        .unwrap()
        .step;
    assert!(deliveries[1] as u64 + 1 > demonitor_step);
    // ... and it never reached the mailbox.
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::Down { .. })));
    assert!(!r
        .effects
        .iter()
        .any(|e| matches!(e, Effect::DeliverSignal { .. })));
}

#[test]
fn demonitor_leaves_a_down_already_in_the_mailbox_unless_flushed() {
    // Under instant delivery P.1's answer and its :DOWN are both in P's mailbox before P
    // demonitors.
    let program = |flush: bool| {
        Program::new(vec![
            vec![
                spawn(1),
                Action::Monitor(CHILD),
                send(CHILD, 1),
                Action::Receive(Match::Payload(2)),
                Action::Demonitor { nth: 1, flush },
                Action::ReceiveAfter(Match::Any, 50),
            ],
            vec![Action::Receive(Match::Any), send(Target::Parent, 2)],
        ])
    };
    let cfg = config(DeliveryMode::Instant, CrashMode::Fail);
    let r = run_with(&program(false), cfg, Prefer::runs());
    assert_eq!(r.seen_by(&[])[5], Seen::Got(down(0, 1, Reason::Normal)));

    let r = run_with(&program(true), cfg, Prefer::runs());
    assert_eq!(r.seen_by(&[])[5], Seen::TimedOut);
    // The flush consumed it: the engine saw P take the :DOWN's message.
    let down_msg = r
        .events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Down { msg, .. } => Some(msg),
            _ => None,
        })
        .expect("the :DOWN reached the mailbox");
    assert!(r.has_event(|e| e.proc == 0
        && e.kind
            == EventKind::Receive {
                msg: down_msg,
                from: 1
            }));
}

#[test]
fn with_flush_no_down_of_the_monitor_is_seen_in_any_interleaving() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            send(CHILD, 1),
            Action::Receive(Match::Payload(2)),
            Action::Demonitor {
                nth: 1,
                flush: true,
            },
            Action::ReceiveAfter(Match::Any, 50),
        ],
        vec![Action::Receive(Match::Any), send(Target::Parent, 2)],
    ]);
    for delivery in DELIVERIES {
        for_many_interleavings(&program, config(delivery, CrashMode::Fail), 30, |r| {
            assert_eq!(r.seen_by(&[])[5], Seen::TimedOut, "{:?}", r.schedule);
        });
    }
}

#[test]
fn demonitor_of_a_ref_never_handed_out_is_a_no_op() {
    let program = Program::new(vec![vec![Action::Demonitor {
        nth: 9,
        flush: true,
    }]]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Fail),
        Prefer::runs(),
    );
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[]), [Seen::Result(OpResult::Demonitored(false))]);
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::Demonitor { .. })));
}

#[test]
fn a_process_monitoring_itself_never_gets_a_down() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
        ],
        vec![Action::Monitor(Target::Myself), Action::Crash],
    ]);
    let r = run_with(
        &program,
        config(DeliveryMode::Instant, CrashMode::Ignore),
        Prefer::runs(),
    );
    assert_eq!(r.got_by(&[]), [down(0, 1, Reason::ExitOf(1))]);
    let downs = r
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Down { .. }))
        .count();
    assert_eq!(downs, 1);
}

#[test]
fn monitors_die_with_their_owner() {
    // P.1 monitors P.2 and exits first: P.2's exit sends no :DOWN anywhere.
    let program = Program::new(vec![
        vec![spawn(1), spawn(2), send(Target::Child(2), 1)],
        vec![Action::Monitor(Target::Path(&[2]))],
        vec![Action::Receive(Match::Any)],
    ]);
    for delivery in DELIVERIES {
        let r = run_with(&program, config(delivery, CrashMode::Fail), Prefer::runs());
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(r.has_event(|e| matches!(e.kind, EventKind::Monitor { .. })));
        assert!(!r.has_event(|e| matches!(e.kind, EventKind::Down { .. })));
    }
}

#[test]
fn under_delayed_delivery_a_down_follows_the_messages_sent_before_the_exit() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            send(CHILD, 0),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
        ],
        vec![
            Action::Receive(Match::Any),
            send(Target::Parent, 1),
            send(Target::Parent, 2),
        ],
    ]);
    for_many_interleavings(&program, config(Delayed, CrashMode::Fail), 40, |r| {
        assert_eq!(
            r.got_by(&[]),
            [Msg::User(1), Msg::User(2), down(0, 1, Reason::Normal)],
            "{:?}",
            r.schedule
        );
    });
}
