//! One iteration's adapter state, kept behind the session resource's lock: the engine's
//! `Session` and the strategy it borrows, plus what the engine cannot hold — BEAM pids,
//! atoms and terms — each filed under the engine's ids, in a few tables by role:
//!
//! - [`Owner`]: the process that runs the iteration and what it is owed (its `done`
//!   message, the progress counter it polls, the clean-up it must do);
//! - [`ProcTable`]: engine process id ↔ BEAM pid;
//! - [`AtomTables`]: registered names and node names ↔ engine ids;
//! - [`Terms`]: the `OwnedEnv` arena and every term saved in it by engine id (payloads in
//!   flight, exit reasons, monitor and timer refs, global names, ETS tables);
//! - [`Capture`]: payloads and reasons kept for the report when the iteration captures.
//!
//! The engine never sees a term: a term given with an operation is *announced* (kept by the
//! caller's id) and filed under the id of what the operation created once the engine has
//! applied it ([`SessionState::file_announced`]).

use crate::convert::atoms;
use crate::handoff::PidHash;
use crate::relay::Relay;
use crate::resource::{RunStrategy, StrategyCell};
use lockstep_core::{
    Effect, Event, EventKind, MonitorId, MsgId, NameId, NodeId, ProcId, ProcState, Reason, Session,
    TimerId, TimerKind,
};
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Atom, Encoder, Env, LocalPid, ResourceArc, Term};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub struct SessionState {
    pub session: Session,
    /// Borrowed from `cell` for the iteration's lifetime; `None` once `session_finish` has
    /// given it back.
    pub strategy: Option<RunStrategy>,
    pub cell: ResourceArc<StrategyCell>,
    pub owner: Owner,
    pub procs: ProcTable,
    pub atoms: AtomTables,
    pub terms: Terms,
    pub capture: Capture,
    /// The lease of relayed hops out, if any (see `relay`).
    pub relay: Relay,
}

/// The iteration's owner (the test process, a worker or the controller's owner) and what
/// the adapter keeps for it.
pub struct Owner {
    pub pid: LocalPid,
    /// The owner's reference for this iteration: its `{ref, :done, reason}` is found without
    /// scanning the owner's mailbox (a receive on a reference made just before skips the
    /// messages that were there already), however many unrelated messages wait in it.
    pub done_ref: Option<SavedTerm>,
    /// The owner has been told the iteration is over (or is tearing it down itself).
    pub done_sent: bool,
    /// Something stored iteration-scoped state outside the session (persistent_term keys)
    /// that the owner must erase when the iteration ends.
    pub needs_cleanup: bool,
    /// A `Lockstep.History` was made in this iteration (see `process::mark_history`).
    pub histories: bool,
    /// Counts engine calls so the owner can tell a process that stopped reaching sync
    /// points (`:stuck`).
    pub progress: u64,
    /// Released processes (see `owner::teardown_view`) whose BEAM process is not gone yet.
    pub releasing: usize,
    /// How many uncontrolled reports there were when they were released.
    pub noted_before_release: usize,
    /// The reference the owner made for `{ref, :released, noted?}` just before it released
    /// them: a receive on it skips the owner's older messages (the done reference's own
    /// marker is spent by then).
    pub release_ref: Option<SavedTerm>,
    /// Why the session was poisoned on purpose (a relayed hop that did not replay), for
    /// the owner's internal error.
    pub fault: Option<&'static str>,
}

/// BEAM pid of each managed process, by engine id, and back.
pub struct ProcTable {
    /// `None` until registered (`session_start` for the root, `register_child` for others).
    pids: Vec<Option<LocalPid>>,
    /// Looked up at every send: see `PidHash`.
    by_pid: HashMap<LocalPid, ProcId, PidHash>,
    /// By engine id: the BEAM process is known to be gone (the resource monitor fired, or
    /// could not be set): the owner's teardown need not kill it and wait for it.
    gone: Vec<bool>,
    /// By engine id: told to end itself at the end of a passing iteration (`teardown_view`); the
    /// owner is told when the last of them is gone.
    released: Vec<bool>,
}

