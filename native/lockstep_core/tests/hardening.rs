//! Hardening (issue 10): the rules of OTP 25 that the engine must keep, each driven call by
//! call on a session.
//!
//! The strategy here is `Lazy`: the lowest-numbered process that can run goes next; an
//! in-flight message is delivered only when no process can run, a timer fires only when
//! nothing else can happen. So a message stays in flight until the test lets it arrive,
//! and what the engine delivers on its own (to keep OTP's signal order) is visible.

use lockstep_core::{
    Choice, ChoiceSet, ClusterOp, Config, CrashMode, Decision, DeliveryMode, Divergence, Effect,
    EventKind, ExitCause, MsgId, MsgKind, MsgState, Next, Op, OpResult, Outcome, PartitionMode,
    ProcId, Reason, Session, Strategy, Target, View,
};
use std::collections::VecDeque;

/// The lowest-numbered runnable process first; then the oldest deliverable message; then
/// the timer. `random` answers from a queue (0 when it is empty).
struct Lazy {
    randoms: VecDeque<u64>,
}

impl Lazy {
    fn new() -> Self {
        Lazy {
            randoms: VecDeque::new(),
        }
    }

    fn with_randoms(values: &[u64]) -> Self {
        Lazy {
            randoms: values.iter().copied().collect(),
        }
    }
}

impl Strategy for Lazy {
    fn name(&self) -> &'static str {
        "lazy"
    }

    fn begin_iteration(&mut self, _seed: u64) {}

    fn pick(&mut self, _view: &View<'_>, offered: &ChoiceSet) -> Result<Choice, Divergence> {
        let choices: Vec<Choice> = offered.iter().collect();
        let rank = |c: &Choice| match c {
            Choice::Run(p) => (0, *p),
            Choice::Deliver(m) => (1, *m),
            Choice::Fire(t) => (2, *t),
        };
        let best = (0..choices.len())
            .min_by_key(|&i| rank(&choices[i]))
            .expect("never asked without choices");
        Ok(choices[best])
    }

    fn random(&mut self, _view: &View<'_>, n: u64) -> Result<u64, Divergence> {
        Ok(self.randoms.pop_front().unwrap_or(0).min(n - 1))
    }
}

const P: ProcId = 0;
const Q: ProcId = 1;

fn delayed() -> Config {
    Config {
        delivery: DeliveryMode::Delayed,
        crash: CrashMode::Ignore,
        ..Config::default()
    }
}

fn instant() -> Config {
    Config {
        crash: CrashMode::Ignore,
        ..Config::default()
    }
}

/// A session whose root `P` has started.
fn started(config: Config, strategy: &mut Lazy) -> Session {
    let mut s = Session::new(config, strategy, 1);
    assert_eq!(s.start(strategy), Next::Wake(P, OpResult::Started));
    s
}

/// `p` performs `op` and, being the lowest-numbered process, goes on: its result.
fn call(s: &mut Session, st: &mut Lazy, p: ProcId, op: Op) -> OpResult {
    match s.sync(p, op, st).expect("the running process calls") {
        Next::Continue(result) => result,
        other => panic!("{p} performing {op:?}: expected to go on, got {other:?}"),
    }
}

fn sync(s: &mut Session, st: &mut Lazy, p: ProcId, op: Op) -> Next {
    s.sync(p, op, st).expect("the running process calls")
}

fn exit_signal(to: ProcId, reason: Reason) -> Op {
    Op::ExitSignal { to, reason }
}

/// The messages and signals from `from` to `to`, in send order, with their state.
fn messages(s: &Session, from: ProcId, to: ProcId) -> Vec<(MsgId, MsgKind, MsgState)> {
    (0..)
        .map_while(|m| s.message(m).map(|msg| (m, *msg)))
        .filter(|(_, msg)| msg.from == from && msg.to == Some(to))
        .map(|(m, msg)| (m, msg.kind, msg.state))
        .collect()
}

fn effects(s: &mut Session) -> Vec<Effect> {
    s.take_effects().collect()
}

