//! Lockstep's scheduler engine: the process table, mailbox bookkeeping, the strategies, the
//! schedule of decisions and the trace buffer of one controlled run. Pure Rust, no BEAM:
//! `lockstep_nif` adapts it to Erlang terms and processes.

pub mod cluster;
pub mod process;
pub mod schedule;
pub mod session;
pub mod strategy;
pub mod timer;
pub mod trace;

pub use cluster::{ClusterOp, PartitionMode, HOME_NODE};
pub use process::{
    ExitCause, ExitClass, MonitorId, MsgId, NameId, NodeId, PendingOp, ProcId, ProcName, ProcState,
    Reason, Target, TimerId,
};
pub use schedule::Decision;
pub use session::{
    Config, CrashMode, DeliveryMode, Effect, EngineError, Next, Op, OpResult, Outcome, Session,
};
pub use strategy::{iteration_seed, Choice, Divergence, Strategy, View};
pub use timer::{TimerKind, TimerMode};
pub use trace::{Event, EventKind, SendFate};
