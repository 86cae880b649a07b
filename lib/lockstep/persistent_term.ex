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

  alias Lockstep.SharedState

  @missing :"$lockstep_no_persistent_term"

  @doc "Stores `value` under `key`; mirrors `:persistent_term.put/2`."
  @spec put(term(), term()) :: :ok
  def put(key, value),
    do: :persistent_term.put(SharedState.persistent_key(:persistent_term_put, key, true), value)

  @doc """
  The value stored under `key`; mirrors `:persistent_term.get/1` (raises `ArgumentError` when
  there is none).
  """
  @spec get(term()) :: term()
  def get(key) do
    case lookup(key) do
      {:ok, value} -> value
      :error -> :persistent_term.get(key)
    end
  end

  @doc "The value stored under `key`, or `default`; mirrors `:persistent_term.get/2`."
  @spec get(term(), term()) :: term()
  def get(key, default) do
    case lookup(key) do
      {:ok, value} -> value
      :error -> :persistent_term.get(key, default)
    end
  end

  # Inside a run, what the iteration stored under `key`; a term stored before the run (the
  # application's configuration, put at boot) shows through until the iteration stores
  # its own. Outside a run, the plain term.
  defp lookup(key) do
    case SharedState.persistent_key(:persistent_term_get, key) do
      ^key ->
        :error

      run_key ->
        case :persistent_term.get(run_key, @missing) do
          @missing -> :error
          value -> {:ok, value}
        end
    end
  end

  @doc """
  Erases `key`; returns `true` if it was stored, else `false`. Mirrors
  `:persistent_term.erase/1`.
  """
  @spec erase(term()) :: boolean()
  def erase(key),
    do: :persistent_term.erase(SharedState.persistent_key(:persistent_term_erase, key))

  @doc """
  Every `{key, value}` stored; mirrors `:persistent_term.get/0`. Inside a run: the keys the
  iteration stored on the caller's simulated node (the only ones `get/1` sees there).
  """
  @spec get() :: [{term(), term()}]
  def get do
    case SharedState.persistent_terms(:persistent_term_get_all) do
      nil -> :persistent_term.get()
      terms -> terms
    end
  end

  @doc """
  `%{count: n, memory: bytes}`; mirrors `:persistent_term.info/0`. Inside a run it counts
  the keys `get/0` lists, and `memory` is the size of their keys and values in bytes (the
  flat size OTP copies into the persistent area, without its table overhead).
  """
  @spec info() :: %{count: non_neg_integer(), memory: non_neg_integer()}
  def info do
    case SharedState.persistent_terms(:persistent_term_info) do
      nil ->
        :persistent_term.info()

      terms ->
        words = Enum.reduce(terms, 0, fn {k, v}, acc -> acc + :erts_debug.flat_size({k, v}) end)
        %{count: length(terms), memory: words * :erlang.system_info(:wordsize)}
    end
  end
end
