//! The terms the NIFs decode, declared once with rustler's derives (`NifUnitEnum`,
//! `NifTaggedEnum`, `NifMap`): a run's strategy spec, a session's config, an exit class,
//! the operations of `sync_name`, `sync_time`, `sync_cluster` and `ets_names`, and the
//! decisions of a schedule.
//!
//! A value outside these types is a decode error, never a default. [`arg`] turns it into a
//! `Lockstep.InternalError` that names the value and what was expected: the Elixir side
//! validates what a user gives before it reaches a NIF, so a bad value here is a bug in
//! Lockstep. `sync_cluster` instead answers `:badarg` without making a sync point, which its
//! caller raises as an `ArgumentError` naming the operation (its documented contract).
//!
//! The hot path's arguments (a send's destination, the `pending` value of `handoff`) are
//! decoded by hand where they are used: they are untagged, and every call pays for them.

use crate::convert::internal_error;
use lockstep_core::op::SharedAccess;
use lockstep_core::strategy::{Dpor, Exhaustive, FairPct, IdPct, Pct, Pos, RandomWalk, Replay};
use lockstep_core::{
    BlockedAtEnd, Config, CrashMode, Decision, DeliveryMode, ExitClass, ProcName, Strategy,
};
use lockstep_core::{PartitionMode, TimerMode};
use rustler::{Atom, Decoder, LocalPid, NifMap, NifResult, NifTaggedEnum, NifUnitEnum, Term};

/// A decodable argument and how its error names what was expected.
pub trait Arg<'a>: Decoder<'a> {
    const WHAT: &'static str;
    const EXPECTED: &'static str;
}

/// Decodes `term` as `T`, or raises `Lockstep.InternalError` naming the bad value.
pub fn arg<'a, T: Arg<'a>>(term: Term<'a>) -> NifResult<T> {
    term.decode::<T>().map_err(|_| {
        internal_error(&format!(
            "bad {} {} (expected {})",
            T::WHAT,
            describe(term),
            T::EXPECTED
        ))
    })
}

/// A term as the Erlang shell prints it, cut short: enough to name a bad value in a
/// message without copying a whole schedule into it (the term is printed whole first, which
/// only an error pays for).
pub fn describe(term: Term) -> String {
    const MAX: usize = 200;
    let text = format!("{term:?}");
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A list decoded only when it is proper: rustler's list iterator panics on an improper
/// tail, and a panic under the session lock would poison the session.
pub struct ProperList<T>(pub Vec<T>);

impl<'a, T: Decoder<'a>> Decoder<'a> for ProperList<T> {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        term.list_length()?;
        Ok(ProperList(term.decode()?))
    }
}

// ---------------------------------------------------------------------------------------
// Strategies and sessions

/// `strategy_new/1`'s spec, as `Lockstep.Runner.strategy_spec/1` and the replay and shrink
/// paths build it.
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum StrategySpec<'a> {
    Random,
    Pos,
    /// `{:pct, bug_depth}`
    Pct(u32),
    /// `{:fair_pct, bug_depth, fair_switch}`
    FairPct(u32, u64),
    /// `{:idpct, d_min, d_max}`
    Idpct(u32, u32),
    /// `{:replay, schedule}`: the schedule exactly.
    Replay(Term<'a>),
    /// `{:shrink_replay, schedule, seed}`: a shrink candidate, random past its end.
    ShrinkReplay(Term<'a>, u64),
    /// `{:exhaustive, dpor, preemption_bound}` (`nil`: unbounded).
    Exhaustive(DporMode, Option<u32>),
}

/// `:exhaustive`'s `dpor:` option.
#[derive(NifUnitEnum, Clone, Copy)]
pub enum DporMode {
    None,
    Source,
    Optimal,
}

impl<'a> Arg<'a> for StrategySpec<'a> {
    const WHAT: &'static str = "strategy spec";
    const EXPECTED: &'static str = ":random, :pos, {:pct, depth}, {:fair_pct, depth, switch}, \
        {:idpct, d_min, d_max}, {:replay, schedule}, {:shrink_replay, schedule, seed} or \
        {:exhaustive, :none | :source | :optimal, nil | bound}";
}

impl StrategySpec<'_> {
    pub fn strategy(self) -> NifResult<Box<dyn Strategy>> {
        Ok(match self {
            StrategySpec::Random => Box::new(RandomWalk::new()),
            StrategySpec::Pos => Box::new(Pos::new()),
            StrategySpec::Pct(depth) => Box::new(Pct::new(depth)),
            StrategySpec::FairPct(depth, switch) => Box::new(FairPct::new(depth, switch)),
            StrategySpec::Idpct(d_min, d_max) => Box::new(IdPct::new(d_min, d_max)),
            StrategySpec::Replay(schedule) => Box::new(Replay::new(schedule_arg(schedule)?)),
            StrategySpec::ShrinkReplay(schedule, seed) => {
                Box::new(Replay::lenient(schedule_arg(schedule)?, seed))
            }
            StrategySpec::Exhaustive(dpor, bound) => Box::new(exhaustive(dpor, bound)),
        })
    }

    /// The exhaustive search the spec asks for; an error for any other strategy.
    pub fn exhaustive(self) -> NifResult<Exhaustive> {
        match self {
            StrategySpec::Exhaustive(dpor, bound) => Ok(exhaustive(dpor, bound)),
            _ => Err(internal_error(
                "a parallel exhaustive search needs an {:exhaustive, dpor, bound} spec",
            )),
        }
    }
}

