defmodule Lockstep.SharedState do
  @moduledoc false
  # What the shared-state wrappers (Lockstep.ETS, Atomics, Counters, PersistentTerm) and
  # Controller.nif_sync/3 have in common: one sync point before the real operation, the
  # hash that names the object it touches, and the per-iteration keys of
  # Lockstep.PersistentTerm with their erasure when the iteration ends.
  #
  # A sync point announces `kind` (shown in the trace as `{:nif, process, kind}`) and the
  # object it touches: `:erlang.phash2/2` of a term naming it (`{:atomics, ref, ix}`,
  # `{:ets, table, key}`, …), so the `:pos` strategy sees two operations on one object as
  # racing. `nil` touches nothing mutable (`new/2`, `info/1`). Outside a run a sync point
  # is nothing: the wrapper's real call runs after a single process-dictionary check.
  #
  # With the hash goes how it is touched, for the exhaustive search's dependency relation
  # (the engine's strategy/dependency.rs): the table and the key (a term `{tag, table,
  # key}`; `{tag, table}` is the whole table), whether the operation only reads (its name
  # says: `@reads`), and whether the terms are *stable* — free of references, pids and
  # ports, so the same table and key hash alike in every iteration (a table created anew in
  # each iteration is not: the engine then compares it only within one iteration).

  alias Lockstep.{Runtime, Session}

  # The engine takes a 64-bit object id; phash2's largest range, 2^32, keeps collisions
  # between distinct objects (a false race for :pos, nothing worse) rare.
  @range 4_294_967_296

  @doc false
  # Whether the caller is a managed process of a running iteration.
  @spec managed?() :: boolean()
  def managed?, do: Runtime.context_or_nil() != nil

  @doc false
  # A sync point announcing `kind` on the object `object` names (nil: none), when the
  # caller is managed; nothing outside a run.
  @spec sync(term(), term()) :: :ok
  def sync(kind, object) do
    if managed?(), do: Runtime.nif_sync(kind, access(kind, object))
    :ok
  end

  @doc false
  # A sync point on `object` whose way of touching it is not known (Controller.nif_sync/3
  # names only an operation): the exhaustive search orders it against everything.
  @spec sync_opaque(term(), term()) :: :ok
  def sync_opaque(kind, object) do
    if managed?(), do: Runtime.nif_sync(kind, object(object))
    :ok
  end

  # The operations that only read what they touch; every other one writes.
  @reads [
    :ets_first,
    :ets_foldl,
    :ets_foldr,
    :ets_info,
    :ets_last,
    :ets_lookup,
    :ets_lookup_element,
    :ets_match,
    :ets_match_object,
    :ets_member,
    :ets_next,
    :ets_prev,
    :ets_select,
    :ets_select_count,
    :ets_select_reverse,
    :ets_slot,
    :ets_tab2list,
    :ets_whereis,
    :atomics_get,
    :atomics_info,
    :counters_get,
    :counters_info,
    :persistent_term_get,
    :persistent_term_get_all,
    :persistent_term_info
  ]

  @doc false
  # What the sync point announcing `kind` touches in `term` (see the module comment):
  # nil, or `{hash, table_hash, key_hash | nil, write?, stable?}`.
  @spec access(term(), term()) :: tuple() | nil
  def access(_kind, nil), do: nil

  def access(kind, term) do
    op = if is_tuple(kind), do: elem(kind, 0), else: kind
    write? = op not in @reads

    {table, key} =
      case term do
        {tag, table, key} -> {{tag, table}, {:key, key}}
        {tag, table} -> {{tag, table}, nil}
        other -> {other, nil}
      end

    {object(term), object(table), key && object(key), write?, stable?(term)}
  end

  @doc false
  # The object id of the thing `term` names.
  @spec object(term()) :: non_neg_integer() | nil
  def object(nil), do: nil
  def object(term), do: :erlang.phash2(term, @range)

  # Whether `term` hashes alike in every iteration: no reference, pid or port in it.
  defp stable?(term) when is_reference(term) or is_pid(term) or is_port(term), do: false
  defp stable?(term) when is_tuple(term), do: stable_list?(Tuple.to_list(term))
  defp stable?(term) when is_list(term), do: stable_list?(term)
  defp stable?(term) when is_map(term), do: stable_list?(Map.to_list(term))
  defp stable?(_term), do: true

  defp stable_list?([h | t]), do: stable?(h) and stable_list?(t)
  defp stable_list?([]), do: true
  defp stable_list?(_improper_tail), do: true

  # Lockstep.PersistentTerm's keys -------------------------------------------------------
  #
  # A real key is `{Lockstep.PersistentTerm, run, node, key}` (the wrapper's module
  # documents it). The tag is spelled as a plain atom here: it is data, not a call, and
  # the wrapper depends on this module, not the other way round.

  @key_tag :"Elixir.Lockstep.PersistentTerm"

  @doc false
  # The real `:persistent_term` key for `key`: outside a run `key` itself; inside, after
  # a sync point announcing `{op, key}` on the object *node + key*, a key private to the
  # iteration and the caller's simulated node. `store?` marks the iteration as holding
  # keys to erase when it ends (see `erase_iteration_keys/1`).
  @spec persistent_key(atom(), term(), boolean()) :: term()
  def persistent_key(op, key, store? \\ false) do
    case Runtime.context_or_nil() do
      nil ->
        key

      {session, _id, run} ->
        node = Runtime.node()
        Runtime.nif_sync({op, key}, access(op, {:persistent_term, node, key}))
        if store?, do: Session.mark_cleanup(session)
        {@key_tag, run, node, key}
    end
  end

  @doc false
  # Every `{key, value}` the iteration holds on the caller's simulated node, after a sync
  # point announcing `op` on the object *node* (what `:persistent_term.get/0` sees inside
  # a run); outside a run, nil.
  @spec persistent_terms(atom()) :: [{term(), term()}] | nil
  def persistent_terms(op) do
    case Runtime.context_or_nil() do
      nil ->
        nil

      {_session, _id, run} ->
        node = Runtime.node()
        Runtime.nif_sync(op, access(op, {:persistent_term, node}))
        for {{@key_tag, ^run, ^node, key}, value} <- :persistent_term.get(), do: {key, value}
    end
  end

  @doc false
  # Erases every `:persistent_term` key the iteration whose context tag is `run` stored,
  # so iterations stay independent. Called once per iteration that stored any, by
  # whoever tears it down (Lockstep.Janitor.tear_down/3). Returns how many it erased.
  @spec erase_iteration_keys(term()) :: non_neg_integer()
  def erase_iteration_keys(run) do
    keys =
      for {{@key_tag, ^run, _node, _key} = k, _} <- :persistent_term.get(),
          do: k

    Enum.each(keys, &:persistent_term.erase/1)
    length(keys)
  end

  @doc false
  # Erases the `:persistent_term` keys the iteration `run` stored on simulated `node`
  # (the node was stopped: its terms went with it).
  @spec erase_node_keys(term(), node()) :: :ok
  def erase_node_keys(run, node) do
    for {{@key_tag, ^run, ^node, _key} = k, _} <- :persistent_term.get(),
        do: :persistent_term.erase(k)

    :ok
  end
end
