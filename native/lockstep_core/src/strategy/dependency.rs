//! The dependency relation of BEAM operations, for exhaustive search (DPOR).
//!
//! Two steps are *dependent* when swapping them could change what either does or what the
//! run ends in; DPOR explores one interleaving per class of interleavings that order every
//! pair of dependent steps alike (a Mazurkiewicz trace). Calling two steps dependent when
//! they are not costs only redundant exploration; the opposite loses interleavings, so
//! every rule here errs on the dependent side where the engine cannot know better.
//!
//! A step's [`Footprint`] lists the objects it touched and how, built after it ran from
//! what the session recorded (its trace events: the message a receive consumed is only
//! known then), the operation it performed (a send to a name reads the name), and the
//! messages and processes it created. The table (docs/architecture.md restates it):
//!
//! | object | accesses | dependent |
//! |---|---|---|
//! | mailbox of p | `Add(m)` (a send under `:instant`, a delivery, a signal turned into a message, a drop at a dead p), `Take(m)` (a receive that consumed m), `Probe` (a receive attempt that timed out; one that matched nothing and blocks has no effect and touches nothing), `Guard` (a demonitor, an alias change: what will be dropped), `Sent` (a message towards p created, in flight or not) | Add–Add; Add(m)–Take(m) (the same message); Probe with Add, Take, Probe; Guard with Add, Sent, Guard, Probe. Take(m)–Add(m′) for a later m′ is independent: m′ lands behind m |
//! | in-flight message m | `Write` at its send and at its delivery | send and delivery of one message (causal) |
//! | process p | `Read` (`alive?`, a trapped or ignored exit signal reaching p), `Write` (start, link, unlink, monitor, exit signal, trap_exit, register, death) | unless both read |
//! | p's life | `Read` (every step p takes; a message created towards p under `:delayed`; an exit signal dropped at a dead p), `Write` (p's death; an exit signal towards p, which may kill it in this execution or another) | a death or an exit signal with everything the process does |
//! | registered names | `Read` (whereis, send to a name, monitor a name, registered), `Write` (register, unregister; in a run that registers names, every death, which frees the names its process held) | unless both read |
//! | shared table t, key k | `Read`/`Write` | same key unless both read; a whole-table access with every key of t |
//! | a timer | `Read` (read_timer), `Write` (cancel_timer) | unless both read |
//! | the virtual clock | `Read` (now, starting a timer or sleep) | a timer firing (below) |
//! | the timer queue | `Write` (starting a timer or sleep: ties fire oldest first) | every other start |
//! | everything | a timer firing, any cluster or global-registry operation, a message from outside the run, a shared-state operation that did not say what it touches, a step that disabled another (set by `exhaustive.rs`, `note_disabling`) | with every step |
//!
//! A message that reaches a dead process is dropped, which nobody can tell from a message
//! sitting in a mailbox nobody will read again: a death does not depend on arrivals (the
//! arrivals are still ordered among themselves, so a message dropped after the receive
//! took another is also tried before it). Under `delivery: :delayed` a send does depend on
//! the target's death: before it the message is in flight (a delivery step follows), after
//! it the send drops it.
//!
//! A timer fires only when the strategy is offered it (under `timers: :on_idle`, when
//! nothing else can happen), so its firing is made dependent with every step: that keeps
//! the search sound without modelling why a timer became enabled. Cluster operations
//! (node stop/start, partitions, heals) change how every later delivery goes, so they are
//! dependent with everything too: conservative, and these tests are small.
//!
//! Footprints are compared in two settings. Within one execution (race detection) message
//! ids and interned names are exact. Across executions (a sleep-set entry recorded in an
//! earlier execution against a step of this one) they are not: a registered name is then
//! any name, a message any message (a sleeping receive took a message already in its
//! mailbox, which no new send can be), and a shared object whose terms are not stable
//! (a table created anew in each iteration) any object of that kind.

use super::{Choice, View};
use crate::config::DeliveryMode;
use crate::ids::{MsgId, NameId, ProcId};
use crate::message::{MsgKind, SendFate, Target};
use crate::op::{ClusterOp, Op};
use crate::trace::{Event, EventKind};

