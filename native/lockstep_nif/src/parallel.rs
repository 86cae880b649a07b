//! An exhaustive search shared by the workers of `workers: n` (SPEC §11): the master and
//! its ahead-of-time executions (`lockstep_core::strategy::ParallelSearch`) in one
//! resource, the workers that wait for work, and the wake-up that tells them some is
//! there. Each worker runs an iteration at a time in its own session with its own strategy
//! cell, into which `exhaustive_take` puts the follower for that iteration.

use crate::convert::atoms;
use crate::decode::{arg, StrategySpec};
use crate::resource::StrategyCell;
use lockstep_core::strategy::{spin_lock, Metered, ParallelSearch, Stop, Take};
use lockstep_core::Strategy;
use rustler::{Encoder, Env, LocalPid, NifResult, Resource, ResourceArc, Term};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod names {
    rustler::atoms! { lockstep_exhaustive, wake, stopped, failed, capped, handed_out, discarded, stop, restarted, infinity, order }
}

pub struct ParallelResource {
    search: Arc<Mutex<ParallelSearch>>,
    /// Bumped by every `complete`: a waiting worker polls it without the lock.
    generation: AtomicU64,
    /// Workers told `:wait`, to wake when the master has moved.
    waiters: Mutex<Vec<LocalPid>>,
}

#[rustler::resource_impl]
impl Resource for ParallelResource {}

/// The workers' locks spin before they sleep (see `spin_lock`).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    spin_lock(m)
}

/// A parallel exhaustive search from an `{:exhaustive, dpor, bound}` spec, for `workers`
/// workers, stopping after `cap` interleavings (`:infinity`: none).
#[rustler::nif]
fn exhaustive_parallel_new(
    spec: Term,
    workers: usize,
    cap: Term,
) -> NifResult<ResourceArc<ParallelResource>> {
    let search = arg::<StrategySpec>(spec)?.exhaustive()?;
    let cap = if cap == names::infinity().encode(cap.get_env()) {
        u64::MAX
    } else {
        cap.decode::<u64>()?
    };
    Ok(ResourceArc::new(ParallelResource {
        search: ParallelSearch::new(search, workers, cap),
        generation: AtomicU64::new(0),
        waiters: Mutex::new(Vec::new()),
    }))
}

/// The calling worker's next iteration: `{:run, ticket}` with the follower put in `cell`,
/// `:wait` (the caller is sent `{:lockstep_exhaustive, :wake}` when the master moves), or
/// `:stopped`.
#[rustler::nif]
fn exhaustive_take<'a>(
    env: Env<'a>,
    res: ResourceArc<ParallelResource>,
    cell: ResourceArc<StrategyCell>,
) -> Term<'a> {
    // Registering under the waiters' lock, taken before the search's: a `complete` that
    // comes after this take wakes the caller (it takes the waiters' lock after the search's).
    let mut waiters = lock(&res.waiters);
    match ParallelSearch::take(&res.search) {
        Take::Run(ticket, follower) => {
            let follower: Box<dyn Strategy> = follower;
            *lock(&cell.strategy) = Some(Metered::new(follower));
            (atoms::run(), ticket).encode(env)
        }
        Take::Wait => {
            // Once: a worker that timed out waiting comes back registered already.
            let pid = env.pid();
            if !waiters.contains(&pid) {
                waiters.push(pid);
            }
            atoms::wait().encode(env)
        }
        Take::Stopped(_) => names::stopped().encode(env),
    }
}

fn wake_all(env: Env<'_>, res: &ParallelResource) {
    let waiters = std::mem::take(&mut *lock(&res.waiters));
    for pid in waiters {
        let _ = env.send(&pid, (names::lockstep_exhaustive(), names::wake()));
    }
}

/// How many iterations have completed so far: a worker told `:wait` polls this (no lock)
/// before it sleeps, for a sleeping scheduler wakes slowly on some machines (milliseconds
/// on a virtual machine whose idle CPUs wait for a timer tick).
#[rustler::nif]
fn exhaustive_generation(res: ResourceArc<ParallelResource>) -> u64 {
    res.generation.load(Ordering::Acquire)
}

/// The iteration run as `ticket` ended; `failed`: it is a failure that stops the search.
/// Wakes the waiting workers.
#[rustler::nif]
fn exhaustive_complete(
    env: Env<'_>,
    res: ResourceArc<ParallelResource>,
    ticket: u64,
    failed: bool,
) -> rustler::Atom {
    lock(&res.search).complete(ticket, failed);
    // The wake-ups first: a worker that sees the count move drains its wake-up at once.
    wake_all(env, &res);
    res.generation.fetch_add(1, Ordering::Release);
    atoms::ok()
}

/// `%{stop:, explored:, sleep_blocked:, depth:, exhausted:, restarted:, handed_out:,
/// discarded:, order:}`, `stop` being `nil`, `{:failed, ticket, iteration}`, `:exhausted`
/// or `:capped`, and `order` the tickets of the interleavings taken in, in order.
#[rustler::nif]
fn exhaustive_status<'a>(env: Env<'a>, res: ResourceArc<ParallelResource>) -> NifResult<Term<'a>> {
    let search = lock(&res.search);
    let stats = search.stats();
    let stop = match search.stop() {
        None => atoms::nil().encode(env),
        Some(Stop::Failed { ticket, iteration }) => {
            (names::failed(), ticket, iteration).encode(env)
        }
        Some(Stop::Exhausted) => atoms::exhausted().encode(env),
        Some(Stop::Capped) => names::capped().encode(env),
    };
    let s = stats.search;
    Term::map_from_pairs(
        env,
        &[
            (names::stop().encode(env), stop),
            (atoms::explored().encode(env), s.explored.encode(env)),
            (
                atoms::sleep_blocked().encode(env),
                s.sleep_blocked.encode(env),
            ),
            (atoms::depth().encode(env), s.depth.encode(env)),
            (atoms::exhausted().encode(env), s.exhausted.encode(env)),
            (names::restarted().encode(env), s.restarted.encode(env)),
            (
                names::handed_out().encode(env),
                stats.handed_out.encode(env),
            ),
            (names::discarded().encode(env), stats.discarded.encode(env)),
            (names::order().encode(env), search.order().encode(env)),
        ],
    )
}
