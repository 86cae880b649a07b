defmodule Lockstep.PersistentTerm do
  @moduledoc """
  `:persistent_term` with a sync point before every operation, and keys private to each
  simulated node and to each iteration.

  Inside a run each function is one scheduling step (trace event
  `{:nif, process, {:persistent_term_put, key}}` and so on), then the real
  `:persistent_term` call with its real result or error. Outside a run it is the plain call
  with the plain key, after a single process-dictionary check.

  Inside a run a key is stored under a real key that also names the iteration and the
  caller's simulated node (`{Lockstep.PersistentTerm, run, node, key}`), so:

    * two simulated nodes (see `Lockstep.Cluster`) each have their own value for a key, as
      two real nodes would;
    * a value put in one iteration is not seen by the next one, nor by the re-run Lockstep
      does to capture a failing trace, nor outside the run (iterations stay independent and
      replays stay exact).

  Operations on a key touch the object *node + key*, so the `:pos` strategy treats a `put`
  and a `get` of the same key as racing.

  ## Example

      Lockstep.run(fn ->
        Lockstep.PersistentTerm.put(:config, %{limit: 10})
        %{limit: 10} = Lockstep.PersistentTerm.get(:config)
        :none = Lockstep.PersistentTerm.get(:missing, :none)
        true = Lockstep.PersistentTerm.erase(:config)
      end)

  Costs are the real ones: `put/2` and `erase/1` are expensive global operations in OTP
  (an erase, or a put that replaces a value, can make the VM scan every process). Terms a
  run stores are real persistent terms under run-specific keys, erased when the iteration
  ends — also when the process that called `Lockstep.run/2` dies mid-run (an ExUnit
  timeout): the run's janitor erases them then.
  """

  alias Lockstep.Runtime

  @range 4_294_967_296

  @doc "Stores `value` under `key`; mirrors `:persistent_term.put/2`."
  @spec put(term(), term()) :: :ok
  def put(key, value) do
    case Runtime.context_or_nil() do
      nil ->
        :persistent_term.put(key, value)

      ctx ->
        real_key = sync(ctx, :persistent_term_put, key)
        Lockstep.Native.mark_cleanup(elem(ctx, 0))
        :persistent_term.put(real_key, value)
    end
  end

  @doc """
  The value stored under `key`; mirrors `:persistent_term.get/1` (raises `ArgumentError` when
  there is none).
  """
  @spec get(term()) :: term()
  def get(key) do
    case Runtime.context_or_nil() do
      nil -> :persistent_term.get(key)
      ctx -> :persistent_term.get(sync(ctx, :persistent_term_get, key))
    end
  end

  @doc "The value stored under `key`, or `default`; mirrors `:persistent_term.get/2`."
  @spec get(term(), term()) :: term()
  def get(key, default) do
    case Runtime.context_or_nil() do
      nil -> :persistent_term.get(key, default)
      ctx -> :persistent_term.get(sync(ctx, :persistent_term_get, key), default)
    end
  end

  @doc """
  Erases `key`; returns `true` if it was stored, else `false`. Mirrors
  `:persistent_term.erase/1`.
  """
  @spec erase(term()) :: boolean()
  def erase(key) do
    case Runtime.context_or_nil() do
      nil -> :persistent_term.erase(key)
      ctx -> :persistent_term.erase(sync(ctx, :persistent_term_erase, key))
    end
  end

  @doc false
  # Erases every key stored by the run whose context tag is `run` (meant for the end of an
  # iteration). Returns how many were erased.
  @spec cleanup(term()) :: non_neg_integer()
  def cleanup(run) do
    keys = for {{__MODULE__, ^run, _node, _key} = k, _} <- :persistent_term.get(), do: k
    Enum.each(keys, &:persistent_term.erase/1)
    length(keys)
  end

  # A sync point on the key for the caller's node; returns the real key to use.
  defp sync({_session, _id, run}, op, key) do
    node = Runtime.node()
    Runtime.nif_sync({op, key}, :erlang.phash2({:persistent_term, node, key}, @range))
    {__MODULE__, run, node, key}
  end
end
