//! The engine's share of a relayed hop (docs/architecture.md, "Relayed hops"): two
//! processes' forced ping-pong replayed into `Session` as the adapter's catch-up does, in
//! leases of 256 hops, one hop at a time (`Session::replay_relayed_hop`, then the events
//! dropped) and in one call per lease (`Session::replay_relayed_hops`). Prints nanoseconds
//! per hop (two engine steps), best of several rounds, under the random walk and PCT.
//!
//!     cargo run --release -p lockstep_core --example relay_replay [HOPS] [ROUNDS]

use lockstep_core::strategy::{Metered, Pct, RandomWalk};
use lockstep_core::{Config, MsgId, Next, Op, OpResult, Session, Strategy, Target};
use std::time::Instant;

const LEASE: u32 = 256;

/// Root (0) spawned a child (1) and waits; the child sent `m0` to it and waits; the root
/// runs a receive attempt on `m0`: where the first lease starts.
fn after_first_hop(strategy: &mut dyn Strategy, seed: u64) -> (Session, MsgId) {
    let config = Config {
        max_steps: u64::MAX,
        ..Config::default()
    };
    let mut s = Session::new(config, strategy, seed);
    s.start(strategy);
    let receive = Op::Receive {
        retry: false,
        timeout: None,
    };
    let spawn = Op::Spawn {
        link: false,
        monitor: false,
    };
    let mut next = s.sync(0, spawn, strategy).unwrap();
    let mut sent = None;
    loop {
        next = match next {
            Next::Continue(OpResult::Spawned { .. }) => s.sync(0, receive, strategy).unwrap(),
            Next::Wake(1, OpResult::Started) => s
                .sync(
                    1,
                    Op::Send {
                        to: Target::Proc(0),
                    },
                    strategy,
                )
                .unwrap(),
            Next::Continue(OpResult::Sent { msg, .. }) => {
                sent = Some(msg);
                s.sync(1, receive, strategy).unwrap()
            }
            Next::Wake(0, OpResult::ReceiveAttempt { .. }) => break,
            other => panic!("unexpected {other:?}"),
        };
    }
    s.forget_events();
    (s, sent.expect("the child sent"))
}

fn run(hops: u32, batched: bool, pct: bool, seed: u64) -> f64 {
    let mut strategy: Metered<Box<dyn Strategy>> = if pct {
        Metered::new(Box::new(Pct::new(3)))
    } else {
        Metered::new(Box::new(RandomWalk::new()))
    };
    let (mut s, m0) = after_first_hop(&mut strategy, seed);
    let started = Instant::now();
    let mut done = 0;
    while done < hops {
        let n = LEASE.min(hops - done);
        let taken = m0 + done;
        if batched {
            s.replay_relayed_hops(0, 1, taken, n, &mut strategy)
                .unwrap();
        } else {
            for k in 0..n {
                let (from, to) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
                s.replay_relayed_hop(from, to, taken + k, &mut strategy)
                    .unwrap();
                s.forget_events();
            }
        }
        s.forget_events();
        done += n;
    }
    started.elapsed().as_nanos() as f64 / f64::from(hops)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hops: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    for pct in [false, true] {
        for batched in [false, true] {
            let best = (0..rounds)
                .map(|r| run(hops, batched, pct, r))
                .fold(f64::INFINITY, f64::min);
            println!(
                "{} {}: {best:.1} ns/hop",
                if pct { "pct   " } else { "random" },
                if batched {
                    "replay_relayed_hops (one call per lease)"
                } else {
                    "replay_relayed_hop (one call per hop)   "
                }
            );
        }
    }
}
