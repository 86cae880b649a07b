//! Forced hops, relayed without the engine and replayed into it later.
//!
//! In a ping-pong between two processes every decision is forced: the sender is the only
//! process that can run when it sends, and its receive blocks at once (nothing untested),
//! leaving the receiver as the only choice. The adapter may then let the two hand the turn
//! to each other directly, without an engine call per hop, and replay the hops here, in
//! order, at the next engine call — the same calls, on the same state, as the hops would
//! have made one by one, since nothing else of the run can happen in between. A hop is,
//! for its sender `s` and receiver `r`: `consumed(s, m)` of the message `s` was handed,
//! `sync(s, Send { to: r })`, which numbers the new message `m + 1`, and `sync(s, Receive)`,
//! which blocks `s` and wakes `r` with a receive attempt.
//!
//! [`Session::relay_hops`] says whether, and for how many hops, that holds: the adapter asks
//! it when a step has just woken `woken` with the one message it has not tried, sent by
//! `waker`, which now waits. [`Session::replay_relayed_hop`] replays one hop and checks that
//! it came out as relayed; any difference is a bug in the adapter, reported as an error.

use super::Session;
use crate::config::DeliveryMode;
use crate::ids::{MsgId, ProcId};
use crate::message::{SendFate, Target};
use crate::op::{Op, OpResult};
use crate::process::ProcState;
use crate::strategy::Strategy;
use crate::timer::TimerMode;

use super::Next;

/// A relayed hop that did not replay as the adapter made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayDiverged {
    pub sender: ProcId,
    pub taken: MsgId,
}

impl Session {
    /// How many hops (at most `cap`) `woken` and `waker` may relay between them, starting
    /// with a send from `woken` to `waker`, each one forced: 0 when any of it could differ.
    ///
    /// Every hop leaves the run exactly as the previous one found it, mirrored (one process
    /// running a receive attempt on the only message in its mailbox, the other blocked in a
    /// receive without timeout and with an empty mailbox — so the receive each starts after
    /// its send, with nothing to try, blocks at once), so these conditions, true now,
    /// stay true: nothing else can run, no message is in flight, no timer is offered (none
    /// is pending, or `timers: :on_idle`), delivery is instant, both are on one node (no
    /// partition can cut a send) and the step budget leaves room for every hop.
    pub fn relay_hops(&mut self, waker: ProcId, woken: ProcId, cap: u32) -> u32 {
        if self.outcome.is_some()
            || self.running != Some(woken)
            || self.config.delivery != DeliveryMode::Instant
            || self.choices.has_work()
            || !self.in_flight.is_empty()
        {
            return 0;
        }
        // Under `timers: :on_idle` a timer is offered only when nothing else can happen,
        // which never holds during the hops (one of the two is always ready); under
        // `:anytime` the earliest pending one is offered at every step.
        if self.config.timers == TimerMode::Anytime && self.earliest_timer().is_some() {
            return 0;
        }
        let (Some(w), Some(r)) = (
            self.procs.get(waker as usize),
            self.procs.get(woken as usize),
        ) else {
            return 0;
        };
        let waits = w.state == ProcState::Blocked
            && matches!(w.pending, Op::Receive { timeout: None, .. })
            && w.mailbox == 0
            && w.receive_timer.is_none()
            && w.sleep_timer.is_none()
            && !w.timed_out;
        let runs = r.state == ProcState::Running
            && r.untested == 1
            && r.mailbox == 1
            && r.receive_timer.is_none()
            && !r.timed_out;
        if !waits || !runs || w.node != r.node || waker == woken {
            return 0;
        }
        // Each hop is two steps; two more stay for the call that ends the relay.
        let hops = self
            .config
            .max_steps
            .saturating_sub(self.step)
            .saturating_sub(2)
            / 2;
        hops.min(u64::from(cap)) as u32
    }