/// Atoms the engine knows by number.
pub struct AtomTables {
    /// Registered names by engine name id.
    names: Vec<Atom>,
    name_ids: HashMap<Atom, NameId>,
    /// Node names by engine node id; 0 is `:nonode@nohost`.
    nodes: Vec<Atom>,
}

/// The session's term arena and the terms saved in it, by engine id.
pub struct Terms {
    /// Allocated only when a first term is saved.
    arena: Option<OwnedEnv>,
    /// Payloads of in-flight user messages (`delivery: :delayed`).
    pub held: HashMap<MsgId, SavedTerm>,
    /// Terms given with an operation, kept until the engine applies it and numbers what it
    /// created (a monitor ref, a timer's payload and ref, a payload to capture).
    pub announced: HashMap<ProcId, SavedTerm>,
    /// Events already looked at for announced terms.
    pub events_scanned: usize,
    /// Reason terms of processes that exited abnormally (`Reason::ExitOf`).
    pub exit_reasons: HashMap<ProcId, SavedTerm>,
    /// Reason terms given to `exit/2` (`Reason::Given` and `Reason::Shutdown`).
    pub given_reasons: Vec<SavedTerm>,
    pub monitor_refs: HashMap<MonitorId, SavedTerm>,
    /// `monitor_refs` by the hash of the reference (`Term::hash_internal`), so that a
    /// demonitor finds its monitor without loading every reference of the iteration (a
    /// GenServer.call makes one each); monitors filed since the last look-up wait in
    /// `monitors_unindexed` (they are filed where no env is at hand).
    monitor_index: HashMap<u64, Vec<MonitorId>>,
    monitors_unindexed: Vec<MonitorId>,
    /// Reference aliases (alias/0,1, monitor/3's `alias` option): the ref, its owner and
    /// the alias number the engine knows it by, by the hash of the ref. A send to a ref
    /// looks it up here (every reply of a GenServer.call is one).
    alias_refs: HashMap<u64, Vec<(SavedTerm, ProcId, u32)>>,
    /// `{ref, payload, dest}` of each `send_after` timer.
    pub timer_data: HashMap<TimerId, SavedTerm>,
    /// `timer_data` by the hash of the timer's reference, for `cancel_timer` and
    /// `read_timer` (a `:gen_statem` cancels a timer at every state change); timers filed
    /// since the last look-up wait in `timers_unindexed`.
    timer_index: HashMap<u64, Vec<TimerId>>,
    timers_unindexed: Vec<TimerId>,
    /// Global registry names (any term), by engine name id.
    globals: Vec<SavedTerm>,
    /// Real ETS tables of named simulated tables, by the engine's slot.
    pub ets_tables: Vec<SavedTerm>,
    /// Reports (`{:error, exception, stacktrace}`) of unmanaged processes linked to a
    /// managed one that died of a Lockstep call made outside the run: the real link kills
    /// the managed process, and the owner reports this as why.
    pub outside_crashes: HashMap<ProcId, SavedTerm>,
    /// What managed processes found that escaped the run's control (SPEC §9 "No silent
    /// pass"), in the order they noted it: `(process, description)`.
    pub uncontrolled: Vec<(ProcId, SavedTerm)>,
    /// Wake-up references of processes that park on one (see `wake::MARK_THRESHOLD`):
    /// `None` from the call that answered `:wait_marked` until the process hands its
    /// reference over (`mark_park`), then the reference. Removed when the process is woken
    /// or killed; empty on the hot path (one `is_empty` test per wake-up).
    pub wake_refs: HashMap<ProcId, Option<SavedTerm>>,
    /// The buffer `wake::perform_effects` takes the engine's effects into.
    pub effects: Vec<Effect>,
}