/// P spawns Q (not started: it counts as alive), under `config`.
fn p_and_q(config: Config, st: &mut Lazy) -> Session {
    let mut s = started(config, st);
    assert_eq!(
        call(
            &mut s,
            st,
            P,
            Op::Spawn {
                link: false,
                monitor: false
            }
        ),
        OpResult::Spawned { child: Q }
    );
    s
}

// Item 6: operations OTP orders after the caller's earlier signals to their target ---------

/// OTP 25 `is_process_alive/1`: "all signals, sent from P1 to P2 ... before the call, will
/// be delivered to P2 before the aliveness of P2 is checked", so `exit(P2, kill)` then
/// `is_process_alive(P2)` is always false (erlang(3), is_process_alive/1).
#[test]
fn alive_after_kill_is_false_although_the_kill_was_in_flight() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    assert_eq!(
        call(&mut s, st, P, exit_signal(Q, Reason::Kill)),
        OpResult::Done
    );
    assert_eq!(
        messages(&s, P, Q)[0].2,
        MsgState::InFlight,
        "under :delayed the kill travels"
    );
    assert_eq!(
        call(&mut s, st, P, Op::Alive { of: Q }),
        OpResult::Alive(false)
    );
    assert_eq!(
        s.proc(Q).unwrap().exit,
        Some(ExitCause::Signal {
            from: P,
            reason: Reason::Kill
        })
    );
    assert!(effects(&mut s).contains(&Effect::Kill {
        proc: Q,
        reason: Reason::Killed
    }));
}

/// A trapped signal delivered first leaves the target alive: the flush delivers, it does
/// not kill.
#[test]
fn alive_after_a_trapped_exit_signal_is_true() {
    let st = &mut Lazy::new();
    let mut s = started(delayed(), st);
    call(
        &mut s,
        st,
        P,
        Op::Spawn {
            link: false,
            monitor: false,
        },
    );
    // Q starts, traps exits and blocks in a receive.
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 5 }),
        Next::Wake(Q, OpResult::Started)
    );
    call(&mut s, st, Q, Op::TrapExit { on: true });
    let next = sync(
        &mut s,
        st,
        Q,
        Op::Receive {
            retry: false,
            timeout: None,
        },
    );
    assert_eq!(next, Next::Wake(P, OpResult::Done), "P's sleep timer fired");
    call(&mut s, st, P, exit_signal(Q, Reason::Given(0)));
    assert_eq!(
        call(&mut s, st, P, Op::Alive { of: Q }),
        OpResult::Alive(true)
    );
    assert_eq!(s.proc(Q).unwrap().mailbox, 1, "the {{:EXIT, P, _}} arrived");
}

/// OTP 25: a monitor signal reaches its target after the caller's earlier exit signal, so
/// the target is dead by then: `{:DOWN, ref, :process, pid, :noproc}` (plain BEAM:
/// `exit(Q, boom), monitor(process, Q)` gives `noproc`, measured).
#[test]
fn monitor_after_an_exit_signal_gives_noproc() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    call(&mut s, st, P, exit_signal(Q, Reason::Given(0)));
    assert_eq!(
        call(&mut s, st, P, Op::Monitor { target: Q }),
        OpResult::MonitorSet { monitor: 0 }
    );
    let from_q = messages(&s, Q, P);
    assert_eq!(
        from_q,
        vec![(
            from_q[0].0,
            MsgKind::Down {
                monitor: 0,
                reason: Reason::NoProc
            },
            MsgState::InFlight
        )],
        "one :noproc :DOWN, travelling (OTP 25 does not put it in the mailbox at once)"
    );
}

