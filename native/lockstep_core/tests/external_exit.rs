//! A process killed from outside the run (the adapter notices it through its process
//! monitor and calls `Session::external_exit`).

use lockstep_core::strategy::Replay;
use lockstep_core::{
    Config, CrashMode, Decision, Effect, EngineError, ExitCause, Next, Op, OpResult, Outcome,
    ProcName, ProcState, Reason, Session,
};

fn run_p(path: &[u32]) -> Decision {
    Decision::Run(ProcName::from_path(path.to_vec()))
}

/// P spawns P.1; P.1 spawns a linked P.1.1 and goes on running. Killing P.1.1 from outside
/// must take P.1 down through the link even though P.1 is the running process: it gets a
/// kill effect, stops being the running process, and the next process is picked.
#[test]
fn killing_the_linked_partner_of_the_running_process_ends_it_too() {
    let schedule = vec![
        run_p(&[]),  // P starts
        run_p(&[]),  // P spawns P.1
        run_p(&[1]), // P.1 starts
        run_p(&[1]), // P.1 spawns P.1.1 (linked)
        run_p(&[]),  // P yields, after the kill
    ];
    let mut strategy = Replay::new(schedule);
    let config = Config {
        crash: CrashMode::Ignore,
        ..Config::default()
    };
    let mut session = Session::new(config, &mut strategy, 0);
    assert_eq!(
        session.start(&mut strategy),
        Next::Wake(0, OpResult::Started)
    );
    let next = session
        .sync(
            0,
            Op::Spawn {
                link: false,
                monitor: false,
            },
            &mut strategy,
        )
        .unwrap();
    assert_eq!(next, Next::Continue(OpResult::Spawned { child: 1 }));
    let next = session.sync(0, Op::Yield, &mut strategy).unwrap();
    assert_eq!(next, Next::Wake(1, OpResult::Started));
    let next = session
        .sync(
            1,
            Op::Spawn {
                link: true,
                monitor: false,
            },
            &mut strategy,
        )
        .unwrap();
    assert_eq!(next, Next::Continue(OpResult::Spawned { child: 2 }));
    assert_eq!(session.running(), Some(1));

    let next = session.external_exit(2, &mut strategy);

    let effects: Vec<Effect> = session.take_effects().collect();
    assert_eq!(
        effects,
        vec![Effect::Kill {
            proc: 1,
            reason: Reason::Killed
        }]
    );
    assert_eq!(session.proc(1).unwrap().state, ProcState::Exited);
    assert_eq!(
        session.proc(1).unwrap().exit,
        Some(ExitCause::Signal {
            from: 2,
            reason: Reason::Killed
        })
    );
    assert_eq!(next, Next::Wake(0, OpResult::Yielded));
    assert_eq!(session.running(), Some(0));
    // The killed process cannot come back by making another call.
    assert_eq!(
        session.sync(1, Op::Yield, &mut strategy),
        Err(EngineError::NotRunning {
            proc: 1,
            state: ProcState::Exited
        })
    );
    assert_eq!(
        session.exit(0, lockstep_core::ExitClass::Normal, &mut strategy),
        Ok(Next::Ended)
    );
    assert_eq!(session.outcome(), Some(&Outcome::Pass));
}

/// The same kill when crashes fail the run: the run ends with the crash, and the running
/// process is still told to die.
#[test]
fn killing_the_linked_partner_of_the_running_process_with_crash_fail() {
    let mut strategy = Replay::new(vec![run_p(&[]), run_p(&[]), run_p(&[1]), run_p(&[1])]);
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
    session.sync(0, Op::Yield, &mut strategy).unwrap();
    session
        .sync(
            1,
            Op::Spawn {
                link: true,
                monitor: false,
            },
            &mut strategy,
        )
        .unwrap();

    assert_eq!(session.external_exit(2, &mut strategy), Next::Ended);

    assert_eq!(session.outcome(), Some(&Outcome::Crash { proc: 2 }));
    let effects: Vec<Effect> = session.take_effects().collect();
    assert_eq!(
        effects,
        vec![Effect::Kill {
            proc: 1,
            reason: Reason::Killed
        }]
    );
    assert_eq!(session.running(), None);
    assert_eq!(session.proc(1).unwrap().state, ProcState::Exited);
}

/// The running process itself killed from outside: the next one is picked at once.
#[test]
fn killing_the_running_process_picks_the_next_one() {
    let mut strategy = Replay::new(vec![run_p(&[]), run_p(&[]), run_p(&[1]), run_p(&[])]);
    let config = Config {
        crash: CrashMode::Ignore,
        ..Config::default()
    };
    let mut session = Session::new(config, &mut strategy, 0);
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
    assert_eq!(
        session.sync(0, Op::Yield, &mut strategy).unwrap(),
        Next::Wake(1, OpResult::Started)
    );

    assert_eq!(
        session.external_exit(1, &mut strategy),
        Next::Wake(0, OpResult::Yielded)
    );
    assert_eq!(session.take_effects().count(), 0);
    assert_eq!(session.proc(1).unwrap().exit, Some(ExitCause::External));
    assert_eq!(session.running(), Some(0));
}

/// P monitors P.1 and is in the middle of a receive attempt (its own message `:x` in its
/// mailbox) when P.1 is killed from outside: the `:DOWN` reaches P's mailbox while P
/// tries, so P's attempt may not have seen it. Its retry must try again rather than block
/// (which, with nothing else alive, would be reported as a deadlock).
#[test]
fn a_message_that_arrives_during_a_receive_attempt_is_tried_again() {
    let decisions = vec![run_p(&[]); 5];
    let mut strategy = Replay::new(decisions);
    let config = Config {
        crash: CrashMode::Ignore,
        ..Config::default()
    };
    let mut session = Session::new(config, &mut strategy, 0);
    assert_eq!(
        session.start(&mut strategy),
        Next::Wake(0, OpResult::Started)
    );
    let spawn = Op::Spawn {
        link: false,
        monitor: true,
    };
    assert!(matches!(
        session.sync(0, spawn, &mut strategy).unwrap(),
        Next::Continue(OpResult::Spawned { child: 1 })
    ));
    let to_self = Op::Send {
        to: lockstep_core::Target::Proc(0),
    };
    assert!(matches!(
        session.sync(0, to_self, &mut strategy).unwrap(),
        Next::Continue(OpResult::Sent { .. })
    ));
    let first = Op::Receive {
        retry: false,
        timeout: None,
    };
    assert_eq!(
        session.sync(0, first, &mut strategy).unwrap(),
        Next::Continue(OpResult::ReceiveAttempt { last: false })
    );

    // P.1 dies from outside while P tries its mailbox.
    assert_eq!(session.external_exit(1, &mut strategy), Next::Ended);
    assert_eq!(session.proc(0).unwrap().mailbox, 2);

    let retry = Op::Receive {
        retry: true,
        timeout: None,
    };
    assert_eq!(
        session.sync(0, retry, &mut strategy).unwrap(),
        Next::Continue(OpResult::ReceiveAttempt { last: false })
    );
    assert_eq!(session.outcome(), None);

    // A retry with nothing new blocks, as before.
    assert_eq!(session.sync(0, retry, &mut strategy).unwrap(), Next::Ended);
    assert!(matches!(session.outcome(), Some(Outcome::Deadlock { .. })));
}
