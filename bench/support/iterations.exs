defmodule Bench.Bodies do
  @moduledoc false
  # Test bodies written once against a tiny "ops" interface (spawn/1, send/2, recv/0) so the
  # very same protocol runs on plain BEAM processes (Bench.RawOps) and under the GenServer
  # baseline (Bench.BaselineOps). Under Lockstep the benchmark uses the project's own
  # Lockstep.Examples.CounterRace.test_body(:atomic, 3), which is this protocol.

  @doc "Root + counter + `clients` atomic clients; the root checks the final count."
  def counter(ops, clients) do
    fn ->
      counter = ops.spawn(fn -> counter_loop(ops, 0) end)
      parent = self()

      for _ <- 1..clients do
        ops.spawn(fn ->
          ops.send(counter, {:incr, self()})
          {:value, _} = ops.recv()
          ops.send(parent, :done)
        end)
      end

      for _ <- 1..clients, do: :done = ops.recv()
      ops.send(counter, {:get, self()})
      {:value, final} = ops.recv()
      if final != clients, do: raise("lost update: #{final} != #{clients}")
      :ok
    end
  end

  defp counter_loop(ops, value) do
    case ops.recv() do
      {:get, from} ->
        ops.send(from, {:value, value})
        counter_loop(ops, value)

      {:put, new_value} ->
        counter_loop(ops, new_value)

      {:incr, from} ->
        ops.send(from, {:value, value + 1})
        counter_loop(ops, value + 1)
    end
  end

  @doc "Root spawns one child that sends one message back."
  def tiny(ops) do
    fn ->
      me = self()
      ops.spawn(fn -> ops.send(me, :hi) end)
      :hi = ops.recv()
      :ok
    end
  end

  @doc "The same tiny body written with Lockstep's API directly."
  def lockstep_tiny do
    require Lockstep

    fn ->
      me = self()
      Lockstep.spawn(fn -> Lockstep.send(me, :hi) end)
      Lockstep.receive(do: (:hi -> :ok))
    end
  end
end

defmodule Bench.RawOps do
  @moduledoc false
  # Plain BEAM. Spawned pids are remembered in the spawner's dictionary for teardown.
  def spawn(fun) do
    pid = :erlang.spawn(fun)
    Process.put(:bench_spawned, [pid | Process.get(:bench_spawned, [])])
    pid
  end

  def send(to, msg), do: Kernel.send(to, msg)

  def recv do
    receive do
      msg -> msg
    end
  end
end

defmodule Bench.BaselineOps do
  @moduledoc false
  defdelegate spawn(fun), to: Bench.Baseline
  defdelegate send(to, msg), to: Bench.Baseline
  defdelegate recv(), to: Bench.Baseline
end

defmodule Bench.Iterations do
  @moduledoc false
  # Whole iterations per second. Each function runs `n` iterations and returns
  # `%{ns: wall time, iterations: n, steps: scheduling steps (if any)}`.

  alias Bench.Timing

  def lockstep(body, n, strategy, opts \\ []) do
    t0 = Timing.now_ns()
    opts = Keyword.merge([iterations: n, strategy: strategy, seed: 2026], opts)
    summary = Lockstep.run(body, opts)
    t1 = Timing.now_ns()
    %{ns: t1 - t0, iterations: summary.iterations, steps: summary.steps}
  end

  @doc """
  The raw-BEAM floor of one iteration: spawn the root (monitored, like Lockstep's root),
  run the same protocol with plain send/receive, wait for the root to finish, then kill
  every process it spawned and wait for each to be gone (what Lockstep's teardown does).
  """
  def raw(body, n) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()
      raw_loop(body, n)
      t1 = Timing.now_ns()
      %{ns: t1 - t0, iterations: n, steps: nil}
    end)
  end

  @doc """
  The raw floor on `workers` schedulers at once: each of `workers` processes, bound to its
  own scheduler as `workers:` binds Lockstep's, runs `div(n, workers)` raw iterations. What
  this machine gives two independent loops of the same protocol: the ceiling for
  Lockstep's `workers:` speed-up.
  """
  def raw_parallel(body, n, workers) do
    me = self()
    ref = make_ref()
    share = div(n, workers)
    t0 = Timing.now_ns()

    for w <- 1..workers do
      :erlang.spawn_opt(
        fn ->
          raw_loop(body, share)
          Kernel.send(me, {ref, :done})
        end,
        [{:scheduler, w}]
      )
    end

    for _ <- 1..workers do
      receive do
        {^ref, :done} -> :ok
      end
    end

    %{ns: Timing.now_ns() - t0, iterations: share * workers, steps: nil}
  end

  defp raw_loop(_body, 0), do: :ok

  defp raw_loop(body, n) do
    owner = self()

    {root, mon} =
      spawn_monitor(fn ->
        body.()
        Kernel.send(owner, {:spawned, self(), Process.get(:bench_spawned, [])})
      end)

    pids =
      receive do
        {:spawned, ^root, pids} -> pids
      end

    receive do
      {:DOWN, ^mon, :process, ^root, :normal} -> :ok
    end

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

    raw_loop(body, n - 1)
  end

  @doc "Spawn-only floor: the root spawns `k - 1` processes that return at once; wait for all."
  def raw_spawn_only(k, n) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()
      spawn_only_loop(k, n)
      t1 = Timing.now_ns()
      %{ns: t1 - t0, iterations: n, steps: nil}
    end)
  end

  defp spawn_only_loop(_k, 0), do: :ok

  defp spawn_only_loop(k, n) do
    {root, mon} =
      spawn_monitor(fn ->
        for _ <- 2..k//1, do: :erlang.spawn(fn -> :ok end)
      end)

    receive do
      {:DOWN, ^mon, :process, ^root, :normal} -> :ok
    end

    spawn_only_loop(k, n - 1)
  end

  def baseline(body, n) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()
      steps = baseline_loop(body, n, 0)
      t1 = Timing.now_ns()
      %{ns: t1 - t0, iterations: n, steps: steps}
    end)
  end

  defp baseline_loop(_body, 0, steps), do: steps

  defp baseline_loop(body, n, steps) do
    {:pass, s} = Bench.Baseline.run(body, seed: n)
    baseline_loop(body, n - 1, steps + s)
  end
end