fn exhaustive(dpor: DporMode, bound: Option<u32>) -> Exhaustive {
    let dpor = match dpor {
        DporMode::None => Dpor::None,
        DporMode::Source => Dpor::Source,
        DporMode::Optimal => Dpor::Optimal,
    };
    Exhaustive::new(dpor, bound)
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum Delivery {
    Instant,
    Delayed,
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum Crash {
    Fail,
    Ignore,
    Strict,
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum BlockedAtEndMode {
    Kill,
    Fail,
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum Timers {
    OnIdle,
    Anytime,
}

/// `session_new/5`'s config: `%{max_steps:, delivery:, crash:, timers:, blocked_at_end:}`
/// (other keys are ignored).
#[derive(NifMap)]
#[rustler(decode)]
pub struct SessionConfig {
    pub max_steps: u64,
    pub delivery: Delivery,
    pub crash: Crash,
    pub timers: Timers,
    pub blocked_at_end: BlockedAtEndMode,
}

impl Arg<'_> for SessionConfig {
    const WHAT: &'static str = "session config";
    const EXPECTED: &'static str = "%{max_steps: non-negative integer, delivery: :instant | \
        :delayed, crash: :fail | :ignore | :strict, timers: :on_idle | :anytime, blocked_at_end: :kill | \
        :fail}";
}

impl From<SessionConfig> for Config {
    fn from(c: SessionConfig) -> Config {
        Config {
            max_steps: c.max_steps,
            delivery: match c.delivery {
                Delivery::Instant => DeliveryMode::Instant,
                Delivery::Delayed => DeliveryMode::Delayed,
            },
            crash: match c.crash {
                Crash::Fail => CrashMode::Fail,
                Crash::Ignore => CrashMode::Ignore,
                Crash::Strict => CrashMode::Strict,
            },
            timers: match c.timers {
                Timers::OnIdle => TimerMode::OnIdle,
                Timers::Anytime => TimerMode::Anytime,
            },
            blocked_at_end: match c.blocked_at_end {
                BlockedAtEndMode::Kill => BlockedAtEnd::Kill,
                BlockedAtEndMode::Fail => BlockedAtEnd::Fail,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Managed processes' operations

/// How a process's own code ended (`exit/6`): whether it is a crash.
#[derive(NifUnitEnum, Clone, Copy)]
pub enum ExitKind {
    Normal,
    Abnormal,
}

impl Arg<'_> for ExitKind {
    const WHAT: &'static str = "exit class";
    const EXPECTED: &'static str = ":normal or :abnormal";
}

impl From<ExitKind> for ExitClass {
    fn from(k: ExitKind) -> ExitClass {
        match k {
            ExitKind::Normal => ExitClass::Normal,
            ExitKind::Abnormal => ExitClass::Abnormal,
        }
    }
}

/// `sync_name/3`'s operation.
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum NameOp {
    Register(Atom, LocalPid),
    Unregister(Atom),
    Whereis(Atom),
    Registered,
}

impl Arg<'_> for NameOp {
    const WHAT: &'static str = "name operation";
    const EXPECTED: &'static str =
        "{:register, name, pid}, {:unregister, name}, {:whereis, name} or :registered";
}

/// `alias/4`'s operation: `:on`, `:off`, or `{:ref, ref, reply, mref}` (a reference alias,
/// spent by its first message when `reply`, tied to monitor `mref` unless it is `nil`).
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum AliasOp<'a> {
    On,
    Off,
    Ref(Term<'a>, bool, Term<'a>),
}

impl<'a> Arg<'a> for AliasOp<'a> {
    const WHAT: &'static str = "alias operation";
    const EXPECTED: &'static str = ":on, :off or {:ref, ref, reply :: boolean, mref | nil}";
}

/// `sync_time/3`'s operation.
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum TimeOp {
    Now,
    Sleep(u64),
}

impl Arg<'_> for TimeOp {
    const WHAT: &'static str = "time operation";
    const EXPECTED: &'static str = ":now or {:sleep, ms} (ms a non-negative integer)";
}

/// `ets_names/3`'s operation (named ETS tables per simulated node).
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum EtsNameOp<'a> {
    Register(Atom, Term<'a>),
    Whereis(Atom),
    Unregister(Atom),
    /// Every named table of the caller's node, as `[{name, tid}]`.
    All,
}

impl<'a> Arg<'a> for EtsNameOp<'a> {
    const WHAT: &'static str = "ets_names operation";
    const EXPECTED: &'static str =
        "{:register, name, tid}, {:whereis, name}, {:unregister, name} or :all";
}

/// `sync_cluster/3`'s operation. Node names are checked against the run's nodes by the
/// caller (`:badnode`), pids against its processes (`:unmanaged`).
#[derive(NifTaggedEnum)]
#[rustler(decode)]
pub enum ClusterArg<'a> {
    Heal,
    Nodes,
    NodesUp,
    Visible,
    GlobalNames,
    /// `{:partition, group_a, group_b, :drop | :defer}`
    Partition(ProperList<Atom>, ProperList<Atom>, Partition),
    /// `{:whereis, name, node}`
    Whereis(Atom, Atom),
    /// `{:registered, node}`
    Registered(Atom),
    GlobalRegister(Term<'a>, LocalPid),
    GlobalUnregister(Term<'a>),
    GlobalWhereis(Term<'a>),
    SetTicktime(u64),
    NodeOf(LocalPid),
    StartNode(Atom),
    StopNode(Atom),
    MonitorNode(Atom),
}

#[derive(NifUnitEnum, Clone, Copy)]
pub enum Partition {
    Drop,
    Defer,
}

impl From<Partition> for PartitionMode {
    fn from(p: Partition) -> PartitionMode {
        match p {
            Partition::Drop => PartitionMode::Drop,
            Partition::Defer => PartitionMode::Defer,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Schedules

/// One decision of a schedule, as `Lockstep.TraceFile` stores it; the fields are checked
/// one by one so that the error says which is wrong.
#[derive(NifTaggedEnum)]
#[rustler(decode)]
enum DecisionArg<'a> {
    Run(Term<'a>),
    Deliver(Term<'a>, Term<'a>),
    Fire(Term<'a>, Term<'a>),
    Random(Term<'a>),
}

fn bad_schedule(detail: &str) -> rustler::Error {
    internal_error(&format!("invalid schedule: {detail}"))
}

fn name_arg(term: Term) -> NifResult<ProcName> {
    let text: String = term
        .decode()
        .map_err(|_| bad_schedule(&format!("bad process name {}", describe(term))))?;
    ProcName::parse(&text).ok_or_else(|| bad_schedule(&format!("bad process name {text:?}")))
}

/// A replay schedule: a proper list of `{:run, name}`, `{:deliver, from, to}`,
/// `{:fire, owner, n}` and `{:random, n}`.
pub fn schedule_arg(term: Term) -> NifResult<Vec<Decision>> {
    let ProperList(items) = term
        .decode::<ProperList<Term>>()
        .map_err(|_| bad_schedule("expected a proper list of decisions"))?;
    items
        .into_iter()
        .map(|item| match item.decode::<DecisionArg>() {
            Ok(DecisionArg::Run(name)) => Ok(Decision::Run(name_arg(name)?)),
            Ok(DecisionArg::Deliver(from, to)) => Ok(Decision::Deliver {
                from: name_arg(from)?,
                to: name_arg(to)?,
            }),
            Ok(DecisionArg::Fire(owner, ordinal)) => Ok(Decision::Fire {
                owner: name_arg(owner)?,
                ordinal: ordinal
                    .decode::<u32>()
                    .map_err(|_| bad_schedule("a timer ordinal must be an integer in 0..2^32-1"))?,
            }),
            Ok(DecisionArg::Random(value)) => {
                Ok(Decision::Random(value.decode::<u64>().map_err(|_| {
                    bad_schedule("a random value must be an integer in 0..2^64-1")
                })?))
            }
            Err(_) => Err(bad_schedule(&format!(
                "expected {{:run, name}}, {{:deliver, from, to}}, {{:fire, owner, n}} or \
                 {{:random, n}}, got {}",
                describe(item)
            ))),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Shared state

/// What a shared-state sync point touches, as `Lockstep.SharedState` builds it: `nil`
/// (nothing mutable), an object hash (the trace's and `:pos`'s race object; how it touches
/// it is unknown), or `{object, table, key | nil, write?, stable?}` (the exhaustive search's
/// dependency relation: key `key` of `table`, or the whole table, read or written; see
/// `lockstep_core::op::SharedAccess`).
pub struct NifObject(pub Option<u64>, pub Option<SharedAccess>);

impl<'a> Decoder<'a> for NifObject {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        if let Ok(object) = term.decode::<Option<u64>>() {
            return Ok(NifObject(object, None));
        }
        let (object, table, key, write, stable): (u64, u64, Option<u64>, bool, bool) =
            term.decode()?;
        Ok(NifObject(
            Some(object),
            Some(SharedAccess {
                table,
                key,
                write,
                stable,
            }),
        ))
    }
}

impl<'a> Arg<'a> for NifObject {
    const WHAT: &'static str = "shared-state object";
    const EXPECTED: &'static str =
        "nil, an object id, or {object, table, key | nil, write?, stable?}";
}