/// OTP 25 link/1 after `exit(Q, kill)`: Q still existed when link/1 looked, so it returns
/// true; the link signal then reaches a dead process, which answers with a `noproc` exit
/// signal (plain BEAM, measured: a trapping caller gets `{'EXIT', Q, noproc}`, one that
/// does not trap is killed with `noproc`).
#[test]
fn link_after_kill_returns_and_the_caller_gets_a_noproc_exit_signal() {
    for trapping in [true, false] {
        let st = &mut Lazy::new();
        let mut s = started(delayed(), st);
        if trapping {
            call(&mut s, st, P, Op::TrapExit { on: true });
        }
        call(
            &mut s,
            st,
            P,
            Op::Spawn {
                link: false,
                monitor: false,
            },
        );
        call(&mut s, st, P, exit_signal(Q, Reason::Kill));
        assert_eq!(call(&mut s, st, P, Op::Link { to: Q }), OpResult::Done);
        assert!(
            s.proc(P).unwrap().links.is_empty(),
            "no link to a dead process"
        );
        let exits: Vec<MsgKind> = messages(&s, Q, P).into_iter().map(|m| m.1).collect();
        assert_eq!(
            exits,
            vec![MsgKind::Exit {
                reason: Reason::NoProc,
                link: true
            }]
        );
        // P waits; the signal is delivered.
        let next = sync(
            &mut s,
            st,
            P,
            Op::Receive {
                retry: false,
                timeout: None,
            },
        );
        if trapping {
            assert_eq!(
                next,
                Next::Continue(OpResult::ReceiveAttempt { last: false })
            );
            assert_eq!(s.proc(P).unwrap().mailbox, 1);
        } else {
            assert_eq!(next, Next::Ended);
            assert_eq!(
                s.proc(P).unwrap().exit,
                Some(ExitCause::Signal {
                    from: Q,
                    reason: Reason::NoProc
                })
            );
            assert_eq!(s.outcome(), Some(&Outcome::Exception { proc: P }));
        }
    }
}

/// OTP: "Once unlink(Id) has returned, it is guaranteed that the link between the caller
/// and the entity referred to by Id has no effect on the caller in the future" (erlang(3),
/// unlink/1). An exit signal of the link still travelling when unlink/1 runs is dropped.
#[test]
fn unlink_drops_the_exit_signals_of_the_link_still_in_flight() {
    let st = &mut Lazy::new();
    let mut s = started(delayed(), st);
    call(&mut s, st, P, Op::TrapExit { on: true });
    call(
        &mut s,
        st,
        P,
        Op::Spawn {
            link: true,
            monitor: false,
        },
    );
    call(&mut s, st, P, exit_signal(Q, Reason::Given(0)));
    // alive?/1 delivers the signal first: Q dies, its link's exit signal travels to P.
    assert_eq!(
        call(&mut s, st, P, Op::Alive { of: Q }),
        OpResult::Alive(false)
    );
    let exit = messages(&s, Q, P)[0];
    assert_eq!(exit.2, MsgState::InFlight);
    call(&mut s, st, P, Op::Unlink { to: Q });
    assert_eq!(messages(&s, Q, P)[0].2, MsgState::Dropped);
    // Nothing reaches P: its receive times out.
    let next = sync(
        &mut s,
        st,
        P,
        Op::Receive {
            retry: false,
            timeout: Some(10),
        },
    );
    assert_eq!(
        next,
        Next::Continue(OpResult::ReceiveAttempt { last: true })
    );
    assert_eq!(s.proc(P).unwrap().mailbox, 0);
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::ExitTrapped { .. })));
}

/// OTP: no `:DOWN` is placed in the mailbox after demonitor/1 returns (held already: the
/// monitor is inactive when the notification arrives).
#[test]
fn demonitor_drops_the_down_still_in_flight() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    call(&mut s, st, P, Op::Monitor { target: Q });
    call(&mut s, st, P, exit_signal(Q, Reason::Given(0)));
    call(&mut s, st, P, Op::Alive { of: Q });
    assert_eq!(messages(&s, Q, P)[0].2, MsgState::InFlight);
    call(&mut s, st, P, Op::Demonitor { monitor: Some(0) });
    sync(
        &mut s,
        st,
        P,
        Op::Receive {
            retry: false,
            timeout: Some(10),
        },
    );
    assert_eq!(s.proc(P).unwrap().mailbox, 0);
}