/// What the report shows, kept only when the iteration captures (a failing iteration is
/// run again with capture on).
pub struct Capture {
    pub on: bool,
    /// The engine's events are kept for `trace` (capturing, or a controller's session);
    /// otherwise they are dropped after each call, once announced terms are filed.
    pub keep_events: bool,
    pub msgs: HashMap<MsgId, SavedTerm>,
    /// Kind terms of shared-state operations, by event index.
    pub nifs: HashMap<usize, SavedTerm>,
    /// Reasons (with stacktraces), per exited process.
    pub exits: HashMap<ProcId, SavedTerm>,
    /// Source locations of the events of instrumented code.
    pub sites: Sites,
    /// What the report shows beside a process with no registered name: the module of the
    /// OTP behaviour it runs (`"MyApp.Account"`), noted by the process itself.
    pub labels: HashMap<ProcId, String>,
}

/// Where in the source each event of instrumented code comes from (`"lib/x.ex:12"`), by
/// event index. Instrumented code run in a capturing iteration notes the call site of each
/// operation before it (`note_site`); the events the operation then records by that
/// process are filed under it. The operation is the first sync call after the note and the
/// retries of a receive it starts: any other sync call the process makes without a note
/// (code written against the `Lockstep` API, a second sync point inside one operation)
/// has no site, so an event is never shown at a line that did not make it.
#[derive(Default)]
pub struct Sites {
    /// The site of each process's current operation.
    current: HashMap<ProcId, Arc<str>>,
    /// Processes whose noted site no sync call has used yet.
    noted: HashSet<ProcId>,
    /// `(event index, site)`, in event order.
    pub by_event: Vec<(usize, Arc<str>)>,
    /// Events already filed.
    scanned: usize,
}

impl Sites {
    /// Files the events recorded since the last call under their process's current site.
    /// Runs before any process's site changes, so each event gets the site of the
    /// operation that was current when it was recorded.
    pub fn file(&mut self, events: &[Event]) {
        if !self.current.is_empty() {
            for (index, event) in events.iter().enumerate().skip(self.scanned) {
                if !own_operation(&event.kind) {
                    continue;
                }
                if let Some(site) = self.current.get(&event.proc) {
                    self.by_event.push((index, site.clone()));
                }
            }
        }
        self.scanned = events.len();
    }

    /// `id`'s next operation is at `site`.
    pub fn note(&mut self, events: &[Event], id: ProcId, site: &str) {
        self.file(events);
        self.current.insert(id, Arc::from(site));
        self.noted.insert(id);
    }

    /// `id` makes a sync call (`retry`: of the receive it is in).
    pub fn sync_call(&mut self, events: &[Event], id: ProcId, retry: bool) {
        self.file(events);
        if !self.noted.remove(&id) && !retry {
            self.current.remove(&id);
        }
    }

    /// `id`'s code ended.
    pub fn ended(&mut self, events: &[Event], id: ProcId) {
        self.file(events);
        self.noted.remove(&id);
        self.current.remove(&id);
    }
}

/// Events that record what their process did at its current operation (not what reached
/// it, such as a delivery, a `:DOWN` or a timer firing).
fn own_operation(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Start
            | EventKind::Deliver { .. }
            | EventKind::Drop { .. }
            | EventKind::Cut { .. }
            | EventKind::ExitTrapped { .. }
            | EventKind::ExitIgnored { .. }
            | EventKind::Down { .. }
            | EventKind::TimerFired { .. }
            | EventKind::Exit { .. }
            | EventKind::Tick { .. }
            | EventKind::NodeDownMsg { .. }
    )
}

