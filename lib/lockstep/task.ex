defmodule Lockstep.Task do
  @moduledoc """
  `Task` for managed processes: `async/1` and `await/2` whose steps are Lockstep sync
  points and whose timeouts count virtual milliseconds.

      Lockstep.run(fn ->
        a = Lockstep.Task.async(fn -> Lockstep.sleep(10_000); :slow end)
        b = Lockstep.Task.async(fn -> :fast end)
        [:slow, :fast] = Lockstep.Task.await_many([a, b], 20_000)
      end)

  As with `Task`, an async task is linked to its owner (a crash in the task kills a
  non-trapping owner) and monitored by it; only the owner may await it. `await/2` exits
  the caller (does not raise) on a timeout or when the task dies.
  """

  require Lockstep
  import Lockstep.Timeout, only: [is_timeout: 1]

  @enforce_keys [:pid, :ref, :owner]
  defstruct [:pid, :ref, :owner]

  @typedoc "An async task: its process, the monitor reference its reply is tagged with, and its owner."
  @type t :: %__MODULE__{pid: pid(), ref: reference(), owner: pid()}

  @doc """
  Runs `fun` in a new managed process linked to and monitored by the caller, and returns
  the task to `await/2`; mirrors `Task.async/1`.
  """
  @spec async(Lockstep.body()) :: t()
  def async(fun) when is_function(fun, 0) do
    owner = self()
    pid = Lockstep.spawn_link(fn -> run_async(owner, fun) end)
    ref = Lockstep.monitor(pid)
    # As Elixir's Task: the task learns the reference to tag its reply with from its owner.
    Lockstep.send(pid, {:"$lockstep_task", owner, ref})
    %__MODULE__{pid: pid, ref: ref, owner: owner}
  end

  def async(other) do
    raise ArgumentError,
          "Lockstep.Task.async/1 expects a zero-arity function, got: #{inspect(other)}"
  end

  defp run_async(owner, fun) do
    ref =
      Lockstep.receive do
        {:"$lockstep_task", ^owner, ref} -> ref
      end

    Lockstep.send(owner, {ref, fun.()})
  end

  @doc """
  Waits up to `timeout` virtual ms for the task's result; mirrors `Task.await/2`.

  Exits the caller with `{:timeout, {Lockstep.Task, :await, [task, timeout]}}` on timeout
  and with `{reason, {Lockstep.Task, :await, [task, timeout]}}` when the task dies without
  replying. Raises `ArgumentError` when called by a process other than the owner.

  A bad `timeout` fails as in `Task.await/2`: a `FunctionClauseError` unless it is
  `:infinity` or a non-negative integer, and `ErlangError` `:timeout_value` above
  4_294_967_295 ms when the result is not there yet.
  """
  @spec await(t(), non_neg_integer() | :infinity) :: term()
  def await(%__MODULE__{ref: ref} = task, timeout \\ 5000) when is_timeout(timeout) do
    check_owner!(task, :await)
    mfa = {__MODULE__, :await, [task, timeout]}

    Lockstep.receive do
      {^ref, reply} ->
        Lockstep.demonitor(ref, [:flush])
        reply

      {:DOWN, ^ref, _, _, reason} ->
        exit({reason, mfa})
    after
      timeout ->
        Lockstep.demonitor(ref, [:flush])
        exit({:timeout, mfa})
    end
  end

  @doc """
  Awaits all `tasks` within one `timeout` (virtual ms) and returns their results in the
  order of `tasks`; mirrors `Task.await_many/2`.

  Exits the caller with `{:timeout, {Lockstep.Task, :await_many, [tasks, timeout]}}` when
  some are not done in time, and with `{reason, {Lockstep.Task, :await_many, [tasks,
  timeout]}}` when one dies without replying.

  As `Task.await_many/2` the timeout is one `send_after/3` timer: a `FunctionClauseError`
  unless it is `:infinity` or a non-negative integer, and the `ArgumentError` of
  `Lockstep.send_after/3` when its deadline is beyond the clock's range.
  """
  @spec await_many([t()], non_neg_integer() | :infinity) :: [term()]
  def await_many(tasks, timeout \\ 5000) when is_list(tasks) and is_timeout(timeout) do
    Enum.each(tasks, &check_owner!(&1, :await_many))
    mfa = {__MODULE__, :await_many, [tasks, timeout]}
    pending = Map.new(tasks, fn %__MODULE__{ref: ref} -> {ref, true} end)
    timeout_ref = make_ref()
    timer = if timeout != :infinity, do: Lockstep.send_after(self(), timeout_ref, timeout)

    replies =
      try do
        await_loop(pending, %{}, timeout_ref, mfa)
      after
        if timer, do: Lockstep.cancel_timer(timer)
        flush_timeout(timeout_ref)
      end

    Enum.map(tasks, fn %__MODULE__{ref: ref} -> Map.fetch!(replies, ref) end)
  end

  defp await_loop(pending, replies, _timeout_ref, _mfa) when map_size(pending) == 0,
    do: replies

  defp await_loop(pending, replies, timeout_ref, mfa) do
    Lockstep.receive do
      {ref, reply} when is_map_key(pending, ref) ->
        Lockstep.demonitor(ref, [:flush])
        await_loop(Map.delete(pending, ref), Map.put(replies, ref, reply), timeout_ref, mfa)

      {:DOWN, ref, _, _, reason} when is_map_key(pending, ref) ->
        exit({reason, mfa})

      ^timeout_ref ->
        Enum.each(pending, fn {ref, _} -> Lockstep.demonitor(ref, [:flush]) end)
        exit({:timeout, mfa})
    end
  end

  defp flush_timeout(timeout_ref) do
    Lockstep.receive do
      ^timeout_ref -> :ok
    after
      0 -> :ok
    end
  end

  defp check_owner!(%__MODULE__{owner: owner} = task, fun) do
    if owner != self() do
      raise ArgumentError,
            "Lockstep.Task.#{fun}: #{inspect(task)} must be awaited by its owner " <>
              "#{inspect(owner)}, not by #{inspect(self())}"
    end
  end

  defp check_owner!(other, fun) do
    raise ArgumentError,
          "Lockstep.Task.#{fun} expects Lockstep.Task structs, got: #{inspect(other)}"
  end

  @doc "Runs `fun` in a new managed process, not linked; mirrors `Task.start/1`."
  @spec start(Lockstep.body()) :: {:ok, pid()}
  def start(fun) when is_function(fun, 0), do: {:ok, Lockstep.spawn(fun)}

  @doc "Runs `fun` in a new managed process linked to the caller; mirrors `Task.start_link/1`."
  @spec start_link(Lockstep.body()) :: {:ok, pid()}
  def start_link(fun) when is_function(fun, 0), do: {:ok, Lockstep.spawn_link(fun)}
end
