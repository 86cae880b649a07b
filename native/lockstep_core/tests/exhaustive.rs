//! Exhaustive search (`strategy/exhaustive.rs`) against the facts it must satisfy: DPOR
//! reaches every outcome plain depth-first search reaches, optimal DPOR never runs two
//! equivalent interleavings and is never sleep-blocked, source DPOR runs no more than
//! plain search, and the counts the literature gives for small programs.

mod common;

use common::*;
use lockstep_core::strategy::{Dpor, Exhaustive, ParallelSearch, ParallelStats, Stop, Take};
use lockstep_core::{Config, CrashMode, Decision, DeliveryMode, Outcome, ProcName, Strategy as _};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a test can observe of one execution, by symbolic process name: how it ended, what
/// each process received and what each shared-state read returned, the random values.
type Observed = (String, BTreeMap<ProcName, (Vec<u32>, Vec<u64>, Vec<u64>)>);

fn observed(r: &RunResult) -> Observed {
    let outcome = match &r.outcome {
        Outcome::Pass => "pass".to_string(),
        Outcome::Crash { proc } => format!("crash {}", r.names[*proc as usize]),
        Outcome::Exception { .. } => "exception".to_string(),
        Outcome::Deadlock { blocked } => {
            let names: BTreeSet<String> = blocked
                .iter()
                .map(|p| r.names[*p as usize].to_string())
                .collect();
            format!("deadlock {names:?}")
        }
        other => format!("{other:?}"),
    };
    let per = r
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let reads = r.seen[i]
                .iter()
                .filter_map(|s| match s {
                    Seen::Shared(v) => Some(*v),
                    _ => None,
                })
                .collect();
            let found = r.seen[i]
                .iter()
                .filter_map(|s| match s {
                    Seen::Result(lockstep_core::OpResult::Found(f)) => {
                        Some(f.map_or(0, |p| 1 + p as u64))
                    }
                    Seen::Result(lockstep_core::OpResult::NameOk(ok)) => Some(u64::from(*ok)),
                    _ => None,
                })
                .chain(r.randoms[i].iter().copied())
                .collect();
            (name.clone(), (r.received[i].clone(), reads, found))
        })
        .collect();
    (outcome, per)
}

struct Explored {
    runs: Vec<RunResult>,
    sleep_blocked: u64,
    exhausted: bool,
    /// Runs before the search fell back to sleep sets alone (run again after it).
    restarted: usize,
}

/// Runs `program` under exhaustive search until it is exhausted (at most `cap` runs).
fn explore(
    program: &Program,
    config: Config,
    dpor: Dpor,
    bound: Option<u32>,
    cap: usize,
) -> Explored {
    let mut strategy = Exhaustive::new(dpor, bound);
    let mut runs = Vec::new();
    loop {
        let r = run(program, config, &mut strategy, 0);
        assert!(
            !matches!(r.outcome, Outcome::Diverged(_)),
            "a deterministic program diverged: {:?}",
            r.outcome
        );
        runs.push(r);
        let stats = strategy.search_stats().expect("exhaustive has stats");
        assert_eq!(stats.explored as usize, runs.len());
        if stats.exhausted || runs.len() >= cap {
            return Explored {
                runs,
                sleep_blocked: stats.sleep_blocked,
                exhausted: stats.exhausted,
                restarted: stats.restarted as usize,
            };
        }
    }
}

fn outcomes(e: &Explored) -> BTreeSet<Observed> {
    e.runs.iter().map(observed).collect()
}

/// A run stops at its first failing iteration, so what exhaustive search owes is: every
/// outcome when no interleaving fails, and some failure when one does (an iteration ended
/// by a failure shows nothing of what would have come after it).
fn same_verdict(dpor: &Explored, none: &Explored) -> Result<(), String> {
    let failed = |e: &Explored| {
        e.runs
            .iter()
            .any(|r| !matches!(r.outcome, Outcome::Pass | Outcome::MaxSteps))
    };
    match (failed(dpor), failed(none)) {
        (false, false) if outcomes(dpor) == outcomes(none) => Ok(()),
        (true, true) => Ok(()),
        _ => Err(format!(
            "DPOR reached {:?}, plain search {:?}",
            outcomes(dpor),
            outcomes(none)
        )),
    }
}

/// An operation of a process, by name and its ordinal among that process's operations of
/// the same kind.
type Op = (ProcName, u32);

/// The order of every pair of dependent operations in one execution, which tells
/// Mazurkiewicz traces of these programs apart: per mailbox the order of arrivals and
/// failed receive attempts, and which message each receive took; per shared key the order
/// of writes and how many writes each read came after; the order timers were started in;
/// the random values.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Signature {
    mailboxes: BTreeMap<ProcName, Vec<(bool, Op)>>,
    took: BTreeSet<(Op, Op)>,
    /// How each send went (in flight, or at once into the mailbox or dropped).
    fates: BTreeSet<(Op, String)>,
    writes: BTreeMap<(u32, u32), Vec<Op>>,
    reads: BTreeSet<((u32, u32), Op, usize)>,
    /// The order timers were started in (ties fire oldest first).
    timers: Vec<Op>,
    observed: Observed,
}

