//! Virtual time: `now`, `sleep`, `send_after`, `cancel_timer` and `receive … after`, under
//! `timers: :on_idle` (fire only when nothing else can happen) and `:anytime` (the earliest
//! timer is one more choice at every step) — SPEC §1 and §2, through the engine's public
//! API.

mod common;

use common::{
    config, for_many_interleavings, run_with, spawn, Action, Dest, Match, Msg, Prefer, Program,
    Seen, Target, DELIVERIES,
};
use lockstep_core::{
    Config, CrashMode, Decision, DeliveryMode, Effect, EventKind, OpResult, Outcome, ProcName,
    ProcState, TimerMode,
};

const CHILD: Target = Target::Child(1);

fn send(to: Target, payload: u32) -> Action {
    Action::Send { to, payload }
}

fn send_after(to: Target, payload: u32, ms: u64) -> Action {
    Action::SendAfter {
        dest: Dest::Proc(to),
        payload,
        ms,
    }
}

fn timers(mode: TimerMode, delivery: DeliveryMode) -> Config {
    Config {
        timers: mode,
        ..config(delivery, CrashMode::Fail)
    }
}

fn on_idle() -> Config {
    timers(TimerMode::OnIdle, DeliveryMode::Instant)
}

fn now(ms: u64) -> Seen {
    Seen::Result(OpResult::Now(ms))
}

#[test]
fn now_starts_at_zero_and_a_sleep_advances_it_by_exactly_the_sleep() {
    let hour = 3_600_000;
    let program = Program::new(vec![vec![Action::Now, Action::Sleep(hour), Action::Now]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[]),
        [now(0), Seen::Result(OpResult::Done), now(hour)]
    );
    assert_eq!(r.now, hour);
    let kinds = r.events_of(&[]);
    assert!(kinds.contains(&EventKind::Sleep { timer: 0, ms: hour }));
    assert!(kinds.contains(&EventKind::TimerFired {
        timer: 0,
        now: hour
    }));
    assert!(kinds.contains(&EventKind::Now { ms: hour }));
    assert!(r.schedule.contains(&Decision::Fire {
        owner: ProcName::root(),
        ordinal: 1
    }));
}

#[test]
fn sleep_zero_is_a_yield() {
    let program = Program::new(vec![vec![Action::Sleep(0), Action::Now]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [Seen::Result(OpResult::Yielded), now(0)]);
    assert!(r.events_of(&[]).contains(&EventKind::Yield));
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::Sleep { .. })));
}

#[test]
fn sleeping_processes_wake_in_deadline_order_each_at_its_own_time() {
    let sleeper = |ms, payload| {
        vec![
            Action::Sleep(ms),
            Action::Now,
            send(Target::Parent, payload),
        ]
    };
    let program = Program::new(vec![
        vec![
            spawn(1),
            spawn(2),
            spawn(3),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
            Action::Receive(Match::Any),
        ],
        sleeper(30, 1),
        sleeper(10, 2),
        sleeper(20, 3),
    ]);
    for delivery in DELIVERIES {
        for_many_interleavings(&program, timers(TimerMode::OnIdle, delivery), 20, |r| {
            assert_eq!(r.received_by(&[]), [2, 3, 1], "{delivery:?}");
            assert_eq!(r.seen_by(&[1])[1], now(30));
            assert_eq!(r.seen_by(&[2])[1], now(10));
            assert_eq!(r.seen_by(&[3])[1], now(20));
        });
    }
}

#[test]
fn send_after_delivers_its_message_at_the_deadline() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 7, 50),
        Action::Receive(Match::Payload(7)),
        Action::Now,
    ]]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            timers(TimerMode::OnIdle, delivery),
            Prefer::runs(),
        );
        assert_eq!(
            r.seen_by(&[]),
            [
                Seen::Result(OpResult::TimerSet { timer: 0 }),
                Seen::Got(Msg::User(7)),
                now(50)
            ]
        );
        let kinds = r.events_of(&[]);
        assert!(kinds.contains(&EventKind::TimerStarted { timer: 0, ms: 50 }));
        assert!(kinds.contains(&EventKind::TimerFired { timer: 0, now: 50 }));
        let delivered = r
            .effects
            .iter()
            .find_map(|e| match *e {
                Effect::DeliverTimer { timer: 0, msg, to } => Some((msg, to)),
                _ => None,
            })
            .expect("the timer's payload was delivered");
        assert_eq!(delivered.1, 0);
        assert!(kinds.contains(&EventKind::Deliver {
            msg: delivered.0,
            from: 0
        }));
    }
}

