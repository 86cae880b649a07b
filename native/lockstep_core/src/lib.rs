//! Lockstep's scheduler engine: the process table, mailbox bookkeeping, the strategies, the
//! schedule of decisions and the trace buffer of one controlled run. Pure Rust, no BEAM:
//! `lockstep_nif` adapts it to Erlang terms and processes.
//!
//! [`session`] is one iteration's run state and every semantic rule, one file per concern
//! (its module comment maps them). The vocabulary it shares with the strategies, the trace
//! and the adapter sits below it, each module depending only on those above it in this
//! list: [`ids`] (table indices, spawn-tree names), [`message`] (messages, signals,
//! reasons, targets), [`op`] (operations and their results), [`process`] (table entries),
//! [`cluster`] (nodes, partitions, per-node global views), [`timer`], [`config`],
//! [`trace`], [`schedule`] (decisions by name, their encoding), [`choices`] (the choices
//! offered at a step, kept up to date). [`strategy`] is policy: it sees a read-only
//! [`View`] and the [`ChoiceSet`], never the session.
//!
//! [`checker`] stands apart from all of these: the consistency checker of recorded
//! histories (linearizability, sequential consistency) that `Lockstep.History` runs when
//! an iteration ends.

pub mod checker;
pub mod choices;
pub mod cluster;
pub mod config;
pub mod ids;
pub mod message;
pub mod op;
pub mod process;
pub mod schedule;
pub mod session;
pub mod strategy;
pub mod timer;
pub mod trace;

pub use choices::ChoiceSet;
pub use cluster::{PartitionMode, HOME_NODE};
pub use config::{BlockedAtEnd, Config, CrashMode, DeliveryMode};
pub use ids::{MonitorId, MsgId, NameId, NodeId, ProcId, ProcName, TimerId};
pub use message::{Message, MsgKind, MsgState, Reason, SendFate, Target};
pub use op::{ClusterOp, Op, OpResult};
pub use process::{Alias, ExitCause, ExitClass, ProcState};
pub use schedule::Decision;
pub use session::{Effect, EngineError, MonitorRec, Next, Outcome, Session};
pub use strategy::{iteration_seed, Choice, Divergence, Strategy, View};
pub use timer::{TimerKind, TimerMode};
pub use trace::{Event, EventKind};
