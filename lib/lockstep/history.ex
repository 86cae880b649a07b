defmodule Lockstep.History do
  @moduledoc """
  Records what clients of a concurrent system saw — each operation's invocation and
  completion — so that, when the iteration ends, Lockstep checks that the whole history is
  linearizable (or sequentially consistent) with respect to a `Lockstep.Model`.

      Lockstep.run(fn ->
        h = Lockstep.History.new(model: Lockstep.Model.Register)

        for i <- 1..2 do
          Lockstep.spawn(fn ->
            Lockstep.History.call(h, :write, i, fn -> MyStore.put(i) end)
            Lockstep.History.call(h, :read, nil, fn -> MyStore.get() end)
          end)
        end
      end)

  Every record is a sync point (shown in the trace as `{:history, …}`), so the strategy
  interleaves it with everything else and the history's order is the run's real-time
  order; each record notes its process, its simulated node (`Lockstep.Cluster`) and its
  step in the trace. Histories work the same in instrumented code.

  When the iteration ends (and nothing else failed), each history created in it is
  checked with `Lockstep.Checker`; one that cannot be explained fails the iteration as
  kind `:linearizability`: the report shows the shortest sub-history found that cannot be
  linearized, each operation with its process, node, steps and result, and a time-line.
  Its trace file replays the failure like any other.

  An operation that crashed or timed out (`call/4` records it as `:info`, or `info/2`) may
  have taken effect at any point after its invocation, or never; one left open when the
  iteration ends counts the same. A result the model's `failed?/3` calls a failure
  (by default `:error` and `{:error, _}`) is recorded as `:fail`: it did not take effect.
  """

  alias Lockstep.{Checker, Runtime, Session, SharedState}
  alias Lockstep.History.Store

  @enforce_keys [:id, :tag, :model, :consistency]
  defstruct [:id, :tag, :model, :consistency]

  @typedoc "A history of the current iteration."
  @type t :: %__MODULE__{
          id: pos_integer(),
          tag: term(),
          model: module(),
          consistency: :linearizable | :sequential
        }

  @doc """
  A new history of the current iteration. Options:

    * `:model` (required) — a `Lockstep.Model` module, or `{module, initial_state}`;
    * `:consistency` — `:linearizable` (default) or `:sequential` (only each process's
      own order counts, not real time).

  Raises `Lockstep.NotManagedError` outside a run, `ArgumentError` on a bad option.
  """
  @spec new(keyword()) :: t()
  def new(opts) when is_list(opts) do
    {session, _id, tag} = Runtime.context("Lockstep.History.new/1")

    case Keyword.keys(opts) -- [:model, :consistency] do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "unknown Lockstep.History option(s) #{inspect(bad)}; " <>
                "accepted: :model, :consistency"
    end

    model =
      Keyword.get_lazy(opts, :model, fn ->
        raise ArgumentError,
              "Lockstep.History.new/1 needs model: (a Lockstep.Model module, or " <>
                "{module, initial_state}), e.g. model: Lockstep.Model.Register"
      end)

    {mod, initial} = Checker.model!(model)
    Checker.initial!(mod, initial)
    consistency = Checker.consistency!(Keyword.get(opts, :consistency, :linearizable))
    Store.ensure()
    # The owner looks for the iteration's histories only when told there are some.
    Session.mark_history(session)
    id = Store.new(tag, mod, initial, consistency)
    %__MODULE__{id: id, tag: tag, model: mod, consistency: consistency}
  end

  def new(other),
    do:
      raise(
        ArgumentError,
        "Lockstep.History.new/1 expects a keyword list, got: #{inspect(other)}"
      )

  @doc """
  Records the invocation of `op` with `arg` by the calling process; returns the reference
  `complete/3` or `info/2` takes. Raises `ArgumentError` when `op` is not an operation of
  the model (or `arg` does not fit it).
  """
  @spec invoke(t(), atom(), term()) :: reference()
  def invoke(%__MODULE__{} = h, op, arg) do
    {session, _id, tag} = here!(h, "invoke/3")
    Checker.validate_call!(h.model, op, arg)
    ref = make_ref()
    step = sync(h, session, {:history, :invoke, op, arg})
    Store.open(tag, h.id, ref, {op, arg})
    Store.record(tag, h.id, {:invoke, ref, self(), op, arg, step})
    ref
  end

  def invoke(other, _op, _arg), do: not_a_history!(other)

  @doc """
  Records that the operation `ref` returned `result`: `:ok`, or `:fail` when the model's
  `failed?/3` says the result means it did not take effect. Raises `ArgumentError` for a
  reference that is not an open operation of `h` (unknown, or completed already), and
  for a result a built-in model's operation cannot have (a `:cas` result that is not a
  boolean, a `Lockstep.Model.Set` `:read` that is not a list or a `MapSet`).
  """
  @spec complete(t(), reference(), term()) :: :ok
  def complete(%__MODULE__{} = h, ref, result) do
    {session, _id, tag} = here!(h, "complete/3")
    {op, arg} = close!(h, tag, ref, "complete/3")
    type = if failed?(h.model, op, arg, result), do: :fail, else: :ok
    # A result of the wrong shape is named here, in the process that recorded it; the
    # operation stays open.
    try do
      if type == :ok, do: Checker.validate_result!(h.model, op, arg, result)
    rescue
      e in ArgumentError ->
        Store.open(tag, h.id, ref, {op, arg})
        reraise e, __STACKTRACE__
    end

    step = sync(h, session, {:history, type, op, result})
    Store.record(tag, h.id, {:complete, ref, type, result, step})
  end

  def complete(other, _ref, _result), do: not_a_history!(other)

  @doc """
  Records that the outcome of operation `ref` is unknown (it crashed or timed out): it may
  have taken effect at any point after its invocation, or never.
  """
  @spec info(t(), reference()) :: :ok
  def info(%__MODULE__{} = h, ref) do
    {session, _id, tag} = here!(h, "info/2")
    {op, _arg} = close!(h, tag, ref, "info/2")
    step = sync(h, session, {:history, :info, op})
    Store.record(tag, h.id, {:complete, ref, :info, nil, step})
  end

  def info(other, _ref), do: not_a_history!(other)

  @doc """
  Invokes `op` with `arg`, runs `fun` and records its result (`:ok`, or `:fail` as in
  `complete/3`); returns what `fun` returned. When `fun` raises, throws or exits (a
  `GenServer.call` timing out), the operation is recorded as `:info` and the exception
  goes on as it was.
  """
  @spec call(t(), atom(), term(), Lockstep.body(result)) :: result when result: term()
  def call(h, op, arg, fun) when is_function(fun, 0) do
    ref = invoke(h, op, arg)

    try do
      fun.()
    catch
      kind, reason ->
        info(h, ref)
        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      result ->
        complete(h, ref, result)
        result
    end
  end

  def call(_h, _op, _arg, fun),
    do:
      raise(
        ArgumentError,
        "Lockstep.History.call/4 expects a zero-arity function, got: #{inspect(fun)}"
      )

  # Checking at the end of an iteration ------------------------------------------------------

  @doc false
  # Checks the histories of an ended iteration (`Store.take/1`); `procs` names the pids.
  # Returns nil when every one passes, else the failure's details.
  def check_all(histories, procs) do
    names =
      for %Session.Proc{pid: pid, name: n, node: node} <- procs, into: %{}, do: {pid, {n, node}}

    histories
    |> Enum.with_index(1)
    |> Enum.find_value(fn {{{:meta, mod, initial, consistency}, records}, i} ->
      events = Enum.map(records, &event(&1, names))

      case Checker.check_ops(Checker.pair!(events), mod, initial, consistency) do
        :ok -> nil
        {:error, details} -> Map.merge(details, %{history: i, histories: length(histories)})
      end
    end)
  end

  defp event({:invoke, ref, pid, op, arg, step}, names) do
    {name, node} = Map.get(names, pid, {inspect(pid), nil})
    %{type: :invoke, id: ref, process: name, node: node, op: op, arg: arg, step: step}
  end

  defp event({:complete, ref, type, result, step}, _names),
    do: %{type: type, id: ref, result: result, step: step}

  # Helpers ----------------------------------------------------------------------------------

  defp here!(%__MODULE__{tag: tag}, what) do
    case Runtime.context("Lockstep.History.#{what}") do
      {_session, _id, ^tag} = ctx ->
        ctx

      _ ->
        raise ArgumentError,
              "Lockstep.History.#{what}: this history belongs to another iteration (a history " <>
                "lives for the iteration that made it)"
    end
  end

  defp close!(h, tag, ref, what) do
    case Store.close(tag, h.id, ref) do
      nil ->
        raise ArgumentError,
              "Lockstep.History.#{what}: #{inspect(ref)} is not an open operation of this " <>
                "history (it was not returned by invoke/3 on it, or it was completed already)"

      op ->
        op
    end
  end

  defp sync(h, session, kind) do
    SharedState.sync(kind, {:history, h.id})
    Session.progress(session).step
  end

  defp failed?(mod, op, arg, result) do
    if function_exported?(mod, :failed?, 3),
      do: mod.failed?(op, arg, result) == true,
      else: Lockstep.Model.default_failed?(result)
  end

  defp not_a_history!(other) do
    raise ArgumentError,
          "expected a Lockstep.History (from Lockstep.History.new/1), got: #{inspect(other)}"
  end
end
