# Where one Lockstep iteration's time goes: set-up, the controlled run, teardown.
#
#   MIX_ENV=prod mix run bench/iteration_phases.exs
#
# Not part of `make bench`: it drives Lockstep's *internal* iteration functions
# (Lockstep.Iteration.start/6, await/3, finish/5) the way
# Lockstep.Runner does, timing each phase. If those internals move, this script says so and
# stops; bench/run.exs only uses the public API.

for file <- ~w(timing baseline iterations) do
  Code.require_file("support/#{file}.exs", __DIR__)
end

defmodule Bench.IterationPhases do
  alias Bench.Timing
  alias Lockstep.{Iteration, Options, Runner, Session}

  @needed [
    {Iteration, :start, 6},
    {Iteration, :await, 3},
    {Iteration, :finish, 5},
    {Options, :validate!, 2},
    {Runner, :strategy_spec, 1},
    {Session, :strategy, 1},
    {Session, :iteration_seed, 2}
  ]

  def main do
    missing =
      for {m, f, a} <- @needed,
          not (Code.ensure_loaded?(m) and function_exported?(m, f, a)),
          do: "#{inspect(m)}.#{f}/#{a}"

    if missing != [] do
      IO.puts(
        "bench/iteration_phases.exs: internal functions moved (#{Enum.join(missing, ", ")}); update the script."
      )

      System.halt(0)
    end

    n = 5_000

    bodies = [
      {"counter, 5 procs", Lockstep.Examples.CounterRace.test_body(:atomic, 3)},
      {"tiny, 2 procs", Bench.Bodies.lockstep_tiny()},
      {"empty root, 1 proc", fn -> :ok end}
    ]

    IO.puts(
      "\nLockstep iteration phases, #{n} iterations, strategy :pct, best of 5 (µs per iteration)\n"
    )

    IO.puts(
      "| body | set-up (session_new, spawn root, session_start) | run (await :done) | teardown (finish: procs, outcome, kill_all, session_finish) | sum | Lockstep.run total |"
    )

    IO.puts("|---|---|---|---|---|---|")

    for {name, body} <- bodies do
      _ = phases(body, 500)
      best = Enum.min_by(for(_ <- 1..5, do: phases(body, n)), & &1.sum)
      total = Enum.min(for _ <- 1..5, do: Bench.Iterations.lockstep(body, n, :pct).ns / 1000 / n)

      IO.puts(
        "| #{name} | #{f(best.setup)} | #{f(best.run)} | #{f(best.teardown)} | #{f(best.sum)} | #{f(total)} |"
      )
    end

    IO.puts("")
  end

  defp phases(body, n) do
    cfg = Options.validate!(body, strategy: :pct, seed: 2026, iterations: n)
    cell = Session.strategy(Runner.strategy_spec(cfg))

    {s, r, t} =
      Enum.reduce(1..n, {0, 0, 0}, fn i, {s, r, t} ->
        seed = Session.iteration_seed(cfg.seed, i)
        t0 = Timing.now_ns()
        done = make_ref()
        {session, tag} = Iteration.start(cell, body, seed, cfg, false, done)
        t1 = Timing.now_ns()
        waited = Iteration.await(session, done, cfg.timeout)
        t2 = Timing.now_ns()
        %{kind: :pass} = Iteration.finish(session, tag, waited, false, done)
        t3 = Timing.now_ns()
        {s + t1 - t0, r + t2 - t1, t + t3 - t2}
      end)

    us = fn ns -> ns / 1000 / n end
    %{setup: us.(s), run: us.(r), teardown: us.(t), sum: us.(s + r + t)}
  end

  defp f(x), do: :erlang.float_to_binary(x / 1, decimals: 1)
end

Bench.IterationPhases.main()