fn signature(r: &RunResult) -> Signature {
    use lockstep_core::{EventKind, SendFate};
    let name = |p: u32| r.names[p as usize].clone();
    let mut count: BTreeMap<(ProcName, &str), u32> = BTreeMap::new();
    let mut next = |p: ProcName, kind: &'static str| {
        let c = count.entry((p.clone(), kind)).or_insert(0);
        *c += 1;
        (p, *c)
    };
    let mut sent: BTreeMap<u32, Op> = BTreeMap::new();
    let mut sig = Signature {
        mailboxes: BTreeMap::new(),
        took: BTreeSet::new(),
        fates: BTreeSet::new(),
        writes: BTreeMap::new(),
        reads: BTreeSet::new(),
        timers: Vec::new(),
        observed: observed(r),
    };
    for (i, e) in r.events.iter().enumerate() {
        let p = name(e.proc);
        match e.kind {
            EventKind::Send {
                to: Some(to),
                msg,
                fate,
            } => {
                let op = next(p, "send");
                sent.insert(msg, op.clone());
                sig.fates.insert((op.clone(), format!("{fate:?}")));
                if matches!(fate, SendFate::Delivered | SendFate::Dropped) {
                    sig.mailboxes.entry(name(to)).or_default().push((true, op));
                }
            }
            EventKind::Deliver { msg, .. } | EventKind::Drop { msg, .. } => {
                let op = sent[&msg].clone();
                sig.mailboxes.entry(p).or_default().push((true, op));
            }
            EventKind::Receive { msg, .. } => {
                let op = next(p, "receive");
                sig.took.insert((op, sent[&msg].clone()));
            }
            EventKind::Block | EventKind::ReceiveTimeout => {
                // A failed attempt: the only thing its process recorded at that step.
                let alone = !r.events.iter().enumerate().any(|(j, f)| {
                    j != i
                        && f.step == e.step
                        && f.proc == e.proc
                        && !matches!(f.kind, EventKind::Block | EventKind::ReceiveTimeout)
                });
                let picked = r.schedule.get(e.step as usize - 1) == Some(&Decision::Run(p.clone()));
                if alone && picked {
                    let op = next(p.clone(), "probe");
                    sig.mailboxes.entry(p).or_default().push((false, op));
                }
            }
            EventKind::TimerStarted { .. } | EventKind::Sleep { .. } => {
                let op = next(p, "timer");
                sig.timers.push(op);
            }
            EventKind::Nif { object: Some(o) } => {
                let write = o >> 63 == 1;
                let table = ((o >> 32) & 0x7fff_ffff) as u32;
                let key = (o & 0xffff_ffff) as u32;
                let keys: Vec<u32> = if key == u32::MAX {
                    vec![0, 1]
                } else {
                    vec![key]
                };
                let op = next(p, if write { "write" } else { "read" });
                for k in keys {
                    let w = sig.writes.entry((table, k)).or_default();
                    if write {
                        w.push(op.clone());
                    } else {
                        sig.reads.insert(((table, k), op.clone(), w.len()));
                    }
                }
            }
            _ => {}
        }
    }
    sig
}

fn config_of(delivery: DeliveryMode) -> Config {
    Config {
        max_steps: 400,
        ..config(delivery, CrashMode::Fail)
    }
}

fn reader(table: u32, key: u32) -> Action {
    Action::Shared {
        table,
        key: Some(key),
        write: false,
    }
}

fn writer(table: u32, key: u32) -> Action {
    Action::Shared {
        table,
        key: Some(key),
        write: true,
    }
}

/// The root spawns one process per script after it.
fn spawn_all(scripts: Vec<Vec<Action>>) -> Program {
    let n = scripts.len();
    let mut all = vec![(1..=n).map(spawn).collect::<Vec<_>>()];
    all.extend(scripts);
    Program::new(all)
}

#[test]
fn one_writer_and_n_readers_of_a_key_give_two_to_the_n_traces() {
    for n in 2..=6u32 {
        let mut scripts = vec![vec![writer(1, 1)]];
        scripts.extend((0..n).map(|_| vec![reader(1, 1)]));
        let program = spawn_all(scripts);
        let e = explore(
            &program,
            config_of(DeliveryMode::Instant),
            Dpor::Optimal,
            None,
            10_000,
        );
        assert!(e.exhausted);
        assert_eq!(e.runs.len(), 1 << n, "N = {n}");
        let signatures: BTreeSet<Signature> = e.runs.iter().map(signature).collect();
        assert_eq!(signatures.len(), e.runs.len());
        assert_eq!(e.sleep_blocked, 0);
        assert_eq!(outcomes(&e).len(), 1 << n);
        let source = explore(
            &program,
            config_of(DeliveryMode::Instant),
            Dpor::Source,
            None,
            10_000,
        );
        assert_eq!(outcomes(&source), outcomes(&e), "N = {n}");
        // Source sets with one initial per reversal (Algorithm 1) need no more here, as
        // Concuerror's source mode: 2^N as well, none of them sleep-set blocked.
        assert_eq!(source.runs.len(), 1 << n, "N = {n}, source");
        assert_eq!(source.sleep_blocked, 0, "N = {n}, source");
    }
}

#[test]
fn independent_processes_give_one_interleaving() {
    for n in 1..=4u32 {
        let scripts = (0..n)
            .map(|i| vec![writer(i, 1), reader(i, 1), Action::Yield, writer(i, 2)])
            .collect();
        let program = spawn_all(scripts);
        for dpor in [Dpor::Optimal, Dpor::Source] {
            let e = explore(
                &program,
                config_of(DeliveryMode::Instant),
                dpor,
                None,
                10_000,
            );
            assert!(e.exhausted);
            assert_eq!(e.runs.len(), 1, "{dpor:?} N = {n}");
        }
    }
}

