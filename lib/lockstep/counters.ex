defmodule Lockstep.Counters do
  @moduledoc """
  `:counters` with a sync point before every operation, so Lockstep can interleave the
  processes of a run between accesses.

  Inside a run each function is one scheduling step (trace event
  `{:nif, process, {:counters_add, ref, index}}` and so on), then the real `:counters` call
  with its real result or error. Outside a run it is the plain call after a single
  process-dictionary check. An operation on an element touches the object *ref + index*, so
  the `:pos` strategy treats two operations on the same counter as racing.

  ## Example

      Lockstep.run(fn ->
        ref = Lockstep.Counters.new(1, [:write_concurrency])
        me = self()

        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            Lockstep.Counters.add(ref, 1, 1)
            Lockstep.send(me, :done)
          end)
        end

        Lockstep.recv()
        Lockstep.recv()
        2 = Lockstep.Counters.get(ref, 1)
      end)

  `get/2` then `put/3` is a read-then-write and loses updates exactly like its `:atomics`
  counterpart; `add/3` and `sub/3` are single atomic operations.
  """

  alias Lockstep.SharedState

  @doc "Creates an array of `size` counters; mirrors `:counters.new/2`."
  @spec new(pos_integer(), [:atomics | :write_concurrency]) :: :counters.counters_ref()
  def new(size, opts) do
    SharedState.sync({:counters_new, size}, nil)
    :counters.new(size, opts)
  end

  @doc "Reads counter `ix`; mirrors `:counters.get/2`."
  @spec get(:counters.counters_ref(), pos_integer()) :: integer()
  def get(ref, ix) do
    sync(:counters_get, ref, ix)
    :counters.get(ref, ix)
  end

  @doc "Adds `incr` to counter `ix`; mirrors `:counters.add/3`."
  @spec add(:counters.counters_ref(), pos_integer(), integer()) :: :ok
  def add(ref, ix, incr) do
    sync(:counters_add, ref, ix)
    :counters.add(ref, ix, incr)
  end

  @doc "Subtracts `decr` from counter `ix`; mirrors `:counters.sub/3`."
  @spec sub(:counters.counters_ref(), pos_integer(), integer()) :: :ok
  def sub(ref, ix, decr) do
    sync(:counters_sub, ref, ix)
    :counters.sub(ref, ix, decr)
  end

  @doc "Sets counter `ix` to `value`; mirrors `:counters.put/3`."
  @spec put(:counters.counters_ref(), pos_integer(), integer()) :: :ok
  def put(ref, ix, value) do
    sync(:counters_put, ref, ix)
    :counters.put(ref, ix, value)
  end

  @doc "Size and memory of the array (a map with at least `:size` and `:memory`); mirrors `:counters.info/1`."
  @spec info(:counters.counters_ref()) :: %{
          required(:size) => non_neg_integer(),
          required(:memory) => non_neg_integer(),
          optional(atom()) => term()
        }
  def info(ref) do
    SharedState.sync({:counters_info, ref}, nil)
    :counters.info(ref)
  end

  # A sync point on element `ix` of `ref` (nothing outside a run).
  defp sync(op, ref, ix), do: SharedState.sync({op, ref, ix}, {:counters, ref, ix})
end