/// register/2 is not a signal (OTP 25 looks the process up in the process table): right
/// after `exit(Q, kill)` it may still succeed, and the name goes when Q dies (plain BEAM,
/// measured: `register(n, Q)` returns true and `whereis(n)` is Q).
#[test]
fn register_is_not_ordered_after_the_callers_signals() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    call(&mut s, st, P, exit_signal(Q, Reason::Kill));
    assert_eq!(
        call(&mut s, st, P, Op::Register { name: 0, proc: Q }),
        OpResult::NameOk(true)
    );
    assert_eq!(
        call(&mut s, st, P, Op::Alive { of: Q }),
        OpResult::Alive(false)
    );
    assert_eq!(
        call(&mut s, st, P, Op::Whereis { name: 0 }),
        OpResult::Found(None)
    );
}

// Item 7: what is in the mailbox when the call returns ------------------------------------

/// SPEC §1: a message to self is in the mailbox when send returns, also under `:delayed`.
#[test]
fn a_message_to_oneself_is_in_the_mailbox_at_once_under_delayed_delivery() {
    let st = &mut Lazy::new();
    let mut s = started(delayed(), st);
    let OpResult::Sent { msg, fate } = call(
        &mut s,
        st,
        P,
        Op::Send {
            to: Target::Proc(P),
        },
    ) else {
        panic!("a send returns Sent");
    };
    assert_eq!(fate, lockstep_core::SendFate::Delivered);
    assert_eq!(s.message(msg).unwrap().state, MsgState::InMailbox);
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
    // `receive … after 0` finds it.
    assert_eq!(
        call(
            &mut s,
            st,
            P,
            Op::Receive {
                retry: false,
                timeout: Some(0)
            }
        ),
        OpResult::ReceiveAttempt { last: true }
    );
    s.consumed(P, msg).unwrap();
}

/// OTP 25 (measured): `exit(self(), boom)` in a trapping process leaves `{'EXIT', self(),
/// boom}` in the mailbox when exit/2 returns.
#[test]
fn a_trapped_exit_signal_to_oneself_is_in_the_mailbox_at_once() {
    let st = &mut Lazy::new();
    let mut s = started(delayed(), st);
    call(&mut s, st, P, Op::TrapExit { on: true });
    call(&mut s, st, P, exit_signal(P, Reason::Given(0)));
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
    assert!(matches!(
        effects(&mut s).as_slice(),
        [Effect::DeliverSignal { to: P, .. }]
    ));
}

/// OTP 25 link/1 to a local process that no longer exists, from a trapping process:
/// `erts_deliver_exit_message` puts `{'EXIT', Pid, noproc}` straight into the caller's
/// queue (measured: `receive … after 0` finds it).
#[test]
fn link_to_a_dead_process_from_a_trapping_caller_leaves_the_exit_in_the_mailbox_at_once() {
    let st = &mut Lazy::new();
    let mut s = started(delayed(), st);
    call(&mut s, st, P, Op::TrapExit { on: true });
    call(
        &mut s,
        st,
        P,
        Op::Spawn {
            link: false,
            monitor: false,
        },
    );
    call(&mut s, st, P, exit_signal(Q, Reason::Kill));
    assert_eq!(
        call(&mut s, st, P, Op::Alive { of: Q }),
        OpResult::Alive(false)
    );
    assert_eq!(call(&mut s, st, P, Op::Link { to: Q }), OpResult::Done);
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
    // From a caller that does not trap it raises :noproc (unchanged).
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    call(&mut s, st, P, exit_signal(Q, Reason::Kill));
    call(&mut s, st, P, Op::Alive { of: Q });
    assert_eq!(call(&mut s, st, P, Op::Link { to: Q }), OpResult::NoProc);
}

