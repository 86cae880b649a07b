//! What the engine decides, pinned: thousands of random programs (the property tests'
//! generators, drawn from a fixed seed) run under each randomised strategy with fixed
//! seeds, and a digest of everything every iteration produced — each decision, the result
//! handed to every process at every action, every event, effect and outcome, the metrics
//! and the schedule fingerprint — must equal the constant recorded from the engine before
//! its hot path was optimised (issue 9 §2). An optimisation of a step may change what a
//! step costs, never what it does: a changed digest means some decision, draw, trace or
//! result changed, and the optimisation is wrong (or, for a deliberate change of
//! behaviour, the constants must be re-recorded and the change justified).
//!
//! Every iteration also runs a second time as an adapter that keeps no trace drives it
//! (events read once after every call, then dropped), in a session renewed from the
//! previous run's (`Session::renew`), and must produce the same result.
//!
//! Each strategy has its own test, so they run in parallel and a failure names the
//! strategy whose decisions changed.

mod common;
mod generators;

use common::{run, run_forgetting, Program, RunResult, StrategyKind};
use lockstep_core::Config;
use proptest::strategy::{Strategy as _, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

/// Programs per family (messages-only, every operation, long scripts).
const SHORT_CASES: usize = 700;
const LONG_CASES: usize = 150;
/// Iterations per program, with one strategy instance (state carried across iterations,
/// PCT's k and IDPCT's depth cycling, is pinned too).
const ITERATIONS: u64 = 3;

/// FNV-1a, 64 bits: stable across Rust releases and platforms, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Long scripts of the message-level actions: long iterations, deep spawn trees, many
/// messages in flight.
fn long_program() -> impl proptest::strategy::Strategy<Value = Program> {
    (1..=6usize)
        .prop_flat_map(|n| {
            proptest::collection::vec(proptest::collection::vec(generators::action(n), 10..40), n)
        })
        .prop_map(Program::new)
}

/// The cases, drawn deterministically: the same programs, configurations and seeds on
/// every machine and every run.
fn cases() -> Vec<(Program, Config, u64)> {
    use proptest::strategy::Strategy;
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(proptest::test_runner::Config::default(), rng);
    let mut out = Vec::new();
    let families: [(proptest::strategy::BoxedStrategy<Program>, usize); 3] = [
        (generators::program().boxed(), SHORT_CASES),
        (generators::any_program().boxed(), SHORT_CASES),
        (long_program().boxed(), LONG_CASES),
    ];
    for (family, count) in families {
        let case = (family, generators::config(), proptest::num::u64::ANY);
        for _ in 0..count {
            let (program, mut config, seed) = case.new_tree(&mut runner).unwrap().current();
            // Long programs get room to run long.
            if program.scripts.iter().any(|s| s.len() >= 10) {
                config.max_steps = config.max_steps * 4 + 200;
            }
            out.push((program, config, seed));
        }
    }
    out
}

/// Runs every case under `kind` and digests what came out.
fn digest(kind: StrategyKind) -> (u64, u64) {
    let mut hash = Fnv::new();
    let mut steps = 0;
    for (i, (program, config, seed)) in cases().into_iter().enumerate() {
        let mut strategy = kind.build();
        let mut forgetting = kind.build();
        for it in 0..ITERATIONS {
            let seed = seed.wrapping_add(it);
            let result: RunResult = run(&program, config, strategy.as_mut(), seed);
            let again = run_forgetting(&program, config, forgetting.as_mut(), seed);
            assert_eq!(
                again, result,
                "case {i}, iteration {it}: dropping events or renewing the session changed the run"
            );
            steps += result.metrics.steps;
            hash.write(format!("{i}/{it}: {result:?}\n").as_bytes());
        }
    }
    (hash.0, steps)
}

fn check(kind: StrategyKind, expected: u64) {
    let (got, steps) = digest(kind);
    assert_eq!(
        got, expected,
        "{kind:?}: the digest of {steps} steps is {got:#018x}, recorded {expected:#018x}: \
         some decision, draw, result or event changed"
    );
}

#[test]
fn random_walk_decides_as_recorded() {
    check(StrategyKind::Random, 0x3d02_3725_7087_c824);
}

#[test]
fn pct_decides_as_recorded() {
    check(StrategyKind::Pct(3), 0x87be_7025_f7c7_358b);
}

#[test]
fn pos_decides_as_recorded() {
    check(StrategyKind::Pos, 0xb9de_b131_67ee_fd1c);
}

#[test]
fn fair_pct_decides_as_recorded() {
    check(
        StrategyKind::FairPct {
            depth: 3,
            switch_after: 10,
        },
        0xe7c3_cef9_34df_9b7f,
    );
}

#[test]
fn idpct_decides_as_recorded() {
    check(
        StrategyKind::IdPct { d_min: 2, d_max: 6 },
        0x7d60_a9d2_c7cf_314a,
    );
}