/// An object a step touches. Processes are keyed by their interned symbolic name (stable
/// across executions), timers by owner name and ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obj {
    Mailbox(u32),
    Proc(u32),
    /// Whether the process is alive: every step of its own reads it, its death writes it
    /// (a process killed by another's step is dependent with everything it does).
    Life(u32),
    /// Message `m` of this execution, in flight (its send and its delivery).
    Msg(MsgId),
    /// A registered name (interned per iteration: exact within one execution only).
    Name(NameId),
    /// One key of a shared table; `stable` as [`crate::op::SharedAccess`].
    Key {
        table: u64,
        key: u64,
        stable: bool,
    },
    /// A whole shared table.
    Table {
        table: u64,
        stable: bool,
    },
    Timer {
        owner: u32,
        ordinal: u32,
    },
    Clock,
    /// The queue of pending timers: timers with one deadline fire oldest first, so the
    /// order in which timers are started matters.
    Timers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    /// A message reached the mailbox.
    Add(MsgId),
    /// A receive consumed this message.
    Take(MsgId),
    /// A receive looked at the mailbox and matched nothing (or gave up).
    Probe,
    /// The process changed what reaches its mailbox: a demonitor (drops the monitor's
    /// `:DOWN` still travelling), an alias activated or deactivated.
    Guard,
    /// A message or signal towards the mailbox was created (in flight or not).
    Sent,
}

/// What one step touched. `global`: dependent with every step.
///
/// Beside the items, two summaries (one per setting of `dependent`'s `cross`) let most
/// independent pairs be told apart in a few instructions: race detection compares every
/// pair of steps of an execution, and most pairs touch nothing in common.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    global: bool,
    items: Vec<(Obj, Access)>,
    exact: Summary,
    loose: Summary,
}

/// A summary of a footprint's items: if two items conflict, their footprints' summaries
/// [`Summary::meet`]. Each item sets the bit of its object class and either a bit hashed
/// from its object's identity (it can conflict only with an item of the same identity) or
/// its class's *wild* bit (it can conflict with any item of its class: `registered/0`'s
/// every name, a name or an unstable shared object compared across executions), among the
/// reads or among the other accesses: two reads of one object never conflict, which is
/// what tells most steps on one shared table apart. An item that can conflict with
/// nothing (a message compared across executions) sets nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    /// Hashed identities, and classes, of the reads (`[0]`) and the other accesses (`[1]`).
    ids: [u64; 2],
    classes: [u16; 2],
    wild: [u16; 2],
}

impl Summary {
    #[inline]
    fn meet(self, other: Summary) -> bool {
        let (a, b) = (self, other);
        // A write meets a read or a write; a read meets a write.
        a.ids[1] & (b.ids[0] | b.ids[1]) | a.ids[0] & b.ids[1] != 0
            || a.wild[1] & (b.classes[0] | b.classes[1]) | a.wild[0] & b.classes[1] != 0
            || b.wild[1] & (a.classes[0] | a.classes[1]) | b.wild[0] & a.classes[1] != 0
    }