#[test]
fn two_senders_to_a_receiver_that_takes_any_message_give_two() {
    for delivery in DELIVERIES {
        let program = Program::new(vec![
            vec![spawn(1), spawn(1), Action::Receive(Match::Any)],
            vec![send_parent(1)],
        ]);
        let e = explore(&program, config_of(delivery), Dpor::Optimal, None, 1_000);
        assert!(e.exhausted);
        // Under `:delayed` the second send also races with the receiver's death (in
        // flight before it, dropped after): two more traces with the same outcomes.
        let expected = if delivery == DeliveryMode::Instant {
            2
        } else {
            4
        };
        assert_eq!(e.runs.len(), expected, "{delivery:?}");
        let none = explore(&program, config_of(delivery), Dpor::None, None, 10_000);
        assert!(none.runs.len() > expected);
        assert_eq!(outcomes(&none), outcomes(&e));
    }
}

#[test]
fn random_branches_n_ways() {
    let program = Program::new(vec![vec![Action::Random(3)]]);
    for dpor in [Dpor::Optimal, Dpor::Source, Dpor::None] {
        let e = explore(&program, config_of(DeliveryMode::Instant), dpor, None, 100);
        assert!(e.exhausted);
        assert_eq!(e.runs.len(), 3);
        let values: BTreeSet<u64> = e.runs.iter().map(|r| r.randoms[0][0]).collect();
        assert_eq!(values, BTreeSet::from([0, 1, 2]));
    }
}

#[test]
fn the_same_program_explores_the_same_schedules_in_the_same_order() {
    let program = spawn_all(vec![
        vec![writer(1, 1), send_parent(1)],
        vec![reader(1, 1), send_parent(2), Action::Random(2)],
        vec![writer(1, 1)],
    ]);
    for dpor in [Dpor::Optimal, Dpor::Source, Dpor::None] {
        let schedules = |_| -> Vec<Vec<Decision>> {
            explore(
                &program,
                config_of(DeliveryMode::Delayed),
                dpor,
                None,
                5_000,
            )
            .runs
            .into_iter()
            .map(|r| r.schedule)
            .collect()
        };
        assert_eq!(schedules(1), schedules(2), "{dpor:?}");
    }
}

#[test]
fn a_preemption_bound_limits_the_schedules() {
    let program = spawn_all(vec![
        vec![writer(1, 1), writer(1, 1), writer(1, 1)],
        vec![writer(1, 1), writer(1, 1), writer(1, 1)],
    ]);
    let cfg = config_of(DeliveryMode::Instant);
    let zero = explore(&program, cfg, Dpor::Optimal, Some(0), 10_000);
    let one = explore(&program, cfg, Dpor::Optimal, Some(1), 10_000);
    let all = explore(&program, cfg, Dpor::None, None, 10_000);
    assert!(zero.exhausted && one.exhausted && all.exhausted);
    assert!(zero.runs.len() < one.runs.len());
    assert!(one.runs.len() < all.runs.len());
    // With no preemption, each process runs to its end once started.
    for r in &zero.runs {
        let runs: Vec<&Decision> = r
            .schedule
            .iter()
            .filter(|d| matches!(d, Decision::Run(_)))
            .collect();
        let switches = runs.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches <= 3, "{:?}", r.schedule);
    }
}

#[test]
fn a_program_that_does_not_follow_its_prefix_is_a_divergence() {
    // Two iterations of the search on programs that differ: the second does not offer
    // what the first recorded.
    let first = spawn_all(vec![vec![writer(1, 1)], vec![writer(1, 1)]]);
    let second = Program::new(vec![vec![Action::Yield]]);
    let mut strategy = Exhaustive::new(Dpor::Optimal, None);
    let r = run(&first, config_of(DeliveryMode::Instant), &mut strategy, 0);
    assert_eq!(r.outcome, Outcome::Pass);
    let r = run(&second, config_of(DeliveryMode::Instant), &mut strategy, 0);
    assert!(matches!(r.outcome, Outcome::Diverged(_)), "{:?}", r.outcome);
}

