//! The BEAM adapter for `lockstep_core` (Elixir module `Lockstep.Native`): resources, term
//! decoding and encoding, wake-ups and error mapping. It holds no scheduling policy.
//!
//! Hot path: a managed process calls one `sync_*` NIF with the operation it is about to
//! perform (`sync`). The engine decides who goes next; if that is another process the NIF
//! sends it `{tag, :go, result}` itself, from the caller's env, and returns `:wait`, and the
//! caller parks in a plain `receive` on the run-unique integer `tag` (`wake`; a caller
//! with a backlog in its mailbox gets `:wait_marked` and parks on a fresh reference it hands
//! over with `mark_park`, so that OTP skips the backlog when it looks). If the caller
//! is picked again the NIF returns the operation's result at once. A message sent travels
//! with the sender to its next sync point and, when it can, inside the receiver's wake-up
//! (`handoff`): one BEAM message per hop. No controller process is involved.
//!
//! The engine only knows ids. Pids, atoms and terms — in-flight payloads, exit reasons,
//! monitor and timer refs, captured payloads for the report — live in the session's state
//! (`state`) behind one lock per session (`resource`), terms in one `OwnedEnv` arena
//! allocated only when first needed.
//!
//! Modules:
//!
//! - `resource`: the strategy cell and session resources, the lock, the `down` callback;
//! - `state`: one iteration's adapter state, in tables by role;
//! - `sync`: the sync points (the one entry, then send, receive, yield, exit and the rest);
//! - `process`: what processes report outside the sync points;
//! - `cluster`: cluster operations, the caller's node, named ETS tables per node;
//! - `owner`: strategy and session creation, finishing, and the owner's queries;
//! - `owners`: the one resource that watches owners, and each owner's unfinished sessions;
//! - `parallel`: an exhaustive search shared by the workers of `workers: n`;
//! - `wake`: effects, the owner's `done` message, waking the next process, result terms;
//! - `handoff`: what a process brings to its next sync point (the one-message hop);
//! - `relay`: forced hops two processes hand on without the engine, replayed at the next
//!   locked entry;
//! - `checker`: the consistency checker, run on a thread of its own (user models answered
//!   by the calling process);
//! - `decode`: every term the NIFs decode, with rustler's derives;
//! - `convert`: engine values to terms (trace events, decisions), and the exceptions raised.
//!
//! Errors: misuse raises an exception struct (`Lockstep.NotManagedError`,
//! `Lockstep.InternalError` with its message, `ArgumentError` for a malformed hot-path
//! argument); expected outcomes are atoms or tagged tuples. A Rust panic becomes
//! `ErlangError` `:nif_panicked` and poisons the session: see `resource`.

mod checker;
mod cluster;
mod convert;
mod decode;
mod handoff;
mod owner;
mod owners;
mod parallel;
mod process;
mod relay;
mod resource;
mod state;
mod sync;
mod wake;

rustler::init!("Elixir.Lockstep.Native");

// The engine allocates small, short-lived buffers at every step, and under a parallel
// exhaustive search one thread frees what another allocated (a follower's recording, the
// master's copies). mimalloc's per-thread heaps measured 5–25 % faster exhaustive searches
// than the system allocator here (docs/PERFORMANCE.md), whose arenas take a lock for a
// free from another thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
