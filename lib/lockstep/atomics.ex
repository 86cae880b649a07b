defmodule Lockstep.Atomics do
  @moduledoc """
  `:atomics` with a sync point before every operation, so Lockstep can interleave the
  processes of a run between accesses.

  Inside a run each function is one scheduling step: it announces the operation (trace event
  `{:nif, process, {:atomics_get, ref, index}}` and so on), waits for its turn, then performs
  the real `:atomics` call and returns its real result or raises its real error. Outside a run
  it is the plain `:atomics` call after a single process-dictionary check.

  Each operation on an element touches the object *ref + index*: the `:pos` strategy treats
  two operations on the same element as racing. `new/2` and `info/1` touch nothing mutable.

  ## Example: get-then-put loses an update, `add/3` does not

      Lockstep.run(fn ->
        ref = Lockstep.Atomics.new(1, [])
        me = self()

        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            # Racy: v = Lockstep.Atomics.get(ref, 1); Lockstep.Atomics.put(ref, 1, v + 1)
            Lockstep.Atomics.add(ref, 1, 1)
            Lockstep.send(me, :done)
          end)
        end

        Lockstep.recv()
        Lockstep.recv()
        2 = Lockstep.Atomics.get(ref, 1)
      end)

  Note that each wrapped call is atomic, as the real one is; Lockstep only interleaves
  *between* calls, which is exactly where a read-then-write sequence can be interrupted.
  """

  alias Lockstep.SharedState

  @doc "Creates an array of `arity` atomics; mirrors `:atomics.new/2`."
  @spec new(pos_integer(), [{:signed, boolean()}]) :: :atomics.atomics_ref()
  def new(arity, opts) do
    SharedState.sync({:atomics_new, arity}, nil)
    :atomics.new(arity, opts)
  end

  @doc "Reads element `ix`; mirrors `:atomics.get/2`."
  @spec get(:atomics.atomics_ref(), pos_integer()) :: integer()
  def get(ref, ix) do
    sync(:atomics_get, ref, ix)
    :atomics.get(ref, ix)
  end

  @doc "Writes `value` to element `ix`; mirrors `:atomics.put/3`."
  @spec put(:atomics.atomics_ref(), pos_integer(), integer()) :: :ok
  def put(ref, ix, value) do
    sync(:atomics_put, ref, ix)
    :atomics.put(ref, ix, value)
  end

  @doc "Atomically adds `incr` to element `ix`; mirrors `:atomics.add/3`."
  @spec add(:atomics.atomics_ref(), pos_integer(), integer()) :: :ok
  def add(ref, ix, incr) do
    sync(:atomics_add, ref, ix)
    :atomics.add(ref, ix, incr)
  end

  @doc "Atomically adds `incr` and returns the new value; mirrors `:atomics.add_get/3`."
  @spec add_get(:atomics.atomics_ref(), pos_integer(), integer()) :: integer()
  def add_get(ref, ix, incr) do
    sync(:atomics_add_get, ref, ix)
    :atomics.add_get(ref, ix, incr)
  end

  @doc "Atomically subtracts `decr` from element `ix`; mirrors `:atomics.sub/3`."
  @spec sub(:atomics.atomics_ref(), pos_integer(), integer()) :: :ok
  def sub(ref, ix, decr) do
    sync(:atomics_sub, ref, ix)
    :atomics.sub(ref, ix, decr)
  end

  @doc "Atomically subtracts `decr` and returns the new value; mirrors `:atomics.sub_get/3`."
  @spec sub_get(:atomics.atomics_ref(), pos_integer(), integer()) :: integer()
  def sub_get(ref, ix, decr) do
    sync(:atomics_sub_get, ref, ix)
    :atomics.sub_get(ref, ix, decr)
  end

  @doc "Atomically writes `desired` and returns the old value; mirrors `:atomics.exchange/3`."
  @spec exchange(:atomics.atomics_ref(), pos_integer(), integer()) :: integer()
  def exchange(ref, ix, desired) do
    sync(:atomics_exchange, ref, ix)
    :atomics.exchange(ref, ix, desired)
  end

  @doc """
  Atomically writes `desired` if the element equals `expected`; returns `:ok` or the actual
  value. Mirrors `:atomics.compare_exchange/4`.
  """
  @spec compare_exchange(:atomics.atomics_ref(), pos_integer(), integer(), integer()) ::
          :ok | integer()
  def compare_exchange(ref, ix, expected, desired) do
    sync(:atomics_compare_exchange, ref, ix)
    :atomics.compare_exchange(ref, ix, expected, desired)
  end

  @doc "Size, bounds and memory of the array; mirrors `:atomics.info/1`."
  @spec info(:atomics.atomics_ref()) :: %{
          size: non_neg_integer(),
          max: integer(),
          min: integer(),
          memory: non_neg_integer()
        }
  def info(ref) do
    SharedState.sync({:atomics_info, ref}, nil)
    :atomics.info(ref)
  end

  # A sync point on element `ix` of `ref` (nothing outside a run).
  defp sync(op, ref, ix), do: SharedState.sync({op, ref, ix}, {:atomics, ref, ix})
end