/// A digest of the schedules a search explored, in order (FNV-1a over their `Debug` form).
fn order_digest(runs: &[RunResult]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in runs {
        for b in format!("{:?};", r.schedule).bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What the search explores on the literature's programs, pinned: how many interleavings,
/// how many were sleep-blocked, and their order (a digest of the schedules). A change to the
/// search's own work (how it finds races, compares footprints, keeps its buffers) must
/// leave all three as they are; a change that means to explore differently updates them
/// here, with the reason in its commit.
#[test]
fn the_literature_programs_explore_what_they_explored() {
    let readers = |n: u32| {
        let mut scripts = vec![vec![writer(1, 1)]];
        scripts.extend((0..n).map(|_| vec![reader(1, 1)]));
        spawn_all(scripts)
    };
    let mixed = spawn_all(vec![
        vec![writer(1, 1), send_parent(1)],
        vec![reader(1, 1), send_parent(2), Action::Random(2)],
        vec![writer(1, 1)],
    ]);
    let senders = Program::new(vec![
        vec![spawn(1), spawn(1), Action::Receive(Match::Any)],
        vec![send_parent(1)],
    ]);
    let instant = config_of(DeliveryMode::Instant);
    let delayed = config_of(DeliveryMode::Delayed);
    let cases: [(&str, Program, Config, Dpor); 12] = [
        ("readers 4", readers(4), instant, Dpor::Optimal),
        ("readers 4", readers(4), instant, Dpor::Source),
        ("readers 2", readers(2), instant, Dpor::None),
        ("readers 6", readers(6), instant, Dpor::Optimal),
        ("readers 6", readers(6), instant, Dpor::Source),
        ("readers 8", readers(8), instant, Dpor::Optimal),
        ("readers 8", readers(8), instant, Dpor::Source),
        ("mixed", mixed.clone(), delayed, Dpor::Optimal),
        ("mixed", mixed, delayed, Dpor::Source),
        ("senders", senders.clone(), instant, Dpor::Optimal),
        ("senders", senders.clone(), delayed, Dpor::Optimal),
        ("senders", senders, delayed, Dpor::Source),
    ];
    let got: Vec<(usize, u64, u64)> = cases
        .iter()
        .map(|(_, program, cfg, dpor)| {
            let e = explore(program, *cfg, *dpor, None, 100_000);
            assert!(e.exhausted);
            (e.runs.len(), e.sleep_blocked, order_digest(&e.runs))
        })
        .collect();
    let want: [(usize, u64, u64); 12] = [
        (16, 0, 10945219394863874337),
        // Source sets with one initial per reversal (Algorithm 1): the readers' 2^N in
        // optimal's order (every initial, before: 41, 365 and 3,281 with 25, 301 and
        // 3,025 sleep-blocked).
        (16, 0, 10945219394863874337),
        (280, 0, 9369841042293019805),
        (64, 0, 6159341635191706625),
        (64, 0, 6159341635191706625),
        (256, 0, 10554134999484043377),
        (256, 0, 10554134999484043377),
        (64, 0, 6199466320065531973),
        (61, 5, 11866903208823180636),
        (2, 0, 17457829119718681541),
        (4, 0, 3536120824951069246),
        (4, 0, 3536120824951069246),
    ];
    for (((name, _, _, dpor), g), w) in cases.iter().zip(&got).zip(&want) {
        assert_eq!(
            g, w,
            "{name}, {dpor:?}: (interleavings, sleep-blocked, order)"
        );
    }
}

// Random small programs ------------------------------------------------------------------

/// One action of a random program's child `me` (1-based): it sends to its parent or to an
/// older sibling (one spawned before it, whose pid it could have been given).
fn action(me: u32) -> impl proptest::strategy::Strategy<Value = Action> {
    let n = me.saturating_sub(1).max(1);
    let older = me > 1;
    prop_oneof![
        (1u32..=3).prop_map(|payload| Action::Send {
            to: Target::Parent,
            payload
        }),
        (1..=n, 1u32..=3).prop_map(move |(c, payload)| Action::Send {
            to: if older {
                Target::Path(leak_path(c))
            } else {
                Target::Parent
            },
            payload
        }),
        Just(Action::Receive(Match::Any)),
        (1u32..=2).prop_map(|p| Action::ReceiveAfter(Match::Payload(p), 5)),
        (0u32..2, any::<bool>()).prop_map(|(k, w)| Action::Shared {
            table: 1,
            key: Some(k),
            write: w
        }),
        any::<bool>().prop_map(|w| Action::Shared {
            table: 1,
            key: None,
            write: w
        }),
        Just(Action::Random(2)),
        Just(Action::Yield),
    ]
}

/// What the root does after spawning: no send (its parent is outside the run, and a
/// process that sent outside waits for an answer, which the optimal check leaves out).
fn root_action() -> impl proptest::strategy::Strategy<Value = Action> {
    action(1).prop_filter("no send outside", |a| !matches!(a, Action::Send { .. }))
}

/// `Target::Path` wants a `'static` path: the few paths used are leaked once each.
fn leak_path(c: u32) -> &'static [u32] {
    match c {
        1 => &[1],
        2 => &[2],
        3 => &[3],
        _ => &[4],
    }
}

/// The property tests' configuration: 32 programs from seed 13, so that `make test` runs
/// the same programs every time. `PROPTEST_CASES` and `LOCKSTEP_PROPTEST_SEED` override
/// both for the large random runs that look for missed outcomes (docs/guide-exhaustive.md
/// records the last such run).
fn fixed_config() -> ProptestConfig {
    let env = |name: &str, default: u64| -> u64 {
        match std::env::var(name) {
            Ok(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
            Err(_) => default,
        }
    };
    ProptestConfig {
        cases: env("PROPTEST_CASES", 32) as u32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(env("LOCKSTEP_PROPTEST_SEED", 13)),
        ..ProptestConfig::default()
    }
}

fn program() -> impl proptest::strategy::Strategy<Value = Program> {
    (2usize..=3).prop_flat_map(|n| {
        let children: Vec<_> = (1..=n as u32)
            .map(|me| prop::collection::vec(action(me), 1..4))
            .collect();
        (prop::collection::vec(root_action(), 0..3), children).prop_map(
            move |(root_tail, children)| {
                let mut root: Vec<Action> = (1..=n).map(spawn).collect();
                root.extend(root_tail);
                let mut scripts = vec![root];
                scripts.extend(children);
                Program::new(scripts)
            },
        )
    })
}

proptest! {
    // A fixed seed: `make test` runs the same programs every time (`fixed_config` says how
    // to run more, as docs/guide-exhaustive.md records).
    #![proptest_config(fixed_config())]

    /// DPOR loses no outcome (no failure, see `same_verdict`), optimal DPOR never repeats a
    /// trace and is never
    /// sleep-blocked, and source DPOR runs no more than plain search.
    #[test]
    fn dpor_reaches_every_outcome_of_plain_search(program in program(), delayed in any::<bool>()) {
        let delivery = if delayed { DeliveryMode::Delayed } else { DeliveryMode::Instant };
        let cfg = config_of(delivery);
        let none = explore(&program, cfg, Dpor::None, None, 20_000);
        prop_assume!(none.exhausted);
        let source = explore(&program, cfg, Dpor::Source, None, 20_000);
        let optimal = explore(&program, cfg, Dpor::Optimal, None, 20_000);
        prop_assert!(source.exhausted && optimal.exhausted);
        prop_assert_eq!(same_verdict(&source, &none), Ok(()));
        prop_assert_eq!(same_verdict(&optimal, &none), Ok(()));
        prop_assert!(source.runs.len() <= none.runs.len());
        // Under `:delayed`, a delivery racing with the target's death can make optimal
        // DPOR run an equivalent interleaving twice or start one it abandons (never miss
        // one): the count facts are checked under `:instant`.
        if !delayed {
            prop_assert_eq!(optimal.sleep_blocked, 0);
            prop_assert!(optimal.runs.len() <= source.runs.len());
            let signatures: BTreeSet<Signature> = optimal.runs.iter().map(signature).collect();
            prop_assert_eq!(signatures.len(), optimal.runs.len(), "optimal DPOR repeated a trace");
        }
    }
}

/// A richer alphabet for the soundness check alone: names, links, monitors, exit signals.
fn process_action(me: u32) -> impl proptest::strategy::Strategy<Value = Action> {
    let other = if me > 1 {
        Target::Path(leak_path(me - 1))
    } else {
        Target::Parent
    };
    prop_oneof![
        action(me),
        Just(Action::Register {
            name: 1,
            who: Target::Myself
        }),
        Just(Action::Whereis(1)),
        Just(Action::SendTo {
            dest: Dest::Name(1),
            payload: 3
        }),
        Just(Action::Link(other)),
        Just(Action::Monitor(other)),
        Just(Action::Receive(Match::Down)),
        Just(Action::TrapExit(true)),
        Just(Action::Alive(other)),
        Just(Action::Exit {
            to: other,
            reason: lockstep_core::Reason::Kill
        }),
    ]
}

fn process_program() -> impl proptest::strategy::Strategy<Value = Program> {
    (2usize..=3).prop_flat_map(|n| {
        let children: Vec<_> = (1..=n as u32)
            .map(|me| prop::collection::vec(process_action(me), 1..4))
            .collect();
        (prop::collection::vec(process_action(1), 0..2), children).prop_map(
            move |(root_tail, children)| {
                let mut root: Vec<Action> = (1..=n).map(spawn).collect();
                root.extend(root_tail);
                let mut scripts = vec![root];
                scripts.extend(children);
                Program::new(scripts)
            },
        )
    })
}

proptest! {
    #![proptest_config(fixed_config())]

    /// With names, links, monitors and exit signals too, DPOR loses no outcome.
    #[test]
    fn dpor_loses_no_outcome_with_names_links_and_signals(program in process_program(), delayed in any::<bool>()) {
        let delivery = if delayed { DeliveryMode::Delayed } else { DeliveryMode::Instant };
        let cfg = Config { crash: CrashMode::Ignore, ..config_of(delivery) };
        let none = explore(&program, cfg, Dpor::None, None, 20_000);
        prop_assume!(none.exhausted);
        let source = explore(&program, cfg, Dpor::Source, None, 20_000);
        let optimal = explore(&program, cfg, Dpor::Optimal, None, 20_000);
        prop_assert_eq!(same_verdict(&optimal, &none), Ok(()));
        prop_assert_eq!(same_verdict(&source, &none), Ok(()));
        // A kill makes the search start over with sleep sets alone, which runs no more
        // than plain search.
        prop_assert!(source.runs.len() - source.restarted <= none.runs.len());
        prop_assert!(optimal.runs.len() - optimal.restarted <= none.runs.len());
    }
}

// Programs the large random runs found (docs/guide-exhaustive.md): a step that kills another
// process disables it, which both reductions assume never happens.

/// Explores `program` with each reduction and checks that it reaches what plain search
/// reaches, including `wanted` (a process's whereis/register results, by path).
fn reaches_like_plain_search(program: &Program, wanted: (&[u32], Vec<u64>)) {
    let cfg = Config {
        crash: CrashMode::Ignore,
        ..config_of(DeliveryMode::Instant)
    };
    let none = explore(program, cfg, Dpor::None, None, 20_000);
    assert!(none.exhausted);
    let name = ProcName::from_path(wanted.0.to_vec());
    let has = |e: &Explored| outcomes(e).iter().any(|o| o.1[&name].2 == wanted.1);
    assert!(has(&none), "plain search reaches {wanted:?}");
    for dpor in [Dpor::Optimal, Dpor::Source] {
        let e = explore(program, cfg, dpor, None, 20_000);
        assert!(e.exhausted, "{dpor:?}");
        assert!(has(&e), "{dpor:?} misses {wanted:?}");
        assert_eq!(same_verdict(&e, &none), Ok(()), "{dpor:?}");
        assert!(e.runs.len() - e.restarted <= none.runs.len(), "{dpor:?}");
    }
}

#[test]
fn a_process_killed_through_a_link_before_it_takes_a_name_is_explored_both_ways() {
    // Child 1 sends to a name nobody holds yet (and crashes), killing the linked child 2
    // unless child 2 has registered the name by then: the root's whereis can find child 2
    // only in the interleavings where the kill comes after the register.
    let program = Program::new(vec![
        vec![spawn(1), spawn(2), Action::Whereis(1)],
        vec![Action::SendTo {
            dest: Dest::Name(1),
            payload: 3,
        }],
        vec![
            Action::Link(Target::Path(&[1])),
            Action::Register {
                name: 1,
                who: Target::Myself,
            },
            send_parent(1),
        ],
    ]);
    // Found: child 2 (pid 2, recorded as 1 + pid).
    reaches_like_plain_search(&program, (&[], vec![3]));
}

#[test]
fn a_register_that_loses_to_one_before_a_kill_is_explored() {
    // Child 1 registers the name unless child 3 holds it already; child 2 kills child 1.
    // Child 1's register failing needs child 3's register before it, and child 1 still
    // alive then: optimal DPOR's wake-up tree took the kill's branch for it.
    let me = Target::Myself;
    let program = Program::new(vec![
        vec![spawn(1), spawn(2), spawn(3)],
        vec![Action::Register { name: 1, who: me }],
        vec![
            Action::Exit {
                to: Target::Path(&[1]),
                reason: lockstep_core::Reason::Kill,
            },
            Action::Alive(Target::Path(&[1])),
        ],
        vec![
            Action::Register { name: 1, who: me },
            Action::Register { name: 1, who: me },
            Action::SendTo {
                dest: Dest::Name(1),
                payload: 3,
            },
        ],
    ]);
    reaches_like_plain_search(&program, (&[1], vec![0]));
}

#[test]
fn a_receive_woken_by_a_message_it_does_not_match_does_not_hide_the_other_order() {
    // The root's `after` receive wakes at the first message, matches nothing and waits
    // again (a step that touches nothing, yet caused by that send): the reversal of the
    // two sends must not start with it. Found by the random runs (seed 6).
    let program = Program::new(vec![
        vec![
            spawn(1),
            spawn(2),
            Action::ReceiveAfter(Match::Payload(2), 5),
            Action::Receive(Match::Any),
        ],
        vec![send_parent(3)],
        vec![send_parent(1)],
    ]);
    let cfg = config_of(DeliveryMode::Instant);
    let none = explore(&program, cfg, Dpor::None, None, 20_000);
    let first: BTreeSet<Vec<u32>> = none.runs.iter().map(|r| r.received[0].clone()).collect();
    assert_eq!(first, BTreeSet::from([vec![1], vec![3]]));
    for dpor in [Dpor::Optimal, Dpor::Source] {
        let e = explore(&program, cfg, dpor, None, 20_000);
        assert!(e.exhausted);
        let got: BTreeSet<Vec<u32>> = e.runs.iter().map(|r| r.received[0].clone()).collect();
        assert_eq!(got, first, "{dpor:?}");
        assert_eq!(e.runs.len(), 2, "{dpor:?}");
    }
}

// Several workers (SPEC §11) --------------------------------------------------------------

/// Runs `program` on `workers` simulated workers: executions are handed out, run, and
/// completed in an order a seeded generator picks (later completions stand for slower
/// workers), until the search stops. Returns the explored runs in the master's order, the
/// stop, the stats, and how many runs were made in all.
fn explore_parallel(
    program: &Program,
    config: Config,
    dpor: Dpor,
    workers: usize,
    order_seed: u64,
    stop_on_failure: bool,
) -> (Vec<RunResult>, Stop, ParallelStats) {
    explore_parallel_with(
        program,
        config,
        Exhaustive::new(dpor, None),
        workers,
        order_seed,
        stop_on_failure,
        u64::MAX,
    )
}

fn explore_parallel_with(
    program: &Program,
    config: Config,
    search: Exhaustive,
    workers: usize,
    order_seed: u64,
    stop_on_failure: bool,
    cap: u64,
) -> (Vec<RunResult>, Stop, ParallelStats) {
    let shared = ParallelSearch::new(search, workers, cap);
    let mut rng = order_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut running: Vec<(u64, bool)> = Vec::new();
    let mut results: HashMap<u64, RunResult> = HashMap::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        if rounds > 100_000 {
            let me = shared.lock().unwrap();
            panic!(
                "the parallel search does not end: {:?}, {} running",
                me.stats(),
                running.len()
            );
        }
        let take = running.len() < workers && (running.is_empty() || next(2) == 0);
        if take {
            match ParallelSearch::take(&shared) {
                Take::Run(ticket, mut follower) => {
                    let r = run(program, config, &mut *follower, 0);
                    let failed = stop_on_failure && !matches!(r.outcome, Outcome::Pass);
                    running.push((ticket, failed));
                    results.insert(ticket, r);
                    continue;
                }
                Take::Stopped(stop) => {
                    // A failure or the cap stops the search with runs made ahead still out.
                    assert!(running.is_empty() || !matches!(stop, Stop::Exhausted));
                    let me = shared.lock().unwrap();
                    let runs = me.order().iter().map(|t| results[t].clone()).collect();
                    return (runs, stop, me.stats());
                }
                Take::Wait => assert!(!running.is_empty(), "waiting with nothing running"),
            }
        }
        if !running.is_empty() {
            let (ticket, failed) = running.remove(next(running.len()));
            shared.lock().unwrap().complete(ticket, failed);
        }
    }
}

#[test]
fn several_workers_explore_what_one_does_in_the_same_order() {
    let mut scripts = vec![vec![writer(1, 1)]];
    scripts.extend((0..4).map(|_| vec![reader(1, 1)]));
    let readers = spawn_all(scripts);
    let mixed = spawn_all(vec![
        vec![writer(1, 1), send_parent(1)],
        vec![reader(1, 1), send_parent(2), Action::Random(2)],
        vec![writer(1, 1)],
    ]);
    for (program, delivery) in [
        (&readers, DeliveryMode::Instant),
        (&mixed, DeliveryMode::Delayed),
    ] {
        let cfg = config_of(delivery);
        for dpor in [Dpor::Optimal, Dpor::Source, Dpor::None] {
            let sequential = explore(program, cfg, dpor, None, 5_000);
            if !sequential.exhausted {
                // Plain search over 5 processes: too many to compare here.
                assert_eq!(dpor, Dpor::None);
                continue;
            }
            let schedules: Vec<_> = sequential.runs.iter().map(|r| &r.schedule).collect();
            for workers in [2, 3, 5] {
                for order_seed in 1..=3 {
                    let (runs, stop, stats) =
                        explore_parallel(program, cfg, dpor, workers, order_seed, false);
                    assert_eq!(stop, Stop::Exhausted);
                    let got: Vec<_> = runs.iter().map(|r| &r.schedule).collect();
                    assert_eq!(got, schedules, "{dpor:?}, {workers} workers");
                    assert_eq!(stats.search.explored as usize, sequential.runs.len());
                    assert_eq!(stats.search.sleep_blocked, sequential.sleep_blocked);
                    assert!(stats.search.exhausted);
                    assert!(stats.handed_out >= stats.search.explored);
                }
            }
        }
    }
}

#[test]
fn several_workers_under_a_bound_a_cap_and_max_steps_do_what_one_does() {
    let program = spawn_all(vec![
        vec![writer(1, 1), writer(1, 1), Action::Random(2)],
        vec![writer(1, 1), reader(1, 1)],
        vec![reader(1, 1), Action::Yield, writer(1, 1)],
    ]);
    let cfg = config_of(DeliveryMode::Instant);
    let short = Config {
        max_steps: 9,
        ..cfg
    };
    let schedules = |runs: &[RunResult]| -> Vec<Vec<Decision>> {
        runs.iter().map(|r| r.schedule.clone()).collect()
    };
    for workers in [2, 3] {
        for order_seed in 1..=3 {
            // A preemption bound: plain depth-first search within it.
            let sequential = explore(&program, cfg, Dpor::Optimal, Some(1), 50_000);
            let (runs, stop, _) = explore_parallel_with(
                &program,
                cfg,
                Exhaustive::new(Dpor::Optimal, Some(1)),
                workers,
                order_seed,
                false,
                u64::MAX,
            );
            assert_eq!(stop, Stop::Exhausted);
            assert_eq!(schedules(&runs), schedules(&sequential.runs));
            // Executions cut short by max_steps.
            let sequential = explore(&program, short, Dpor::Optimal, None, 50_000);
            assert!(sequential
                .runs
                .iter()
                .any(|r| matches!(r.outcome, Outcome::MaxSteps)));
            let (runs, stop, _) = explore_parallel_with(
                &program,
                short,
                Exhaustive::new(Dpor::Optimal, None),
                workers,
                order_seed,
                false,
                u64::MAX,
            );
            assert_eq!(stop, Stop::Exhausted);
            assert_eq!(schedules(&runs), schedules(&sequential.runs));
            // A cap: the first interleavings of the sequential order, then a stop.
            let sequential = explore(&program, cfg, Dpor::Optimal, None, 50_000);
            assert!(sequential.runs.len() > 5);
            let (runs, stop, stats) = explore_parallel_with(
                &program,
                cfg,
                Exhaustive::new(Dpor::Optimal, None),
                workers,
                order_seed,
                false,
                5,
            );
            assert_eq!(stop, Stop::Capped);
            assert_eq!(stats.search.explored, 5);
            assert_eq!(schedules(&runs), schedules(&sequential.runs[..5]));
        }
    }
}

#[test]
fn several_workers_run_ahead_of_the_master() {
    // 1 writer and 6 readers: 64 interleavings, with work left at many nodes at once.
    let mut scripts = vec![vec![writer(1, 1)]];
    scripts.extend((0..6).map(|_| vec![reader(1, 1)]));
    let program = spawn_all(scripts);
    let cfg = config_of(DeliveryMode::Instant);
    let shared = ParallelSearch::new(Exhaustive::new(Dpor::Optimal, None), 4, u64::MAX);
    // Four workers that each take work whenever there is some, finishing oldest first.
    let mut running = std::collections::VecDeque::new();
    let mut most = 0;
    loop {
        match ParallelSearch::take(&shared) {
            Take::Run(ticket, mut follower) if running.len() < 4 => {
                run(&program, cfg, &mut *follower, 0);
                running.push_back(ticket);
                most = most.max(running.len());
                continue;
            }
            Take::Stopped(stop) => {
                assert_eq!(stop, Stop::Exhausted);
                break;
            }
            Take::Run(ticket, mut follower) => {
                run(&program, cfg, &mut *follower, 0);
                running.push_back(ticket);
            }
            Take::Wait => {}
        }
        let oldest = running.pop_front().expect("something runs");
        shared.lock().unwrap().complete(oldest, false);
    }
    let stats = shared.lock().unwrap().stats();
    assert_eq!(stats.search.explored, 64);
    assert!(most >= 3, "at most {most} executions ran at once");
    // Nearly everything run ahead was used.
    assert!(stats.handed_out <= 64 + 8, "{stats:?}");
}

#[test]
fn several_workers_stop_at_the_failure_the_sequential_search_meets_first() {
    // A program whose interleavings fail unless the writer goes last.
    let program = Program::new(vec![
        vec![spawn(1), spawn(2), spawn(3)],
        vec![writer(1, 1)],
        vec![reader(1, 1), Action::Crash],
        vec![reader(1, 1)],
    ]);
    let cfg = Config {
        crash: CrashMode::Fail,
        ..config_of(DeliveryMode::Instant)
    };
    let sequential = explore(&program, cfg, Dpor::Optimal, None, 50_000);
    let first_failure = sequential
        .runs
        .iter()
        .position(|r| !matches!(r.outcome, Outcome::Pass))
        .expect("the program fails somewhere")
        + 1;
    for workers in [2, 4] {
        for order_seed in 1..=5 {
            let (runs, stop, _) =
                explore_parallel(&program, cfg, Dpor::Optimal, workers, order_seed, true);
            let Stop::Failed { iteration, .. } = stop else {
                panic!("no failure found: {stop:?}");
            };
            assert_eq!(iteration as usize, first_failure);
            assert_eq!(runs.len(), first_failure);
            assert_eq!(
                runs.last().unwrap().schedule,
                sequential.runs[first_failure - 1].schedule
            );
        }
    }
}

proptest! {
    #![proptest_config(fixed_config())]

    /// On random programs, with names, links and kills too (the restart with sleep sets
    /// alone included), several workers explore the sequential search's interleavings in
    /// its order.
    #[test]
    fn several_workers_match_the_sequential_search(
        program in process_program(),
        workers in 2usize..=4,
        order_seed in 1u64..1000,
    ) {
        let cfg = Config { crash: CrashMode::Ignore, ..config_of(DeliveryMode::Instant) };
        for dpor in [Dpor::Optimal, Dpor::Source] {
            let sequential = explore(&program, cfg, dpor, None, 20_000);
            prop_assume!(sequential.exhausted);
            let (runs, stop, stats) = explore_parallel(&program, cfg, dpor, workers, order_seed, false);
            prop_assert_eq!(stop, Stop::Exhausted);
            let got: Vec<_> = runs.iter().map(|r| &r.schedule).collect();
            let want: Vec<_> = sequential.runs.iter().map(|r| &r.schedule).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(stats.search.restarted as usize, sequential.restarted);
        }
    }
}

#[test]
fn zz_timing() {
    let mut scripts = vec![vec![writer(1, 1)]];
    scripts.extend((0..8).map(|_| vec![reader(1, 1)]));
    let program = spawn_all(scripts);
    let cfg = config_of(DeliveryMode::Instant);
    for dpor in [Dpor::Optimal, Dpor::Source] {
        let t = std::time::Instant::now();
        let seq = explore(&program, cfg, dpor, None, 50_000);
        let t_seq = t.elapsed();
        let t = std::time::Instant::now();
        let (runs, _, stats) = explore_parallel(&program, cfg, dpor, 2, 1, false);
        let t_par = t.elapsed();
        eprintln!(
            "{dpor:?}: seq {} in {:?}, par {} in {:?} {:?}",
            seq.runs.len(),
            t_seq,
            runs.len(),
            t_par,
            stats
        );
    }
}

/// Runs a parallel search in rounds of equal length: in each round every idle worker takes
/// work (in worker order), and every execution taken completes at the end of the round.
/// Returns the rounds, the executions handed out and the schedules taken in, in order.
fn rounds_of(
    program: &Program,
    cfg: Config,
    dpor: Dpor,
    workers: usize,
) -> (u64, u64, Vec<Vec<Decision>>) {
    let shared = ParallelSearch::new(Exhaustive::new(dpor, None), workers, u64::MAX);
    let mut results: HashMap<u64, RunResult> = HashMap::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 1_000_000, "the parallel search does not end");
        let mut running = Vec::new();
        for _ in 0..workers {
            match ParallelSearch::take(&shared) {
                Take::Run(ticket, mut follower) => {
                    results.insert(ticket, run(program, cfg, &mut *follower, 0));
                    running.push(ticket);
                }
                Take::Wait => {}
                Take::Stopped(stop) => {
                    assert_eq!(stop, Stop::Exhausted);
                    assert!(running.is_empty());
                    let me = shared.lock().unwrap();
                    let order = me
                        .order()
                        .iter()
                        .map(|t| results[t].schedule.clone())
                        .collect();
                    return (rounds - 1, me.stats().handed_out, order);
                }
            }
        }
        assert!(
            !running.is_empty(),
            "every worker waits with nothing running"
        );
        for ticket in running {
            shared.lock().unwrap().complete(ticket, false);
        }
    }
}