    fn add(&mut self, class: u16, id: Option<u64>, read: bool) {
        let rw = usize::from(!read);
        self.classes[rw] |= 1 << class;
        match id {
            Some(id) => {
                let h = (id ^ (u64::from(class) << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                self.ids[rw] |= 1 << (h >> 58);
            }
            None => self.wild[rw] |= 1 << class,
        }
    }
}

/// An item's object class and identity for [`Summary`], within one execution (`cross`
/// false) or across two; `None` when the item conflicts with nothing in that setting.
/// Must agree with `conflict`: two items that conflict have one class, and equal
/// identities or one of them wild (`Some((class, None))`).
fn summary_key(obj: Obj, cross: bool) -> Option<(u16, Option<u64>)> {
    let pair = |a: u32, b: u32| (u64::from(a) << 32) | u64::from(b);
    Some(match obj {
        Obj::Mailbox(p) => (0, Some(u64::from(p))),
        Obj::Msg(_) if cross => return None,
        Obj::Msg(m) => (1, Some(u64::from(m))),
        Obj::Proc(p) => (2, Some(u64::from(p))),
        Obj::Life(p) => (3, Some(u64::from(p))),
        Obj::Name(n) if !cross && n != NameId::MAX => (4, Some(u64::from(n))),
        Obj::Name(_) => (4, None),
        // Keys and whole tables are one class, keyed by table: a key conflicts with its
        // table, and keys of one table are told apart by `conflict` itself.
        Obj::Key { stable: false, .. } | Obj::Table { stable: false, .. } if cross => (5, None),
        Obj::Key { table, .. } | Obj::Table { table, .. } => (5, Some(table)),
        Obj::Timer { owner, ordinal } => (6, Some(pair(owner, ordinal))),
        Obj::Clock => (7, Some(0)),
        Obj::Timers => (8, Some(0)),
    })
}

impl Footprint {
    pub fn add(&mut self, obj: Obj, access: Access) {
        if !self.global && !self.items.contains(&(obj, access)) {
            self.items.push((obj, access));
            for (summary, cross) in [(&mut self.exact, false), (&mut self.loose, true)] {
                if let Some((class, id)) = summary_key(obj, cross) {
                    // Mailbox accesses are never plain reads: `mailbox_conflict` decides.
                    let read = access == Access::Read && !matches!(obj, Obj::Mailbox(_));
                    summary.add(class, id, read);
                }
            }
        }
    }

    pub fn set_global(&mut self) {
        self.global = true;
        self.items.clear();
        self.exact = Summary::default();
        self.loose = Summary::default();
    }

    /// Whether the step is dependent with every step.
    pub fn is_global(&self) -> bool {
        self.global
    }

    /// What the step touched, and how (empty when it is global).
    pub fn items(&self) -> &[(Obj, Access)] {
        &self.items
    }
}

/// Whether two steps' footprints conflict. `cross`: they come from different executions
/// (see the module comment for what is then compared loosely).
///
/// Inlined, so that the summaries' verdict (most pairs compared are independent) costs no
/// call; the items are compared out of line.
#[inline]
pub fn dependent(a: &Footprint, b: &Footprint, cross: bool) -> bool {
    if a.global || b.global {
        return true;
    }
    let meet = if cross {
        a.loose.meet(b.loose)
    } else {
        a.exact.meet(b.exact)
    };
    meet && items_conflict(a, b, cross)
}

#[inline(never)]
fn items_conflict(a: &Footprint, b: &Footprint, cross: bool) -> bool {
    a.items
        .iter()
        .any(|x| b.items.iter().any(|y| conflict(*x, *y, cross)))
}

fn conflict((oa, aa): (Obj, Access), (ob, ab): (Obj, Access), cross: bool) -> bool {
    use Access::*;
    let same = match (oa, ob) {
        (Obj::Mailbox(p), Obj::Mailbox(q)) => {
            return p == q && mailbox_conflict(aa, ab, cross);
        }
        (Obj::Msg(m), Obj::Msg(n)) => !cross && m == n,
        (Obj::Proc(p), Obj::Proc(q)) | (Obj::Life(p), Obj::Life(q)) => p == q,
        // `NameId::MAX` stands for every name (`registered/0`).
        (Obj::Name(x), Obj::Name(y)) => cross || x == y || x == NameId::MAX || y == NameId::MAX,
        (
            Obj::Key {
                table: t1,
                key: k1,
                stable: s1,
            },
            Obj::Key {
                table: t2,
                key: k2,
                stable: s2,
            },
        ) => (cross && !(s1 && s2)) || (t1 == t2 && k1 == k2),
        (
            Obj::Key {
                table: t1,
                stable: s1,
                ..
            },
            Obj::Table {
                table: t2,
                stable: s2,
            },
        )
        | (
            Obj::Table {
                table: t2,
                stable: s2,
            },
            Obj::Key {
                table: t1,
                stable: s1,
                ..
            },
        )
        | (
            Obj::Table {
                table: t1,
                stable: s1,
            },
            Obj::Table {
                table: t2,
                stable: s2,
            },
        ) => (cross && !(s1 && s2)) || t1 == t2,
        (Obj::Timer { .. }, Obj::Timer { .. })
        | (Obj::Clock, Obj::Clock)
        | (Obj::Timers, Obj::Timers) => oa == ob,
        _ => false,
    };
    same && !(aa == Read && ab == Read)
}

/// One finished step, as the exhaustive strategy saw it.
pub(crate) struct Step<'a> {
    pub choice: Choice,
    /// The operation a `Run` step performed (its pending operation when picked).
    pub op: Option<Op>,
    /// The events recorded during the step.
    pub events: &'a [Event],
    /// Ids of the messages and processes the step created.
    pub new_msgs: std::ops::Range<usize>,
    pub new_procs: std::ops::Range<usize>,
    /// The process that ran changed its aliases (not a sync point of its own).
    pub aliases_changed: bool,
}

/// The footprint of a finished step (see the module comment's table); `key` interns a
/// process by its symbolic name.
pub(crate) fn footprint(
    view: &View<'_>,
    step: &Step<'_>,
    key: &mut dyn FnMut(ProcId) -> u32,
) -> Footprint {
    let mut fp = Footprint::default();
    match step.choice {
        Choice::Fire(_) => {
            fp.set_global();
            return fp;
        }
        Choice::Deliver(m) => fp.add(Obj::Msg(m), Access::Write),
        Choice::Run(p) => {
            fp.add(Obj::Life(key(p)), Access::Read);
            if step.aliases_changed {
                fp.add(Obj::Mailbox(key(p)), Access::Guard);
            }
            match step.op {
                Some(Op::Cluster(op)) => {
                    // Reads of the node list are harmless, yet a whereis on another node
                    // or a global name sees what partitions did: all global.
                    let _: ClusterOp = op;
                    fp.set_global();
                    return fp;
                }
                Some(Op::SpawnOn { .. }) => {
                    fp.set_global();
                    return fp;
                }
                Some(Op::Start) => fp.add(Obj::Proc(key(p)), Access::Write),
                Some(Op::Send {
                    to: Target::Name(n) | Target::NameAt(n, _),
                }) => fp.add(Obj::Name(n), Access::Read),
                Some(Op::Send {
                    to: Target::Global(_),
                }) => {
                    fp.set_global();
                    return fp;
                }
                // The target's mailbox: from the send's event.
                Some(Op::Send { .. }) => {}
                Some(Op::Receive { .. }) => {
                    // A timed-out attempt gave up on what the mailbox held: an arrival
                    // before it would have been taken. An attempt that matched nothing and
                    // blocks did nothing at all (the arrival that made it look is what
                    // woke it, so the two cannot be swapped, and a later arrival is taken
                    // by the next attempt either way).
                    let timed_out = step
                        .events
                        .iter()
                        .any(|e| e.proc == p && matches!(e.kind, EventKind::ReceiveTimeout));
                    if timed_out {
                        fp.add(Obj::Mailbox(key(p)), Access::Probe);
                    }
                }
                Some(Op::Link { to } | Op::Unlink { to }) => {
                    fp.add(Obj::Proc(key(p)), Access::Write);
                    fp.add(Obj::Proc(key(to)), Access::Write);
                }
                Some(Op::Monitor { target }) => fp.add(Obj::Proc(key(target)), Access::Write),
                Some(Op::MonitorName { name, .. }) => fp.add(Obj::Name(name), Access::Read),
                Some(Op::Demonitor { .. }) => fp.add(Obj::Mailbox(key(p)), Access::Guard),
                Some(Op::TrapExit { .. }) => fp.add(Obj::Proc(key(p)), Access::Write),
                Some(Op::ExitSignal { to, .. }) => fp.add(Obj::Proc(key(to)), Access::Write),
                Some(Op::Alive { of }) => fp.add(Obj::Proc(key(of)), Access::Read),
                Some(Op::Register { name, proc }) => {
                    fp.add(Obj::Name(name), Access::Write);
                    fp.add(Obj::Proc(key(proc)), Access::Write);
                }
                Some(Op::Unregister { name }) => fp.add(Obj::Name(name), Access::Write),
                Some(Op::Whereis { name }) => fp.add(Obj::Name(name), Access::Read),
                Some(Op::Registered) => fp.add(Obj::Name(NameId::MAX), Access::Read),
                Some(Op::Now | Op::SendAfter { .. }) => fp.add(Obj::Clock, Access::Read),
                Some(Op::CancelTimer { timer, .. } | Op::ReadTimer { timer, .. }) => {
                    let write = matches!(step.op, Some(Op::CancelTimer { .. }));
                    if let Some(t) = timer {
                        let timer = view.timer(t);
                        let obj = Obj::Timer {
                            owner: key(timer.owner),
                            ordinal: timer.ordinal,
                        };
                        fp.add(obj, if write { Access::Write } else { Access::Read });
                    }
                }
                Some(Op::Nif { access, object }) => match access {
                    Some(a) => {
                        let obj = match a.key {
                            Some(k) => Obj::Key {
                                table: a.table,
                                key: k,
                                stable: a.stable,
                            },
                            None => Obj::Table {
                                table: a.table,
                                stable: a.stable,
                            },
                        };
                        fp.add(obj, if a.write { Access::Write } else { Access::Read });
                    }
                    // An operation that touches nothing mutable (`new`, `info`).
                    None if object.is_none() => {}
                    // Said what it touches but not how: with everything.
                    None => {
                        fp.set_global();
                        return fp;
                    }
                },
                Some(Op::Spawn { .. } | Op::Random { .. } | Op::Yield | Op::Sleep { .. }) => {}
                None => {}
            }
        }
    }
    for m in step.new_msgs.clone() {
        let msg = view.message(m as MsgId);
        fp.add(Obj::Msg(m as MsgId), Access::Write);
        if let Some(to) = msg.to {
            // A demonitor or alias change of the target decides whether it arrives.
            fp.add(Obj::Mailbox(key(to)), Access::Sent);
            // An exit signal may kill its target: it writes the target's life, so it is
            // ordered against every step of the target, whether or not it killed in this
            // execution (what a sleep-set entry or wake-up branch recorded in one
            // execution must hold in the others, where the target may still be alive).
            if matches!(msg.kind, MsgKind::Exit { .. }) {
                fp.add(Obj::Life(key(to)), Access::Write);
            } else if view.delivery == DeliveryMode::Delayed {
                // Whether the target is alive decides whether it travels at all.
                fp.add(Obj::Life(key(to)), Access::Read);
            }
        }
    }
    for c in step.new_procs.clone() {
        fp.add(Obj::Proc(key(c as ProcId)), Access::Write);
    }
    for e in step.events {
        let q = e.proc;
        match e.kind {
            // A message dropped at its target (dead, or the alias is inactive) is an
            // arrival like any other: what a later arrival is ordered against.
            EventKind::Send {
                to: Some(r),
                msg,
                fate,
            } if matches!(fate, SendFate::Delivered | SendFate::Dropped) => {
                fp.add(Obj::Mailbox(key(r)), Access::Add(msg));
                // Under `:delayed` the target's death decides between in flight and dropped.
                if fate == SendFate::Dropped && view.delivery == DeliveryMode::Delayed {
                    fp.add(Obj::Life(key(r)), Access::Read);
                }
            }
            EventKind::Send {
                to: Some(r),
                fate: SendFate::InFlight,
                ..
            } => fp.add(Obj::Life(key(r)), Access::Read),
            EventKind::Send {
                fate: SendFate::Cut | SendFate::Deferred,
                ..
            } => fp.set_global(),
            // An exit signal reaching a dead process does nothing; before the death it may
            // have killed it: a drop reads the target's life.
            EventKind::Drop { msg, .. } => {
                fp.add(Obj::Mailbox(key(q)), Access::Add(msg));
                if matches!(view.message(msg).kind, MsgKind::Exit { .. }) {
                    fp.add(Obj::Life(key(q)), Access::Read);
                }
            }
            EventKind::Deliver { msg, .. }
            | EventKind::Down { msg, .. }
            | EventKind::NodeDownMsg { msg, .. } => fp.add(Obj::Mailbox(key(q)), Access::Add(msg)),
            EventKind::ExitTrapped { msg, .. } => {
                fp.add(Obj::Mailbox(key(q)), Access::Add(msg));
                fp.add(Obj::Proc(key(q)), Access::Read);
            }
            EventKind::ExitIgnored { .. } => fp.add(Obj::Proc(key(q)), Access::Read),
            // A message to a dead process is dropped, which no one can tell from it
            // sitting in a mailbox no one will read: arrivals do not depend on the death.
            EventKind::Exit { .. } => {
                fp.add(Obj::Proc(key(q)), Access::Write);
                fp.add(Obj::Life(key(q)), Access::Write);
                // A death frees the names the process held (which, the session does not
                // say here): in a run that registers names, a death is ordered against
                // every name operation.
                if view
                    .events()
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::Register { .. }))
                {
                    fp.add(Obj::Name(NameId::MAX), Access::Write);
                }
            }
            EventKind::Receive { msg, .. } => fp.add(Obj::Mailbox(key(q)), Access::Take(msg)),
            EventKind::Link { to } | EventKind::Unlink { to } => {
                fp.add(Obj::Proc(key(q)), Access::Write);
                fp.add(Obj::Proc(key(to)), Access::Write);
            }
            EventKind::Monitor { target, .. } => fp.add(Obj::Proc(key(target)), Access::Write),
            EventKind::Register { name, target, .. } => {
                fp.add(Obj::Name(name), Access::Write);
                fp.add(Obj::Proc(key(target)), Access::Write);
            }
            EventKind::Unregister { name, .. } => fp.add(Obj::Name(name), Access::Write),
            EventKind::Whereis { name, .. }
            | EventKind::SendToUnregistered {
                name,
                global: false,
            }
            | EventKind::SendToNobody { name, .. } => fp.add(Obj::Name(name), Access::Read),
            EventKind::Now { .. } => fp.add(Obj::Clock, Access::Read),
            EventKind::Sleep { .. } | EventKind::TimerStarted { .. } => {
                fp.add(Obj::Clock, Access::Read);
                fp.add(Obj::Timers, Access::Write);
            }
            EventKind::ReceiveExternal
            | EventKind::SendToUnregistered { global: true, .. }
            | EventKind::Cut { .. }
            | EventKind::NodeStarted { .. }
            | EventKind::NodeStopped { .. }
            | EventKind::Partitioned { .. }
            | EventKind::Healed { .. }
            | EventKind::Tick { .. }
            | EventKind::MonitorNode { .. }
            | EventKind::SetTicktime { .. }
            | EventKind::GlobalRegister { .. }
            | EventKind::GlobalUnregister { .. }
            | EventKind::GlobalWhereis { .. }
            | EventKind::GlobalLockWait { .. }
            | EventKind::GlobalConflict { .. }
            | EventKind::TimerFired { .. } => fp.set_global(),
            _ => {}
        }
        if fp.global {
            break;
        }
    }
    fp
}