/// OTP 25 monitor/2 of a local process that no longer exists: the `:noproc` `:DOWN` is NOT
/// in the mailbox when monitor/2 returns (measured: `receive … after 0` misses it, a
/// millisecond later it is there), so it travels like any signal.
#[test]
fn monitor_of_a_dead_local_process_sends_a_travelling_noproc_down() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(delayed(), st);
    call(&mut s, st, P, exit_signal(Q, Reason::Kill));
    call(&mut s, st, P, Op::Alive { of: Q });
    call(&mut s, st, P, Op::Monitor { target: Q });
    assert_eq!(s.proc(P).unwrap().mailbox, 0);
    assert!(matches!(
        messages(&s, Q, P).as_slice(),
        [(
            _,
            MsgKind::Down {
                reason: Reason::NoProc,
                ..
            },
            MsgState::InFlight
        )]
    ));
}

// Item 9: a process killed from outside the run, with the real reason ----------------------

#[test]
fn an_external_exit_signal_reaches_links_and_monitors_with_its_reason() {
    let st = &mut Lazy::new();
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::TrapExit { on: true });
    call(
        &mut s,
        st,
        P,
        Op::Spawn {
            link: true,
            monitor: false,
        },
    );
    call(&mut s, st, P, Op::Monitor { target: Q });
    // The adapter saved the reason term (say :shutdown) as Q's own.
    let reason = Reason::ExitOf(Q);
    assert_eq!(s.external_exit_with(Q, reason, st), Next::Ended);
    assert_eq!(s.proc(Q).unwrap().exit, Some(ExitCause::External));
    let kinds: Vec<MsgKind> = messages(&s, Q, P).into_iter().map(|m| m.1).collect();
    assert_eq!(
        kinds,
        vec![
            MsgKind::Exit { reason, link: true },
            MsgKind::Down { monitor: 0, reason }
        ]
    );
    assert_eq!(s.proc(P).unwrap().mailbox, 2);
    // The reason-less safety net still says :killed.
    let st = &mut Lazy::new();
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::TrapExit { on: true });
    call(
        &mut s,
        st,
        P,
        Op::Spawn {
            link: true,
            monitor: false,
        },
    );
    s.external_exit(Q, st);
    assert!(matches!(
        messages(&s, Q, P).as_slice(),
        [(
            _,
            MsgKind::Exit {
                reason: Reason::Killed,
                ..
            },
            _
        )]
    ));
}

// Item 20: monitors and links made across a connection already declared lost --------------

/// P on the home node, Q on node 1 blocked in a receive, a `:drop` partition between them
/// and its tick fired (`net_ticktime` passed): the connection is lost. P runs.
fn across_a_lost_connection(trapping: bool, st: &mut Lazy) -> Session {
    let mut s = started(instant(), st);
    if trapping {
        call(&mut s, st, P, Op::TrapExit { on: true });
    }
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    assert_eq!(
        call(
            &mut s,
            st,
            P,
            Op::SpawnOn {
                link: false,
                monitor: false,
                node: 1
            }
        ),
        OpResult::Spawned { child: Q }
    );
    let part = s.define_partition(vec![0], vec![1], PartitionMode::Drop);
    call(&mut s, st, P, Op::Cluster(ClusterOp::Partition(part)));
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 20_000 }),
        Next::Wake(Q, OpResult::Started)
    );
    let next = sync(
        &mut s,
        st,
        Q,
        Op::Receive {
            retry: false,
            timeout: None,
        },
    );
    assert_eq!(next, Next::Wake(P, OpResult::Done));
    assert!(s
        .events()
        .iter()
        .any(|e| e.kind == EventKind::Tick { partition: part }));
    assert!(s.cluster().connection_lost(0, 1));
    s
}

/// SPEC §4; OTP 25 monitor/2 of a pid of a node that is not connected
/// (`ERTS_DSIG_PREP_NOT_CONNECTED`): `{:DOWN, ref, :process, pid, :noconnection}` at once.
#[test]
fn a_monitor_across_a_lost_connection_gets_noconnection_at_once() {
    let st = &mut Lazy::new();
    let mut s = across_a_lost_connection(false, st);
    call(&mut s, st, P, Op::Monitor { target: Q });
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
    assert!(s.events().iter().any(|e| e.proc == P
        && matches!(
            e.kind,
            EventKind::Down {
                reason: Reason::NoConnection,
                ..
            }
        )));
    assert!(!s.monitor(0).unwrap().active, "the monitor fired");
}

