//! The random-program generators the property tests share (`properties.rs`, and
//! `equivalence.rs`, which pins a digest of what the engine does with the programs they
//! generate): first programs of messages, receives, timers and crashes, then programs that
//! use every operation of the engine.
#![allow(dead_code)]

use crate::common::{Action, Dest, Match, Program, StrategyKind, Target};
use lockstep_core::{
    BlockedAtEnd, Config, CrashMode, DeliveryMode, PartitionMode, Reason, TimerMode,
};
use proptest::prelude::*;

pub const MAX_SCRIPTS: usize = 4;

pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => Just(Target::Parent),
        4 => (1u32..=3).prop_map(Target::Child),
        1 => Just(Target::Myself),
        1 => Just(Target::Outside),
    ]
}

pub fn matcher() -> impl Strategy<Value = Match> {
    prop_oneof![Just(Match::Any), (0u32..3).prop_map(Match::Payload)]
}

pub fn action(scripts: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0..scripts, any::<bool>()).prop_map(|(script, link)| Action::Spawn { script, link }),
        4 => (target(), 0u32..3).prop_map(|(to, payload)| Action::Send { to, payload }),
        3 => matcher().prop_map(Action::Receive),
        1 => matcher().prop_map(Action::SpinReceive),
        1 => (matcher(), 0u64..20).prop_map(|(m, ms)| Action::ReceiveAfter(m, ms)),
        1 => (0u64..20).prop_map(Action::Sleep),
        1 => Just(Action::Yield),
        1 => (1u64..5).prop_map(Action::Random),
        1 => Just(Action::Crash),
    ]
}

pub fn program() -> impl Strategy<Value = Program> {
    (1..=MAX_SCRIPTS)
        .prop_flat_map(|n| proptest::collection::vec(proptest::collection::vec(action(n), 0..8), n))
        .prop_map(Program::new)
}

pub fn config() -> impl Strategy<Value = Config> {
    (
        1u64..300,
        prop_oneof![Just(DeliveryMode::Instant), Just(DeliveryMode::Delayed)],
        prop_oneof![
            Just(CrashMode::Fail),
            Just(CrashMode::Ignore),
            Just(CrashMode::Strict)
        ],
        prop_oneof![Just(TimerMode::OnIdle), Just(TimerMode::Anytime)],
        prop_oneof![Just(BlockedAtEnd::Kill), Just(BlockedAtEnd::Fail)],
    )
        .prop_map(
            |(max_steps, delivery, crash, timers, blocked_at_end)| Config {
                max_steps,
                delivery,
                crash,
                timers,
                blocked_at_end,
            },
        )
}

pub fn strategy_kind() -> impl Strategy<Value = StrategyKind> {
    prop_oneof![
        Just(StrategyKind::Random),
        (1u32..5).prop_map(StrategyKind::Pct),
        Just(StrategyKind::Pos),
        (1u32..4, 0u64..30).prop_map(|(depth, switch_after)| StrategyKind::FairPct {
            depth,
            switch_after
        }),
        (1u32..4, 1u32..6).prop_map(|(d_min, d_max)| StrategyKind::IdPct { d_min, d_max }),
    ]
}

/// A process an operation is about (one that does not resolve is the performer itself).
pub fn pid_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => Just(Target::Parent),
        3 => (1u32..=2).prop_map(Target::Child),
        1 => Just(Target::Myself),
    ]
}

pub fn dest() -> impl Strategy<Value = Dest> {
    prop_oneof![
        8 => target().prop_map(Dest::Proc),
        1 => (0u32..2).prop_map(Dest::Name),
        1 => (0u32..2, 0u32..3).prop_map(|(n, node)| Dest::NameAt(n, node)),
        1 => (0u32..2).prop_map(Dest::Global),
        1 => (pid_target(), 0u32..2).prop_map(|(t, a)| Dest::Alias(t, a)),
    ]
}

pub fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        Just(Reason::Normal),
        Just(Reason::Kill),
        (0u32..2).prop_map(Reason::Given),
        (2u32..3).prop_map(Reason::Shutdown),
    ]
}

pub fn any_match() -> impl Strategy<Value = Match> {
    prop_oneof![
        3 => Just(Match::Any),
        2 => (0u32..3).prop_map(Match::Payload),
        1 => Just(Match::Exit),
        1 => Just(Match::Down),
        1 => Just(Match::NodeDown),
    ]
}

pub const GROUPS: [(&[u32], &[u32]); 3] = [(&[0], &[1]), (&[0], &[1, 2]), (&[1], &[2])];