#[test]
fn send_after_to_a_name_resolves_the_name_when_it_fires() {
    let program = Program::new(vec![
        vec![
            Action::SendAfter {
                dest: Dest::Name(5),
                payload: 1,
                ms: 10,
            },
            spawn(1),
            Action::Receive(Match::Payload(2)),
        ],
        vec![
            Action::Register {
                name: 5,
                who: Target::Myself,
            },
            Action::Receive(Match::Payload(1)),
            Action::Now,
            send(Target::Parent, 2),
        ],
    ]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(r.seen_by(&[1])[1..3], [Seen::Got(Msg::User(1)), now(10)]);
}

#[test]
fn a_send_after_message_to_an_exited_process_is_dropped_when_it_fires() {
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Monitor(CHILD),
            Action::Receive(Match::Down),
            send_after(CHILD, 1, 10),
            Action::Sleep(20),
        ],
        vec![],
    ]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert!(r.has_event(|e| e.kind == EventKind::TimerFired { timer: 0, now: 10 }));
    assert!(r.has_event(|e| e.proc == 1 && matches!(e.kind, EventKind::Drop { from: 0, .. })));
    assert!(!r
        .effects
        .iter()
        .any(|e| matches!(e, Effect::DeliverTimer { .. })));
}

#[test]
fn cancel_timer_returns_the_ms_left_then_false() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 1, 100),
        Action::Sleep(30),
        Action::CancelTimer(1),
        Action::CancelTimer(1),
        Action::ReceiveAfter(Match::Any, 200),
    ]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[])[2..],
        [
            Seen::Result(OpResult::Cancelled {
                left: Some(70),
                notice: None
            }),
            Seen::Result(OpResult::Cancelled {
                left: None,
                notice: None
            }),
            Seen::TimedOut
        ]
    );
    let cancels: Vec<EventKind> = r
        .events_of(&[])
        .into_iter()
        .filter(|k| matches!(k, EventKind::TimerCancelled { .. }))
        .collect();
    assert_eq!(
        cancels,
        [EventKind::TimerCancelled {
            timer: 0,
            left: Some(70)
        }]
    );
    // The cancelled timer never fires.
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::TimerFired { timer: 0, .. })));
}

#[test]
fn cancel_timer_of_a_fired_timer_or_a_ref_never_handed_out_returns_false() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 1, 10),
        Action::Receive(Match::Payload(1)),
        Action::CancelTimer(1),
        Action::CancelTimer(7),
    ]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(
        r.seen_by(&[])[2..],
        [
            Seen::Result(OpResult::Cancelled {
                left: None,
                notice: None
            }),
            Seen::Result(OpResult::Cancelled {
                left: None,
                notice: None
            })
        ]
    );
    assert!(!r.has_event(|e| matches!(e.kind, EventKind::TimerCancelled { .. })));
}

#[test]
fn a_receive_with_after_times_out_after_exactly_its_timeout() {
    let program = Program::new(vec![vec![
        Action::ReceiveAfter(Match::Any, 25),
        Action::Now,
    ]]);
    for delivery in DELIVERIES {
        let r = run_with(
            &program,
            timers(TimerMode::OnIdle, delivery),
            Prefer::runs(),
        );
        assert_eq!(r.seen_by(&[]), [Seen::TimedOut, now(25)]);
        let kinds: Vec<EventKind> = r.events_of(&[]);
        let timeout_kinds: Vec<&EventKind> = kinds
            .iter()
            .filter(|k| {
                matches!(
                    k,
                    EventKind::TimerStarted { .. }
                        | EventKind::Block
                        | EventKind::TimerFired { .. }
                        | EventKind::ReceiveTimeout
                )
            })
            .collect();
        assert_eq!(
            timeout_kinds,
            [
                &EventKind::TimerStarted { timer: 0, ms: 25 },
                &EventKind::Block,
                &EventKind::TimerFired { timer: 0, now: 25 },
                &EventKind::ReceiveTimeout,
            ]
        );
    }
}

#[test]
fn a_receive_after_zero_with_nothing_to_take_times_out_at_once_without_a_timer() {
    let program = Program::new(vec![vec![Action::ReceiveAfter(Match::Any, 0), Action::Now]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.seen_by(&[]), [Seen::TimedOut, now(0)]);
    assert!(r.events_of(&[]).contains(&EventKind::ReceiveTimeout));
    assert!(!r.has_event(|e| matches!(
        e.kind,
        EventKind::TimerStarted { .. } | EventKind::TimerFired { .. } | EventKind::Block
    )));
}

#[test]
fn a_message_arriving_before_the_timeout_is_taken_and_the_receive_timer_is_cancelled() {
    let program = Program::new(vec![
        vec![spawn(1), Action::ReceiveAfter(Match::Any, 100), Action::Now],
        vec![Action::Sleep(10), send(Target::Parent, 1)],
    ]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.seen_by(&[])[1..], [Seen::Got(Msg::User(1)), now(10)]);
    assert!(!r.has_event(|e| e.kind == EventKind::ReceiveTimeout));
    // Only P.1's sleep timer fired.
    let fired: Vec<u32> = r
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TimerFired { timer, .. } => Some(timer),
            _ => None,
        })
        .collect();
    assert_eq!(fired.len(), 1);
    assert!(r.has_event(|e| e.proc == 1
        && e.kind
            == EventKind::Sleep {
                timer: fired[0],
                ms: 10
            }));
}