/// OTP 25 link/1 to a pid of a node that is not connected: true, and a `:noconnection`
/// exit signal at once (a trapping caller gets `{:EXIT, pid, :noconnection}`; one that
/// does not trap dies of it).
#[test]
fn a_link_across_a_lost_connection_gets_a_noconnection_exit_signal_at_once() {
    let st = &mut Lazy::new();
    let mut s = across_a_lost_connection(true, st);
    assert_eq!(call(&mut s, st, P, Op::Link { to: Q }), OpResult::Done);
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
    assert!(s.proc(P).unwrap().links.is_empty());

    let st = &mut Lazy::new();
    let mut s = across_a_lost_connection(false, st);
    assert_eq!(sync(&mut s, st, P, Op::Link { to: Q }), Next::Ended);
    assert_eq!(
        s.proc(P).unwrap().exit,
        Some(ExitCause::Signal {
            from: Q,
            reason: Reason::NoConnection
        })
    );
}

#[test]
fn a_node_monitor_across_a_lost_connection_fires_at_once() {
    let st = &mut Lazy::new();
    let mut s = across_a_lost_connection(false, st);
    call(&mut s, st, P, Op::Cluster(ClusterOp::MonitorNode(1)));
    assert_eq!(s.proc(P).unwrap().mailbox, 1);
}

/// Before the tick the connection is not known to be lost: the monitor is set, and the
/// tick fires it.
#[test]
fn a_monitor_across_a_partition_before_its_tick_fires_at_the_tick() {
    let st = &mut Lazy::new();
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 1,
        },
    );
    let part = s.define_partition(vec![0], vec![1], PartitionMode::Drop);
    call(&mut s, st, P, Op::Cluster(ClusterOp::Partition(part)));
    call(&mut s, st, P, Op::Monitor { target: Q });
    assert_eq!(s.proc(P).unwrap().mailbox, 0);
    assert!(!s.cluster().connection_lost(0, 1));
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 20_000 }),
        Next::Wake(Q, OpResult::Started)
    );
    sync(
        &mut s,
        st,
        Q,
        Op::Receive {
            retry: false,
            timeout: None,
        },
    );
    assert_eq!(s.proc(P).unwrap().mailbox, 1, "the tick fired the monitor");
}

// Item 19: the global registry per side of a partition ------------------------------------

const A: ProcId = 1;
const B: ProcId = 2;
const LEADER: u32 = 0;

fn register(name: u32, proc: ProcId) -> Op {
    Op::Cluster(ClusterOp::GlobalRegister { name, proc })
}

fn whereis(name: u32) -> Op {
    Op::Cluster(ClusterOp::GlobalWhereis(name))
}

/// P on the home node with A on node 1 and B on node 2, all started; then a `:drop`
/// partition `[home, 1] | [2]`. P runs.
fn two_sides(st: &mut Lazy) -> Session {
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(2)));
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 1,
        },
    );
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 2,
        },
    );
    let part = s.define_partition(vec![0, 1], vec![2], PartitionMode::Drop);
    call(&mut s, st, P, Op::Cluster(ClusterOp::Partition(part)));
    s
}

