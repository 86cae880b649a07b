defmodule Bench.PingPong do
  @moduledoc false
  # Two processes bouncing a message back and forth. A *hop* is one message from one
  # process to the other (send + the receive that takes it), so `hops` hops are `hops / 2`
  # round trips. Every variant returns `%{ns: elapsed, hops: hops, cs: context_switches}`
  # measured around the loop only (spawning and teardown are excluded).

  require Lockstep
  alias Bench.Timing

  # Raw BEAM: the floor -------------------------------------------------------------------

  def raw(hops) do
    Timing.isolated(fn ->
      echo = :erlang.spawn(fn -> raw_echo() end)
      # one warm-up round trip so the partner is running and has a heap
      Kernel.send(echo, {:ping, self()})

      receive do
        :pong -> :ok
      end

      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      raw_loop(echo, div(hops, 2))
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()
      Kernel.send(echo, :stop)
      %{ns: t1 - t0, hops: div(hops, 2) * 2, cs: cs1 - cs0}
    end)
  end

  defp raw_loop(_echo, 0), do: :ok

  defp raw_loop(echo, n) do
    Kernel.send(echo, {:ping, self()})

    receive do
      :pong -> raw_loop(echo, n - 1)
    end
  end

  defp raw_echo do
    receive do
      {:ping, from} ->
        Kernel.send(from, :pong)
        raw_echo()

      :stop ->
        :ok
    end
  end

  # Through Lockstep: one iteration, root + one partner -----------------------------------

  def lockstep(hops, strategy) do
    me = self()
    ref = make_ref()
    rounds = div(hops, 2)

    root = fn ->
      partner = Lockstep.spawn(fn -> ls_echo() end)
      # warm-up round trip: the partner is started and parked in its receive
      Lockstep.send(partner, {:ping, self()})
      Lockstep.receive(do: (:pong -> :ok))

      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      ls_loop(partner, rounds)
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()

      Lockstep.send(partner, :stop)
      # outside the run: a plain send to the benchmark process
      Kernel.send(me, {ref, %{ns: t1 - t0, hops: rounds * 2, cs: cs1 - cs0}})
    end

    relayed = Lockstep.Session.relayed_hops()

    summary =
      Lockstep.run(root,
        iterations: 1,
        strategy: strategy,
        seed: 2026,
        max_steps: 10_000_000,
        timeout: 60_000
      )

    receive do
      {^ref, result} ->
        result
        |> Map.put(:steps, summary.steps)
        |> Map.put(:relayed, Lockstep.Session.relayed_hops() - relayed)
    after
      0 -> raise "the Lockstep ping-pong root did not report"
    end
  end

  @doc """
  The same ping-pong spread over many short iterations (`its` iterations of `hops_per_it`
  hops), the shape of a typical test: the per-iteration trace buffers stay small. Each root
  times its own loop; the times are summed.
  """
  def lockstep_short(hops_per_it, its, strategy) do
    me = self()
    ref = make_ref()
    rounds = div(hops_per_it, 2)

    root = fn ->
      partner = Lockstep.spawn(fn -> ls_echo() end)
      Lockstep.send(partner, {:ping, self()})
      Lockstep.receive(do: (:pong -> :ok))

      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      ls_loop(partner, rounds)
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()

      Lockstep.send(partner, :stop)
      Kernel.send(me, {ref, t1 - t0, cs1 - cs0})
    end

    relayed = Lockstep.Session.relayed_hops()

    summary =
      Lockstep.run(root, iterations: its, strategy: strategy, seed: 2026, max_steps: 10_000_000)

    relayed = Lockstep.Session.relayed_hops() - relayed

    {ns, cs} =
      Enum.reduce(1..its, {0, 0}, fn _, {ns, cs} ->
        receive do
          {^ref, dt, dcs} -> {ns + dt, cs + dcs}
        after
          0 -> raise "a Lockstep ping-pong root did not report"
        end
      end)

    # steps include each iteration's set-up (start, spawn, warm-up, stop): a few % here
    %{ns: ns, hops: its * rounds * 2, cs: cs, steps: summary.steps, relayed: relayed}
  end

  defp ls_loop(_partner, 0), do: :ok

  defp ls_loop(partner, n) do
    Lockstep.send(partner, {:ping, self()})

    Lockstep.receive do
      :pong -> ls_loop(partner, n - 1)
    end
  end

  defp ls_echo do
    Lockstep.receive do
      {:ping, from} ->
        Lockstep.send(from, :pong)
        ls_echo()

      :stop ->
        :ok
    end
  end

  # Through the "obvious design": a GenServer controller at every sync point --------------

  def baseline(hops) do
    me = self()
    ref = make_ref()
    rounds = div(hops, 2)
    alias Bench.Baseline, as: B

    root = fn ->
      partner = B.spawn(fn -> bl_echo() end)
      B.send(partner, {:ping, self()})
      :pong = B.recv()

      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      bl_loop(partner, rounds)
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()

      B.send(partner, :stop)
      Kernel.send(me, {ref, %{ns: t1 - t0, hops: rounds * 2, cs: cs1 - cs0}})
    end

    {:pass, steps} = B.run(root, seed: 2026)

    receive do
      {^ref, result} -> Map.put(result, :steps, steps)
    after
      0 -> raise "the baseline ping-pong root did not report"
    end
  end

  defp bl_loop(_partner, 0), do: :ok

  defp bl_loop(partner, n) do
    Bench.Baseline.send(partner, {:ping, self()})
    :pong = Bench.Baseline.recv()
    bl_loop(partner, n - 1)
  end

  defp bl_echo do
    case Bench.Baseline.recv() do
      {:ping, from} ->
        Bench.Baseline.send(from, :pong)
        bl_echo()

      :stop ->
        :ok
    end
  end
end