impl SessionState {
    pub fn new(
        session: Session,
        strategy: RunStrategy,
        cell: ResourceArc<StrategyCell>,
        owner: LocalPid,
        capture: bool,
    ) -> Self {
        SessionState {
            session,
            strategy: Some(strategy),
            cell,
            owner: Owner {
                pid: owner,
                done_ref: None,
                done_sent: false,
                needs_cleanup: false,
                histories: false,
                progress: 0,
                releasing: 0,
                release_ref: None,
                noted_before_release: 0,
                fault: None,
            },
            procs: ProcTable {
                pids: vec![None],
                by_pid: HashMap::default(),
                gone: Vec::new(),
                released: Vec::new(),
            },
            atoms: AtomTables {
                names: Vec::new(),
                name_ids: HashMap::new(),
                nodes: vec![atoms::nonode_at_nohost()],
            },
            terms: Terms {
                arena: None,
                held: HashMap::new(),
                announced: HashMap::new(),
                events_scanned: 0,
                exit_reasons: HashMap::new(),
                given_reasons: Vec::new(),
                monitor_refs: HashMap::new(),
                monitor_index: HashMap::new(),
                monitors_unindexed: Vec::new(),
                alias_refs: HashMap::new(),
                timer_data: HashMap::new(),
                timer_index: HashMap::new(),
                timers_unindexed: Vec::new(),
                globals: Vec::new(),
                ets_tables: Vec::new(),
                outside_crashes: HashMap::new(),
                uncontrolled: Vec::new(),
                wake_refs: HashMap::new(),
                effects: Vec::new(),
            },
            capture: Capture {
                on: capture,
                keep_events: capture,
                msgs: HashMap::new(),
                nifs: HashMap::new(),
                exits: HashMap::new(),
                sites: Sites::default(),
                labels: HashMap::new(),
            },
            relay: Relay::default(),
        }
    }

    pub fn done_ref_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        self.terms.load_or_nil(env, self.owner.done_ref.as_ref())
    }

    /// The id of a node this run started (or the home node), `None` for any other atom.
    pub fn known_node(&self, node: Atom) -> Option<NodeId> {
        let id = self.atoms.node_index(node)?;
        self.session.cluster().is_known(id).then_some(id)
    }

    pub fn exited(&self, id: ProcId) -> bool {
        self.session
            .proc(id)
            .is_some_and(|p| p.state == ProcState::Exited)
    }

    pub fn caller_node(&self, id: ProcId) -> NodeId {
        self.session.proc(id).map(|p| p.node).unwrap_or(0)
    }

    pub fn reason_term<'a>(&self, env: Env<'a>, reason: Reason) -> Term<'a> {
        self.terms.reason_term(env, reason)
    }

    /// Files terms announced with an operation under the ids the engine gave what the
    /// operation created. Runs only while something is announced.
    pub fn file_announced(&mut self) {
        let events = self.session.events();
        let terms = &mut self.terms;
        for (index, event) in events.iter().enumerate().skip(terms.events_scanned) {
            let slot = match event.kind {
                EventKind::Send { .. }
                | EventKind::Monitor { .. }
                | EventKind::TimerStarted { .. }
                | EventKind::Nif { .. }
                    if terms.announced.contains_key(&event.proc) =>
                {
                    event.kind.clone()
                }
                _ => continue,
            };
            let Some(saved) = terms.announced.remove(&event.proc) else {
                continue;
            };
            match slot {
                EventKind::Send { msg, .. } => {
                    self.capture.msgs.insert(msg, saved);
                }
                EventKind::Monitor { monitor, .. } => {
                    terms.monitor_refs.insert(monitor, saved);
                    terms.monitors_unindexed.push(monitor);
                }
                EventKind::TimerStarted { timer, .. } => {
                    let is_send_after = self
                        .session
                        .timer(timer)
                        .is_some_and(|t| matches!(t.kind, TimerKind::SendAfter { .. }));
                    if is_send_after {
                        terms.timer_data.insert(timer, saved);
                        terms.timers_unindexed.push(timer);
                    } else {
                        // A receive's own timer: the announced term belongs to a later op.
                        terms.announced.insert(event.proc, saved);
                    }
                }
                EventKind::Nif { .. } => {
                    self.capture.nifs.insert(index, saved);
                }
                _ => {}
            }
        }
        terms.events_scanned = events.len();
    }
}

