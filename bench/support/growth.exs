defmodule Bench.Growth do
  @moduledoc false
  # How Lockstep's costs grow with the work of one iteration (issue 9, §3): each row runs one
  # iteration of a given size and reports the time per unit of work. Flat columns mean the
  # cost per spawn, per step and per message does not depend on how many there are.
  #
  #   processes:   the root spawns N children, each sends the root one message; the root
  #                takes them all (time per process, spawn to exit); under :random, and
  #                under :pct with a seed that leaves most children ready at once
  #   steps:       two processes ping-pong for S steps (time per step)
  #   in flight:   under `delivery: :delayed`, K children each send the root one message
  #                before any is delivered, so up to K are in flight at once (time per message)
  #   owner inbox: the 5-process counter iteration with M unrelated messages waiting in the
  #                test process's mailbox (time per iteration)

  require Lockstep
  alias Bench.Timing

  @doc "One empty iteration through `Lockstep.run/2`: the fixed cost the rows are net of."
  def fixed_cost, do: one_iteration(fn -> :ok end, strategy: :random)

  def processes(n, strategy \\ :random, seed \\ 11) do
    one_iteration(
      fn ->
        root = self()
        for _ <- 1..n//1, do: Lockstep.spawn(fn -> Lockstep.send(root, :hi) end)
        for _ <- 1..n//1, do: Lockstep.receive(do: (:hi -> :ok))
      end,
      strategy: strategy,
      seed: seed
    )
  end

  # Under :pct with this seed the root ranks above most of its children, so they pile up
  # ready while it spawns: the strategy chooses among up to N ready processes at each step.
  @doc false
  def pct_ready_seed, do: 2

  def steps(s, strategy \\ :random) do
    rounds = max(div(s, 4), 1)

    one_iteration(
      fn ->
        echo = Lockstep.spawn(fn -> echo() end)

        for _ <- 1..rounds//1 do
          Lockstep.send(echo, {:ping, self()})
          Lockstep.receive(do: (:pong -> :ok))
        end

        Lockstep.send(echo, :stop)
      end,
      strategy: strategy
    )
  end

  defp echo do
    Lockstep.receive do
      {:ping, from} ->
        Lockstep.send(from, :pong)
        echo()

      :stop ->
        :ok
    end
  end

  def in_flight(k, strategy \\ :pct) do
    one_iteration(
      fn ->
        root = self()
        for _ <- 1..k//1, do: Lockstep.spawn(fn -> Lockstep.send(root, :hi) end)
        for _ <- 1..k//1, do: Lockstep.receive(do: (:hi -> :ok))
      end,
      strategy: strategy,
      delivery: :delayed
    )
  end

  @doc "µs per iteration of `body` with `m` unrelated messages in the caller's mailbox."
  def owner_inbox(m, body, iterations) do
    Timing.isolated(fn ->
      for i <- 1..m//1, do: Kernel.send(self(), {:unrelated, i})
      t0 = Timing.now_ns()
      Lockstep.run(body, iterations: iterations, strategy: :random, seed: 3)
      t1 = Timing.now_ns()
      %{ns: t1 - t0, steps: iterations}
    end)
  end

  defp one_iteration(body, opts) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()

      summary =
        Lockstep.run(
          body,
          Keyword.merge(
            [iterations: 1, seed: 11, max_steps: 100_000_000, timeout: 600_000],
            opts
          )
        )

      t1 = Timing.now_ns()
      %{ns: t1 - t0, steps: summary.steps}
    end)
  end
end