/// A and B each try to register LEADER from their side while the cut is not yet declared
/// lost: both wait for `global`'s lock until the tick, then register (A first) and block;
/// P sleeps through it and runs again. Returns what each registration answered.
fn split_brain(s: &mut Session, st: &mut Lazy) -> (OpResult, OpResult) {
    assert_eq!(
        sync(s, st, P, Op::Sleep { ms: 20_000 }),
        Next::Wake(A, OpResult::Started)
    );
    assert_eq!(
        sync(s, st, A, register(LEADER, A)),
        Next::Wake(B, OpResult::Started),
        "A waits for the lock"
    );
    let Next::Wake(A, a) = sync(s, st, B, register(LEADER, B)) else {
        panic!("after the tick A registers first");
    };
    assert_eq!(s.now(), 15_000, "the tick freed the lock");
    for who in [A, B] {
        assert!(s
            .events()
            .iter()
            .any(|e| e.proc == who && e.kind == EventKind::GlobalLockWait { name: LEADER }));
    }
    assert_eq!(call(s, st, A, whereis(LEADER)), OpResult::Found(Some(A)));
    let receive = Op::Receive {
        retry: false,
        timeout: None,
    };
    let Next::Wake(B, b) = sync(s, st, A, receive) else {
        panic!("then B registers");
    };
    let seen_by_b = call(s, st, B, whereis(LEADER));
    assert_eq!(sync(s, st, B, receive), Next::Wake(P, OpResult::Done));
    assert_eq!(seen_by_b, OpResult::Found(Some(B)));
    (a, b)
}

/// SPEC §4: once a partition is declared lost each side has its own view of the global
/// names, so a name can be registered on both sides.
#[test]
fn each_side_of_a_partition_registers_a_global_name_of_its_own() {
    let st = &mut Lazy::new();
    let mut s = two_sides(st);
    let (a, b) = split_brain(&mut s, st);
    assert_eq!((a, b), (OpResult::NameOk(true), OpResult::NameOk(true)));
    // The home node is on A's side.
    assert_eq!(
        call(&mut s, st, P, whereis(LEADER)),
        OpResult::Found(Some(A))
    );
    assert_eq!(s.global_names(0), vec![LEADER]);
    assert_eq!(s.cluster().global_whereis(2, LEADER), Some(B));
}

/// On heal the clash is resolved as `global:random_exit_name/3` does: one registration is
/// kept everywhere, the other holder is killed (`exit(Pid, kill)`: its monitors see
/// `:killed`). The strategy chooses which (a `random` decision), and the trace says so.
#[test]
fn heal_resolves_a_global_name_clash_with_the_strategys_choice() {
    for (choice, kept, killed) in [(0, A, B), (1, B, A)] {
        let st = &mut Lazy::with_randoms(&[choice]);
        let mut s = two_sides(st);
        split_brain(&mut s, st);
        if killed == A {
            // (B is across the lost connection: a monitor of it would fire at once.)
            call(&mut s, st, P, Op::Monitor { target: A });
        }
        assert_eq!(
            call(&mut s, st, P, Op::Cluster(ClusterOp::Heal)),
            OpResult::Done
        );
        assert_eq!(
            call(&mut s, st, P, whereis(LEADER)),
            OpResult::Found(Some(kept))
        );
        for node in 0..3 {
            assert_eq!(s.cluster().global_whereis(node, LEADER), Some(kept));
        }
        assert_eq!(s.proc(killed).unwrap().exit, Some(ExitCause::NameConflict));
        assert!(s.proc(kept).unwrap().is_alive());
        assert!(s.events().iter().any(|e| e.proc == P
            && e.kind
                == EventKind::GlobalConflict {
                    name: LEADER,
                    kept,
                    killed
                }));
        if killed == A {
            assert!(matches!(
                messages(&s, A, P).as_slice(),
                [(
                    _,
                    MsgKind::Down {
                        reason: Reason::Killed,
                        ..
                    },
                    MsgState::InFlight
                )]
            ));
        }
        assert!(
            effects(&mut s).contains(&Effect::Kill {
                proc: killed,
                reason: Reason::Killed
            }),
            "the loser's BEAM process is told to die"
        );
        assert!(
            s.schedule().contains(&Decision::Random(choice)),
            "the choice is in the schedule"
        );
    }
}