pub fn any_action(scripts: usize) -> impl Strategy<Value = Action> {
    let node = 0u32..3;
    let name = 0u32..2;
    prop_oneof![
        // What `action` generates, with the new matchers; plenty of receives, so messages
        // and signals are taken.
        6 => action(scripts),
        4 => any_match().prop_map(Action::Receive),
        2 => (any_match(), 0u64..30).prop_map(|(m, ms)| Action::ReceiveAfter(m, ms)),
        // Processes, links, monitors, signals.
        1 => (0..scripts, any::<bool>(), node.clone())
            .prop_map(|(script, link, node)| Action::SpawnOn { script, link, node }),
        3 => (dest(), 0u32..3).prop_map(|(dest, payload)| Action::SendTo { dest, payload }),
        1 => pid_target().prop_map(Action::Link),
        1 => pid_target().prop_map(Action::Unlink),
        3 => pid_target().prop_map(Action::Monitor),
        2 => (1u32..3, any::<bool>()).prop_map(|(nth, flush)| Action::Demonitor { nth, flush }),
        1 => any::<bool>().prop_map(Action::TrapExit),
        2 => (pid_target(), reason()).prop_map(|(to, reason)| Action::Exit { to, reason }),
        1 => pid_target().prop_map(Action::Alive),
        1 => Just(Action::Shutdown),
        // Names and aliases.
        1 => (name.clone(), pid_target()).prop_map(|(name, who)| Action::Register { name, who }),
        1 => name.clone().prop_map(Action::Unregister),
        1 => name.clone().prop_map(Action::Whereis),
        1 => Just(Action::Registered),
        1 => (0u32..2).prop_map(Action::Alias),
        1 => (0u32..2).prop_map(Action::Unalias),
        // Time.
        1 => Just(Action::Now),
        2 => (dest(), 0u32..3, 0u64..30)
            .prop_map(|(dest, payload, ms)| Action::SendAfter { dest, payload, ms }),
        2 => (1u32..3).prop_map(Action::CancelTimer),
        1 => (1u32..3).prop_map(Action::CancelTimerNotify),
        1 => (1u32..3).prop_map(Action::ReadTimer),
        1 => (1u32..3).prop_map(Action::ReadTimerNotify),
        // Shared state.
        1 => proptest::option::of(0u64..3).prop_map(Action::Nif),
        1 => name.clone().prop_map(Action::EtsNew),
        1 => name.clone().prop_map(Action::EtsWhereis),
        1 => name.clone().prop_map(Action::EtsDelete),
        // The cluster.
        1 => node.clone().prop_map(Action::StartNode),
        1 => node.clone().prop_map(Action::StopNode),
        2 => (0..GROUPS.len(), any::<bool>()).prop_map(|(g, defer)| Action::Partition {
            a: GROUPS[g].0,
            b: GROUPS[g].1,
            mode: if defer { PartitionMode::Defer } else { PartitionMode::Drop },
        }),
        1 => Just(Action::Heal),
        2 => node.clone().prop_map(Action::MonitorNode),
        1 => (1u64..40).prop_map(Action::SetTicktime),
        1 => prop_oneof![Just(Action::Nodes), Just(Action::NodesUp)],
        1 => pid_target().prop_map(Action::NodeOf),
        1 => (name.clone(), pid_target())
            .prop_map(|(name, who)| Action::GlobalRegister { name, who }),
        1 => name.clone().prop_map(Action::GlobalUnregister),
        1 => name.clone().prop_map(Action::GlobalWhereis),
        1 => Just(Action::GlobalNames),
        1 => (name.clone(), node.clone()).prop_map(|(name, node)| Action::WhereisOn { name, node }),
        1 => node.prop_map(Action::NamesOn),
    ]
}

/// What a script starts with, so that the processes its later actions name exist: spawns
/// (linked or not, here or on a node), node starts, trapping exits.
pub fn setup(scripts: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..scripts, any::<bool>()).prop_map(|(script, link)| Action::Spawn { script, link }),
        2 => (0..scripts, any::<bool>(), 1u32..3)
            .prop_map(|(script, link, node)| Action::SpawnOn { script, link, node }),
        2 => (1u32..3).prop_map(Action::StartNode),
        1 => Just(Action::TrapExit(true)),
    ]
}

pub fn any_script(scripts: usize) -> impl Strategy<Value = Vec<Action>> {
    (
        proptest::collection::vec(setup(scripts), 0..4),
        proptest::collection::vec(any_action(scripts), 0..10),
    )
        .prop_map(|(setup, body)| [setup, body].concat())
}

pub fn any_program() -> impl Strategy<Value = Program> {
    (1..=MAX_SCRIPTS)
        .prop_flat_map(|n| proptest::collection::vec(any_script(n), n))
        .prop_map(Program::new)
}
