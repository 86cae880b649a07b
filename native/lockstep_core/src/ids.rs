//! The ids of one session's tables, and the spawn-tree names that outlive a session.

use std::fmt;

/// Index of a process in one session's process table. Only meaningful inside that session;
/// anything that must survive across iterations (schedules, traces) uses [`ProcName`].
pub type ProcId = u32;

/// Index of a message in one session's message table (its send sequence number).
pub type MsgId = u32;

/// Index of a monitor in one session's monitor table.
pub type MonitorId = u32;

/// Index of a timer in one session's timer table.
pub type TimerId = u32;

/// A registered name, interned by the adapter (the engine never sees the atom).
pub type NameId = u32;

/// A simulated node; 0 is `:nonode@nohost`.
pub type NodeId = u32;

/// A process's stable symbolic name, following the spawn tree: the root is `P`, its n-th
/// child `P.n`, that child's m-th child `P.n.m`. A child's name depends only on its parent's
/// program order, so the same process has the same name in every interleaving.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcName(Vec<u32>);

impl ProcName {
    pub fn root() -> Self {
        ProcName(Vec::new())
    }

    pub fn child(&self, ordinal: u32) -> Self {
        let mut path = Vec::with_capacity(self.0.len() + 1);
        path.extend_from_slice(&self.0);
        path.push(ordinal);
        ProcName(path)
    }

    pub fn from_path(path: Vec<u32>) -> Self {
        ProcName(path)
    }

    pub fn path(&self) -> &[u32] {
        &self.0
    }

    /// Parses the printed form (`P`, `P.1`, `P.1.2`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        if parts.next()? != "P" {
            return None;
        }
        let path = parts
            .map(|p| match p.parse::<u32>() {
                Ok(n) if n > 0 && !p.starts_with('0') => Some(n),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()?;
        Some(ProcName(path))
    }
}

impl fmt::Display for ProcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for n in &self.0 {
            write!(f, ".{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_and_parse() {
        let name = ProcName::root().child(1).child(12);
        assert_eq!(name.to_string(), "P.1.12");
        assert_eq!(ProcName::parse("P.1.12"), Some(name));
        assert_eq!(ProcName::parse("P"), Some(ProcName::root()));
        for bad in ["", "Q", "P.", "P.0", "P.01", "P.x", "P..1"] {
            assert_eq!(ProcName::parse(bad), None, "{bad:?}");
        }
    }
}
