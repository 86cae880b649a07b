//! What a managed process brings to its next sync point, and the one-message hand-over.
//!
//! A hop between two managed processes is one BEAM message. When `Lockstep.send` returns,
//! the engine has put the message in the target's mailbox, but the sender has not sent it
//! yet: it *carries* the payload (in its process dictionary) to its next sync point, where
//! nothing else of the run has run in between, so no managed process can tell. That next
//! NIF call then either
//!
//! - wakes the target for a receive whose only untested message is the carried one: the
//!   payload travels in the wake-up, `{tag, :go, {:in_hand, seq, payload, attempt}}`, and the
//!   target matches it in place without looking at its mailbox; or
//! - delivers it as `{tag, :msg, seq, payload}` before anything else this call delivers
//!   (it was sent first), and wakes whoever runs next as usual.
//!
//! A receive's consumption is carried the same way: the receiver notes the sequence number
//! of the message it took and the next NIF call reports it to the engine before the new
//! operation, so taking a message costs no call of its own. Both together make every sync
//! point one NIF call and every hop one message.
//!
//! A send itself can travel too (*deferred*): `Lockstep.send` to a pid or a reference has
//! no answer the caller needs, so the caller keeps `{:"$lockstep_send", dest, payload,
//! consumed}` and the next hot call performs it first — the same engine step, taken on the
//! same state, since nothing of the run happens in between — then its own operation. A hop
//! (send, then receive) is then one NIF call. When the send does not simply go on (the
//! strategy runs another process first, or the message leaves the run), the call stops
//! there and answers `{:"$lockstep_sent", result, dest, payload}` or
//! `{:"$lockstep_sent_wait", park, dest, payload}`: the caller settles the send as an
//! ordinary one and makes the call again.

use crate::convert::atoms;
use lockstep_core::{MsgId, OpResult};
use rustler::{Atom, Encoder, Env, Error, LocalPid, NifResult, Term};

/// The `pending` argument of the hot-path NIFs: `:undefined` (nothing), the sequence number
/// of a message the caller took since its last call, or `{pid, seq, payload}`, a message it
/// sent and still carries.
pub enum Pending<'a> {
    Nothing,
    Consumed(MsgId),
    Carry(Carry<'a>),
    Deferred(Deferred<'a>),
}

/// A send the caller made since its last call and that no call has performed yet.
pub struct Deferred<'a> {
    pub dest: Term<'a>,
    pub payload: Term<'a>,
    /// A message the caller took before it sent.
    pub consumed: Option<MsgId>,
}

pub struct Carry<'a> {
    pub to: LocalPid,
    pub msg: MsgId,
    pub payload: Term<'a>,
}

impl<'a> Pending<'a> {
    pub fn decode(term: Term<'a>) -> NifResult<Pending<'a>> {
        if term.is_atom() {
            // `:undefined` (what `:erlang.erase/1` gives for no entry); any other atom is a
            // bug on the Elixir side, never read as "nothing".
            return if atoms::undefined() == term {
                Ok(Pending::Nothing)
            } else {
                Err(Error::BadArg)
            };
        }
        if let Ok(msg) = term.decode::<MsgId>() {
            return Ok(Pending::Consumed(msg));
        }
        if let Ok((tag, dest, payload, consumed)) = term.decode::<(Atom, Term, Term, Term)>() {
            if tag != atoms::lockstep_send() {
                return Err(Error::BadArg);
            }
            let consumed = if consumed == atoms::undefined().encode(term.get_env()) {
                None
            } else {
                Some(consumed.decode::<MsgId>()?)
            };
            return Ok(Pending::Deferred(Deferred {
                dest,
                payload,
                consumed,
            }));
        }
        let (to, msg, payload) = term.decode::<(LocalPid, MsgId, Term<'a>)>()?;
        Ok(Pending::Carry(Carry { to, msg, payload }))
    }
}

impl<'a> Carry<'a> {
    /// Puts the carried message in its target's mailbox, the way every other delivery is.
    pub fn deliver(self, env: Env<'a>, tag: u64) {
        let _ = env.send(&self.to, (tag, atoms::msg(), self.msg, self.payload));
    }

    /// Whether the process `pid`, about to make a receive attempt, can take the carried
    /// message in hand: it is addressed to it and is the only message its receive has not
    /// tried (nothing else reached it since its last failed match).
    pub fn can_hand_to(&self, pid: Option<LocalPid>, untested: u32) -> bool {
        untested == 1 && pid.is_some_and(|p| p == self.to)
    }

    /// The result a receive attempt sees when the carried message is handed over with it.
    pub fn in_hand(&self, env: Env<'a>, result: OpResult) -> Option<Term<'a>> {
        let attempt = match result {
            OpResult::ReceiveAttempt { last: false } => atoms::attempt(),
            OpResult::ReceiveAttempt { last: true } => atoms::attempt_last(),
            _ => return None,
        };
        Some((atoms::in_hand(), self.msg, self.payload, attempt).encode(env))
    }
}

/// Hashes pids for the adapter's pid → process table, looked up at every send: a pid is
/// already a well-spread machine word, so one multiply mixes it (SipHash, the default,
/// showed in the hop's profile).
#[derive(Clone, Copy, Default)]
pub struct PidHash;

impl std::hash::BuildHasher for PidHash {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher(0)
    }
}

pub struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_ne_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): the top bits of n·2^64/φ.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
