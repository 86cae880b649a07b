//! Facts about POS, fair PCT and IDPCT (determinism is in `determinism.rs`).

mod common;

use common::{count_bugs, receive_any, run, send_parent, spawn, Action, Match, Program};
use lockstep_core::strategy::{FairPct, IdPct, Pct, Pos, RandomWalk};
use lockstep_core::{iteration_seed, Config, Outcome, Strategy};

/// P spawns three one-message senders, then a writer W that sends four messages; P
/// receives all seven. The bug: W's four messages are the first four P gets — W must win
/// four races in a row against three processes that were ready before it existed.
fn writer_after_three() -> Program {
    let mut root = vec![spawn(2), spawn(2), spawn(2), spawn(1)];
    root.extend(receive_any(7));
    Program::new(vec![root, vec![send_parent(1); 4], vec![send_parent(2)]])
}

/// Measured with these seeds (4000 iterations): POS 66, random walk 2 (PCT d=1, for
/// comparison: 410). Random walk keeps giving the three waiting processes a fair share of
/// every step; under POS their priorities, drawn once, stay put while they do nothing that
/// races with W, so W only has to outrank three fixed values at each of its steps.
#[test]
fn pos_finds_a_consecutive_races_bug_far_more_often_than_random_walk() {
    const ITERATIONS: u64 = 4000;
    let program = writer_after_three();
    let bug = |r: &common::RunResult| r.received[0][..4] == [1, 1, 1, 1];
    let pos = count_bugs(
        &program,
        Config::default(),
        &mut Pos::new(),
        13,
        ITERATIONS,
        bug,
    );
    let random = count_bugs(
        &program,
        Config::default(),
        &mut RandomWalk::new(),
        13,
        ITERATIONS,
        bug,
    );
    assert!(random <= 10, "random walk found it {random} times");
    assert!(pos >= 30, "POS found it only {pos} times");
    assert!(pos >= 10 * random.max(1), "POS {pos} vs random {random}");
}

/// P spawns S, then sends S the message S spin-waits for (`receive … after 0 -> yield`).
fn spin_wait() -> Program {
    Program::new(vec![
        vec![
            spawn(1),
            Action::Send {
                to: common::Target::Child(1),
                payload: 7,
            },
        ],
        vec![Action::SpinReceive(Match::Any)],
    ])
}

/// Whenever PCT ranks the spinner above P, the spinner yields forever and P never sends:
/// the iteration hits `max_steps`. Fair PCT makes the same decisions for its first
/// `switch_after` steps and then picks at random, so P gets to send and the run passes.
#[test]
fn fair_pct_does_not_let_a_spinning_process_starve_the_one_it_waits_for() {
    const SWITCH_AFTER: u64 = 20;
    let config = Config {
        max_steps: 200,
        ..Config::default()
    };
    let program = spin_wait();
    let mut pct = Pct::new(1);
    let mut fair = FairPct::new(1, SWITCH_AFTER);
    let mut starved = 0;
    for i in 1..=200 {
        let seed = iteration_seed(17, i);
        let unfair = run(&program, config, &mut pct, seed);
        let fair = run(&program, config, &mut fair, seed);
        assert_eq!(fair.outcome, Outcome::Pass, "seed {seed}");
        match unfair.outcome {
            Outcome::MaxSteps => {
                starved += 1;
                // Same seed, same PCT decisions up to the switch.
                let prefix = SWITCH_AFTER as usize;
                assert_eq!(fair.schedule[..prefix], unfair.schedule[..prefix]);
            }
            Outcome::Pass => assert_eq!(fair, unfair, "PCT alone never got to the switch"),
            ref other => panic!("unexpected {other:?}"),
        }
    }
    // PCT ranks the spinner first about half the time.
    assert!(
        (60..=140).contains(&starved),
        "PCT starved P in {starved}/200"
    );
}

#[test]
fn fair_pct_is_pct_until_the_switch() {
    // With the switch beyond max_steps, fair PCT is exactly PCT.
    let program = writer_after_three();
    let mut pct = Pct::new(3);
    let mut fair = FairPct::new(3, u64::MAX);
    for i in 1..=50 {
        let seed = iteration_seed(23, i);
        assert_eq!(
            run(&program, Config::default(), &mut fair, seed),
            run(&program, Config::default(), &mut pct, seed)
        );
        assert_eq!(fair.pct().longest_run(), pct.longest_run());
    }
}

#[test]
fn idpct_runs_each_iteration_at_the_depth_its_seed_names() {
    let program = writer_after_three();
    let mut idpct = IdPct::default();
    assert_eq!(idpct.depth_range(), (2, 6));
    let mut depths_seen = [0u32; 7];
    let mut longest = 0;
    for i in 1..=100 {
        let seed = iteration_seed(29, i);
        let depth = 2 + (seed % 5) as u32;
        assert_eq!(idpct.depth_for_seed(seed), depth);
        let k = idpct.pct().longest_run().max(1);
        let result = run(&program, Config::default(), &mut idpct, seed);
        assert_eq!(idpct.pct().depth(), depth);
        let points = idpct.pct().change_points().len() as u64;
        assert_eq!(points, u64::from(depth - 1).min(k));
        // One PCT state: k is learned across iterations whatever their depth.
        longest = longest.max(result.metrics.contested_steps);
        assert_eq!(idpct.pct().longest_run(), longest);
        depths_seen[depth as usize] += 1;
    }
    assert!(depths_seen[2..].iter().all(|&n| n >= 10), "{depths_seen:?}");
}

#[test]
fn idpct_bounds_are_normalised() {
    assert_eq!(IdPct::new(0, 0).depth_range(), (1, 1));
    assert_eq!(IdPct::new(4, 2).depth_range(), (4, 4));
    let one = IdPct::new(3, 3);
    assert!((0..50).all(|seed| one.depth_for_seed(seed) == 3));
}

#[test]
fn strategies_have_their_spec_names() {
    let names: Vec<&str> = [
        Box::new(RandomWalk::new()) as Box<dyn Strategy>,
        Box::new(Pct::new(3)),
        Box::new(FairPct::new(3, 100)),
        Box::new(Pos::new()),
        Box::new(IdPct::default()),
    ]
    .iter()
    .map(|s| s.name())
    .collect();
    assert_eq!(names, ["random", "pct", "fair_pct", "pos", "idpct"]);
}