#[test]
fn two_workers_take_fewer_rounds_than_one() {
    let readers = |n: u32| {
        let mut scripts = vec![vec![writer(1, 1)]];
        scripts.extend((0..n).map(|_| vec![reader(1, 1)]));
        spawn_all(scripts)
    };
    // Plain depth-first search, whose next execution is nearly always below the last one:
    // only a follower going on in its own subtree keeps the second worker busy.
    let writers = spawn_all(vec![
        vec![writer(1, 1), reader(1, 2)],
        vec![writer(1, 2), reader(1, 1)],
        vec![writer(1, 1)],
    ]);
    let instant = config_of(DeliveryMode::Instant);
    let mut ratios: Vec<(&str, Dpor, u64, u64)> = Vec::new();
    for (name, program, dpor) in [
        ("readers 8", readers(8), Dpor::Optimal),
        ("readers 8", readers(8), Dpor::Source),
        ("writers", writers.clone(), Dpor::None),
    ] {
        let (one, _, sequential) = rounds_of(&program, instant, dpor, 1);
        let (two, handed_out, order) = rounds_of(&program, instant, dpor, 2);
        assert_eq!(order, sequential, "{name} {dpor:?}");
        assert_eq!(one, sequential.len() as u64);
        eprintln!("{name} {dpor:?}: {one} rounds alone, {two} on two workers, {handed_out} runs");
        ratios.push((name, dpor, one, two));
    }
    for (name, dpor, one, two) in ratios {
        assert!(
            two * 10 <= one * 7,
            "{name} {dpor:?}: {two} rounds on two workers, {one} alone"
        );
    }
}
