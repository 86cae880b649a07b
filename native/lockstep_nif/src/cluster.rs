//! The simulated cluster as managed processes see it: cluster operations (a sync point
//! each), the caller's node, and named ETS tables per node.

use crate::convert::atoms;
use crate::decode::{arg, ClusterArg, EtsNameOp, ProperList};
use crate::resource::{lock, SessionResource};
use crate::state::SessionState;
use crate::sync::{caller_check, managed_or, sync_with};
use lockstep_core::{ClusterOp, NodeId, Op, ProcId};
use rustler::{Atom, Encoder, Env, NifResult, Term};

/// A cluster operation (a sync point): `{:start_node, n}`, `{:stop_node, n}`,
/// `{:partition, group_a, group_b, :drop | :defer}`, `:heal`, `{:monitor_node, n}`,
/// `{:set_ticktime, ms}`, `:nodes`, `:nodes_up`, `:visible` (nodes/0), `{:node_of, pid}`, `{:whereis, name, n}`,
/// `{:registered, n}`, `{:global_register, name, pid}`, `{:global_unregister, name}`,
/// `{:global_whereis, name}`, `:global_names` (see `decode::ClusterArg`). Answers `:badarg`
/// (anything else, e.g. an unknown partition mode), `:badnode` (a node the run has not
/// started) or `:unmanaged` (a pid outside the run) without making a sync point.
#[rustler::nif]
fn sync_cluster<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    sync_with(env, res, id, None, |st| {
        let op = op
            .decode::<ClusterArg>()
            .map_err(|_| atoms::badarg().encode(env))?;
        Ok(Op::Cluster(cluster_op(env, st, op)?))
    })
}

fn cluster_op<'a>(
    env: Env<'a>,
    st: &mut SessionState,
    op: ClusterArg<'a>,
) -> Result<ClusterOp, Term<'a>> {
    let badnode = || atoms::badnode().encode(env);
    let known = |st: &SessionState, node| st.known_node(node).ok_or_else(badnode);
    Ok(match op {
        ClusterArg::Heal => ClusterOp::Heal,
        ClusterArg::Nodes => ClusterOp::Nodes,
        ClusterArg::NodesUp => ClusterOp::NodesUp,
        ClusterArg::Visible => ClusterOp::Visible,
        ClusterArg::GlobalNames => ClusterOp::GlobalNames,
        ClusterArg::Partition(ProperList(a), ProperList(b), mode) => {
            let group = |g: Vec<Atom>| -> Result<Vec<NodeId>, Term<'a>> {
                g.into_iter().map(|n| known(st, n)).collect()
            };
            let (a, b) = (group(a)?, group(b)?);
            ClusterOp::Partition(st.session.define_partition(a, b, mode.into()))
        }
        ClusterArg::Whereis(name, node) => {
            let node = known(st, node)?;
            let name = st.atoms.intern(name);
            ClusterOp::WhereisOn { name, node }
        }
        ClusterArg::Registered(node) => ClusterOp::NamesOn(known(st, node)?),
        ClusterArg::GlobalRegister(name, pid) => {
            let proc = managed_or(env, st, pid)?;
            let name = st.terms.global_id(env, name);
            ClusterOp::GlobalRegister { name, proc }
        }
        ClusterArg::GlobalUnregister(name) => {
            ClusterOp::GlobalUnregister(st.terms.global_id(env, name))
        }
        ClusterArg::GlobalWhereis(name) => ClusterOp::GlobalWhereis(st.terms.global_id(env, name)),
        ClusterArg::SetTicktime(ms) => ClusterOp::SetTicktime(ms),
        ClusterArg::NodeOf(pid) => ClusterOp::NodeOf(managed_or(env, st, pid)?),
        ClusterArg::StartNode(node) => ClusterOp::StartNode(st.atoms.node_id(node)),
        ClusterArg::StopNode(node) => ClusterOp::StopNode(known(st, node)?),
        ClusterArg::MonitorNode(node) => ClusterOp::MonitorNode(st.atoms.node_id(node)),
    })
}

/// The caller's simulated node. Not a sync point (a process's node never changes).
#[rustler::nif]
fn node_name(env: Env, res: &SessionResource, id: ProcId) -> NifResult<Atom> {
    let st = lock(res)?;
    caller_check(env, &st, id)?;
    Ok(st.atoms.node_atom(st.caller_node(id)))
}

/// Named ETS tables per simulated node: `op` is `{:register, name, tid}` (→ boolean),
/// `{:whereis, name}` (→ tid or nil), `{:unregister, name}` (→ boolean) or `:all` (→ every
/// named table of the caller's node, as `[{name, tid}]`, by name id). Not sync points:
/// the ETS wrapper has made its sync point already.
#[rustler::nif]
fn ets_names<'a>(
    env: Env<'a>,
    res: &SessionResource,
    id: ProcId,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    let op = arg::<EtsNameOp>(op)?;
    let mut guard = lock(res)?;
    let st = &mut *guard;
    caller_check(env, st, id)?;
    let node = st.caller_node(id);
    Ok(match op {
        EtsNameOp::Register(name, tid) => {
            let name = st.atoms.intern(name);
            let slot = st.terms.ets_tables.len() as u32;
            let ok = st.session.ets_register(node, name, slot);
            if ok {
                let saved = st.terms.save(tid);
                st.terms.ets_tables.push(saved);
            }
            ok.encode(env)
        }
        EtsNameOp::Unregister(name) => {
            let name = st.atoms.intern(name);
            st.session.ets_unregister(node, name).encode(env)
        }
        EtsNameOp::All => {
            let named = st.session.ets_named(node);
            let mut pairs = Vec::with_capacity(named.len());
            for (name, slot) in named {
                let tid = st
                    .terms
                    .load_or_nil(env, st.terms.ets_tables.get(slot as usize));
                pairs.push((st.atoms.name(name), tid));
            }
            pairs.encode(env)
        }
        EtsNameOp::Whereis(name) => {
            let name = st.atoms.intern(name);
            let slot = st.session.ets_lookup(node, name);
            st.terms
                .load_or_nil(env, slot.and_then(|s| st.terms.ets_tables.get(s as usize)))
        }
    })
}