/// Whether two accesses to one mailbox conflict.
fn mailbox_conflict(a: Access, b: Access, cross: bool) -> bool {
    use Access::*;
    match (a, b) {
        // A receive of one message and the arrival of another (behind it) commute.
        (Add(m), Take(n)) | (Take(n), Add(m)) => !cross && m == n,
        // Creating a message matters only to what decides whether it will be dropped.
        (Sent, x) | (x, Sent) => x == Guard,
        (Guard, x) | (x, Guard) => matches!(x, Add(_) | Guard | Probe),
        (Add(_), Add(_)) | (Probe, _) | (_, Probe) | (Take(_), Take(_)) => true,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(items: &[(Obj, Access)]) -> Footprint {
        let mut fp = Footprint::default();
        for &(obj, access) in items {
            fp.add(obj, access);
        }
        fp
    }

    #[test]
    fn mailbox_rules() {
        let add = |m| fp(&[(Obj::Mailbox(1), Access::Add(m))]);
        let take = |m| fp(&[(Obj::Mailbox(1), Access::Take(m))]);
        let probe = fp(&[(Obj::Mailbox(1), Access::Probe)]);
        assert!(dependent(&add(1), &add(2), false));
        assert!(dependent(&add(1), &take(1), false));
        assert!(!dependent(&add(2), &take(1), false));
        assert!(!dependent(&add(1), &take(1), true));
        assert!(dependent(&probe, &add(5), true));
        assert!(!dependent(
            &add(1),
            &fp(&[(Obj::Mailbox(2), Access::Add(1))]),
            false
        ));
    }

    #[test]
    fn shared_state_rules() {
        let key = |k, write| {
            fp(&[(
                Obj::Key {
                    table: 7,
                    key: k,
                    stable: true,
                },
                if write { Access::Write } else { Access::Read },
            )])
        };
        let table = |write| {
            fp(&[(
                Obj::Table {
                    table: 7,
                    stable: true,
                },
                if write { Access::Write } else { Access::Read },
            )])
        };
        assert!(!dependent(&key(1, false), &key(1, false), false));
        assert!(dependent(&key(1, true), &key(1, false), false));
        assert!(!dependent(&key(1, true), &key(2, true), false));
        assert!(dependent(&table(true), &key(2, false), false));
        assert!(!dependent(&table(false), &key(2, false), false));
        let unstable = fp(&[(
            Obj::Key {
                table: 9,
                key: 3,
                stable: false,
            },
            Access::Write,
        )]);
        assert!(!dependent(&unstable, &key(1, true), false));
        assert!(dependent(&unstable, &key(1, true), true));
    }

    /// The summaries reject only pairs the items say are independent: every pair of items
    /// that conflict, in either setting, has footprints whose summaries meet.
    #[test]
    fn summaries_never_hide_a_conflict() {
        let mut objs = vec![Obj::Clock, Obj::Timers];
        for i in 0..3u32 {
            objs.extend([
                Obj::Mailbox(i),
                Obj::Msg(i),
                Obj::Proc(i),
                Obj::Life(i),
                Obj::Name(i),
            ]);
            for j in 0..3u32 {
                objs.push(Obj::Timer {
                    owner: i,
                    ordinal: j,
                });
                for stable in [false, true] {
                    objs.push(Obj::Key {
                        table: u64::from(i),
                        key: u64::from(j),
                        stable,
                    });
                }
            }
            for stable in [false, true] {
                objs.push(Obj::Table {
                    table: u64::from(i),
                    stable,
                });
            }
        }
        objs.push(Obj::Name(NameId::MAX));
        let mut accesses = vec![Access::Read, Access::Write, Access::Probe, Access::Guard];
        accesses.push(Access::Sent);
        for m in 0..3 {
            accesses.extend([Access::Add(m), Access::Take(m)]);
        }
        let items: Vec<(Obj, Access)> = objs
            .iter()
            .flat_map(|&o| accesses.iter().map(move |&a| (o, a)))
            .collect();
        let (mut conflicts, mut independent, mut rejected) = (0, 0, 0);
        for &x in &items {
            for &y in &items {
                for cross in [false, true] {
                    if conflict(x, y, cross) {
                        conflicts += 1;
                        let (a, b) = (fp(&[x]), fp(&[y]));
                        let meet = if cross {
                            a.loose.meet(b.loose)
                        } else {
                            a.exact.meet(b.exact)
                        };
                        assert!(meet, "{x:?} and {y:?} (cross: {cross}) conflict");
                        assert!(dependent(&a, &b, cross));
                    } else if !cross {
                        independent += 1;
                        rejected += usize::from(!fp(&[x]).exact.meet(fp(&[y]).exact));
                    }
                }
            }
        }
        assert!(conflicts > 1000, "{conflicts}");
        // And they do their job: most independent pairs are rejected by them alone.
        assert!(
            rejected * 10 > independent * 8,
            "{rejected} of {independent}"
        );
    }

    #[test]
    fn global_steps_depend_on_everything() {
        let mut g = Footprint::default();
        g.set_global();
        assert!(dependent(&g, &Footprint::default(), false));
        assert!(!dependent(
            &Footprint::default(),
            &Footprint::default(),
            false
        ));
    }
}
