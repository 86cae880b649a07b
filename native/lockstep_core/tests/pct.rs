//! The claims of the PCT paper (Burckhardt et al., ASPLOS 2010), checked on seeded runs so
//! every count below is deterministic.

mod common;

use common::{count_bugs, receive_any, run, send_parent, spawn, Action, Program, StrategyKind};
use lockstep_core::strategy::Pct;
use lockstep_core::{iteration_seed, Config, DeliveryMode};

/// P spawns `n` children; child i sends the payload i to P, which receives `n` messages.
fn fan_in(n: u32) -> Program {
    let mut root: Vec<Action> = (1..=n as usize).map(spawn).collect();
    root.extend(receive_any(n as usize));
    let mut scripts = vec![root];
    scripts.extend((1..=n).map(|i| vec![send_parent(i)]));
    Program::new(scripts)
}

/// P spawns A then B; each sends `m` messages to P (A the payload 1, B the payload 2).
fn two_writers(m: usize) -> Program {
    let mut root = vec![spawn(1), spawn(2)];
    root.extend(receive_any(2 * m));
    Program::new(vec![root, vec![send_parent(1); m], vec![send_parent(2); m]])
}

/// The depth-2 ordering bug of `two_writers`: A's first message, then all of B's, then the
/// rest of A's. Needs A to go first and to be preempted right after its first send: one
/// priority change at the right step.
fn preempted_after_first_send(m: usize) -> Vec<u32> {
    let mut order = vec![1];
    order.extend(vec![2; m]);
    order.extend(vec![1; m - 1]);
    order
}

/// A mix of programs with and without contention, delayed delivery included.
fn programs() -> Vec<(Program, Config)> {
    let delayed = Config {
        delivery: DeliveryMode::Delayed,
        ..Config::default()
    };
    vec![
        (fan_in(3), Config::default()),
        (fan_in(5), delayed),
        (two_writers(4), Config::default()),
        (two_writers(3), delayed),
    ]
}

#[test]
fn change_points_are_d_minus_1_distinct_steps_within_the_longest_run() {
    for depth in 1..=5 {
        for (program, config) in programs() {
            let mut pct = Pct::new(depth);
            for i in 1..=100 {
                let k = pct.longest_run().max(1);
                let result = run(&program, config, &mut pct, iteration_seed(depth.into(), i));
                let points = pct.change_points();
                let expected = u64::from(depth - 1).min(k);
                assert_eq!(points.len() as u64, expected, "d={depth} k={k}: {points:?}");
                assert!(points.windows(2).all(|w| w[0] < w[1]), "{points:?}");
                assert!(
                    points.iter().all(|&p| (1..=k).contains(&p)),
                    "k={k}: {points:?}"
                );
                assert!(result.metrics.contested_steps > 0);
            }
        }
    }
}

#[test]
fn longest_run_is_the_most_contested_steps_of_any_finished_iteration() {
    for (program, config) in programs() {
        let mut pct = Pct::new(3);
        let mut longest = 0;
        assert_eq!(pct.longest_run(), 0);
        for i in 1..=100 {
            let result = run(&program, config, &mut pct, iteration_seed(5, i));
            longest = longest.max(result.metrics.contested_steps);
            assert_eq!(pct.longest_run(), longest);
        }
    }
}

/// With d=1 PCT is a random strict-priority scheduler. In `fan_in(n)` the messages of the
/// children that outrank P arrive in spawn order, the others by decreasing priority once P
/// waits, so P.1's message is the last to arrive exactly when P.1 has the lowest priority
/// of all n+1 processes: probability 1/(n+1), the paper's 1/n for a depth-1 bug.
#[test]
fn pct_d1_finds_a_depth_1_ordering_bug_in_about_1_in_n_iterations() {
    const ITERATIONS: u64 = 2000;
    for n in [3u32, 4, 6] {
        let found = count_bugs(
            &fan_in(n),
            Config::default(),
            &mut Pct::new(1),
            u64::from(n),
            ITERATIONS,
            |r| r.received[0].last() == Some(&1),
        );
        let n = u64::from(n);
        assert!(
            ITERATIONS / (3 * n) <= found && found <= 3 * ITERATIONS / n,
            "n={n}: found {found}/{ITERATIONS}"
        );
    }
}

/// Measured with these seeds (2000 iterations, m=8): random walk 4, PCT d=1 0, d=2 34,
/// d=3 46. Random walk needs B to win 8 coin flips in a row against A; PCT needs one change
/// point on the right step out of k.
#[test]
fn pct_d2_and_d3_find_a_depth_2_bug_that_random_walk_rarely_finds() {
    const ITERATIONS: u64 = 2000;
    const M: usize = 8;
    let program = two_writers(M);
    let bug = preempted_after_first_send(M);
    let count = |kind: StrategyKind| {
        count_bugs(
            &program,
            Config::default(),
            kind.build().as_mut(),
            11,
            ITERATIONS,
            |r| r.received[0] == bug,
        )
    };
    let random = count(StrategyKind::Random);
    let d1 = count(StrategyKind::Pct(1));
    let d2 = count(StrategyKind::Pct(2));
    let d3 = count(StrategyKind::Pct(3));
    // A strict priority order never preempts A in the middle: the bug needs a change point.
    assert_eq!(d1, 0);
    assert!(random <= 10, "random walk found it {random} times");
    for (d, found) in [(2, d2), (3, d3)] {
        assert!(found >= 20, "PCT d={d} found it only {found} times");
        assert!(
            found >= 3 * random.max(1),
            "d={d}: {found} vs random {random}"
        );
    }
}