impl ProcTable {
    #[inline]
    pub fn pid(&self, p: ProcId) -> Option<LocalPid> {
        self.pids.get(p as usize).copied().flatten()
    }

    pub fn pid_term<'a>(&self, env: Env<'a>, p: ProcId) -> Term<'a> {
        match self.pid(p) {
            Some(pid) => pid.encode(env),
            None => atoms::nil().encode(env),
        }
    }

    #[inline]
    pub fn managed(&self, pid: &LocalPid) -> Option<ProcId> {
        self.by_pid.get(pid).copied()
    }

    /// Registers `id`'s BEAM process; `watched`: the resource monitor on it is set (it is
    /// not for a process that is already gone).
    pub fn register(&mut self, id: ProcId, pid: LocalPid, watched: bool) {
        if self.pids.len() <= id as usize {
            self.pids.resize(id as usize + 1, None);
        }
        if self.gone.len() <= id as usize {
            self.gone.resize(id as usize + 1, false);
        }
        self.pids[id as usize] = Some(pid);
        self.gone[id as usize] = !watched;
        self.by_pid.insert(pid, id);
    }

    /// `id`'s BEAM process is gone: the resource monitor fired for it.
    pub fn mark_gone(&mut self, id: ProcId) {
        if let Some(gone) = self.gone.get_mut(id as usize) {
            *gone = true;
        }
    }

    /// `id` is told to end itself (see `owner::teardown_view`).
    pub fn mark_released(&mut self, id: ProcId) {
        if self.released.len() <= id as usize {
            self.released.resize(id as usize + 1, false);
        }
        self.released[id as usize] = true;
    }

    /// Whether `id` was released, forgetting it: asked once, when its BEAM process is gone.
    pub fn take_released(&mut self, id: ProcId) -> bool {
        self.released
            .get_mut(id as usize)
            .is_some_and(std::mem::take)
    }

    /// The pid of `id` while its BEAM process may still be alive.
    pub fn live_pid(&self, p: ProcId) -> Option<LocalPid> {
        self.pid(p)
            .filter(|_| !self.gone.get(p as usize).copied().unwrap_or(false))
    }

    /// The registered processes and their pids, in engine id order.
    pub fn all(&self) -> impl Iterator<Item = (ProcId, LocalPid)> + '_ {
        self.pids
            .iter()
            .enumerate()
            .filter_map(|(i, pid)| pid.map(|pid| (i as ProcId, pid)))
    }
}

impl AtomTables {
    pub fn intern(&mut self, name: Atom) -> NameId {
        if let Some(&id) = self.name_ids.get(&name) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.names.push(name);
        self.name_ids.insert(name, id);
        id
    }

    pub fn name(&self, id: NameId) -> Atom {
        self.names[id as usize]
    }

    /// The id of node `node`, numbering it if it is new.
    pub fn node_id(&mut self, node: Atom) -> NodeId {
        if let Some(id) = self.node_index(node) {
            return id;
        }
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    pub fn node_index(&self, node: Atom) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|&n| n == node)
            .map(|i| i as NodeId)
    }

    pub fn node_atom(&self, node: NodeId) -> Atom {
        self.nodes
            .get(node as usize)
            .copied()
            .unwrap_or_else(atoms::nonode_at_nohost)
    }
}

impl Terms {
    pub fn save(&mut self, term: Term) -> SavedTerm {
        self.arena.get_or_insert_with(OwnedEnv::new).save(term)
    }