/// Before the tick the other side still sees a name registered before the partition, and
/// a registration there waits for the lock; at the tick it forgets the names held across
/// the cut (as `global` does on `nodedown`), and the registration goes through.
#[test]
fn a_side_forgets_the_other_sides_names_when_the_connection_is_lost() {
    let st = &mut Lazy::new();
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(2)));
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 1,
        },
    );
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 2,
        },
    );
    assert_eq!(
        call(&mut s, st, P, register(LEADER, A)),
        OpResult::NameOk(true)
    );
    for node in 0..3 {
        assert_eq!(s.cluster().global_whereis(node, LEADER), Some(A));
    }
    let part = s.define_partition(vec![0, 1], vec![2], PartitionMode::Drop);
    call(&mut s, st, P, Op::Cluster(ClusterOp::Partition(part)));
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 20_000 }),
        Next::Wake(A, OpResult::Started)
    );
    let receive = Op::Receive {
        retry: false,
        timeout: None,
    };
    assert_eq!(
        sync(&mut s, st, A, receive),
        Next::Wake(B, OpResult::Started)
    );
    assert_eq!(
        call(&mut s, st, B, whereis(LEADER)),
        OpResult::Found(Some(A))
    );
    assert_eq!(
        sync(&mut s, st, B, register(LEADER, B)),
        Next::Continue(OpResult::NameOk(true))
    );
    assert_eq!(s.now(), 15_000);
    assert!(s.cluster().connection_lost(2, 1));
    assert_eq!(s.cluster().global_whereis(2, LEADER), Some(B));
    assert_eq!(s.cluster().global_whereis(0, LEADER), Some(A));
}

/// A registration waiting for the lock when the partition heals before its tick goes
/// through against the whole cluster: no split brain.
#[test]
fn a_registration_waiting_for_the_lock_goes_through_everywhere_after_an_early_heal() {
    let st = &mut Lazy::new();
    let mut s = two_sides(st);
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 10 }),
        Next::Wake(A, OpResult::Started)
    );
    assert_eq!(
        sync(&mut s, st, A, register(LEADER, A)),
        Next::Wake(B, OpResult::Started)
    );
    let receive = Op::Receive {
        retry: false,
        timeout: None,
    };
    assert_eq!(sync(&mut s, st, B, receive), Next::Wake(P, OpResult::Done));
    call(&mut s, st, P, Op::Cluster(ClusterOp::Heal));
    assert_eq!(
        sync(&mut s, st, P, Op::Sleep { ms: 10 }),
        Next::Wake(A, OpResult::NameOk(true))
    );
    for node in 0..3 {
        assert_eq!(s.cluster().global_whereis(node, LEADER), Some(A));
    }
}

/// OTP 25 `check_dupname/2`: a pid that has a global name gets `no` for another.
#[test]
fn a_pid_gets_one_global_name() {
    let st = &mut Lazy::new();
    let mut s = p_and_q(instant(), st);
    assert_eq!(call(&mut s, st, P, register(0, Q)), OpResult::NameOk(true));
    assert_eq!(call(&mut s, st, P, register(1, Q)), OpResult::NameOk(false));
    assert_eq!(call(&mut s, st, P, register(1, P)), OpResult::NameOk(true));
}

/// A node that is down has no view; its processes' names die with them; a node started
/// again learns the names of the node it reaches.
#[test]
fn stopping_and_starting_a_node_and_the_global_names() {
    let st = &mut Lazy::new();
    let mut s = started(instant(), st);
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(2)));
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 1,
        },
    );
    call(
        &mut s,
        st,
        P,
        Op::SpawnOn {
            link: false,
            monitor: false,
            node: 2,
        },
    );
    call(&mut s, st, P, register(LEADER, A));
    call(&mut s, st, P, register(1, B));
    call(&mut s, st, P, Op::Cluster(ClusterOp::StopNode(1)));
    assert_eq!(call(&mut s, st, P, whereis(LEADER)), OpResult::Found(None));
    assert!(s.cluster().global_names(1).is_empty());
    assert_eq!(s.global_names(0), vec![1]);
    call(&mut s, st, P, Op::Cluster(ClusterOp::StartNode(1)));
    assert_eq!(s.cluster().global_whereis(1, 1), Some(B));
}
