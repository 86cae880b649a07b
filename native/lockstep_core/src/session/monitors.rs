//! Monitors.

use crate::ids::ProcId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorRec {
    pub owner: ProcId,
    pub target: ProcId,
    pub active: bool,
}