    pub fn load<'a>(&self, env: Env<'a>, saved: &SavedTerm) -> Term<'a> {
        match &self.arena {
            Some(arena) => arena.run(|a| saved.load(a).in_env(env)),
            None => atoms::nil().encode(env),
        }
    }

    /// The saved term, or `nil` when there is none.
    /// The monitor whose ref is `mref`, if this run handed it out.
    pub fn monitor_of<'a>(&mut self, env: Env<'a>, mref: Term<'a>) -> Option<MonitorId> {
        for monitor in std::mem::take(&mut self.monitors_unindexed) {
            if let Some(saved) = self.monitor_refs.get(&monitor) {
                let hash = self.load(env, saved).hash_internal(0);
                self.monitor_index.entry(hash).or_default().push(monitor);
            }
        }
        self.monitor_index
            .get(&mref.hash_internal(0))?
            .iter()
            .copied()
            .find(|m| {
                self.monitor_refs
                    .get(m)
                    .is_some_and(|saved| self.load(env, saved) == mref)
            })
    }

    /// The `send_after` timer whose reference is `tref` (`None`: a ref this run never
    /// handed out for a timer).
    pub fn timer_of<'a>(&mut self, env: Env<'a>, tref: Term<'a>) -> Option<TimerId> {
        let data_ref = |terms: &Self, saved: &SavedTerm| {
            terms
                .load(env, saved)
                .decode::<(Term, Term, Term)>()
                .ok()
                .map(|(r, _, _)| r)
        };
        for timer in std::mem::take(&mut self.timers_unindexed) {
            let Some(saved) = self.timer_data.get(&timer) else {
                continue;
            };
            if let Some(r) = data_ref(self, saved) {
                let hash = r.hash_internal(0);
                self.timer_index.entry(hash).or_default().push(timer);
            }
        }
        self.timer_index
            .get(&tref.hash_internal(0))?
            .iter()
            .copied()
            .find(|t| {
                self.timer_data
                    .get(t)
                    .and_then(|saved| data_ref(self, saved))
                    .is_some_and(|r| r == tref)
            })
    }

    /// Files the alias `aref` of process `p`, numbered `number` by the engine.
    pub fn add_alias_ref(&mut self, aref: Term, p: ProcId, number: u32) {
        let saved = self.save(aref);
        let bucket = self.alias_refs.entry(aref.hash_internal(0)).or_default();
        bucket.push((saved, p, number));
    }

    /// The owner and number of the alias `aref`, if a managed process made it.
    pub fn alias_of<'a>(&self, env: Env<'a>, aref: Term<'a>) -> Option<(ProcId, u32)> {
        self.alias_refs
            .get(&aref.hash_internal(0))?
            .iter()
            .find(|(saved, _, _)| self.load(env, saved) == aref)
            .map(|&(_, p, n)| (p, n))
    }

    pub fn load_or_nil<'a>(&self, env: Env<'a>, saved: Option<&SavedTerm>) -> Term<'a> {
        match saved {
            Some(saved) => self.load(env, saved),
            None => atoms::nil().encode(env),
        }
    }

    pub fn reason_term<'a>(&self, env: Env<'a>, reason: Reason) -> Term<'a> {
        match reason {
            Reason::Normal => atoms::normal().encode(env),
            Reason::Kill => atoms::kill().encode(env),
            Reason::Killed => atoms::killed().encode(env),
            Reason::NoProc => atoms::noproc().encode(env),
            Reason::NoConnection => atoms::noconnection().encode(env),
            Reason::ExitOf(p) => match self.exit_reasons.get(&p) {
                Some(saved) => self.load(env, saved),
                None => atoms::killed().encode(env),
            },
            Reason::Given(n) | Reason::Shutdown(n) => match self.given_reasons.get(n as usize) {
                Some(saved) => self.load(env, saved),
                None => atoms::killed().encode(env),
            },
        }
    }

    /// The engine id of global name `name` (any term), numbering it if it is new.
    pub fn global_id<'a>(&mut self, env: Env<'a>, name: Term<'a>) -> u32 {
        if let Some(i) = self.globals.iter().position(|s| self.load(env, s) == name) {
            return i as u32;
        }
        let saved = self.save(name);
        self.globals.push(saved);
        (self.globals.len() - 1) as u32
    }

    /// Global name `id`, `None` for an id never numbered.
    pub fn global<'a>(&self, env: Env<'a>, id: u32) -> Option<Term<'a>> {
        self.globals.get(id as usize).map(|s| self.load(env, s))
    }
}