    /// Replays one relayed hop: `sender` took message `taken`, sent to `receiver` and waited
    /// in a receive that blocked, which woke `receiver` with a receive attempt on that new
    /// message, numbered `taken + 1`.
    pub fn replay_relayed_hop(
        &mut self,
        sender: ProcId,
        receiver: ProcId,
        taken: MsgId,
        strategy: &mut dyn Strategy,
    ) -> Result<(), RelayDiverged> {
        let diverged = RelayDiverged { sender, taken };
        self.consumed(sender, taken).map_err(|_| diverged)?;
        let send = Op::Send {
            to: Target::Proc(receiver),
        };
        match self.sync(sender, send, strategy) {
            Ok(Next::Continue(OpResult::Sent {
                msg,
                fate: SendFate::Delivered,
            })) if msg == taken + 1 => {}
            _ => return Err(diverged),
        }
        let receive = Op::Receive {
            retry: false,
            timeout: None,
        };
        match self.sync(sender, receive, strategy) {
            Ok(Next::Wake(p, OpResult::ReceiveAttempt { last: false }))
                if p == receiver
                    && self.procs[p as usize].untested == 1
                    && self.effects.is_empty() =>
            {
                Ok(())
            }
            _ => Err(diverged),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::strategy::{Metered, Pct, RandomWalk};

    /// Drives root (0) and a child (1) to the state after the first hop: the root spawned
    /// the child and waits in a receive; the child sent `m0` to it and waits in its own;
    /// the root runs a receive attempt on `m0`.
    fn after_first_hop(strategy: &mut dyn Strategy, seed: u64, max_steps: u64) -> (Session, MsgId) {
        let config = Config {
            max_steps,
            ..Config::default()
        };
        let mut s = Session::new(config, strategy, seed);
        s.start(strategy);
        let spawn = Op::Spawn {
            link: false,
            monitor: false,
        };
        let receive = Op::Receive {
            retry: false,
            timeout: None,
        };
        let mut next = s.sync(0, spawn, strategy).unwrap();
        let mut sent = None;
        loop {
            next = match next {
                Next::Continue(OpResult::Spawned { .. }) => s.sync(0, receive, strategy).unwrap(),
                Next::Wake(1, OpResult::Started) => s
                    .sync(
                        1,
                        Op::Send {
                            to: Target::Proc(0),
                        },
                        strategy,
                    )
                    .unwrap(),
                Next::Continue(OpResult::Sent { msg, .. }) => {
                    sent = Some(msg);
                    s.sync(1, receive, strategy).unwrap()
                }
                Next::Wake(0, OpResult::ReceiveAttempt { .. }) => break,
                other => panic!("unexpected {other:?}, outcome {:?}", s.outcome()),
            };
        }
        (s, sent.expect("the child sent"))
    }

    /// The same hops through `replay_relayed_hop` and through the calls the adapter makes
    /// one by one leave the same schedule and state, under random and PCT.
    #[test]
    fn relayed_hops_replay_as_the_hops_themselves() {
        for seed in 0..50 {
            for pct in [false, true] {
                let make = || -> Metered<Box<dyn Strategy>> {
                    if pct {
                        Metered::new(Box::new(Pct::new(3)))
                    } else {
                        Metered::new(Box::new(RandomWalk::new()))
                    }
                };
                let (mut a, mut sa) = (None, make());
                let (mut b, mut sb) = (None, make());
                let (sess_a, m0) = after_first_hop(&mut sa, seed, 10_000);
                let (sess_b, m0b) = after_first_hop(&mut sb, seed, 10_000);
                assert_eq!(m0, m0b);
                a.replace(sess_a);
                b.replace(sess_b);
                let (a, b) = (a.as_mut().unwrap(), b.as_mut().unwrap());
                let hops = a.relay_hops(1, 0, 40);
                assert_eq!(hops, 40, "seed {seed}");
                for k in 0..hops {
                    let (s, r) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
                    let taken = m0 + k;
                    a.replay_relayed_hop(s, r, taken, &mut sa).unwrap();
                    b.consumed(s, taken).unwrap();
                    let next = b
                        .sync(
                            s,
                            Op::Send {
                                to: Target::Proc(r),
                            },
                            &mut sb,
                        )
                        .unwrap();
                    assert!(matches!(next, Next::Continue(OpResult::Sent { .. })));
                    let receive = Op::Receive {
                        retry: false,
                        timeout: None,
                    };
                    let next = b.sync(s, receive, &mut sb).unwrap();
                    assert_eq!(
                        next,
                        Next::Wake(r, OpResult::ReceiveAttempt { last: false })
                    );
                }
                assert_eq!(a.schedule(), b.schedule());
                assert_eq!(a.step(), b.step());
                assert_eq!(a.running(), b.running());
                assert_eq!(a.relay_hops(1, 0, 1000), b.relay_hops(1, 0, 1000));
                assert!(a.relay_hops(1, 0, 1000) > 0);
            }
        }
    }

    #[test]
    fn no_relay_when_anything_else_could_happen() {
        let mut st: Metered<Box<dyn Strategy>> = Metered::new(Box::new(RandomWalk::new()));
        let (mut s, _) = after_first_hop(&mut st, 1, 10_000);
        // the roles reversed, or a process that is not the one running
        assert_eq!(s.relay_hops(0, 1, 10), 0);
        assert_eq!(s.relay_hops(0, 0, 10), 0);
        // the step budget bounds the hops: none may reach max_steps
        let left = 10_000 - s.step();
        assert_eq!(s.relay_hops(1, 0, u32::MAX), ((left - 2) / 2) as u32);
    }

    #[test]
    fn a_hop_that_did_not_happen_is_a_divergence() {
        let mut st: Metered<Box<dyn Strategy>> = Metered::new(Box::new(RandomWalk::new()));
        let (mut s, m0) = after_first_hop(&mut st, 2, 10_000);
        // the wrong message taken
        assert!(s.replay_relayed_hop(0, 1, m0 + 5, &mut st).is_err());
    }
}
