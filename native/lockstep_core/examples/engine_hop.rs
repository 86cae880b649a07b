//! The engine's share of a message hop, without the BEAM: two processes ping-pong through
//! `Session` directly, as the NIF drives it (send, then a receive that blocks; the woken
//! receiver reports the message it took), under the random walk, with the events dropped
//! after every call as a non-capturing iteration drops them. Prints nanoseconds per hop
//! (two engine steps) for short and long iterations, best of several rounds.
//!
//!     cargo run --release -p lockstep_core --example engine_hop [HOPS] [ROUNDS] [renew] [delayed]
//!
//! With `renew`, each iteration renews the previous iteration's session
//! (`Session::renew`) instead of creating one, as an adapter that keeps its session's
//! buffers across iterations would. With `delayed`, under `delivery: :delayed`: a hop is
//! then three steps (the send, the delivery, the receive), each still forced.
//!
//! `make bench` runs it for its "Breakdown" table.

use lockstep_core::strategy::{Metered, RandomWalk};
use lockstep_core::{
    Config, DeliveryMode, ExitClass, MsgId, Next, Op, OpResult, Session, Strategy, Target,
};
use std::time::Instant;

/// One iteration of `hops` hops; nanoseconds per hop.
fn iteration(hops: u64, seed: u64, spare: &mut Option<Session>) -> f64 {
    let config = Config {
        max_steps: u64::MAX,
        delivery: if flag("delayed") {
            DeliveryMode::Delayed
        } else {
            DeliveryMode::Instant
        },
        ..Config::default()
    };
    let delayed = config.delivery == DeliveryMode::Delayed;
    let mut strategy = Metered::new(Box::new(RandomWalk::new()) as Box<dyn Strategy>);
    let mut session = match spare.take() {
        Some(mut session) => {
            session.renew(config, &mut strategy, seed);
            session
        }
        None => Session::new(config, &mut strategy, seed),
    };
    let mut next = session.start(&mut strategy);
    // Sent to each process and not yet taken.
    let mut waiting: [Option<MsgId>; 2] = [None, None];
    let mut sends = 0u64;
    let started = Instant::now();
    loop {
        let (p, result) = match next {
            Next::Continue(result) => (session.running().expect("the caller runs"), result),
            Next::Wake(p, result) => (p, result),
            Next::Ended => break,
        };
        let me = p as usize;
        let op = match result {
            OpResult::Started if p == 0 => Op::Spawn {
                link: false,
                monitor: false,
            },
            OpResult::Spawned { child } => Op::Send {
                to: Target::Proc(child),
            },
            OpResult::Started => Op::Receive {
                retry: false,
                timeout: None,
            },
            OpResult::Sent { msg, .. } => {
                sends += 1;
                waiting[1 - me] = Some(msg);
                Op::Receive {
                    retry: false,
                    timeout: None,
                }
            }
            OpResult::ReceiveAttempt { .. } => match waiting[me].take() {
                Some(msg) => {
                    session.consumed(p, msg).expect("a delivered message");
                    if sends >= hops {
                        next = session
                            .exit(p, ExitClass::Normal, &mut strategy)
                            .expect("the running process");
                        session.forget_events();
                        continue;
                    }
                    Op::Send {
                        to: Target::Proc(1 - p),
                    }
                }
                None => Op::Receive {
                    retry: true,
                    timeout: None,
                },
            },
            other => panic!("unexpected result {other:?}"),
        };
        next = session
            .sync(p, op, &mut strategy)
            .expect("the running process");
        session.forget_events();
        if delayed {
            // The adapter would put the delivered message in the real mailbox.
            session.take_effects().for_each(drop);
        }
    }
    let elapsed = started.elapsed().as_nanos() as f64 / sends.max(1) as f64;
    if flag("renew") {
        *spare = Some(session);
    }
    elapsed
}

/// Whether `name` is among the arguments after HOPS and ROUNDS.
fn flag(name: &str) -> bool {
    std::env::args().skip(3).any(|a| a == name)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hops: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut spare = None;
    let mut best = |hops: u64, its: u64| {
        (0..rounds)
            .map(|r| {
                (0..its)
                    .map(|i| iteration(hops, u64::from(r) * its + i, &mut spare))
                    .sum::<f64>()
                    / its as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    println!("one iteration of {hops} hops: {:.1} ns/hop", best(hops, 1));
    println!(
        "1,000 iterations of 200 hops: {:.1} ns/hop",
        best(200, 1_000)
    );
}
