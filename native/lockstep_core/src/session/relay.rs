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

use super::{Next, Outcome, RawDecision, Session};
use crate::config::DeliveryMode;
use crate::ids::{MsgId, ProcId};
use crate::message::{Message, MsgKind, MsgState, SendFate, Target};
use crate::op::{Op, OpResult};
use crate::process::ProcState;
use crate::strategy::{Choice, Strategy};
use crate::timer::TimerMode;
use crate::trace::EventKind;

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

    /// Replays `hops` relayed hops in order: the first made by `first`, which had taken
    /// message `taken`, to `second`, the next back, and so on, hop `k` taking message
    /// `taken + k`. The same as that many [`Session::replay_relayed_hop`] calls with the
    /// events dropped after each (as an adapter that keeps no events does), and checked the
    /// same way: the first hop that does not replay as relayed is an error.
    ///
    /// A hop is made directly on the tables when everything its three calls would check
    /// holds (`forced_hop_holds`), which is always, unless the adapter is wrong: then
    /// `consumed` and the two `sync`s would take exactly one path, which is written out
    /// here without their dispatch. The strategy is asked at both steps, with the same
    /// view and choices, so it sees the same calls in the same order and draws the same
    /// numbers; the same events are recorded, and the state each hop leaves is the one
    /// the calls leave (the module's tests compare them under every randomised strategy).
    /// A hop whose conditions do not hold takes the calls themselves, which say how it
    /// differs.
    pub fn replay_relayed_hops(
        &mut self,
        first: ProcId,
        second: ProcId,
        taken: MsgId,
        hops: u32,
        strategy: &mut dyn Strategy,
    ) -> Result<(), RelayDiverged> {
        for k in 0..hops {
            let (sender, receiver) = if k % 2 == 0 {
                (first, second)
            } else {
                (second, first)
            };
            if k > 0 {
                self.events.clear();
            }
            let m = taken.wrapping_add(k);
            if self.forced_hop_holds(sender, receiver, m) {
                self.forced_hop(sender, receiver, m, strategy)?;
            } else {
                self.replay_relayed_hop(sender, receiver, m, strategy)?;
            }
        }
        Ok(())
    }

    /// Whether `consumed(s, m)`, `sync(s, Send { to: r })` and `sync(s, Receive)` would
    /// each take the one path of a forced hop ([`Session::forced_hop`]): `s` runs with `m`,
    /// from `r`, the only message in its mailbox and no timer of its own; `r` waits in a
    /// receive without timeout with nothing in its mailbox, on `s`'s node; nothing else
    /// can be offered at either step (no other process ready, nothing in flight, no timer
    /// offered) and the step budget has both steps.
    fn forced_hop_holds(&mut self, s: ProcId, r: ProcId, m: MsgId) -> bool {
        if self.outcome.is_some()
            || self.running != Some(s)
            || s == r
            || self.config.delivery != DeliveryMode::Instant
            || !self.choices.is_empty()
            || self.step.saturating_add(2) > self.config.max_steps
            || self.msgs.len() != (m as usize).wrapping_add(1)
            || (r as usize) >= self.procs.len()
        {
            return false;
        }
        if self.config.timers == TimerMode::Anytime
            && !self.root_exited
            && self.earliest_timer().is_some()
        {
            return false;
        }
        let msg = &self.msgs[m as usize];
        let (ps, pr) = (&self.procs[s as usize], &self.procs[r as usize]);
        msg.to == Some(s)
            && msg.from == r
            && msg.state == MsgState::InMailbox
            && msg.kind == MsgKind::User
            && ps.state == ProcState::Running
            && ps.mailbox == 1
            && ps.receive_timer.is_none()
            && !ps.last_attempt
            && ps.node == pr.node
            && pr.state == ProcState::Blocked
            && matches!(pr.pending, Op::Receive { timeout: None, .. })
            && pr.mailbox == 0
            && pr.untested == 0
            && !pr.timed_out
            && !pr.outside_turn
            && self.effects.is_empty()
    }

    /// One forced hop (see [`Session::replay_relayed_hops`]), each statement the one the
    /// calls' path makes, in their order.
    fn forced_hop(
        &mut self,
        s: ProcId,
        r: ProcId,
        m: MsgId,
        strategy: &mut dyn Strategy,
    ) -> Result<(), RelayDiverged> {
        let diverged = RelayDiverged {
            sender: s,
            taken: m,
        };
        // consumed(s, m)
        self.msgs[m as usize].state = MsgState::Consumed;
        let proc = &mut self.procs[s as usize];
        proc.mailbox -= 1;
        proc.timed_out = false;
        proc.last_attempt = false;
        self.record(s, EventKind::Receive { msg: m, from: r });
        // sync(s, Send { to: r }): announced, picked, applied; `s` runs on
        let to = Target::Proc(r);
        self.running = None;
        self.procs[s as usize].pending = Op::Send { to };
        self.set_state(s, ProcState::Ready);
        self.forced_pick(s, diverged, strategy)?;
        let sent = m + 1;
        self.msgs.push(Message {
            from: s,
            to: Some(r),
            state: MsgState::InMailbox,
            kind: MsgKind::User,
            alias: None,
            timer: None,
        });
        self.add_to_mailbox(r);
        self.record(
            s,
            EventKind::Send {
                to: Some(r),
                msg: sent,
                fate: SendFate::Delivered,
            },
        );
        self.set_state(s, ProcState::Running);
        self.running = Some(s);
        // sync(s, Receive): `s` blocks at once; `r` is picked for its attempt
        self.running = None;
        let blocked = self.start_receive(s, false, None);
        debug_assert!(
            blocked,
            "an empty mailbox blocks a first attempt without timeout"
        );
        self.procs[s as usize].pending = Op::Receive {
            retry: false,
            timeout: None,
        };
        self.set_state(s, ProcState::Blocked);
        self.record(s, EventKind::Block);
        self.forced_pick(r, diverged, strategy)?;
        let attempt = self.receive_attempt(r);
        debug_assert_eq!(attempt, OpResult::ReceiveAttempt { last: false });
        self.set_state(r, ProcState::Running);
        self.running = Some(r);
        debug_assert_eq!(self.procs[r as usize].untested, 1);
        Ok(())
    }

    /// `decide` at a step that offers `Run(p)` alone: the strategy is asked as `decide`
    /// asks it, and what it answers is taken as `decide` takes it (in a release build a
    /// choice that is not offered becomes the first one offered: `p`). `decide`'s
    /// `offer_timer` changes nothing here: `p` is ready (no process is picked to wait for
    /// the outside, no timer offered as idle), and under `timers: :anytime` no timer is
    /// pending (`forced_hop_holds`, and a hop starts none), so no timer is offered.
    fn forced_pick(
        &mut self,
        p: ProcId,
        diverged: RelayDiverged,
        strategy: &mut dyn Strategy,
    ) -> Result<(), RelayDiverged> {
        debug_assert!(self.choices.len() == 1 && self.choices.has_run(p));
        debug_assert!(self.step < self.config.max_steps);
        self.step += 1;
        let picked = strategy.pick(&self.view(), &self.choices);
        self.choices.picked();
        match picked {
            Ok(c) => {
                debug_assert_eq!(
                    c,
                    Choice::Run(p),
                    "strategy picked {c:?}, which is not offered"
                );
                self.decisions.push(RawDecision::Run(p));
                Ok(())
            }
            Err(d) => {
                self.outcome = Some(Outcome::Diverged(d));
                Err(diverged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ids::ProcName;
    use crate::schedule::Decision;
    use crate::strategy::{
        ChoiceSet, Divergence, FairPct, IdPct, Metered, Pct, Pos, RandomWalk, Replay, View,
    };

    /// Drives root (0) and a child (1) to the state after the first hop: the root spawned
    /// the child and waits in a receive; the child sent `m0` to it and waits in its own;
    /// the root runs a receive attempt on `m0`.
    fn after_first_hop(strategy: &mut dyn Strategy, seed: u64, max_steps: u64) -> (Session, MsgId) {
        let config = Config {
            max_steps,
            ..Config::default()
        };
        after_first_hop_in(strategy, seed, config)
    }

    fn after_first_hop_in(
        strategy: &mut dyn Strategy,
        seed: u64,
        config: Config,
    ) -> (Session, MsgId) {
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

    /// Every table a hop reads or writes, and the metrics, printed: two sessions with the
    /// same snapshot are in the same state as far as a hop can tell.
    fn snapshot(s: &Session) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?} {:?}\n{:?} {:?} {:?} {:?} {:?}\n{:?}\n{:?}\n{:?}",
            s.procs,
            s.msgs,
            s.choices,
            s.decisions,
            s.randoms,
            s.step,
            s.running,
            s.outcome,
            s.now,
            s.root_exited,
            s.events,
            s.effects,
            s.timers,
        )
    }

    /// A strategy that notes what it is shown at every pick (the step, the events, the
    /// choices, the processes and the newest message) and every draw it makes, so that two
    /// runs can be checked to have shown their strategies the same things.
    struct Watching {
        inner: Box<dyn Strategy>,
        seen: Vec<String>,
    }

    impl Strategy for Watching {
        fn name(&self) -> &'static str {
            self.inner.name()
        }

        fn begin_iteration(&mut self, seed: u64) {
            self.inner.begin_iteration(seed)
        }

        fn pick(&mut self, view: &View<'_>, choices: &ChoiceSet) -> Result<Choice, Divergence> {
            let picked = self.inner.pick(view, choices);
            self.seen.push(format!(
                "{} {:?} {:?} {:?} {} {:?} -> {picked:?}",
                view.step,
                view.events,
                choices,
                view.procs,
                view.msgs.len(),
                view.msgs.last(),
            ));
            picked
        }

        fn random(&mut self, view: &View<'_>, n: u64) -> Result<u64, Divergence> {
            let value = self.inner.random(view, n);
            self.seen.push(format!("random {n} -> {value:?}"));
            value
        }

        fn end_iteration(&mut self, view: &View<'_>, completed: bool) -> Result<(), Divergence> {
            self.inner.end_iteration(view, completed)
        }
    }

    type Make = fn() -> Box<dyn Strategy>;

    /// Every randomised strategy, as `Lockstep.run` makes them.
    fn randomised() -> Vec<(&'static str, Make)> {
        vec![
            ("random", || Box::new(RandomWalk::new())),
            ("pct", || Box::new(Pct::new(3))),
            ("fair_pct", || Box::new(FairPct::new(3, 40))),
            ("pos", || Box::new(Pos::new())),
            ("idpct", || Box::new(IdPct::new(1, 4))),
        ]
    }

    /// After the hops, a contested stretch: the running process spawns two yielding
    /// children, and the three yield for a while. Its schedule depends on the strategy's
    /// state (random streams, PCT's priorities and change points), so two strategies that
    /// saw different calls during the hops part ways here.
    fn contested_tail(s: &mut Session, strategy: &mut dyn Strategy) -> Vec<Decision> {
        let spawn = Op::Spawn {
            link: false,
            monitor: false,
        };
        let Some(mut p) = s.running() else {
            return s.schedule();
        };
        let mut next = s.sync(p, spawn, strategy).unwrap();
        for i in 0..60 {
            p = match next {
                Next::Continue(_) => s.running().unwrap(),
                Next::Wake(q, _) => q,
                Next::Ended => break,
            };
            let op = if i == 0 { spawn } else { Op::Yield };
            next = s.sync(p, op, strategy).unwrap();
        }
        let mut randoms = Vec::new();
        if s.outcome().is_none() {
            let view = s.view();
            for _ in 0..4 {
                randoms.push(strategy.random(&view, u64::MAX).unwrap());
            }
        }
        let mut schedule = s.schedule();
        schedule.extend(randoms.into_iter().map(Decision::Random));
        schedule
    }

    /// `replay_relayed_hops` leaves the session and the strategy exactly as the same hops
    /// one by one do (each followed by dropping the events, as the adapter's catch-up did),
    /// under every randomised strategy and a replay of one's schedule, with leases that fit
    /// the step budget and one that runs into it, and in an iteration after another
    /// (PCT's and IDPCT's state carried across iterations).
    #[test]
    fn batched_replay_is_the_one_by_one_replay() {
        for (name, make) in randomised() {
            for seed in 0..12 {
                let anytime = TimerMode::Anytime;
                for (max_steps, hops, timers) in [
                    (10_000, 256, TimerMode::OnIdle),
                    (10_000, 37, TimerMode::OnIdle),
                    (301, 256, TimerMode::OnIdle),
                    (10_000, 100, anytime),
                ] {
                    let config = Config {
                        max_steps,
                        timers,
                        ..Config::default()
                    };
                    let watch = || Watching {
                        inner: make(),
                        seen: Vec::new(),
                    };
                    let mut sa = Metered::new(watch());
                    let mut sb = Metered::new(watch());
                    for iteration in 0..2 {
                        let seed = seed * 2 + iteration;
                        let (mut a, m0) = after_first_hop_in(&mut sa, seed, config);
                        let (mut b, _) = after_first_hop_in(&mut sb, seed, config);
                        let ra = a.replay_relayed_hops(0, 1, m0, hops, &mut sa);
                        a.forget_events();
                        let mut rb = Ok(());
                        for k in 0..hops {
                            let (from, to) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
                            rb = b.replay_relayed_hop(from, to, m0 + k, &mut sb);
                            b.forget_events();
                            if rb.is_err() {
                                break;
                            }
                        }
                        let case =
                            format!("{name}, seed {seed}, max_steps {max_steps}, {timers:?}");
                        assert_eq!(ra, rb, "{case}");
                        assert_eq!(ra.is_err(), (max_steps as u32) < 2 * hops, "{case}");
                        assert_eq!(snapshot(&a), snapshot(&b), "{case}");
                        assert_eq!(sa.metrics(), sb.metrics(), "{case}");
                        let (ta, tb) = (
                            contested_tail(&mut a, &mut sa),
                            contested_tail(&mut b, &mut sb),
                        );
                        assert_eq!(ta, tb, "{case}");
                        assert_eq!(snapshot(&a), snapshot(&b), "{case}");
                        a.finish(&mut sa);
                        b.finish(&mut sb);
                        assert_eq!(sa.metrics(), sb.metrics(), "{case}");
                        let (wa, wb) = (&sa.inner().seen, &sb.inner().seen);
                        assert!(wa.len() > 2 * hops.min(100) as usize, "{case}");
                        for (i, (x, y)) in wa.iter().zip(wb).enumerate() {
                            assert_eq!(x, y, "{case}: what the strategy saw at its call {i}");
                        }
                        assert_eq!(wa.len(), wb.len(), "{case}");
                    }
                }
            }
        }
    }

    /// A replayed schedule is followed by the batched replay as by the hops one by one,
    /// and one the hops do not follow diverges the same way.
    #[test]
    fn batched_replay_follows_a_replayed_schedule() {
        let mut recorder = Metered::new(Box::new(Pct::new(3)) as Box<dyn Strategy>);
        let (mut s, m0) = after_first_hop(&mut recorder, 7, 10_000);
        s.replay_relayed_hops(0, 1, m0, 100, &mut recorder).unwrap();
        let recorded = contested_tail(&mut s, &mut recorder);
        let schedule: Vec<Decision> = recorded
            .into_iter()
            .filter(|d| !matches!(d, Decision::Random(_)))
            .collect();
        let mut cut = schedule.clone();
        // a schedule that wants the other process at a forced step of the hops
        let at = cut.len() - 80;
        cut[at] = match &cut[at] {
            Decision::Run(n) if *n == ProcName::root() => cut[at + 1].clone(),
            _ => Decision::Run(ProcName::root()),
        };
        for schedule in [schedule, cut] {
            let mut sa = Metered::new(Box::new(Replay::new(schedule.clone())) as Box<dyn Strategy>);
            let mut sb = Metered::new(Box::new(Replay::new(schedule)) as Box<dyn Strategy>);
            let (mut a, _) = after_first_hop(&mut sa, 7, 10_000);
            let (mut b, _) = after_first_hop(&mut sb, 7, 10_000);
            let ra = a.replay_relayed_hops(0, 1, m0, 100, &mut sa);
            a.forget_events();
            let mut rb = Ok(());
            for k in 0..100 {
                let (from, to) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
                rb = b.replay_relayed_hop(from, to, m0 + k, &mut sb);
                b.forget_events();
                if rb.is_err() {
                    break;
                }
            }
            assert_eq!(ra, rb);
            assert_eq!(snapshot(&a), snapshot(&b));
        }
    }

    /// A hop that was not made (a wrong message, roles swapped) is an error from the
    /// batched replay as from the one-by-one one, and the hops before it are replayed.
    #[test]
    fn batched_replay_reports_the_hop_that_did_not_happen() {
        for (from, taken_offset) in [(0, 5), (1, 0)] {
            let mut sa: Metered<Box<dyn Strategy>> = Metered::new(Box::new(RandomWalk::new()));
            let mut sb: Metered<Box<dyn Strategy>> = Metered::new(Box::new(RandomWalk::new()));
            let (mut a, m0) = after_first_hop(&mut sa, 3, 10_000);
            let (mut b, _) = after_first_hop(&mut sb, 3, 10_000);
            let other = 1 - from;
            let ra = a.replay_relayed_hops(from, other, m0 + taken_offset, 10, &mut sa);
            let rb = b.replay_relayed_hop(from, other, m0 + taken_offset, &mut sb);
            assert!(ra.is_err());
            assert_eq!(ra, rb);
            assert_eq!(snapshot(&a), snapshot(&b));
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
