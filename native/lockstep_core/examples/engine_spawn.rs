//! The engine's share of a process's life, without the BEAM: the root spawns `N` children
//! one after another through `Session` directly, as the NIF drives it; each child starts,
//! sends the root one message and exits, and the root takes each message. Prints
//! nanoseconds per child (spawn, start, send, receive, exit: five engine calls, four of
//! them steps), best of several rounds, for one long iteration and for many short ones.
//!
//!     cargo run --release -p lockstep_core --example engine_spawn [CHILDREN] [ROUNDS] [STRATEGY]
//!
//! STRATEGY is `random` (the default) or `pct`.

use lockstep_core::strategy::{Metered, Pct, RandomWalk};
use lockstep_core::{Config, ExitClass, Next, Op, OpResult, Session, Strategy, Target};
use std::time::Instant;

fn strategy(name: &str) -> Metered<Box<dyn Strategy>> {
    let inner: Box<dyn Strategy> = match name {
        "random" => Box::new(RandomWalk::new()),
        "pct" => Box::new(Pct::new(3)),
        other => panic!("unknown strategy {other:?}: random or pct"),
    };
    Metered::new(inner)
}

/// One iteration in which the root spawns `children` children; nanoseconds per child.
fn iteration(children: u64, seed: u64, strategy: &mut Metered<Box<dyn Strategy>>) -> f64 {
    let config = Config {
        max_steps: u64::MAX,
        ..Config::default()
    };
    let mut session = Session::new(config, strategy, seed);
    let mut next = session.start(strategy);
    let mut spawned = 0u64;
    let mut received = 0u64;
    // Sent to the root (instant delivery: in its mailbox at once) and not yet taken.
    let mut inbox: Vec<lockstep_core::MsgId> = Vec::new();
    let started = Instant::now();
    loop {
        let (p, result) = match next {
            Next::Continue(result) => (session.running().expect("the caller runs"), result),
            Next::Wake(p, result) => (p, result),
            Next::Ended => break,
        };
        let op = match result {
            // The root: spawn until done, then take the children's messages.
            OpResult::Started | OpResult::Spawned { .. } if p == 0 && spawned < children => {
                spawned += 1;
                Op::Spawn {
                    link: false,
                    monitor: false,
                }
            }
            OpResult::Started | OpResult::Spawned { .. } if p == 0 => Op::Receive {
                retry: false,
                timeout: None,
            },
            OpResult::ReceiveAttempt { .. } => {
                if inbox.is_empty() {
                    Op::Receive {
                        retry: true,
                        timeout: None,
                    }
                } else {
                    let msg = inbox.pop().expect("a message in the root's mailbox");
                    session.consumed(0, msg).expect("a delivered message");
                    received += 1;
                    if received == children {
                        next = session
                            .exit(0, ExitClass::Normal, strategy)
                            .expect("the running root");
                        session.forget_events();
                        continue;
                    }
                    Op::Receive {
                        retry: false,
                        timeout: None,
                    }
                }
            }
            // A child: tell the root, then end.
            OpResult::Started => Op::Send {
                to: Target::Proc(0),
            },
            OpResult::Sent { msg, .. } => {
                inbox.push(msg);
                next = session
                    .exit(p, ExitClass::Normal, strategy)
                    .expect("the running child");
                session.forget_events();
                continue;
            }
            other => panic!("unexpected result {other:?}"),
        };
        next = session.sync(p, op, strategy).expect("the running process");
        session.forget_events();
    }
    session.finish(strategy);
    assert_eq!(received, children, "{:?}", session.outcome());
    started.elapsed().as_nanos() as f64 / children.max(1) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let children: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let name = args.next().unwrap_or_else(|| "random".into());
    let mut strategy = strategy(&name);
    let mut best = |children: u64, its: u64| {
        (0..rounds)
            .map(|r| {
                (0..its)
                    .map(|i| iteration(children, u64::from(r) * its + i, &mut strategy))
                    .sum::<f64>()
                    / its as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    println!(
        "{name}: one iteration of {children} children: {:.1} ns/child",
        best(children, 1)
    );
    println!(
        "{name}: 1,000 iterations of 20 children: {:.1} ns/child",
        best(20, 1_000)
    );
}
