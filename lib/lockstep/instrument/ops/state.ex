defmodule Lockstep.Instrument.Ops.State do
  @moduledoc """
  Shared state for instrumented code (SPEC §5, §9): what a call to `:ets`, `:atomics`,
  `:counters` or `:persistent_term` becomes in a managed process.

  Each function here is the call of the same name and arity on Lockstep's wrapper
  (`Lockstep.ETS`, `Lockstep.Atomics`, `Lockstep.Counters`, `Lockstep.PersistentTerm`):
  a sync point naming the table and key, the array and index, or the term key it
  touches, then the real operation with its real result or exception. So, as in OTP 25:

    * a `:private` table read, or a `:protected` one written, by another process raises
      `badarg` (the real table says so);
    * a named table created twice on a (simulated) node raises `badarg`, even when the two
      creations race; the name is free again once its table is gone;
    * a table dies with the process that created it: when a managed process exits, its
      tables are deleted at that point of the schedule (a process killed by an exit signal
      deletes them when it gets the order to die, which may come a little later than the
      kill in the schedule);
    * errors are `error:badarg` (an `ArgumentError` to Elixir code), with OTP's message.

  Named tables, `:persistent_term` keys are private to the iteration and to the caller's
  simulated node (see `Lockstep.ETS` and `Lockstep.PersistentTerm`).

  `:ets.give_away/3` to a process of the run sends the new owner's `{:"ETS-TRANSFER", …}`
  as a message of the schedule (`Lockstep.ETS.give_away/3`). Deliberate choices: a table
  given away dies when the BEAM ends its new owner, not at a point of the schedule, and a
  table's `heir` is left to the BEAM, whose `'ETS-TRANSFER'` to the heir is a real message
  outside the schedule. File and DETS functions (`tab2file`, `file2tab`, `to_dets`, …) and
  match-specification helpers that touch no table (`fun2ms`, `match_spec_compile`,
  `test_ms`) are not operations on shared state and run as they are.

  Every function here expects to be called from a managed process (the instrumenter only
  calls it from one).
  """

  alias Lockstep.{Atomics, Counters, ETS, PersistentTerm}

  @ets [
    new: 2,
    delete: 1,
    delete: 2,
    delete_all_objects: 1,
    delete_object: 2,
    insert: 2,
    insert_new: 2,
    update_counter: 3,
    update_counter: 4,
    update_element: 3,
    take: 2,
    match_delete: 2,
    lookup: 2,
    lookup_element: 3,
    member: 2,
    select: 1,
    select: 2,
    select: 3,
    select_count: 2,
    select_delete: 2,
    select_replace: 2,
    select_reverse: 1,
    select_reverse: 2,
    select_reverse: 3,
    match: 1,
    match: 2,
    match: 3,
    match_object: 1,
    match_object: 2,
    match_object: 3,
    tab2list: 1,
    info: 1,
    info: 2,
    first: 1,
    next: 2,
    last: 1,
    prev: 2,
    foldl: 3,
    foldr: 3,
    slot: 2,
    safe_fixtable: 2,
    setopts: 2,
    give_away: 3,
    rename: 2,
    whereis: 1,
    all: 0
  ]

  @atomics [
    new: 2,
    get: 2,
    put: 3,
    add: 3,
    add_get: 3,
    sub: 3,
    sub_get: 3,
    exchange: 3,
    compare_exchange: 4,
    info: 1
  ]

  @counters [new: 2, get: 2, add: 3, sub: 3, put: 3, info: 1]

  @persistent_term [put: 2, get: 0, get: 1, get: 2, erase: 1, info: 0]

  @families [
    {:ets, :ets, ETS, @ets},
    {:atomics, :atomics, Atomics, @atomics},
    {:counters, :counters, Counters, @counters},
    {:persistent_term, :persistent_term, PersistentTerm, @persistent_term}
  ]

  @doc false
  def __ops__ do
    for {erlang, prefix, _wrapper, funs} <- @families, {fun, arity} <- funs do
      {{erlang, fun, arity}, :"#{prefix}_#{fun}"}
    end
  end

  for {erlang, prefix, wrapper, funs} <- @families, {fun, arity} <- funs do
    args = Macro.generate_arguments(arity, __MODULE__)

    @doc "`:#{erlang}.#{fun}/#{arity}`, as `#{inspect(wrapper)}.#{fun}/#{arity}`."
    def unquote(:"#{prefix}_#{fun}")(unquote_splicing(args)),
      do: unquote(wrapper).unquote(fun)(unquote_splicing(args))
  end
end
