# CPU time, not wall-clock time, of the hop and of the 5-process counter iteration, each
# against the raw BEAM's, best of BENCH_ROUNDS (7) interleaved rounds. For comparing two
# trees on a machine other jobs load (docs/PERFORMANCE.md, "The tree as merged"): the time
# the VM's threads ran (`/proc/self/task/*/schedstat`, Linux) does not count the time they
# waited for a core. Run it with scheduler busy-waiting off, or idle schedulers' spinning
# is counted too:
#
#   MIX_ENV=prod elixir --erl "+sbwt none +sbwtdcpu none +sbwtdio none" -S mix run bench/cpu_time.exs
#
# Knobs: BENCH_HOPS (200000), BENCH_ITERATIONS (5000), BENCH_ROUNDS (7).

for file <- ~w(timing baseline ping_pong iterations) do
  Code.require_file("support/#{file}.exs", __DIR__)
end

defmodule Bench.CpuTime do
  alias Bench.{Iterations, PingPong}

  defp measure(fun) do
    c0 = Bench.Timing.thread_ns()
    w0 = System.monotonic_time(:nanosecond)
    fun.()
    {Bench.Timing.thread_ns() - c0, System.monotonic_time(:nanosecond) - w0}
  end

  def main do
    unless File.exists?("/proc/self/task") do
      IO.puts("bench/cpu_time.exs needs Linux's /proc/self/task/*/schedstat")
      System.halt(0)
    end

    hops = env_int("BENCH_HOPS", 200_000)
    its = env_int("BENCH_ITERATIONS", 5_000)
    rounds = env_int("BENCH_ROUNDS", 7)
    counter = Lockstep.Examples.CounterRace.test_body(:atomic, 3)
    counter_raw = Bench.Bodies.counter(Bench.RawOps, 3)

    # warm-up
    _ = PingPong.raw(20_000)
    _ = PingPong.lockstep(20_000, :random)
    _ = Iterations.lockstep(counter, 500, :pct)
    _ = Iterations.raw(counter_raw, 500)

    variants = [
      raw: {hops, fn -> PingPong.raw(hops) end},
      random: {hops, fn -> PingPong.lockstep(hops, :random) end},
      pct: {hops, fn -> PingPong.lockstep(hops, :pct) end},
      counter_pct: {its, fn -> Iterations.lockstep(counter, its, :pct) end},
      counter_random: {its, fn -> Iterations.lockstep(counter, its, :random) end},
      counter_raw: {its, fn -> Iterations.raw(counter_raw, its) end}
    ]

    samples =
      for _ <- 1..rounds, {name, {n, fun}} <- variants, reduce: %{} do
        acc ->
          {cpu, wall} = measure(fun)
          Map.update(acc, name, [{cpu / n, wall / n}], &[{cpu / n, wall / n} | &1])
      end

    best = Map.new(samples, fn {k, v} -> {k, {best(v, 0), best(v, 1)}} end)
    IO.puts("load average: #{String.trim(File.read!("/proc/loadavg"))}")
    IO.puts("best of #{rounds}: µs of CPU time (wall clock) per unit, and ratio to raw\n")

    row("hop, raw BEAM", best.raw, best.raw, :slower)
    row("hop, Lockstep :random", best.random, best.raw, :slower)
    row("hop, Lockstep :pct", best.pct, best.raw, :slower)
    row("counter iteration, raw BEAM", best.counter_raw, best.counter_raw, :faster)
    row("counter iteration, Lockstep :pct", best.counter_pct, best.counter_raw, :faster)
    row("counter iteration, Lockstep :random", best.counter_random, best.counter_raw, :faster)
  end

  defp best(samples, i), do: samples |> Enum.map(&elem(&1, i)) |> Enum.min() |> Kernel./(1000)

  # Hops compare as "x raw" (cost ratio), iterations as "it/s ÷ raw" (the issue-9 target).
  defp row(name, {cpu, wall}, {raw_cpu, raw_wall}, kind) do
    {rc, rw} =
      case kind do
        :slower -> {cpu / raw_cpu, wall / raw_wall}
        :faster -> {raw_cpu / cpu, raw_wall / wall}
      end

    IO.puts(
      "  #{String.pad_trailing(name, 38)} #{fmt(cpu)} (#{fmt(wall)})   " <>
        "#{fmt(rc)} (#{fmt(rw)})"
    )
  end

  defp fmt(x), do: :erlang.float_to_binary(x * 1.0, decimals: 3)

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      value -> String.to_integer(value)
    end
  end
end

Bench.CpuTime.main()
