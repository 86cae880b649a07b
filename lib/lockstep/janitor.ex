defmodule Lockstep.Janitor do
  @moduledoc false
  # One watcher process per run. The NIF cannot kill a process: when the run's owner (the
  # process that called Lockstep.run/2, check/2 or replay/3, or a controller) dies — an
  # ExUnit test timeout kills it — its resource monitor can only tell parked processes to
  # exit. A process spinning between sync points, or blocked in a bare receive, would live
  # on (and keep a scheduler busy). The janitor monitors the owner and, when it dies,
  # tears the current iteration down as the owner would have: ends the session, kills
  # every managed process and waits for each, erases the iteration's persistent_term keys
  # and finishes the session, so the NIF state is freed once the last process referring
  # to it is gone.
  #
  # Cost: per run, one spawn and one ETS table; per iteration, one `:ets.insert/2` (the
  # owner records the session there before the root starts). No message per iteration: a
  # message would wake the janitor each time, which costs more than the insert. The table
  # belongs to the owner with the janitor as its heir, so the owner's death hands the
  # janitor the table, with the last session in it, as an `ETS-TRANSFER` message.
  #
  # The teardown itself, `tear_down/3`, is the same whoever runs it: the owner at the end
  # of every iteration (Lockstep.Iteration), a controller stopped early, or the janitor.

  alias Lockstep.{Session, SharedState}

  @key :"$lockstep_janitor"

  @doc """
  Runs `fun` with a janitor watching the calling process; stops it afterwards. Inside,
  `watch/2` records each iteration's session for it.
  """
  def with_janitor(fun) do
    case Process.get(@key) do
      {_janitor, _table} ->
        fun.()

      nil ->
        janitor = start(self())
        Process.put(@key, janitor)

        try do
          fun.()
        after
          Process.delete(@key)
          stop(janitor)
        end
    end
  end

  @doc """
  Starts a janitor for the calling process, which must be the owner. Returns the handle
  `watch/3` and `stop/1` take.
  """
  def start(owner) when owner == self() do
    janitor = spawn(fn -> await_owner(Process.monitor(owner)) end)
    table = :ets.new(__MODULE__, [:set, :public, {:heir, janitor, :owner_died}])
    {janitor, table}
  end

  @doc "Records, for the calling process's janitor (if any), the iteration about to start."
  def watch(session, tag) do
    case Process.get(@key) do
      nil -> :ok
      janitor -> watch(janitor, session, tag)
    end
  end

  @doc "Records, for `janitor`, the iteration about to start."
  def watch({_janitor, table}, session, tag) do
    :ets.insert(table, {:session, session, tag})
    :ok
  end

  @doc "Stops the janitor: the run ended and tore its iterations down itself."
  def stop({janitor, table}) do
    # In this order: killed between the two, the owner still leaves no janitor waiting.
    send(janitor, :stop)
    :ets.delete(table)
    :ok
  end

  # The table normally arrives with the owner's death. The monitor covers an owner killed
  # before it made the table (or a `:DOWN` that overtakes the transfer): the janitor then
  # waits a moment for the table, and does not wait forever.
  defp await_owner(ref) do
    receive do
      {:"ETS-TRANSFER", table, _owner, :owner_died} ->
        clean_up(table)

      {:DOWN, ^ref, :process, _, _} ->
        receive do
          {:"ETS-TRANSFER", table, _owner, :owner_died} -> clean_up(table)
        after
          1_000 -> :ok
        end

      :stop ->
        :ok
    end
  end

  defp clean_up(table) do
    case :ets.lookup(table, :session) do
      [{:session, session, tag}] -> clean_up(session, tag)
      [] -> :ok
    end
  end

  defp clean_up(session, tag) do
    Session.abort(session)
    tear_down(session, tag)
    Lockstep.History.Store.drop(tag)
    :ok
  end

  @doc """
  Ends an iteration for good: kills every managed process of `pids` (by default all of
  the session's) and waits until each is gone, finishes the session (its strategy goes
  back to the run's cell), and erases the `Lockstep.PersistentTerm` keys the iteration
  stored, so iterations stay independent. Returns the session's `{outcome, metrics}`.
  """
  @spec tear_down(Session.t(), term(), [pid()] | nil) ::
          {Session.outcome(), Session.Metrics.t()}
  def tear_down(session, tag, pids \\ nil) do
    kill_all(pids || for(%Session.Proc{pid: pid} <- Session.procs(session), is_pid(pid), do: pid))
    {outcome, metrics} = Session.finish(session)
    # The NIF marks the sessions whose processes stored any key (SharedState does).
    if metrics.cleanup, do: SharedState.erase_iteration_keys(tag)
    {outcome, metrics}
  end

  # No managed process outlives its iteration: kill every one and wait until it is gone.
  defp kill_all(pids) do
    Enum.each(pids, &Process.exit(&1, :kill))
    Enum.each(pids, &await_gone/1)
  end

  # A monitor made here and received on here: the receive skips the messages that were in
  # the caller's mailbox before it (see Lockstep.Iteration), and a dead pid answers at once.
  defp await_gone(pid) do
    ref = :erlang.monitor(:process, pid)

    receive do
      {:DOWN, ^ref, :process, _, _} -> :ok
    end
  end
end
