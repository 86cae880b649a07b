//! Schedules: the list of decisions one iteration made, named by symbolic process names so
//! a schedule replays on any run of the same program. Encoded compactly with a version byte.

use crate::ids::ProcName;
use std::fmt;

/// One scheduling decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Let this process perform its pending operation and run to its next sync point.
    Run(ProcName),
    /// Deliver the oldest in-flight message from `from` to `to`.
    Deliver { from: ProcName, to: ProcName },
    /// The value `Lockstep.random/1` returned.
    Random(u64),
    /// Fire the `ordinal`-th timer (1-based) that process `owner` created.
    Fire { owner: ProcName, ordinal: u32 },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Run(p) => write!(f, "run {p}"),
            Decision::Deliver { from, to } => write!(f, "deliver {from} -> {to}"),
            Decision::Random(v) => write!(f, "random {v}"),
            Decision::Fire { owner, ordinal } => write!(f, "fire timer {ordinal} of {owner}"),
        }
    }
}

/// Current encoding version; bump on any incompatible change.
pub const SCHEDULE_FORMAT_VERSION: u8 = 1;

const TAG_RUN: u8 = 0;
const TAG_DELIVER: u8 = 1;
const TAG_RANDOM: u8 = 2;
const TAG_FIRE: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnknownVersion(u8),
    Truncated,
    BadTag(u8),
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty schedule encoding"),
            DecodeError::UnknownVersion(v) => write!(
                f,
                "schedule encoding version {v} is not supported (this build reads version {SCHEDULE_FORMAT_VERSION})"
            ),
            DecodeError::Truncated => write!(f, "schedule encoding is truncated"),
            DecodeError::BadTag(t) => write!(f, "unknown decision tag {t}"),
            DecodeError::TrailingBytes => write!(f, "trailing bytes after the schedule"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        if shift >= 64 {
            return Err(DecodeError::Truncated);
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn put_name(out: &mut Vec<u8>, name: &ProcName) {
    put_varint(out, name.path().len() as u64);
    for &n in name.path() {
        put_varint(out, u64::from(n));
    }
}

fn get_name(bytes: &[u8], pos: &mut usize) -> Result<ProcName, DecodeError> {
    let len = get_varint(bytes, pos)? as usize;
    if len > bytes.len() {
        return Err(DecodeError::Truncated);
    }
    let mut path = Vec::with_capacity(len);
    for _ in 0..len {
        let n = get_varint(bytes, pos)?;
        path.push(u32::try_from(n).map_err(|_| DecodeError::Truncated)?);
    }
    Ok(ProcName::from_path(path))
}

/// Encodes a schedule: version byte, count, then one tagged record per decision.
pub fn encode(decisions: &[Decision]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + decisions.len() * 3);
    out.push(SCHEDULE_FORMAT_VERSION);
    put_varint(&mut out, decisions.len() as u64);
    for d in decisions {
        match d {
            Decision::Run(p) => {
                out.push(TAG_RUN);
                put_name(&mut out, p);
            }
            Decision::Deliver { from, to } => {
                out.push(TAG_DELIVER);
                put_name(&mut out, from);
                put_name(&mut out, to);
            }
            Decision::Random(v) => {
                out.push(TAG_RANDOM);
                put_varint(&mut out, *v);
            }
            Decision::Fire { owner, ordinal } => {
                out.push(TAG_FIRE);
                put_name(&mut out, owner);
                put_varint(&mut out, u64::from(*ordinal));
            }
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Decision>, DecodeError> {
    let version = *bytes.first().ok_or(DecodeError::Empty)?;
    if version != SCHEDULE_FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let mut pos = 1;
    let count = get_varint(bytes, &mut pos)? as usize;
    if count > bytes.len() {
        return Err(DecodeError::Truncated);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = *bytes.get(pos).ok_or(DecodeError::Truncated)?;
        pos += 1;
        out.push(match tag {
            TAG_RUN => Decision::Run(get_name(bytes, &mut pos)?),
            TAG_DELIVER => {
                let from = get_name(bytes, &mut pos)?;
                let to = get_name(bytes, &mut pos)?;
                Decision::Deliver { from, to }
            }
            TAG_RANDOM => Decision::Random(get_varint(bytes, &mut pos)?),
            TAG_FIRE => {
                let owner = get_name(bytes, &mut pos)?;
                let ordinal = u32::try_from(get_varint(bytes, &mut pos)?)
                    .map_err(|_| DecodeError::Truncated)?;
                Decision::Fire { owner, ordinal }
            }
            other => return Err(DecodeError::BadTag(other)),
        });
    }
    if pos != bytes.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name_strategy() -> impl Strategy<Value = ProcName> {
        proptest::collection::vec(1u32..u32::MAX, 0..5).prop_map(ProcName::from_path)
    }

    fn decision_strategy() -> impl Strategy<Value = Decision> {
        prop_oneof![
            name_strategy().prop_map(Decision::Run),
            (name_strategy(), name_strategy())
                .prop_map(|(from, to)| Decision::Deliver { from, to }),
            any::<u64>().prop_map(Decision::Random),
            (name_strategy(), any::<u32>())
                .prop_map(|(owner, ordinal)| Decision::Fire { owner, ordinal }),
        ]
    }

    proptest! {
        #[test]
        fn encoding_round_trips(decisions in proptest::collection::vec(decision_strategy(), 0..200)) {
            let bytes = encode(&decisions);
            prop_assert_eq!(bytes[0], SCHEDULE_FORMAT_VERSION);
            prop_assert_eq!(decode(&bytes).unwrap(), decisions);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn rejects_unknown_versions_and_truncation() {
        let bytes = encode(&[Decision::Run(ProcName::root().child(3))]);
        let mut other_version = bytes.clone();
        other_version[0] = 99;
        assert_eq!(decode(&other_version), Err(DecodeError::UnknownVersion(99)));
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
    }
}
