//! Exit signals and links.

use super::Session;
use crate::ids::{MsgId, ProcId};
use crate::message::{Message, MsgKind, MsgState};
use crate::trace::SendFate;

impl Session {
    /// Sends a signal (exit or `:DOWN`) from `from` to `to`: at once under instant
    /// delivery or to oneself, else in flight. Returns its id and fate.
    pub(super) fn signal(&mut self, from: ProcId, to: ProcId, kind: MsgKind) -> (MsgId, SendFate) {
        self.signal_via(from, to, kind, false)
    }

    /// `local`: generated on the receiver's node (a lost connection, a node going down),
    /// so no partition or network is crossed.
    pub(super) fn signal_via(
        &mut self,
        from: ProcId,
        to: ProcId,
        kind: MsgKind,
        local: bool,
    ) -> (MsgId, SendFate) {
        let m = self.msgs.len() as MsgId;
        self.msgs.push(Message {
            from,
            to: Some(to),
            state: MsgState::InFlight,
            kind,
            alias: None,
            timer: None,
        });
        if !self.alive(to) {
            self.msgs[m as usize].state = MsgState::Dropped;
            return (m, SendFate::Dropped);
        }
        if local || from == to {
            self.arrive(m);
            return (m, SendFate::Delivered);
        }
        match self.route(m, from, to) {
            SendFate::Delivered => {
                self.arrive(m);
                (m, SendFate::Delivered)
            }
            fate => (m, fate),
        }
    }

    /// Message `m` was lost in a `:drop` cut. If it is a link's exit signal, the receiver
    /// never learns of it, so its half of the link stays: OTP removes a link on the
    /// receiving side only when the exit signal arrives, and when the connection is then
    /// declared lost (the partition's tick) the link fires with `:noconnection`, as a
    /// monitor whose `:DOWN` was cut does.
    pub(super) fn lost_in_cut(&mut self, m: MsgId) {
        let msg = self.msgs[m as usize];
        let (MsgKind::Exit { link: true, .. }, Some(to)) = (msg.kind, msg.to) else {
            return;
        };
        if to != msg.from && self.alive(to) && !self.procs[to as usize].links.contains(&msg.from) {
            self.procs[to as usize].links.push(msg.from);
        }
    }

    /// `to` unlinked `from`: OTP guarantees the link has no effect on `to` once unlink/1
    /// returns, so exit signals of that link still travelling are dropped.
    pub(super) fn drop_link_exits(&mut self, from: ProcId, to: ProcId) {
        let msgs = &mut self.msgs;
        let mut keep = |m: &MsgId| {
            let msg = &mut msgs[*m as usize];
            let stale = msg.from == from
                && msg.to == Some(to)
                && matches!(msg.kind, MsgKind::Exit { link: true, .. });
            if stale {
                msg.state = MsgState::Dropped;
            }
            !stale
        };
        self.in_flight.retain(&mut keep);
        self.cluster.deferred.retain(&mut keep);
    }
}
