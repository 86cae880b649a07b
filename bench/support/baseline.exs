defmodule Bench.Baseline do
  @moduledoc false
  # The "obvious design" Lockstep is compared against: a controller GenServer that every
  # managed process must call at each sync point. The controller records the operation the
  # caller announces, defers the reply (`{:noreply, state}`), picks at random which waiting
  # process runs next and wakes only that one with `GenServer.reply/2`. So exactly one
  # managed process runs between sync points, and every sync point is a GenServer round
  # trip through the controller.
  #
  # Semantics mirror Lockstep's (minimal subset): spawn, send, FIFO receive, exit. A
  # process announcing a receive with an empty (controlled) mailbox is blocked, not
  # runnable; a send applied to it makes it runnable again. The iteration ends when nothing
  # is runnable and nobody runs: `:pass` if the root returned, `:deadlock` otherwise.

  use GenServer

  @key :"$bench_baseline_ctl"

  # Managed-process side --------------------------------------------------------------------

  @doc "Runs `fun` as the root of one controlled iteration. Returns `{outcome, steps}`."
  def run(fun, opts \\ []) do
    seed = Keyword.get(opts, :seed, 1)
    {:ok, ctl} = GenServer.start(__MODULE__, {self(), seed})
    root = :erlang.spawn(fn -> enter(fun) end)
    :ok = GenServer.call(ctl, {:register_root, root})
    Kernel.send(root, {:bl_ctl, ctl})

    {outcome, steps, pids} =
      receive do
        {:baseline_done, ^ctl, outcome, steps, pids} -> {outcome, steps, pids}
      end

    GenServer.stop(ctl)
    kill_all(pids)
    {outcome, steps}
  end

  def spawn(fun) do
    :go = sync(:spawn)
    ctl = Process.get(@key)
    pid = :erlang.spawn(fn -> enter(fun) end)
    :ok = GenServer.call(ctl, {:register, pid})
    Kernel.send(pid, {:bl_ctl, ctl})
    pid
  end

  def send(to, msg) do
    :go = sync({:send, to})
    Kernel.send(to, {:bl_msg, msg})
    msg
  end

  def recv do
    :go = sync(:receive)

    receive do
      {:bl_msg, msg} -> msg
    end
  end

  defp sync(op), do: GenServer.call(Process.get(@key), {:sync, op}, :infinity)

  defp enter(fun) do
    ctl =
      receive do
        {:bl_ctl, ctl} -> ctl
      end

    Process.put(@key, ctl)
    :go = sync(:start)

    try do
      fun.()
    after
      GenServer.call(ctl, {:sync, :exit}, :infinity)
    end
  end

  defp kill_all(pids) do
    refs =
      for pid <- pids do
        Process.exit(pid, :kill)
        Process.monitor(pid)
      end

    Enum.each(refs, fn ref ->
      receive do
        {:DOWN, ^ref, :process, _, _} -> :ok
      end
    end)
  end

  # Controller --------------------------------------------------------------------------------

  @impl true
  def init({owner, seed}) do
    {:ok,
     %{
       owner: owner,
       rng: :rand.seed_s(:exsss, {seed, seed, seed}),
       # pid => %{op: announced op or nil while running, from: deferred caller, mailbox: n}
       procs: %{},
       all: [],
       root: nil,
       root_exited: false,
       running: nil,
       # picked child whose first :start call has not arrived yet
       awaiting: nil,
       steps: 0,
       done: false
     }}
  end

  @impl true
  def handle_call({:register_root, root}, _from, st) do
    st = add(%{st | root: root}, root)
    {:reply, :ok, schedule(st)}
  end

  def handle_call({:register, child}, {parent, _}, %{running: parent} = st) do
    {:reply, :ok, add(st, child)}
  end

  def handle_call({:sync, :start}, {pid, _} = from, st) do
    if st.awaiting == pid do
      GenServer.reply(from, :go)
      {:noreply, %{st | awaiting: nil}}
    else
      {:noreply, put_in(st.procs[pid].from, from)}
    end
  end

  def handle_call({:sync, :exit}, {pid, _}, %{running: pid} = st) do
    st = %{st | procs: Map.delete(st.procs, pid), running: nil}
    st = if pid == st.root, do: %{st | root_exited: true}, else: st
    {:reply, :ok, schedule(st)}
  end

  def handle_call({:sync, op}, {pid, _} = from, %{running: pid} = st) do
    st = %{st | procs: Map.update!(st.procs, pid, &%{&1 | op: op, from: from}), running: nil}
    {:noreply, schedule(st)}
  end

  def handle_call(msg, {pid, _}, st) do
    {:stop, {:protocol_error, msg, pid, st.running}, st}
  end

  defp add(st, pid) do
    %{
      st
      | procs: Map.put(st.procs, pid, %{op: :start, from: nil, mailbox: 0}),
        all: [pid | st.all]
    }
  end

  defp runnable?(%{op: nil}), do: false
  defp runnable?(%{op: :receive, mailbox: 0}), do: false
  defp runnable?(_), do: true

  defp schedule(st) do
    ready = for {pid, p} <- st.procs, runnable?(p), do: pid

    case ready do
      [] ->
        outcome = if st.root_exited, do: :pass, else: :deadlock
        Kernel.send(st.owner, {:baseline_done, self(), outcome, st.steps, st.all})
        %{st | done: true}

      [only] ->
        grant(st, only)

      _ ->
        {i, rng} = :rand.uniform_s(length(ready), st.rng)
        grant(%{st | rng: rng}, Enum.at(ready, i - 1))
    end
  end

  # Performs `pid`'s announced operation and lets it run to its next sync point.
  defp grant(st, pid) do
    p = Map.fetch!(st.procs, pid)

    procs =
      case p.op do
        {:send, to} when is_map_key(st.procs, to) ->
          Map.update!(st.procs, to, &%{&1 | mailbox: &1.mailbox + 1})

        :receive ->
          Map.put(st.procs, pid, %{p | mailbox: p.mailbox - 1})

        _ ->
          st.procs
      end

    st = %{st | procs: procs, running: pid, steps: st.steps + 1}

    case p.from do
      nil ->
        # a child picked before its first call arrived: wake it when it does
        %{st | awaiting: pid, procs: Map.update!(st.procs, pid, &%{&1 | op: nil})}

      from ->
        GenServer.reply(from, :go)
        %{st | procs: Map.update!(st.procs, pid, &%{&1 | op: nil, from: nil})}
    end
  end
end