/// P waits 5 ms for P.1, which yields a few times before it answers.
fn timeout_racing_a_ready_sender() -> Program {
    Program::new(vec![
        vec![spawn(1), Action::ReceiveAfter(Match::Payload(1), 5)],
        vec![
            Action::Yield,
            Action::Yield,
            Action::Yield,
            send(Target::Parent, 1),
        ],
    ])
}

#[test]
fn under_on_idle_timers_a_timeout_never_fires_while_a_process_can_run() {
    for delivery in DELIVERIES {
        for_many_interleavings(
            &timeout_racing_a_ready_sender(),
            timers(TimerMode::OnIdle, delivery),
            40,
            |r| {
                assert_eq!(r.seen_by(&[])[1], Seen::Got(Msg::User(1)), "{delivery:?}");
                assert_eq!(r.now, 0);
            },
        );
    }
}

#[test]
fn under_anytime_timers_a_timeout_can_fire_before_a_ready_sender_answers() {
    let program = timeout_racing_a_ready_sender();
    let cfg = timers(TimerMode::Anytime, DeliveryMode::Instant);
    let r = run_with(&program, cfg, Prefer::timers());
    assert_eq!(r.seen_by(&[])[1], Seen::TimedOut);
    assert_eq!(r.now, 5);
    let r = run_with(&program, cfg, Prefer::runs());
    assert_eq!(r.seen_by(&[])[1], Seen::Got(Msg::User(1)));
    // Random exploration reaches both.
    let (mut timed_out, mut answered) = (0, 0);
    for_many_interleavings(&program, cfg, 40, |r| match r.seen_by(&[])[1] {
        Seen::TimedOut => timed_out += 1,
        _ => answered += 1,
    });
    assert!(timed_out > 0 && answered > 0, "{timed_out} / {answered}");
}

#[test]
fn under_anytime_timers_a_send_after_can_fire_while_its_owner_still_runs() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 1, 1_000),
        Action::Yield,
        Action::Now,
    ]]);
    let r = run_with(
        &program,
        timers(TimerMode::Anytime, DeliveryMode::Instant),
        Prefer::timers(),
    );
    assert_eq!(r.seen_by(&[])[2], now(1_000));
    let r = run_with(&program, on_idle(), Prefer::timers());
    assert_eq!(r.seen_by(&[])[2], now(0));
}

#[test]
fn pending_timers_are_not_fired_once_the_root_has_returned() {
    let program = Program::new(vec![
        vec![spawn(1), send_after(Target::Myself, 1, 5)],
        vec![Action::Sleep(10), send(Target::Parent, 1)],
    ]);
    for mode in [TimerMode::OnIdle, TimerMode::Anytime] {
        let r = run_with(
            &program,
            timers(mode, DeliveryMode::Instant),
            Prefer::runs(),
        );
        assert_eq!(r.outcome, Outcome::Pass, "{mode:?}");
        assert!(!r.has_event(|e| matches!(e.kind, EventKind::TimerFired { .. })));
        assert_eq!(r.final_states[1], ProcState::Blocked);
        assert_eq!(r.now, 0);
    }
}

#[test]
fn a_killed_processs_sleep_timer_never_fires() {
    // P.1 goes to sleep first (newest first), then P kills it and waits for its own
    // timeout, which is later than P.1's wake-up.
    let program = Program::new(vec![
        vec![
            spawn(1),
            Action::Exit {
                to: CHILD,
                reason: lockstep_core::Reason::Kill,
            },
            Action::ReceiveAfter(Match::Any, 50),
        ],
        vec![Action::Sleep(10), send(Target::Parent, 1)],
    ]);
    let r = run_with(&program, on_idle(), Prefer::runs().newest_first());
    assert!(r.has_event(|e| e.proc == 1 && matches!(e.kind, EventKind::Sleep { ms: 10, .. })));
    assert_eq!(r.seen_by(&[])[2], Seen::TimedOut);
    let fired: Vec<(u32, u64)> = r
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TimerFired { now, .. } => Some((e.proc, now)),
            _ => None,
        })
        .collect();
    assert_eq!(fired, [(0, 50)]);
}

