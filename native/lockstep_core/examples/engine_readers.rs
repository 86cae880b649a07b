//! The engine's share of an exhaustive search, without the BEAM: the N-readers program of
//! `make bench`'s section 10 (the root spawns N readers of one shared key and then one
//! writer of it; each child does its one access and exits) driven through `Session`
//! directly, as the NIF drives it, under `dpor: :optimal` to the end of its tree (2^N
//! interleavings) and, for comparison, the same number of iterations under the random
//! walk. Prints microseconds per iteration, in all and in `Session::finish` (where the
//! search finds the execution's races and its next branch), best of several rounds.
//!
//!     cargo run --release -p lockstep_core --example engine_readers [N] [ROUNDS]

use lockstep_core::op::SharedAccess;
use lockstep_core::strategy::{Dpor, Exhaustive, Metered, RandomWalk};
use lockstep_core::{Config, ExitClass, Next, Op, OpResult, Session, Strategy};
use std::time::{Duration, Instant};

/// One iteration; (time in all, time in `finish`).
fn iteration(
    readers: u32,
    seed: u64,
    strategy: &mut Metered<Box<dyn Strategy>>,
    keeps_events: bool,
) -> (Duration, Duration) {
    let config = Config {
        max_steps: 10_000,
        ..Config::default()
    };
    let started = Instant::now();
    let mut session = Session::new(config, strategy, seed);
    let mut next = session.start(strategy);
    let mut spawned = 0u32;
    loop {
        let (p, result) = match next {
            Next::Continue(result) => (session.running().expect("the caller runs"), result),
            Next::Wake(p, result) => (p, result),
            Next::Ended => break,
        };
        let op = match result {
            OpResult::Started | OpResult::Spawned { .. } if p == 0 && spawned <= readers => {
                spawned += 1;
                Op::Spawn {
                    link: false,
                    monitor: false,
                }
            }
            // Children 1..=readers read the key, the last one writes it.
            OpResult::Started => Op::Nif {
                object: Some(7),
                access: Some(SharedAccess {
                    table: 1,
                    key: Some(7),
                    write: p == readers + 1,
                    stable: true,
                }),
            },
            OpResult::Spawned { .. } | OpResult::Done => {
                next = session
                    .exit(p, ExitClass::Normal, strategy)
                    .expect("the running process");
                if !keeps_events {
                    session.forget_events();
                }
                continue;
            }
            other => panic!("unexpected result {other:?}"),
        };
        next = session.sync(p, op, strategy).expect("the running process");
        if !keeps_events {
            session.forget_events();
        }
    }
    let finishing = Instant::now();
    session.finish(strategy);
    let finish = finishing.elapsed();
    drop(session);
    (started.elapsed(), finish)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let readers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let us = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n as f64;
    let mut best_exhaustive = (f64::INFINITY, f64::INFINITY, 0u64);
    let mut best_random = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds {
        let mut strategy =
            Metered::new(Box::new(Exhaustive::new(Dpor::Optimal, None)) as Box<dyn Strategy>);
        let (mut all, mut finish, mut n) = (Duration::ZERO, Duration::ZERO, 0u64);
        loop {
            let (a, f) = iteration(readers, 1, &mut strategy, true);
            all += a;
            finish += f;
            n += 1;
            let stats = strategy.search_stats().expect("exhaustive has stats");
            if stats.exhausted {
                break;
            }
        }
        if us(all, n) < best_exhaustive.0 {
            best_exhaustive = (us(all, n), us(finish, n), n);
        }
        let mut strategy = Metered::new(Box::new(RandomWalk::new()) as Box<dyn Strategy>);
        let (mut all, mut finish) = (Duration::ZERO, Duration::ZERO);
        for i in 0..n {
            let (a, f) = iteration(readers, i, &mut strategy, false);
            all += a;
            finish += f;
        }
        if us(all, n) < best_random.0 {
            best_random = (us(all, n), us(finish, n));
        }
    }
    let (all, finish, n) = best_exhaustive;
    println!("{readers} readers, :optimal, {n} interleavings: {all:.2} µs per iteration, {finish:.2} in finish");
    let (all, finish) = best_random;
    println!("{readers} readers, random walk, {n} iterations: {all:.2} µs per iteration, {finish:.2} in finish");
}