#[test]
fn read_timer_returns_the_ms_left_without_cancelling_then_false_once_fired() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 1, 100),
        Action::Sleep(40),
        Action::ReadTimer(1),
        Action::Receive(Match::Payload(1)),
        Action::ReadTimer(1),
        Action::ReadTimer(9),
        Action::Now,
    ]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    let seen = r.seen_by(&[]);
    assert_eq!(
        seen[2],
        Seen::Result(OpResult::TimerLeft {
            left: Some(60),
            notice: None
        })
    );
    // Reading did not cancel: the message came at the deadline.
    assert_eq!(seen[3], Seen::Got(Msg::User(1)));
    assert_eq!(
        seen[4],
        Seen::Result(OpResult::TimerLeft {
            left: None,
            notice: None
        })
    );
    assert_eq!(
        seen[5],
        Seen::Result(OpResult::TimerLeft {
            left: None,
            notice: None
        })
    );
    assert_eq!(seen[6], now(100));
    let reads: Vec<EventKind> = r
        .events_of(&[])
        .into_iter()
        .filter(|k| matches!(k, EventKind::TimerRead { .. }))
        .collect();
    assert_eq!(
        reads,
        [
            EventKind::TimerRead {
                timer: Some(0),
                left: Some(60)
            },
            EventKind::TimerRead {
                timer: Some(0),
                left: None
            },
            EventKind::TimerRead {
                timer: None,
                left: None
            },
        ]
    );
}

#[test]
fn an_async_cancel_or_read_puts_its_result_in_the_callers_mailbox_at_once() {
    for delivery in DELIVERIES {
        let program = Program::new(vec![vec![
            send_after(Target::Myself, 1, 100),
            Action::Sleep(25),
            Action::CancelTimerNotify(1),
            Action::Receive(Match::Payload(common::NOTICE)),
            Action::CancelTimerNotify(1),
            Action::Receive(Match::Payload(common::NOTICE)),
            Action::ReadTimerNotify(1),
            Action::Receive(Match::Payload(common::NOTICE)),
            Action::ReceiveAfter(Match::Payload(1), 500),
        ]]);
        let r = run_with(
            &program,
            timers(TimerMode::OnIdle, delivery),
            Prefer::runs(),
        );
        let seen = r.seen_by(&[]);
        assert!(
            matches!(
                seen[2],
                Seen::Result(OpResult::Cancelled {
                    left: Some(75),
                    notice: Some(_)
                })
            ),
            "{delivery:?}: {seen:?}"
        );
        assert_eq!(seen[3], Seen::Got(Msg::User(common::NOTICE)));
        assert!(matches!(
            seen[4],
            Seen::Result(OpResult::Cancelled {
                left: None,
                notice: Some(_)
            })
        ));
        assert_eq!(seen[5], Seen::Got(Msg::User(common::NOTICE)));
        assert!(matches!(
            seen[6],
            Seen::Result(OpResult::TimerLeft {
                left: None,
                notice: Some(_)
            })
        ));
        assert_eq!(seen[7], Seen::Got(Msg::User(common::NOTICE)));
        // The cancelled timer's own message never comes.
        assert_eq!(seen[8], Seen::TimedOut);
    }
}

#[test]
fn under_anytime_timers_read_timer_races_the_timer_firing() {
    let program = Program::new(vec![vec![
        send_after(Target::Myself, 1, 10),
        Action::ReadTimer(1),
    ]]);
    let mut lefts = std::collections::BTreeSet::new();
    for_many_interleavings(
        &program,
        timers(TimerMode::Anytime, DeliveryMode::Instant),
        40,
        |r| {
            if let Seen::Result(OpResult::TimerLeft { left, .. }) = r.seen_by(&[])[1] {
                lefts.insert(left);
            }
        },
    );
    assert_eq!(
        lefts.into_iter().collect::<Vec<_>>(),
        [None, Some(10)],
        "a read before the timer fires sees it pending, one after sees it gone"
    );
}

/// SPEC §9: a managed process may send to processes outside the run; a timer's message to
/// one is a real send when the timer fires.
#[test]
fn a_send_after_to_a_pid_outside_the_run_is_sent_for_real_when_it_fires() {
    let program = Program::new(vec![vec![
        send_after(Target::Outside, 3, 25),
        Action::Sleep(50),
    ]]);
    let r = run_with(&program, on_idle(), Prefer::runs());
    assert_eq!(r.outcome, Outcome::Pass);
    assert_eq!(
        r.effects
            .iter()
            .filter(|e| matches!(e, Effect::SendTimerOutside { timer: 0 }))
            .count(),
        1
    );
    assert!(r.has_event(|e| matches!(e.kind, EventKind::TimerFired { timer: 0, now: 25 })));
}
